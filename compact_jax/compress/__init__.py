"""Compression policies: which layer gets which method; dense -> compact fits; compact -> dense folds.

A :class:`Policy` is an ordered list of :class:`Rule` s. Each rule matches
convolutions by parameter path (``"stage1/block0/conv1"``, glob or regex),
kernel size (``"3x3"``, ``">1"``) and input channels, and names a method with
its hyperparameters; the first matching rule wins and unmatched layers stay
dense. Layers may share one filter basis (``Rule.share``): block-wise,
group-wise, network-wise, or sliced (a layer with ``p`` channels per split
uses the leading ``p`` channels of a wider basis, as DenseNet does).

The same policy, resolved on a model (:func:`resolve`, a trace without
compute), gives

* :func:`build`: a fresh compact Linen model with the dense model's call
  signature and parameter paths (plus ``shared_basis_<key>`` entries);
* :func:`fit`: compact parameters for trained dense ones, each layer by its
  method's closed-form ``fit`` and shared bases by a joint fit;
* :func:`fold`: dense parameters for compact ones (``build_kernel`` per
  layer), which load into the dense model for deployment;
  :func:`fold_modules` does the same for any model built from
  :mod:`compact_jax.linen` convolutions (a conv factory), with no plan.

Example (3D-FilterMap on every k x k conv of a trained ResNet-18)::

    from compact_jax import compress, models
    model = models.get_model("resnet18_cifar")
    policy = compress.Policy(rules=[
        compress.Rule(kernel=">1", in_features=3, method="filtermap", options={"grid": (8, 8, 1)}),
        compress.Rule(kernel=">1", method="filtermap"),      # Table 1 grids; 1x1 stay dense
    ])
    plan = compress.resolve(policy, model, (1, 32, 32, 3))
    compact = compress.build(plan)                            # a flax.linen Module
    plan, params = compress.fit(plan, dense_variables["params"])
    logits = compact.apply({**dense_variables, "params": params}, images, train=False)
    dense_params = compress.fold(plan, params)                # loads into `model`

Named policies from the papers, with how each paper counts parameters, are
:data:`PRESETS` (:func:`get_preset`; :mod:`compact_jax.report` prints them).

Sizes need no compute: ApproxConv's ResNet-32 preset (Table 1: 0.46M -> 0.27M
parameters), counted on the shapes of the dense and compact models:

>>> import jax
>>> import jax.numpy as jnp
>>> from compact_jax import compress, count_params, models
>>> model = models.get_model("resnet32", num_classes=10)
>>> plan = compress.resolve(compress.get_preset("approx-resnet32").policy, model, (1, 32, 32, 3))
>>> def size(m):
...     init = lambda: m.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
...     return count_params(jax.eval_shape(init)["params"])
>>> size(model), size(compress.build(plan))
(464154, 269594)

``fold(fit(W)) == W`` wherever the method is lossless: ``N = K`` harmonics, a
full-rank basis (``m >= kh*kw*p``), FDC3D without pruning, and a FilterMap
whose filters do not overlap (strides ``(kh, kw, C)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn

from compact_jax.compress import _build, _fit, _fold, _plan
from compact_jax.compress._build import CompactModel, DispatchConv
from compact_jax.compress._fit import fit_sliced_basis
from compact_jax.compress._plan import LayerPlan, Plan, SharedBasisPlan
from compact_jax.compress._policy import METHODS, Policy, Rule, expand_runs, per_group_rules
from compact_jax.compress._presets import (
    ALL,
    CATEGORIES,
    CONV_WEIGHTS,
    FILTER_BASIS,
    PER_BLOCK,
    PRESETS,
    Counting,
    ModelSetting,
    PaperFigure,
    Preset,
    get_preset,
)
from compact_jax.compress._trace import NORM_TYPES, ConvLayer, ModelTrace, trace_model

__all__ = [
    "METHODS",
    "Rule",
    "Policy",
    "per_group_rules",
    "expand_runs",
    "ConvLayer",
    "ModelTrace",
    "NORM_TYPES",
    "LayerPlan",
    "SharedBasisPlan",
    "Plan",
    "CompactModel",
    "DispatchConv",
    "trace_model",
    "resolve",
    "build",
    "fit",
    "fold",
    "fold_modules",
    "fit_sliced_basis",
    "compress",
    # named policies from the papers, with their counting conventions
    "PRESETS",
    "get_preset",
    "Preset",
    "ModelSetting",
    "PaperFigure",
    "Counting",
    "CATEGORIES",
    "ALL",
    "FILTER_BASIS",
    "PER_BLOCK",
    "CONV_WEIGHTS",
]


def resolve(
    policy: Policy,
    model: nn.Module | ModelTrace,
    input_shape: Sequence[int] | None = None,
    *,
    call_kwargs: Mapping[str, Any] | None = None,
) -> Plan:
    """Applies ``policy`` to ``model``: one method and spec per convolution.

    Args:
      policy: the rules.
      model: a Linen model with a ``conv`` factory field (every
        :mod:`compact_jax.models` network), or a :class:`ModelTrace` from
        :func:`trace_model` to resolve several policies on one trace.
      input_shape: ``(N, *spatial, C)`` of a model input; it fixes the channel
        counts (and the multiply-add counts of reports). Not with a trace.
      call_kwargs: keyword arguments of the model call; default
        ``{"train": False}``. Not with a trace.

    Raises:
      ValueError / TypeError: naming the rule or layer at fault: a rule that
        matches no convolution, options a layer cannot take (harmonics above
        its kernel, a FilterMap grid that does not fit, ...), or a shared basis
        that does not cover a layer's channels.
    """
    if isinstance(model, ModelTrace):
        if input_shape is not None or call_kwargs is not None:
            raise TypeError("resolve: input_shape and call_kwargs come from the trace; do not pass them with one")
        return _plan.resolve(policy, model)
    if input_shape is None:
        raise TypeError("resolve: input_shape is required with a model")
    return _plan.resolve(policy, trace_model(model, input_shape, call_kwargs=call_kwargs))


def build(plan: Plan) -> CompactModel:
    """The compact model: ``plan.model`` with every planned convolution replaced.

    Called like the dense model (``compact.init(key, x, train=False)``,
    ``compact.apply(variables, x, train=False)``); its parameter tree equals
    the dense one except at the compressed convolutions and for one
    ``shared_basis_<key>`` entry per shared basis.
    """
    return _build.build(plan)


def fit(plan: Plan, params: Any, *, steps: int = 10) -> tuple[Plan, dict]:
    """Compact parameters closest to trained dense ones.

    Each convolution takes its method's ``fit`` (least squares / SVD / exact
    transform); layers sharing one basis take a joint fit: the truncated SVD
    of all their filter splits (:func:`compact_jax.basis.fit_shared`), or for
    sliced sharing :func:`fit_sliced_basis` (``steps`` alternating
    least-squares refinements). FDC3D layers with ``p_c`` / ``p_t`` are then
    pruned as in Algorithm 1 (channels by filter norm, frequency rows by
    energy), which changes their specs, hence the returned plan.

    Args:
      plan: from :func:`resolve`.
      params: the dense model's ``"params"`` collection.
      steps: refinement steps of sliced shared bases.

    Returns:
      ``(plan, params)``: the (possibly updated) plan to :func:`build` from and
      the compact ``"params"``; non-convolution parameters are copied.
    """
    return _fit.fit(plan, params, steps=steps)


def fold(plan: Plan, params: Any) -> dict:
    """Dense ``"params"`` for compact ones: each layer's ``build_kernel`` (and
    the basis bias folded into the conv bias); they load into ``plan.model``.

    Raises:
      ValueError: naming a layer with no single dense kernel (a basis layer
        with a larger coefficient conv).
    """
    return _fold.fold(plan, params)


def fold_modules(model: nn.Module, variables: Any, *args: Any, **kwargs: Any) -> dict:
    """Dense ``"params"`` for any model built from :mod:`compact_jax.linen` convolutions.

    Runs ``model.apply(variables, *args, **kwargs)`` once (one example,
    inference mode) and replaces every compact conv it calls by its built
    kernel and bias; shared bases are dropped. Works for a conv-factory model
    (``get_model(name, conv=FilterMapConv)``) and for :func:`build`'s compact
    model alike; the result loads into the same network with dense convs.

    Raises:
      ValueError: naming a layer with no single dense kernel (a basis layer
        with a larger coefficient conv), or if no compact conv is called.
    """
    return _fold.fold_modules(model, variables, *args, **kwargs)


def compress(
    policy: Policy,
    model: nn.Module,
    params: Any,
    input_shape: Sequence[int],
    *,
    call_kwargs: Mapping[str, Any] | None = None,
) -> tuple[CompactModel, dict, Plan]:
    """Resolve, fit and build in one call: ``(compact_model, compact_params, plan)``."""
    plan, compact_params = fit(resolve(policy, model, input_shape, call_kwargs=call_kwargs), params)
    return build(plan), compact_params, plan
