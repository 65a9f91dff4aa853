"""ResNets for CIFAR and ImageNet, in 2-D or 3-D (the stem fixes the rank).

One module, :class:`ResNet`, covers every layout used by the papers:

* ``ResNet18Cifar / 34 / 50``: the widely used PyTorch CIFAR definitions
  (3x3 stem 3->64, no max pool, stages 64-128-256-512, projection shortcuts);
  11,173,962 / 21,282,122 / 23,520,842 parameters for 10 classes (3D-FilterMap
  paper, Table 2: 11.2M / 21.3M / 23.5M).
* ``ResNet20 / 32 / 56``: He et al. (2016) CIFAR ResNets, 16-32-64 channels,
  option-A shortcuts (no parameters). ResNet-32 has 464,154 parameters, of
  which 461,232 are convolution weights (stem included; no batch norm, no
  classifier) - the ApproxConv paper's 0.46M.
* ``ResNet18ImageNet``: torchvision's layout (7x7 stride-2 stem, max pool);
  11,689,512 parameters for 1000 classes.
* 3-D ResNets (Hara et al.) live in :mod:`compact_jax.models.resnet3d`.

Parameter paths: ``stem_conv, stem_bn, stage1/block0/conv1, ...,
stage4/block1/proj_conv, classifier``.

Example::

    model = ResNet20(num_classes=10)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    logits = model.apply(variables, images, train=False)      # (N, 10)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from compact_jax.validate import check_choice, check_int_tuple, check_positive_int
from compact_jax.models._common import (
    ModuleDef,
    batch_norm,
    check_input,
    check_positive_ints,
    conv_layer,
    global_avg_pool,
    max_pool,
)
from compact_jax.models._resnet_blocks import SHORTCUTS, BasicBlock, Bottleneck, ResNetStage

__all__ = [
    "ResNet",
    "ResNet18Cifar",
    "ResNet34Cifar",
    "ResNet50Cifar",
    "ResNet20",
    "ResNet32",
    "ResNet56",
    "ResNet18ImageNet",
]

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
_LAYOUTS = {2: "NHWC", 3: "NTHWC"}


class ResNet(nn.Module):
    """A residual network: stem, stages of residual blocks, global pool, classifier.

    Attributes:
      stage_sizes: blocks per stage, e.g. ``(2, 2, 2, 2)``.
      block: ``"basic"`` (two 3x3 convs) or ``"bottleneck"`` (1x1-3x3-1x1, x4).
      widths: channels of each stage (the bottleneck width for bottlenecks);
        scale them down for fast tests.
      stem_features: channels of the stem conv; default ``widths[0]``.
      stem_kernel: stem kernel size; its length is the number of spatial dims
        (2 for images, 3 for clips).
      stem_strides: stem strides, one per spatial dim.
      stem_pool: 3x3 (3x3x3) stride-2 max pool after the stem.
      shortcut: ``"B"`` projection (1x1 conv + BN) when the shape changes, or
        ``"A"`` strided identity with zero-padded channels.
      num_classes: classifier outputs.
      conv: convolution factory with ``flax.linen.Conv``'s signature.
      dtype: computation dtype.
    """

    stage_sizes: Sequence[int]
    block: str = "basic"
    widths: Sequence[int] = (64, 128, 256, 512)
    stem_features: int | None = None
    stem_kernel: Sequence[int] = (3, 3)
    stem_strides: Sequence[int] = (1, 1)
    stem_pool: bool = False
    shortcut: str = "B"
    num_classes: int = 10
    conv: ModuleDef = nn.Conv
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        sizes = check_positive_ints("stage_sizes", self.stage_sizes)
        widths = check_positive_ints("widths", self.widths)
        if len(sizes) != len(widths):
            raise ValueError(f"stage_sizes {sizes} and widths {widths} must have the same length")
        check_choice("block", self.block, tuple(BLOCKS))
        check_choice("shortcut", self.shortcut, SHORTCUTS)
        kernel = check_int_tuple("stem_kernel", self.stem_kernel, broadcast=False)
        check_int_tuple("stem_strides", self.stem_strides, ndim=len(kernel))
        check_positive_int("num_classes", self.num_classes)
        if self.stem_features is not None:
            check_positive_int("stem_features", self.stem_features)

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        """``(N, H, W, C)`` (or ``(N, T, H, W, C)`` for a 3-D stem) -> ``(N, num_classes)``."""
        layout = _LAYOUTS.get(len(self.stem_kernel), "N" + "S" * len(self.stem_kernel) + "C")
        check_input(x, layout=layout, channels=None, where=type(self).__name__)
        norm = batch_norm(train, self.dtype)
        x = conv_layer(
            self.conv,
            self.stem_features or self.widths[0],
            self.stem_kernel,
            strides=self.stem_strides,
            dtype=self.dtype,
            name="stem_conv",
        )(x)
        x = nn.relu(norm(name="stem_bn")(x))
        if self.stem_pool:
            x = max_pool(x, 3, 2, 1)
        for i, (num_blocks, features) in enumerate(zip(self.stage_sizes, self.widths)):
            x = ResNetStage(
                block=BLOCKS[self.block],
                num_blocks=num_blocks,
                features=features,
                strides=1 if i == 0 else 2,
                shortcut=self.shortcut,
                conv=self.conv,
                norm=norm,
                dtype=self.dtype,
                name=f"stage{i + 1}",
            )(x)
        x = global_avg_pool(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(x)


_cifar = functools.partial(ResNet, num_classes=10)
ResNet18Cifar = functools.partial(_cifar, stage_sizes=(2, 2, 2, 2), block="basic")
ResNet34Cifar = functools.partial(_cifar, stage_sizes=(3, 4, 6, 3), block="basic")
ResNet50Cifar = functools.partial(_cifar, stage_sizes=(3, 4, 6, 3), block="bottleneck")

_he_cifar = functools.partial(_cifar, block="basic", widths=(16, 32, 64), shortcut="A")
ResNet20 = functools.partial(_he_cifar, stage_sizes=(3, 3, 3))
ResNet32 = functools.partial(_he_cifar, stage_sizes=(5, 5, 5))
ResNet56 = functools.partial(_he_cifar, stage_sizes=(9, 9, 9))

ResNet18ImageNet = functools.partial(
    ResNet,
    stage_sizes=(2, 2, 2, 2),
    block="basic",
    stem_kernel=(7, 7),
    stem_strides=(2, 2),
    stem_pool=True,
    num_classes=1000,
)
