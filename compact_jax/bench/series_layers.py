"""CosConv / ChebConv train steps against dense at ResNet-18-CIFAR shapes.

Run: ``python -m compact_jax.bench.series_layers``. The train step is forward +
backward of ``mean(layer(x) ** 2)`` w.r.t. the layer's learned weights (the
series coefficients, through kernel generation and the conv, or the dense
kernel) and the input. Batch 64, 3x3 convs, SAME padding, stride 1.
"""

from __future__ import annotations

import jax

from compact_jax import dense, series
from compact_jax.bench._layers import RESNET18_CIFAR_SHAPES
from compact_jax.bench.timing import best_times, print_table
from compact_jax.layer import layer_apply

__all__ = ["series_rows", "main"]

HEADER = ("layer", "method", "harmonics", "dense train ms", "fwd ratio", "train ratio", "param ratio")


def series_rows(
    shapes: tuple[tuple[str, int, int], ...] = RESNET18_CIFAR_SHAPES,
    *,
    batch: int = 64,
    harmonics: int = 2,
    kernel_size: int = 3,
    rounds: int = 3,
) -> list[tuple]:
    """One row per (shape, family): series / dense times of forward and train step.

    Returns:
      Rows ``(layer, method, harmonics, dense_train_ms, fwd_ratio,
      train_ratio, param_ratio)``; ratios are series / dense.
    """
    rows = []
    key_x, key_p = jax.random.split(jax.random.key(0))
    families = (("CosConv", "cosine"), ("ChebConv", "chebyshev"))
    for name, channels, size in shapes:
        shape = dict(features=channels, in_features=channels, kernel_size=(kernel_size, kernel_size))
        x = jax.random.normal(key_x, (batch, size, size, channels))
        specs = {"dense": (dense, dense.DenseSpec(**shape))}
        specs.update({label: (series, series.SeriesSpec(**shape, family=family, harmonics=harmonics))
                      for label, family in families})
        variants = {
            label: (lambda p, x, m=method, s=spec: layer_apply(m, p, x, s), method.init(key_p, spec))
            for label, (method, spec) in specs.items()
        }
        seconds = best_times(variants, x, rounds=rounds)
        d_fwd, d_train = seconds["dense"]
        for label, _ in families:
            spec = specs[label][1]
            fwd, train = seconds[label]
            rows.append((name, label, harmonics, 1e3 * d_train, fwd / d_fwd, train / d_train,
                         series.num_params(spec) / spec.dense_num_params))
    return rows


def main() -> None:
    print_table(HEADER, series_rows(), title="Series kernels / dense (time ratios), batch 64")


if __name__ == "__main__":
    main()
