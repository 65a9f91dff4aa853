"""CosConv / ChebConv train steps against dense at ResNet-18-CIFAR shapes.

Run: ``python -m compact_jax.bench.series_layers``. The train step is forward +
backward of ``mean(layer(x) ** 2)`` w.r.t. the layer's learned weights: the
series coefficients (through kernel generation and the conv) or the dense
kernel. Batch 64, 3x3 convs, SAME padding, stride 1.
"""

from __future__ import annotations

from types import ModuleType

import jax
import jax.numpy as jnp

from compact_jax import dense, series
from compact_jax.bench._layers import RESNET18_CIFAR_SHAPES
from compact_jax.bench._timing import print_table, time_jitted
from compact_jax.layer import layer_apply
from compact_jax.protocol import ConvSpec

__all__ = ["series_rows", "main"]

HEADER = ("layer", "method", "harmonics", "dense ms", "series ms", "time ratio", "param ratio")


def _train_step(method: ModuleType, spec: ConvSpec, x: jax.Array, key: jax.Array):
    """(jitted grad of mean(layer(x)^2) w.r.t. the learned weights, its arguments)."""

    def loss(params, x):
        return jnp.mean(layer_apply(method, params, x, spec) ** 2)

    return jax.jit(jax.grad(loss)), (method.init(key, spec), x)


def _interleaved_best(steps: dict, rounds: int) -> dict:
    """Best of ``rounds`` medians per step, timing the steps in turn (robust to a busy machine)."""
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(rounds):
        for name, (fn, args) in steps.items():
            best[name] = min(best[name], time_jitted(fn, *args))
    return best


def series_rows(
    *, batch: int = 64, harmonics: int = 2, kernel_size: int = 3, rounds: int = 3
) -> list[tuple]:
    """One row per (shape, family): train-step times and series/dense ratios.

    Returns:
      Rows ``(layer, method, harmonics, dense_ms, series_ms, time_ratio,
      param_ratio)``; ``time_ratio`` = series / dense train-step time,
      ``param_ratio`` = series / dense weights.
    """
    rows = []
    key_x, key_p = jax.random.split(jax.random.key(0))
    families = (("CosConv", "cosine"), ("ChebConv", "chebyshev"))
    for name, channels, size in RESNET18_CIFAR_SHAPES:
        shape = dict(features=channels, in_features=channels, kernel_size=(kernel_size, kernel_size))
        x = jax.random.normal(key_x, (batch, size, size, channels))
        specs = {label: series.SeriesSpec(**shape, family=family, harmonics=harmonics)
                 for label, family in families}
        steps = {"dense": _train_step(dense, dense.DenseSpec(**shape), x, key_p)}
        steps.update({label: _train_step(series, spec, x, key_p) for label, spec in specs.items()})
        seconds = _interleaved_best(steps, rounds)
        for label, spec in specs.items():
            rows.append((
                name, label, harmonics, 1e3 * seconds["dense"], 1e3 * seconds[label],
                seconds[label] / seconds["dense"], series.num_params(spec) / spec.dense_num_params,
            ))
    return rows


def main() -> None:
    print_table(HEADER, series_rows(), title="Series kernels vs dense: train step (fwd+bwd), batch 64")


if __name__ == "__main__":
    main()
