"""Learning Filter Basis: the two execution paths and the choice between them.

Private helper of :mod:`compact_jax.basis`.

* reconstruct: ``conv(x, build_kernel(params)) + build_bias(params)``, one
  dense conv with the ``(kh, kw, c, n)`` kernel.
* decomposed (the paper's Fig. 2): fold the ``s`` input splits into the batch
  axis, ``(N, H, W, s*p) -> (N*s, H, W, p)``, convolve once with the shared
  ``(kh, kw, p, m)`` basis (plus the basis bias), then combine the ``s*m``
  responses with the coefficients: an einsum for a 1x1 coefficient conv
  (no transpose back needed), a conv over the split-major ``(N, H', W', s*m)``
  responses otherwise.

The decomposed path pads ``m`` up to a multiple of :data:`BASIS_PAD_MULTIPLE`
with zero basis filters (and zero coefficients): the result is exact and XLA's
CPU convs run much faster on channel counts that are multiples of 8 (a 3x3
128 -> 27 conv is slower than 128 -> 32).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from compact_jax import arith
from compact_jax.basis._spec import (
    BasisSpec,
    build_bias,
    build_kernel,
    check_params,
    layer_basis,
    split_coef,
)
from compact_jax.conv import check_conv_input, conv, platform_of

__all__ = [
    "AUTO_MAC_RATIO",
    "AUTO_MAC_RATIOS",
    "auto_mac_ratio",
    "BASIS_PAD_MULTIPLE",
    "padded_num_basis",
    "path_macs",
    "choose_path",
    "apply",
    "decomposed",
    "basis_conv",
    "coef_conv",
]

# "auto" takes the decomposed path when its multiply-adds are below this
# fraction of the reconstruct path's, per platform (a cost model calibrated per
# backend). CPU, measured on a 2-core CPU with compact_jax.bench.basis_paths
# (EDSR-8-128 and ResNet-18-CIFAR shapes): the decomposed path is clearly
# faster up to a 0.56 MAC ratio (0.5-0.8x of dense time), about even around
# 0.83 and slower at 1.1. GPU (one NVIDIA H200, float32, cuDNN): the decomposed
# path was slower than the dense conv at every ResNet-18-CIFAR and EDSR-8-128
# layer (forward 1.07-1.75x dense time at MAC ratios 0.23-0.56), its two
# small convs and the split fold costing more than the MACs they save; it is
# taken there only far below those ratios. Other accelerators (TPU) are not
# measured and use the GPU threshold.
AUTO_MAC_RATIOS = {"cpu": 0.75, "gpu": 0.1, "cuda": 0.1, "rocm": 0.1}
AUTO_MAC_RATIO_DEFAULT = 0.1
AUTO_MAC_RATIO = AUTO_MAC_RATIOS["cpu"]
BASIS_PAD_MULTIPLE = 8


def padded_num_basis(num_basis: int, multiple: int = BASIS_PAD_MULTIPLE) -> int:
    """Basis filters the decomposed path computes: ``m`` rounded up to ``multiple``."""
    return -(-num_basis // multiple) * multiple


def _output_positions(x_shape: Sequence[int], spec: BasisSpec, conv_kwargs: dict) -> int:
    out = arith.output_shape(
        tuple(x_shape[-3:-1]),
        spec.kernel_size,
        strides=conv_kwargs.get("strides", 1),
        padding=conv_kwargs.get("padding", "SAME"),
        kernel_dilation=conv_kwargs.get("kernel_dilation", 1),
        input_dilation=conv_kwargs.get("input_dilation", 1),
    )
    return math.prod(x_shape[:-3]) * math.prod(out)


def path_macs(spec: BasisSpec, x_shape: Sequence[int], **conv_kwargs: Any) -> dict[str, int]:
    """Multiply-adds of each path for an input of shape ``x_shape``.

    ``reconstruct = n*c*kh*kw*m (kernel) + N*H'*W' * n*c*kh*kw`` and
    ``decomposed = N*H'*W' * (s*m'*p*kh*kw + n*s*m'*kch*kcw)`` with ``m'`` the
    padded basis count (the work actually done; ``m' = m`` in the paper's
    count). Padded output positions count, as in the papers' FLOP tables.
    """
    positions = _output_positions(x_shape, spec, conv_kwargs)
    (kh, kw), (kch, kcw) = spec.kernel_size, spec.coef_kernel_size
    s, p, n, c = spec.splits, spec.split_size, spec.features, spec.in_features
    m_pad = padded_num_basis(spec.num_basis)
    dense_per_position = n * c * kh * kw
    return {
        "reconstruct": dense_per_position * spec.num_basis + positions * dense_per_position,
        "decomposed": positions * (s * m_pad * p * kh * kw + n * s * m_pad * kch * kcw),
        "dense": positions * dense_per_position,
    }


def auto_mac_ratio(platform: str | None = None) -> float:
    """The decomposed/reconstruct MAC ratio below which ``"auto"`` decomposes on ``platform``.

    ``platform`` defaults to JAX's default backend; see :data:`AUTO_MAC_RATIOS`.
    """
    platform = jax.default_backend() if platform is None else platform
    return AUTO_MAC_RATIOS.get(platform, AUTO_MAC_RATIO_DEFAULT)


def choose_path(
    spec: BasisSpec, x_shape: Sequence[int], *, platform: str | None = None, **conv_kwargs: Any
) -> str:
    """The path :func:`apply` takes: ``spec.execution_path`` unless it is ``"auto"``.

    ``"auto"`` picks ``"decomposed"`` for a coefficient kernel larger than 1x1
    (no single-kernel form) and otherwise when its multiply-adds are below
    :func:`auto_mac_ratio` ``(platform)`` times the reconstruct path's: a
    per-backend cost model (0.75 on CPU, 0.1 on GPUs, where the dense cuDNN
    conv wins at the papers' settings). The choice depends only on static
    shapes and the platform, so it is made once at trace time and is the same
    on every call inside ``jit``; set ``spec.execution_path`` to force a path.

    Args:
      spec: the layer.
      x_shape: the input's shape.
      platform: where it runs (default: JAX's default backend;
        :func:`apply` passes the input's platform).
      conv_kwargs: strides, padding, dilations of the call.
    """
    if spec.execution_path != "auto":
        return spec.execution_path
    if spec.coef_kernel_size != (1, 1):
        return "decomposed"
    macs = path_macs(spec, x_shape, **conv_kwargs)
    threshold = auto_mac_ratio(platform)
    return "decomposed" if macs["decomposed"] < threshold * macs["reconstruct"] else "reconstruct"


def _coef_padding(padding: Any) -> str:
    """The coefficient conv's padding: the layer's if named, else ``"SAME"``."""
    if isinstance(padding, str) and padding.upper() in arith.PADDING_NAMES:
        return padding.upper()
    return "SAME"


def _basis_responses(
    params: dict, x: jax.Array, spec: BasisSpec, conv_kwargs: dict, *, num_basis: int
) -> jax.Array:
    """Basis conv of every split: ``(N, H, W, s*p) -> (N, s, H', W', num_basis)``.

    ``num_basis >= m``; the extra filters are zero (exact, faster on XLA CPU).
    """
    n_batch, height, width, _ = x.shape
    s, p, m = spec.splits, spec.split_size, spec.num_basis
    basis = layer_basis(params["basis"], spec)
    bias = params.get("basis_bias")
    if num_basis > m:
        basis = jnp.pad(basis, ((0, 0), (0, 0), (0, 0), (0, num_basis - m)))
        bias = None if bias is None else jnp.pad(bias, (0, num_basis - m))
    splits = x.reshape(n_batch, height, width, s, p)
    splits = jnp.moveaxis(splits, 3, 1) if s > 1 else splits.reshape(n_batch, 1, height, width, p)
    return conv(splits, basis, bias, **conv_kwargs)


def _combine(
    responses: jax.Array, coef: jax.Array, spec: BasisSpec, *, padding: Any, precision: Any
) -> jax.Array:
    """Coefficient conv of ``(N, s, H', W', m')`` responses -> ``(N, H', W', n)``."""
    n_batch, s, height, width, m_pad = responses.shape
    coef = split_coef(coef, spec)  # (kch, kcw, s, m, n)
    if m_pad > spec.num_basis:
        coef = jnp.pad(coef, ((0, 0), (0, 0), (0, 0), (0, m_pad - spec.num_basis), (0, 0)))
    if spec.coef_kernel_size == (1, 1):
        return jnp.einsum("bghwj,gji->bhwi", responses, coef[0, 0], precision=precision)
    stacked = jnp.moveaxis(responses, 1, 3).reshape(n_batch, height, width, s * m_pad)
    kernel = coef.reshape(coef.shape[:2] + (s * m_pad, spec.features))
    return conv(stacked, kernel, padding=_coef_padding(padding), precision=precision)


def _check_call(params: dict, x: Any, spec: BasisSpec, feature_group_count: int, where: str) -> None:
    check_params(params, spec, where=where, batched=False)
    if feature_group_count != 1:
        raise ValueError(f"{where}: feature_group_count must be 1, got {feature_group_count}")
    check_conv_input(x, num_spatial=2, in_features=spec.in_features, where=where)


def apply(
    params: dict,
    x: jax.Array,
    spec: BasisSpec,
    *,
    strides: int | Sequence[int] = 1,
    padding: arith.PaddingLike = "SAME",
    input_dilation: int | Sequence[int] = 1,
    kernel_dilation: int | Sequence[int] = 1,
    feature_group_count: int = 1,
    precision: Any = None,
) -> jax.Array:
    """The layer's output by the path :func:`choose_path` picks (no conv bias).

    Args:
      params: ``{"basis": (kh, kw, P, m), "coef": (kch, kcw, s*m, n)
        (, "basis_bias": (m,))}``; use ``jax.vmap`` for a batch of sets.
      x: ``(*batch, H, W, in_features)``.
      spec: the layer's :class:`BasisSpec`.
      strides, padding, input_dilation, kernel_dilation, precision: as in
        :func:`compact_jax.conv.conv`, applied to the basis conv. A larger
        coefficient conv runs with stride 1 and the layer's padding if it is
        named (``"SAME"``, ``"VALID"``, ``"CIRCULAR"``), ``"SAME"`` otherwise.
      feature_group_count: must be 1.

    Returns:
      ``(*batch, H', W', features)``.
    """
    _check_call(params, x, spec, feature_group_count, "basis.apply")
    conv_kwargs = dict(
        strides=strides,
        padding=padding,
        input_dilation=input_dilation,
        kernel_dilation=kernel_dilation,
        precision=precision,
    )
    if choose_path(spec, x.shape, platform=platform_of(x), **conv_kwargs) == "reconstruct":
        kernel = build_kernel(params, spec, precision=precision)
        return conv(x, kernel, build_bias(params, spec, precision=precision), **conv_kwargs)
    return decomposed(params, x, spec, **conv_kwargs)


def decomposed(
    params: dict,
    x: jax.Array,
    spec: BasisSpec,
    *,
    pad_multiple: int = BASIS_PAD_MULTIPLE,
    padding: arith.PaddingLike = "SAME",
    precision: Any = None,
    **conv_kwargs: Any,
) -> jax.Array:
    """The decomposed path (unchecked; :func:`apply` checks and dispatches).

    ``pad_multiple``: round ``m`` up to a multiple of this with zero filters.
    """
    batch_shape = x.shape[:-3]
    x = x.reshape((-1,) + x.shape[-3:])
    m_pad = padded_num_basis(spec.num_basis, pad_multiple)
    conv_kwargs = dict(conv_kwargs, padding=padding, precision=precision)
    responses = _basis_responses(params, x, spec, conv_kwargs, num_basis=m_pad)
    y = _combine(responses, params["coef"], spec, padding=padding, precision=precision)
    return y.reshape(batch_shape + y.shape[1:])


def basis_conv(
    params: dict,
    x: jax.Array,
    spec: BasisSpec,
    *,
    strides: int | Sequence[int] = 1,
    padding: arith.PaddingLike = "SAME",
    input_dilation: int | Sequence[int] = 1,
    kernel_dilation: int | Sequence[int] = 1,
    precision: Any = None,
) -> jax.Array:
    """First stage alone: every split convolved with the basis (plus basis bias).

    For models that put a norm or activation between the two stages (the
    authors' SRResNet and DenseNet variants). ``coef_conv(basis_conv(x))``
    equals :func:`apply`.

    Returns:
      ``(*batch, H', W', s*m)`` with channel ``g*m + j`` the response of split
      ``g`` to basis filter ``j`` (split-major, the coefficient conv's order).
    """
    _check_call(params, x, spec, 1, "basis.basis_conv")
    batch_shape = x.shape[:-3]
    x = x.reshape((-1,) + x.shape[-3:])
    conv_kwargs = dict(
        strides=strides,
        padding=padding,
        input_dilation=input_dilation,
        kernel_dilation=kernel_dilation,
        precision=precision,
    )
    responses = _basis_responses(params, x, spec, conv_kwargs, num_basis=spec.num_basis)
    n_batch, s, height, width, m = responses.shape
    stacked = jnp.moveaxis(responses, 1, 3).reshape(n_batch, height, width, s * m)
    return stacked.reshape(batch_shape + stacked.shape[1:])


def coef_conv(
    params: dict,
    responses: jax.Array,
    spec: BasisSpec,
    *,
    padding: arith.PaddingLike = "SAME",
    precision: Any = None,
) -> jax.Array:
    """Second stage alone: ``(*batch, H', W', s*m) -> (*batch, H', W', features)``.

    ``padding`` is the layer's (a larger coefficient kernel uses it if named,
    ``"SAME"`` otherwise, with stride 1).
    """
    check_params(params, spec, where="basis.coef_conv", batched=False)
    check_conv_input(
        responses, num_spatial=2, in_features=spec.splits * spec.num_basis, where="basis.coef_conv"
    )
    batch_shape = responses.shape[:-3]
    n_batch = math.prod(batch_shape)
    height, width = responses.shape[-3:-1]
    split = responses.reshape(n_batch, height, width, spec.splits, spec.num_basis)
    y = _combine(jnp.moveaxis(split, 3, 1), params["coef"], spec, padding=padding, precision=precision)
    return y.reshape(batch_shape + y.shape[1:])
