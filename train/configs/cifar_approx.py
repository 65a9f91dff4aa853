"""CIFAR-10 ResNet-20 / ResNet-32 with ApproxConv, regressed from a trained dense network: ApproxConv Table 1.

Pipeline ``approx_finetune``: the dense ResNet is trained (or read from
``--set pipeline.dense_export=DIR``), every k x k conv of the stem and the
three stages becomes a cosine (CosConv) or Chebyshev (ChebConv) series with
the preset's harmonics per block (``compact_jax.compress`` ``approx-resnet32``:
3,3,3,2), regressed onto its trained kernel by the authors' Adam procedure,
evaluated ("Pre Top 1"), fine-tuned for 5 epochs and evaluated ("Post Top 1").

Run (Table 1, Pre / Post Top 1 %, 3,3,3,2 rows)::

    python -m train --config cifar_approx:resnet20_cos    # 87.22 / 90.75 (Conv2D 91.73)
    python -m train --config cifar_approx:resnet20_cheb   # 87.22 / 90.76
    python -m train --config cifar_approx:resnet32_cos    # 87.74 / 91.51 (Conv2D 92.78), 0.27M params
    python -m train --config cifar_approx:resnet32_cheb   # 87.74 / 91.48

Other rows of the table: ``--set 'model.compress.values="3,3,2,2"'`` (harmonics
of stem, stage 1, 2, 3). Flags: ``,q8`` / ``,q4`` fine-tune and evaluate with
8- / 4-bit mantissa fake quantisation of the parameters and activations
(Table 4's scheme), ``,digits`` (embedded digits at 32x32, offline),
``,runlocal`` (tiny smoke run).

Training: the dense network with He et al.'s recipe (SGD momentum 0.9, lr
0.1, weight decay 1e-4, batch 128, 64k steps, x0.1 at 32k and 48k). The
fine-tuning schedule is in the paper's supplementary material, which we do not
have: 5 epochs of SGD (momentum 0.9) at lr 0.01, x0.1 after 3 epochs, weight
decay 1e-4.
"""

from train.configs import _paper

EXPERIMENTS = ("resnet20_cos", "resnet20_cheb", "resnet32_cos", "resnet32_cheb")
FLAGS = ("q8", "q4", "digits", "runlocal")


def get_config(arg=None):
    experiment, flags = _paper.parse_arg(arg, EXPERIMENTS, FLAGS, config="cifar_approx")
    model, family = experiment.split("_")
    c = _paper.paper_base(preset="approx-resnet32", pipeline="approx_finetune")
    c.model.compress.method = "cosine" if family == "cos" else "chebyshev"
    c.model.name = model
    c.data.name = "cifar10"
    c.data.batch_size = 128
    c.data.eval_batch_size = 500
    _paper.set_sgd(c.optimizer, lr=0.01, weight_decay=1e-4, boundaries=(0.6,))
    c.train.steps = _paper.epochs(5, _paper.CIFAR10_TRAIN, c.data.batch_size)
    c.train.log_every = 50
    c.train.checkpoint_every = 500
    c.pipeline.dense_steps = 64_000
    c.pipeline.dense_optimizer = _paper.optimizer_fields(c, _paper.set_sgd, lr=0.1, weight_decay=1e-4)
    for flag in flags:
        if flag in ("q8", "q4"):
            c.pipeline.quant.bits = int(flag[1:])
    if "digits" in flags:
        _paper.use_digits(c)
        c.pipeline.dense_steps = 1500
        c.train.steps = 300
    if "runlocal" in flags:
        _paper.runlocal(c, {"stage_sizes": (1,), "widths": (16,)})
    return c
