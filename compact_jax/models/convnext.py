"""ConvNeXt (Liu et al., 2022) in torchvision's layout.

Stem: 4x4 stride-4 conv + LayerNorm. Stage i > 1 starts with LayerNorm + 2x2
stride-2 conv. Block: 7x7 depthwise conv (with bias) -> LayerNorm -> Dense 4x
-> GELU (exact) -> Dense -> layer scale ``gamma`` -> drop path -> residual add.
Head: global average pool -> LayerNorm -> Dense. LayerNorm epsilon 1e-6.

``ConvNeXtTiny`` (depths 3-3-9-3, dims 96-192-384-768) has 28,589,128
parameters for 1000 classes (torchvision's ``convnext_tiny``). Its 7x7
depthwise convs - the ones the ApproxConv paper compresses - hold 324,576
weights (331,200 with bias). All convs (stem, downsampling, depthwise) go
through the ``conv`` factory; the pointwise layers are ``nn.Dense``.

Parameter paths: ``stem_conv, stem_norm, stage1/block0/dwconv, .../norm,
.../pwconv1, .../pwconv2, .../gamma, stage2/downsample_norm,
stage2/downsample_conv, head_norm, classifier``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from compact_jax.validate import check_fraction, check_positive_int
from compact_jax.models._common import ModuleDef, check_input, check_positive_ints, conv_layer, global_avg_pool

__all__ = ["ConvNeXt", "ConvNeXtTiny"]

_layer_norm = functools.partial(nn.LayerNorm, epsilon=1e-6)


class ConvNeXtBlock(nn.Module):
    """``(N, H, W, dim) -> (N, H, W, dim)``; drop path needs the ``"dropout"`` rng."""

    dim: int
    drop_path: float
    layer_scale_init: float
    conv: ModuleDef
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        y = conv_layer(self.conv, self.dim, (7, 7), use_bias=True, feature_group_count=self.dim,
                       dtype=self.dtype, name="dwconv")(x)
        y = _layer_norm(dtype=self.dtype, name="norm")(y)
        y = nn.Dense(4 * self.dim, dtype=self.dtype, name="pwconv1")(y)
        y = nn.gelu(y, approximate=False)
        y = nn.Dense(self.dim, dtype=self.dtype, name="pwconv2")(y)
        gamma = self.param("gamma", nn.initializers.constant(self.layer_scale_init), (self.dim,))
        y = y * gamma.reshape((1,) * (y.ndim - 1) + (self.dim,))
        if train and self.drop_path > 0.0:
            keep = 1.0 - self.drop_path
            mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
            y = jnp.where(mask, y / keep, 0.0)
        return x + y


class ConvNeXt(nn.Module):
    """``(N, H, W, C) -> (N, num_classes)``.

    Attributes:
      depths: blocks per stage.
      dims: channels per stage.
      num_classes: classifier outputs.
      layer_scale_init: initial value of the per-channel layer scale.
      drop_path_rate: stochastic depth, growing linearly to this rate over the
        blocks (torchvision trains ``convnext_tiny`` with 0.1); active only
        with ``train=True`` and then needs a ``"dropout"`` rng.
      conv: convolution factory with ``flax.linen.Conv``'s signature.
      dtype: computation dtype.
    """

    depths: Sequence[int] = (3, 3, 9, 3)
    dims: Sequence[int] = (96, 192, 384, 768)
    num_classes: int = 1000
    layer_scale_init: float = 1e-6
    drop_path_rate: float = 0.0
    conv: ModuleDef = nn.Conv
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        depths = check_positive_ints("depths", self.depths)
        dims = check_positive_ints("dims", self.dims)
        if len(depths) != len(dims):
            raise ValueError(f"depths {depths} and dims {dims} must have the same length")
        check_positive_int("num_classes", self.num_classes)
        check_fraction("drop_path_rate", self.drop_path_rate)

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        check_input(x, layout="NHWC", channels=None, where=type(self).__name__)
        total = sum(self.depths)
        block_id = 0
        for i, (depth, dim) in enumerate(zip(self.depths, self.dims)):
            if i == 0:
                x = conv_layer(self.conv, dim, (4, 4), strides=4, padding="VALID", use_bias=True,
                               dtype=self.dtype, name="stem_conv")(x)
                x = _layer_norm(dtype=self.dtype, name="stem_norm")(x)
            x = _ConvNeXtStage(
                depth=depth,
                dim=dim,
                downsample=i > 0,
                drop_paths=tuple(
                    self.drop_path_rate * (block_id + j) / max(total - 1, 1) for j in range(depth)
                ),
                layer_scale_init=self.layer_scale_init,
                conv=self.conv,
                dtype=self.dtype,
                name=f"stage{i + 1}",
            )(x, train=train)
            block_id += depth
        x = global_avg_pool(x)
        x = _layer_norm(dtype=self.dtype, name="head_norm")(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(x)


class _ConvNeXtStage(nn.Module):
    depth: int
    dim: int
    downsample: bool
    drop_paths: Sequence[float]
    layer_scale_init: float
    conv: ModuleDef
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        if self.downsample:
            x = _layer_norm(dtype=self.dtype, name="downsample_norm")(x)
            x = conv_layer(self.conv, self.dim, (2, 2), strides=2, padding="VALID", use_bias=True,
                           dtype=self.dtype, name="downsample_conv")(x)
        for j in range(self.depth):
            x = ConvNeXtBlock(self.dim, self.drop_paths[j], self.layer_scale_init, self.conv,
                              self.dtype, name=f"block{j}")(x, train=train)
        return x


ConvNeXtTiny = functools.partial(ConvNeXt)
