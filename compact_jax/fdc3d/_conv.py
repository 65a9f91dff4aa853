"""FDC3D's frequency-domain 3-D convolution (Eq. 5), with no full kernel formed.

A 3-D kernel whose temporal taps are ``w_tau = sum_f S[f, tau] G_f`` over the
kept frequency rows ``f`` gives, for output frame ``j``,

    y_j = sum_tau conv2d(x_{j s_t + tau d_t}, w_tau)
        = sum_f conv2d(z_{j, f}, G_f),   z_{j, f} = sum_tau S[f, tau] x_{j s_t + tau d_t},

so the input is first projected onto the ``t'`` kept rows of ``S`` (a fixed
depthwise temporal convolution with ``t'`` output maps per channel; it carries
the temporal stride, padding, kernel and input dilation), then one 2-D
``k_h x k_w`` convolution runs over the stacked ``c' * t'`` maps with time
folded into the batch (it carries the spatial stride, padding and dilations).
The 2-D convolution costs ``c' t'`` where the dense 3-D one costs ``c t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from compact_jax import arith
from compact_jax.validate import check_int_tuple
from compact_jax.conv import conv

__all__ = ["frequency_conv3d"]


def frequency_conv3d(
    x: jax.Array,
    rows: jax.Array,
    kernel_2d: jax.Array,
    *,
    temporal_size: int,
    strides: int | Sequence[int],
    padding: arith.PaddingLike,
    input_dilation: int | Sequence[int],
    kernel_dilation: int | Sequence[int],
    precision: Any = None,
) -> jax.Array | None:
    """Projects ``x`` onto ``rows`` along time, then one 2-D convolution.

    Args:
      x: ``(*batch, T, H, W, c')``, the kept input channels.
      rows: ``(t', t)``, the kept rows of the orthogonal transform ``S``.
      kernel_2d: ``(k_h, k_w, c' * t', N)``; input channel ``c * t' + f``
        holds channel ``c``'s frequency-``f`` filter.
      temporal_size: ``t``, the temporal kernel size.
      strides, padding, input_dilation, kernel_dilation: of the 3-D
        convolution, as in :func:`compact_jax.conv.conv` (time first).
      precision: passed to the 2-D convolution.

    Returns:
      ``(*batch, T', H', W', N)``, or ``None`` when the output has no frames
      (the caller then takes the reconstructed-kernel path).
    """
    kernel_size = (temporal_size, *kernel_2d.shape[:2])
    strides = check_int_tuple("strides", strides, ndim=3)
    input_dilation = check_int_tuple("input_dilation", input_dilation, ndim=3)
    kernel_dilation = check_int_tuple("kernel_dilation", kernel_dilation, ndim=3)
    num_batch = x.ndim - 4
    pads = arith.canonical_padding(
        padding,
        input_spatial=x.shape[-4:-1],
        kernel_size=kernel_size,
        strides=strides,
        kernel_dilation=kernel_dilation,
    )
    if isinstance(padding, str) and padding.upper() == "CIRCULAR":
        x = jnp.pad(x, ((0, 0),) * num_batch + pads + ((0, 0),), mode="wrap")
        pads = ((0, 0),) * 3
    (s_t, *s_hw), (d_t, *d_hw), (u_t, *u_hw) = strides, kernel_dilation, input_dilation
    (lo_t, hi_t), *pads_hw = pads
    no_pad = ((0, 0, 0),)
    x = lax.pad(
        x, jnp.zeros((), x.dtype), no_pad * num_batch + ((lo_t, hi_t, u_t - 1),) + no_pad * 3
    )
    time_axis = num_batch
    t_out = (x.shape[time_axis] - (temporal_size - 1) * d_t - 1) // s_t + 1
    if t_out < 1:
        return None
    num_rows = rows.shape[0]
    z = None
    for tau in range(temporal_size):
        start = tau * d_t
        frames = lax.slice_in_dim(x, start, start + s_t * (t_out - 1) + 1, s_t, axis=time_axis)
        weights = rows[:, tau].astype(x.dtype).reshape((1,) * x.ndim + (num_rows,))
        term = frames[..., None] * weights
        z = term if z is None else z + term
    z = z.reshape(z.shape[:-2] + (z.shape[-2] * num_rows,))
    return conv(
        z,
        kernel_2d,
        strides=tuple(s_hw),
        padding=tuple(pads_hw),
        input_dilation=tuple(u_hw),
        kernel_dilation=tuple(d_hw),
        precision=precision,
    )
