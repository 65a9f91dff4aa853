"""Compression pipelines: a trained dense network -> compact network -> fine-tuning, one report.

A config selects one with ``config.pipeline.name`` and ``python -m train
--config NAME`` runs it (``"train"``, the default, is plain training):

* ``approx_finetune`` - ApproxConv: regress each series layer onto the dense
  kernel, evaluate (Pre Top-1), fine-tune (optionally fake-quantised),
  evaluate (Post Top-1). :mod:`train.pipelines.approx`.
* ``fdc3d`` - FDC3D Algorithm 1: per-layer Eq. (9) fits on recorded inputs
  and outputs, pruning to ``(p_c, p_t)``, fine-tuning. :mod:`train.pipelines.fdc3d`.
* ``basis`` - Learning Filter Basis from an SVD of (or pulled towards, Eq. 18)
  a pretrained network. :mod:`train.pipelines.basis`.

Which layers get which method comes from a named preset of
:data:`compact_jax.compress.PRESETS` (:mod:`train.pipelines.policy`). The dense network
is read from ``pipeline.dense_export`` or trained first in ``WORKDIR/dense``;
every stage resumes from its checkpoints when the command is re-run.
"""

from __future__ import annotations

__all__ = ["PIPELINES", "run"]

#: ``config.pipeline.name`` -> module holding its ``run(config, workdir)``.
PIPELINES = {"approx_finetune": "approx", "fdc3d": "fdc3d", "basis": "basis"}


def run(config, workdir: str | None):
    """Runs ``config.pipeline.name``; returns its :class:`~train.pipelines._stages.PipelineResult`.

    Raises:
      UserError: an unknown pipeline name (listing the valid ones).
    """
    import importlib

    from train.errors import UserError

    name = config.pipeline.name
    if name not in PIPELINES:
        raise UserError(f"unknown pipeline {name!r}; valid pipelines: train, {', '.join(PIPELINES)}")
    module = importlib.import_module(f"train.pipelines.{PIPELINES[name]}")
    return module.run(config, workdir)
