"""ResNet-8 on embedded 16x16 digits with ordinary (dense) convolutions: the baseline.

Run: ``python -m train --config digits_dense [--workdir DIR] [--set key=value ...]``
(tiny smoke variant: ``--config digits_dense:runlocal``). Part of the main job's
table (``python -m train``); test accuracy on the 359 held-out digits.
"""

from train.configs._digits import digits_config


def get_config(arg=None):
    return digits_config("dense", arg)
