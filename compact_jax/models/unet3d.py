"""A residual 3-D U-Net for volumetric segmentation (after Lee et al., 2017, the
backbone FDC3D compresses on BraTS).

Encoder level ``i`` (i > 0 starts with a 2x2x2 max pool) and decoder level
``i`` each hold a residual block: 3x3x3 conv-BN-ReLU, 3x3x3 conv-BN, plus the
input (through a 1x1x1 conv + BN when the channels change), ReLU. A decoder
level first upsamples x2 (nearest) and applies a 3x3x3 conv-BN-ReLU to the
level's width, then joins the encoder's skip (sum, as in Lee et al.'s residual
symmetric U-Net, or concatenation). A 1x1x1 conv gives per-voxel logits.
Every conv goes through the ``conv`` factory.

Parameter paths: ``encoder0/conv1, encoder0/conv2, encoder1/proj_conv, ...,
decoder0/up_conv, decoder0/conv1, ..., head``.

Example::

    model = ResUNet3D(widths=(16, 32, 64), num_classes=4)
    variables = model.init(key, jnp.zeros((1, 32, 32, 32, 4)), train=False)
    logits = model.apply(variables, volume, train=False)     # (1, 32, 32, 32, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from compact_jax.validate import check_choice, check_positive_int
from compact_jax.models._common import (
    ModuleDef,
    batch_norm,
    check_input,
    check_positive_ints,
    conv_layer,
    max_pool,
)

__all__ = ["ResUNet3D"]

_K3 = (3, 3, 3)


def _residual_block(x, features: int, conv: ModuleDef, norm: ModuleDef, dtype: Any):
    """Creates ``conv1, bn1, conv2, bn2 [, proj_conv, proj_bn]`` in the calling module."""
    y = nn.relu(norm(name="bn1")(conv_layer(conv, features, _K3, dtype=dtype, name="conv1")(x)))
    y = norm(name="bn2")(conv_layer(conv, features, _K3, dtype=dtype, name="conv2")(y))
    if x.shape[-1] != features:
        x = norm(name="proj_bn")(conv_layer(conv, features, (1, 1, 1), dtype=dtype, name="proj_conv")(x))
    return nn.relu(x + y)


class _Encoder(nn.Module):
    features: int
    pool: bool
    conv: ModuleDef
    norm: ModuleDef
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.pool:
            x = max_pool(x, 2, 2, 0)
        return _residual_block(x, self.features, self.conv, self.norm, self.dtype)


class _Decoder(nn.Module):
    features: int
    join: str
    conv: ModuleDef
    norm: ModuleDef
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray, skip: jnp.ndarray) -> jnp.ndarray:
        for axis in (1, 2, 3):
            x = jnp.repeat(x, 2, axis=axis)
        x = conv_layer(self.conv, self.features, _K3, dtype=self.dtype, name="up_conv")(x)
        x = nn.relu(self.norm(name="up_bn")(x))
        x = x + skip if self.join == "add" else jnp.concatenate([skip, x], axis=-1)
        return _residual_block(x, self.features, self.conv, self.norm, self.dtype)


class ResUNet3D(nn.Module):
    """``(N, D, H, W, C) -> (N, D, H, W, num_classes)`` logits.

    Attributes:
      widths: channels per level, shallowest first; ``len(widths) - 1``
        poolings, so D, H, W must be divisible by ``2 ** (len(widths) - 1)``.
      num_classes: output channels (logits per voxel).
      join: ``"add"`` (sum the skip) or ``"concat"``.
      conv: convolution factory with ``flax.linen.Conv``'s signature.
      dtype: computation dtype.
    """

    widths: Sequence[int] = (16, 32, 64, 128)
    num_classes: int = 2
    join: str = "add"
    conv: ModuleDef = nn.Conv
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        check_positive_ints("widths", self.widths)
        check_positive_int("num_classes", self.num_classes)
        check_choice("join", self.join, ("add", "concat"))

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        check_input(x, layout="NDHWC", channels=None, where=type(self).__name__)
        factor = 2 ** (len(self.widths) - 1)
        if any(n % factor for n in x.shape[1:4]):
            raise ValueError(
                f"ResUNet3D: spatial sizes {tuple(x.shape[1:4])} must be divisible by "
                f"2**(len(widths) - 1) = {factor}"
            )
        norm = batch_norm(train, self.dtype)
        skips = []
        for i, features in enumerate(self.widths):
            x = _Encoder(features, i > 0, self.conv, norm, self.dtype, name=f"encoder{i}")(x)
            skips.append(x)
        for i in reversed(range(len(self.widths) - 1)):
            x = _Decoder(self.widths[i], self.join, self.conv, norm, self.dtype, name=f"decoder{i}")(
                x, skips[i]
            )
        return conv_layer(self.conv, self.num_classes, (1, 1, 1), use_bias=True, dtype=self.dtype,
                          name="head")(x)
