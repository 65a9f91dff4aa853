"""FilterMap layers against dense at ResNet-18-CIFAR shapes (batch 64).

Run: ``python -m compact_jax.bench.filtermap_layers``. Forward, and forward +
backward w.r.t. the filter map and the input, for both gradient rules.
"""

from __future__ import annotations

from compact_jax import filtermap
from compact_jax.bench._layers import RESNET18_CIFAR_SHAPES, compare_to_dense
from compact_jax.bench.timing import print_table

__all__ = ["filtermap_rows", "main"]

HEADER = ("layer", "gradient", "grid", "dense fwd ms", "fwd ratio", "fwd+bwd ratio", "param ratio")


def filtermap_rows(*, batch: int = 64) -> list[tuple]:
    """Rows ``(layer, gradient, grid, dense_fwd_ms, fwd_ratio, train_ratio, param_ratio)``."""
    rows = []
    for name, channels, size in RESNET18_CIFAR_SHAPES:
        for gradient in ("mean", "sum"):
            spec = filtermap.FilterMapSpec(
                features=channels, in_features=channels, kernel_size=(3, 3), gradient=gradient
            )
            r = compare_to_dense(filtermap, spec, batch=batch, spatial=(size, size))
            rows.append((name, gradient, "x".join(map(str, spec.grid)), r["dense_fwd_ms"],
                         r["fwd_ratio"], r["train_ratio"], r["param_ratio"]))
    return rows


def main() -> None:
    print_table(HEADER, filtermap_rows(), title="3D-FilterMap / dense (time ratios), batch 64")


if __name__ == "__main__":
    main()
