"""CIFAR-10 with Learning-Filter-Basis convolutions: the filter-basis paper, Table 5.

The layers and bases are the ``compact_jax.compress`` presets (the paper's
Tables 7-9): ``basis-resnet56`` (group-wise shared bases m = 24 / 48 / 84),
``basis-densenet40`` (one 36-filter basis sliced by every dense layer, 3x3
coefficient conv; transitions c -> c/6 -> c), ``basis-vgg16`` (m = 128 over
128-channel splits from conv3 on).

Run (Table 5 rows, error % / parameters; the baseline with
``--set model.compress.preset=dense``)::

    python -m train --config cifar_basis:resnet56     # Basis: 6.73 / 186k   (ResNet-56: 6.61 / 853k)
    python -m train --config cifar_basis:densenet40   # Basis: 5.31 / 331k   (DenseNet-12-40: 5.26 / 1041k)
    python -m train --config cifar_basis:vgg16        # Basis: 6.56 / 3.21M  (VGG-16: 6.36 / 14.7M)

Flags: ``,pretrained`` runs the ``basis`` pipeline instead of training from
scratch: the bases start from the SVD of a trained dense network
(``--set pipeline.dense_export=DIR``, or trained first with the same recipe)
and ``--set pipeline.gamma=G`` adds Eq. (18)'s ``G * sum_l ||W_l - B_l A_l||^2``;
``,digits`` (embedded digits at 32x32, offline); ``,runlocal`` (tiny smoke run).

Training (paper, Sec. 5): SGD (momentum 0.9), lr 0.1, 300 epochs, x0.1 at
50% and 75%; batch and weight decay as the authors' scripts: ResNet-56 and
DenseNet-40 batch 64, weight decay 1e-4 (DenseNet with Nesterov momentum),
VGG-16 batch 128, weight decay 5e-4.
"""

from train.configs import _paper

EXPERIMENTS = ("resnet56", "densenet40", "vgg16")
FLAGS = ("pretrained", "digits", "runlocal")
_SETTINGS = {  # model, preset, model kwargs, batch, weight decay, nesterov
    "resnet56": ("resnet56", "basis-resnet56", {}, 64, 1e-4, False),
    "densenet40": ("densenet40", "basis-densenet40", {"stem_features": 24}, 64, 1e-4, True),
    "vgg16": ("vgg16_cifar", "basis-vgg16", {}, 128, 5e-4, False),
}
_TINY = {
    "resnet56": {"stage_sizes": (1,), "widths": (16,)},
    "densenet40": {"block_sizes": (2,), "growth_rate": 12, "stem_features": 12},
    "vgg16": {"layers": (8, 8, 128, "M", 128)},
}


def get_config(arg=None):
    experiment, flags = _paper.parse_arg(arg, EXPERIMENTS, FLAGS, config="cifar_basis")
    model, preset, kwargs, batch, decay, nesterov = _SETTINGS[experiment]
    c = _paper.paper_base(preset=preset, pipeline="basis" if "pretrained" in flags else "train")
    c.data.name = "cifar10"
    c.data.batch_size = batch
    c.data.eval_batch_size = 500
    c.model.name = model
    for key, value in kwargs.items():
        c.model.kwargs[key] = value
    _paper.set_sgd(c.optimizer, lr=0.1, weight_decay=decay, nesterov=nesterov)
    c.train.steps = _paper.epochs(300, _paper.CIFAR10_TRAIN, batch)
    c.train.log_every = 100
    c.train.eval_every = 5000
    c.train.checkpoint_every = 2000
    c.pipeline.dense_steps = c.train.steps  # the dense network of ",pretrained": the same recipe
    if "digits" in flags:
        _paper.use_digits(c)
    if "runlocal" in flags:
        _paper.runlocal(c, _TINY[experiment])
    return c
