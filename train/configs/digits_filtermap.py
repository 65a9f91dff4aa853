"""ResNet-8 on digits with 3D-FilterMap convolutions (the paper's default grids).

Stem and 1x1 convolutions stay dense; 3x3 convs use FilterMapConv with the
paper's Table 1 grid for each filter count (16: (2, 2, 4), 32: (4, 4, 2),
64: (4, 4, 4)) and map strides (2, 2, C/K3).

Run: ``python -m train --config digits_filtermap [--workdir DIR] [--set key=value ...]``
(tiny smoke variant: ``--config digits_filtermap:runlocal``). Part of the main job's
table (``python -m train``); test accuracy on the 359 held-out digits.
"""

from train.configs._digits import digits_config


def get_config(arg=None):
    return digits_config("filtermap", arg)
