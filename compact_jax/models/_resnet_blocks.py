"""Residual blocks for 2-D and 3-D ResNets (the rank comes from the input).

Parameter paths inside a block: ``conv1, bn1, conv2, bn2`` (and ``conv3, bn3``
for the bottleneck), plus ``proj_conv, proj_bn`` for a projection shortcut.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from compact_jax.models._common import ModuleDef, conv_layer

__all__ = ["BasicBlock", "Bottleneck", "ResNetStage", "zero_pad_shortcut", "SHORTCUTS"]

SHORTCUTS = ("A", "B")


def zero_pad_shortcut(x: jnp.ndarray, features: int, strides: int) -> jnp.ndarray:
    """He et al.'s option A: strided identity with zero channels (no parameters).

    Keeps every ``strides``-th position along each spatial dim (the size of a
    padded 3x3 conv's output) and pads the channels with zeros, half before and
    half after, as the widely used CIFAR ResNet code does.

    Args:
      x: ``(N, *spatial, C)`` with ``C <= features``.
      features: output channels.
      strides: spatial stride.

    Returns:
      ``(N, *ceil(spatial / strides), features)``.
    """
    index = (slice(None),) + (slice(None, None, strides),) * (x.ndim - 2) + (slice(None),)
    x = x[index]
    extra = features - x.shape[-1]
    if extra < 0:
        raise ValueError(f"option-A shortcut cannot reduce channels {x.shape[-1]} -> {features}")
    pad = [(0, 0)] * (x.ndim - 1) + [(extra // 2, extra - extra // 2)]
    return jnp.pad(x, pad)


class _Block(nn.Module):
    """Shared fields and shortcut of the two residual blocks."""

    features: int
    strides: int = 1
    shortcut: str = "B"
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    dtype: Any = jnp.float32

    expansion = 1

    def _conv(self, features: int, k: int, name: str, strides: int = 1, *, nd: int):
        return conv_layer(self.conv, features, (k,) * nd, strides=strides, dtype=self.dtype, name=name)

    def _shortcut(self, x: jnp.ndarray) -> jnp.ndarray:
        out = self.features * self.expansion
        if self.strides == 1 and x.shape[-1] == out:
            return x
        if self.shortcut == "A":
            return zero_pad_shortcut(x, out, self.strides)
        x = self._conv(out, 1, "proj_conv", self.strides, nd=x.ndim - 2)(x)
        return self.norm(name="proj_bn")(x)


class BasicBlock(_Block):
    """Two 3x3 (3x3x3) convs: ``(N, *S, C) -> (N, *S/strides, features)``."""

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        nd = x.ndim - 2
        y = self._conv(self.features, 3, "conv1", self.strides, nd=nd)(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self._conv(self.features, 3, "conv2", nd=nd)(y)
        y = self.norm(name="bn2")(y)
        return nn.relu(y + self._shortcut(x))


class Bottleneck(_Block):
    """1x1 -> 3x3 (strided) -> 1x1 x4: ``(N, *S, C) -> (N, *S/strides, 4 * features)``."""

    expansion = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        nd = x.ndim - 2
        y = self._conv(self.features, 1, "conv1", nd=nd)(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self._conv(self.features, 3, "conv2", self.strides, nd=nd)(y)
        y = nn.relu(self.norm(name="bn2")(y))
        y = self._conv(self.features * 4, 1, "conv3", nd=nd)(y)
        y = self.norm(name="bn3")(y)
        return nn.relu(y + self._shortcut(x))


class ResNetStage(nn.Module):
    """``num_blocks`` blocks named ``block0, block1, ...``; the first one strides."""

    block: type[_Block]
    num_blocks: int
    features: int
    strides: int
    shortcut: str
    conv: ModuleDef
    norm: ModuleDef
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for i in range(self.num_blocks):
            x = self.block(
                self.features,
                strides=self.strides if i == 0 else 1,
                shortcut=self.shortcut,
                conv=self.conv,
                norm=self.norm,
                dtype=self.dtype,
                name=f"block{i}",
            )(x)
        return x
