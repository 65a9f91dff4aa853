"""The main job's recipe: a ResNet-8 on embedded digits, dense or with a compact conv."""

from __future__ import annotations

from train.configs._base import apply_variant, base_config

__all__ = ["digits_config"]


def digits_config(method: str, arg: str | None = None, **conv_kwargs):
    """ResNet-8 (one basic block per stage, widths 16-32-64, option-A shortcuts) on 16x16 digits.

    Args:
      method: conv method (``dense``, ``filtermap``, ``basis``, ``cos``, ``cheb``).
      arg: config variants, e.g. ``"runlocal"``.
      **conv_kwargs: fields of the method's Linen module.
    """
    c = base_config()
    c.data.name = "digits"
    c.data.kwargs.image_size = 16
    c.data.batch_size = 64
    c.data.eval_batch_size = 120  # 3 batches over the 359 test digits
    c.model.name = "resnet20"
    c.model.kwargs.stage_sizes = (1, 1, 1)
    c.model.conv.method = method
    c.model.conv.dense_layers = ("stem_conv",)  # 3 input channels: kept dense for every method
    for key, value in conv_kwargs.items():
        c.model.conv.kwargs[key] = value
    c.optimizer.lr = 0.1
    c.optimizer.weight_decay = 5e-4
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_steps = 20
    c.train.steps = 150
    c.train.log_every = 25
    c.train.checkpoint_every = 50
    return apply_variant(c, arg)
