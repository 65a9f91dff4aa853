"""train.paths: workdirs as ``etils.epath`` paths; a gs:// URL reaches Orbax unchanged; writes on a non-local file system.

The non-local file system is fsspec's in-memory one, registered with epath as a
``memory://`` scheme for these tests: nothing touches the network, and a write
that bypassed epath would land in the local working directory instead.
"""

import os

import fsspec
import numpy as np
import orbax.checkpoint as ocp
import pytest
from etils import epath
from etils.epath import backend as epath_backend
from etils.epath import gpath, register

from train import checkpoint, paths, run_config, trainer
from train import config as config_lib
from train.lock import WorkdirLock
from train.writers import Writer, read_jsonl

TINY = ["data.kwargs.image_size=8", "train.progress=False", "model.kwargs.stage_sizes=(1,)", "model.kwargs.widths=(8,)",
        "train.steps=2", "data.batch_size=8", "train.checkpoint_every=0"]


class _MemoryBackend(epath_backend._FileSystemSpecBackend):
    """epath's fsspec backend on fsspec's in-memory file system."""

    def fs(self, path):
        return fsspec.filesystem("memory")


@pytest.fixture
def memory_scheme(monkeypatch, tmp_path):
    """``memory://`` paths in epath; the test runs in an empty local folder (returned) that must stay empty."""
    monkeypatch.setattr(gpath, "_URI_PREFIXES", (*gpath._URI_PREFIXES, "memory://"))
    monkeypatch.setattr(gpath, "_URI_SCHEMES", gpath._URI_SCHEMES | {"memory"})
    monkeypatch.setitem(gpath._URI_MAP_ROOT, "memory://", "/memory/")
    monkeypatch.setitem(gpath._PREFIX_TO_BACKEND, "memory", _MemoryBackend())
    monkeypatch.setitem(register._URI_PREFIXES_TO_CLS, "memory://", gpath.PosixGPath)
    memory = fsspec.filesystem("memory")
    monkeypatch.setattr(memory, "store", {})
    monkeypatch.setattr(memory, "pseudo_dirs", [""])
    monkeypatch.chdir(tmp_path)
    yield memory
    assert os.listdir(tmp_path) == [], "something was written to the local folder instead of memory://"


def test_as_path_keeps_urls_and_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = paths.as_path("gs://bucket/run") / "checkpoints"
    assert isinstance(url, epath.Path) and os.fspath(url) == "gs://bucket/run/checkpoints"
    assert os.fspath(paths.as_path("runs/x")) == os.path.join(str(tmp_path), "runs", "x")
    assert paths.is_remote("s3://b/k") and not paths.is_remote(tmp_path)
    assert paths.join(None, "x") is None and os.fspath(paths.join("gs://b", "dense")) == "gs://b/dense"
    with pytest.raises(TypeError, match=r"expected a path .* got 3"):
        paths.as_path(3)


class _Stop(Exception):
    pass


def test_gs_workdir_reaches_orbax_checkpoint_manager_unchanged(monkeypatch, tmp_path):
    seen = []

    def spy(directory, *args, **kwargs):
        seen.append(directory)
        raise _Stop  # before anything could touch the network

    monkeypatch.setattr(ocp, "CheckpointManager", spy)
    # The lock and config.json would write to the bucket first (no GCS client here): they are tested
    # on an offline non-local file system in test_lock_and_run_config_on_a_non_local_file_system.
    monkeypatch.setattr(trainer.WorkdirLock, "acquire", lambda self: None)
    monkeypatch.setattr(run_config, "check_resume", lambda config, workdir, **kwargs: None)
    monkeypatch.chdir(tmp_path)
    config = config_lib.load("digits_dense:runlocal", TINY + ["train.checkpoint_every=1"])
    with pytest.raises(_Stop):
        trainer.train(config, "gs://bucket/run")
    with pytest.raises(_Stop):
        checkpoint.load_state("gs://bucket/run/checkpoints")
    assert [os.fspath(d) for d in seen] == ["gs://bucket/run/checkpoints"] * 2
    assert os.listdir(tmp_path) == []


def test_lock_and_run_config_on_a_non_local_file_system(memory_scheme):
    workdir = "memory://run"
    with WorkdirLock(workdir):
        holder = memory_scheme.cat_file("/run/lock").decode()
        assert str(os.getpid()) in holder
    assert not memory_scheme.exists("/run/lock")
    config = config_lib.load("digits_dense:runlocal", TINY)
    run_config.save(config, workdir)
    assert run_config.load(workdir) == run_config.flatten(config)


def test_export_to_gs_reaches_orbax_unchanged(monkeypatch):
    saved = []

    class Spy:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def save(self, directory, tree, **kwargs):
            saved.append(directory)

    monkeypatch.setattr(ocp, "StandardCheckpointer", Spy)
    checkpoint.export("gs://bucket/run/export", {"params": {"w": np.zeros(2)}})
    assert [os.fspath(d) for d in saved] == ["gs://bucket/run/export"]


def test_writer_appends_metrics_and_tensorboard_on_a_non_local_file_system(memory_scheme):
    first = Writer("memory://run", total_steps=3, progress=False)
    first.write(1, {"loss": 0.5})
    first.event(1, "resume", checkpoint="x")
    first.close()
    second = Writer("memory://run", total_steps=3, initial_step=1, progress=False)  # a resumed run appends
    second.write(2, {"loss": 0.25})
    second.close()
    assert read_jsonl("memory://run/metrics.jsonl") == [
        {"step": 1, "kind": "train", "loss": 0.5}, {"step": 1, "event": "resume", "checkpoint": "x"},
        {"step": 2, "kind": "train", "loss": 0.25}]
    events = memory_scheme.find("/run/tensorboard")
    assert events and all("events.out.tfevents" in e and memory_scheme.size(e) > 0 for e in events)


def test_trainer_writes_its_logs_and_exports_through_epath(memory_scheme, monkeypatch):
    exported = []
    monkeypatch.setattr(trainer, "export", lambda path, tree: exported.append(path))
    config = config_lib.load("digits_dense:runlocal", TINY + ["train.tensorboard=False"])
    trainer.train(config, "memory://run")
    rows = read_jsonl("memory://run/metrics.jsonl")
    assert [r["step"] for r in rows if r.get("kind") == "train"] == [1, 2]
    assert rows[0]["event"] == "start" and [r["step"] for r in rows if r.get("kind") == "eval"] == [2]
    assert [os.fspath(p) for p in exported] == ["memory://run/export"]
    assert all(isinstance(p, epath.Path) for p in exported)
