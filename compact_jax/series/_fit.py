"""The paper's gradient fit of series coefficients (Sec. 3.4), every filter at once.

Each 2-D filter ``W (Kh, Kw)`` is fitted independently -- its own loss, its own
Adam state -- by ``jax.vmap`` over filters; the optimisation steps run in a
``lax.scan`` and the whole fit is one jitted computation. The default schedule
is the authors': Adam with learning rate 0.1, then 0.01, then 0.001, 200 steps
each, with a fresh optimiser state per phase (as their code creates a new
``torch.optim.Adam`` per learning rate).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import lax

__all__ = ["DEFAULT_SCHEDULE", "check_schedule", "adam_fit"]

DEFAULT_SCHEDULE = ((0.1, 200), (0.01, 200), (0.001, 200))


def check_schedule(schedule: Any) -> tuple[tuple[float, int], ...]:
    """Canonicalises ``((learning_rate, steps), ...)``; raises naming the bad entry."""
    if not isinstance(schedule, Sequence) or isinstance(schedule, str) or not schedule:
        raise TypeError(
            f"schedule must be a non-empty sequence of (learning_rate, steps) pairs, got {schedule!r}"
        )
    phases = []
    for phase in schedule:
        if not isinstance(phase, Sequence) or isinstance(phase, str) or len(phase) != 2:
            raise TypeError(f"schedule entries must be (learning_rate, steps) pairs, got {phase!r}")
        lr, steps = phase
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
            raise ValueError(f"schedule learning rates must be positive reals, got {lr!r} in {phase!r}")
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ValueError(f"schedule step counts must be integers >= 1, got {steps!r} in {phase!r}")
        phases.append((float(lr), int(steps)))
    return tuple(phases)


def _filter_mse(coeffs: jax.Array, target: jax.Array, ph: jax.Array, pw: jax.Array) -> jax.Array:
    """Eq. 5: mean over the ``Kh x Kw`` grid of ``(W - P_h A P_w^T)^2`` for one filter."""
    approx = ph @ coeffs @ pw.T
    return jnp.mean((approx - target) ** 2)


def _fit_one_filter(target, coeffs, ph, pw, schedule):
    grad_fn = jax.grad(_filter_mse)
    for learning_rate, steps in schedule:
        optimizer = optax.adam(learning_rate)

        def step(carry, _, optimizer=optimizer):
            coeffs, state = carry
            grads = grad_fn(coeffs, target, ph, pw)
            updates, state = optimizer.update(grads, state, coeffs)
            return (optax.apply_updates(coeffs, updates), state), None

        (coeffs, _), _ = lax.scan(step, (coeffs, optimizer.init(coeffs)), length=steps)
    return coeffs, _filter_mse(coeffs, target, ph, pw)


@functools.partial(jax.jit, static_argnames=("schedule",))
def adam_fit(
    kernel: jax.Array,
    coeffs: jax.Array,
    ph: jax.Array,
    pw: jax.Array,
    *,
    schedule: tuple[tuple[float, int], ...],
) -> tuple[jax.Array, jax.Array]:
    """Fits every filter of a kernel with Adam, vmapped over filters.

    Args:
      kernel: ``(Kh, Kw, C_in/g, C_out)`` targets.
      coeffs: ``(N_h, N_w, C_in/g, C_out)`` starting coefficients.
      ph: ``(Kh, N_h)`` basis matrix; pw: ``(Kw, N_w)``.
      schedule: canonical ``((learning_rate, steps), ...)`` (static).

    Returns:
      ``(coeffs (N_h, N_w, C_in/g, C_out), mse (C_in/g, C_out))``.
    """
    kh, kw, c_in, c_out = kernel.shape
    nh, nw = coeffs.shape[:2]
    targets = kernel.reshape(kh, kw, c_in * c_out)
    starts = coeffs.reshape(nh, nw, c_in * c_out)
    fit_all = jax.vmap(
        functools.partial(_fit_one_filter, schedule=schedule),
        in_axes=(2, 2, None, None),
        out_axes=(2, 0),
    )
    fitted, mse = fit_all(targets, starts, ph, pw)
    return fitted.reshape(nh, nw, c_in, c_out), mse.reshape(c_in, c_out)
