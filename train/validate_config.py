"""Every numeric and enumerated config value checked against its range or choices, in one place.

:func:`validate` runs when a config is loaded (:func:`train.config.load`) and
again when :func:`train.trainer.train` starts, before anything is built: a
value out of range is one :class:`~train.errors.UserError` line naming the
key, the value and what is allowed, e.g.::

    config optimizer.lr = -0.1: expected a number > 0

Keys a config does not have are skipped (configs only carry the blocks they
use). The checks that need the machine (the batch split over the devices, a
writable workdir) are :func:`check_devices` and :func:`check_workdir`.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from train.errors import UserError

__all__ = ["COMPUTE_DTYPES", "validate", "check_devices", "check_workdir"]

COMPUTE_DTYPES = ("float32", "bfloat16")

_MISSING = object()


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _int(low: int, what: str | None = None) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _is_int(v) and v >= low), what or f"an integer >= {low}"


def _optional_int(low: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v is None or (_is_int(v) and v >= low)), f"None or an integer >= {low}"


def _number(low: float, *, strict: bool, high: float | None = None, high_open: bool = True):
    def ok(v):
        if not _is_number(v) or (v <= low if strict else v < low):
            return False
        return high is None or (v < high if high_open else v <= high)

    lo = f"{'>' if strict else '>='} {low:g}"
    if high is None:
        return ok, f"a number {lo}"
    return ok, f"a number in {'(' if strict else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _choice(values: Sequence[Any]) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, str) and v in values), f"one of {', '.join(map(repr, values))}"


_BOOL = (lambda v: isinstance(v, bool)), "True or False"
_CLIP = (lambda v: v is None or (_is_number(v) and v >= 0)), "a number > 0, or 0 / None for no clipping"
_BOUNDARIES = (
    lambda v: isinstance(v, (tuple, list)) and all(_is_number(f) and 0 < f <= 1 for f in v) and list(v) == sorted(v),
    "increasing fractions of train.steps in (0, 1]",
)
_NAMES = (lambda v: isinstance(v, (tuple, list)) and all(isinstance(n, str) for n in v)), "a tuple of layer names"


def _rules() -> dict[str, tuple[Callable[[Any], bool], str]]:
    """Key -> (check, what is allowed). Choice sets are read from the modules that use them."""
    from compact_jax import compress

    from train import data, optim
    from train.models import available_methods
    from train.pipelines import PIPELINES
    from train.pipelines.choices import FITS, INITS, SOLVERS

    return {
        "seed": _int(0),
        "label_smoothing": _number(0, strict=False, high=1),
        "distributed": _BOOL,
        "debug_nan_at_step": _optional_int(1),
        "data.name": _choice(data.DATASETS),
        "data.batch_size": _int(1),
        "data.eval_batch_size": _int(1),
        "data.num_threads": _int(0),
        "data.kwargs.image_size": _int(1),
        "model.conv.method": _choice(available_methods()),
        "model.conv.dense_1x1": _BOOL,
        "model.conv.dense_layers": _NAMES,
        "model.compress.method": _choice(("", *compress.METHODS)),
        "model.compress.lenient": _BOOL,
        "optimizer.name": _choice(optim.OPTIMIZERS),
        "optimizer.lr": _number(0, strict=True),
        "optimizer.momentum": _number(0, strict=False, high=1),
        "optimizer.nesterov": _BOOL,
        "optimizer.b1": _number(0, strict=False, high=1),
        "optimizer.b2": _number(0, strict=False, high=1),
        "optimizer.weight_decay": _number(0, strict=False),
        "optimizer.weight_decay_on": _choice(("all", "kernels")),
        "optimizer.schedule": _choice(optim.SCHEDULES),
        "optimizer.warmup_steps": _int(0),
        "optimizer.boundaries": _BOUNDARIES,
        "optimizer.decay_factor": _number(0, strict=True),
        "optimizer.grad_clip_norm": _CLIP,
        "train.steps": _int(1),
        "train.log_every": _int(1),
        "train.eval_every": _int(0, "an integer >= 0 (0: at the end only)"),
        "train.checkpoint_every": _int(0, "an integer >= 1, or 0 for no checkpoints"),
        "train.keep_checkpoints": _int(1),
        "train.async_checkpoint": _BOOL,
        "train.tensorboard": _BOOL,
        "train.progress": _BOOL,
        "train.compute_dtype": _choice(COMPUTE_DTYPES),
        "train.allow_config_change": _BOOL,
        "pipeline.name": _choice(("train", *PIPELINES)),
        "pipeline.dense_steps": _int(0),
        "pipeline.dense_batch_size": _int(0, "an integer >= 1, or 0 for data.batch_size"),
        "pipeline.fit": _choice(FITS),
        "pipeline.init": _choice(INITS),
        "pipeline.gamma": _number(0, strict=False),
        "pipeline.quant.kind": _choice(("mantissa", "int")),
        "pipeline.quant.bits": _int(0, "an integer >= 0 (0: off)"),
        "pipeline.quant.activations": _BOOL,
        "pipeline.fdc3d.solver": _choice(SOLVERS),
        "pipeline.fdc3d.transform_steps": _int(0),
        "pipeline.fdc3d.transform_learning_rate": _number(0, strict=True),
        "pipeline.fdc3d.steps": _int(0),
        "pipeline.fdc3d.learning_rate": _number(0, strict=True),
        "pipeline.fdc3d.gamma": _number(0, strict=False),
        "pipeline.fdc3d.batches": _int(1),
        "pipeline.fdc3d.batch_size": _int(1),
    }


def _get(config, key: str) -> Any:
    node = config
    for part in key.split("."):
        if not hasattr(node, "get"):
            return _MISSING
        node = node.get(part, _MISSING)
        if node is _MISSING:
            return _MISSING
    return node


def validate(config) -> None:
    """Checks every known key of ``config`` against its range or choices.

    Args:
      config: an ``ml_collections.ConfigDict`` (or a nested mapping).

    Raises:
      UserError: one line naming the first bad key, its value and what is allowed.
    """
    rules = _rules()
    pipeline = _get(config, "pipeline.name")
    if pipeline not in (_MISSING, "train"):  # a compression pipeline's fine-tuning may be skipped
        rules["train.steps"] = _int(0, "an integer >= 0 (fine-tuning steps; 0: none)")
    for key, (ok, allowed) in rules.items():
        value = _get(config, key)
        if value is not _MISSING and not ok(value):
            raise UserError(f"config {key} = {value!r}: expected {allowed}")
    if pipeline not in (_MISSING, "train") and not _get(config, "pipeline.dense_export"):
        steps = _get(config, "pipeline.dense_steps")
        if steps is not _MISSING and steps < 1:
            raise UserError(f"config pipeline.dense_steps = {steps!r}: expected an integer >= 1 "
                            "(or set pipeline.dense_export to a trained dense run's export)")


def check_devices(config, num_devices: int) -> None:
    """The train and eval batches must split evenly over ``num_devices`` devices.

    Raises:
      UserError: one line naming the key, the batch size and the device count.
    """
    for key in ("data.batch_size", "data.eval_batch_size"):
        value = _get(config, key)
        if value is not _MISSING and value % num_devices:
            raise UserError(f"config {key} = {value!r}: expected a multiple of the {num_devices} devices "
                            "(the batch is split evenly over them)")


def check_workdir(workdir: str | None) -> None:
    """``workdir`` must be a writable directory, or not exist yet under a writable parent.

    Remote paths (``gs://...``) are left to the storage layer.

    Raises:
      UserError: one line naming the workdir and what is wrong with it.
    """
    if not workdir or "://" in str(workdir):
        return
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"workdir {workdir!r} is a file, not a directory; choose another --workdir")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"workdir {workdir!r} cannot be created: {existing!r} is a file")
    try:  # os.access ignores read-only mounts and is always True for root: try a write
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write_test")
        os.close(fd)
        os.remove(probe)
    except OSError as error:
        raise UserError(f"workdir {workdir!r} is not writable ({existing!r}: {error.strerror}); "
                        "choose another --workdir") from None
