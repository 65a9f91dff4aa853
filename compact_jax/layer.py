"""The forward pass shared by every Linen and NNX module.

Modules only own parameters; this function turns (method, params, spec,
input) into the layer output, so Linen and NNX give identical numbers by
construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp

from compact_jax import arith
from compact_jax.conv import add_channel_bias, check_conv_input, conv
from compact_jax.protocol import ConvSpec, Method

__all__ = ["layer_apply", "canonical_kernel_size", "method_class"]


def canonical_kernel_size(kernel_size: Any, *, where: str) -> tuple[int, ...]:
    """``flax.linen.Conv`` accepts an int for a 1-D kernel; so do we."""
    if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
        return (kernel_size,)
    if not isinstance(kernel_size, Sequence) or isinstance(kernel_size, str):
        raise TypeError(f"{where}: kernel_size must be an int or a sequence of ints, got {kernel_size!r}")
    return tuple(kernel_size)


def method_class(method: str | Method, *, base: type, named: dict[str, type], generated: dict[str, type]) -> type:
    """The module class (Linen or NNX, after ``base``) of a registered method.

    Args:
      method: a name, alias or record of :data:`compact_jax.METHODS`.
      base: the framework's ``CompactConv``.
      named: canonical name -> the hand-named class (``"cosine"`` -> ``CosConv``).
      generated: cache of classes generated from records, updated in place; a
        class is regenerated when its name is registered to another record.
    """
    from compact_jax.registry import get_method

    record = get_method(method)
    cls = named.get(record.name) or generated.get(record.name)
    if cls is None or cls.method is not record:
        name = "".join(part.capitalize() for part in record.name.split("_")) + "Conv"
        doc = f"{base.__module__} module of method {record.name!r}: {record.description}"
        cls = type(name, (base,), {"__module__": base.__module__, "__qualname__": name, "__doc__": doc},
                   method=record)
        generated[record.name] = cls
    return cls


def layer_apply(
    method: ModuleType | Method,
    params: dict,
    x: jax.Array,
    spec: ConvSpec,
    *,
    bias: jax.Array | None = None,
    strides: int | Sequence[int] | None = 1,
    padding: arith.PaddingLike = "SAME",
    input_dilation: int | Sequence[int] | None = 1,
    kernel_dilation: int | Sequence[int] | None = 1,
    precision: Any = None,
    dtype: Any = None,
    mask: Any = None,
    promote_dtype: Any = None,
    where: str = "layer",
) -> jax.Array:
    """Applies a compact layer: the method's direct path if it has one, else
    ``conv(x, build_kernel(params, spec))``; then the bias.

    Args:
      method: a method record or module (see :mod:`compact_jax.protocol`).
      params: the method's compact parameters.
      x: ``(*batch, *spatial, spec.in_features)`` with at least one batch dim
        (an unbatched input is refused: its rank is ambiguous).
      spec: the method's spec.
      bias: optional ``(spec.features,)``.
      strides, padding, input_dilation, kernel_dilation, precision: as in
        :func:`compact_jax.conv.conv`; ``None`` means 1.
      dtype: computation dtype; default promotes input and parameters.
      mask: optional array of ``spec.kernel_shape`` multiplied into the
        generated kernel (as ``flax.linen.Conv``'s ``mask``); the layer then
        runs as ``conv(x, build_kernel(params, spec) * mask)``, never the
        method's direct path.
      promote_dtype: ``flax.linen.Conv``'s hook,
        ``promote_dtype(x, *compact_params, bias, dtype=dtype, inexact=True)``
        -> the same arrays cast to the computation dtype; default
        :func:`flax.linen.dtypes.promote_dtype`.
      where: layer name for error messages.
    """
    check_conv_input(
        x, num_spatial=spec.num_spatial, in_features=spec.in_features, where=where, batched=True
    )
    if promote_dtype is None:
        from flax.linen.dtypes import promote_dtype
    leaves, treedef = jax.tree_util.tree_flatten(params)
    promoted = promote_dtype(x, *leaves, bias, dtype=dtype, inexact=True)
    if not isinstance(promoted, (list, tuple)) or len(promoted) != len(leaves) + 2:
        raise TypeError(
            f"{where}: promote_dtype must return one array per argument ({len(leaves) + 2}), got {type(promoted).__name__}"
        )
    x, *leaves, bias = promoted
    params = jax.tree_util.tree_unflatten(treedef, leaves)
    conv_kwargs = dict(
        strides=1 if strides is None else strides,
        padding=padding,
        input_dilation=1 if input_dilation is None else input_dilation,
        kernel_dilation=1 if kernel_dilation is None else kernel_dilation,
        feature_group_count=spec.feature_group_count,
        precision=precision,
    )
    direct = getattr(method, "apply", None)
    if mask is not None:
        try:
            kernel = method.build_kernel(params, spec, precision=precision)
        except ValueError as err:
            raise ValueError(f"{where}: mask needs the layer's single generated kernel: {err}") from None
        if tuple(getattr(mask, "shape", ())) != tuple(kernel.shape):
            raise ValueError(
                f"{where}: mask must have the generated kernel's shape {tuple(kernel.shape)} "
                f"(*kernel_size, C_in/groups, C_out), got {getattr(mask, 'shape', mask)!r}"
            )
        y = conv(x, kernel * jnp.asarray(mask, kernel.dtype), **conv_kwargs)
    elif direct is not None:
        y = direct(params, x, spec, **conv_kwargs)
    else:
        y = conv(x, method.build_kernel(params, spec, precision=precision), **conv_kwargs)
    if bias is not None:
        y = add_channel_bias(y, bias)
    return y
