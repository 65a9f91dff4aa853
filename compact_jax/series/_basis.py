"""Sample points and basis matrices of the ApproxConv series kernels.

Everything here is static NumPy (float64) computed from hyperparameters and
cached, so that traced code only ever sees constant matrices.

A series kernel along one axis of size ``K`` with ``N`` harmonics is sampled at
``K`` points ``p_0 < ... < p_{K-1}``; its *basis matrix* ``P`` is ``(K, N)``
with ``P[k, i] = phi_i(p_k)``:

* cosine: ``phi_i(p) = cos(i p)``, points equispaced on an interval inside
  ``[0, pi]`` (the authors use ``[0.2 pi, 0.8 pi]``);
* Chebyshev: ``phi_i(p) = T_i(p)``, points at the Chebyshev-Gauss-Lobatto
  nodes (the paper) or equispaced (the authors' code), on an interval inside
  ``[-1, 1]``.

Keeping the points inside those domains keeps them distinct after the map
``p -> cos p`` (cosine, since ``cos(i p) = T_i(cos p)``), so ``P`` has full
column rank for every ``N <= K`` and is invertible for ``N = K``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = [
    "FAMILIES",
    "POINT_SETS",
    "DEFAULT_INTERVAL",
    "DOMAIN",
    "chebyshev_t",
    "sample_points",
    "basis_matrix",
    "pinv_matrix",
]

FAMILIES = ("cosine", "chebyshev")
# First entry of each tuple is the family's default point set.
POINT_SETS = {"cosine": ("equispaced",), "chebyshev": ("lobatto", "equispaced")}
DEFAULT_INTERVAL = {"cosine": (0.2 * math.pi, 0.8 * math.pi), "chebyshev": (-1.0, 1.0)}
# Intervals must lie inside these domains (see the module docstring).
DOMAIN = {"cosine": (0.0, math.pi), "chebyshev": (-1.0, 1.0)}


def chebyshev_t(x: np.ndarray, num_orders: int) -> np.ndarray:
    """Chebyshev polynomials of the first kind ``T_0 .. T_{num_orders-1}`` at ``x``.

    Evaluated by the three-term recurrence ``T_0 = 1``, ``T_1 = x``,
    ``T_{i+1} = 2 x T_i - T_{i-1}`` (stable on ``[-1, 1]``; no closed forms).

    Args:
      x: points, any shape.
      num_orders: number of polynomials, ``>= 1``.

    Returns:
      ``(*x.shape, num_orders)`` float64 array, ``[..., i] = T_i(x)``.
    """
    x = np.asarray(x, np.float64)
    values = [np.ones_like(x), x][:num_orders]
    while len(values) < num_orders:
        values.append(2.0 * x * values[-1] - values[-2])
    return np.stack(values, axis=-1)


def sample_points(size: int, *, points: str, interval: tuple[float, float]) -> np.ndarray:
    """The ``size`` ascending sample points of one kernel axis.

    Args:
      size: kernel size along the axis.
      points: ``"equispaced"`` (``np.linspace`` over the closed interval) or
        ``"lobatto"`` (Chebyshev-Gauss-Lobatto nodes ``-cos(pi k / (K - 1))``,
        mapped affinely onto the interval).
      interval: ``(low, high)``.

    Returns:
      ``(size,)`` float64. A size-1 axis is sampled at the interval midpoint
      (only ``phi_0``, a constant, can be used there).
    """
    low, high = interval
    if size == 1:
        return np.array([(low + high) / 2.0])
    if points == "equispaced":
        return np.linspace(low, high, size)
    if points == "lobatto":
        unit = -np.cos(np.pi * np.arange(size) / (size - 1))  # ascending in [-1, 1]
        return low + (high - low) * (unit + 1.0) / 2.0
    raise ValueError(f"points must be 'equispaced' or 'lobatto', got {points!r}")


@functools.lru_cache(maxsize=256)
def basis_matrix(
    size: int, harmonics: int, *, family: str, points: str, interval: tuple[float, float]
) -> np.ndarray:
    """Read-only ``(size, harmonics)`` matrix ``P[k, i] = phi_i(p_k)`` (cached)."""
    x = sample_points(size, points=points, interval=interval)
    if family == "cosine":
        matrix = np.cos(np.outer(x, np.arange(harmonics)))
    elif family == "chebyshev":
        matrix = chebyshev_t(x, harmonics)
    else:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=256)
def pinv_matrix(
    size: int, harmonics: int, *, family: str, points: str, interval: tuple[float, float]
) -> np.ndarray:
    """Read-only ``(harmonics, size)`` Moore-Penrose pseudo-inverse of :func:`basis_matrix`."""
    matrix = np.linalg.pinv(
        basis_matrix(size, harmonics, family=family, points=points, interval=interval)
    )
    matrix.setflags(write=False)
    return matrix
