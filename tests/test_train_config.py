"""train.config, train.optim and the command line's one-line errors."""

import numpy as np
import optax
import pytest

from train import config as config_lib
from train import optim
from train.__main__ import main
from train.errors import UserError
from train.models import available_methods


def test_every_config_loads_and_names_its_run_command():
    names = config_lib.available_configs()
    assert {"digits_dense", "digits_filtermap", "digits_cos", "digits_cheb", "digits_basis"} <= set(names)
    for name in names:
        module = __import__(f"train.configs.{name}", fromlist=["get_config"])
        assert f"python -m train --config {name}" in module.__doc__
    assert set(available_methods()) == {"dense", "filtermap", "basis", "cosine", "cos", "chebyshev", "cheb", "fdc3d", "temporal"}
    for method in ("dense", "filtermap", "basis", "cos", "cheb"):  # explicit: a missing config fails
        assert config_lib.load(f"digits_{method}").model.conv.method == method


def test_overrides_parse_literals_and_keep_types():
    c = config_lib.load("digits_dense:runlocal", ["optimizer.lr=0.05", "train.steps=7", "model.kwargs.widths=[8, 8, 16]",
                                                  "optimizer.schedule=step", "debug_nan_at_step=3"])
    assert c.optimizer.lr == 0.05 and c.train.steps == 7 and c.model.kwargs.widths == (8, 8, 16)
    assert c.optimizer.schedule == "step" and c.debug_nan_at_step == 3
    assert c.train.checkpoint_every == 5 and c.data.batch_size == 16  # the runlocal variant
    with pytest.raises(UserError, match=r"--set train.steps: expected a int like 7, got 'many'"):
        config_lib.load("digits_dense:runlocal", ["train.steps=7", "train.steps=many"])
    with pytest.raises(UserError, match="--set expects key=value, got 'train.steps'"):
        config_lib.load("digits_dense", ["train.steps"])


@pytest.mark.parametrize(
    "spec, overrides, pattern",
    [
        ("digits_dense", ["optimizer.lrr=0.1"], r"^unknown config key 'optimizer.lrr'; did you mean 'optimizer.lr'.*valid keys: "),
        ("digits_dense", ["trian.steps=3"], r"^unknown config key 'trian.steps'; did you mean 'train.steps'"),
        ("digits_dens", [], r"^unknown config 'digits_dens'; did you mean 'digits_dense'.*valid configs: "),
        ("digits_dense:tiny", [], r"^unknown config variant 'tiny'; valid variants: runlocal$"),
        ("digits_dense", ["model.name=resnet21"], r"^unknown model 'resnet21'; did you mean .*'resnet20'.*valid: "),
        ("digits_dense", ["data.name=cifar1O"], r"^unknown dataset 'cifar1O'; did you mean 'cifar10'.*valid: digits"),
        ("digits_dense", ["model.conv.method=filtermapp"], r"^unknown conv method 'filtermapp'; did you mean 'filtermap'"),
        ("digits_dense", ["optimizer.name=lamb"], r"^config optimizer.name = 'lamb': expected one of 'sgd', 'adam', 'adamw'$"),
    ],
)
def test_mistakes_are_one_line(spec, overrides, pattern):
    with pytest.raises(UserError, match=pattern) as info:
        config_lib.load(spec, overrides)
    assert "\n" not in str(info.value)


def test_command_line_prints_one_error_line_and_exit_status(capsys, tmp_path):
    assert main(["--config", "digits_dense", "--set", "optimizer.lrr=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown config key 'optimizer.lrr'; did you mean 'optimizer.lr'")
    # An unprepared tensorflow-datasets dataset: one line with the preparation command.
    overrides = ["data.name=cifar10", "data.kwargs={}", f"data.kwargs.data_dir={tmp_path}"]
    assert main(["--config", "digits_dense", "--workdir", str(tmp_path / "w")] + sum((["--set", o] for o in overrides), [])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not prepared" in err[0] and "tfds build cifar10" in err[0]
    assert main(["--list"]) == 0 and "digits_dense" in capsys.readouterr().out.split()
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "--config NAME[:ARG]" in capsys.readouterr().out


def test_schedules_follow_their_formulas():
    cfg = config_lib.load("digits_dense", ["optimizer.lr=0.1", "optimizer.warmup_steps=0"]).optimizer
    cfg.schedule = "step"
    cfg.boundaries, cfg.decay_factor = (0.5, 0.75), 0.1
    step = optim.make_schedule(cfg, 100)
    np.testing.assert_allclose([step(0), step(49), step(50), step(74), step(75), step(99)],
                               [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    cfg.schedule = "cosine"
    cosine = optim.make_schedule(cfg, 100)
    np.testing.assert_allclose([cosine(t) for t in (0, 25, 50, 100)],
                               [0.1 * 0.5 * (1 + np.cos(np.pi * t / 100)) for t in (0, 25, 50, 100)], rtol=1e-5, atol=1e-9)
    cfg.warmup_steps = 10
    warm = optim.make_schedule(cfg, 110)
    np.testing.assert_allclose([warm(0), warm(5), warm(10), warm(60)], [0.0, 0.05, 0.1, 0.05], rtol=1e-5, atol=1e-9)


def test_sgd_with_weight_decay_matches_pytorch_update_rule():
    cfg = config_lib.load("digits_dense", ["optimizer.schedule=constant", "optimizer.warmup_steps=0"]).optimizer
    opt = optim.make_optimizer(cfg, 10)
    params = {"w": np.array([1.0, -2.0], np.float32)}
    grads = [np.array([0.5, 0.25], np.float32), np.array([-1.0, 2.0], np.float32)]
    state = opt.init(params)
    p_ref, buf = params["w"].astype(np.float64), np.zeros(2)
    for g in grads:  # torch.optim.SGD(lr, momentum, weight_decay): d = g + wd p; buf = m buf + d; p -= lr buf
        updates, state = opt.update({"w": g}, state, params)
        params = optax.apply_updates(params, updates)
        d = g + cfg.weight_decay * p_ref
        buf = cfg.momentum * buf + d
        p_ref = p_ref - cfg.lr * buf
    np.testing.assert_allclose(params["w"], p_ref, rtol=1e-6)
