"""Pieces shared by the model zoo: the conv-factory call, norms, pooling, checks.

Every convolution of every model is created through :func:`conv_layer`, which
calls the model's ``conv`` factory with ``flax.linen.Conv``'s signature, so a
compact layer (``functools.partial(FilterMapConv, grid=...)``) can replace any
of them. Convolutions pad like PyTorch (``k // 2`` on both sides) rather than
XLA's ``"SAME"`` (which puts the extra pixel of a strided conv on the high
side), so that weights ported from the reference models give the same numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from compact_jax.models._pooling import max_pool_separable
from compact_jax.validate import check_positive_int

ModuleDef = Any

__all__ = [
    "ModuleDef",
    "batch_norm",
    "check_input",
    "conv_layer",
    "global_avg_pool",
    "max_pool",
    "check_positive_ints",
]


def conv_layer(
    conv: ModuleDef,
    features: int,
    kernel_size: Sequence[int],
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = None,
    use_bias: bool = False,
    feature_group_count: int = 1,
    dtype: Any = None,
    name: str,
) -> nn.Module:
    """Builds one convolution through the ``conv`` factory.

    Args:
      conv: a ``flax.linen.Conv``-compatible module class or partial.
      features: output channels.
      kernel_size: one size per spatial dimension, e.g. ``(3, 3)``.
      strides: an int (every spatial dim) or one per dim.
      padding: anything ``flax.linen.Conv`` accepts; default ``k // 2`` on both
        sides of each dim (PyTorch's ``padding=k // 2``).
      use_bias: whether the layer has a bias.
      feature_group_count: groups (``features`` for a depthwise conv).
      dtype: computation dtype.
      name: the layer's name (the last part of its parameter path).
    """
    kernel_size = tuple(kernel_size)
    if isinstance(strides, int):
        strides = (strides,) * len(kernel_size)
    if padding is None:
        padding = tuple((k // 2, k // 2) for k in kernel_size)
    return conv(
        features,
        kernel_size,
        strides=tuple(strides),
        padding=padding,
        use_bias=use_bias,
        feature_group_count=feature_group_count,
        dtype=dtype,
        name=name,
    )


def batch_norm(train: bool, dtype: Any) -> ModuleDef:
    """``nn.BatchNorm`` as in flax's ImageNet example (momentum 0.9, eps 1e-5).

    Two-pass variance (``E[(x - mean)^2]``, as PyTorch computes it): the fast
    ``E[x^2] - E[x]^2`` loses most of its precision on near-constant channels,
    which makes training depend on how the batch is split over devices.
    """
    return functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
        use_fast_variance=False,
    )


def global_avg_pool(x: jnp.ndarray) -> jnp.ndarray:
    """``(N, *spatial, C) -> (N, C)``."""
    return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))


def max_pool(x: jnp.ndarray, window: int, stride: int, pad: int) -> jnp.ndarray:
    """Max pooling over every spatial dim, padded with -inf like PyTorch's.

    Runs as one strided-slice maximum per axis (:mod:`._pooling`), whose
    gradient is much cheaper than differentiating ``lax.reduce_window``.
    """
    nd = x.ndim - 2
    return max_pool_separable(x, (window,) * nd, (stride,) * nd, (pad,) * nd)


def check_input(x: Any, *, layout: str, channels: int | None, where: str) -> None:
    """Raises unless ``x`` is an array of layout ``layout`` (e.g. ``"NHWC"``).

    Args:
      x: the model input.
      layout: one letter per axis; the rank is ``len(layout)``.
      channels: required size of the last axis, or None for any.
      where: model name for the message.
    """
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"{where}: input must be an array of shape {layout}, got {type(x).__name__}")
    if len(shape) != len(layout):
        raise ValueError(
            f"{where}: input must have rank {len(layout)} ({layout}, channels last), "
            f"got shape {tuple(shape)}"
        )
    if channels is not None and shape[-1] != channels:
        raise ValueError(f"{where}: input must have {channels} channels (last axis), got shape {tuple(shape)}")


def check_positive_ints(name: str, values: Sequence[int]) -> tuple[int, ...]:
    """Validates a non-empty sequence of positive ints such as stage sizes."""
    if isinstance(values, (int, str)) or not isinstance(values, Sequence) or not values:
        raise TypeError(f"{name} must be a non-empty sequence of positive integers, got {values!r}")
    return tuple(check_positive_int(f"{name}[{i}]", v) for i, v in enumerate(values))

