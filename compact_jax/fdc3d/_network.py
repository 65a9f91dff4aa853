"""FDC3D's Algorithm 1 on a trained network: record each layer's inputs and outputs, fit Eq. (9), prune.

Private helper of :mod:`compact_jax.fdc3d` (use ``fdc3d.capture_layers``,
``fdc3d.fit_outputs``, ...). For every 3-D convolution to compress, in network
order, with its trained filters ``F`` fixed (Algorithm 1, steps 2-12):

1. its inputs ``X`` and outputs ``Y`` are recorded on batches of the trained
   dense network (steps 4-6, :func:`capture_layers`);
2. Eq. (9) is minimised over the transform ``S`` and the channel scales
   ``beta`` (step 8, :func:`fit_layer`). With ``F`` fixed its terms separate:
   ``S`` (orthogonal) leaves the data term unchanged, so a learned ``S``
   minimises the l2,1 norm ``||S F||_{2,1}`` of the frequency rows (Eq. 7,
   :func:`compact_jax.fdc3d.fit_transform`); a fixed ``S`` (the DCT, or the
   identity: the min-l2 ablation) is kept. ``beta`` minimises the LASSO of
   Eq. (8) by Adam from ``beta = 1`` on the recorded batches
   (:func:`fit_outputs`);
3. the ``floor(c p_c)`` channels of smallest ``|beta|`` are dropped, then the
   ``floor(t p_t)`` frequency rows of ``G = S F`` with least energy (steps
   10-11, :func:`prune_network`).

:func:`fit_outputs` is the one Eq. (9) fit on recorded data: over ``beta``
(Eq. 8) here, over ``S`` and ``G`` with ``beta = 1`` in FDC3D's single-layer
experiment (:func:`compact_jax.experiments.fit_frequency_layer`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from compact_jax import fdc3d
from compact_jax.fdc3d._prune import channel_sparsity, group_sparsity, prune
from compact_jax.fdc3d._spec import TRANSFORM_PARAM, FrequencySpec
from compact_jax.pytree import copy_tree, get_node, set_node
from compact_jax.validate import check_int

__all__ = ["CONV_KEYS", "capture_layers", "fit_outputs", "fit_layer", "FittedLayer", "fit_network", "prune_network"]

#: The convolution arguments a layer passes on (``conv_kwargs`` keys).
CONV_KEYS = ("strides", "padding", "input_dilation", "kernel_dilation")


def capture_layers(model: nn.Module, variables: Mapping, batches: Iterable[Any], paths: Iterable[str], *,
                   apply_kwargs: Mapping[str, Any] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Inputs and outputs of the modules at ``paths`` (Algorithm 1, steps 4-6).

    Args:
      model: the dense network (a Linen module).
      variables: its variables.
      batches: input arrays ``(N, ...)``, one forward pass each.
      paths: ``/``-joined module paths of the layers to record.
      apply_kwargs: passed to ``model.apply``; default ``{"train": False}``
        (the zoo models' inference mode: running batch statistics).

    Returns:
      ``path -> (X, Y)`` stacked over batches: ``(B, N, *in)`` and ``(B, N, *out)``.

    Raises:
      ValueError: a path whose module is never called.
    """
    paths = frozenset(paths)
    apply_kwargs = {"train": False} if apply_kwargs is None else dict(apply_kwargs)

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
            model.apply(variables, x, **apply_kwargs)
        return records

    runs = [jax.device_get(forward(variables, x)) for x in batches]
    if not runs:
        raise ValueError("capture_layers: batches is empty; pass at least one input batch")
    missing = sorted(paths - set(runs[0]))
    if missing:
        raise ValueError(f"capture_layers: no convolution called at {missing}")
    return {p: tuple(np.stack([r[p][i] for r in runs]) for i in range(2)) for p in paths}


def _static(value: Any) -> Any:
    """Lists as tuples, so that convolution arguments can be static jit arguments."""
    if isinstance(value, (list, tuple)):
        return tuple(_static(v) for v in value)
    return value


def _hashable_conv_kwargs(conv_kwargs: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """Checked, hashable ``conv_kwargs`` (keys of :data:`CONV_KEYS`)."""
    conv_kwargs = dict(conv_kwargs or {})
    unknown = sorted(set(conv_kwargs) - set(CONV_KEYS))
    if unknown:
        raise ValueError(f"conv_kwargs may hold {', '.join(CONV_KEYS)}; got unknown keys {unknown}")
    return tuple((k, _static(v)) for k, v in sorted(conv_kwargs.items()))


def fit_outputs(
    params: dict,
    spec: FrequencySpec,
    xs: Any,
    ys: Any,
    *,
    train: Sequence[str],
    bias: Any = None,
    row_weight: float = 0.0,
    channel_weight: float = 0.0,
    steps: int = 200,
    learning_rate: float = 0.01,
    conv_kwargs: Mapping[str, Any] | None = None,
) -> tuple[dict, np.ndarray]:
    """Eq. (9) on one layer's recorded inputs and outputs, over the parameters named in ``train``.

    Minimises, by Adam from ``params`` with one step per recorded batch (cycling),

    .. math:: \\frac{\\|Y - \\mathrm{conv}(X; S, G, \\beta) - b\\|^2}{\\|Y\\|^2}
              + w_r \\|G\\|_{2,1} + w_c \\|\\beta\\|_1

    with the other parameters fixed. Coefficients are optimised in units of
    their rms value, so that ``learning_rate`` is scale-free. A learned ``S``
    stays exactly orthogonal (its parametrisation). One jitted ``lax.scan``.

    Args:
      params: the layer's parameters (e.g. :func:`compact_jax.fdc3d.fit` of the dense kernel).
      spec: its spec.
      xs, ys: recorded inputs ``(B, N, T, H, W, c)`` and outputs ``(B, N, T', H', W', N_out)``.
      train: names of the parameters to optimise (``"coeffs"``, ``"beta"``, the transform's).
      bias: the layer's bias (added to its output), or None.
      row_weight, channel_weight: ``w_r`` and ``w_c``.
      steps, learning_rate: Adam.
      conv_kwargs: the layer's ``strides``, ``padding``, dilations.

    Returns:
      ``(params, history)``: all the layer's parameters, and ``history (steps, 2)``
      of the objective and its data term before each step.
    """
    train = tuple(train)
    unknown = sorted(set(train) - set(params))
    if unknown:
        raise ValueError(f"fit_outputs: train names {unknown} are not parameters of the layer ({sorted(params)})")
    steps = check_int("steps", steps, minimum=0)
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    if xs.ndim != 6 or ys.ndim != 6 or xs.shape[0] != ys.shape[0]:
        raise ValueError(f"fit_outputs: xs and ys must be (B, N, T, H, W, C) records of the same B batches, got "
                         f"shapes {xs.shape} and {ys.shape}")
    return _fit_outputs(params, None if bias is None else jnp.asarray(bias), xs, ys, spec, train=train,
                        row_weight=float(row_weight), channel_weight=float(channel_weight), steps=steps,
                        learning_rate=float(learning_rate), conv=_hashable_conv_kwargs(conv_kwargs))


@functools.partial(jax.jit, static_argnums=4,
                   static_argnames=("train", "row_weight", "channel_weight", "steps", "learning_rate", "conv"))
def _fit_outputs(params, bias, xs, ys, spec, *, train, row_weight, channel_weight, steps, learning_rate, conv):
    conv = dict(conv)
    power = jnp.mean(ys**2)
    # Adam steps have the size of the learning rate: coefficients are optimised
    # in units of their rms value so that the rate is scale-free.
    unit = jnp.linalg.norm(params["coeffs"]) / np.sqrt(params["coeffs"].size)
    scale = {name: unit if name == "coeffs" else 1.0 for name in params}
    fixed = {k: v for k, v in params.items() if k not in train}
    optimizer = optax.adam(learning_rate)

    def layer_params(trainable):
        return {**fixed, **{k: v * scale[k] for k, v in trainable.items()}}

    def loss(trainable, x, y):
        layer = layer_params(trainable)
        out = fdc3d.apply(layer, x, spec, path="kernel", **conv)
        if bias is not None:
            out = out + bias
        data = jnp.mean((out - y) ** 2) / power
        total = data
        if row_weight:
            total = total + row_weight * group_sparsity(layer, spec)
        if channel_weight:
            total = total + channel_weight * channel_sparsity(layer)
        return total, data

    def step(carry, i):
        trainable, state = carry
        b = i % xs.shape[0]
        (total, data), grads = jax.value_and_grad(loss, has_aux=True)(trainable, xs[b], ys[b])
        updates, state = optimizer.update(grads, state, trainable)
        return (optax.apply_updates(trainable, updates), state), jnp.stack([total, data])

    trainable = {k: params[k] / scale[k] for k in train}
    (trainable, _), history = jax.lax.scan(step, (trainable, optimizer.init(trainable)), jnp.arange(steps))
    return layer_params(trainable), history.reshape(steps, 2)


@functools.partial(jax.jit, static_argnums=1, static_argnames=("steps", "learning_rate"))
def _fit_transform(kernel, spec, *, steps, learning_rate):
    return fdc3d.fit_transform(kernel, spec, steps=steps, learning_rate=learning_rate)


@functools.partial(jax.jit, static_argnums=1)
def _fit_fixed(kernel, spec):
    return fdc3d.fit(kernel, spec)


def fit_layer(kernel: Any, bias: Any, xs: Any, ys: Any, spec: FrequencySpec, *,
              conv_kwargs: Mapping[str, Any] | None = None, transform_steps: int = 500,
              transform_learning_rate: float = 0.05, steps: int = 200, gamma: float = 0.01,
              learning_rate: float = 0.01) -> tuple[dict, np.ndarray]:
    """Eq. (9) on one layer with its filters fixed (Algorithm 1, step 8): the unpruned layer.

    A learned ``S`` minimises Eq. (7)'s l2,1 norm (:func:`compact_jax.fdc3d.fit_transform`),
    a fixed one is kept; ``G = S F`` exactly; then ``beta`` minimises Eq. (8)'s
    LASSO ``||Y - conv(X; beta F)||^2 / ||Y||^2 + gamma mean|beta|`` by Adam
    from ``beta = 1`` (:func:`fit_outputs`).

    Args:
      kernel: the trained dense kernel ``(t, kh, kw, c, N)``; bias: its bias or None.
      xs, ys: recorded inputs and outputs ``(B, N, ...)`` (one Adam step per batch, cycling).
      spec: the layer's unpruned :class:`~compact_jax.fdc3d.FrequencySpec`.
      conv_kwargs: the layer's ``strides``, ``padding``, dilations.
      transform_steps, transform_learning_rate: gradient descent on ``S`` (learned transforms).
      steps, gamma, learning_rate: Adam on ``beta``.

    Returns:
      ``(params, history)``: the unpruned layer's parameters and Eq. (8)'s
      objective before each Adam step.
    """
    kernel = jnp.asarray(kernel)
    if spec.transform in TRANSFORM_PARAM:
        params = _fit_transform(kernel, spec, steps=int(transform_steps), learning_rate=float(transform_learning_rate))
    else:
        params = _fit_fixed(kernel, spec)
    params, history = fit_outputs(params, spec, xs, ys, train=("beta",), bias=bias,
                                  channel_weight=float(gamma) / spec.num_channels, steps=steps,
                                  learning_rate=learning_rate, conv_kwargs=conv_kwargs)
    return params, history[:, 0]


@dataclasses.dataclass(frozen=True)
class FittedLayer:
    """One layer after Eq. (9), before pruning.

    Attributes:
      params: the unpruned FDC3D parameters (``coeffs``, ``beta``, a learned transform's parameters).
      spec: its unpruned :class:`~compact_jax.fdc3d.FrequencySpec`.
      prune: the plan's ``(p_c, p_t)`` (``(0, 0)``: none).
      bias: the dense layer's bias, or None.
      objective: the final value of Eq. (8)'s objective.
    """

    params: dict
    spec: FrequencySpec
    prune: tuple[float, float]
    bias: Any
    objective: float


def fit_network(plan: Any, model: nn.Module, variables: Mapping, batches: Iterable[Any], *,
                transform_steps: int = 500, transform_learning_rate: float = 0.05, steps: int = 200,
                gamma: float = 0.01, learning_rate: float = 0.01,
                apply_kwargs: Mapping[str, Any] | None = None) -> dict[str, FittedLayer]:
    """Algorithm 1, steps 2-9, on every FDC3D layer of a plan: ``path -> FittedLayer``, nothing pruned yet.

    Args:
      plan: a :class:`compact_jax.compress.Plan` of ``model``; its ``fdc3d``
        layers are fitted.
      model, variables: the trained dense network.
      batches: input batches its layers' inputs and outputs are recorded on
        (:func:`capture_layers`, with ``apply_kwargs``).
      transform_steps, transform_learning_rate, steps, gamma, learning_rate: :func:`fit_layer`.
    """
    entries = [e for e in plan.layers if e.method == "fdc3d"]
    records = capture_layers(model, variables, batches, [e.path for e in entries], apply_kwargs=apply_kwargs)
    fitted = {}
    for entry in entries:
        dense = get_node(variables["params"], entry.path, "fit_network")
        full = dataclasses.replace(entry.spec, kept_rows=None, kept_channels=None)
        conv_kwargs = {key: getattr(entry.layer, key) for key in CONV_KEYS}
        params, history = fit_layer(dense["kernel"], dense.get("bias"), *records[entry.path], full,
                                    conv_kwargs=conv_kwargs, transform_steps=transform_steps,
                                    transform_learning_rate=transform_learning_rate, steps=steps, gamma=gamma,
                                    learning_rate=learning_rate)
        fitted[entry.path] = FittedLayer(jax.device_get(params), full, entry.prune or (0.0, 0.0), dense.get("bias"),
                                         float(history[-1]) if len(history) else float("nan"))
    return fitted


def prune_network(plan: Any, params: Mapping, fitted: Mapping[str, FittedLayer], *,
                  only: str | None = None) -> tuple[Any, dict]:
    """Algorithm 1, steps 10-13: every fitted layer pruned to its ``(p_c, p_t)``: ``(plan, params)``.

    Args:
      plan: the :class:`compact_jax.compress.Plan` the layers were fitted for.
      params: the network's parameters the pruned layers are written into
        (copied): the dense ones, or :func:`compact_jax.compress.fit`'s where
        other layers use other methods.
      fitted: :func:`fit_network`'s layers.
      only: prune just the layer at this path; the other fitted layers keep
        all their channels and frequency rows (FDC3D's Fig. 2 prunes one layer).
    """
    if only is not None and only not in fitted:
        raise ValueError(f"prune_network: only={only!r} is not a fitted FDC3D layer; fitted: {sorted(fitted)}")
    params = copy_tree(params, where="prune_network")
    specs = {}
    for path, layer in fitted.items():
        p_c, p_t = layer.prune if only in (None, path) else (0.0, 0.0)
        pruned, spec = prune(layer.params, layer.spec, p_c=p_c, p_t=p_t)
        if layer.bias is not None:
            pruned["bias"] = layer.bias
        set_node(params, path, pruned)
        specs[path] = spec
    return plan.with_specs(specs), params
