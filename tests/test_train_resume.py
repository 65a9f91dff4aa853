"""``python -m train`` in subprocesses: 1 vs 8 devices, and kill -9, SIGTERM or Ctrl-C then resume.

The device count is fixed when JAX starts, so each run is its own process
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``). The runs share a
persistent XLA cache so the 1-device runs compile once.
"""

import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from train import checkpoint
from train.writers import read_jsonl

pytestmark = pytest.mark.slow  # subprocess training runs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 30
KILL_SEED = 20240607  # the kill step is drawn from it: the same on every run, printed by the test
COMMAND = [sys.executable, "-m", "train", "--config", "digits_dense:runlocal"] + sum(
    (
        ["--set", item]
        for item in (
            "data.kwargs.image_size=8",
            "model.kwargs.stage_sizes=(1,)",
            "model.kwargs.widths=(16,)",
            f"train.steps={STEPS}",
            "train.checkpoint_every=3",
            "train.log_every=1",
            "train.progress=False",
            "train.tensorboard=False",
        )
    ),
    [],
)


def _launch(workdir, devices: int, cache) -> subprocess.Popen:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    env.update(
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    return subprocess.Popen(
        COMMAND + ["--workdir", str(workdir)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process: subprocess.Popen) -> None:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, f"training failed:\n{out}\n{err[-3000:]}"


def _params(workdir):
    return checkpoint.load_export(os.path.join(workdir, "export"))["params"]


def _assert_close(actual, desired, *, rtol, context=""):
    """Each leaf within ``rtol`` of its largest magnitude (float32 reduction-order noise)."""

    def check(path, a, b):
        a, b = np.asarray(a), np.asarray(b)
        error, scale = np.abs(a - b).max(), np.abs(b).max()
        assert error <= rtol * scale + 1e-12, (
            f"{context}{': ' if context else ''}{jax.tree_util.keystr(path)}: max |diff| {error:.3g} vs max |value| {scale:.3g}")

    jax.tree_util.tree_map_with_path(check, actual, desired)


def _events(workdir, name):
    return [r for r in read_jsonl(os.path.join(workdir, "metrics.jsonl")) if r.get("event") == name]


def _assert_each_step_logged_once(workdir):
    """metrics.jsonl after the resumes: train steps 1..STEPS once each, one final eval."""
    records = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    assert [r["step"] for r in records if r.get("kind") == "train"] == list(range(1, STEPS + 1))
    assert [r["step"] for r in records if r.get("kind") == "eval"] == [STEPS]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Workdir of an uninterrupted 1-device run, and the shared compilation cache."""
    root = tmp_path_factory.mktemp("runs")
    cache = root / "xla_cache"
    _finish(_launch(root / "reference", 1, cache))
    return root, cache


def test_eight_devices_give_the_parameters_of_one(runs):
    root, cache = runs
    _finish(_launch(root / "eight", 8, cache))
    assert _events(root / "eight", "start")[0]["devices"] == 8
    assert _events(root / "reference", "start")[0]["devices"] == 1
    # Batch statistics are global: 8 shards of 2 examples give the numbers of one batch of 16.
    _assert_close(_params(root / "eight"), _params(root / "reference"), rtol=2e-5)


def _signal_at_step(process: subprocess.Popen, workdir, step: int, signum: int) -> None:
    """Sends ``signum`` once the run has logged ``step``."""
    log = workdir / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        logged = [r["step"] for r in read_jsonl(log) if r.get("kind") == "train"] if log.exists() else []
        if logged and logged[-1] >= step:
            break
        time.sleep(0.005)
    process.send_signal(signum)


def test_kill_9_then_rerun_resumes_and_matches_an_uninterrupted_run(runs):
    root, cache = runs
    workdir = root / "killed"
    kill_at = random.Random(KILL_SEED).randint(5, STEPS - 15)
    print(f"kill -9 after step {kill_at} (drawn with seed {KILL_SEED})")  # shown by pytest on failure
    process = _launch(workdir, 1, cache)
    _signal_at_step(process, workdir, kill_at, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, f"the run ended before the kill after step {kill_at}"
    last = max(r["step"] for r in read_jsonl(workdir / "metrics.jsonl") if r.get("kind") == "train")
    assert last < STEPS and not (workdir / "export").exists()
    saved = [int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()]
    assert saved and max(saved) <= last

    _finish(_launch(workdir, 1, cache))
    resumed = _events(workdir, "resume")
    assert [r["step"] for r in resumed] == [max(saved)], f"killed after step {last}, checkpoints {sorted(saved)}"
    _assert_close(_params(workdir), _params(root / "reference"), rtol=1e-6, context=f"killed after step {last}")
    _assert_each_step_logged_once(workdir)


@pytest.mark.parametrize("signum, exit_status", [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["sigterm", "ctrl_c"])
def test_a_signal_saves_where_it_stops_and_the_rerun_finishes_identically(runs, signum, exit_status):
    """SIGTERM (preemption) exits 0, Ctrl-C exits 130; both save, release the lock and resume exactly."""
    root, cache = runs
    name = signal.Signals(signum).name
    workdir = root / name.lower()
    process = _launch(workdir, 1, cache)
    _signal_at_step(process, workdir, 7, signum)
    out, err = process.communicate(timeout=600)
    assert process.returncode == exit_status, err[-3000:]
    stopped = _events(workdir, "stopped")
    assert len(stopped) == 1 and stopped[0]["reason"] == name and stopped[0]["step"] < STEPS
    assert f"stopped by {name} at step {stopped[0]['step']}" in out
    assert stopped[0]["step"] in [int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()]
    assert not (workdir / "lock").exists()
    _finish(_launch(workdir, 1, cache))
    assert [r["step"] for r in _events(workdir, "resume")] == [stopped[0]["step"]]
    _assert_close(_params(workdir), _params(root / "reference"), rtol=1e-6)
    _assert_each_step_logged_once(workdir)
