"""``python -m compact_jax.bench [--only NAME,...]``: every benchmark table.

Each table times compact layers and the dense layer of the same shape in the
same run and prints ratios (compact / dense). Expect several minutes on a
2-core CPU; ``--only`` picks tables; ``--tiny`` runs the whole-network table
at smoke-test sizes (as ``COMPACT_JAX_BENCH_TINY=1``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import time

TABLES = {
    "filtermap": "compact_jax.bench.filtermap_layers",
    "basis": "compact_jax.bench.basis_paths",
    "series": "compact_jax.bench.series_layers",
    "fdc3d": "compact_jax.bench.fdc3d",
    "lowering": "compact_jax.bench.conv_lowering",
    "networks": "compact_jax.bench.networks",
    "groups": "compact_jax.bench.network_groups",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m compact_jax.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(TABLES), help=f"comma-separated subset of {list(TABLES)}")
    parser.add_argument("--tiny", action="store_true", help="whole networks at smoke-test sizes")
    args = parser.parse_args(argv)
    if args.tiny:
        os.environ["COMPACT_JAX_BENCH_TINY"] = "1"
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        parser.error(f"unknown table(s) {unknown}; valid: {list(TABLES)}")
    for name in names:
        start = time.perf_counter()
        importlib.import_module(TABLES[name]).main()
        print(f"({name}: {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
