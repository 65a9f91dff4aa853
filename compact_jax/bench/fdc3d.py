"""FDC3D's frequency-domain path against dense 3-D convolutions, 3D-ResNet-18 layer shape.

Run: ``python -m compact_jax.bench.fdc3d``. The layer is 3D-ResNet-18's
second-stage conv: a 3x3x3 conv 64 -> 64 on 16x56x56 clips, batch 4, SAME
padding, stride 1. Rows:

* dense conv3d through XLA's 3-D convolution (``impl="xla"``);
* dense conv3d lowered to 2-D convolutions over frames (``impl="frames"``);
* FDC3D pruned with ``(p_c, p_t) = (1/4, 1/3)`` and ``(5/8, 1/3)`` (the
  paper's 2x and 4x settings), frequency path (Eq. 5).

Speed-ups are against the faster dense row, beside Eq. (13)'s ``c t / (c' t')``.
The train step is forward + backward of ``mean(y ** 2)`` w.r.t. the weights
and the input, as inside a network.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import jax
import numpy as np

from compact_jax import fdc3d
from compact_jax.bench.timing import best_times, print_table
from compact_jax.conv import conv

__all__ = ["layer_times", "fdc3d_rows", "main"]

HEADER = (
    "layer", "fwd ms", "train ms", "fwd speed-up", "train speed-up", "Eq.13 speed-up",
    "MAC ratio", "param ratio",
)
SETTINGS = ((Fraction(1, 4), Fraction(1, 3)), (Fraction(5, 8), Fraction(1, 3)))


def _pruned_layer(spec: fdc3d.FrequencySpec, kernel, beta, p_c: Fraction, p_t: Fraction):
    params = fdc3d.fit(kernel, spec)
    params["beta"] = beta
    return fdc3d.prune(params, spec, p_c=float(p_c), p_t=float(p_t))


def layer_times(
    kernel: jax.Array,
    layers: Mapping[str, tuple[dict, fdc3d.FrequencySpec]],
    x: jax.Array,
    *,
    conv_kwargs: Mapping[str, Any] | None = None,
    path: str = "auto",
    rounds: int = 1,
    repeats: int = 3,
    backward: bool = True,
    min_seconds: float | None = None,
) -> dict[str, tuple[float, float]]:
    """Seconds of a dense 3-D layer and of FDC3D layers on ``x``: ``name -> (forward, train step)``.

    The dense DHWIO ``kernel`` runs with both 3-D convolution implementations
    (``"dense (xla)"``, ``"dense (frames)"``); each ``label -> (params, spec)``
    of ``layers`` runs :func:`compact_jax.fdc3d.apply` with ``path``. Timed by
    :func:`compact_jax.bench.timing.best_times` (``nan`` train steps when
    ``backward`` is false).
    """
    conv_kwargs = dict(conv_kwargs or {})
    variants = {
        f"dense ({impl})": (lambda k, x, impl=impl: conv(x, k, impl=impl, **conv_kwargs), kernel)
        for impl in ("xla", "frames")
    }
    for label, (params, spec) in layers.items():
        variants[label] = (lambda p, x, s=spec: fdc3d.apply(p, x, s, path=path, **conv_kwargs), params)
    return best_times(variants, x, rounds=rounds, repeats=repeats, backward=backward, min_seconds=min_seconds)


def fdc3d_rows(
    *,
    batch: int = 4,
    frames: int = 16,
    size: int = 56,
    channels: int = 64,
    temporal_size: int = 3,
    repeats: int = 3,
    backward: bool = True,
) -> list[tuple]:
    """Times the dense and pruned FDC3D layers on one input.

    Returns:
      Rows ``(layer, fwd_ms, train_ms, fwd_speedup, train_speedup,
      eq13_speedup, mac_ratio, param_ratio)``; speed-ups are the faster dense
      time over the row's time (``nan`` train columns when ``backward`` is
      false); ``mac_ratio`` = the row's multiply-adds (projection included) /
      dense; ``param_ratio`` = the row's weights / dense.
    """
    key_x, key_k, key_b = jax.random.split(jax.random.key(0), 3)
    spec = fdc3d.FrequencySpec(
        features=channels, in_features=channels, kernel_size=(temporal_size, 3, 3)
    )
    x = jax.random.normal(key_x, (batch, frames, size, size, channels))
    kernel = jax.random.normal(key_k, spec.kernel_shape) / np.sqrt(27 * channels)
    beta = jax.random.uniform(key_b, (channels,), minval=0.5, maxval=1.5)
    out_positions = batch * frames * size * size
    dense_macs = out_positions * 9 * temporal_size * channels * channels

    pruned_specs, layers = {}, {}
    for p_c, p_t in SETTINGS:
        params, pruned = _pruned_layer(spec, kernel, beta, p_c, p_t)
        name = f"FDC3D p_c={p_c} p_t={p_t} (c'={pruned.num_channels}, t'={pruned.num_rows})"
        pruned_specs[name] = (pruned, p_c, p_t)
        layers[name] = (params, pruned)
    times = layer_times(kernel, layers, x, path="frequency", repeats=repeats, backward=backward)
    seconds = {name.replace("dense ", "dense conv3d "): value for name, value in times.items()}

    measured = [(name, *seconds[name], 1.0, 1.0, 1.0) for name in list(seconds)[:2]]
    for name, (pruned, p_c, p_t) in pruned_specs.items():
        times = seconds[name]
        maps = pruned.num_channels * pruned.num_rows
        macs = out_positions * maps * (9 * channels + temporal_size)
        eq13 = fdc3d.speedup(
            in_features=channels, temporal_size=temporal_size, p_c=float(p_c), p_t=float(p_t)
        )
        measured.append((
            name,
            *times, eq13, macs / dense_macs, fdc3d.num_params(pruned) / spec.dense_num_params,
        ))
    best_fwd = min(row[1] for row in measured[:2])
    best_train = min(row[2] for row in measured[:2])
    return [
        (name, 1e3 * fwd, 1e3 * train, best_fwd / fwd, best_train / train, eq13, macs, params)
        for name, fwd, train, eq13, macs, params in measured
    ]


def main() -> None:
    print_table(
        HEADER,
        fdc3d_rows(),
        title="FDC3D vs dense conv3d: 3x3x3 64->64, 4x16x56x56 input (speed-ups vs faster dense)",
    )


if __name__ == "__main__":
    main()
