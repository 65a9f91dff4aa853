"""Mixed precision (``train.compute_dtype``) and non-finite outputs in evaluation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train import config as config_lib
from train import models, trainer
from train.errors import NonFiniteLossError

TINY = ["data.kwargs.image_size=8", "model.kwargs.stage_sizes=(1,)", "model.kwargs.widths=(16,)",
        "train.progress=False", "train.tensorboard=False", "train.checkpoint_every=0"]
# Long enough for the accuracy to settle near its plateau (about 95% on the 359 test digits).
CONVERGED = ["train.steps=120", "data.batch_size=32", "optimizer.lr=0.2", "optimizer.warmup_steps=0",
             "data.eval_batch_size=120"]


def test_bfloat16_compute_keeps_float32_parameters():
    config = config_lib.load("digits_filtermap", TINY + ["train.compute_dtype=bfloat16"])
    model = models.build_model(config.model, num_classes=10, input_shape=(1, 8, 8, 3), dtype="bfloat16")
    x = jnp.zeros((2, 8, 8, 3), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    assert {leaf.dtype for leaf in jax.tree.leaves(variables["params"])} == {jnp.dtype(jnp.float32)}
    # Every layer computes in bfloat16: the logits, and each conv's output, come out in bfloat16.
    logits, inter = jax.eval_shape(
        lambda v: model.apply(v, x, train=False, capture_intermediates=True, mutable=["intermediates"]), variables)
    assert logits.dtype == jnp.bfloat16
    convs = {path: leaf.dtype for path, leaf in jax.tree_util.tree_leaves_with_path(inter)
             if any("conv" in str(p) for p in path)}
    assert convs and set(convs.values()) == {jnp.dtype(jnp.bfloat16)}, convs


def test_bfloat16_training_matches_float32_accuracy():
    runs = {}
    for dtype in ("float32", "bfloat16"):
        config = config_lib.load("digits_dense", TINY + CONVERGED + [f"train.compute_dtype={dtype}"])
        runs[dtype] = trainer.train(config)
    f32, bf16 = runs["float32"], runs["bfloat16"]
    assert {leaf.dtype for leaf in jax.tree.leaves(bf16.state["params"])} == {jnp.dtype(jnp.float32)}
    assert f32.metrics["accuracy"] > 0.9  # converged, so 2 points is a meaningful bound
    assert abs(bf16.metrics["accuracy"] - f32.metrics["accuracy"]) <= 0.02, (f32.metrics, bf16.metrics)
    assert bf16.metrics["loss"] != f32.metrics["loss"]  # the switch did change the computation


class _InfiniteAtEval(nn.Module):
    """Finite logits in training, infinite ones in evaluation (an overflow that only evaluation sees)."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        logits = nn.Dense(10)(x.reshape(x.shape[0], -1))
        return logits if train else logits + jnp.inf


def test_non_finite_logits_in_evaluation_stop_the_run(tmp_path):
    config = config_lib.load("digits_dense", TINY + ["train.steps=2", "data.eval_batch_size=120"])
    # 359 test digits in three batches of 120: the padding example does not count.
    with pytest.raises(NonFiniteLossError, match=r"^non-finite model outputs on 359 evaluation examples at step 2$"):
        trainer.train(config, str(tmp_path), model=_InfiniteAtEval())
    assert not (tmp_path / "export").exists()  # like a non-finite loss: nothing is exported


def test_finite_evaluation_counts_no_bad_outputs():
    config = config_lib.load("digits_dense", TINY + ["train.steps=1", "data.eval_batch_size=120"])
    result = trainer.train(config, model=_FiniteDense())
    assert set(result.metrics) == {"accuracy", "loss"} and np.isfinite(result.metrics["loss"])


class _FiniteDense(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(10)(x.reshape(x.shape[0], -1))
