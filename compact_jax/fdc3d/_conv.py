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
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from compact_jax import arith
from compact_jax.validate import check_int_tuple
from compact_jax.conv import conv

__all__ = ["frequency_conv3d", "project_frames", "gather_channels"]


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
    batch_shape = x.shape[:num_batch]
    x = x.reshape((-1,) + x.shape[num_batch:])
    z = project_frames(x, rows.astype(x.dtype), t_out=t_out, stride=s_t, dilation=d_t)
    z = z.reshape(batch_shape + z.shape[1:-2] + (z.shape[-2] * z.shape[-1],))
    return conv(
        z,
        kernel_2d,
        strides=tuple(s_hw),
        padding=tuple(pads_hw),
        input_dilation=tuple(u_hw),
        kernel_dilation=tuple(d_hw),
        precision=precision,
    )


def _tap_slice(x: jax.Array, tau: int, *, t_out: int, stride: int, dilation: int) -> jax.Array:
    start = tau * dilation
    return lax.slice_in_dim(x, start, start + stride * (t_out - 1) + 1, stride, axis=1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _project(x: jax.Array, rows: jax.Array, t_out: int, stride: int, dilation: int) -> jax.Array:
    z = None
    for tau in range(rows.shape[1]):
        frames = _tap_slice(x, tau, t_out=t_out, stride=stride, dilation=dilation)
        term = frames[..., None] * rows[:, tau].reshape((1,) * x.ndim + (-1,))
        z = term if z is None else z + term
    return z


def _project_fwd(x, rows, t_out, stride, dilation):
    return _project(x, rows, t_out, stride, dilation), (x, rows)


def _project_bwd(t_out, stride, dilation, residuals, dz):
    """Gradients that stay in the pruned domain, each one pass over the data.

    ``dx`` puts tap ``tau``'s ``sum_f rows[f, tau] dz[..., f]`` back at the
    frames that tap read (a strided pad; the taps' pads are summed), and
    ``drows[:, tau]`` is one contraction of the frames tap ``tau`` read
    against ``dz`` over every batch, frame, pixel and channel (a dot product
    with a data-sized reduction and a ``t'``-sized output).
    """
    x, rows = residuals
    length = x.shape[1]
    dx = None
    drows = []
    flat_dz = dz.reshape(-1, dz.shape[-1])
    for tau in range(rows.shape[1]):
        frames = _tap_slice(x, tau, t_out=t_out, stride=stride, dilation=dilation)
        drows.append(jnp.dot(frames.reshape(-1), flat_dz, preferred_element_type=jnp.float32))
        tap = jnp.dot(dz, rows[:, tau])
        lo = tau * dilation
        hi = length - lo - stride * (t_out - 1) - 1
        no_pad = ((0, 0, 0),) * (x.ndim - 2)
        tap = lax.pad(tap, jnp.zeros((), tap.dtype), ((0, 0, 0), (lo, hi, stride - 1), *no_pad))
        dx = tap if dx is None else dx + tap
    return dx.astype(x.dtype), jnp.stack(drows, axis=1).astype(rows.dtype)


_project.defvjp(_project_fwd, _project_bwd)


def project_frames(
    x: jax.Array, rows: jax.Array, *, t_out: int, stride: int = 1, dilation: int = 1
) -> jax.Array:
    """The temporal projection ``z[:, j, ..., f] = sum_tau rows[f, tau] x[:, j s + tau d, ...]``.

    A depthwise temporal convolution with ``t'`` output maps per channel, with
    a custom VJP (:func:`_project_bwd`) whose cost is a few passes over the
    data rather than XLA's transposed broadcast-multiply.

    Args:
      x: ``(N, T, H, W, c)``, already padded (and input-dilated) in time.
      rows: ``(t', t)``.
      t_out: the number of output frames (``>= 1``).
      stride, dilation: temporal stride and kernel dilation.

    Returns:
      ``(N, t_out, H, W, c, t')``.
    """
    return _project(x, rows, t_out, stride, dilation)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _gather(x: jax.Array, kept: tuple[int, ...]) -> jax.Array:
    return x[..., np.asarray(kept)]


def _gather_fwd(x, kept):
    return _gather(x, kept), x.shape[-1]


def _gather_bwd(kept, channels, dy):
    """Scatters ``dy`` back as a gather: append one zero channel, then pick."""
    source = np.full(channels, len(kept))
    source[np.asarray(kept)] = np.arange(len(kept))
    padded = jnp.concatenate([dy, jnp.zeros(dy.shape[:-1] + (1,), dy.dtype)], axis=-1)
    return (padded[..., source],)


_gather.defvjp(_gather_fwd, _gather_bwd)


def gather_channels(x: jax.Array, kept: Sequence[int]) -> jax.Array:
    """``x[..., kept]`` for static ``kept`` (distinct indices), whose gradient is a gather too.

    XLA lowers the transpose of a gather to a scatter, several times slower
    on CPU than the gather; here the gradient gathers from ``dy`` with one
    zero channel appended.
    """
    return _gather(x, tuple(int(i) for i in kept))
