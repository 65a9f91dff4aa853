"""FDC3D's transform ablation on a trained 3-D network: learned transform vs DCT vs min-l2, before fine-tuning.

For each seed a small 3D-ResNet is trained densely on the embedded
moving-digit clips; then, for the same pruning ``(p_c, p_t)`` of every layer
(the config's preset), Algorithm 1 runs with each temporal transform - the
learned orthogonal ``S`` (Householder), the fixed DCT, and no transform
(``S = I``: the raw temporal taps of least l2 norm are dropped, "min-l2") -
and the pruned network's test accuracy is measured *without* fine-tuning.
FDC3D's Fig. 2 (one layer) and Table 2 (after fine-tuning) order them
learned >= DCT >= min-l2.

Usage::

    python -m train.pipelines.fdc3d_ablation                       # 2x and 4x, seeds 0-2
    python -m train.pipelines.fdc3d_ablation --configs ucf101_fdc3d:4x,digits --seeds 0,1,2,3,4
    python -m train.pipelines.fdc3d_ablation --set pipeline.dense_steps=600 --workdir runs/ablation

Prints one table per config: accuracy (%) per transform and seed, the mean,
and on how many seeds each ordering held.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Sequence

import numpy as np

from compact_jax.bench._timing import print_table
from train import config as config_lib
from train.errors import UserError
from train.pipelines import _stages
from train.pipelines import fdc3d as fdc3d_lib
from train.pipelines.policy import resolve_plan

__all__ = ["TRANSFORMS", "pre_finetune_accuracy", "ablation", "main"]

#: Label -> ``FrequencySpec.transform``.
TRANSFORMS = {"learned": "learned_householder", "DCT": "dct", "min-l2": "none"}


def pre_finetune_accuracy(config, model, variables, dataset, transform: str) -> float:
    """Algorithm 1 with ``transform`` on the dense ``model``; test accuracy of the pruned net, no fine-tuning."""
    from compact_jax import compress

    config = copy.deepcopy(config)
    config.model.compress.kwargs.transform = transform
    plan = resolve_plan(config.model.compress, model, _stages.input_shape(dataset))
    plan, params, _ = fdc3d_lib.compress_network(config, plan, model, variables, dataset)
    metrics = _stages.evaluate(config, compress.build(plan), {**variables, "params": params}, dataset)
    return float(metrics["accuracy"])


def ablation(config_name: str, seeds: Sequence[int], *, overrides: Sequence[str] = (), workdir: str | None = None):
    """``(dense, results)``: dense accuracy per seed and ``label -> accuracy per seed``."""
    dense, results = [], {label: [] for label in TRANSFORMS}
    for seed in seeds:
        config = config_lib.load(config_name, [*overrides, f"seed={seed}"])
        if config.pipeline.name != "fdc3d":
            raise UserError(f"{config_name}: the ablation needs an fdc3d config, got pipeline {config.pipeline.name!r}")
        dataset = _stages.load_dataset(config)
        run_dir = os.path.join(workdir, f"{config_name.replace(':', '_')}_seed{seed}") if workdir else None
        model, variables, metrics = _stages.dense_stage(config, run_dir, dataset)
        dense.append(float(metrics["accuracy"]))
        for label, transform in TRANSFORMS.items():
            results[label].append(pre_finetune_accuracy(config, model, variables, dataset, transform))
    return dense, results


def _order_counts(results: dict) -> dict[str, int]:
    learned, dct, minl2 = (np.asarray(results[k]) for k in TRANSFORMS)
    return {"learned >= DCT": int(np.sum(learned >= dct)), "DCT >= min-l2": int(np.sum(dct >= minl2)),
            "learned >= min-l2": int(np.sum(learned >= minl2))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.pipelines.fdc3d_ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="ucf101_fdc3d:2x,digits;ucf101_fdc3d:4x,digits",
                        help="fdc3d configs separated by ';' (default: 2x and 4x on the moving-digit clips)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--set", dest="overrides", action="append", default=["train.progress=False"],
                        metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--workdir", help="keep the dense runs here (reused when re-run)")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        for name in filter(None, args.configs.split(";")):
            dense, results = ablation(name, seeds, overrides=args.overrides, workdir=args.workdir)
            header = ("transform", *(f"seed {s}" for s in seeds), "mean")
            rows = [("dense (unpruned)", *(f"{100 * a:.1f}" for a in dense), f"{100 * np.mean(dense):.1f}")]
            rows += [(label, *(f"{100 * a:.1f}" for a in accs), f"{100 * np.mean(accs):.1f}") for label, accs in results.items()]
            print_table(header, rows, title=f"{name}: test accuracy % before fine-tuning (Algorithm 1, same (p_c, p_t))")
            counts = _order_counts(results)
            print("ordering held on: " + ", ".join(f"{k} {v}/{len(seeds)} seeds" for k, v in counts.items()))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
