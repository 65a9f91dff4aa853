"""Residual 3-D U-Net for volumetric segmentation compressed by FDC3D: the FDC3D paper, Sec. 5.6 / Table 4.

Pipeline ``fdc3d`` (see ``ucf101_fdc3d``): a trained dense residual 3-D
U-Net; every 3x3x3 conv pruned to ``(p_c, p_t) = (1/4, 1/3)`` after Eq. (9)
fits (``compact_jax.compress`` preset ``fdc3d-2x``, 2x fewer multiply-adds, as
the paper's FC3D U-Net), then fine-tuned; Dice of each class.

Run::

    python -m train --config unet3d_fdc3d:2x          # Table 4: FC3D U-Net at 2x (paper: Dice ET 0.7832 vs 0.7974)
    python -m train --config unet3d_fdc3d:4x          # (p_c, p_t) = (5/8, 1/3)

The paper's BraTS 2018 has no tensorflow-datasets builder: the data are the
embedded synthetic volumes (``train.data.volumes``: noisy balls and boxes,
64 training volumes of 32^3, 3 classes), so the Dice values are not
comparable to Table 4's. Flags: ``,runlocal`` (tiny smoke run).

Training (paper, Sec. 5.6): SGD (momentum 0.9), lr 0.001, weight decay 1e-5,
batch 1, 300 epochs, lr / 10 when the validation loss saturates (here: fixed
steps at 50% and 75%). Fine-tuning: the same optimiser for 50 epochs (our choice).
"""

from train.configs import _paper

EXPERIMENTS = ("2x", "4x")
FLAGS = ("runlocal",)
_TRAIN = 64


def get_config(arg=None):
    experiment, flags = _paper.parse_arg(arg, EXPERIMENTS, FLAGS, config="unet3d_fdc3d")
    c = _paper.paper_base(preset=f"fdc3d-{experiment}", pipeline="fdc3d")
    c.data.name = "volumes"
    c.data.kwargs = {"size": 32, "num_classes": 3, "num_train": _TRAIN, "num_test": 16}
    c.data.batch_size = 1
    c.data.eval_batch_size = 4
    c.model.name = "resunet3d"
    c.model.kwargs.widths = (16, 32, 64, 128)
    _paper.set_sgd(c.optimizer, lr=0.001, weight_decay=1e-5)
    c.train.steps = _paper.epochs(50, _TRAIN, c.data.batch_size)
    c.train.log_every = 64
    c.train.checkpoint_every = 640
    c.pipeline.dense_steps = _paper.epochs(300, _TRAIN, c.data.batch_size)
    c.pipeline.fdc3d.batch_size = 1
    if "runlocal" in flags:
        c.data.kwargs = {"size": 8, "num_classes": 3, "num_train": 8, "num_test": 4}
        _paper.runlocal(c, {"widths": (4,)})
        c.data.batch_size, c.data.eval_batch_size = 2, 2
        c.pipeline.fdc3d.batch_size = 2
    return c
