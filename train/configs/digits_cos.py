"""ResNet-8 on digits with ApproxConv CosConv: 3x3 filters as 2x2-harmonic cosine series.

Stem and 1x1 convolutions stay dense.

Run: ``python -m train --config digits_cos [--workdir DIR] [--set key=value ...]``
(tiny smoke variant: ``--config digits_cos:runlocal``). Part of the main job's
table (``python -m train``); test accuracy on the 359 held-out digits.
"""

from train.configs._digits import digits_config


def get_config(arg=None):
    return digits_config("cos", arg, harmonics=2)
