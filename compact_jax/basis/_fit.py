"""Learning Filter Basis: closed-form fits to dense kernels and the Eq. (18) penalty.

Private helper of :mod:`compact_jax.basis`.

The ``n*s`` filter splits of a kernel form the rows of the *splits matrix*
``M`` of shape ``(n*s, kh*kw*p)`` (row ``i*s + g`` is split ``g`` of output
filter ``i``, flattened in ``(kh, kw, p)`` order). A basis of ``m`` filters
with coefficients is a rank-``m`` factorisation ``M ~ C @ B``, so the
truncated SVD ``M = U S V^T`` gives the best one in Frobenius norm
(Eckart-Young): ``B = V^T[:m]`` (orthonormal basis filters) and
``C = U[:, :m] S[:m]``, with squared error ``sum_{j >= m} S_j^2``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from compact_jax.basis._spec import BasisSpec, build_kernel, check_params, layer_basis
from compact_jax.protocol import check_kernel_shape

__all__ = ["splits_matrix", "fit", "fit_coefficients", "fit_shared", "basis_regularizer"]


def _check_kernel(kernel: Any, spec: BasisSpec, where: str) -> jax.Array:
    if not isinstance(spec, BasisSpec):
        raise TypeError(f"{where}: spec must be a BasisSpec, got {type(spec).__name__}")
    check_kernel_shape(kernel, spec, where=where)
    return jnp.asarray(kernel)


def splits_matrix(kernel: jax.Array, spec: BasisSpec) -> jax.Array:
    """``kernel_hwio (kh, kw, s*p, n) -> M (n*s, kh*kw*p)``, one filter split per row."""
    kernel = _check_kernel(kernel, spec, "basis.splits_matrix")
    kh, kw = spec.kernel_size
    s, p, n = spec.splits, spec.split_size, spec.features
    splits = kernel.reshape(kh, kw, s, p, n)
    return jnp.transpose(splits, (4, 2, 0, 1, 3)).reshape(n * s, kh * kw * p)


def _basis_from_rows(rows: jax.Array, spec: BasisSpec) -> jax.Array:
    """``(m, kh*kw*p)`` basis rows -> ``(kh, kw, P, m)``, zero outside the layer's slice."""
    kh, kw = spec.kernel_size
    p, wide, m = spec.split_size, spec.basis_in_features, spec.num_basis
    basis = jnp.transpose(rows.reshape(m, kh, kw, p), (1, 2, 3, 0))
    if wide == p:
        return basis
    start = 0 if spec.basis_slice == "leading" else wide - p
    return jnp.pad(basis, ((0, 0), (0, 0), (start, wide - p - start), (0, 0)))


def _coef_from_columns(columns: jax.Array, spec: BasisSpec) -> jax.Array:
    """``(n*s, m)`` coefficients -> ``(kch, kcw, s*m, n)`` at the centre tap.

    A larger coefficient kernel gets the coefficients at tap
    ``((kch - 1) // 2, (kcw - 1) // 2)``, the tap that reads the unshifted
    response under SAME (or CIRCULAR) padding, so the fit stays exact there.
    """
    s, m, n = spec.splits, spec.num_basis, spec.features
    kch, kcw = spec.coef_kernel_size
    coef = jnp.transpose(columns.reshape(n, s, m), (1, 2, 0)).reshape(s * m, n)
    return jnp.zeros(spec.coef_shape, coef.dtype).at[(kch - 1) // 2, (kcw - 1) // 2].set(coef)


def _params(basis: jax.Array, coef: jax.Array, spec: BasisSpec) -> dict:
    params = {"basis": basis, "coef": coef}
    if spec.basis_bias:
        params["basis_bias"] = jnp.zeros((spec.num_basis,), coef.dtype)
    return params


def _truncated_svd(mat: jax.Array, m: int) -> tuple[jax.Array, jax.Array]:
    """Best rank-``m`` factors ``(C (rows, m), B (m, cols))`` of ``mat``.

    Beyond the rank, basis rows continue with an orthonormal complement (zero
    coefficients) so they still receive gradients when fine-tuned; past
    ``cols`` they are zero.
    """
    rows, cols = mat.shape
    rank = min(rows, cols)
    u, sv, vt = jnp.linalg.svd(mat, full_matrices=m > rank and cols > rows)
    keep = min(m, rank)
    coef = jnp.pad(u[:, :keep] * sv[None, :keep], ((0, 0), (0, m - keep)))
    basis = vt[: min(m, vt.shape[0])]
    return coef, jnp.pad(basis, ((0, m - basis.shape[0]), (0, 0)))


def fit(kernel: jax.Array, spec: BasisSpec) -> dict:
    """Best basis and coefficients for a dense kernel (truncated SVD, Eckart-Young).

    Args:
      kernel: ``kernel_hwio`` of shape ``spec.kernel_shape``.
      spec: the target :class:`BasisSpec`.

    Returns:
      ``{"basis", "coef"(, "basis_bias")}`` minimising ``||kernel -
      build_kernel(params)||_F``: orthonormal basis filters, coefficients
      carrying the singular values, zero basis bias. With ``m >= rank`` it
      reproduces the kernel. A wider basis (``basis_in_features > p``) is zero
      outside the layer's slice; a larger coefficient kernel holds the
      coefficients at its centre tap (exact under SAME padding).
    """
    kernel = _check_kernel(kernel, spec, "basis.fit")
    coef, rows = _truncated_svd(splits_matrix(kernel, spec), spec.num_basis)
    return _params(_basis_from_rows(rows, spec), _coef_from_columns(coef, spec), spec)


def fit_coefficients(kernel: jax.Array, spec: BasisSpec, basis: jax.Array) -> dict:
    """Least-squares coefficients for a given (e.g. shared) basis.

    Args:
      kernel: ``kernel_hwio`` of shape ``spec.kernel_shape``.
      spec: the layer's :class:`BasisSpec`.
      basis: ``(kh, kw, basis_in_features, m)``; the layer's slice is used.

    Returns:
      ``{"basis": basis, "coef"(, "basis_bias")}`` with the coefficients
      minimising ``||kernel - build_kernel(params)||_F`` for this basis.
    """
    kernel = _check_kernel(kernel, spec, "basis.fit_coefficients")
    basis = jnp.asarray(basis)
    if tuple(basis.shape) != spec.basis_shape:
        raise ValueError(
            f"basis.fit_coefficients: basis must have shape {spec.basis_shape} (kh, kw, "
            f"basis_in_features, num_basis), got {tuple(basis.shape)}"
        )
    used = layer_basis(basis, spec)
    rows = jnp.transpose(used, (3, 0, 1, 2)).reshape(spec.num_basis, -1)  # (m, kh*kw*p)
    solution = jnp.linalg.lstsq(rows.T, splits_matrix(kernel, spec).T)[0]  # (m, n*s)
    return _params(basis, _coef_from_columns(solution.T, spec), spec)


def fit_shared(kernels: Sequence[jax.Array], specs: Sequence[BasisSpec]) -> list[dict]:
    """One basis for several layers: the truncated SVD of all their splits, stacked.

    Args:
      kernels: one ``kernel_hwio`` per layer.
      specs: one :class:`BasisSpec` per layer; all with the same
        ``kernel_size``, ``num_basis`` and a split size equal to
        ``basis_in_features`` (layers using a slice of a wider basis cannot be
        stacked: fit the basis elsewhere and use :func:`fit_coefficients`).

    Returns:
      One params dict per layer, all holding the same ``"basis"`` array.
    """
    kernels, specs = list(kernels), list(specs)
    if not specs or len(kernels) != len(specs):
        raise ValueError(
            f"basis.fit_shared: need one kernel per spec and at least one layer, got "
            f"{len(kernels)} kernels and {len(specs)} specs"
        )
    first = specs[0]
    for i, spec in enumerate(specs):
        if not isinstance(spec, BasisSpec):
            raise TypeError(f"basis.fit_shared: specs[{i}] must be a BasisSpec, got {type(spec).__name__}")
        if spec.basis_shape != first.basis_shape or spec.split_size != spec.basis_in_features:
            raise ValueError(
                f"basis.fit_shared: every layer must use the whole shared basis {first.basis_shape} "
                f"(kh, kw, p, m) with split size p = basis_in_features; specs[{i}] has basis shape "
                f"{spec.basis_shape} and split size {spec.split_size}"
            )
    mats = [splits_matrix(_check_kernel(k, s, "basis.fit_shared"), s) for k, s in zip(kernels, specs)]
    coef, rows = _truncated_svd(jnp.concatenate(mats, axis=0), first.num_basis)
    basis = _basis_from_rows(rows, first)
    out, start = [], 0
    for mat, spec in zip(mats, specs):
        stop = start + mat.shape[0]
        out.append(_params(basis, _coef_from_columns(coef[start:stop], spec), spec))
        start = stop
    return out


def basis_regularizer(kernel: jax.Array, params: dict, spec: BasisSpec, gamma: Any) -> jax.Array:
    """Eq. (18)'s penalty ``gamma * ||W - B A||_F^2`` for one layer, for any loss.

    Args:
      kernel: the target ``kernel_hwio`` ``W`` (e.g. the pretrained weights).
      params: the layer's compact params.
      spec: the layer's :class:`BasisSpec` (1x1 coefficient conv).
      gamma: weight (a non-negative number or a scalar array).

    Returns:
      A scalar.
    """
    kernel = _check_kernel(kernel, spec, "basis.basis_regularizer")
    if isinstance(gamma, numbers.Real) and (isinstance(gamma, bool) or gamma < 0):
        raise ValueError(f"basis.basis_regularizer: gamma must be a non-negative number, got {gamma!r}")
    check_params(params, spec, where="basis.basis_regularizer", batched=False)
    residual = kernel - build_kernel(params, spec)
    return gamma * jnp.sum(jnp.square(residual))
