"""ApproxConv's regression-then-fine-tune (Sec. 3.4 and 4; Tables 1-4).

From a trained dense network: every layer the preset assigns a cosine /
Chebyshev series is regressed onto its trained kernel - in closed form
(``pipeline.fit = "closed_form"``, the exact least-squares minimum of Eq. 5)
or with the authors' iterative procedure (``"gradient"``: Adam on Eq. 5 with
their initialisation and 0.1 / 0.01 / 0.001 schedule, every filter at once,
:func:`compact_jax.series.fit_gradient`). The compact network is evaluated
("Pre Top-1"), fine-tuned (the paper: 5 epochs) and evaluated again
("Post Top-1"). With ``pipeline.quant.bits`` the fine-tuning and the final
evaluation run with fake quantisation (:mod:`compact_jax.quant`: the authors'
floating-point mantissa format on the parameters and the convolutions'
inputs), as in Table 4.

Run: ``python -m train --config cifar_approx:resnet20_cos`` (see that config).
"""

from __future__ import annotations

import jax
import numpy as np

from compact_jax.experiments import relative_error
from compact_jax.pytree import get_node, set_node
from train.errors import UserError
from train.pipelines import _stages
from train.pipelines.choices import FITS

__all__ = ["FITS", "fit_series", "quantizer", "compress_series", "run"]

_SERIES = ("cosine", "chebyshev")


def fit_series(plan, dense_params, *, how: str = "closed_form") -> tuple[object, dict, list[str]]:
    """Compact parameters for the dense ones: ``(plan, params, notes)``.

    Every layer takes its method's closed-form fit (:func:`compact_jax.compress.fit`);
    with ``how="gradient"`` the series layers are then refitted by the
    authors' Adam procedure. ``notes`` give the mean relative kernel error.
    """
    from compact_jax import compress, series

    if how not in FITS:
        raise UserError(f"pipeline.fit must be one of {', '.join(FITS)}; got {how!r}")
    plan, params = compress.fit(plan, dense_params)
    errors = []
    fit_gradient = jax.jit(series.fit_gradient, static_argnums=1)
    for entry in plan.layers:
        if entry.method not in _SERIES:
            continue
        kernel = get_node(dense_params, entry.path)["kernel"]
        node = dict(get_node(params, entry.path))
        if how == "gradient":
            fitted, _ = fit_gradient(kernel, entry.spec)
            node.update(fitted)
            set_node(params, entry.path, node)
        ph, pw = series.basis_matrices(entry.spec)  # kernel[h, w] = sum_ij P_h[h, i] A[i, j] P_w[w, j]
        approx = np.einsum("hi,ijco,wj->hwco", ph, np.asarray(node["coeffs"], np.float64), pw)
        errors.append(relative_error(approx, kernel))
    notes = [f"{how} fit of {len(errors)} series layers: mean relative kernel error {np.mean(errors):.4f}"] if errors else []
    return plan, params, notes


def quantizer(quant_cfg):
    """The :class:`compact_jax.quant.Quantizer` of ``pipeline.quant`` (None when ``bits`` is 0)."""
    from compact_jax import quant

    if not quant_cfg or not quant_cfg.get("bits"):
        return None
    try:
        return quant.Quantizer(kind=quant_cfg.get("kind", "mantissa"), bits=int(quant_cfg.bits))
    except (ValueError, TypeError) as error:
        raise UserError(f"pipeline.quant: {error}") from None


def compress_series(config, plan, model, variables, dataset) -> _stages.Compressed:
    """The method hook of :func:`run`: regression, optionally fake quantisation."""
    from compact_jax import compress

    plan, params, notes = fit_series(plan, variables["params"], how=config.pipeline.get("fit", "closed_form"))
    compact = compress.build(plan)
    evaluations = [("fitted (Pre)", compact)]
    label = "fine-tuned (Post)"
    q = quantizer(config.pipeline.get("quant"))
    if q is not None:
        compact = _stages.Adapted(compact, quantizer=q, quantize_inputs=bool(config.pipeline.quant.get("activations", True)))
        evaluations.append((f"fitted, {q.kind} {q.bits}-bit", compact))
        label = f"fine-tuned, {q.kind} {q.bits}-bit (Post)"
    return _stages.Compressed(
        title=f"{config.get('name', 'approx_finetune')}: ApproxConv regression then fine-tuning "
              f"(policy {plan.policy.name})",
        plan=plan, variables={**variables, "params": params}, train_model=compact, trained_label=label,
        evaluations=evaluations, notes=notes)


def run(config, workdir: str | None) -> _stages.PipelineResult:
    """Dense -> regress -> evaluate (Pre) -> fine-tune -> evaluate (Post); see the module docstring."""
    return _stages.run_pipeline(config, workdir, compress_series)
