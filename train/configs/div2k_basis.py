"""DIV2K x4 super-resolution with Learning-Filter-Basis residual blocks: the filter-basis paper, Tables 1-3.

Every residual-block conv gets a filter basis (``compact_jax.compress`` presets
``basis-edsr``, ``-edsr-s``, ``-edsr8-27``, ``-edsr8-40``, ``-srresnet-14``,
``-srresnet-32``, the paper's Table 9); head, tail and upsampler stay dense.

Run (PSNR on DIV2K validation, x4; parameters of one residual block)::

    python -m train --config div2k_basis:edsr          # Table 3 'Basis':   164k (EDSR 1180k)
    python -m train --config div2k_basis:edsr_s        # Table 3 'Basis-S':  90k, shared basis per block
    python -m train --config div2k_basis:edsr8_27      # Table 2 'Basis-128-27': 69k (EDSR-8-128 295k)
    python -m train --config div2k_basis:edsr8_40      # Table 2 'Basis-128-40': 102k
    python -m train --config div2k_basis:srresnet_14   # Table 2 'Basis-64-14':  18k (SRResNet 74k)
    python -m train --config div2k_basis:srresnet_32   # Table 2 'Basis-32-32':  27k

Table 1's other EDSR operating points: ``--set model.compress.kwargs.num_basis=16``
(or 64) on ``edsr`` / ``edsr_s``. Baselines: ``--set model.compress.preset=dense``.
Flags: ``,runlocal`` (tiny smoke run on the embedded photos). DIV2K must be
prepared once: ``tfds build div2k/bicubic_x4 --file_format array_record``.

Training (paper, Sec. 5, and the authors' scripts): Adam (0.9, 0.999), lr
1e-4, x0.1 after 200 of 300 epochs, L1 loss, batch 16 of 48x48 low-resolution
patches (flips and 90 degree rotations); an epoch is the authors' 32,208
DIV2K sub-images, 2,013 steps.
"""

from train.configs import _paper

EXPERIMENTS = ("edsr", "edsr_s", "edsr8_27", "edsr8_40", "srresnet_14", "srresnet_32")
FLAGS = ("runlocal",)
_SETTINGS = {  # model, preset
    "edsr": ("edsr", "basis-edsr"),
    "edsr_s": ("edsr", "basis-edsr-s"),
    "edsr8_27": ("edsr_8_128", "basis-edsr8-27"),
    "edsr8_40": ("edsr_8_128", "basis-edsr8-40"),
    "srresnet_14": ("srresnet", "basis-srresnet-14"),
    "srresnet_32": ("srresnet", "basis-srresnet-32"),
}
_STEPS_PER_EPOCH = 32_208 // 16


def get_config(arg=None):
    experiment, flags = _paper.parse_arg(arg, EXPERIMENTS, FLAGS, config="div2k_basis")
    model, preset = _SETTINGS[experiment]
    c = _paper.paper_base(preset=preset)
    c.data.name = "div2k"
    c.data.kwargs.scale = 4
    c.data.kwargs.patch_size = 48
    c.data.kwargs.eval_patch = 128  # central 128x128 low-resolution crop of each validation image
    c.data.batch_size = 16
    c.data.eval_batch_size = 4
    c.model.name = model
    c.model.kwargs.scale = 4
    _paper.set_adam(c.optimizer, lr=1e-4, boundaries=(200 / 300,))
    c.train.steps = 300 * _STEPS_PER_EPOCH
    c.train.log_every = 200
    c.train.eval_every = 10 * _STEPS_PER_EPOCH
    c.train.checkpoint_every = 2000
    if "runlocal" in flags:
        c.data.name = "photos_sr"
        c.data.kwargs = {"scale": 4, "patch_size": 8, "test_tile": 16}
        _paper.runlocal(c, {"num_blocks": 1, "features": 32})
        # The paper's m = 27-40 filters make a 32-channel smoke-run layer larger than dense.
        c.model.compress.kwargs.allow_larger = True
        c.data.batch_size, c.data.eval_batch_size = 4, 16
    return c
