"""Matplotlib figures for training runs and approximation experiments.

Every function returns a :class:`matplotlib.figure.Figure` built without
``pyplot`` (no global state, no ``plt.show()``, safe under the Agg backend and
in headless runs); display it in a notebook by making it a cell's last
expression, or write it with ``fig.savefig("name.png")``.

* :func:`training_curves`: loss / accuracy against step from a run's
  ``metrics.jsonl`` (train lines, eval markers).
* :func:`error_curves` and its labelled variants :func:`error_vs_order`,
  :func:`error_vs_params`, :func:`error_vs_speedup`: one line per method.
* :func:`filter_grid`: original 2-D filters beside their approximations
  (ApproxConv's Figure 2).
* :func:`frequency_panels`: a 3-D filter's temporal slices in the spatial and
  the frequency domain, kept frequency rows boxed (FDC3D's Figure 3).

Example::

    from compact_jax import plot
    fig = plot.error_vs_order({"cosine": ([1, 2, 3], [0.9, 0.6, 0.0])})
    fig.savefig("error.png")
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = [
    "read_log",
    "training_curves",
    "error_curves",
    "error_vs_order",
    "error_vs_params",
    "error_vs_speedup",
    "filter_grid",
    "frequency_panels",
]

FILTER_CMAP = "RdBu_r"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a JSON-lines log (one object per non-empty line).

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: a line is not a JSON object (naming the line number).
    """
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{os.fspath(path)} line {number} is not valid JSON: {err.msg}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{os.fspath(path)} line {number} must be a JSON object, got {record!r}")
            records.append(record)
    return records


def _series(records: Sequence[dict], kind: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of the finite numeric ``metric`` in records of ``kind``."""
    points = [
        (r["step"], r[metric])
        for r in records
        if r.get("kind") == kind and isinstance(r.get(metric), (int, float)) and not isinstance(r[metric], bool)
    ]
    points = [(s, v) for s, v in points if math.isfinite(v)]
    steps = np.array([p[0] for p in points], dtype=float)
    values = np.array([p[1] for p in points], dtype=float)
    return steps, values


def training_curves(
    log: str | os.PathLike | Sequence[dict],
    *,
    metrics: Sequence[str] = ("loss", "accuracy"),
    title: str | None = None,
) -> Figure:
    """One panel per metric: the train values against step (line), eval values (markers).

    Args:
      log: a ``metrics.jsonl`` path (records ``{"step", "kind", metric: value}``,
        as the train package writes) or its records.
      metrics: metric names, one panel each; a metric with no values gets an
        empty panel saying so.
      title: figure title.

    Returns:
      A figure with ``len(metrics)`` axes; in each, the line labelled
      ``"train"`` (if any train values) precedes the one labelled ``"eval"``.
    """
    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics must be a non-empty sequence of metric names, got {metrics!r}")
    records = read_log(log) if isinstance(log, (str, os.PathLike)) else list(log)
    fig = Figure(figsize=(4.2 * len(metrics), 3.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        plotted = False
        for kind, style in (("train", dict(linestyle="-")), ("eval", dict(linestyle="none", marker="o"))):
            steps, values = _series(records, kind, metric)
            if steps.size:
                ax.plot(steps, values, label=kind, **style)
                plotted = True
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if plotted:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no {metric!r} values", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    return fig


def error_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str = "relative error",
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
) -> Figure:
    """One line with markers per entry of ``curves``, in order.

    Args:
      curves: ``label -> (x, y)`` with equal lengths.
      xlabel, ylabel, title: axis labels and title.
      logx, logy: logarithmic axes.

    Returns:
      A one-axes figure whose lines carry ``curves``' labels and data.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(f"curves must be a non-empty mapping label -> (x, y), got {curves!r}")
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.subplots()
    for i, (label, pair) in enumerate(curves.items()):
        if len(pair) != 2:
            raise ValueError(f"curves[{label!r}] must be an (x, y) pair, got {len(pair)} items")
        x, y = (np.asarray(v, dtype=float) for v in pair)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(
                f"curves[{label!r}] needs x and y of one equal length, got shapes {x.shape} and {y.shape}"
            )
        ax.plot(x, y, marker=_MARKERS[i % len(_MARKERS)], label=str(label))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def error_vs_order(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], **kwargs: Any) -> Figure:
    """:func:`error_curves` against the series order (harmonics per axis)."""
    return error_curves(curves, **{"xlabel": "order N (harmonics per axis)", **kwargs})


def error_vs_params(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], **kwargs: Any) -> Figure:
    """:func:`error_curves` against the fraction of the dense weights kept."""
    return error_curves(curves, **{"xlabel": "parameters kept (fraction of dense)", **kwargs})


def error_vs_speedup(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], **kwargs: Any) -> Figure:
    """:func:`error_curves` against the speed-up ratio (FDC3D's Figure 2)."""
    return error_curves(curves, **{"xlabel": "speed-up ratio", **kwargs})


def _stack(name: str, value: Any, shape: tuple[int, ...] | None = None, *, like: str = "") -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.ndim != 3:
        raise ValueError(f"{name} must be a stack of 2-D filters (count, h, w), got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} must have the shape of {like} {shape}, got {array.shape}")
    return array


def _image(ax, image: np.ndarray, limit: float) -> None:
    ax.imshow(image, cmap=FILTER_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _limit(image: np.ndarray) -> float:
    return float(np.max(np.abs(image))) or 1.0


def filter_grid(
    originals: Any,
    approximations: Mapping[str, Any],
    *,
    title: str | None = None,
    show_error: bool = True,
) -> Figure:
    """Original 2-D filters (first column) beside their approximations (ApproxConv's Figure 2).

    Each row shares one symmetric colour scale, set by its original filter.

    Args:
      originals: ``(F, kh, kw)`` filters, one row each.
      approximations: ``column label -> (F, kh, kw)`` approximations, one
        column each, in order.
      title: figure title.
      show_error: title each approximation with its l2 distance to the original.

    Returns:
      A figure with ``F x (1 + len(approximations))`` axes, each holding one
      image of the plotted filter.
    """
    originals = _stack("originals", originals)
    if not isinstance(approximations, Mapping):
        raise TypeError(f"approximations must be a mapping label -> (F, kh, kw) array, got {type(approximations).__name__}")
    columns = {str(k): _stack(f"approximations[{k!r}]", v, originals.shape, like="the originals")
               for k, v in approximations.items()}
    rows, cols = originals.shape[0], 1 + len(columns)
    fig = Figure(figsize=(1.5 * cols + 0.5, 1.5 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for r in range(rows):
        limit = _limit(originals[r])
        _image(axes[r, 0], originals[r], limit)
        axes[r, 0].set_ylabel(f"filter {r}", fontsize=8)
        for c, (label, stack) in enumerate(columns.items(), start=1):
            _image(axes[r, c], stack[r], limit)
            if show_error:
                error = float(np.linalg.norm(stack[r] - originals[r]))
                axes[r, c].set_title(f"{label}\nl2 {error:.3g}" if r == 0 else f"l2 {error:.3g}", fontsize=8)
            elif r == 0:
                axes[r, c].set_title(label, fontsize=8)
    axes[0, 0].set_title("original", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def frequency_panels(
    rows: Mapping[str, Any],
    *,
    boxed: Mapping[str, Sequence[int]] | None = None,
    column_labels: Mapping[str, Sequence[str]] | None = None,
    shared_scale: bool = True,
    title: str | None = None,
) -> Figure:
    """Temporal slices of one 3-D filter, one row per domain (FDC3D's Figure 3).

    Args:
      rows: ``row label -> (t, kh, kw)``, e.g. ``{"spatial": K, "frequency":
        S K, "reconstructed": S^T M S K}``; all of one shape.
      boxed: ``row label -> indices`` of panels framed in red (the kept
        frequency rows).
      column_labels: ``row label -> one title per panel`` (default ``tap i``,
        or ``freq i`` for rows whose label contains ``"freq"``).
      shared_scale: one symmetric colour scale for every panel (weak
        frequency rows look faint, as they are); otherwise one per row.
      title: figure title.

    Returns:
      A figure with ``len(rows) x t`` axes, each holding one image.
    """
    if not isinstance(rows, Mapping) or not rows:
        raise ValueError(f"rows must be a non-empty mapping label -> (t, kh, kw) array, got {rows!r}")
    stacks = {}
    shape = None
    for label, value in rows.items():
        stacks[label] = _stack(f"rows[{label!r}]", value, shape, like="the first row")
        shape = stacks[label].shape
    boxed = dict(boxed or {})
    column_labels = dict(column_labels or {})
    for label, indices in boxed.items():
        if label not in stacks:
            raise ValueError(f"boxed names row {label!r}, which is not one of {list(stacks)}")
        bad = [i for i in indices if not 0 <= int(i) < shape[0]]
        if bad:
            raise ValueError(f"boxed[{label!r}] indices must lie in [0, {shape[0]}), got {list(indices)}")
    t = shape[0]
    fig = Figure(figsize=(1.3 * t + 1.2, 1.5 * len(stacks) + 0.4), layout="constrained")
    axes = fig.subplots(len(stacks), t, squeeze=False)
    common = max(_limit(stack) for stack in stacks.values())
    for r, (label, stack) in enumerate(stacks.items()):
        limit = common if shared_scale else _limit(stack)
        default = "freq" if "freq" in label.lower() else "tap"
        names = column_labels.get(label, [f"{default} {i}" for i in range(t)])
        for i in range(t):
            ax = axes[r, i]
            _image(ax, stack[i], limit)
            ax.set_title(names[i], fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=9)
        for i in boxed.get(label, ()):
            ax = axes[r, int(i)]
            ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, edgecolor="red",
                                   linewidth=3, clip_on=False))
    if title:
        fig.suptitle(title)
    return fig
