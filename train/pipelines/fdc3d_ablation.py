"""FDC3D's transform ablation on a trained 3-D network: learned transform vs DCT vs min-l2, before fine-tuning.

For each seed a small 3D-ResNet is trained densely on the embedded
moving-digit clips. Then, with each temporal transform - the learned
orthogonal ``S`` (Householder), the fixed DCT, and no transform (``S = I``:
the raw temporal taps of least l2 norm are dropped, "min-l2") - Algorithm 1
fits Eq. (9) on every layer once, and the test accuracy *without
fine-tuning* is measured

* ``network``: with every layer pruned to the config's ``(p_c, p_t)``;
* ``layers``: with one layer pruned at a time, the others kept whole
  (FDC3D's Fig. 2 is this single-layer view).

FDC3D's Fig. 2 (one layer) and Table 2 (after fine-tuning) order them
learned >= DCT >= min-l2. An accuracy at the majority-class rate means the
pruned network predicts one class: an ordering among such ties says nothing,
and the tables mark it.

Usage::

    python -m train.pipelines.fdc3d_ablation                       # 2x and 4x, seeds 0-2, both views
    python -m train.pipelines.fdc3d_ablation --configs "ucf101_fdc3d:4x,digits" --seeds 0,1,2,3,4 --view layers
    python -m train.pipelines.fdc3d_ablation --set pipeline.dense_steps=600 --workdir runs/ablation

Prints tables of accuracy (%) per transform, and on how many seeds (and
layers) each ordering held.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
from collections.abc import Sequence

import numpy as np

from compact_jax.bench.timing import print_table
from train import config as config_lib
from train import paths
from train.errors import UserError
from train.pipelines import _stages
from train.pipelines import fdc3d as fdc3d_lib
from train.pipelines.policy import resolve_plan

__all__ = ["TRANSFORMS", "VIEWS", "AblationResult", "transform_accuracies", "ablation", "main"]

#: Label -> ``FrequencySpec.transform``.
TRANSFORMS = {"learned": "learned_householder", "DCT": "dct", "min-l2": "none"}
#: ``network``: every layer pruned at once; ``layers``: one layer at a time.
VIEWS = ("network", "layers")
_ORDERINGS = (("learned", "DCT"), ("DCT", "min-l2"), ("learned", "min-l2"))


def transform_accuracies(config, model, variables, dataset, transform: str, views: Sequence[str] = VIEWS) -> dict:
    """Test accuracy of the pruned, not fine-tuned network with ``transform``.

    Eq. (9) is fitted on every layer once; returns ``{"network": acc}`` and/or
    ``{"layers": {path: acc}}`` (see the module docstring).
    """
    from compact_jax import compress

    config = copy.deepcopy(config)
    config.model.compress.kwargs.transform = transform
    plan = resolve_plan(config.model.compress, model, _stages.input_shape(dataset))
    fitted = fdc3d_lib.fit_network(config, plan, model, variables, dataset)

    def accuracy(only=None):
        pruned_plan, params = fdc3d_lib.prune_network(plan, variables, fitted, only=only)
        metrics = _stages.evaluate(config, compress.build(pruned_plan), {**variables, "params": params}, dataset)
        return float(metrics["accuracy"])

    out = {}
    if "network" in views:
        out["network"] = accuracy()
    if "layers" in views:
        out["layers"] = {path: accuracy(path) for path in fitted}
    return out


class AblationResult:
    """Accuracies of one config over seeds.

    Attributes:
      seeds: the seeds.
      dense: unpruned accuracy per seed.
      majority: the test set's majority-class rate (what a collapsed network scores).
      network: ``label -> accuracy per seed`` (every layer pruned).
      layers: ``label -> path -> accuracy per seed`` (one layer pruned).
    """

    def __init__(self, seeds: Sequence[int]):
        self.seeds = list(seeds)
        self.dense: list[float] = []
        self.majority = float("nan")
        self.network: dict[str, list[float]] = {label: [] for label in TRANSFORMS}
        self.layers: dict[str, dict[str, list[float]]] = {label: {} for label in TRANSFORMS}

    def orderings(self, view: str) -> dict[str, tuple[int, int, int]]:
        """``"a >= b" -> (held, strictly, cases)`` over seeds (and layers), counting only cases where not
        every transform is at the majority-class rate (uninformative ties)."""
        if view == "network":
            cases = [{label: self.network[label][i] for label in TRANSFORMS} for i in range(len(self.dense))]
        else:
            paths = list(self.layers["learned"])
            cases = [{label: self.layers[label][p][i] for label in TRANSFORMS}
                     for p in paths for i in range(len(self.dense))]
        informative = [c for c in cases if not all(v <= self.majority + 1e-6 for v in c.values())]
        return {f"{a} >= {b}": (sum(c[a] >= c[b] for c in informative), sum(c[a] > c[b] for c in informative),
                                len(informative)) for a, b in _ORDERINGS}


def _majority_rate(dataset) -> float:
    """The largest class's share of the test set (NaN when the test set is not held in memory)."""
    arrays = getattr(dataset.test, "arrays", None)
    if arrays is None:
        return float("nan")
    labels = np.asarray(arrays["targets"]).ravel()
    return float(np.bincount(labels).max() / labels.size)


def _dense_run_name(config) -> str:
    """``dense_seed{seed}_{digest}``: configs that train the same dense network (2x and 4x) share its run."""
    dense = _stages._dense_config(config)
    with dense.unlocked():
        for key in ("name", "pipeline"):
            if key in dense:
                del dense[key]
        del dense.model["compress"]
        dense.train.progress = False
    digest = hashlib.sha1(dense.to_json(sort_keys=True).encode()).hexdigest()[:10]
    return f"dense_seed{config.seed}_{digest}"


def ablation(config_name: str, seeds: Sequence[int], *, views: Sequence[str] = VIEWS, overrides: Sequence[str] = (),
             workdir: str | None = None) -> AblationResult:
    """Trains (or reuses, with ``workdir``) one dense network per seed and measures every transform on it."""
    unknown = sorted(set(views) - set(VIEWS))
    if unknown or not views:
        raise UserError(f"views must be some of {', '.join(VIEWS)}; got {list(views)}")
    result = AblationResult(seeds)
    for seed in seeds:
        config = config_lib.load(config_name, [*overrides, f"seed={seed}"])
        pipeline = config.get("pipeline", {}).get("name", "train")
        if pipeline != "fdc3d":
            raise UserError(f"{config_name}: the ablation needs an fdc3d config (e.g. ucf101_fdc3d:2x,digits); "
                            f"it runs pipeline {pipeline!r}")
        dataset = _stages.load_dataset(config)
        if dataset.task != "classification":
            raise UserError(f"{config_name}: the ablation compares test accuracy; dataset {config.data.name!r} "
                            f"is a {dataset.task} task")
        result.majority = _majority_rate(dataset)
        run_dir = paths.join(workdir, _dense_run_name(config))
        model, variables, metrics = _stages.dense_stage(config, run_dir, dataset)
        result.dense.append(float(metrics["accuracy"]))
        for label, transform in TRANSFORMS.items():
            accs = transform_accuracies(config, model, variables, dataset, transform, views)
            if "network" in accs:
                result.network[label].append(accs["network"])
            for path, acc in accs.get("layers", {}).items():
                result.layers[label].setdefault(path, []).append(acc)
    return result


def _pct(values) -> str:
    return f"{100 * np.mean(values):.1f}"


def _print_orderings(result: AblationResult, view: str, unit: str) -> None:
    orderings = result.orderings(view)
    parts = [f"{name} on {held}/{cases} {unit} ({strictly} strictly)" for name, (held, strictly, cases) in orderings.items()]
    cases = next(iter(orderings.values()))[2]
    skipped = len(result.dense) * (1 if view == "network" else len(result.layers["learned"])) - cases
    tail = f"; {skipped} more left out (every transform at or below the majority-class rate)" if skipped else ""
    print("ordering held: " + ", ".join(parts) + tail)


def report(name: str, result: AblationResult) -> None:
    """Prints the tables of :func:`ablation`'s result."""
    chance = f"majority class {100 * result.majority:.1f}%"
    if result.network["learned"]:
        header = ("transform", *(f"seed {s}" for s in result.seeds), "mean")
        rows = [("dense (unpruned)", *(_pct(a) for a in result.dense), _pct(result.dense))]
        rows += [(label, *(_pct(a) for a in accs), _pct(accs)) for label, accs in result.network.items()]
        print_table(header, rows, title=f"{name}: test accuracy % with every layer pruned, before fine-tuning "
                                          f"({chance})")
        _print_orderings(result, "network", "seeds")
    if result.layers["learned"]:
        paths = list(result.layers["learned"])
        header = ("transform", *paths, "mean")
        rows = [(label, *(_pct(by_path[p]) for p in paths), _pct([a for p in paths for a in by_path[p]]))
                for label, by_path in result.layers.items()]
        print_table(header, rows, title=f"{name}: test accuracy % with one layer pruned (column), before "
                                          f"fine-tuning, mean over {len(result.seeds)} seeds ({chance}; dense "
                                          f"{_pct(result.dense)})")
        _print_orderings(result, "layers", "seed-layer cases")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.pipelines.fdc3d_ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="ucf101_fdc3d:2x,digits;ucf101_fdc3d:4x,digits",
                        help="fdc3d configs separated by ';' (default: 2x and 4x on the moving-digit clips)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--view", choices=(*VIEWS, "both"), default="both",
                        help="network: every layer pruned; layers: one layer pruned at a time (default: both)")
    parser.add_argument("--set", dest="overrides", action="append", default=["train.progress=False"],
                        metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--workdir", help="keep the dense runs here (reused when re-run, shared by 2x and 4x)")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        print(f"error: --seeds must be comma-separated integers; got {args.seeds!r}", file=sys.stderr)
        return 2
    views = VIEWS if args.view == "both" else (args.view,)
    try:
        for name in filter(None, args.configs.split(";")):
            result = ablation(name, seeds, views=views, overrides=args.overrides, workdir=args.workdir)
            report(name, result)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
