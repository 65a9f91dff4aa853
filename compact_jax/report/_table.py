"""Plain-text tables: the one formatter behind the report, the benchmarks and the training summaries.

Private helper of :mod:`compact_jax.report` (use ``report.format_table``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_table"]


def _cell(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any] | None], *, left: int = 1,
                 title: str = "") -> str:
    """An aligned fixed-width table: the header, a rule, the rows.

    Args:
      header: column names.
      rows: one sequence of cells per row (floats with 3 significant digits,
        anything else by ``str``); ``None`` draws a rule.
      left: how many leading columns are left-aligned; the others are right-aligned.
      title: a line above the table.

    >>> print(format_table(("layer", "params"), [("conv1", 1728), None, ("total", 0.12345)], title="sizes"))
    sizes
    layer  params
    -----  ------
    conv1    1728
    -----  ------
    total   0.123
    """
    header = [str(h) for h in header]
    body = [None if row is None else [_cell(c) for c in row] for row in rows]
    for row in body:
        if row is not None and len(row) != len(header):
            raise ValueError(f"format_table: a row has {len(row)} cells, the header {len(header)}: {row}")
    widths = [max(len(r[i]) for r in [header, *(r for r in body if r is not None)]) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = ([title] if title else []) + [line(header), rule] + [rule if r is None else line(r) for r in body]
    return "\n".join(lines)
