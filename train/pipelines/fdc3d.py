"""FDC3D, Algorithm 1: per-layer frequency-domain compression of a trained 3-D network, then fine-tuning.

For every 3-D convolution the preset compresses (``compact_jax.report``'s
``fdc3d-2x`` / ``fdc3d-4x``: ``(p_c, p_t)`` per layer), in network order, with
its trained filters ``F`` fixed (Algorithm 1, steps 2-12):

1. its inputs ``X`` and outputs ``Y`` are recorded on training batches of the
   trained dense network (steps 4-6; ``flax.linen.intercept_methods``);
2. Eq. (9) is minimised over the transform ``S`` and the channel scales
   ``beta`` (step 8). With ``F`` fixed its terms separate: ``S`` (orthogonal)
   leaves the data term unchanged, so a learned ``S`` minimises the l2,1 norm
   ``||S F||_{2,1}`` of the frequency rows (Eq. 7,
   :func:`compact_jax.temporal.fit_transform`); a fixed ``S`` (the DCT, or the
   identity: the min-l2 ablation) is kept. ``beta`` minimises the LASSO of
   Eq. (8), ``||Y - conv(X; beta F)||^2 / ||Y||^2 + gamma mean|beta|``, by Adam
   from ``beta = 1`` on the recorded batches;
3. the ``floor(c p_c)`` channels of smallest ``|beta|`` are dropped, then the
   ``floor(t p_t)`` frequency rows of ``G = S F`` with least energy (steps
   10-11, :func:`compact_jax.temporal.prune`).

The pruned network is evaluated (before fine-tuning), then fine-tuned as a
whole (step 14) and evaluated again. ``pipeline.fdc3d.solver = "closed_form"``
uses no data (:func:`compact_jax.compress.fit`: channels by filter norm, rows
by energy, the transform at its initial value).

Run: ``python -m train --config ucf101_fdc3d:2x`` (see that config);
``python -m train.pipelines.fdc3d_ablation`` compares the transforms.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from train import data
from train.errors import UserError
from train.pipelines import _stages
from train.pipelines.policy import resolve_plan

__all__ = ["SOLVERS", "FittedLayer", "capture_layers", "fit_layer", "prune_layer", "fit_network", "prune_network",
           "compress_network", "run"]

SOLVERS = ("eq9", "closed_form")


def capture_layers(model, variables, batches, paths) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Inputs and outputs of the convolutions at ``paths`` (Algorithm 1, steps 4-6).

    Args:
      model: the dense network (inference mode: running batch statistics).
      variables: its variables.
      batches: input arrays ``(N, ...)``, one forward pass each.
      paths: ``/``-joined parameter paths of the layers to record.

    Returns:
      ``path -> (X, Y)`` stacked over batches: ``(B, N, *in)`` and ``(B, N, *out)``.
    """
    paths = frozenset(paths)

    @jax.jit
    def forward(variables, x):
        records = {}

        def record(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            path = "/".join(context.module.path)
            if context.method_name == "__call__" and path in paths and path not in records:
                records[path] = (args[0], out)
            return out

        with nn.intercept_methods(record):
            model.apply(variables, x, train=False)
        return records

    runs = [jax.device_get(forward(variables, x)) for x in batches]
    missing = sorted(paths - set(runs[0]))
    if missing:
        raise ValueError(f"capture_layers: no convolution called at {missing}")
    return {p: tuple(np.stack([r[p][i] for r in runs]) for i in range(2)) for p in paths}


def _conv_kwargs(layer) -> dict:
    return dict(strides=layer.strides, padding=layer.padding, input_dilation=layer.input_dilation,
                kernel_dilation=layer.kernel_dilation)


@functools.partial(jax.jit, static_argnames=("conv", "steps", "gamma", "learning_rate"))
def _fit_beta(kernel, bias, xs, ys, *, conv, steps, gamma, learning_rate):
    """Adam on Eq. (8)'s LASSO over ``beta`` (c,), from ones; returns ``(beta, objective history)``."""
    from compact_jax import fdc3d
    from compact_jax.conv import conv as conv_fn

    conv = dict(conv)
    power = jnp.mean(ys**2)
    optimizer = optax.adam(learning_rate)

    def loss(beta, x, y):
        out = conv_fn(x, kernel * beta.reshape((1,) * (kernel.ndim - 2) + (-1, 1)), **conv)
        if bias is not None:
            out = out + bias
        return jnp.mean((out - y) ** 2) / power + gamma * fdc3d.channel_sparsity({"beta": beta}) / beta.size

    def step(carry, i):
        beta, state = carry
        b = i % xs.shape[0]
        value, grad = jax.value_and_grad(loss)(beta, xs[b], ys[b])
        updates, state = optimizer.update(grad, state, beta)
        return (optax.apply_updates(beta, updates), state), value

    beta = jnp.ones((kernel.shape[-2],), kernel.dtype)
    (beta, _), history = jax.lax.scan(step, (beta, optimizer.init(beta)), jnp.arange(steps))
    return beta, history


def fit_layer(kernel, bias, xs, ys, spec, layer, *, transform_steps: int, transform_learning_rate: float,
              steps: int, gamma: float, learning_rate: float):
    """Eq. (9) on one layer with its filters fixed: ``(params, beta objective history)`` of the unpruned layer.

    Args:
      kernel: the trained dense kernel ``(t, kh, kw, c, N)``; bias: its bias or None.
      xs, ys: recorded inputs and outputs ``(B, N, ...)`` (one Adam step per batch, cycling).
      spec: the layer's unpruned :class:`~compact_jax.temporal.FrequencySpec`.
      layer: its :class:`compact_jax.compress.ConvLayer` (strides, padding, ...).
      transform_steps, transform_learning_rate: gradient descent on ``S`` (learned transforms).
      steps, gamma, learning_rate: Adam on ``beta``.
    """
    from compact_jax.fdc3d import TRANSFORM_PARAM

    kernel = jnp.asarray(kernel)
    if spec.transform in TRANSFORM_PARAM:
        params = _fit_transform(kernel, spec, steps=int(transform_steps), learning_rate=float(transform_learning_rate))
    else:
        params = _fit_fixed(kernel, spec)
    conv = tuple(_conv_kwargs(layer).items())
    beta, history = _fit_beta(kernel, None if bias is None else jnp.asarray(bias), jnp.asarray(xs), jnp.asarray(ys),
                              conv=conv, steps=int(steps), gamma=float(gamma), learning_rate=float(learning_rate))
    return {**params, "beta": beta}, history


@functools.partial(jax.jit, static_argnums=1, static_argnames=("steps", "learning_rate"))
def _fit_transform(kernel, spec, *, steps, learning_rate):
    from compact_jax import fdc3d

    return fdc3d.fit_transform(kernel, spec, steps=steps, learning_rate=learning_rate)


@functools.partial(jax.jit, static_argnums=1)
def _fit_fixed(kernel, spec):
    from compact_jax import fdc3d

    return fdc3d.fit(kernel, spec)


def prune_layer(params: dict, spec, *, p_c: float, p_t: float):
    """Steps 10-11: channels by ``|beta|``, then frequency rows by energy (:func:`compact_jax.temporal.prune`)."""
    from compact_jax import fdc3d

    return fdc3d.prune(params, spec, p_c=p_c, p_t=p_t)


@dataclasses.dataclass(frozen=True)
class FittedLayer:
    """One layer after Eq. (9), before pruning.

    Attributes:
      params: the unpruned FDC3D parameters (``coeffs``, ``beta``, a learned transform's parameters).
      spec: its unpruned :class:`~compact_jax.temporal.FrequencySpec`.
      prune: the plan's ``(p_c, p_t)`` (``(0, 0)``: none).
      bias: the dense layer's bias, or None.
      objective: the final value of Eq. (8)'s objective.
    """

    params: dict
    spec: object
    prune: tuple[float, float]
    bias: object
    objective: float


def fit_network(config, plan, model, variables, dataset) -> dict[str, FittedLayer]:
    """Algorithm 1, steps 2-9, on every FDC3D layer of ``plan``: ``path -> FittedLayer``, nothing pruned yet.

    The layer inputs and outputs are recorded once, on ``pipeline.fdc3d.batches``
    training batches of ``pipeline.fdc3d.batch_size``.
    """
    cfg = config.pipeline.fdc3d
    entries = [e for e in plan.layers if e.method == "fdc3d"]
    iterator = data.train_iterator(dataset, global_batch_size=int(cfg.batch_size), seed=int(config.seed) + 1)
    batches = [next(iterator)["inputs"] for _ in range(int(cfg.batches))]
    records = capture_layers(model, variables, batches, [e.path for e in entries])
    fitted = {}
    for entry in entries:
        dense = _stages.get_node(variables["params"], entry.path)
        full = dataclasses.replace(entry.spec, kept_rows=None, kept_channels=None)
        params, history = fit_layer(dense["kernel"], dense.get("bias"), *records[entry.path], full, entry.layer,
                                    transform_steps=cfg.transform_steps,
                                    transform_learning_rate=cfg.transform_learning_rate,
                                    steps=cfg.steps, gamma=cfg.gamma, learning_rate=cfg.learning_rate)
        fitted[entry.path] = FittedLayer(jax.device_get(params), full, entry.prune or (0.0, 0.0), dense.get("bias"),
                                         float(history[-1]) if len(history) else float("nan"))
    return fitted


def prune_network(plan, variables, fitted: dict[str, FittedLayer], *, only: str | None = None) -> tuple[object, dict]:
    """Algorithm 1, steps 10-13: every fitted layer pruned to its ``(p_c, p_t)``: ``(plan, params)``.

    ``only``: prune just the layer at this path; the other fitted layers keep
    all their channels and frequency rows (FDC3D's Fig. 2 prunes one layer).
    """
    from compact_jax import compress

    if only is not None and only not in fitted:
        raise ValueError(f"prune_network: only={only!r} is not a fitted FDC3D layer; fitted: {sorted(fitted)}")
    if all(e.method in ("fdc3d", "dense") for e in plan.layers):
        params = _stages.copy_tree(variables["params"])  # dense layers keep their kernels
    else:
        plan, params = compress.fit(plan, variables["params"])  # FDC3D layers are replaced below
    specs = {}
    for path, layer in fitted.items():
        p_c, p_t = layer.prune if only in (None, path) else (0.0, 0.0)
        pruned, spec = prune_layer(layer.params, layer.spec, p_c=p_c, p_t=p_t)
        if layer.bias is not None:
            pruned["bias"] = layer.bias
        _stages.set_node(params, path, pruned)
        specs[path] = spec
    return plan.with_specs(specs), params


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


def run(config, workdir: str | None) -> _stages.PipelineResult:
    """Dense -> Algorithm 1 -> evaluate -> fine-tune -> evaluate; see the module docstring."""
    from compact_jax import compress

    dataset = _stages.load_dataset(config)
    model, variables, dense_metrics = _stages.dense_stage(config, workdir, dataset)
    plan = resolve_plan(config.model.compress, model, _stages.input_shape(dataset))
    plan, params, notes = compress_network(config, plan, model, variables, dataset)
    compact = compress.build(plan)
    pruned = {**variables, "params": params}
    result = _stages.PipelineResult(
        title=f"{config.get('name', 'fdc3d')}: FDC3D Algorithm 1 (policy {plan.policy.name})",
        metric=_stages.PRIMARY_METRIC[dataset.task], notes=notes, values={"plan": plan})
    count = lambda tree: sum(int(np.size(leaf)) for leaf in jax.tree.leaves(tree))  # noqa: E731
    result.stages.append(("dense", count(variables["params"]), dense_metrics))
    result.stages.append(("pruned (before fine-tuning)", count(params), _stages.evaluate(config, compact, pruned, dataset)))
    result.add_trained("fine-tuned", _stages.finetune(config, workdir, compact, pruned))
    return result
