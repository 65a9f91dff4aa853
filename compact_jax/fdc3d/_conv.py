"""FDC3D's frequency-domain 3-D convolution (Eq. 5), with no full kernel formed.

A 3-D kernel whose temporal taps are ``w_tau = sum_f S[f, tau] G_f`` over the
kept frequency rows ``f`` gives, for output frame ``j``,

    y_j = sum_tau conv2d(x_{j s_t + tau d_t}, w_tau)
        = sum_f conv2d(z_{j, f}, G_f),   z_{j, f} = sum_tau S[f, tau] x_{j s_t + tau d_t},

so the input is first projected onto the ``t'`` kept rows of ``S`` (a fixed
depthwise temporal convolution with ``t'`` output maps per channel; it carries
the temporal stride, padding, kernel and input dilation), then the ``t'``
frequency maps of ``c'`` channels are convolved with the ``G_f`` with time
folded into the batch (carrying the spatial stride, padding and dilations).
The second stage costs ``c' t'`` where the dense 3-D convolution costs ``c t``.

It runs in one of two layouts (:func:`frequency_conv3d`, static choice):

* folded (accelerators): the maps stacked as ``c' t'`` channels and one 2-D
  convolution with the ``(k_h, k_w, c' t', N)`` kernel (a transpose of ``G``,
  cheap there);
* stacked (CPU): the maps kept as a length-``t'`` axis and one ``VALID``
  3-D convolution over it with ``G`` as stored, ``(t', k_h, k_w, c', N)``,
  through :func:`compact_jax.conv.conv` (on CPU its patches or frames
  lowering); no transpose of the kernel, which on CPU cost as much as the
  convolution itself in the deep, weight-bound layers of a 3D-ResNet.
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
from compact_jax.conv import conv, platform_of

__all__ = ["frequency_conv3d", "project_frames", "gather_channels"]


def frequency_conv3d(
    x: jax.Array,
    rows: jax.Array,
    coeffs: jax.Array,
    *,
    temporal_size: int,
    strides: int | Sequence[int],
    padding: arith.PaddingLike,
    input_dilation: int | Sequence[int],
    kernel_dilation: int | Sequence[int],
    precision: Any = None,
    fold_frequencies: bool | None = None,
) -> jax.Array | None:
    """Projects ``x`` onto ``rows`` along time, then convolves the frequency maps with ``coeffs``.

    Args:
      x: ``(*batch, T, H, W, c')``, the kept input channels.
      rows: ``(t', t)``, the kept rows of the orthogonal transform ``S``.
      coeffs: ``(t', k_h, k_w, c', N)``, ``G_f`` for each kept row ``f``.
      temporal_size: ``t``, the temporal kernel size.
      strides, padding, input_dilation, kernel_dilation: of the 3-D
        convolution, as in :func:`compact_jax.conv.conv` (time first).
      precision: passed to the convolution.
      fold_frequencies: ``True``: one 2-D convolution over ``c' t'`` stacked
        maps; ``False``: a ``VALID`` 3-D convolution over the length-``t'``
        frequency axis; ``None`` (default): ``False`` on CPU, ``True``
        elsewhere (decided at trace time). Same numbers up to rounding.

    Returns:
      ``(*batch, T', H', W', N)``, or ``None`` when the output has no frames
      (the caller then takes the reconstructed-kernel path).
    """
    num_rows, k_h, k_w, channels, features = coeffs.shape
    kernel_size = (temporal_size, k_h, k_w)
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
    if fold_frequencies is None:
        fold_frequencies = platform_of(x) != "cpu"
    batch_shape = x.shape[:num_batch]
    x = x.reshape((-1,) + x.shape[num_batch:])
    rows = rows.astype(x.dtype)
    if fold_frequencies:
        z = project_frames(x, rows, t_out=t_out, stride=s_t, dilation=d_t)
        z = z.reshape(z.shape[:-2] + (channels * num_rows,))
        kernel = jnp.moveaxis(coeffs, 0, 3).reshape(k_h, k_w, channels * num_rows, features)
        y = conv(
            z, kernel, strides=tuple(s_hw), padding=tuple(pads_hw), input_dilation=tuple(u_hw),
            kernel_dilation=tuple(d_hw), precision=precision,
        )
    else:
        z = project_frames(x, rows, t_out=t_out, stride=s_t, dilation=d_t, frequency_axis=2)
        y = conv(
            z.reshape((-1,) + z.shape[2:]), coeffs, strides=(1, *s_hw), padding=((0, 0), *pads_hw),
            input_dilation=(1, *u_hw), kernel_dilation=(1, *d_hw), precision=precision,
        )
        y = y.reshape((x.shape[0], t_out) + y.shape[2:])
    return y.reshape(batch_shape + y.shape[1:])


def _tap_slice(x: jax.Array, tau: int, *, t_out: int, stride: int, dilation: int) -> jax.Array:
    start = tau * dilation
    return lax.slice_in_dim(x, start, start + stride * (t_out - 1) + 1, stride, axis=1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _project(
    x: jax.Array, rows: jax.Array, t_out: int, stride: int, dilation: int, axis: int
) -> jax.Array:
    z = None
    shape = [1] * (x.ndim + 1)
    shape[axis] = rows.shape[0]
    for tau in range(rows.shape[1]):
        frames = _tap_slice(x, tau, t_out=t_out, stride=stride, dilation=dilation)
        term = jnp.expand_dims(frames, axis) * rows[:, tau].reshape(shape)
        z = term if z is None else z + term
    return z


def _project_fwd(x, rows, t_out, stride, dilation, axis):
    return _project(x, rows, t_out, stride, dilation, axis), (x, rows)


def _project_bwd(t_out, stride, dilation, axis, residuals, dz):
    """Gradients that stay in the pruned domain, each one pass over the data.

    ``drows``: one batched matrix product contracts ``dz`` against ``x`` over
    pixels and channels for every (output frame ``j``, map ``f``, input frame)
    pair, ``P[n, j, f, t_in]``; ``drows[f, tau]`` then sums the pairs tap
    ``tau`` used, ``P[:, j, f, j s + tau d]`` (a gather from a tiny array).
    ``dx``: for each tap, ``sum_f rows[f, tau] dz[..., f, ...]`` placed back at
    the frames that tap read (a strided pad; the taps' pads are summed), all
    elementwise so XLA fuses it into one loop, accumulated in float32.

    Per-tap dot products instead (a data-sized contraction to a ``t'``-sized
    output for ``drows``, a size-``t'`` contraction for ``dx``) took 10x and
    7-14x longer on CPU (the 3D-ResNet stem and stage 1 layers).
    """
    x, rows = residuals
    num_rows, num_taps = rows.shape
    n, length = x.shape[:2]
    dz_maps = jnp.moveaxis(dz, axis, 2).reshape(n, t_out * num_rows, -1)  # (n, j f, h w c)
    pairs = lax.dot_general(
        dz_maps, x.reshape(n, length, -1), (((2,), (2,)), ((0,), (0,))),
        precision=lax.Precision.HIGHEST, preferred_element_type=jnp.float32,
    )  # (n, j f, t_in)
    pairs = pairs.sum(axis=0).reshape(t_out, num_rows, length)
    frame = np.arange(t_out)[:, None] * stride + np.arange(num_taps)[None, :] * dilation  # (j, tau)
    drows = pairs[np.arange(t_out)[:, None], :, frame].sum(axis=0).T  # (t', t)

    dx = None
    no_pad = ((0, 0, 0),) * (x.ndim - 2)
    for tau in range(num_taps):
        tap = None
        for f in range(num_rows):
            term = lax.index_in_dim(dz, f, axis, keepdims=False).astype(jnp.float32) * rows[f, tau]
            tap = term if tap is None else tap + term
        lo = tau * dilation
        hi = length - lo - stride * (t_out - 1) - 1
        tap = lax.pad(tap, jnp.zeros((), tap.dtype), ((0, 0, 0), (lo, hi, stride - 1), *no_pad))
        dx = tap if dx is None else dx + tap
    return dx.astype(x.dtype), drows.astype(rows.dtype)


_project.defvjp(_project_fwd, _project_bwd)


def project_frames(
    x: jax.Array,
    rows: jax.Array,
    *,
    t_out: int,
    stride: int = 1,
    dilation: int = 1,
    frequency_axis: int = -1,
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
      frequency_axis: where the ``t'`` maps go: ``-1`` (last) or ``2``
        (after time).

    Returns:
      ``(N, t_out, H, W, c, t')`` (``frequency_axis=-1``) or
      ``(N, t_out, t', H, W, c)`` (``frequency_axis=2``).
    """
    if frequency_axis not in (-1, 2):
        raise ValueError(f"project_frames: frequency_axis must be -1 or 2, got {frequency_axis!r}")
    axis = x.ndim if frequency_axis == -1 else 2
    return _project(x, rows, t_out, stride, dilation, axis)


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
