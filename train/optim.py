"""optax optimisers and learning-rate schedules built from ``config.optimizer``.

Weight decay is the coupled L2 term of PyTorch's ``SGD(weight_decay=...)``
(``optax.add_decayed_weights`` before the update rule), which the papers'
training recipes use; ``"adamw"`` is decoupled (Loshchilov & Hutter).
"""

from __future__ import annotations

import jax
import optax

from train.errors import UserError

__all__ = ["OPTIMIZERS", "SCHEDULES", "make_schedule", "make_optimizer"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


def make_schedule(cfg, total_steps: int) -> optax.Schedule:
    """Learning rate per step.

    ``cfg`` fields: ``lr``, ``schedule`` (one of :data:`SCHEDULES`),
    ``warmup_steps`` (linear from 0), and for ``"step"``: ``boundaries``
    (fractions of ``total_steps``, e.g. ``(0.5, 0.75)``) and ``decay_factor``
    (multiplier at each boundary, e.g. 0.1).
    """
    _check(cfg.schedule, "optimizer.schedule", SCHEDULES)
    warmup = int(cfg.get("warmup_steps", 0))
    steps = max(1, total_steps - warmup)
    if cfg.schedule == "constant":
        main = optax.constant_schedule(cfg.lr)
    elif cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(cfg.lr, decay_steps=steps)
    else:
        bounds = {int(round(f * total_steps)) - warmup: cfg.decay_factor for f in cfg.boundaries}
        main = optax.piecewise_constant_schedule(cfg.lr, bounds)
    if not warmup:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warmup), main], [warmup])


def _decay_mask(which: str):
    _check(which, "optimizer.weight_decay_on", ("all", "kernels"))
    if which == "all":  # PyTorch's default: every parameter, biases and norms included
        return None
    return lambda params: jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(cfg, total_steps: int) -> optax.GradientTransformation:
    """The optimiser of ``cfg.name`` (one of :data:`OPTIMIZERS`) with its schedule.

    ``cfg`` fields: ``name``, ``momentum`` and ``nesterov`` (SGD), ``b1``,
    ``b2`` (Adam), ``weight_decay``, ``weight_decay_on`` (``"all"`` or
    ``"kernels"``: ndim > 1), ``grad_clip_norm`` (0: off), plus the
    schedule's fields.
    """
    _check(cfg.name, "optimizer.name", OPTIMIZERS)
    lr = make_schedule(cfg, total_steps)
    wd = float(cfg.get("weight_decay", 0.0))
    mask = _decay_mask(cfg.get("weight_decay_on", "all"))
    parts = []
    if cfg.get("grad_clip_norm", 0.0):
        parts.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
    if cfg.name == "adamw":
        parts.append(optax.adamw(lr, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999), weight_decay=wd, mask=mask))
        return optax.chain(*parts)
    if wd:
        parts.append(optax.add_decayed_weights(wd, mask=mask))
    if cfg.name == "sgd":
        parts.append(optax.sgd(lr, momentum=cfg.get("momentum", 0.9) or None, nesterov=cfg.get("nesterov", False)))
    else:
        parts.append(optax.adam(lr, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999)))
    return optax.chain(*parts)


def _check(value, key: str, valid) -> None:
    if value not in valid:
        raise UserError(f"{key} must be one of {', '.join(valid)}; got {value!r}")
