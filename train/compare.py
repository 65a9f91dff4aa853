"""The main job: one network trained dense and with each compact conv, in one table.

Trains the ``digits_<method>`` configs (ResNet-8 on the embedded digits)
for every method present in ``compact_jax.linen`` and prints parameters,
compression against the dense form, test accuracy and step time.
"""

from __future__ import annotations

from collections.abc import Sequence

from compact_jax.bench.timing import print_table
from train import config as config_lib
from train import paths, trainer
from train.errors import RunStopped, UserError, did_you_mean
from train.models import available_methods
from train.preflight import preflight

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

    Raises:
      UserError: an unknown method or a bad config, found before anything trains.
    """
    if methods is None:
        methods = list(MAIN_METHODS)
    valid = list(MAIN_METHODS)
    for method in methods:  # every name and config is checked before the first run trains
        if method not in valid:
            raise UserError(f"unknown method {method!r} for the comparison; {did_you_mean(method, valid)}valid: {', '.join(valid)}")
    configs = {}
    for method in methods:
        name = f"digits_{method}"
        configs[method] = config_lib.load(name, overrides)
        preflight(configs[method], paths.join(workdir, name))
    results = {}
    for method, config in configs.items():
        name = f"digits_{method}"
        run_dir = paths.join(workdir, name)
        results[method] = result = trainer.train(config, run_dir, desc=method)
        if result.stopped:  # Ctrl-C / SIGTERM ends the whole comparison, not only this method's run
            where = f"; rerun with --workdir {workdir} to resume" if workdir else ""
            raise RunStopped(f"comparison stopped by {result.stopped_by} during {method!r} at step "
                             f"{int(result.state['step'])}{where}", signal_name=result.stopped_by)
    dense = results["dense"].num_params if "dense" in results else None
    rows = []
    for method, result in results.items():
        ratio = f"{dense / result.num_params:.2f}x" if dense else "-"
        accuracy = 100.0 * result.metrics["accuracy"]
        rows.append((method, result.num_params, ratio, f"{accuracy:.1f}", f"{1e3 * result.step_time:.1f}"))
    print_table(HEADER, rows, title="ResNet-8 on embedded digits (16x16): dense vs compact convolutions")
    return rows
