"""Learning Filter Basis with Eq. (18)'s pull towards a pretrained network.

The compact network of the preset (e.g. ``basis-resnet56``: group-wise
shared bases) starts from the truncated SVD of a trained dense network's
filters (``pipeline.init = "svd"``, :func:`compact_jax.compress.fit`) or from
scratch (``"random"``), and trains on

.. math:: \\mathcal{L}(y, f_{B, A}(x)) + \\gamma \\sum_l \\|W^l - B^l A^l\\|_F^2

with ``W^l`` the pretrained kernels (``pipeline.gamma``; 0 drops the term).
Layers with a ``k x k`` coefficient conv (DenseNet's 3x3) have no single
``B A`` kernel and are left out of the sum (named in the report).

Run: ``python -m train --config cifar_basis:resnet56,pretrained`` (see that config).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from compact_jax.pytree import get_node
from train import steps
from train.errors import UserError
from train.pipelines import _stages
from train.pipelines.choices import INITS

__all__ = ["INITS", "regularized_layers", "basis_penalty", "basis_distance", "compress_basis", "run"]


def regularized_layers(plan) -> list:
    """The basis layers Eq. (18) applies to (1x1 coefficient conv)."""
    return [e for e in plan.layers if e.method == "basis" and tuple(e.spec.coef_kernel_size) == (1, 1)]


def _layer_params(params, plan, entry) -> dict:
    node = get_node(params, entry.path)
    out = {"coef": node["coef"]}
    out["basis"] = params[plan.shared_basis(entry.share).module_name]["basis"] if entry.share else node["basis"]
    if entry.spec.basis_bias:
        out["basis_bias"] = node["basis_bias"]
    return out


def basis_penalty(plan, dense_params, gamma: float):
    """``params -> gamma * sum_l ||W_l - B_l A_l||_F^2`` over :func:`regularized_layers`."""
    from compact_jax import basis

    entries = regularized_layers(plan)
    kernels = {e.path: jnp.asarray(get_node(dense_params, e.path)["kernel"]) for e in entries}

    def penalty(params):
        total = jnp.zeros((), jnp.float32)
        for entry in entries:
            total += basis.basis_regularizer(kernels[entry.path], _layer_params(params, plan, entry), entry.spec, 1.0)
        return gamma * total

    return penalty


def basis_distance(plan, params, dense_params) -> float:
    """``sqrt(sum_l ||W_l - B_l A_l||^2 / sum_l ||W_l||^2)`` over :func:`regularized_layers`."""
    from compact_jax import basis

    residual = total = 0.0
    build = jax.jit(basis.build_kernel, static_argnums=1)
    for entry in regularized_layers(plan):
        kernel = np.asarray(get_node(dense_params, entry.path)["kernel"], np.float64)
        approx = np.asarray(build(_layer_params(params, plan, entry), entry.spec), np.float64)
        residual += float(np.sum((kernel - approx) ** 2))
        total += float(np.sum(kernel**2))
    return float(np.sqrt(residual / total)) if total else float("nan")


def compress_basis(config, plan, model, variables, dataset) -> _stages.Compressed:
    """The method hook of :func:`run`: SVD (or random) init and the Eq. (18) penalty."""
    from compact_jax import compress

    init, gamma = config.pipeline.get("init", "svd"), float(config.pipeline.get("gamma", 0.0))
    compact = compress.build(plan)
    if init == "svd":
        plan, params = compress.fit(plan, variables["params"])
        start = {**variables, "params": params}
    else:
        key = jax.random.key(int(config.seed), impl=steps.RNG_IMPL)
        init_fn = jax.jit(lambda x: compact.init({"params": key, "dropout": key}, x, train=False))
        start = jax.device_get(init_fn(jnp.zeros(_stages.input_shape(dataset))))
    dense_params = variables["params"]
    before = basis_distance(plan, start["params"], dense_params)

    def after(result: _stages.PipelineResult) -> None:
        distance = basis_distance(plan, jax.device_get(result.state["params"]), dense_params)
        skipped = [e.path for e in plan.layers if e.method == "basis" and e not in regularized_layers(plan)]
        result.notes.append(f"relative ||W - BA||: {before:.4f} at the start, {distance:.4f} after training"
                            + (f" (not counted: {len(skipped)} layers with a k x k coefficient conv)" if skipped else ""))
        result.values.update(distance_before=before, distance_after=distance)

    return _stages.Compressed(
        title=f"{config.get('name', 'basis')}: filter basis from a {'SVD of the' if init == 'svd' else 'random init,'} "
              f"pretrained network, gamma={gamma:g} (policy {plan.policy.name})",
        plan=plan, variables=start,
        train_model=_stages.Adapted(compact, penalty=basis_penalty(plan, dense_params, gamma)) if gamma else compact,
        trained_label="trained", evaluations=[("SVD init", compact)] if init == "svd" else [],
        penalty=bool(gamma), desc="basis", after=after)


def run(config, workdir: str | None) -> _stages.PipelineResult:
    """Dense -> SVD (or random) init -> train with the Eq. (18) penalty -> evaluate."""
    cfg = config.pipeline
    init, gamma = cfg.get("init", "svd"), float(cfg.get("gamma", 0.0))
    if init not in INITS:
        raise UserError(f"pipeline.init must be one of {', '.join(INITS)}; got {init!r}")
    if gamma < 0:
        raise UserError(f"pipeline.gamma must be >= 0; got {gamma}")
    return _stages.run_pipeline(config, workdir, compress_basis)
