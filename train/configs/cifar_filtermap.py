"""CIFAR-10 with 3D-FilterMap convolutions: the 3D-FilterMap paper, Table 2.

Every k x k convolution (k > 1) learns a 3D-FilterMap with the grid of the
paper's Table 1 for its filter count (the RGB stem: (8, 8, 1)); 1x1
convolutions stay dense (preset ``filtermap`` of ``compact_jax.compress``).

Run (one per Table 2 column pair; the baseline column with
``--set model.compress.preset=dense``)::

    python -m train --config cifar_filtermap:resnet18      # ResNet-18-FM:    93.55% / 0.95M (dense 94.18% / 11.2M)
    python -m train --config cifar_filtermap:resnet34      # ResNet-34-FM:    94.25% / 1.8M  (dense 94.72% / 21.3M)
    python -m train --config cifar_filtermap:resnet50      # ResNet-50-FM:    95.47% / 13.1M (dense 95.16% / 23.5M)
    python -m train --config cifar_filtermap:densenet121   # DenseNet-121-FM: 95.45% / 5.3M  (dense 95.13% / 7.0M)

Flags: ``,digits`` (embedded digits at 32x32, offline), ``,runlocal`` (tiny
smoke run). CIFAR-10 must be prepared once:
``tfds build cifar10 --file_format array_record``.

Training: the paper gives no recipe; these are the standard settings of the
PyTorch CIFAR definitions it uses: SGD (momentum 0.9), lr 0.1, weight decay
5e-4, batch 128, 200 epochs, lr x0.1 at 50% and 75%, random crop + flip.
"""

from train.configs import _paper

EXPERIMENTS = ("resnet18", "resnet34", "resnet50", "densenet121")
FLAGS = ("digits", "runlocal")
_MODELS = {"resnet18": "resnet18_cifar", "resnet34": "resnet34_cifar", "resnet50": "resnet50_cifar",
           "densenet121": "densenet121_cifar"}
# Tiny nets for smoke runs; the stem keeps 64 filters (the RGB stem's (8, 8, 1) grid).
_TINY = {
    "resnet18": {"stage_sizes": (1,), "widths": (16,), "stem_features": 64},
    "resnet34": {"stage_sizes": (1,), "widths": (16,), "stem_features": 64},
    "resnet50": {"stage_sizes": (1,), "widths": (16,), "stem_features": 64},
    "densenet121": {"block_sizes": (1,), "growth_rate": 16, "stem_features": 64},
}


def get_config(arg=None):
    experiment, flags = _paper.parse_arg(arg, EXPERIMENTS, FLAGS, config="cifar_filtermap")
    c = _paper.paper_base(preset="filtermap")
    c.data.name = "cifar10"
    c.data.batch_size = 128
    c.data.eval_batch_size = 500
    c.model.name = _MODELS[experiment]
    _paper.set_sgd(c.optimizer, lr=0.1, weight_decay=5e-4)
    c.train.steps = _paper.epochs(200, _paper.CIFAR10_TRAIN, c.data.batch_size)
    c.train.log_every = 100
    c.train.eval_every = 5000
    c.train.checkpoint_every = 2000
    if "digits" in flags:
        _paper.use_digits(c)
    if "runlocal" in flags:
        _paper.runlocal(c, _TINY[experiment])
    return c
