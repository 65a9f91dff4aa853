"""Every experiment config runs a step (tiny ``runlocal`` variants); the first of each family then resumes to a few.

Real datasets are read through ``tfds.testing.mock_data`` (random examples
with the dataset's features, no TensorFlow); UCF-101 cannot be mocked without
TensorFlow (its videos are decoded by it), so the UCF-101 configs' runlocal
variant uses the embedded moving-digit clips, and the DIV2K configs' the
embedded photos. Experiments are parametrised over
``train.config.available_experiments()``, so a new config without a working
``runlocal`` variant fails here.
"""

import inspect
import math

import jax
import ml_collections
import numpy as np
import pytest

from train import config as config_lib
from train import pipelines, trainer
from train.__main__ import main
from train.errors import UserError

EXPERIMENTS = config_lib.available_experiments()
# Smoke-run (one step, then resumed) by tests/test_train_loop.py; here they only load.
RUN_ELSEWHERE = {"digits_dense", "digits_filtermap", "digits_basis", "digits_cos", "digits_cheb"}

# The resume is the trainer's (or the pipeline skeleton's), the same for every experiment of a family:
# the first experiment of each family checks it, the others (other transforms, widths, quantisation
# bits) run one step, which builds, compiles and trains their own model.
RESUMED = {next(n for n in EXPERIMENTS if n.partition(":")[0] == family) for family in {n.partition(":")[0] for n in EXPERIMENTS}}


# A persistent XLA cache for this module: runs repeating a program skip its compilation.
pytestmark = pytest.mark.usefixtures("compilation_cache")


def _runlocal(name: str) -> str:
    return f"{name},runlocal" if ":" in name else f"{name}:runlocal"


def _run(name: str, workdir, steps: int):
    """Loads ``name``'s runlocal variant with ``steps`` (and as many dense steps) and runs it."""
    import tensorflow_datasets as tfds

    overrides = [f"train.steps={steps}"]
    with tfds.testing.mock_data(num_examples=16):
        config = config_lib.load(_runlocal(name), overrides)
        if config.get("pipeline") and config.pipeline.name != "train":
            config.pipeline.dense_steps = 1
            return pipelines.run(config, str(workdir))
        return trainer.train(config, str(workdir))


def _finite(tree) -> bool:
    return all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(tree))


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_a_step_and_the_first_of_its_family_resumes(name, tmp_path):
    if name in RUN_ELSEWHERE:
        assert config_lib.load(_runlocal(name)).train.steps <= 10
        return
    one = _run(name, tmp_path, 1)
    assert int(one.state["step"]) == 1 and _finite(one.state["params"])
    if name not in RESUMED:
        return
    few = _run(name, tmp_path, 3)
    assert int(few.state["step"]) == 3
    assert _finite(few.state["params"])
    if isinstance(few, trainer.Result):
        assert few.resumed_from == 1 and few.steps_run == 2
        assert all(math.isfinite(v) for v in few.metrics.values() if isinstance(v, float))
        return
    assert few.values["resumed_from"] == 1 and few.values["steps_run"] == 2
    stages = [s[0] for s in few.stages]
    assert stages[0] == "dense" and len(stages) >= 3
    for _, params, metrics in few.stages:
        assert params > 0 and math.isfinite(float(metrics[few.metric]))
    assert few.stages[-1][1] <= few.stages[0][1]  # the compressed network is no larger


@pytest.mark.parametrize("family", sorted({n.partition(":")[0] for n in EXPERIMENTS if ":" in n}))
def test_family_docstring_gives_a_run_command_per_experiment(family):
    module = __import__(f"train.configs.{family}", fromlist=["get_config"])
    for experiment in module.EXPERIMENTS:
        assert f"python -m train --config {family}:{experiment}" in inspect.getdoc(module)


def test_unknown_experiment_or_flag_is_one_line_listing_the_valid_ones():
    with pytest.raises(UserError, match=r"needs an experiment, got 'resnet19'; valid: cifar_filtermap:resnet18, "):
        config_lib.load("cifar_filtermap:resnet19")
    with pytest.raises(UserError, match=r"unknown flag 'tiny'; valid flags: digits, runlocal"):
        config_lib.load("cifar_filtermap:resnet18,tiny")


def test_list_prints_every_experiment(capsys):
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == EXPERIMENTS
    assert {"cifar_filtermap:resnet34", "ucf101_fdc3d:4x_minl2", "imagenet_approx:resnet18_cos_q4",
            "div2k_basis:srresnet_32", "unet3d_fdc3d:2x", "cifar_basis:vgg16"} <= set(listed)


@pytest.mark.parametrize("experiment, paper", [
    ("resnet18", 0.95e6), ("resnet34", 1.8e6), ("resnet50", 13.1e6), ("densenet121", 5.3e6)])
def test_filtermap_configs_build_the_table2_sizes(experiment, paper):
    """The configs' compact models have 3D-FilterMap Table 2's parameter counts (every parameter)."""
    from train import models

    config = config_lib.load(f"cifar_filtermap:{experiment}")
    model = models.build_model(config.model, num_classes=10, input_shape=(1, 32, 32, 3))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32), train=False))
    count = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes["params"]))
    assert abs(count - paper) / paper < 0.05


_INPUTS = {"cifar10": (32, 32, 3), "imagenet2012": (224, 224, 3), "div2k": (48, 48, 3), "ucf101": (16, 112, 112, 3),
           "volumes": (32, 32, 32, 1)}


def _full_size_settings():
    """One ``(experiment, config)`` per distinct full-size model and compression block."""
    seen = {}
    for name in EXPERIMENTS:
        if name in RUN_ELSEWHERE:
            continue
        config = config_lib.load(name)
        key = repr((config.model.to_dict(), config.data.name))
        seen.setdefault(key, (name, config))
    return list(seen.values())


@pytest.mark.parametrize("name, config", _full_size_settings(), ids=lambda v: v if isinstance(v, str) else "")
def test_full_size_config_resolves_its_preset_on_its_model(name, config):
    """Every rule of the paper's preset matches the full-size network (traced, nothing computed)."""
    from train import models
    from train.pipelines.policy import resolve_plan

    assert not config.model.compress.lenient
    dense = config.model.to_dict()
    dense["compress"]["preset"] = ""
    model = models.build_model(ml_collections.ConfigDict(dense))
    plan = resolve_plan(config.model.compress, model, (1, *_INPUTS[config.data.name]))
    assert any(e.method != "dense" for e in plan.layers)


def test_pipeline_config_runs_through_the_command_line(tmp_path, capsys):
    code = main(["--config", "cifar_approx:resnet20_cos,digits,runlocal", "--workdir", str(tmp_path),
                 "--set", "train.steps=1", "--set", "pipeline.dense_steps=1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "ApproxConv regression then fine-tuning" in out
    assert "fitted (Pre)" in out and "fine-tuned (Post)" in out
