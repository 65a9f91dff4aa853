"""Dense -> compact parameters (fit) and compact -> dense parameters (fold).

Private helper of :mod:`compact_jax.compress`. Parameter trees are the
``"params"`` collections of the dense model and of
:class:`compact_jax.compress.CompactModel`: they differ only at the planned
convolutions (and the ``shared_basis_<key>`` entries); everything else (batch
norm, classifier, ...) is copied through.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from compact_jax import basis, fdc3d
from compact_jax.compress._plan import LayerPlan, Plan
from compact_jax.pytree import copy_tree as _copy_tree, get_node as _node, set_node as _set

__all__ = ["fit", "fit_sliced_basis"]

_HIGHEST = jax.lax.Precision.HIGHEST


@functools.cache
def _jit(fn):
    """``fn(arrays, spec, *rest)`` jitted with a static spec: one compiled program per layer
    shape instead of one per primitive (eager JAX compiles every op for every shape)."""
    return jax.jit(fn, static_argnums=(1,))


def _fit_one(fit_fn, kernel, spec):
    return _jit(fit_fn)(kernel, spec)


@functools.cache
def _kernel_fn(build_kernel):
    return functools.partial(build_kernel, precision=_HIGHEST)


def _expect_keys(node: Mapping, expected: set[str], path: str, where: str, hint: str) -> None:
    if set(node) != expected:
        raise ValueError(
            f"{where}: layer {path!r} has params {sorted(node)}, expected {sorted(expected)} ({hint})"
        )


def _dense_kernel(node: Mapping, entry: LayerPlan, where: str) -> jax.Array:
    layer = entry.layer
    _expect_keys(node, {"kernel"} | ({"bias"} if layer.use_bias else set()), entry.path, where,
                 "a dense conv's kernel and bias: pass the dense model's params")
    kernel = jnp.asarray(node["kernel"])
    if kernel.shape != entry.spec.kernel_shape:
        raise ValueError(
            f"{where}: layer {entry.path!r} kernel has shape {kernel.shape}, expected {entry.spec.kernel_shape}"
        )
    return kernel


def _fit_frequency(kernel: jax.Array, entry: LayerPlan) -> tuple[dict, Any]:
    """FDC3D: exact frequency coefficients, then Algorithm 1's pruning step.

    With pruning, ``beta`` first carries each input channel's filter norm so
    the ``|beta|`` criterion drops the weakest channels; the kept channels'
    norms then go back into the coefficients (``beta = 1``) and the rows with
    the least energy ``V`` are dropped.
    """
    spec = entry.spec
    if entry.prune is None:
        return _fit_one(fdc3d.fit, kernel, spec), spec
    p_c, p_t = entry.prune
    full = dataclasses.replace(spec, kept_rows=None, kept_channels=None)
    params = _fit_one(fdc3d.fit, kernel, full)
    coeffs = params["coeffs"]
    norms = jnp.sqrt(jnp.sum(coeffs**2, axis=(0, 1, 2, 4)))
    safe = jnp.where(norms > 0, norms, 1.0)
    params = {**params, "coeffs": coeffs / safe[None, None, None, :, None], "beta": norms}
    params, spec = fdc3d.prune(params, full, p_c=p_c, p_t=0.0)
    params = {**params, "coeffs": params["coeffs"] * params["beta"][None, None, None, :, None],
              "beta": jnp.ones_like(params["beta"])}
    return fdc3d.prune(params, spec, p_c=0.0, p_t=p_t)


def _columns(spec: basis.BasisSpec) -> np.ndarray:
    """Column of the ``(kh*kw*P)``-wide basis matrix read by each of the layer's ``kh*kw*p`` columns."""
    kh, kw = spec.kernel_size
    p, wide = spec.split_size, spec.basis_in_features
    start = 0 if spec.basis_slice == "leading" else wide - p
    taps = np.arange(kh * kw)[:, None] * wide
    return (taps + start + np.arange(p)[None, :]).reshape(-1)


def fit_sliced_basis(
    kernels: Sequence[jax.Array], specs: Sequence[basis.BasisSpec], *, steps: int = 10
) -> list[dict]:
    """One basis for layers using different channel slices of it (DenseNet's sliced sharing).

    Minimises ``sum_l ||W_l - B[slice_l] A_l||_F^2``: starts from the truncated
    SVD of all filter splits zero-padded to the basis's ``P`` channels, then
    alternates least squares for the coefficients and the basis (each step
    never increases the error). With ``m >= kh*kw*P`` the basis spans every
    filter and the fit is exact.

    Returns:
      One params dict per layer (``basis`` the same array in each).
    """
    first = specs[0]
    kh, kw, wide, m = first.basis_shape
    width = kh * kw * wide
    mats = [np.asarray(_jit(basis.splits_matrix)(k, s), np.float64) for k, s in zip(kernels, specs)]
    cols = [_columns(s) for s in specs]
    padded = np.zeros((sum(a.shape[0] for a in mats), width))
    row = 0
    for mat, col in zip(mats, cols):
        padded[row : row + mat.shape[0], col] = mat
        row += mat.shape[0]
    _, _, vt = np.linalg.svd(padded, full_matrices=True)
    rows = np.zeros((m, width))
    rows[: min(m, width)] = vt[: min(m, width)]
    # Columns grouped by the set of layers reading them (same set for a whole channel).
    read_by = [set(col.tolist()) for col in cols]
    readers: dict[tuple[int, ...], list[int]] = {}
    for j in range(width):
        readers.setdefault(tuple(i for i, cols_i in enumerate(read_by) if j in cols_i), []).append(j)
    local = [{int(c): k for k, c in enumerate(col)} for col in cols]
    # A basis spanning all kh*kw*P directions already fits every slice exactly.
    total = sum(np.sum(mat**2) for mat in mats)
    previous = np.inf
    for _ in range(steps if m < width else 0):
        coefs = [np.linalg.lstsq(rows[:, col].T, mat.T, rcond=None)[0].T for mat, col in zip(mats, cols)]
        error = sum(np.sum((mat - a @ rows[:, col]) ** 2) for mat, a, col in zip(mats, coefs, cols))
        if error <= 1e-12 * total or error > (1 - 1e-6) * previous:
            break  # exact, or no longer improving
        previous = error
        for key, js in readers.items():
            if not key:
                continue
            gram = sum(coefs[i].T @ coefs[i] for i in key)
            rhs = sum(coefs[i].T @ mats[i][:, [local[i][j] for j in js]] for i in key)
            rows[:, js] = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    dtype = jnp.asarray(kernels[0]).dtype
    basis_hwpm = jnp.asarray(np.transpose(rows.reshape(m, kh, kw, wide), (1, 2, 3, 0)), dtype)
    return [_jit(_fit_coefficients)(k, s, basis_hwpm) for k, s in zip(kernels, specs)]


def _fit_coefficients(kernel: jax.Array, spec: basis.BasisSpec, basis_array: jax.Array) -> dict:
    return basis.fit_coefficients(kernel, spec, basis_array)


def _fit_group(kernels: list, specs: list, steps: int) -> list[dict]:
    if all(s.split_size == s.basis_in_features for s in specs):
        return jax.jit(basis.fit_shared, static_argnums=(1,))(kernels, tuple(specs))
    return fit_sliced_basis(kernels, specs, steps=steps)


def fit(plan: Plan, params: Any, *, steps: int = 10) -> tuple[Plan, dict]:
    """Compact parameters for dense ones; see :func:`compact_jax.compress.fit`."""
    where = "compress.fit"
    source = _copy_tree(params)
    out = _copy_tree(params)
    specs = {}
    for entry in plan.layers:
        if entry.share is not None:
            continue
        node = _node(source, entry.path, where)
        kernel = _dense_kernel(node, entry, where)
        if entry.prune is not None:
            compact, spec = _fit_frequency(kernel, entry)
            if spec != entry.spec:
                specs[entry.path] = spec
        else:
            compact = _fit_one(entry.record.fit, kernel, entry.spec)
        if "bias" in node:
            compact["bias"] = node["bias"]
        _set(out, entry.path, compact)
    for group in plan.shared:
        members = [plan.layer(path) for path in group.members]
        nodes = [_node(source, m.path, where) for m in members]
        kernels = [_dense_kernel(node, m, where) for node, m in zip(nodes, members)]
        fitted = _fit_group(kernels, [m.spec for m in members], steps)
        out[group.module_name] = {"basis": fitted[0]["basis"]}
        for member, node, compact in zip(members, nodes, fitted):
            compact = {k: v for k, v in compact.items() if k != "basis"}
            if "bias" in node:
                compact["bias"] = node["bias"]
            _set(out, member.path, compact)
    return plan.with_specs(specs), out
