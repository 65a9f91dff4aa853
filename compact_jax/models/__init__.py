"""The papers' networks (Flax Linen), each taking a ``conv`` factory.

Every convolution of every model is built as ``conv(features, kernel_size,
strides=..., padding=..., use_bias=..., feature_group_count=..., dtype=...,
name=...)``; the default is ``flax.linen.Conv`` and any compact layer is a
drop-in replacement. Every model is called as ``model.apply(variables, x,
train=...)`` on channels-last inputs, and has ``num_classes`` (or
``num_channels``), ``conv`` and ``dtype`` fields.

Example (``model.init`` gives the variables; ``jax.eval_shape`` of it their
shapes, without compute: ResNet-32 has ApproxConv Table 1's 0.46M parameters):

>>> import jax
>>> import jax.numpy as jnp
>>> from compact_jax import count_params, models
>>> model = models.get_model("resnet32", num_classes=10)
>>> variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
>>> count_params(variables["params"])
464154
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn

from compact_jax.models.convnext import ConvNeXt, ConvNeXtTiny
from compact_jax.models.densenet import DenseNet, DenseNet40, DenseNet121Cifar
from compact_jax.models.resnet import (
    ResNet,
    ResNet18Cifar,
    ResNet18ImageNet,
    ResNet20,
    ResNet32,
    ResNet34Cifar,
    ResNet50Cifar,
    ResNet56,
)
from compact_jax.models.resnet3d import ResNet3D18, ResNet3D34, ResNet3D50, ResNet3D101
from compact_jax.models.sr import EDSR, EDSR8x128, SRResNet, pixel_shuffle
from compact_jax.models.unet3d import ResUNet3D
from compact_jax.models.vgg import VGG, VGG16Cifar

__all__ = [
    "MODELS",
    "get_model",
    "ConvNeXt",
    "ConvNeXtTiny",
    "DenseNet",
    "DenseNet40",
    "DenseNet121Cifar",
    "EDSR",
    "EDSR8x128",
    "ResNet",
    "ResNet18Cifar",
    "ResNet18ImageNet",
    "ResNet20",
    "ResNet32",
    "ResNet34Cifar",
    "ResNet50Cifar",
    "ResNet56",
    "ResNet3D18",
    "ResNet3D34",
    "ResNet3D50",
    "ResNet3D101",
    "ResUNet3D",
    "SRResNet",
    "VGG",
    "VGG16Cifar",
    "pixel_shuffle",
]

_FACTORIES = {
    "resnet18_cifar": ResNet18Cifar,
    "resnet34_cifar": ResNet34Cifar,
    "resnet50_cifar": ResNet50Cifar,
    "resnet20": ResNet20,
    "resnet32": ResNet32,
    "resnet56": ResNet56,
    "resnet18_imagenet": ResNet18ImageNet,
    "densenet121_cifar": DenseNet121Cifar,
    "densenet40": DenseNet40,
    "vgg16_cifar": VGG16Cifar,
    "convnext_tiny": ConvNeXtTiny,
    "edsr": EDSR,
    "edsr_8_128": EDSR8x128,
    "srresnet": SRResNet,
    "resnet3d_18": ResNet3D18,
    "resnet3d_34": ResNet3D34,
    "resnet3d_50": ResNet3D50,
    "resnet3d_101": ResNet3D101,
    "resunet3d": ResUNet3D,
}

MODELS: tuple[str, ...] = tuple(_FACTORIES)
"""Names accepted by :func:`get_model`."""


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Builds a model by name; ``kwargs`` override its fields (``num_classes``, ``conv``, ...).

    Raises:
      ValueError: ``name`` is not one of :data:`MODELS`.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {name!r}")
    if name not in _FACTORIES:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    return _FACTORIES[name](**kwargs)
