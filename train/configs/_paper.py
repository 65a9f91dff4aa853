"""Shared pieces of the papers' experiment configs: compression and pipeline blocks, variant parsing.

A family config (``cifar_filtermap``, ``ucf101_fdc3d``, ...) lists its
experiments in ``EXPERIMENTS`` and takes ``NAME:EXPERIMENT[,FLAG...]``;
flags shared by every family are ``runlocal`` (a tiny smoke run: tiny model,
a few steps, small batches) and, for the CIFAR families, ``digits`` (the
embedded digits at 32x32 instead of CIFAR-10, for offline runs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import ml_collections

from train.configs._base import VARIANTS, base_config
from train.errors import UserError

__all__ = [
    "paper_base",
    "parse_arg",
    "set_sgd",
    "set_adam",
    "epochs",
    "runlocal",
    "use_digits",
    "CIFAR10_TRAIN",
]

CIFAR10_TRAIN = 50_000


def _compress_block(preset: str) -> ml_collections.ConfigDict:
    """``model.compress``: a :data:`compact_jax.compress.PRESETS` preset and adjustments (see :mod:`train.pipelines.policy`)."""
    c = ml_collections.ConfigDict()
    c.preset = preset  # "" : no compression
    c.method = ""  # swap the method of every compressed rule
    c.values = ""  # one value per compressed rule, e.g. "3,3,2,2" (quote it in --set)
    c.option = "harmonics"  # ... of this option
    c.kwargs = ml_collections.ConfigDict()  # options set on every compressed rule
    c.lenient = False  # rules may match no layer (presets on shrunken smoke-test nets)
    return c


def _pipeline_block(name: str) -> ml_collections.ConfigDict:
    """``pipeline``: which pipeline runs and its stages' settings (see :mod:`train.pipelines`)."""
    p = ml_collections.ConfigDict()
    p.name = name  # train | approx_finetune | fdc3d | basis
    p.dense_export = ""  # the 'export' directory of a trained dense run ("": train it first)
    p.dense_steps = 0  # steps of that dense training
    p.dense_batch_size = 0  # its batch size (0: data.batch_size)
    p.dense_optimizer = ml_collections.ConfigDict()  # optimizer fields for it (the rest as `optimizer`)
    p.fit = "gradient"  # approx_finetune: gradient (the authors' Adam regression) | closed_form
    p.quant = ml_collections.ConfigDict({"kind": "mantissa", "bits": 0, "activations": True})  # 0 bits: off
    p.fdc3d = ml_collections.ConfigDict({
        "solver": "eq9",  # eq9 (Algorithm 1 on recorded data) | closed_form (no data)
        "transform_steps": 500, "transform_learning_rate": 0.05,  # gradient descent on S (Eq. 7)
        "steps": 200, "learning_rate": 0.01, "gamma": 0.01,  # Adam on beta (Eq. 8's LASSO)
        "batches": 8, "batch_size": 16,  # training batches recorded per layer
    })
    p.init = "svd"  # basis: svd (of the dense network) | random
    p.gamma = 0.0  # basis: Eq. (18) weight of sum_l ||W_l - B_l A_l||^2
    return p


def paper_base(*, preset: str, pipeline: str = "train") -> ml_collections.ConfigDict:
    """The trainer's skeleton plus ``model.compress`` and ``pipeline`` blocks."""
    c = base_config()
    c.model.compress = _compress_block(preset)
    c.pipeline = _pipeline_block(pipeline)
    return c


def parse_arg(arg: str | None, experiments: Sequence[str], flags: Sequence[str], *, config: str) -> tuple[str, list[str]]:
    """``"resnet34,runlocal"`` -> ``("resnet34", ["runlocal"])``, checking both against the valid names."""
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    if not parts or parts[0] not in experiments:
        got = parts[0] if parts else "(none)"
        raise UserError(f"config {config!r} needs an experiment, got {got!r}; valid: "
                        f"{', '.join(f'{config}:{e}' for e in experiments)} (flags: {', '.join(flags)})")
    for flag in parts[1:]:
        if flag not in flags:
            raise UserError(f"config {config!r}: unknown flag {flag!r}; valid flags: {', '.join(flags)}")
    return parts[0], parts[1:]


def epochs(n: float, examples: int, batch_size: int) -> int:
    """Steps of ``n`` epochs of ``examples`` at ``batch_size`` (last partial batch dropped)."""
    return int(round(n * (examples // batch_size)))


def set_sgd(opt, *, lr: float, weight_decay: float, boundaries: Sequence[float] = (0.5, 0.75),
            nesterov: bool = False, schedule: str = "step") -> None:
    """SGD with momentum 0.9 and (by default) x0.1 steps at the ``boundaries`` fractions."""
    opt.name, opt.lr, opt.momentum, opt.nesterov = "sgd", lr, 0.9, nesterov
    opt.weight_decay, opt.schedule, opt.boundaries, opt.decay_factor = weight_decay, schedule, tuple(boundaries), 0.1
    opt.warmup_steps = 0


def set_adam(opt, *, lr: float, boundaries: Sequence[float], weight_decay: float = 0.0) -> None:
    """Adam (0.9, 0.999) with x0.1 steps at the ``boundaries`` fractions."""
    opt.name, opt.lr, opt.b1, opt.b2, opt.weight_decay = "adam", lr, 0.9, 0.999, weight_decay
    opt.schedule, opt.boundaries, opt.decay_factor, opt.warmup_steps = "step", tuple(boundaries), 0.1, 0


def optimizer_fields(c: ml_collections.ConfigDict, setter: Callable, **kwargs) -> ml_collections.ConfigDict:
    """The optimizer fields ``setter`` gives, as a ``pipeline.dense_optimizer`` block."""
    opt = ml_collections.ConfigDict(c.optimizer.to_dict())
    setter(opt, **kwargs)
    return ml_collections.ConfigDict({k: v for k, v in opt.items() if v != c.optimizer[k]})


def use_digits(c: ml_collections.ConfigDict, *, image_size: int = 32) -> None:
    """Embedded digits as CIFAR-like ``image_size`` images (offline stand-in for CIFAR-10)."""
    c.data.name = "digits"
    c.data.kwargs = ml_collections.ConfigDict({"image_size": image_size})
    c.data.eval_batch_size = 120  # 3 batches over the 359 test digits


def runlocal(c: ml_collections.ConfigDict, model_kwargs: Mapping | None = None, **data_kwargs) -> None:
    """The tiny smoke variant: :data:`train.configs._base.VARIANTS` ``runlocal``, a tiny model, short stages.

    The preset's rules may match nothing (``model.compress.lenient``): the tiny
    net lacks most of the layers the paper's configuration names (the full-size
    configs are checked to resolve on their full-size models).
    """
    VARIANTS["runlocal"](c)
    c.model.compress.lenient = True
    c.train.tensorboard = False
    c.train.progress = False
    c.optimizer.schedule, c.optimizer.warmup_steps = "constant", 0
    for key, value in (model_kwargs or {}).items():
        c.model.kwargs[key] = value
    for key, value in data_kwargs.items():
        c.data.kwargs[key] = value
    p = c.pipeline
    p.dense_steps = min(int(p.dense_steps), 4)
    p.dense_batch_size = 0
    p.dense_optimizer = ml_collections.ConfigDict({"schedule": "constant", "warmup_steps": 0})
    p.fit = "closed_form"
    p.fdc3d.steps, p.fdc3d.transform_steps, p.fdc3d.batches, p.fdc3d.batch_size = 3, 3, 1, 4
