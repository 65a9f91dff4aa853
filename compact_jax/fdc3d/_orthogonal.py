"""Orthogonal t x t matrices for FDC3D: the DCT-II matrix and three exact parametrisations.

Every learned parametrisation maps unconstrained parameters to an exactly
orthogonal matrix, so plain gradient descent keeps ``S^T S = I`` (to float
rounding) at every step:

* Householder product: ``S = J^flip H(v_1) ... H(v_t)`` with
  ``H(v) = I - 2 v v^T / (v^T v)`` and ``J = diag(-1, 1, ..., 1)``. A product
  of ``t`` reflections has determinant ``(-1)^t``; by Cartan-Dieudonne it
  reaches every orthogonal matrix of that determinant, and the static ``flip``
  selects the other component. Together the two cover all of ``O(t)``.
  (No continuous parametrisation can move between the two components during
  training; the component is fixed by the initial matrix.)
* Cayley: ``S = base @ (I + A)^{-1} (I - A)`` with ``A = W - W^T``; reaches
  ``base @ Q`` for every rotation ``Q`` without eigenvalue -1.
* Matrix exponential: ``S = base @ expm(W - W^T)``; reaches ``base @ SO(t)``.

Cayley and exponential start at ``W = 0`` (``S = base``); Householder vectors
start at a decomposition of the initial matrix (:func:`reflection_vectors`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from compact_jax.validate import check_array

__all__ = [
    "dct_matrix",
    "needs_flip",
    "reflection_vectors",
    "householder_product",
    "cayley",
    "expm_skew",
]


def dct_matrix(t: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``(t, t)``, float64: ``c = S f`` (Eq. 3, scaled).

    ``S[m, i] = sqrt((2 - [m == 0]) / t) * cos(pi / t * m * (i + 1/2))``; row
    ``m`` is the ``m``-th cosine (frequency), column ``i`` the temporal tap.
    Equals ``scipy.fft.dct(np.eye(t), norm="ortho", axis=0)``.
    """
    m = np.arange(t)[:, None]
    i = np.arange(t)[None, :]
    scale = np.where(m == 0, np.sqrt(1.0 / t), np.sqrt(2.0 / t))
    return scale * np.cos(np.pi / t * m * (i + 0.5))


def needs_flip(q: np.ndarray) -> bool:
    """Whether ``q`` (orthogonal) needs ``J`` in front of ``t`` reflections: det(q) != (-1)^t."""
    t = q.shape[0]
    return bool(np.sign(np.linalg.det(q)) != (-1) ** t)


def reflection_vectors(q: np.ndarray) -> tuple[np.ndarray, bool]:
    """Householder vectors ``v (t, t)`` and ``flip`` with ``q = J^flip H(v_1)...H(v_t)``.

    Reduces ``p = J^flip q`` column by column to the identity with at most one
    reflection per column (``v = a - e_i`` maps the unit column ``a`` to
    ``e_i`` and fixes ``e_0 .. e_{i-1}``), then pads to exactly ``t``
    reflections with identical pairs (``H(v) H(v) = I``). The parity works out
    because ``det(p) = (-1)^t``.

    Args:
      q: an orthogonal matrix ``(t, t)``.

    Returns:
      ``(vectors, flip)``; ``vectors[k]`` is the k-th reflection's normal.
    """
    q = np.asarray(q, np.float64)
    t = q.shape[0]
    flip = needs_flip(q)
    a = q.copy()
    if flip:
        a[0] *= -1.0
    vectors = []
    for i in range(t):
        v = a[:, i].copy()
        v[i] -= 1.0
        if np.linalg.norm(v) > 1e-12:
            a = a - 2.0 * np.outer(v, v @ a) / (v @ v)
            vectors.append(v)
    pad = np.zeros(t)
    pad[-1] = 1.0
    while len(vectors) < t:
        vectors += [pad, pad]
    return np.stack(vectors), flip


def householder_product(vectors: jax.Array, *, flip: bool, precision: Any = None) -> jax.Array:
    """``J^flip H(v_1) ... H(v_t)`` from reflection normals ``vectors (t, t)``.

    Applied as ``t`` rank-one updates (``t`` is a static kernel size).

    A zero vector has no reflection plane; it is treated as the identity
    (that factor is skipped), so the product stays orthogonal and finite, and
    its gradient is finite too. (Learned vectors are never exactly zero in
    practice; an all-zero ``householder`` parameter gives ``J^flip``.)

    Raises:
      TypeError / ValueError: ``vectors`` is not a floating-point ``(k, t)``
        array.
    """
    check_array("householder vectors", vectors, floating=True)
    if vectors.ndim != 2:
        raise ValueError(f"householder vectors must have shape (k, t), got {tuple(vectors.shape)}")
    t = vectors.shape[-1]
    sign = np.ones(t)
    if flip:
        sign[0] = -1.0
    s = jnp.diag(jnp.asarray(sign, vectors.dtype))
    for k in range(vectors.shape[0]):
        v = vectors[k]
        sv = jnp.matmul(s, v, precision=precision)
        norm2 = jnp.dot(v, v, precision=precision)
        nonzero = norm2 > 0
        factor = jnp.where(nonzero, 2.0 / jnp.where(nonzero, norm2, 1.0), 0.0)
        s = s - factor * jnp.outer(sv, v)
    return s


def _skew(w: jax.Array) -> jax.Array:
    return w - w.T


def cayley(w: jax.Array) -> jax.Array:
    """``(I + A)^{-1} (I - A)`` with ``A = w - w^T``: orthogonal, ``I`` at ``w = 0``."""
    a = _skew(w)
    eye = jnp.eye(w.shape[-1], dtype=w.dtype)
    return jnp.linalg.solve(eye + a, eye - a)


def expm_skew(w: jax.Array) -> jax.Array:
    """``expm(w - w^T)``: a rotation, ``I`` at ``w = 0``."""
    return jax.scipy.linalg.expm(_skew(w))
