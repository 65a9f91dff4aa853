"""DenseNets for CIFAR (Huang et al., 2017), pre-activation layers.

* ``DenseNet121Cifar``: growth 32, bottleneck layers (BN-ReLU-1x1 to
  4*growth, BN-ReLU-3x3 to growth), compression 0.5, blocks 6-12-24-16, stem
  one 3x3 conv to 2*growth channels, no max pool: 6,956,298 parameters for 10
  classes (the widely used PyTorch CIFAR definition; 3D-FilterMap paper: 7.0M).
* ``DenseNet40``: growth 12, three blocks of 12 plain layers (BN-ReLU-3x3), no
  compression, stem 3->16: 1,019,722 parameters for 10 classes. The
  filter-basis authors' DenseNet-12-40 uses a stem of 2*growth = 24 channels
  (``stem_features=24``: 1,059,298 parameters, of which 1,040,578 are conv
  and classifier weights - their "1041k" baseline).

Transitions: BN-ReLU-1x1 conv to ``floor(compression * C)`` channels, 2x2
average pool. New features are concatenated after the old ones. Head: BN, ReLU,
global average pool, linear.

Parameter paths: ``stem_conv, block1/layer0/bottleneck_conv, block1/layer0/conv,
transition1/conv, final_bn, classifier``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from compact_jax.validate import check_fraction, check_positive_int
from compact_jax.models._common import (
    ModuleDef,
    batch_norm,
    check_input,
    check_positive_ints,
    conv_layer,
    global_avg_pool,
)

__all__ = ["DenseNet", "DenseNet121Cifar", "DenseNet40"]


class DenseLayer(nn.Module):
    """``(N, H, W, C) -> (N, H, W, C + growth_rate)``."""

    growth_rate: int
    bottleneck: bool
    conv: ModuleDef
    norm: ModuleDef
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        y = x
        if self.bottleneck:
            y = nn.relu(self.norm(name="bottleneck_bn")(y))
            y = conv_layer(self.conv, 4 * self.growth_rate, (1, 1), dtype=self.dtype,
                           name="bottleneck_conv")(y)
        y = nn.relu(self.norm(name="bn")(y))
        y = conv_layer(self.conv, self.growth_rate, (3, 3), dtype=self.dtype, name="conv")(y)
        return jnp.concatenate([x, y], axis=-1)


class DenseBlock(nn.Module):
    """``num_layers`` dense layers named ``layer0, layer1, ...``."""

    num_layers: int
    growth_rate: int
    bottleneck: bool
    conv: ModuleDef
    norm: ModuleDef
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for i in range(self.num_layers):
            x = DenseLayer(self.growth_rate, self.bottleneck, self.conv, self.norm, self.dtype,
                           name=f"layer{i}")(x)
        return x


class Transition(nn.Module):
    """BN-ReLU-1x1 conv to ``features``, 2x2 average pool."""

    features: int
    conv: ModuleDef
    norm: ModuleDef
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = nn.relu(self.norm(name="bn")(x))
        x = conv_layer(self.conv, self.features, (1, 1), dtype=self.dtype, name="conv")(x)
        return nn.avg_pool(x, (2, 2), strides=(2, 2))


class DenseNet(nn.Module):
    """A CIFAR DenseNet: ``(N, H, W, C) -> (N, num_classes)``.

    Attributes:
      block_sizes: layers per dense block.
      growth_rate: channels added by each layer.
      bottleneck: 1x1 bottleneck to ``4 * growth_rate`` before each 3x3.
      compression: transition output channels = ``floor(compression * C)``.
      stem_features: channels of the 3x3 stem conv; default ``2 * growth_rate``.
      num_classes: classifier outputs.
      conv: convolution factory with ``flax.linen.Conv``'s signature.
      dtype: computation dtype.
    """

    block_sizes: Sequence[int] = (6, 12, 24, 16)
    growth_rate: int = 32
    bottleneck: bool = True
    compression: float = 0.5
    stem_features: int | None = None
    num_classes: int = 10
    conv: ModuleDef = nn.Conv
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        check_positive_ints("block_sizes", self.block_sizes)
        check_positive_int("growth_rate", self.growth_rate)
        check_positive_int("num_classes", self.num_classes)
        if self.stem_features is not None:
            check_positive_int("stem_features", self.stem_features)
        if check_fraction("compression", self.compression, upper_inclusive=True) == 0.0:
            raise ValueError(f"compression must lie in (0, 1], got {self.compression!r}")

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        check_input(x, layout="NHWC", channels=None, where=type(self).__name__)
        norm = batch_norm(train, self.dtype)
        stem = self.stem_features or 2 * self.growth_rate
        x = conv_layer(self.conv, stem, (3, 3), dtype=self.dtype, name="stem_conv")(x)
        for i, num_layers in enumerate(self.block_sizes):
            x = DenseBlock(num_layers, self.growth_rate, self.bottleneck, self.conv, norm, self.dtype,
                           name=f"block{i + 1}")(x)
            if i + 1 < len(self.block_sizes):
                features = int(math.floor(self.compression * x.shape[-1]))
                x = Transition(features, self.conv, norm, self.dtype, name=f"transition{i + 1}")(x)
        x = nn.relu(norm(name="final_bn")(x))
        x = global_avg_pool(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(x)


DenseNet121Cifar = functools.partial(DenseNet)
DenseNet40 = functools.partial(
    DenseNet,
    block_sizes=(12, 12, 12),
    growth_rate=12,
    bottleneck=False,
    compression=1.0,
    stem_features=16,
)
