"""Wall-clock timing of jitted functions and ratio tables (benchmarks only, never tests)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from compact_jax.report import format_table

__all__ = ["time_jitted", "step_fns", "best_times", "print_table"]


#: Shortest duration of one timing round; set lower to smoke-test the tables quickly.
MIN_SECONDS = 0.2


def time_jitted(fn: Callable, *args: Any, repeats: int = 5, min_seconds: float | None = None) -> float:
    """Median seconds per call of an already-jitted ``fn(*args)``.

    Compiles and warms up once, then times ``repeats`` rounds; each round runs
    the function enough times to last at least ``min_seconds`` (default
    :data:`MIN_SECONDS`) so that short kernels are not dominated by dispatch
    noise.
    """
    if min_seconds is None:
        min_seconds = MIN_SECONDS
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    once = max(time.perf_counter() - start, 1e-6)
    inner = max(1, int(min_seconds / once))
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            out = fn(*args)
        jax.block_until_ready(out)
        rounds.append((time.perf_counter() - start) / inner)
    return statistics.median(rounds)


def step_fns(forward: Callable) -> tuple[Callable, Callable]:
    """Jitted ``forward(p, x)`` and its training step: the gradient of
    ``mean(forward(p, x) ** 2)`` w.r.t. the parameters and the input, as
    inside a network."""

    def loss(p, x):
        return jnp.mean(forward(p, x) ** 2)

    return jax.jit(forward), jax.jit(jax.grad(loss, argnums=(0, 1)))


def best_times(
    variants: dict[str, tuple[Callable, Any]],
    x: jax.Array,
    *,
    rounds: int = 3,
    repeats: int = 3,
    backward: bool = True,
    min_seconds: float | None = None,
) -> dict[str, tuple[float, float]]:
    """Fastest (forward, forward+backward) seconds of each ``name -> (forward, params)``.

    The variants are timed in turn, ``rounds`` times: they see the same
    machine load, and the minimum discards rounds slowed by other processes.
    The backward time is ``nan`` when ``backward`` is false; ``min_seconds``
    as in :func:`time_jitted`.
    """
    fns = {name: (step_fns(fwd), params) for name, (fwd, params) in variants.items()}
    best = {name: (float("inf"), float("inf") if backward else float("nan")) for name in fns}
    for _ in range(rounds):
        for name, ((fwd, train), params) in fns.items():
            f = time_jitted(fwd, params, x, repeats=repeats, min_seconds=min_seconds)
            t = time_jitted(train, params, x, repeats=repeats, min_seconds=min_seconds) if backward else float("nan")
            best[name] = (min(best[name][0], f), min(best[name][1], t) if backward else t)
    return best


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "") -> None:
    """Prints :func:`compact_jax.report.format_table` (right-aligned; floats with 3 significant digits)."""
    print(("\n" if title else "") + format_table(header, rows, left=0, title=title))
