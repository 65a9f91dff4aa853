"""The relative error every experiment reports.

Private helper of :mod:`compact_jax.experiments` (use ``experiments.relative_error``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["relative_error"]


def relative_error(approx: Any, target: Any) -> float:
    """``||approx - target||_F / ||target||_F`` in float64.

    Raises:
      ValueError: different shapes, or an all-zero ``target``.
    """
    approx, target = np.asarray(approx, np.float64), np.asarray(target, np.float64)
    if approx.shape != target.shape:
        raise ValueError(f"relative_error: approx shape {approx.shape} differs from target shape {target.shape}")
    norm = np.linalg.norm(target)
    if norm == 0:
        raise ValueError("relative_error: target is all zeros; the relative error is undefined")
    return float(np.linalg.norm(approx - target) / norm)
