"""Command line: ``python -m train`` (the main job) or ``python -m train --config NAME``.

Examples::

    python -m train                                   # digits: dense vs each compact conv, one table
    python -m train --config digits_filtermap --workdir runs/fm --set optimizer.lr=0.05
    python -m train --config digits_dense:runlocal    # tiny smoke variant
    python -m train --list                            # available configs

Re-running a ``--config`` command with the same ``--workdir`` resumes from its
newest checkpoint (with the same config: a changed hyperparameter needs
``--allow-config-change``, a changed model a new workdir). Every mistake
(unknown config / key / model / dataset, a value out of range, a conv kwarg
of the wrong type, a batch the devices cannot split, an unusable workdir, an
unprepared dataset) is reported as one line on stderr with exit status 2,
before anything trains; a diverged run (NaN loss or outputs) exits with
status 3. A traceback means a bug.
SIGTERM saves a checkpoint and exits with status 0, Ctrl-C (SIGINT) saves one
and exits with status 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from train.errors import NonFiniteLossError, RunStopped, UserError


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line (argparse's default prints the usage block first)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m train",
        description="Train compact_jax models. Without --config: train a ResNet-8 on the embedded digits "
        "in its dense form and with each available compact convolution, and print one comparison table.",
    )
    parser.add_argument("--config", metavar="NAME[:ARG]", help="config module in train/configs (see --list)")
    parser.add_argument("--workdir", metavar="DIR", help="logs, checkpoints and export (default for --config: runs/NAME)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optimizer.lr=0.05 (repeatable)")
    parser.add_argument("--methods", metavar="M1,M2", help="main job only: comma-separated conv methods")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="resume even though hyperparameters changed (each change is logged); "
                        "same as --set train.allow_config_change=True")
    parser.add_argument("--list", action="store_true", help="list the available configs and exit")
    return parser


def _run_config(args) -> int:
    from train.lock import WorkdirLock
    from train.validate_config import check_workdir

    if not args.config.strip():
        raise UserError(f"unknown config {args.config!r}: --config needs a config name (see --list); omit --config for the main job")
    workdir = args.workdir or f"runs/{args.config.replace(':', '_')}"
    check_workdir(workdir)  # a file or an unwritable folder: one line, before the lock tries to create it
    if _multi_host(args.overrides):  # every process runs this: process 0 locks once JAX knows which it is
        return _run_locked(args, workdir)
    with WorkdirLock(workdir):  # before the slow imports: a busy workdir is reported at once
        return _run_locked(args, workdir)


def _multi_host(overrides: Sequence[str]) -> bool:
    """Whether ``--set distributed=...`` turns on multi-host training."""
    values = [o.split("=", 1)[1].strip().lower() for o in overrides if o.split("=", 1)[0].strip() == "distributed" and "=" in o]
    return bool(values) and values[-1] not in ("false", "0", "none", "")


def _stopped_status(signal_name: str) -> int:
    """Exit status of a run stopped by a signal: 130 for Ctrl-C (the shell's convention), 0 for SIGTERM."""
    return 130 if signal_name == "SIGINT" else 0


def _run_locked(args, workdir: str) -> int:
    from train import config as config_lib
    from train import trainer
    from train.preflight import preflight

    config = config_lib.load(args.config, args.overrides)
    preflight(config, workdir)
    if config.get("pipeline") and config.pipeline.name != "train":
        from train import pipelines

        print(pipelines.run(config, workdir).summary())
        return 0
    result = trainer.train(config, workdir, desc=args.config)
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items() if isinstance(v, float))
    if result.stopped:
        print(f"{args.config}: stopped by {result.stopped_by} at step {int(result.state['step'])}; run the same command to resume")
        return _stopped_status(result.stopped_by)
    resumed = f", resumed from step {result.resumed_from}" if result.resumed_from is not None else ""
    print(f"{args.config}: {result.num_params} params, {metrics}{resumed}; workdir {workdir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.allow_config_change:
        args.overrides.append("train.allow_config_change=True")
    try:
        if args.list:
            from train.config import available_experiments

            print("\n".join(available_experiments()))
        elif args.config is not None:
            return _run_config(args)
        else:
            from train.compare import compare

            methods = args.methods.split(",") if args.methods is not None else None
            compare(methods, workdir=args.workdir, overrides=args.overrides)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except RunStopped as stop:
        print(stop)
        return _stopped_status(stop.signal_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
