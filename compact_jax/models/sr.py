"""Single-image super-resolution: EDSR (Lim et al., 2017) and SRResNet (Ledig et al., 2017).

Inputs ``(N, H, W, num_channels)`` -> outputs ``(N, scale*H, scale*W, num_channels)``.
The upsampler is EDSR's: for a power-of-two scale, log2(scale) times
(3x3 conv to 4x channels, pixel shuffle by 2); for scale 3, one 3x3 conv to 9x
channels and a pixel shuffle by 3. Pixel shuffle follows PyTorch's channel
order, so ported weights give the same images.

* ``EDSR``: 32 residual blocks x 256 features, residual scale 0.1, no BN;
  43,089,923 parameters at x4 (the paper's 43M), 40,729,603 at x2. The input
  is shifted by the DIV2K mean (``rgb_mean``, in the input's units) and the
  mean added back at the end, as in the reference code.
* ``EDSR8x128``: the filter-basis paper's "EDSR-8-128": 8 blocks x 128, residual
  scale 1 (the authors' training script); 294,912 weights per residual block.
* ``SRResNet``: 16 blocks x 64, each conv-BN-PReLU-conv-BN; 9x9 head and tail
  convs; upsampler with PReLU after each shuffle; 1,549,462 parameters at x4
  (the filter-basis paper's "1.5M"). Each PReLU learns one slope (PyTorch's
  ``nn.PReLU()``, initialised at 0.25).

Parameter paths: ``head, block0/conv1, block0/conv2, ..., body_conv,
upsample/conv0, tail`` (SRResNet adds ``head_act, block0/bn1, block0/act,
block0/bn2, body_bn, upsample/act0``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from compact_jax.validate import check_positive_int
from compact_jax.models._common import ModuleDef, batch_norm, check_input, conv_layer

__all__ = ["pixel_shuffle", "Upsampler", "EDSR", "EDSR8x128", "SRResNet", "DIV2K_RGB_MEAN"]

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
_prelu = functools.partial(nn.PReLU, negative_slope_init=0.25)


def pixel_shuffle(x: jnp.ndarray, scale: int) -> jnp.ndarray:
    """PyTorch's ``pixel_shuffle`` in channels-last layout.

    Input channel ``c * scale**2 + i * scale + j`` goes to output channel ``c``
    at pixel ``(h * scale + i, w * scale + j)``.

    Args:
      x: ``(N, H, W, C * scale**2)``.
      scale: upscaling factor.

    Returns:
      ``(N, H * scale, W * scale, C)``.
    """
    n, h, w, c = x.shape
    if c % (scale * scale):
        raise ValueError(f"pixel_shuffle: channels {c} not divisible by scale**2 = {scale * scale}")
    x = x.reshape(n, h, w, c // (scale * scale), scale, scale)
    x = x.transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(n, h * scale, w * scale, c // (scale * scale))


def _check_scale(scale: Any) -> int:
    scale = check_positive_int("scale", scale)
    if scale != 3 and (scale < 2 or scale & (scale - 1)):
        raise ValueError(f"scale must be 3 or a power of two >= 2, got {scale}")
    return scale


class Upsampler(nn.Module):
    """``(N, H, W, features) -> (N, scale*H, scale*W, features)``; convs ``conv0, conv1, ...``."""

    scale: int
    features: int
    prelu: bool = False
    conv: ModuleDef = nn.Conv
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        factors = [3] if self.scale == 3 else [2] * int(math.log2(self.scale))
        for i, r in enumerate(factors):
            x = conv_layer(self.conv, r * r * self.features, (3, 3), use_bias=True, dtype=self.dtype,
                           name=f"conv{i}")(x)
            x = pixel_shuffle(x, r)
            if self.prelu:
                x = _prelu(name=f"act{i}")(x)
        return x


class _SRBase(nn.Module):
    """Shared fields and checks of the super-resolution networks."""

    scale: int = 4
    num_blocks: int = 16
    features: int = 64
    num_channels: int = 3
    conv: ModuleDef = nn.Conv
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        _check_scale(self.scale)
        check_positive_int("num_blocks", self.num_blocks)
        check_positive_int("features", self.features)
        check_positive_int("num_channels", self.num_channels)

    def _conv(self, features: int, k: int, name: str) -> nn.Module:
        return conv_layer(self.conv, features, (k, k), use_bias=True, dtype=self.dtype, name=name)

    def _check(self, x: Any) -> None:
        check_input(x, layout="NHWC", channels=self.num_channels, where=type(self).__name__)


class _EDSRBlock(nn.Module):
    features: int
    res_scale: float
    conv: ModuleDef
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        y = conv_layer(self.conv, self.features, (3, 3), use_bias=True, dtype=self.dtype, name="conv1")(x)
        y = conv_layer(self.conv, self.features, (3, 3), use_bias=True, dtype=self.dtype,
                       name="conv2")(nn.relu(y))
        return x + self.res_scale * y


class EDSR(_SRBase):
    """Enhanced deep residual network (no batch norm; ``train`` changes nothing).

    Attributes:
      scale: upscaling factor (2, 3, 4, 8, ...).
      num_blocks, features: residual blocks and their width.
      res_scale: residual scaling inside each block.
      rgb_mean: per-channel mean subtracted from the input and added to the
        output, or None.
      num_channels: image channels in and out.
      conv: convolution factory with ``flax.linen.Conv``'s signature.
      dtype: computation dtype.
    """

    num_blocks: int = 32
    features: int = 256
    res_scale: float = 0.1
    rgb_mean: Sequence[float] | None = DIV2K_RGB_MEAN

    def __post_init__(self):
        super().__post_init__()
        if self.rgb_mean is not None and len(self.rgb_mean) != self.num_channels:
            raise ValueError(
                f"rgb_mean must have num_channels={self.num_channels} entries, got {self.rgb_mean!r}"
            )

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        del train  # no batch norm or dropout
        self._check(x)
        mean = 0.0
        if self.rgb_mean is not None:
            mean = jnp.asarray(self.rgb_mean, x.dtype).reshape((1, 1, 1, self.num_channels))
        x = self._conv(self.features, 3, "head")(x - mean)
        y = x
        for i in range(self.num_blocks):
            y = _EDSRBlock(self.features, self.res_scale, self.conv, self.dtype, name=f"block{i}")(y)
        x = x + self._conv(self.features, 3, "body_conv")(y)
        x = Upsampler(self.scale, self.features, conv=self.conv, dtype=self.dtype, name="upsample")(x)
        return self._conv(self.num_channels, 3, "tail")(x) + mean


EDSR8x128 = functools.partial(EDSR, num_blocks=8, features=128, res_scale=1.0)


class _SRResBlock(nn.Module):
    features: int
    conv: ModuleDef
    norm: ModuleDef
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        y = conv_layer(self.conv, self.features, (3, 3), use_bias=True, dtype=self.dtype, name="conv1")(x)
        y = _prelu(name="act")(self.norm(name="bn1")(y))
        y = conv_layer(self.conv, self.features, (3, 3), use_bias=True, dtype=self.dtype, name="conv2")(y)
        return x + self.norm(name="bn2")(y)


class SRResNet(_SRBase):
    """SRResNet (the SRGAN generator): 16 blocks x 64 with BN and PReLU, x4 by default."""

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        self._check(x)
        norm = batch_norm(train, self.dtype)
        x = _prelu(name="head_act")(self._conv(self.features, 9, "head")(x))
        y = x
        for i in range(self.num_blocks):
            y = _SRResBlock(self.features, self.conv, norm, self.dtype, name=f"block{i}")(y)
        x = x + norm(name="body_bn")(self._conv(self.features, 3, "body_conv")(y))
        x = Upsampler(self.scale, self.features, prelu=True, conv=self.conv, dtype=self.dtype,
                      name="upsample")(x)
        return self._conv(self.num_channels, 9, "tail")(x)
