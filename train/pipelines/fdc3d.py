"""FDC3D, Algorithm 1: per-layer frequency-domain compression of a trained 3-D network, then fine-tuning.

Every 3-D convolution the preset compresses (``fdc3d-2x`` / ``fdc3d-4x`` of
:data:`compact_jax.compress.PRESETS`: ``(p_c, p_t)`` per layer) goes through
Algorithm 1, steps 2-13, with its trained filters fixed: its inputs and outputs
are recorded on training batches, Eq. (9) is fitted on them and the layer is
pruned. The algorithm is :mod:`compact_jax.fdc3d`'s (``capture_layers``,
``fit_layer``, ``fit_network``, ``prune_network``); this module feeds it the
configured batches and settings (``pipeline.fdc3d``).

The pruned network is evaluated (before fine-tuning), then fine-tuned as a
whole (step 14) and evaluated again. ``pipeline.fdc3d.solver = "closed_form"``
uses no data (:func:`compact_jax.compress.fit`: channels by filter norm, rows
by energy, the transform at its initial value).

Run: ``python -m train --config ucf101_fdc3d:2x`` (see that config);
``python -m train.pipelines.fdc3d_ablation`` compares the transforms.
"""

from __future__ import annotations

import numpy as np

from train import data
from train.errors import UserError
from train.pipelines import _stages
from train.pipelines.choices import SOLVERS

__all__ = ["SOLVERS", "fit_network", "prune_network", "compress_network", "compress_fdc3d", "run"]


def fit_network(config, plan, model, variables, dataset) -> dict:
    """Algorithm 1, steps 2-9, on every FDC3D layer of ``plan``: ``path -> FittedLayer``, nothing pruned yet.

    :func:`compact_jax.fdc3d.fit_network` with ``pipeline.fdc3d``'s settings;
    the layer inputs and outputs are recorded once, on ``pipeline.fdc3d.batches``
    training batches of ``pipeline.fdc3d.batch_size``.
    """
    from compact_jax import fdc3d

    cfg = config.pipeline.fdc3d
    iterator = data.train_iterator(dataset, global_batch_size=int(cfg.batch_size), seed=int(config.seed) + 1)
    batches = [next(iterator)["inputs"] for _ in range(int(cfg.batches))]
    return fdc3d.fit_network(plan, model, variables, batches, transform_steps=int(cfg.transform_steps),
                             transform_learning_rate=float(cfg.transform_learning_rate), steps=int(cfg.steps),
                             gamma=float(cfg.gamma), learning_rate=float(cfg.learning_rate))


def prune_network(plan, variables, fitted: dict, *, only: str | None = None) -> tuple[object, dict]:
    """Algorithm 1, steps 10-13 (:func:`compact_jax.fdc3d.prune_network`): ``(plan, params)``.

    The pruned layers are written into the dense parameters, or into
    :func:`compact_jax.compress.fit`'s where the plan has other methods.
    """
    from compact_jax import compress, fdc3d

    params = variables["params"]  # dense layers keep their kernels
    if not all(e.method in ("fdc3d", "dense") for e in plan.layers):
        plan, params = compress.fit(plan, params)  # FDC3D layers are replaced
    return fdc3d.prune_network(plan, params, fitted, only=only)


def compress_network(config, plan, model, variables, dataset) -> tuple[object, dict, list[str]]:
    """Algorithm 1, steps 1-13, on every FDC3D layer of ``plan``: ``(plan, params, notes)``."""
    from compact_jax import compress

    cfg = config.pipeline.fdc3d
    solver = cfg.get("solver", "eq9")
    if solver not in SOLVERS:
        raise UserError(f"pipeline.fdc3d.solver must be one of {', '.join(SOLVERS)}; got {solver!r}")
    if solver == "closed_form":
        plan, params = compress.fit(plan, variables["params"])
        return plan, params, ["closed-form transform and pruning (no data)"]
    fitted = fit_network(config, plan, model, variables, dataset)
    plan, params = prune_network(plan, variables, fitted)
    objective = np.mean([layer.objective for layer in fitted.values()])
    notes = [f"Eq. (9) fits of {len(fitted)} layers (beta: {cfg.steps} Adam steps on {cfg.batches} recorded "
             f"batches, mean final objective {objective:.4f})"]
    return plan, params, notes


def compress_fdc3d(config, plan, model, variables, dataset) -> _stages.Compressed:
    """The method hook of :func:`run`: Algorithm 1 (:func:`compress_network`)."""
    from compact_jax import compress

    plan, params, notes = compress_network(config, plan, model, variables, dataset)
    compact = compress.build(plan)
    return _stages.Compressed(
        title=f"{config.get('name', 'fdc3d')}: FDC3D Algorithm 1 (policy {plan.policy.name})",
        plan=plan, variables={**variables, "params": params}, train_model=compact, trained_label="fine-tuned",
        evaluations=[("pruned (before fine-tuning)", compact)], notes=notes, values={"plan": plan})


def run(config, workdir: str | None) -> _stages.PipelineResult:
    """Dense -> Algorithm 1 -> evaluate -> fine-tune -> evaluate; see the module docstring."""
    return _stages.run_pipeline(config, workdir, compress_fdc3d)
