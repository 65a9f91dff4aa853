"""Approximation-error experiments: fit trained kernels with each method over its size knob.

The notebooks in ``colab/`` call these functions; each returns plain records
(``list[dict]``) that :func:`curves` groups into ``label -> (x, y)`` for
:mod:`compact_jax.plot`. Errors are relative Frobenius norms,
``||W_approx - W|| / ||W||`` over the whole layer.

* :func:`series_sweep`: ApproxConv's cosine / Chebyshev series of every order,
  fitted in closed form (:func:`compact_jax.series.fit`) and by the paper's
  per-filter Adam (:func:`compact_jax.series.fit_gradient`, ``jax.vmap`` over
  every filter).
* :func:`basis_sweep`: Learning Filter Basis, truncated SVD for each basis size.
* :func:`filtermap_sweep`: 3D-FilterMap least-squares maps for each grid.
* FDC3D single-layer pruning (min-l2, DCT, learned transform): see
  :func:`pruning_comparison` and the helpers next to it.

Example::

    kernels = conv_kernels(variables["params"])            # path -> kernel_hwio
    records = series_sweep(kernels["stem_conv"], orders=(1, 3, 5, 7))
    plot.error_vs_order(curves(records, x="order", by=("family", "method")))
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from compact_jax import basis, compress, filtermap, registry, series
from compact_jax.experiments._error import relative_error
from compact_jax.experiments._frequency import (
    PRUNING_METHODS,
    fit_frequency_layer,
    frequency_spec,
    frequency_views,
    layer_timings,
    prune_sweep,
    pruning_comparison,
    transform_kernel,
)
from compact_jax.pytree import leaf_paths
from compact_jax.validate import check_int_tuple, check_positive_int

__all__ = [
    "relative_error",
    "conv_kernels",
    "filter_stack",
    "strongest_filters",
    "series_sweep",
    "basis_sweep",
    "filtermap_grids",
    "filtermap_sweep",
    "select",
    "curves",
    "policy_from_conv_config",
    "PRUNING_METHODS",
    "frequency_spec",
    "fit_frequency_layer",
    "transform_kernel",
    "prune_sweep",
    "pruning_comparison",
    "frequency_views",
    "layer_timings",
]


def _kernel_hwio(kernel: Any, where: str) -> np.ndarray:
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(f"{where}: kernel must be a 2-D conv kernel (kh, kw, C_in, C_out), got shape {kernel.shape}")
    return kernel


def conv_kernels(params: Any, *, min_size: int = 2) -> dict[str, np.ndarray]:
    """The convolution kernels of a Flax ``params`` tree, by layer path.

    Args:
      params: a (nested) parameter dict, e.g. ``variables["params"]``.
      min_size: keep kernels whose every spatial size is at least this (the
        default drops 1x1 convolutions).

    Returns:
      ``{"stage1/block0/conv1": kernel, ...}`` in tree order: every leaf named
      ``kernel`` of rank >= 3 (``(*k, C_in, C_out)``; dense layers' 2-D kernels
      are left out), as NumPy arrays.
    """
    min_size = check_positive_int("min_size", min_size)
    out = {}
    for path, leaf in leaf_paths(params):
        parent, _, name = path.rpartition("/")
        if name != "kernel" or np.ndim(leaf) < 3:
            continue
        if all(k >= min_size for k in np.shape(leaf)[:-2]):
            out[parent] = np.asarray(leaf)
    return out


def filter_stack(kernel: Any) -> np.ndarray:
    """``(kh, kw, C_in, C_out) -> (C_out * C_in, kh, kw)``; filter ``o * C_in + c`` is ``kernel[:, :, c, o]``."""
    kernel = _kernel_hwio(kernel, "filter_stack")
    kh, kw, c_in, c_out = kernel.shape
    return np.transpose(kernel, (3, 2, 0, 1)).reshape(c_out * c_in, kh, kw)


def strongest_filters(kernel: Any, count: int) -> np.ndarray:
    """Indices into :func:`filter_stack` of the ``count`` filters of largest l2 norm, largest first."""
    stack = filter_stack(kernel)
    count = check_positive_int("count", count)
    norms = np.linalg.norm(stack.reshape(stack.shape[0], -1), axis=1)
    return np.argsort(-norms, kind="stable")[: min(count, stack.shape[0])]


@functools.partial(jax.jit, static_argnums=(0, 2))
def _closed_form(method: Any, kernel: jax.Array, spec: Any) -> jax.Array:
    """``method.build_kernel(method.fit(kernel, spec), spec)`` as one compiled program per spec
    (far cheaper than dispatching the fit's operations one by one for every size)."""
    return method.build_kernel(method.fit(kernel, spec), spec)


def _series_spec(kernel: np.ndarray, family: str, order: int | None) -> series.SeriesSpec:
    kh, kw, c_in, c_out = kernel.shape
    return series.SeriesSpec(features=c_out, in_features=c_in, kernel_size=(kh, kw), family=family, harmonics=order)


def series_sweep(
    kernel: Any,
    *,
    families: Sequence[str] = ("cosine", "chebyshev"),
    orders: Iterable[int] | None = None,
    gradient: bool = True,
    schedule: Sequence[tuple[float, int]] = series.DEFAULT_SCHEDULE,
    key: jax.Array | None = None,
    keep_kernels: bool = True,
) -> list[dict]:
    """Fits every filter of a 2-D kernel with each series family and order.

    For each family and order ``N`` (isotropic, ``N x N`` harmonics) the
    closed-form least-squares fit and, with ``gradient``, the paper's Adam fit
    (every filter at once under ``jax.vmap``). The Adam fits start from the
    paper's initialisation (``spec.coeff_init="paper"``: ``N(0, 1/(C K^2))``
    for cosine, the filter mean for Chebyshev), drawn once at the full order
    and cut to ``N x N`` for each order, so every order sees the same draw.

    Args:
      kernel: ``(kh, kw, C_in, C_out)`` dense kernel.
      families: series families (``"cosine"``, ``"chebyshev"``).
      orders: orders to fit, each in ``1 .. min(kh, kw)``; default all.
      gradient: also run the gradient fit.
      schedule: the gradient fit's ``((learning_rate, steps), ...)``.
      key: PRNG key of the cosine start (default ``jax.random.key(0)``).
      keep_kernels: store each approximated kernel in its record.

    Returns:
      One record per (family, order, method): ``family``, ``order``,
      ``method`` (``"closed form"`` or ``"gradient"``), ``num_params``,
      ``param_fraction`` (series coefficients / dense weights), ``error``
      (relative Frobenius) and, with ``keep_kernels``, ``kernel``.
    """
    kernel = _kernel_hwio(kernel, "series_sweep").astype(np.float32)
    largest = min(kernel.shape[:2])
    orders = tuple(range(1, largest + 1)) if orders is None else tuple(orders)
    for order in orders:
        if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= largest:
            raise ValueError(f"series_sweep: orders must be integers in [1, {largest}] for kernel shape "
                             f"{kernel.shape}, got {order!r} in {orders}")
    key = jax.random.key(0) if key is None else key
    dense = math.prod(kernel.shape)
    records = []
    for family in families:
        full = _series_spec(kernel, family, None)
        start = series.start_params(kernel, full, key=key)["coeffs"] if gradient else None
        for order in orders:
            spec = _series_spec(kernel, family, order)
            fits = {"closed form": _closed_form(series, kernel, spec)}
            if gradient:
                params = series.fit_gradient(kernel, spec, schedule=schedule, start={"coeffs": start[:order, :order]})[0]
                fits["gradient"] = series.build_kernel(params, spec)
            for method, approx in fits.items():
                approx = np.asarray(approx)
                record = dict(family=family, order=order, method=method, num_params=series.num_params(spec),
                              param_fraction=series.num_params(spec) / dense, error=relative_error(approx, kernel))
                if keep_kernels:
                    record["kernel"] = approx
                records.append(record)
    return records


def basis_sweep(kernel: Any, num_bases: Iterable[int], *, splits: int = 1) -> list[dict]:
    """Truncated-SVD filter bases (:func:`compact_jax.basis.fit`) of each size ``m``.

    Args:
      kernel: ``(kh, kw, C_in, C_out)`` dense kernel.
      num_bases: the basis sizes ``m`` to fit.
      splits: ``s``, input-channel splits (each basis filter spans ``C_in / s``).

    Returns:
      One record per ``m``: ``num_basis``, ``num_params`` (basis +
      coefficients), ``param_fraction`` and ``error`` (relative Frobenius).
    """
    kernel = _kernel_hwio(kernel, "basis_sweep").astype(np.float32)
    kh, kw, c_in, c_out = kernel.shape
    dense = math.prod(kernel.shape)
    records = []
    for m in num_bases:
        # A sweep may go past the dense size (param_fraction > 1) on purpose.
        spec = basis.BasisSpec(features=c_out, in_features=c_in, kernel_size=(kh, kw), num_basis=m, splits=splits,
                               allow_larger=True)
        approx = _closed_form(basis, kernel, spec)
        records.append(dict(num_basis=m, num_params=basis.num_params(spec),
                            param_fraction=basis.num_params(spec) / dense, error=relative_error(approx, kernel)))
    return records


def filtermap_grids(features: int, in_features: int) -> list[tuple[int, int, int]]:
    """Grids ``(K, K, features / K^2)`` whose channel count ``K3`` divides ``in_features``,
    plus the paper's Table 1 grid for ``features`` if it has one; smallest map first.

    With the default map strides ``(2, 2, C / K3)`` the map has ``4 K1 K2 C``
    elements, so these grids span the map sizes from smallest to largest.
    """
    features = check_positive_int("features", features)
    in_features = check_positive_int("in_features", in_features)
    grids = [(k, k, features // (k * k)) for k in range(1, math.isqrt(features) + 1) if features % (k * k) == 0]
    if features in filtermap.DEFAULT_GRIDS:
        grids.append(filtermap.DEFAULT_GRIDS[features])
    valid = {g for g in grids if in_features % g[2] == 0}
    return sorted(valid, key=lambda g: (g[0] * g[1], g))


def filtermap_sweep(kernel: Any, grids: Iterable[Sequence[int]] | None = None, *, wrap: str = "modular") -> list[dict]:
    """Least-squares filter maps (:func:`compact_jax.filtermap.fit`) for each grid.

    Args:
      kernel: ``(kh, kw, C_in, C_out)`` dense kernel.
      grids: ``(K1, K2, K3)`` grids with ``K1 K2 K3 = C_out``; default
        :func:`filtermap_grids`. Map strides are the paper's ``(2, 2, C/K3)``.
      wrap: the spatial wrap rule.

    Returns:
      One record per grid: ``grid``, ``map_shape``, ``num_params``,
      ``param_fraction`` and ``error`` (relative Frobenius).
    """
    kernel = _kernel_hwio(kernel, "filtermap_sweep").astype(np.float32)
    kh, kw, c_in, c_out = kernel.shape
    grids = filtermap_grids(c_out, c_in) if grids is None else [check_int_tuple("grid", g, ndim=3) for g in grids]
    dense = math.prod(kernel.shape)
    records = []
    for grid in grids:
        spec = filtermap.FilterMapSpec(features=c_out, in_features=c_in, kernel_size=(kh, kw), grid=grid, wrap=wrap)
        approx = _closed_form(filtermap, kernel, spec)
        records.append(dict(grid=tuple(grid), map_shape=spec.map_shape, num_params=filtermap.num_params(spec),
                            param_fraction=filtermap.num_params(spec) / dense, error=relative_error(approx, kernel)))
    return records


def select(records: Iterable[Mapping[str, Any]], **match: Any) -> list[Mapping[str, Any]]:
    """The records whose values equal every ``key=value`` of ``match``, in order.

    Example: ``select(records, family="cosine", method="gradient")``.
    """
    return [r for r in records if all(k in r and r[k] == v for k, v in match.items())]


def curves(records: Sequence[Mapping[str, Any]], *, x: str, y: str = "error",
           by: str | Sequence[str] = ()) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Groups records into plot curves ``label -> (x values, y values)``, sorted by x.

    Args:
      records: e.g. from :func:`series_sweep`.
      x, y: record keys of the coordinates.
      by: key(s) whose values name a curve (joined by spaces); ``()`` gives one
        curve labelled ``y``.

    Returns:
      Curves in order of first appearance.

    Raises:
      KeyError: a record lacks ``x``, ``y`` or a ``by`` key (naming it).
    """
    by = (by,) if isinstance(by, str) else tuple(by)
    groups: dict[str, list[tuple[float, float]]] = {}
    for i, record in enumerate(records):
        for name in (x, y, *by):
            if name not in record:
                raise KeyError(f"curves: records[{i}] has no key {name!r}; keys: {sorted(record)}")
        label = " ".join(str(record[k]) for k in by) if by else y
        groups.setdefault(label, []).append((float(record[x]), float(record[y])))
    out = {}
    for label, points in groups.items():
        points.sort(key=lambda p: p[0])
        out[label] = (np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    return out


def policy_from_conv_config(
    method: str,
    *,
    options: Mapping[str, Any] | None = None,
    dense_1x1: bool = True,
    dense_layers: Sequence[str] = (),
    name: str = "",
) -> compress.Policy:
    """The :class:`compact_jax.compress.Policy` that builds what a training config's conv section builds.

    Mirrors the train package's conv factory (``config.model.conv``): layers
    named in ``dense_layers`` and (with ``dense_1x1``) 1x1 convolutions stay
    dense, every other convolution gets ``method`` with ``options``.

    Args:
      method: a :data:`compact_jax.METHODS` name or alias (the configs' ``"cos"`` / ``"cheb"``).
      options: the method's hyperparameters (``grid``, ``harmonics``, ...).
      dense_1x1: keep 1x1 (1x1x1) convolutions dense.
      dense_layers: layer paths kept dense.
      name: the policy's label in reports.
    """
    try:
        method = registry.get_method(method).name
    except ValueError as err:
        raise ValueError(f"policy_from_conv_config: {err}") from None
    if isinstance(dense_layers, str):
        raise TypeError(f"dense_layers must be a sequence of layer paths, got the string {dense_layers!r}")
    rules = [compress.Rule(path=path, method="dense", optional=True) for path in dense_layers]
    if dense_1x1:
        rules.append(compress.Rule(kernel="==1", method="dense", optional=True))
    rules.append(compress.Rule(method=method, options=dict(options or {}), optional=True))
    return compress.Policy(rules=rules, name=name or method)
