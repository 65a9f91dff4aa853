"""Learning Filter Basis: reconstruct path, decomposed path and dense conv, timed in one run.

Run: ``python -m compact_jax.bench.basis_paths``. Layers (3x3, stride 1, SAME):

* EDSR-8-128 residual-block convs, 128 -> 128 on 48x48 patches at batch 16
  (the paper's training patches): Basis-128-27 and Basis-128-40 (``s = 1``,
  Table 2) and ``p = 64, m = 16`` (``s = 2``, Table 1's operating point);
* ResNet-18-CIFAR's four stages at batch 64 (64 x 32x32 ... 512 x 4x4), each
  with ``s = 2, m = c/4`` and ``s = 1, m = c/2``.

Each row gives the time of a path over the dense conv's (``compact_jax.conv``
with a dense kernel) for the forward pass and for forward + backward of
``mean(y ** 2)`` w.r.t. the parameters and the input; the MAC ratio is the
paper's decomposed count over the dense count, ``m/n + s m/(c kh kw)``;
``auto`` is the path :func:`compact_jax.basis.apply` picks.
:func:`padding_rows` times the decomposed path with and without rounding
``m`` up to a multiple of 8.
"""

from __future__ import annotations

import dataclasses

import jax

from compact_jax import basis, dense
from compact_jax.basis import decomposed
from compact_jax.bench._layers import RESNET18_CIFAR_SHAPES
from compact_jax.bench.timing import best_times, print_table
from compact_jax.layer import layer_apply

__all__ = ["Layer", "LAYERS", "basis_rows", "padding_rows", "main"]


@dataclasses.dataclass(frozen=True)
class Layer:
    """One benchmarked layer: a ``channels -> channels`` 3x3 conv with a basis."""

    name: str
    batch: int
    size: int
    channels: int
    splits: int
    num_basis: int

    def spec(self, path: str = "auto") -> basis.BasisSpec:
        return basis.BasisSpec(
            features=self.channels,
            in_features=self.channels,
            kernel_size=(3, 3),
            num_basis=self.num_basis,
            splits=self.splits,
            execution_path=path,
        )

    def input(self) -> jax.Array:
        return jax.random.normal(jax.random.key(0), (self.batch, self.size, self.size, self.channels))


LAYERS = (
    Layer("EDSR-8-128 Basis-128-27", 16, 48, 128, 1, 27),
    Layer("EDSR-8-128 Basis-128-40", 16, 48, 128, 1, 40),
    Layer("EDSR-8-128 p=64 m=16", 16, 48, 128, 2, 16),
    *(
        Layer(f"ResNet-18 {name} s={s} m={c * frac // 4}", 64, size, c, s, c * frac // 4)
        for name, c, size in RESNET18_CIFAR_SHAPES
        for s, frac in ((2, 1), (1, 2))
    ),
)

HEADER = (
    "layer", "dense fwd ms", "dense train ms", "MAC ratio", "param ratio",
    "recon fwd", "dec fwd", "recon train", "dec train", "auto",
)


def basis_rows(layers: tuple[Layer, ...] = LAYERS, *, rounds: int = 3) -> list[dict]:
    """Times dense, reconstruct and decomposed for every layer (ratios to dense)."""
    rows = []
    for layer in layers:
        x = layer.input()
        spec = layer.spec()
        dense_spec = dense.DenseSpec(features=spec.features, in_features=spec.in_features, kernel_size=(3, 3))
        variants = {
            "dense": (lambda p, x: layer_apply(dense, p, x, dense_spec), dense.init(jax.random.key(1), dense_spec)),
        }
        params = basis.init(jax.random.key(2), spec)
        for path in ("reconstruct", "decomposed"):
            variants[path] = (lambda p, x, s=layer.spec(path): layer_apply(basis, p, x, s), params)
        best = best_times(variants, x, rounds=rounds)
        (d_fwd, d_train) = best["dense"]
        s, m, c = layer.splits, layer.num_basis, layer.channels
        rows.append({
            "layer": layer.name,
            "dense_fwd_ms": 1e3 * d_fwd,
            "dense_train_ms": 1e3 * d_train,
            "mac_ratio": m / c + s * m / (c * 9),
            "param_ratio": basis.num_params(spec) / spec.dense_num_params,
            "recon_fwd": best["reconstruct"][0] / d_fwd,
            "dec_fwd": best["decomposed"][0] / d_fwd,
            "recon_train": best["reconstruct"][1] / d_train,
            "dec_train": best["decomposed"][1] / d_train,
            "auto": basis.choose_path(spec, x.shape),
        })
    return rows


def padding_rows(layers: tuple[Layer, ...] = LAYERS, *, rounds: int = 3) -> list[dict]:
    """Decomposed-path times with ``m`` as is and rounded up to a multiple of 8, for the
    layers whose ``m`` is not a multiple of 8."""
    rows = []
    for layer in layers:
        if layer.num_basis % 8 == 0:
            continue
        x, spec = layer.input(), layer.spec("decomposed")
        params = basis.init(jax.random.key(2), spec)
        variants = {
            multiple: (lambda p, x, k=multiple: decomposed(p, x, spec, pad_multiple=k), params) for multiple in (1, 8)
        }
        best = best_times(variants, x, rounds=rounds)
        rows.append({"layer": layer.name, **{f"{k}_ms_{mult}": 1e3 * t for mult, ts in best.items() for k, t in zip(("fwd", "train"), ts)}})
    return rows


def main() -> None:
    rows = basis_rows()
    print_table(HEADER, [list(r.values()) for r in rows], title="Filter basis paths / dense (time ratios)")
    pads = padding_rows()
    print_table(
        ("layer", "fwd ms m", "train ms m", "fwd ms m->8k", "train ms m->8k"),
        [[r["layer"], r["fwd_ms_1"], r["train_ms_1"], r["fwd_ms_8"], r["train_ms_8"]] for r in pads],
        title="Decomposed path: rounding m up to a multiple of 8",
    )


if __name__ == "__main__":
    main()
