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

from compact_jax import arith
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

    * basis: the decomposed path (basis conv on every split, then the
      coefficient conv) with the paper's ``m`` (no padding), when cheaper than
      the dense conv or when the coefficient conv is larger than 1x1;
    * FDC3D: the frequency path (projection onto the ``t'`` kept rows, then a
      2-D conv over ``c' t'`` maps) when rows are pruned, else the 3-D conv
      over the ``c'`` kept channels;
    * others: the dense conv with the generated kernel (generating the kernel
      is done once per batch and not counted).
    """
    layer, spec = entry.layer, entry.spec
    dense = layer.dense_macs
    out_spatial = layer.output_shape[1:-1]
    positions = math.prod(out_spatial)
    if entry.method == "basis":
        (kh, kw), (kch, kcw) = spec.kernel_size, spec.coef_kernel_size
        s, m, p, n = spec.splits, spec.num_basis, spec.split_size, spec.features
        decomposed = positions * (s * m * p * kh * kw + n * s * m * kch * kcw)
        return decomposed if (kch, kcw) != (1, 1) else min(decomposed, dense)
    if entry.method == "fdc3d":
        c_kept, t_kept, t = spec.num_channels, spec.num_rows, spec.temporal_size
        if t_kept == t:
            return arith.conv_macs(out_spatial, spec.kernel_size, in_channels=c_kept, out_channels=spec.features)
        frames = out_spatial[0]
        projection = frames * math.prod(layer.input_shape[2:-1]) * c_kept * t_kept * t
        conv2d = positions * math.prod(spec.kernel_size[1:]) * c_kept * t_kept * spec.features
        return projection + conv2d
    return dense


def layer_detail(entry: LayerPlan, plan: Plan) -> str:
    """Short description of a layer's hyperparameters for tables."""
    spec = entry.spec
    if entry.method == "filtermap":
        return f"grid {'x'.join(map(str, spec.grid))}, map {'x'.join(map(str, spec.map_shape))}"
    if entry.method in ("cosine", "chebyshev"):
        nh, nw = spec.harmonics
        return f"N={nh}" if nh == nw else f"N={nh}x{nw}"
    if entry.method == "basis":
        text = f"m={spec.num_basis}, s={spec.splits}, p={spec.split_size}"
        if spec.coef_kernel_size != (1, 1):
            text += f", coef {'x'.join(map(str, spec.coef_kernel_size))}"
        if entry.share is not None:
            text += f", shared {entry.share!r} (P={plan.shared_basis(entry.share).shape[2]})"
        return text
    if entry.method == "fdc3d":
        return (f"t'={spec.num_rows}/{spec.temporal_size}, c'={spec.num_channels}/{spec.in_features}, "
                f"{spec.transform}")
    return ""


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
