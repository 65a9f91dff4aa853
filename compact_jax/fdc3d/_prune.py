"""FDC3D penalties (Eq. 7-9), pruning (Algorithm 1) and the cost formulas (Eq. 13-14)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from compact_jax.fdc3d._spec import FrequencySpec, check_params, check_spec
from compact_jax.validate import (
    check_array,
    check_fraction,
    check_int_tuple,
    check_param_dict,
    check_positive_int,
)

__all__ = [
    "importance",
    "group_sparsity",
    "channel_sparsity",
    "penalty",
    "prune",
    "pruned_sizes",
    "speedup",
    "compression_rate",
]


def _norms(sum_sq: jax.Array) -> jax.Array:
    """``sqrt`` with a zero (not NaN) gradient at 0, so all-zero rows are differentiable."""
    positive = sum_sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sum_sq, 1.0)), 0.0)


def importance(params: dict, spec: FrequencySpec) -> jax.Array:
    """``V (t',)``: the l2 norm of each kept frequency row (see ``FrequencySpec.importance``)."""
    check_spec(spec, "temporal.importance")
    check_param_dict(params, {"coeffs": spec.coeffs_shape}, where="temporal.importance", batched=False, extra=True)
    coeffs = params["coeffs"]
    if spec.importance == "summed":
        return _norms(jnp.sum(jnp.sum(coeffs, axis=(1, 2, 3)) ** 2, axis=-1))
    return _norms(jnp.sum(coeffs**2, axis=(1, 2, 3, 4)))


def group_sparsity(params: dict, spec: FrequencySpec) -> jax.Array:
    """The l2,1 norm of Eq. (7): ``sum_i V_i`` over the frequency rows."""
    return jnp.sum(importance(params, spec))


def channel_sparsity(params: dict) -> jax.Array:
    """The l1 norm of ``beta`` (Eq. 8)."""
    if not isinstance(params, Mapping) or "beta" not in params:
        got = sorted(map(str, params)) if isinstance(params, Mapping) else type(params).__name__
        raise TypeError(f"temporal.channel_sparsity: params must be a dict with 'beta', got {got}")
    check_array("temporal.channel_sparsity: params['beta']", params["beta"], floating=True)
    return jnp.sum(jnp.abs(params["beta"]))


def penalty(params: dict, spec: FrequencySpec, *, lam: float, gamma: float) -> jax.Array:
    """The regularisers of Eq. (9): ``lam * ||S F||_{2,1} + gamma * ||beta||_1``."""
    return lam * group_sparsity(params, spec) + gamma * channel_sparsity(params)


def _num_dropped(n: int, fraction: float) -> int:
    """``floor(n * fraction)`` (tolerating float error), keeping at least one."""
    return min(int(math.floor(n * fraction + 1e-9)), n - 1)


def pruned_sizes(n_channels: int, n_rows: int, *, p_c: float, p_t: float) -> tuple[int, int]:
    """``(c', t')`` after dropping ``floor(c p_c)`` channels and ``floor(t p_t)`` rows."""
    c = check_positive_int("n_channels", n_channels)
    t = check_positive_int("n_rows", n_rows)
    p_c, p_t = check_fraction("p_c", p_c), check_fraction("p_t", p_t)
    return c - _num_dropped(c, p_c), t - _num_dropped(t, p_t)


def _concrete(value: Any, where: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError) as err:
        raise TypeError(f"{where} changes array sizes and needs concrete params; call it outside jit") from err


def prune(params: dict, spec: FrequencySpec, *, p_c: float, p_t: float) -> tuple[dict, FrequencySpec]:
    """Algorithm 1, steps 10-11: drop channels by ``|beta|``, then rows by ``V``.

    Drops the ``floor(c' p_c)`` kept channels with the smallest ``|beta|``, then
    (on the remaining channels) the ``floor(t' p_t)`` kept rows with the
    smallest importance ``V``; ties drop the lower index first. Fractions are
    of the current (possibly already pruned) sizes.

    Returns:
      ``(params, spec)`` of a physically smaller layer with the same input and
      output channels; other entries of ``params`` (e.g. a bias) pass through.
    """
    p_c, p_t = check_fraction("p_c", p_c), check_fraction("p_t", p_t)
    check_params(params, spec, where="temporal.prune")
    beta = _concrete(params["beta"], "temporal.prune")
    coeffs = _concrete(params["coeffs"], "temporal.prune")
    drop = _num_dropped(spec.num_channels, p_c)
    keep = np.sort(np.argsort(np.abs(beta), kind="stable")[drop:])
    beta, coeffs = beta[keep], coeffs[:, :, :, keep]
    spec = dataclasses.replace(spec, kept_channels=tuple(spec.kept_channels[i] for i in keep))
    value = _concrete(importance({"coeffs": coeffs}, spec), "temporal.prune")
    drop = _num_dropped(spec.num_rows, p_t)
    keep = np.sort(np.argsort(value, kind="stable")[drop:])
    spec = dataclasses.replace(spec, kept_rows=tuple(spec.kept_rows[i] for i in keep))
    beta = jnp.asarray(beta, params["beta"].dtype)
    coeffs = jnp.asarray(coeffs[keep], params["coeffs"].dtype)
    return {**params, "beta": beta, "coeffs": coeffs}, spec


def speedup(
    *, in_features: int, temporal_size: int, p_c: float, p_t: float, features: int | None = None
) -> float:
    """Eq. (13) as a speed-up factor: ``c t / (c' t')`` (the paper's approximation).

    With ``features = N`` it returns the unapproximated ratio of Eq. (10) to
    Eq. (12), ``c t N / (c' t' t + c' t' N)``, where the printed Eq. (12) has
    ``t`` for the kept ``t'`` (the approximation ``c't'/(ct)`` needs ``t'``)
    and the projection onto ``t'`` rows costs ``t' t`` per channel.
    """
    c_kept, t_kept = pruned_sizes(in_features, temporal_size, p_c=p_c, p_t=p_t)
    c, t = in_features, temporal_size
    if features is None:
        return c * t / (c_kept * t_kept)
    n = check_positive_int("features", features)
    return c * t * n / (c_kept * t_kept * t + c_kept * t_kept * n)


def compression_rate(
    *, features: int, in_features: int, kernel_size: Sequence[int], p_c: float, p_t: float
) -> float:
    """Eq. (14): ``r_s = (N c' d^2 t' + t^2) / (N c d^2 t)``, the kept fraction of weights.

    ``kernel_size`` is ``(t, k_h, k_w)`` and ``d^2 = k_h k_w``.
    """
    t, k_h, k_w = check_int_tuple("kernel_size", kernel_size, ndim=3, broadcast=False)
    n = check_positive_int("features", features)
    c_kept, t_kept = pruned_sizes(in_features, t, p_c=p_c, p_t=p_t)
    d2 = k_h * k_w
    return (n * c_kept * d2 * t_kept + t * t) / (n * in_features * d2 * t)
