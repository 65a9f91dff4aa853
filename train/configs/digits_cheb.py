"""ResNet-8 on digits with ApproxConv ChebConv: 3x3 filters as 2x2-harmonic Chebyshev series.

Stem and 1x1 convolutions stay dense.

Run: ``python -m train --config digits_cheb [--workdir DIR] [--set key=value ...]``
(tiny smoke variant: ``--config digits_cheb:runlocal``). Part of the main job's
table (``python -m train``); test accuracy on the 359 held-out digits.
"""

from train.configs._digits import digits_config


def get_config(arg=None):
    return digits_config("cheb", arg, harmonics=2)
