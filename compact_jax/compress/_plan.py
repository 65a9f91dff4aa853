"""Resolving a policy on a traced model: one method and spec per convolution.

Private helper of :mod:`compact_jax.compress`. Every mistake is reported here,
before any model is built, with the layer (or rule) it concerns.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from compact_jax import fdc3d
from compact_jax.compress._policy import METHODS, Policy, Rule
from compact_jax.compress._trace import ConvLayer, ModelTrace
from compact_jax.protocol import ConvSpec, Method

__all__ = ["LayerPlan", "SharedBasisPlan", "Plan", "resolve"]


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    """The method and spec chosen for one convolution.

    Attributes:
      layer: the traced convolution.
      method: a name of :data:`compact_jax.METHODS`.
      spec: the method's spec for this layer.
      rule: index of the winning rule in the policy (None: the default).
      share: key of the shared basis the layer uses (basis only), or None.
      prune: FDC3D ``(p_c, p_t)`` that :func:`compact_jax.compress.fit` applies
        (Algorithm 1's pruning step), or None.
    """

    layer: ConvLayer
    method: str
    spec: ConvSpec
    rule: int | None = None
    share: str | None = None
    prune: tuple[float, float] | None = None

    @property
    def record(self) -> Method:
        """The method's record (:data:`compact_jax.METHODS`)."""
        return METHODS[self.method]

    @property
    def path(self) -> str:
        return self.layer.path


@dataclasses.dataclass(frozen=True)
class SharedBasisPlan:
    """One filter basis shared by several layers.

    Attributes:
      key: the formatted ``Rule.share`` string.
      module_name: the top-level parameter name of the basis module.
      shape: ``(kh, kw, P, m)``.
      members: paths of the layers using it.
    """

    key: str
    module_name: str
    shape: tuple[int, int, int, int]
    members: tuple[str, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """A policy resolved on one model: what :func:`compact_jax.compress.build`,
    :func:`~compact_jax.compress.fit`, :func:`~compact_jax.compress.fold` and the
    report work from.

    Attributes:
      trace: the traced dense model.
      policy: the policy.
      layers: one :class:`LayerPlan` per convolution, in call order.
      shared: the shared bases.
    """

    trace: ModelTrace
    policy: Policy
    layers: tuple[LayerPlan, ...]
    shared: tuple[SharedBasisPlan, ...] = ()

    @property
    def model(self) -> Any:
        """The dense model the plan was resolved on."""
        return self.trace.model

    def layer(self, path: str) -> LayerPlan:
        """The plan of the convolution at ``path``."""
        for entry in self.layers:
            if entry.path == path:
                return entry
        raise KeyError(
            f"no convolution {path!r} in the plan (resolved on {type(self.model).__name__} with input "
            f"{self.trace.input_shape}); its convolutions: {', '.join(e.path for e in self.layers[:8])}..."
        )

    def shared_basis(self, key: str) -> SharedBasisPlan:
        for group in self.shared:
            if group.key == key:
                return group
        raise KeyError(key)

    def with_specs(self, specs: Mapping[str, ConvSpec]) -> Plan:
        """A copy with the specs of some layers replaced (e.g. after FDC3D pruning)."""
        layers = tuple(dataclasses.replace(e, spec=specs[e.path]) if e.path in specs else e for e in self.layers)
        return dataclasses.replace(self, layers=layers)


def _layer_error(err: Exception, layer: ConvLayer, rule: Rule | None, index: int | None) -> Exception:
    origin = f"rule {index} ({rule.describe()})" if rule is not None else "the policy default"
    return type(err)(f"layer {layer.path!r} {_shape_text(layer)}, {origin}: {err}")


def _shape_text(layer: ConvLayer) -> str:
    ks = "x".join(map(str, layer.kernel_size))
    groups = f", groups {layer.feature_group_count}" if layer.feature_group_count > 1 else ""
    return f"({ks} conv {layer.in_features}->{layer.features}{groups})"


def _spec_fields(layer: ConvLayer, entry: Method, options: Mapping[str, Any]) -> tuple[dict, Any]:
    """Spec keyword arguments from rule options; also the FDC3D prune fractions."""
    opts = {name: (value(layer) if callable(value) else value) for name, value in options.items()}
    prune = None
    if "split_size" in opts:
        p = opts.pop("split_size")
        if not isinstance(p, int) or isinstance(p, bool) or p < 1 or layer.in_features % p:
            raise ValueError(
                f"split_size={p!r} must be a positive divisor of the layer's {layer.in_features} input channels"
            )
        opts["splits"] = layer.in_features // p
    if "p_c" in opts or "p_t" in opts:
        if "kept_rows" in opts or "kept_channels" in opts:
            raise ValueError("give either p_c / p_t (pruning fractions) or kept_rows / kept_channels, not both")
        p_c, p_t = float(opts.pop("p_c", 0.0)), float(opts.pop("p_t", 0.0))
        c_kept, t_kept = fdc3d.pruned_sizes(layer.in_features, layer.kernel_size[0], p_c=p_c, p_t=p_t)
        # Until fit() prunes by importance, keep the lowest frequencies and the leading channels.
        opts["kept_rows"] = tuple(range(t_kept))
        opts["kept_channels"] = tuple(range(c_kept))
        prune = (p_c, p_t) if p_c or p_t else None
    fields = dict(features=layer.features, in_features=layer.in_features, kernel_size=layer.kernel_size,
                  feature_group_count=layer.feature_group_count)
    return {**fields, **entry.fixed, **opts}, prune


def _winners(policy: Policy, trace: ModelTrace) -> list[int | None]:
    winners: list[int | None] = [None] * len(trace.layers)
    names = [layer.path for layer in trace.layers]
    for i, rule in enumerate(policy.rules):
        matched = [j for j, layer in enumerate(trace.layers) if rule.matches(layer)]
        won = [j for j in matched if winners[j] is None]
        for j in won:
            winners[j] = i
        if rule.optional:
            continue
        if not matched:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise ValueError(
                f"rule {i} ({rule.describe()}) matches no convolution of {type(trace.model).__name__}; "
                f"its convolutions are: {shown}"
            )
        if not won:
            raise ValueError(
                f"rule {i} ({rule.describe()}) matches only convolutions already claimed by earlier rules "
                f"({', '.join(names[j] for j in matched[:6])}); reorder the rules or mark it optional"
            )
    return winners


def _module_name(key: str) -> str:
    return "shared_basis_" + re.sub(r"[^0-9A-Za-z_]", "_", key)


def _share_groups(
    plans: list[LayerPlan], widths: Mapping[str, int | None], trace: ModelTrace
) -> list[SharedBasisPlan]:
    groups: dict[str, list[int]] = {}
    for i, entry in enumerate(plans):
        if entry.share is not None:
            groups.setdefault(entry.share, []).append(i)
    shared, names = [], {}
    for key, members in groups.items():
        first = plans[members[0]]
        explicit = {}
        for i in members:
            entry = plans[i]
            spec, ref = entry.spec, first.spec
            if (spec.kernel_size, spec.num_basis) != (ref.kernel_size, ref.num_basis):
                raise ValueError(
                    f"shared basis {key!r}: layer {entry.path!r} has kernel {spec.kernel_size} and num_basis "
                    f"{spec.num_basis}, but layer {first.path!r} has {ref.kernel_size} and {ref.num_basis}; "
                    f"layers sharing a basis must agree on both"
                )
            if widths.get(entry.path) is not None:
                explicit[entry.path] = widths[entry.path]
        if len(set(explicit.values())) > 1:
            raise ValueError(f"shared basis {key!r}: layers give different basis_in_features {explicit}")
        width = next(iter(explicit.values())) if explicit else max(plans[i].spec.split_size for i in members)
        for i in members:
            entry = plans[i]
            if entry.spec.split_size > width:
                raise ValueError(
                    f"layer {entry.path!r} {_shape_text(entry.layer)}: its split size p = "
                    f"{entry.spec.split_size} exceeds the {width} channels of shared basis {key!r}; the "
                    f"shared basis must cover every layer using it (raise basis_in_features or the splits)"
                )
            plans[i] = dataclasses.replace(entry, spec=dataclasses.replace(entry.spec, basis_in_features=width))
        name = _module_name(key)
        if name in names or name in trace.params:
            raise ValueError(
                f"shared basis {key!r} would be stored as {name!r}, which is already taken by "
                f"{names.get(name, 'a parameter of the model')!r}; choose another share key"
            )
        names[name] = key
        shape = (*first.spec.kernel_size, width, first.spec.num_basis)
        shared.append(SharedBasisPlan(key, name, shape, tuple(plans[i].path for i in members)))
    return shared


def resolve(policy: Policy, trace: ModelTrace) -> Plan:
    """One :class:`LayerPlan` per convolution of ``trace``; see :func:`compact_jax.compress.plan`."""
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a compact_jax.compress.Policy, got {type(policy).__name__}")
    if not trace.layers:
        raise ValueError(f"{type(trace.model).__name__} has no convolution to compress")
    winners = _winners(policy, trace)
    plans, widths = [], {}
    for layer, index in zip(trace.layers, winners):
        rule = None if index is None else policy.rules[index]
        method = policy.default if rule is None else rule.method
        entry = METHODS[method]
        try:
            fields, prune = _spec_fields(layer, entry, {} if rule is None else rule.options)
            share = None
            if rule is not None and rule.share is not None:
                share = rule.share.format(**layer.share_fields())
                # The shared basis's width is settled per group (it must cover every member).
                widths[layer.path] = fields.pop("basis_in_features", None)
            spec = entry.spec_cls(**fields)
        except (ValueError, TypeError) as err:
            raise _layer_error(err, layer, rule, index) from None
        plans.append(LayerPlan(layer, method, spec, index, share, prune))
    shared = _share_groups(plans, widths, trace)
    return Plan(trace=trace, policy=policy, layers=tuple(plans), shared=tuple(shared))
