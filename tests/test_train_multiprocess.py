"""Two real JAX processes on this machine (CPU collectives, localhost coordinator) vs one process.

Each process of ``python -m train --set distributed=True ...`` has 2 CPU
devices; the pair trains a compact (3D-FilterMap) network, checkpoints, then
resumes and must end with the parameters (and folded dense export) of one
process with 4 devices on the same global batches. A
second pair checks that killing one process ends the other with an error
within a bounded time instead of hanging.
"""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import portpicker
import pytest

from train import checkpoint
from train.writers import read_jsonl

pytestmark = pytest.mark.slow  # real processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEARTBEAT_TIMEOUT = 5  # seconds: a dead peer is noticed after this
SETTINGS = (
    "data.kwargs.image_size=8",
    "model.kwargs.stage_sizes=(1,)",
    "model.kwargs.widths=(12,)",
    "data.batch_size=16",
    "data.eval_batch_size=40",
    "optimizer.schedule=constant",  # a resumed run's program equals the uninterrupted one's
    "optimizer.warmup_steps=0",
    "train.checkpoint_every=2",
    "train.log_every=1",
    "train.progress=False",
    "train.tensorboard=False",
)


def _command(workdir, steps: int, *extra: str) -> list[str]:
    items = (*SETTINGS, f"train.steps={steps}", *extra)
    sets = sum((["--set", item] for item in items), [])
    return [sys.executable, "-m", "train", "--config", "digits_filtermap:runlocal", "--workdir", str(workdir), *sets]


def _env(devices: int, cache) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    env.update(
        JAX_PLATFORMS="cpu",
        JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    return env


def _launch_pair(workdir, steps: int, cache, *extra: str) -> list[subprocess.Popen]:
    """Processes 0 and 1 of a 2-process job, 2 CPU devices each."""
    cluster = ("distributed=True", f"cluster.coordinator_address=localhost:{portpicker.pick_unused_port()}",
               "cluster.num_processes=2", "cluster.initialization_timeout=120", f"cluster.heartbeat_timeout={HEARTBEAT_TIMEOUT}")
    return [
        subprocess.Popen(_command(workdir, steps, *cluster, f"cluster.process_id={index}", *extra), cwd=REPO,
                         env=_env(2, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for index in range(2)
    ]


def _finish(processes: list[subprocess.Popen]) -> None:
    outputs = [p.communicate(timeout=600) for p in processes]
    for index, (p, (out, err)) in enumerate(zip(processes, outputs)):
        assert p.returncode == 0, f"process {index} failed:\n{out}\n{err[-4000:]}"


def _params(workdir):
    return checkpoint.load_export(os.path.join(workdir, "export"))["params"]


def _events(workdir, name):
    return [r for r in read_jsonl(os.path.join(workdir, "metrics.jsonl")) if r.get("event") == name]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("xla_cache")


def test_two_processes_checkpoint_resume_and_match_one_process_of_four_devices(tmp_path, cache):
    reference = subprocess.run(_command(tmp_path / "one", 4), cwd=REPO, env=_env(4, cache), capture_output=True, text=True,
                               timeout=600)
    assert reference.returncode == 0, reference.stderr[-4000:]
    workdir = tmp_path / "two"
    _finish(_launch_pair(workdir, 2, cache))  # steps 1-2, checkpoint at 2
    _finish(_launch_pair(workdir, 4, cache))  # resumes at 2, steps 3-4

    start = _events(workdir, "start")
    assert [(e["processes"], e["devices"]) for e in start] == [(2, 4), (2, 4)]
    assert [e["step"] for e in _events(workdir, "resume")] == [2]
    assert _events(tmp_path / "one", "start")[0]["processes"] == 1
    # Only process 0 writes the log: one row per step, no duplicates from process 1.
    steps = [r["step"] for r in read_jsonl(workdir / "metrics.jsonl") if r.get("kind") == "train"]
    assert steps == [1, 2, 3, 4]

    two, one = _params(workdir), _params(tmp_path / "one")

    def close(path, a, b):
        a, b = np.asarray(a), np.asarray(b)
        error, scale = np.abs(a - b).max(), np.abs(b).max()
        assert error <= 1e-5 * scale + 1e-12, f"{jax.tree_util.keystr(path)}: max |diff| {error:.3g} vs {scale:.3g}"

    jax.tree_util.tree_map_with_path(close, two, one)
    # The folded dense export (host arrays, written by process 0) is there too, and the same.
    folded = checkpoint.load_export(os.path.join(workdir, "export_dense"))["params"]
    jax.tree_util.tree_map_with_path(close, folded, checkpoint.load_export(os.path.join(tmp_path / "one", "export_dense"))["params"])


def test_killing_one_process_ends_the_other_with_an_error_in_bounded_time(tmp_path, cache):
    workdir = tmp_path / "pair"
    first, second = _launch_pair(workdir, 100_000, cache, "train.checkpoint_every=0")
    log = workdir / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:  # wait until the pair is training
        if log.exists() and any(r.get("kind") == "train" for r in read_jsonl(log)):
            break
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()[1][-4000:]
    second.send_signal(signal.SIGKILL)
    second.communicate()
    killed = time.monotonic()
    try:
        out, err = first.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        first.kill()
        first.communicate()
        pytest.fail("the surviving process still ran 60 s after its peer was killed")
    assert first.returncode != 0
    assert time.monotonic() - killed < 60
    # A collective failing in the loop names the cause; a peer missing heartbeats is reported by JAX itself.
    assert "PeerFailureError: process 0 of 2: a collective failed" in err or "another task died" in err, err[-4000:]


def test_initialize_distributed_twice_is_a_no_op(cache):
    """A real one-process job: a second ``jax.distributed.initialize`` raises, the trainer's guard does not."""
    script = f"""
import jax
from train import sharding
options = dict(coordinator_address="localhost:{portpicker.pick_unused_port()}", num_processes=1, process_id=0)
assert sharding.maybe_initialize_distributed(True, **options) is True
assert sharding.maybe_initialize_distributed(True, **options) is False  # e.g. a pipeline's second training stage
assert sharding.maybe_initialize_distributed(False) is False
try:
    jax.distributed.initialize(**options)
except RuntimeError as error:
    assert "only be called once" in str(error), error
else:
    raise AssertionError("a second jax.distributed.initialize did not raise")
print("ok", jax.process_count())
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=_env(1, cache), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and run.stdout.split() == ["ok", "1"], run.stderr[-4000:]
