"""VGG-16 for CIFAR with batch norm and one classifier layer.

Thirteen 3x3 convs (with bias, as in PyTorch) each followed by BN and ReLU,
five 2x2 max pools, global average pool (a no-op on the 1x1 map of a 32x32
input), one linear layer 512->classes - the setting of the k-means and
filter-basis papers ("only one instead of three fully-connected layer").
14,728,266 parameters for 10 classes.

Parameter paths: ``conv0 ... conv12``, ``bn0 ... bn12``, ``classifier`` (the
filter-basis paper leaves ``conv0``-``conv2`` uncompressed).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from compact_jax.validate import check_positive_int
from compact_jax.models._common import (
    ModuleDef,
    batch_norm,
    check_input,
    conv_layer,
    global_avg_pool,
    max_pool,
)

__all__ = ["VGG", "VGG16Cifar", "VGG16_LAYERS"]

VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    """``(N, H, W, C) -> (N, num_classes)``.

    Attributes:
      layers: conv widths with ``"M"`` for a 2x2 max pool.
      num_classes: classifier outputs.
      use_bias: conv bias (PyTorch's default ``True``).
      conv: convolution factory with ``flax.linen.Conv``'s signature.
      dtype: computation dtype.
    """

    layers: Sequence[int | str] = VGG16_LAYERS
    num_classes: int = 10
    use_bias: bool = True
    conv: ModuleDef = nn.Conv
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        for i, item in enumerate(self.layers):
            if item != "M":
                check_positive_int(f"layers[{i}] (a width or 'M')", item)
        check_positive_int("num_classes", self.num_classes)

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        check_input(x, layout="NHWC", channels=None, where=type(self).__name__)
        norm = batch_norm(train, self.dtype)
        i = 0
        for item in self.layers:
            if item == "M":
                x = max_pool(x, 2, 2, 0)
                continue
            x = conv_layer(self.conv, item, (3, 3), use_bias=self.use_bias, dtype=self.dtype,
                           name=f"conv{i}")(x)
            x = nn.relu(norm(name=f"bn{i}")(x))
            i += 1
        x = global_avg_pool(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(x)


VGG16Cifar = functools.partial(VGG)
