"""The lowerings of :func:`compact_jax.conv.conv` on one backend, and what ``impl="auto"`` picks.

Run: ``python -m compact_jax.bench --only lowering`` (or
``python -m compact_jax.bench.conv_lowering``). For the 3x3 (3x3x3)
convolutions of ResNet-18-CIFAR (batch 32) and of 3D-ResNet-18 (the
network benchmark's CPU clips, 2x8x64x64), the convolutions FDC3D's
frequency path runs in that network once pruned (the ``t'`` frequency maps of
``c'`` kept channels stacked along their own axis, convolved ``VALID`` over
it) and a thin-channel stem, each
lowering that applies (``xla``; ``patches`` without groups or input
dilation; ``frames`` for 3-D) is timed forward and for the train step
(gradient w.r.t. kernel and input). Each row gives the lowering ``auto``
picks, its time over the fastest lowering's (forward, train step) and
whether both are within 5%.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from compact_jax.bench.timing import best_times, print_table
from compact_jax.conv import conv

__all__ = ["SHAPES", "lowering_rows", "main"]

HEADER = ("layer", "input", "auto", "fwd ms (auto)", "train ms (auto)", "fwd / best", "train / best", "within 5%")

_MAPS_PADDING = ((0, 0), (1, 1), (1, 1))

#: ``name -> (input shape, kernel shape, strides[, padding])`` (padding ``"SAME"`` when omitted).
SHAPES = {
    "ResNet-18-CIFAR stage1": ((32, 32, 32, 64), (3, 3, 64, 64), 1),
    "ResNet-18-CIFAR stage2": ((32, 16, 16, 128), (3, 3, 128, 128), 1),
    "ResNet-18-CIFAR stage3": ((32, 8, 8, 256), (3, 3, 256, 256), 1),
    "ResNet-18-CIFAR stage4": ((32, 4, 4, 512), (3, 3, 512, 512), 1),
    "ResNet-18-CIFAR stage4 down": ((32, 8, 8, 256), (3, 3, 256, 512), 2),
    "3D-ResNet-18 stage1": ((2, 4, 16, 16, 64), (3, 3, 3, 64, 64), 1),
    "3D-ResNet-18 stage2": ((2, 2, 8, 8, 128), (3, 3, 3, 128, 128), 1),
    "3D-ResNet-18 stage3": ((2, 1, 4, 4, 256), (3, 3, 3, 256, 256), 1),
    "3D-ResNet-18 stage4": ((2, 1, 2, 2, 512), (3, 3, 3, 512, 512), 1),
    # FDC3D's frequency maps at the paper's (1/4, 1/3) and (5/8, 1/3) settings:
    # (N T', t', H, W, c') against (t', k_h, k_w, c', N), VALID over the t' axis.
    "FDC3D (1/4, 1/3) stage2": ((4, 2, 8, 8, 96), (2, 3, 3, 96, 128), 1, _MAPS_PADDING),
    "FDC3D (1/4, 1/3) stage3 down": ((2, 2, 8, 8, 96), (2, 3, 3, 96, 256), (1, 2, 2), _MAPS_PADDING),
    "FDC3D (5/8, 1/3) stage3": ((2, 2, 4, 4, 96), (2, 3, 3, 96, 256), 1, _MAPS_PADDING),
    "FDC3D (5/8, 1/3) stage3 down": ((2, 2, 8, 8, 48), (2, 3, 3, 48, 256), (1, 2, 2), _MAPS_PADDING),
    "VGG-style 2-D stem": ((32, 32, 32, 3), (3, 3, 3, 64), 1),
}


def _auto_name(x_shape, k_shape, strides, padding) -> str:
    """The lowering ``impl="auto"`` takes, read from the traced program."""
    x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    k = jax.ShapeDtypeStruct(k_shape, jnp.float32)
    jaxpr = jax.make_jaxpr(lambda x, k: conv(x, k, strides=strides, padding=padding))(x, k)
    convs = sum(eqn.primitive.name == "conv_general_dilated" for eqn in jaxpr.eqns)
    if convs == 0:
        return "patches"
    return "frames" if convs > 1 else "xla"


def lowering_rows(shapes: dict | None = None, *, rounds: int = 3) -> list[tuple]:
    """Rows ``(layer, input, auto, fwd_ms, train_ms, fwd_over_best, train_over_best, within_5pct)``."""
    rows = []
    for name, (x_shape, k_shape, strides, *padding) in (shapes or SHAPES).items():
        padding = padding[0] if padding else "SAME"
        x = jax.random.normal(jax.random.key(0), x_shape)
        k = jax.random.normal(jax.random.key(1), k_shape) / (k_shape[-2] ** 0.5)
        impls = ["xla", "patches"] + (["frames"] if len(k_shape) == 5 else [])
        variants = {
            impl: (lambda k, x, impl=impl: conv(x, k, strides=strides, padding=padding, impl=impl), k)
            for impl in impls
        }
        times = best_times(variants, x, rounds=rounds, repeats=3)
        auto = _auto_name(x_shape, k_shape, strides, padding)
        best_fwd = min(t[0] for t in times.values())
        best_train = min(t[1] for t in times.values())
        fwd, train = times[auto]
        rows.append((
            name, "x".join(map(str, x_shape)), auto, 1e3 * fwd, 1e3 * train, fwd / best_fwd,
            train / best_train, "yes" if max(fwd / best_fwd, train / best_train) <= 1.05 else "no",
        ))
    return rows


def main() -> None:
    backend = jax.default_backend()
    print_table(
        HEADER, lowering_rows(),
        title=f"conv lowerings ({backend}: {jax.devices()[0].device_kind}): auto's time over the fastest lowering's",
    )


if __name__ == "__main__":
    main()
