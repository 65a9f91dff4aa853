"""ImageNet ResNet-18 and ConvNeXt-T with ApproxConv, regressed from trained dense networks: ApproxConv Tables 2-4.

Pipeline ``approx_finetune`` (see ``cifar_approx``): every k x k conv of
ResNet-18 (harmonics 6,3,3,3,2 for stem and stages 1-4, ``compact_jax.compress``
``approx-resnet18``), or the 7x7 depthwise convs of ConvNeXt-T (7x3,7x3,7x9,6x3
per block, ``approx-convnext``), regressed onto the trained kernels,
evaluated (Pre Top 1), fine-tuned for 5 epochs, evaluated (Post Top 1).
The ``_q8`` / ``_q4`` experiments fine-tune and evaluate with 8- / 4-bit
mantissa fake quantisation of parameters and activations (Table 4).

Run (Pre / Post Top 1 %; give the dense network with
``--set pipeline.dense_export=DIR``, else it is trained first)::

    python -m train --config imagenet_approx:resnet18_cos      # Table 2 6,3,3,3,2: 64.33 / 68.97, 7.09M (Conv2D 69.76, 11.68M)
    python -m train --config imagenet_approx:resnet18_cheb     # Table 2 6,3,3,3,2: 64.11 / 68.62
    python -m train --config imagenet_approx:convnext_cos      # Table 3 7x3,7x3,7x9,6x3: 80.27 / 81.19 (Conv2D 82.10)
    python -m train --config imagenet_approx:resnet18_cos_q8   # Table 4 8-bit: Quant. Top1 68.12
    python -m train --config imagenet_approx:resnet18_cos_q4   # Table 4 4-bit: 66.70
    python -m train --config imagenet_approx:resnet18_cheb_q8  # Table 4 8-bit: 67.39
    python -m train --config imagenet_approx:resnet18_cheb_q4  # Table 4 4-bit: 66.50

Other rows: ``--set 'model.compress.values="5,3,3,3,2"'`` (ResNet-18) or
``'"7x3,7x3,6x9,6x3"'`` (ConvNeXt). Flags: ``,runlocal`` (tiny smoke run,
32x32 images). ImageNet must be prepared once (manual download):
``tfds build imagenet2012 --manual_dir DIR --file_format array_record``.

Training: dense ResNet-18 with torchvision's recipe (SGD momentum 0.9, lr
0.1, batch 256, weight decay 1e-4, 90 epochs, x0.1 every 30); dense ConvNeXt-T
with AdamW lr 4e-3 (batch 4096), weight decay 0.05, 300 epochs cosine, 20
warm-up epochs, label smoothing 0.1, stochastic depth 0.1 (its mixup / cutmix /
RandAugment / EMA are not implemented: give a trained export). Fine-tuning
(supplementary material unavailable; our choice): 5 epochs, SGD lr 0.01 x0.1
after 3 (ResNet-18), AdamW lr 5e-5 cosine (ConvNeXt-T).
"""

from train.configs import _paper

EXPERIMENTS = ("resnet18_cos", "resnet18_cheb", "convnext_cos",
               "resnet18_cos_q8", "resnet18_cos_q4", "resnet18_cheb_q8", "resnet18_cheb_q4")
FLAGS = ("runlocal",)
_TRAIN = 1_281_167
_TINY = {
    "resnet18_imagenet": {"stage_sizes": (1,), "widths": (8,)},
    "convnext_tiny": {"depths": (1,), "dims": (8,)},
}


def _adamw(opt, *, lr, weight_decay, warmup_steps=0):
    opt.name, opt.lr, opt.b1, opt.b2, opt.weight_decay = "adamw", lr, 0.9, 0.999, weight_decay
    opt.schedule, opt.warmup_steps, opt.weight_decay_on = "cosine", warmup_steps, "kernels"


def get_config(arg=None):
    experiment, flags = _paper.parse_arg(arg, EXPERIMENTS, FLAGS, config="imagenet_approx")
    model, family, *quant = experiment.split("_")
    convnext = model == "convnext"
    c = _paper.paper_base(preset="approx-convnext" if convnext else "approx-resnet18", pipeline="approx_finetune")
    c.model.compress.method = "cosine" if family == "cos" else "chebyshev"
    c.model.name = "convnext_tiny" if convnext else "resnet18_imagenet"
    c.data.name = "imagenet2012"
    c.data.batch_size = 256
    c.data.eval_batch_size = 500
    c.data.num_threads = 16
    c.train.steps = _paper.epochs(5, _TRAIN, c.data.batch_size)
    c.train.log_every = 200
    c.train.checkpoint_every = 2000
    if convnext:
        c.model.kwargs.drop_path_rate = 0.1
        _adamw(c.optimizer, lr=5e-5, weight_decay=0.05)
        dense_batch = c.pipeline.dense_batch_size = 4096
        c.pipeline.dense_steps = _paper.epochs(300, _TRAIN, dense_batch)
        c.pipeline.dense_optimizer = _paper.optimizer_fields(
            c, _adamw, lr=4e-3, weight_decay=0.05, warmup_steps=_paper.epochs(20, _TRAIN, dense_batch))
        c.label_smoothing = 0.1
    else:
        _paper.set_sgd(c.optimizer, lr=0.01, weight_decay=1e-4, boundaries=(0.6,))
        c.pipeline.dense_steps = _paper.epochs(90, _TRAIN, c.data.batch_size)
        c.pipeline.dense_optimizer = _paper.optimizer_fields(
            c, _paper.set_sgd, lr=0.1, weight_decay=1e-4, boundaries=(1 / 3, 2 / 3))
    if quant:
        c.pipeline.quant.bits = int(quant[0][1:])
    if "runlocal" in flags:
        c.data.kwargs.image_size = 32
        c.data.num_threads = 0
        _paper.runlocal(c, _TINY[c.model.name])
    return c
