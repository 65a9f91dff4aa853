"""Wall-clock timing of jitted functions and ratio tables (benchmarks only, never tests)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax

__all__ = ["time_jitted", "print_table"]


def time_jitted(fn: Callable, *args: Any, repeats: int = 5, min_seconds: float = 0.2) -> float:
    """Median seconds per call of an already-jitted ``fn(*args)``.

    Compiles and warms up once, then times ``repeats`` rounds; each round runs
    the function enough times to last at least ``min_seconds`` so that short
    kernels are not dominated by dispatch noise.
    """
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


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "") -> None:
    """Prints a plain fixed-width table (floats with 3 significant digits)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    if title:
        print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
