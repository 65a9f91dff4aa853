"""The command line's contract: every user mistake exits 2 with one stderr line and no traceback.

Most invocations run in-process through ``train.__main__.main`` (what
``python -m train`` calls) with stderr captured; a few run as real
subprocesses to prove the contract end to end. Nothing here trains: a
mistake must be reported before the first step.
"""

import json
import os
import subprocess
import sys

import jax
import pytest

from train import config as config_lib
from train import run_config, trainer
from train.__main__ import main
from train.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["data.kwargs.image_size=8", "model.kwargs.stage_sizes=(1,)", "model.kwargs.widths=(16,)",
        "train.progress=False", "train.tensorboard=False"]


def _sets(*items):
    return sum((["--set", item] for item in items), [])


# (id, argv after "--config digits_dense --workdir W" unless it starts with "!", expected text in the line)
BAD = [
    ("lr negative", _sets("optimizer.lr=-0.1"), "optimizer.lr = -0.1: expected a number > 0"),
    ("lr zero", _sets("optimizer.lr=0"), "optimizer.lr = 0.0: expected a number > 0"),
    ("clip negative", _sets("optimizer.grad_clip_norm=-1.0"), "optimizer.grad_clip_norm = -1.0"),
    ("steps zero", _sets("train.steps=0"), "train.steps = 0: expected an integer >= 1"),
    ("steps negative", _sets("train.steps=-5"), "train.steps = -5"),
    ("keep zero", _sets("train.keep_checkpoints=0"), "train.keep_checkpoints = 0: expected an integer >= 1"),
    ("eval batch zero", _sets("data.eval_batch_size=0"), "data.eval_batch_size = 0"),
    ("batch zero", _sets("data.batch_size=0"), "data.batch_size = 0: expected an integer >= 1"),
    ("batch float", _sets("data.batch_size=12.5"), "data.batch_size"),
    ("log_every zero", _sets("train.log_every=0"), "train.log_every = 0: expected an integer >= 1"),
    ("warmup negative", _sets("optimizer.warmup_steps=-1"), "optimizer.warmup_steps = -1: expected an integer >= 0"),
    ("checkpoint interval negative", _sets("train.checkpoint_every=-3"), "train.checkpoint_every = -3"),
    ("label smoothing 1", _sets("label_smoothing=1.0"), "label_smoothing = 1.0: expected a number in [0, 1)"),
    ("label smoothing negative", _sets("label_smoothing=-0.1"), "label_smoothing = -0.1"),
    ("momentum", _sets("optimizer.momentum=1.5"), "optimizer.momentum = 1.5"),
    ("weight decay", _sets("optimizer.weight_decay=-1e-4"), "optimizer.weight_decay = -0.0001"),
    ("boundaries", _sets("optimizer.schedule=step", "optimizer.boundaries=(0.75, 0.5)"), "optimizer.boundaries"),
    ("seed", _sets("seed=-1"), "seed = -1"),
    ("optimizer name", _sets("optimizer.name=lamb"), "optimizer.name = 'lamb': expected one of 'sgd', 'adam', 'adamw'"),
    ("schedule name", _sets("optimizer.schedule=linear"), "optimizer.schedule = 'linear'"),
    ("compute dtype", _sets("train.compute_dtype=float16"), "train.compute_dtype = 'float16'"),
    ("dataset name", _sets("data.name=cifar1O"), "unknown dataset 'cifar1O'"),
    ("method name", _sets("model.conv.method=filtermapp"), "unknown conv method 'filtermapp'"),
    ("model name", _sets("model.name=resnet21"), "unknown model 'resnet21'"),
    ("model field", _sets("model.kwargs.depthh=3"), "has no field 'depthh'"),
    ("conv kwarg type", _sets("model.conv.method=filtermap", "model.conv.kwargs.grid='abc'"), "grid must be an integer"),
    ("conv kwarg unknown", _sets("model.conv.method=filtermap", "model.conv.kwargs.gridd=(2, 2, 2)"),
     "has no field 'gridd'; did you mean 'grid'?"),
    ("key typo", _sets("optimizer.lrr=0.1"), "unknown config key 'optimizer.lrr'"),
    ("set without value", _sets("train.steps"), "--set expects key=value"),
    ("set wrong type", _sets("train.steps=many"), "expected a int like"),
    ("tfds default dir", _sets("data.name=cifar10", "data.kwargs={}"), "tfds build cifar10"),
    ("!unknown config", ["--config", "digits_dens"], "unknown config 'digits_dens'"),
    ("!unknown variant", ["--config", "digits_dense:tiny"], "unknown config variant 'tiny'"),
    ("!empty config", ["--config", ""], "unknown config ''"),
    ("!unknown flag", ["--bogus"], "unrecognized arguments: --bogus"),
    ("!missing argument", ["--config"], "expected one argument"),
    ("!unknown method", ["--methods", "dense,foo"], "unknown method 'foo'"),
    ("!empty methods", ["--methods", ""], "unknown method ''"),
]


def _run_main(argv, capsys):
    """``main(argv)``'s exit status and stderr lines (argparse's exits included)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    return code, err


def _assert_one_line(code, err, expected):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if anything starts training."""

    def refuse(*args, **kwargs):
        raise AssertionError("a bad invocation reached the training loop")

    monkeypatch.setattr(trainer, "train", refuse)


@pytest.mark.parametrize("name, argv, expected", BAD, ids=[b[0] for b in BAD])
def test_bad_invocation_is_one_line_exit_2(name, argv, expected, tmp_path, capsys, no_training):
    if name.startswith("!"):
        argv = list(argv) + (["--workdir", str(tmp_path / "w")] if "--methods" in argv else [])
    else:
        argv = ["--config", "digits_dense", "--workdir", str(tmp_path / "w")] + _sets(*TINY) + argv
    _assert_one_line(*_run_main(argv, capsys), expected)


def test_workdir_that_is_a_file_or_below_one(tmp_path, capsys, no_training):
    path = tmp_path / "file"
    path.write_text("x")
    for workdir, expected in ((path, "is a file, not a directory"), (path / "sub", "cannot be created")):
        _assert_one_line(*_run_main(["--config", "digits_dense", "--workdir", str(workdir)], capsys), expected)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_workdir(tmp_path, capsys, no_training):
    tmp_path.chmod(0o555)
    try:
        code, err = _run_main(["--config", "digits_dense", "--workdir", str(tmp_path / "w")], capsys)
    finally:
        tmp_path.chmod(0o755)
    _assert_one_line(code, err, "is not writable")


def test_unwritable_workdir_found_by_a_trial_write(tmp_path, capsys, monkeypatch, no_training):
    """Also for root and read-only mounts, where permission bits say nothing."""
    import errno
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, err = _run_main(["--config", "digits_dense", "--workdir", str(tmp_path / "w")], capsys)
    _assert_one_line(code, err, f"workdir {str(tmp_path / 'w')!r} is not writable ({str(tmp_path)!r}: Read-only file system)")


def test_batch_not_divisible_by_the_devices_is_found_up_front(tmp_path, capsys, monkeypatch, no_training):
    monkeypatch.setattr(jax, "device_count", lambda *a: 8)
    for key in ("data.batch_size=12", "data.eval_batch_size=20"):
        argv = ["--config", "digits_dense", "--workdir", str(tmp_path)] + _sets(*TINY, key)
        _assert_one_line(*_run_main(argv, capsys), f"config {key.replace('=', ' = ')}: expected a multiple of the 8 devices")


def _fake_run(workdir, overrides):
    """A workdir as a run of ``digits_dense`` with ``overrides`` leaves it: its config and a checkpoint."""
    run_config.save(config_lib.load("digits_dense", TINY + overrides), str(workdir))
    os.makedirs(workdir / "checkpoints" / "10")


@pytest.mark.parametrize("change, allow, expected", [
    (["model.kwargs.widths=(8,)"], False, "its checkpoints are of another model/dataset (model.kwargs.widths: [16] -> [8])"),
    (["model.kwargs.widths=(8,)"], True, "its checkpoints are of another model/dataset"),
    (["data.name=moving_digits", "data.kwargs={}"], True, "another model/dataset (data.name: 'digits' -> 'moving_digits')"),
    (["optimizer.lr=0.05"], False, "with a changed config: optimizer.lr: 0.1 -> 0.05; pass --allow-config-change"),
    (["seed=3", "label_smoothing=0.1"], False, "label_smoothing: 0.0 -> 0.1 (and 1 more)"),
])
def test_resume_with_a_changed_config_is_refused(change, allow, expected, tmp_path, capsys):
    """The real trainer: its resume check stops the run before anything is built."""
    _fake_run(tmp_path, [])
    argv = ["--config", "digits_dense", "--workdir", str(tmp_path)] + _sets(*TINY, *change)
    _assert_one_line(*_run_main(argv + (["--allow-config-change"] if allow else []), capsys), expected)


def test_allowed_hyperparameter_change_is_logged_once_per_key(tmp_path, capsys):
    _fake_run(tmp_path, [])
    config = config_lib.load("digits_dense", TINY + ["optimizer.lr=0.05", "seed=3", "train.steps=2000",
                                                     "train.allow_config_change=True"])
    run_config.check_resume(config, str(tmp_path))
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"warning: resuming {tmp_path} with optimizer.lr changed: 0.1 -> 0.05",
                     f"warning: resuming {tmp_path} with seed changed: 0 -> 3"]  # train.steps may change freely
    with open(tmp_path / run_config.FILE) as f:
        assert json.load(f)["optimizer.lr"] == 0.05  # the new config is the one saved
    config.train.allow_config_change = False
    run_config.check_resume(config, str(tmp_path))  # same config again: nothing to say
    assert capsys.readouterr().err == ""
    with pytest.raises(UserError, match="optimizer.lr: 0.05 -> 0.1"):
        run_config.check_resume(config_lib.load("digits_dense", TINY), str(tmp_path))


def test_a_multi_host_resume_on_another_port_is_the_same_run(tmp_path, capsys):
    """A restarted multi-host job gets a new coordinator port and may get new timeouts."""
    cluster = ["distributed=True", "cluster.coordinator_address='localhost:1234'", "cluster.num_processes=2",
               "cluster.process_id=0"]
    _fake_run(tmp_path, cluster)
    moved = ["distributed=True", "cluster.coordinator_address='localhost:5678'", "cluster.num_processes=2",
             "cluster.process_id=0", "cluster.heartbeat_timeout=30"]
    run_config.check_resume(config_lib.load("digits_dense", TINY + moved), str(tmp_path))
    assert capsys.readouterr().err == ""


def test_the_dry_run_resume_check_does_not_start_the_backend(tmp_path):
    """The command line checks a resume before ``jax.distributed.initialize``, which must come first."""
    code = (
        "from jax._src import xla_bridge\n"
        "from train import config, run_config\n"
        f"run_config.check_resume(config.load('digits_dense', {TINY + ['distributed=True']!r}), {str(tmp_path)!r}, dry_run=True)\n"
        "assert not xla_bridge._backends, 'the backend was initialised'\n"
    )
    _fake_run(tmp_path, ["distributed=True"])
    done = subprocess.run([sys.executable, "-c", code], env=_subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_unknown_comparison_method_is_reported_before_the_dense_run(tmp_path, capsys, no_training):
    from train.compare import compare

    with pytest.raises(UserError, match=r"^unknown method 'filtermapp' for the comparison; did you mean 'filtermap'"):
        compare(["dense", "filtermapp"], workdir=str(tmp_path))
    with pytest.raises(UserError, match=r"train.steps = 0"):  # every config checked before the first run
        compare(["dense", "filtermap"], workdir=str(tmp_path), overrides=["train.steps=0"])


def _subprocess_env(devices: int = 1) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    return env


@pytest.mark.slow
def test_real_processes_exit_2_with_one_line(tmp_path):
    """The contract of ``python -m train`` itself (interpreter exit status, nothing but one stderr line)."""
    runs = [
        (["--config", "digits_filtermap", "--set", "model.conv.kwargs.grid='abc'"], 1, "grid must be an integer"),
        (["--config", "digits_dense", "--set", "data.batch_size=12"], 8, "expected a multiple of the 8 devices"),
    ]
    procs = [
        (subprocess.Popen([sys.executable, "-m", "train", *argv, "--workdir", str(tmp_path / str(i))], cwd=REPO,
                          env=_subprocess_env(devices), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), expected)
        for i, (argv, devices, expected) in enumerate(runs)
    ]
    for proc, expected in procs:
        out, err = proc.communicate(timeout=300)
        _assert_one_line(proc.returncode, err, expected)
        assert out == ""


def test_trainer_itself_refuses_a_changed_model_before_building(tmp_path, monkeypatch):
    """Library callers of ``trainer.train`` get the same check (nothing is built: no dataset is loaded)."""
    from train import data

    _fake_run(tmp_path, [])
    monkeypatch.setattr(data, "get_dataset", lambda *a, **k: pytest.fail("the dataset was loaded"))
    with pytest.raises(UserError, match=r"model.kwargs.widths: \[16\] -> \[8\]\); use a new --workdir$"):
        trainer.train(config_lib.load("digits_dense", TINY + ["model.kwargs.widths=(8,)"]), str(tmp_path))
