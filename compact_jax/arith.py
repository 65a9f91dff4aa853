"""Convolution arithmetic: padding, output size, parameter and multiply-add counts.

Plain Python on static shapes, usable at trace time and in reports. The rules
are those of ``lax.conv_general_dilated`` so that :mod:`compact_jax.conv`,
which canonicalises padding here, and these counts can never disagree.

For one spatial dimension with input size ``n``, kernel size ``k``, stride
``s``, kernel dilation ``d``, input dilation ``u`` and padding ``(lo, hi)``::

    n_dilated   = (n - 1) * u + 1
    k_effective = (k - 1) * d + 1
    out         = floor((n_dilated + lo + hi - k_effective) / s) + 1

``"SAME"`` pads so that ``out = ceil(n / s)`` (the extra pixel, if any, goes
on the high side), ``"VALID"`` pads nothing, ``"CIRCULAR"`` pads like
``"SAME"`` but with wrapped-around values.

Example (the notes' 5x5 filter on a 32x32x3 image)::

    >>> output_size(32, 5, stride=1, padding="VALID")
    28
    >>> output_size(32, 5, stride=2, padding="VALID")
    14
    >>> conv_params((5, 5), in_channels=3, out_channels=1)
    76
    >>> dense_params((32, 32, 3), out_units=1)
    3073
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

from compact_jax.validate import check_int, check_int_tuple, check_positive_int

__all__ = [
    "PaddingLike",
    "PADDING_NAMES",
    "canonical_padding",
    "output_size",
    "output_shape",
    "conv_params",
    "dense_params",
    "conv_macs",
]

PaddingLike = Union[str, int, Sequence[int], Sequence[tuple[int, int]]]
PADDING_NAMES = ("SAME", "VALID", "CIRCULAR")


def _same_pads(n: int, k_eff: int, stride: int) -> tuple[int, int]:
    out = -(-n // stride)
    total = max((out - 1) * stride + k_eff - n, 0)
    return total // 2, total - total // 2


def canonical_padding(
    padding: PaddingLike,
    *,
    input_spatial: Sequence[int] | None,
    kernel_size: Sequence[int],
    strides: Sequence[int] | int = 1,
    kernel_dilation: Sequence[int] | int = 1,
) -> tuple[tuple[int, int], ...]:
    """Turns any padding spec into one ``(low, high)`` pair per spatial dim.

    Args:
      padding: ``"SAME"``, ``"VALID"`` or ``"CIRCULAR"`` (case-insensitive);
        an int (same padding on both sides of every dim); a sequence of ints
        (one symmetric padding per dim); or a sequence of ``(low, high)`` pairs.
      input_spatial: spatial input sizes; needed only for ``"SAME"`` and
        ``"CIRCULAR"``.
      kernel_size: spatial kernel sizes.
      strides: an int or one per spatial dim.
      kernel_dilation: an int or one per spatial dim.

    Returns:
      A tuple of ``(low, high)`` pairs, one per spatial dimension.
    """
    kernel_size = check_int_tuple("kernel_size", kernel_size, minimum=1, broadcast=False)
    ndim = len(kernel_size)
    strides = check_int_tuple("strides", strides, ndim=ndim, minimum=1)
    kernel_dilation = check_int_tuple("kernel_dilation", kernel_dilation, ndim=ndim, minimum=1)
    if isinstance(padding, str):
        name = padding.upper()
        if name not in PADDING_NAMES:
            raise ValueError(
                f"padding must be one of {list(PADDING_NAMES)}, an int or a sequence of "
                f"(low, high) pairs, got {padding!r}"
            )
        if name == "VALID":
            return ((0, 0),) * ndim
        if input_spatial is None:
            raise ValueError(f"padding {padding!r} needs the input's spatial sizes")
        input_spatial = check_int_tuple("input spatial shape", input_spatial, ndim=ndim, minimum=1)
        return tuple(
            _same_pads(n, (k - 1) * d + 1, s)
            for n, k, d, s in zip(input_spatial, kernel_size, kernel_dilation, strides)
        )
    if isinstance(padding, int) and not isinstance(padding, bool):
        p = check_int("padding", padding, minimum=0)
        return ((p, p),) * ndim
    if isinstance(padding, Sequence):
        items = tuple(padding)
        if len(items) != ndim:
            raise ValueError(
                f"padding must have one entry per spatial dimension ({ndim}), got {padding!r}"
            )
        pairs = []
        for item in items:
            if isinstance(item, int) and not isinstance(item, bool):
                pairs.append((item, item))
            elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
                lo, hi = check_int_tuple("padding pair", item, ndim=2, minimum=None)
                pairs.append((lo, hi))
            else:
                raise TypeError(
                    f"padding entries must be ints or (low, high) pairs, got {item!r} in {padding!r}"
                )
        return tuple(pairs)
    raise TypeError(
        f"padding must be a string, an int or a sequence of (low, high) pairs, got {padding!r}"
    )


def output_size(
    n: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: str | int | tuple[int, int] = "SAME",
    dilation: int = 1,
    input_dilation: int = 1,
) -> int:
    """Output length along one spatial dimension (see the module docstring)."""
    n = check_positive_int("input size", n)
    k = check_positive_int("kernel_size", kernel_size)
    s = check_positive_int("stride", stride)
    d = check_positive_int("dilation", dilation)
    u = check_positive_int("input_dilation", input_dilation)
    pad = padding if isinstance(padding, str) or isinstance(padding, int) else [tuple(padding)]
    ((lo, hi),) = canonical_padding(
        pad, input_spatial=(n,), kernel_size=(k,), strides=s, kernel_dilation=d
    )
    n_dilated = (n - 1) * u + 1
    k_eff = (k - 1) * d + 1
    span = n_dilated + lo + hi - k_eff
    return 0 if span < 0 else span // s + 1


def output_shape(
    input_spatial: Sequence[int],
    kernel_size: Sequence[int],
    *,
    strides: Sequence[int] | int = 1,
    padding: PaddingLike = "SAME",
    kernel_dilation: Sequence[int] | int = 1,
    input_dilation: Sequence[int] | int = 1,
) -> tuple[int, ...]:
    """Spatial output shape of an N-d convolution."""
    kernel_size = check_int_tuple("kernel_size", kernel_size, minimum=1, broadcast=False)
    ndim = len(kernel_size)
    input_spatial = check_int_tuple("input spatial shape", input_spatial, ndim=ndim, minimum=1)
    strides = check_int_tuple("strides", strides, ndim=ndim)
    kernel_dilation = check_int_tuple("kernel_dilation", kernel_dilation, ndim=ndim)
    input_dilation = check_int_tuple("input_dilation", input_dilation, ndim=ndim)
    pads = canonical_padding(
        padding,
        input_spatial=input_spatial,
        kernel_size=kernel_size,
        strides=strides,
        kernel_dilation=kernel_dilation,
    )
    return tuple(
        output_size(n, k, stride=s, padding=p, dilation=d, input_dilation=u)
        for n, k, s, p, d, u in zip(
            input_spatial, kernel_size, strides, pads, kernel_dilation, input_dilation
        )
    )


def conv_params(
    kernel_size: Sequence[int],
    *,
    in_channels: int,
    out_channels: int,
    feature_group_count: int = 1,
    use_bias: bool = True,
) -> int:
    """Learned values of a dense convolution: ``prod(k) * c_in / groups * c_out (+ c_out)``."""
    kernel_size = check_int_tuple("kernel_size", kernel_size, minimum=1, broadcast=False)
    c_in = check_positive_int("in_channels", in_channels)
    c_out = check_positive_int("out_channels", out_channels)
    g = check_positive_int("feature_group_count", feature_group_count)
    if c_in % g or c_out % g:
        raise ValueError(
            f"in_channels ({c_in}) and out_channels ({c_out}) must both be divisible by "
            f"feature_group_count ({g})"
        )
    return math.prod(kernel_size) * (c_in // g) * c_out + (c_out if use_bias else 0)


def dense_params(input_shape: Sequence[int], *, out_units: int, use_bias: bool = True) -> int:
    """Learned values of a fully connected layer over a flattened input."""
    input_shape = check_int_tuple("input_shape", input_shape, minimum=1, broadcast=False)
    units = check_positive_int("out_units", out_units)
    return math.prod(input_shape) * units + (units if use_bias else 0)


def conv_macs(
    output_spatial: Sequence[int],
    kernel_size: Sequence[int],
    *,
    in_channels: int,
    out_channels: int,
    feature_group_count: int = 1,
) -> int:
    """Multiply-accumulates of one convolution for one example.

    ``prod(output_spatial) * prod(kernel_size) * c_in / groups * c_out``; padded
    positions are counted (as every paper's FLOP table does).
    """
    output_spatial = check_int_tuple("output_spatial", output_spatial, minimum=0, broadcast=False)
    weights = conv_params(
        kernel_size,
        in_channels=in_channels,
        out_channels=out_channels,
        feature_group_count=feature_group_count,
        use_bias=False,
    )
    return math.prod(output_spatial) * weights
