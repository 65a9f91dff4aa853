"""Fake quantisers with straight-through gradients.

Each quantiser rounds an array to a low-precision format and returns it in the
input's dtype; its derivative is the identity (straight-through estimator), so
it can sit on a generated kernel, on compact parameters or on activations.
:func:`quantize_mantissa` is the ApproxConv authors' floating-point format,
:func:`quantize_int` symmetric uniform int-k; :class:`Quantizer` is a
validated, hashable spec of either and :func:`quantize_tree` maps one over the
float leaves of a pytree.

  >>> Quantizer(kind="mantissa", bits=4)(jnp.array([0.3, 1.7]))
  Array([0.3125, 1.75  ], dtype=float32)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from compact_jax.validate import check_choice, check_int

__all__ = ["Quantizer", "quantize_mantissa", "quantize_int", "quantize_tree"]

MAX_MANTISSA_BITS, MAX_INT_BITS = 24, 16  # q < 2**24 is exact in float32
MIN_EXPONENT, MAX_EXPONENT = -64, 63


def _check_bits(kind: str, bits: Any) -> int:
    bits = check_int("bits", bits)
    low, high = (1, MAX_MANTISSA_BITS) if kind == "mantissa" else (2, MAX_INT_BITS)
    if not low <= bits <= high:
        raise ValueError(f"bits must lie in [{low}, {high}] for the {kind} quantiser, got {bits}")
    return bits


def _as_float_array(x: Any, where: str) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{where} expects a floating-point array, got dtype {x.dtype}")
    return x


def _is_float_array(leaf: Any) -> bool:
    return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)


def _compute_dtype(dtype: Any) -> Any:
    """float64 stays; half precision is quantised in float32 (wider exponent range)."""
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def _pow2(n: jax.Array, dtype: Any) -> jax.Array:
    """Exact ``2.0 ** n`` for integer ``n`` in the normal range of ``dtype``."""
    info = jnp.finfo(dtype)
    int_dtype = jnp.int64 if dtype == jnp.float64 else jnp.int32
    biased = n.astype(int_dtype) + (info.maxexp - 1)
    return lax.bitcast_convert_type(biased << info.nmant, dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _straight_through(values_fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    return values_fn(x)


@_straight_through.defjvp
def _straight_through_jvp(values_fn, primals, tangents):
    (x,), (dx,) = primals, tangents
    return _straight_through(values_fn, x), dx


def _mantissa_values(x: jax.Array, *, bits: int) -> jax.Array:
    xc = x.astype(dtype := _compute_dtype(x.dtype))
    # frexp's exponent is floor(log2|x|) + 1, exactly (bit-level; no log of 0).
    exponent = jnp.where(jnp.isinf(xc), MAX_EXPONENT, jnp.frexp(xc)[1] - 1)  # inf saturates
    exponent = jnp.clip(exponent, MIN_EXPONENT, MAX_EXPONENT)
    q_max = 2.0**bits - 1
    q = jnp.clip(jnp.round(xc * _pow2(bits - 1 - exponent, dtype)), -q_max, q_max)
    return (q * _pow2(exponent - (bits - 1), dtype)).astype(x.dtype)


def quantize_mantissa(x: jax.Array, *, bits: int) -> jax.Array:
    r"""The ApproxConv authors' floating-point quantiser, straight-through gradient.

    Per element, with ``m = bits``:

    .. math::
       E = \mathrm{clip}(\lfloor \log_2 |x| \rfloor, -64, 63), \quad
       q = \mathrm{clip}(\mathrm{round}(x\, 2^{m-1-E}), -(2^m-1), 2^m-1), \quad
       \hat x = q\, 2^{E-(m-1)}.

    ``m`` counts the significand bits including the leading one, so ``m = 24``
    is lossless for float32 values in ``[2**-64, 2**64)``. Rounding is
    half-to-even (``jnp.round``, like the authors' ``torch.round``). A value
    that rounds up to ``2**m`` saturates at ``2**m - 1`` in its own binade
    instead of carrying into the next exponent (``-0.1234 -> -0.1171875`` at
    ``m = 4``). Zero maps to zero; ``|x| < 2**-64`` goes to the fixed grid
    ``2**(-64-(m-1))``; ``|x| >= 2**64`` and infinities saturate; NaN stays NaN.

    Args:
      x: floating-point array of any shape, e.g. a kernel ``(*k, C_in, C_out)``.
      bits: significand bits ``m`` in ``[1, 24]``.

    Returns:
      The quantised array, same shape and dtype; ``d out / d x = 1``. Exact: all
      scalings are by exactly constructed powers of two.
    """
    bits = _check_bits("mantissa", bits)
    x = _as_float_array(x, "quantize_mantissa")
    return _straight_through(functools.partial(_mantissa_values, bits=bits), x)


def _int_values(x: jax.Array, *, bits: int, axis: int | None) -> jax.Array:
    xc = x.astype(_compute_dtype(x.dtype))
    q_max = 2.0 ** (bits - 1) - 1
    reduce_axes = None if axis is None else tuple(a for a in range(x.ndim) if a != axis)
    # The scale comes from the finite values only: one inf or NaN must not turn
    # the whole tensor into NaN (inf / inf). Non-finite values are handled by
    # the clip below: +-inf saturate at +-q_max * scale, NaN stays NaN.
    finite_abs = jnp.where(jnp.isfinite(xc), jnp.abs(xc), 0.0)
    amax = jnp.max(finite_abs, axis=reduce_axes, keepdims=True)
    scale = jnp.where(amax > 0, amax / q_max, 1.0)  # all-zero tensor / channel -> zeros
    q = jnp.clip(jnp.round(xc / scale), -q_max, q_max)
    return (q * scale).astype(x.dtype)


def quantize_int(x: jax.Array, *, bits: int, axis: int | None = None) -> jax.Array:
    r"""Symmetric uniform int-k fake quantisation, straight-through gradient.

    .. math::
       s = \max|x| / (2^{k-1}-1), \quad \hat x = s\,\mathrm{clip}(\mathrm{round}(x / s), -(2^{k-1}-1), 2^{k-1}-1)

    with the max over the whole tensor (``axis=None``) or over everything but
    ``axis`` (one scale per channel, e.g. ``axis=-1`` for the output channels of
    an HWIO kernel). Rounding is half-to-even. An all-zero tensor or channel
    maps to zeros.

    Non-finite inputs: the scale is taken from the *finite* values only, so the
    finite entries are quantised as if the non-finite ones were absent;
    ``+inf`` / ``-inf`` saturate at ``+-max|finite x|`` (the largest level) and
    NaN stays NaN (a tensor or channel with no finite value uses scale 1, so
    its infinities become ``+-(2^{k-1}-1)``). The result is never NaN where
    the input is not. The scale is treated as a constant in the backward pass (as
    if wrapped in ``stop_gradient``): since it is taken from ``x`` itself no
    value falls outside the clip range, so the gradient is exactly the identity.

    Args:
      x: floating-point array, e.g. a kernel ``(*k, C_in, C_out)`` or
        activations ``(N, H, W, C)``.
      bits: ``k`` in ``[2, 16]``.
      axis: channel axis for per-channel scales, or None for one scale.

    Returns:
      The quantised array, same shape and dtype; ``d out / d x = 1``.
    """
    bits = _check_bits("int", bits)
    x = _as_float_array(x, "quantize_int")
    if axis is not None:
        axis = check_int("axis", axis)
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"axis {axis} is out of range for an input of shape {x.shape}")
        axis %= x.ndim
    return _straight_through(functools.partial(_int_values, bits=bits, axis=axis), x)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Quantizer:
    """``Quantizer(kind="int", bits=8, axis=-1)``: a hashable spec, callable on an array.

    Attributes:
      kind: ``"mantissa"`` or ``"int"``.
      bits: mantissa bits in ``[1, 24]`` or integer bits in ``[2, 16]``.
      axis: per-channel axis (``"int"`` only) or None for per tensor.
    """

    kind: str
    bits: int
    axis: int | None = None

    def __post_init__(self):
        check_choice("kind", self.kind, ("mantissa", "int"))
        object.__setattr__(self, "bits", _check_bits(self.kind, self.bits))
        if self.axis is not None:
            if self.kind == "mantissa":
                raise ValueError(f"axis applies to kind='int' only, got axis={self.axis!r} with kind='mantissa'")
            object.__setattr__(self, "axis", check_int("axis", self.axis))

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.kind == "mantissa":
            return quantize_mantissa(x, bits=self.bits)
        return quantize_int(x, bits=self.bits, axis=self.axis)


def quantize_tree(params: Any, quantizer: Quantizer | Callable[[jax.Array], jax.Array]) -> Any:
    """Applies ``quantizer`` to every floating-point array leaf of ``params``.

    Integer, boolean and non-array leaves are returned unchanged.

    Args:
      params: a pytree, e.g. ``{"coeffs": (C_out, C_in, n, n), "bias": (C_out,)}``.
      quantizer: a :class:`Quantizer` or any array -> array callable.
    """
    if not callable(quantizer):
        raise TypeError(f"quantizer must be a Quantizer or a callable, got {quantizer!r}")
    return jax.tree.map(lambda leaf: quantizer(leaf) if _is_float_array(leaf) else leaf, params)
