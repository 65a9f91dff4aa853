"""The main job: one network trained dense and with each compact conv, in one table.

Trains the ``digits_<method>`` configs (ResNet-8 on the embedded digits)
for every method present in ``compact_jax.linen`` and prints parameters,
compression against the dense form, test accuracy and step time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from compact_jax.bench.timing import print_table
from train import config as config_lib
from train import trainer
from train.models import available_methods

__all__ = ["MAIN_METHODS", "compare"]

#: Methods with a ``digits_<method>`` config, in registry order (``dense`` first).
MAIN_METHODS = tuple(m for m in available_methods() if f"digits_{m}" in config_lib.available_configs())
HEADER = ("method", "params", "compression", "test acc %", "step ms")


def compare(
    methods: Sequence[str] | None = None, *, workdir: str | None = None, overrides: Sequence[str] = ()
) -> list[tuple]:
    """Trains each method's digits config and prints the comparison table.

    Args:
      methods: methods to train (default: :data:`MAIN_METHODS`); ``dense``
        should come first, it is the compression reference.
      workdir: if set, each run logs and checkpoints to ``workdir/digits_<method>``.
      overrides: ``key=value`` overrides applied to every config.

    Returns:
      The table rows ``(method, params, compression, accuracy %, step ms)``.
    """
    if methods is None:
        methods = list(MAIN_METHODS)
    results = {}
    for method in methods:
        name = f"digits_{method}"
        config = config_lib.load(name, overrides)
        run_dir = os.path.join(workdir, name) if workdir else None
        results[method] = trainer.train(config, run_dir, desc=method)
    dense = results["dense"].num_params if "dense" in results else None
    rows = []
    for method, result in results.items():
        ratio = f"{dense / result.num_params:.2f}x" if dense else "-"
        accuracy = 100.0 * result.metrics["accuracy"]
        rows.append((method, result.num_params, ratio, f"{accuracy:.1f}", f"{1e3 * result.step_time:.1f}"))
    print_table(HEADER, rows, title="ResNet-8 on embedded digits (16x16): dense vs compact convolutions")
    return rows
