"""The one wrapper over ``lax.conv_general_dilated``.

Every compact method builds a full kernel (or a smaller one, for its direct
path) and convolves through :func:`conv`, so padding rules, layouts, dtype
promotion and input checks live in exactly one place.

Layouts are channels-last: inputs ``(*batch, *spatial, C_in)`` with zero or
more batch dimensions, kernels ``(*spatial, C_in / groups, C_out)`` (HWIO,
DHWIO, WIO), outputs ``(*batch, *spatial_out, C_out)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from compact_jax import arith
from compact_jax._validate import check_int_tuple, check_positive_int

__all__ = ["conv", "check_conv_input", "add_channel_bias"]

_LAYOUTS = {
    1: ("NWC", "WIO", "NWC"),
    2: ("NHWC", "HWIO", "NHWC"),
    3: ("NDHWC", "DHWIO", "NDHWC"),
}


def check_conv_input(x: Any, *, num_spatial: int, in_features: int, where: str = "conv") -> None:
    """Raises a clear error unless ``x`` is ``(*batch, *spatial, in_features)``.

    Static (shape-only) check, safe under ``jit`` and ``vmap``.
    """
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"{where}: input must be an array, got {type(x).__name__}")
    if len(shape) < num_spatial + 1:
        raise ValueError(
            f"{where}: input must have shape (*batch, {num_spatial} spatial dims, channels), i.e. "
            f"rank >= {num_spatial + 1}, got rank {len(shape)} with shape {tuple(shape)}"
        )
    if shape[-1] != in_features:
        raise ValueError(
            f"{where}: input has {shape[-1]} channels (last axis of shape {tuple(shape)}), "
            f"expected in_features={in_features}"
        )
    if any(d == 0 for d in shape[-num_spatial - 1 : -1]):
        raise ValueError(f"{where}: input has an empty spatial dimension: shape {tuple(shape)}")


def add_channel_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
    """``y + bias`` over the last axis, with explicit (not implicit-rank) broadcasting."""
    return y + jnp.asarray(bias, y.dtype).reshape((1,) * (y.ndim - 1) + (-1,))


def conv(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: arith.PaddingLike = "SAME",
    input_dilation: int | Sequence[int] = 1,
    kernel_dilation: int | Sequence[int] = 1,
    feature_group_count: int = 1,
    precision: Any = None,
    dtype: Any = None,
    preferred_element_type: Any = None,
) -> jax.Array:
    """N-d convolution (N = 1, 2, 3) with channels-last layouts.

    Args:
      x: input ``(*batch, *spatial, C_in)``; any number (>= 0) of batch dims.
      kernel: ``(*kernel_spatial, C_in // feature_group_count, C_out)``.
      bias: optional ``(C_out,)`` added to the output.
      strides: window strides, an int or one per spatial dim.
      padding: ``"SAME"``, ``"VALID"``, ``"CIRCULAR"``, an int, one int per dim,
        or one ``(low, high)`` pair per dim (see :mod:`compact_jax.arith`).
      input_dilation: dilation of the input (transposed convolution).
      kernel_dilation: dilation of the kernel (atrous convolution).
      feature_group_count: groups; ``C_in`` for depthwise.
      precision: passed to XLA (``None``, ``"highest"``, a ``lax.Precision``).
      dtype: computation dtype; by default the promoted dtype of ``x``,
        ``kernel`` and ``bias``.
      preferred_element_type: accumulation/result dtype passed to XLA.

    Returns:
      ``(*batch, *spatial_out, C_out)`` with ``spatial_out`` given by
      :func:`compact_jax.arith.output_shape`.
    """
    kshape = getattr(kernel, "shape", None)
    if kshape is None:
        raise TypeError(f"conv: kernel must be an array, got {type(kernel).__name__}")
    num_spatial = len(kshape) - 2
    if num_spatial not in _LAYOUTS:
        raise ValueError(
            f"conv: kernel must have rank 3, 4 or 5 ((*spatial, C_in/groups, C_out) for 1-3 "
            f"spatial dims), got shape {tuple(kshape)}"
        )
    groups = check_positive_int("feature_group_count", feature_group_count)
    in_per_group, features = kshape[-2], kshape[-1]
    if features % groups:
        raise ValueError(
            f"conv: kernel output channels ({features}) must be divisible by "
            f"feature_group_count ({groups})"
        )
    check_conv_input(x, num_spatial=num_spatial, in_features=in_per_group * groups)
    if bias is not None and tuple(bias.shape) != (features,):
        raise ValueError(f"conv: bias must have shape ({features},), got {tuple(bias.shape)}")

    kernel_size = tuple(kshape[:num_spatial])
    strides = check_int_tuple("strides", strides, ndim=num_spatial)
    input_dilation = check_int_tuple("input_dilation", input_dilation, ndim=num_spatial)
    kernel_dilation = check_int_tuple("kernel_dilation", kernel_dilation, ndim=num_spatial)
    spatial = tuple(x.shape[-num_spatial - 1 : -1])
    circular = isinstance(padding, str) and padding.upper() == "CIRCULAR"
    pads = arith.canonical_padding(
        padding,
        input_spatial=spatial,
        kernel_size=kernel_size,
        strides=strides,
        kernel_dilation=kernel_dilation,
    )

    if dtype is None:
        dtype = jnp.result_type(x, kernel, *(() if bias is None else (bias,)))
    x = jnp.asarray(x, dtype)
    kernel = jnp.asarray(kernel, dtype)

    batch_shape = x.shape[: -num_spatial - 1]
    x = x.reshape((-1,) + x.shape[-num_spatial - 1 :])
    if circular:
        x = jnp.pad(x, ((0, 0), *pads, (0, 0)), mode="wrap")
        pads = ((0, 0),) * num_spatial

    y = lax.conv_general_dilated(
        x,
        kernel,
        window_strides=strides,
        padding=pads,
        lhs_dilation=input_dilation,
        rhs_dilation=kernel_dilation,
        dimension_numbers=_LAYOUTS[num_spatial],
        feature_group_count=groups,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    if bias is not None:
        y = add_channel_bias(y, bias)
    return y.reshape(batch_shape + y.shape[1:])
