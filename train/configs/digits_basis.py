"""ResNet-8 on digits with Learning-Filter-Basis convolutions (shared basis + 1x1 mixing).

Each 3x3 conv learns its own basis of 8 filters over all input channels (one
split) and a 1x1 conv mixing the 8 basis responses into its outputs. Stem and
1x1 convolutions stay dense.

Run: ``python -m train --config digits_basis [--workdir DIR] [--set key=value ...]``
(tiny smoke variant: ``--config digits_basis:runlocal``). Part of the main job's
table (``python -m train``); test accuracy on the 359 held-out digits.
"""

from train.configs._digits import digits_config


def get_config(arg=None):
    return digits_config("basis", arg, num_basis=8)
