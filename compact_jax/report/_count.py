"""Counting parameters and multiply-adds of a plan's dense and compact models.

Private helper of :mod:`compact_jax.report`. Parameter counts come from the
parameter trees of the built models (``jax.eval_shape`` of ``init``, no
compute); every leaf is put in one category (conv weights, conv biases,
normalisation, classifier, other) so that each paper's counting convention is a
choice of categories (:class:`Counting`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from typing import Any

import jax
import jax.numpy as jnp

from compact_jax.compress import CATEGORIES, NORM_TYPES, Counting, LayerPlan, Plan, build
from compact_jax.pytree import leaf_paths

__all__ = ["Counting", "CATEGORIES", "LayerCount", "Counts", "count_plan", "compact_macs", "layer_detail"]


@dataclasses.dataclass(frozen=True)
class LayerCount:
    """One convolution (or shared basis) in a report."""

    path: str
    method: str
    detail: str
    dense_params: int
    compact_params: int
    dense_macs: int
    compact_macs: int


@dataclasses.dataclass(frozen=True)
class Counts:
    """Per-layer rows and per-category totals of a plan under a :class:`Counting`."""

    rows: tuple[LayerCount, ...]
    dense: dict[str, int]  # category -> parameters (all categories, in scope)
    compact: dict[str, int]
    other_macs: int  # fully connected layers in scope (the same in both models)


def _leaf_paths(tree: Any) -> list[tuple[tuple[str, ...], int]]:
    return [(tuple(path.split("/")), math.prod(leaf.shape)) for path, leaf in leaf_paths(tree)]


def _longest_prefix(parts: tuple[str, ...], known: set[str]) -> str | None:
    for n in range(len(parts), 0, -1):
        prefix = "/".join(parts[:n])
        if prefix in known:
            return prefix
    return None


def _categorise(plan: Plan, tree: Any, counting: Counting) -> tuple[dict[str, int], dict[str, int]]:
    """``(category totals, per-layer counted params)`` of a parameter tree, in scope."""
    convs = {e.path for e in plan.layers}
    shared = {g.module_name: g for g in plan.shared}
    types = dict(plan.trace.module_types)
    in_scope = lambda path: fnmatch.fnmatchcase(path, counting.scope)  # noqa: E731
    totals = dict.fromkeys(CATEGORIES, 0)
    per_row: dict[str, int] = {}
    for parts, size in _leaf_paths(tree):
        if parts[0] in shared:
            group = shared[parts[0]]
            if any(in_scope(p) for p in group.members):
                totals["conv"] += size
                key = f"shared basis {group.key!r}"
                per_row[key] = per_row.get(key, 0) + size
            continue
        layer = _longest_prefix(parts[:-1], convs)
        if layer is not None:
            if not in_scope(layer):
                continue
            category = "conv_bias" if parts[-1] in ("bias", "basis_bias") else "conv"
            totals[category] += size
            if counting.includes(category):
                per_row[layer] = per_row.get(layer, 0) + size
            continue
        owner = _longest_prefix(parts[:-1], set(types)) or ""
        if not in_scope(owner or parts[0]):
            continue
        if isinstance(types.get(owner), type) and issubclass(types[owner], NORM_TYPES):
            totals["norm"] += size
        elif owner and owner == plan.trace.classifier:
            totals["classifier"] += size
        else:
            totals["other"] += size
    return totals, per_row


def compact_macs(entry: LayerPlan) -> int:
    """Multiply-adds per example of the compact layer's cheapest exact path.

    The method record's ``macs`` (e.g. the basis's decomposed path, FDC3D's
    frequency path); methods without one cost the dense conv with the
    generated kernel (generating the kernel is done once per batch and not
    counted).
    """
    layer = entry.layer
    if entry.record.macs is None:
        return layer.dense_macs
    return entry.record.layer_macs(entry.spec, input_shape=layer.input_shape, output_shape=layer.output_shape)


def layer_detail(entry: LayerPlan, plan: Plan) -> str:
    """Short description of a layer's hyperparameters for tables (the record's ``describe``)."""
    text = entry.record.layer_describe(entry.spec)
    if entry.share is not None:
        text += f", shared {entry.share!r} (P={plan.shared_basis(entry.share).shape[2]})"
    return text


def _compact_params_tree(plan: Plan) -> Any:
    model = build(plan)
    x = jax.ShapeDtypeStruct(plan.trace.input_shape, jnp.float32)
    kwargs = dict(plan.trace.call_kwargs)
    return jax.eval_shape(lambda key, x: model.init(key, x, **kwargs), jax.random.key(0), x)["params"]


def count_plan(plan: Plan, counting: Counting) -> Counts:
    """Counts ``plan``'s dense model and its compact model (built and traced abstractly)."""
    dense_totals, dense_rows = _categorise(plan, plan.trace.params, counting)
    compact_totals, compact_rows = _categorise(plan, _compact_params_tree(plan), counting)
    in_scope = lambda path: fnmatch.fnmatchcase(path, counting.scope)  # noqa: E731
    rows = []
    for entry in plan.layers:
        if not in_scope(entry.path):
            continue
        rows.append(LayerCount(entry.path, entry.method, layer_detail(entry, plan), dense_rows.get(entry.path, 0),
                               compact_rows.get(entry.path, 0), entry.layer.dense_macs, compact_macs(entry)))
    for group in plan.shared:
        key = f"shared basis {group.key!r}"
        if key in compact_rows:
            shape = "x".join(map(str, group.shape))
            rows.append(LayerCount(key, "basis", f"{shape} (kh, kw, P, m)", 0, compact_rows[key], 0, 0))
    other_macs = sum(d.macs for d in plan.trace.dense_layers if in_scope(d.path))
    return Counts(tuple(rows), dense_totals, compact_totals, other_macs)
