"""The full config skeleton with defaults, and the ``:ARG`` variants shared by every config."""

from __future__ import annotations

import ml_collections

from train.errors import UserError

__all__ = ["base_config", "apply_variant", "VARIANTS"]


def base_config() -> ml_collections.ConfigDict:
    """Every key the trainer reads, with defaults (a config overrides what it needs)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.label_smoothing = 0.0
    c.distributed = False  # call jax.distributed.initialize() (multi-host); see train.sharding
    c.cluster = ml_collections.ConfigDict()  # with distributed=True; unset (None): auto-detected
    c.cluster.coordinator_address = None  # "host:port" of process 0
    c.cluster.num_processes = None
    c.cluster.process_id = None
    c.cluster.initialization_timeout = 300  # seconds for every process to connect
    c.cluster.heartbeat_timeout = 100  # seconds without heartbeats before a peer counts as dead
    c.debug_nan_at_step = None  # testing aid: NaN loss at this step

    c.data = ml_collections.ConfigDict()
    c.data.name = "digits"
    c.data.kwargs = ml_collections.ConfigDict()  # the dataset loader's options
    c.data.batch_size = 128  # global, over all devices and processes
    c.data.eval_batch_size = 200
    c.data.num_threads = 0  # grain reader threads (0: main thread)

    c.model = ml_collections.ConfigDict()
    c.model.name = "resnet20"  # a compact_jax.models.get_model name
    c.model.kwargs = ml_collections.ConfigDict()  # the model's fields
    c.model.conv = ml_collections.ConfigDict()
    c.model.conv.method = "dense"  # a compact_jax.METHODS name or alias
    c.model.conv.kwargs = ml_collections.ConfigDict()  # the method module's fields
    c.model.conv.dense_1x1 = True  # 1x1 convolutions stay dense
    c.model.conv.dense_layers = ()  # layer names kept dense, e.g. ("stem_conv",)

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "sgd"  # sgd | adam | adamw
    c.optimizer.lr = 0.1
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = False
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.weight_decay = 5e-4
    c.optimizer.weight_decay_on = "all"  # all | kernels
    c.optimizer.schedule = "cosine"  # constant | cosine | step
    c.optimizer.warmup_steps = 0
    c.optimizer.boundaries = (0.5, 0.75)  # "step": fractions of train.steps
    c.optimizer.decay_factor = 0.1
    c.optimizer.grad_clip_norm = 0.0

    c.train = ml_collections.ConfigDict()
    c.train.steps = 1000
    c.train.log_every = 50
    c.train.eval_every = 0  # 0: evaluate at the end only
    c.train.checkpoint_every = 500  # 0: no checkpoints
    c.train.keep_checkpoints = 3
    c.train.async_checkpoint = True
    c.train.tensorboard = True
    c.train.progress = True
    c.train.compute_dtype = "float32"  # float32 | bfloat16 (parameters stay float32)
    c.train.allow_config_change = False  # resume with changed hyperparameters (each change is logged)
    return c


def _runlocal(c: ml_collections.ConfigDict) -> None:
    """A tiny run for smoke tests: a few steps, small batches, frequent logs and checkpoints."""
    c.train.steps = min(c.train.steps, 10)
    c.train.log_every = 1
    c.train.eval_every = 0
    c.train.checkpoint_every = 5
    c.data.batch_size = min(c.data.batch_size, 16)
    c.data.eval_batch_size = min(c.data.eval_batch_size, 40)


VARIANTS = {"runlocal": _runlocal}


def apply_variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """Applies the comma-separated variants in ``arg`` (e.g. ``"runlocal"``) in place."""
    for flag in filter(None, (arg or "").split(",")):
        if flag not in VARIANTS:
            raise UserError(f"unknown config variant {flag!r}; valid variants: {', '.join(VARIANTS)}")
        VARIANTS[flag](config)
    return config
