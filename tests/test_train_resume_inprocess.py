"""Resume in-process: every way a run can stop ends with the numbers of an uninterrupted run.

One uninterrupted run (checkpoints every 3 steps, all kept) is the reference.
Each test resumes a copy of its workdir (or a run stopped early) and compares
the per-step training losses and the final parameters with it. A resume that
forgets the data-iterator position (starts the data again) or saves it one
batch late (skips a batch) trains on other batches after the resume, so its
losses and parameters differ from the reference at the first resumed step.

A constant learning rate keeps the schedule independent of ``train.steps``, so
a run of fewer steps is the prefix of a longer one.
"""

import os
import shutil
import signal
import types

import jax
import numpy as np
import pytest

from train import config as config_lib
from train import steps as steps_lib
from train import trainer
from train.writers import read_jsonl

STEPS, EVERY = 10, 3
SETTINGS = [
    "data.kwargs.image_size=8", "model.kwargs.stage_sizes=(1,)", "model.kwargs.widths=(16,)",
    "optimizer.schedule=constant", "optimizer.warmup_steps=0", f"train.checkpoint_every={EVERY}",
    "train.keep_checkpoints=100", "train.log_every=1", "train.eval_every=0", "train.progress=False",
    "train.tensorboard=False",
]

# A persistent XLA cache for this module: every run compiles the same programs.
pytestmark = pytest.mark.usefixtures("compilation_cache")


def _config(steps: int = STEPS):
    return config_lib.load("digits_dense:runlocal", SETTINGS + [f"train.steps={steps}"])


def _losses(workdir) -> dict[int, float]:
    """Training loss by step (the last record of a step wins)."""
    return {r["step"]: r["loss"] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl")) if r.get("kind") == "train"}


def _assert_same_params(actual, desired):
    """Bit-identical: the resumed run executes the same programs on the same batches."""
    def check(path, a, b):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))

    jax.tree_util.tree_map_with_path(check, jax.device_get(actual), jax.device_get(desired))


def _assert_continues_reference(workdir, result, reference, *, resumed_from: int):
    assert result.resumed_from == resumed_from and result.steps_run == STEPS - resumed_from
    got, want = _losses(workdir), _losses(reference.workdir)
    resumed = list(range(resumed_from + 1, STEPS + 1))
    assert [got[s] for s in resumed] == [want[s] for s in resumed], (
        f"resumed from step {resumed_from}: per-step losses {[got[s] for s in resumed]} "
        f"differ from the uninterrupted run's {[want[s] for s in resumed]} (other batches after the resume?)"
    )
    _assert_same_params(result.state["params"], reference.result.state["params"])
    _assert_same_params(result.state["model_state"], reference.result.state["model_state"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: ``.workdir`` (every checkpoint kept) and ``.result``."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    result = trainer.train(_config(), str(workdir))
    saved = sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit())
    assert {3, 6, 9, 10} <= set(saved) and result.steps_run == STEPS
    # Consecutive steps see different batches: a replayed or skipped batch shows in the losses.
    losses = _losses(workdir)
    assert len(set(losses.values())) == STEPS
    return types.SimpleNamespace(workdir=workdir, result=result)


def _copy_up_to(reference, workdir, step: int) -> None:
    """``workdir`` as a run killed after ``step`` would leave it: the checkpoints up to ``step``."""
    os.makedirs(workdir / "checkpoints")
    for name in os.listdir(reference.workdir / "checkpoints"):
        if name.isdigit() and int(name) <= step:
            shutil.copytree(reference.workdir / "checkpoints" / name, workdir / "checkpoints" / name)


@pytest.mark.parametrize("checkpoint_step", [3, 6])
def test_resume_from_a_periodic_checkpoint_matches_the_uninterrupted_run(reference, tmp_path, checkpoint_step):
    """Killed after a periodic save (the iterator was saved before the next batch was read)."""
    _copy_up_to(reference, tmp_path, checkpoint_step)
    result = trainer.train(_config(), str(tmp_path))
    _assert_continues_reference(tmp_path, result, reference, resumed_from=checkpoint_step)


def test_resume_after_a_shorter_finished_run_matches_the_uninterrupted_run(reference, tmp_path):
    """A finished run's final (forced, off-interval) save, then the same command with more steps."""
    short = trainer.train(_config(steps=5), str(tmp_path))
    assert short.steps_run == 5 and 5 in [int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()]
    assert [_losses(tmp_path)[s] for s in range(1, 6)] == [_losses(reference.workdir)[s] for s in range(1, 6)]
    result = trainer.train(_config(), str(tmp_path))
    _assert_continues_reference(tmp_path, result, reference, resumed_from=5)


def test_sigterm_stop_then_rerun_matches_the_uninterrupted_run(reference, tmp_path, monkeypatch):
    """SIGTERM during step 4 (off the checkpoint interval): saved at step 4, the rerun continues there."""
    outside = signal.getsignal(signal.SIGTERM)
    make_train_step = steps_lib.make_train_step
    calls = []

    def make_with_signal(*args, **kwargs):
        step = make_train_step(*args, **kwargs)

        def run(state, batch):
            calls.append(None)
            if len(calls) == 4:
                # Only with the trainer's own handler installed (the default one would end the test process).
                handler = signal.getsignal(signal.SIGTERM)
                assert handler is not outside and handler not in (signal.SIG_DFL, signal.SIG_IGN, None), handler
                signal.raise_signal(signal.SIGTERM)
            return step(state, batch)

        return run

    monkeypatch.setattr(steps_lib, "make_train_step", make_with_signal)
    stopped = trainer.train(_config(), str(tmp_path))
    assert stopped.stopped and int(stopped.state["step"]) == 4 and stopped.metrics == {}
    assert signal.getsignal(signal.SIGTERM) is outside  # train() put the handler back
    monkeypatch.setattr(steps_lib, "make_train_step", make_train_step)
    result = trainer.train(_config(), str(tmp_path))
    _assert_continues_reference(tmp_path, result, reference, resumed_from=4)
