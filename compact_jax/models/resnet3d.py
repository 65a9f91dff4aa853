"""3-D ResNets for video (Hara et al., "Can spatiotemporal 3D CNNs retrace the
history of 2D CNNs and ImageNet?", CVPR 2018): the backbone of FDC3D.

Stem: 7x7x7 conv 3->64 with strides (1, 2, 2), BN, ReLU, 3x3x3 stride-2 max
pool; stages 64-128-256-512 of 3x3x3 blocks (basic for 18/34, bottleneck for
50/101), every stage after the first striding 2 in time and space; global
average pool; linear classifier. Inputs are clips ``(N, T, H, W, 3)``.

Shortcuts: type ``"B"`` (1x1x1 conv + BN when the shape changes) by default;
``shortcut="A"`` gives the zero-padded identity Hara et al. used for
ResNet-18/34. The commonly cited 33.2M parameters of 3D-ResNet-18 (400
classes) is the type-A model (33,235,280); type B has 33,409,104, and
33,255,717 with 101 classes (UCF-101, as in FDC3D).

Example::

    model = ResNet3D18(num_classes=101)                 # UCF-101
    variables = model.init(key, jnp.zeros((1, 16, 112, 112, 3)), train=False)
"""

from __future__ import annotations

import functools

from compact_jax.models.resnet import ResNet

__all__ = ["ResNet3D18", "ResNet3D34", "ResNet3D50", "ResNet3D101"]

_resnet3d = functools.partial(
    ResNet,
    stem_kernel=(7, 7, 7),
    stem_strides=(1, 2, 2),
    stem_pool=True,
    shortcut="B",
    num_classes=400,
)
ResNet3D18 = functools.partial(_resnet3d, stage_sizes=(2, 2, 2, 2), block="basic")
ResNet3D34 = functools.partial(_resnet3d, stage_sizes=(3, 4, 6, 3), block="basic")
ResNet3D50 = functools.partial(_resnet3d, stage_sizes=(3, 4, 6, 3), block="bottleneck")
ResNet3D101 = functools.partial(_resnet3d, stage_sizes=(3, 4, 23, 3), block="bottleneck")
