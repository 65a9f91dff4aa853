"""Every Orbax call of the project: periodic train checkpoints and the final export.

A checkpoint is one Orbax step directory holding two items: ``state`` (the
train-state pytree) and ``data`` (the grain iterator position, one JSON file
per process). Orbax writes each step to a temporary directory and renames it
when complete, so a run killed mid-save leaves the previous checkpoint intact
(and the leftover temporary directory is removed on the next start).

:meth:`Checkpointer.restore_latest` falls back past damaged steps (a truncated
or zeroed data file, a missing manifest or iterator state, a stray
half-copied step folder): each one is moved aside into
``<directory>_damaged/`` (never deleted) and the next older step is tried.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import sys
import time
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

from train import paths
from train.errors import UserError

__all__ = ["Checkpointer", "CheckpointMismatchError", "Damaged", "export", "load_export", "load_state"]


class CheckpointMismatchError(UserError):
    """A readable checkpoint holds arrays of other shapes than the model being trained."""


@dataclasses.dataclass(frozen=True)
class Damaged:
    """A checkpoint step that could not be read and was moved aside.

    Attributes:
      step: the step number.
      reason: the first line of the error that reading it raised.
      moved_to: where the step directory now is.
    """

    step: int
    reason: str
    moved_to: str


def _first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of the innermost cause (the storage layer's message, not Orbax's wrapper)."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ignore_read_leftovers() -> None:
    """Silences what a failed read leaves behind (installed once, after the first damaged step).

    When one array of a step fails to read, Orbax closes its event loop while
    TensorStore still completes the step's other reads: their coroutines and
    callbacks end in "Event loop is closed" errors that Python would print as
    ignored exceptions, dozens of lines for one damaged step.
    """
    previous = sys.unraisablehook
    if getattr(previous, "_ignores_read_leftovers", False):
        return

    def hook(unraisable):
        where = getattr(unraisable.object, "__qualname__", "") or ""
        if "Event loop is closed" in str(unraisable.exc_value) or where.startswith("_read_array_index"):
            return
        previous(unraisable)

    hook._ignores_read_leftovers = True
    sys.unraisablehook = hook


def _kind(error: BaseException) -> str:
    """``incomplete`` (a file or item missing) or ``unreadable`` (present but corrupt)."""
    text = str(error).lower()
    missing = isinstance(error, (FileNotFoundError, KeyError)) or "not found" in text or "does not exist" in text
    return "incomplete" if missing else "unreadable"


def _abstract(tree: Any) -> Any:
    """Shapes, dtypes and shardings of ``tree`` (what a restore should produce)."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
    """Saves every ``every`` steps (and when forced), keeps the newest ``keep``.

    Args:
      directory: where step directories go (created if missing); a local
        path or a URL such as ``gs://bucket/run/checkpoints`` (see :mod:`train.paths`).
      every: save interval in steps (``save`` skips other steps unless forced).
      keep: checkpoints kept; older ones are deleted.
      async_save: write in a background thread (arrays are copied to host
        before :meth:`save` returns, so the caller may donate them).
    """

    def __init__(self, directory: paths.PathLike, *, every: int, keep: int, async_save: bool = True):
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=every,
            max_to_keep=keep,
            create=True,
            cleanup_tmp_directories=True,
            enable_async_checkpointing=async_save,
        )
        self.directory = paths.as_path(directory)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self._manager.latest_step()

    def should_save(self, step: int) -> bool:
        """Whether ``step`` is due (the interval, or a multi-host preemption sync point)."""
        return self._manager.should_save(step)

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, data_iterator: grain.DatasetIterator, *, force: bool = False) -> bool:
        """Saves ``state`` and the iterator position if ``step`` is due (or ``force``)."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iterator),
        )
        return self._manager.save(step, args=args, force=force)

    def restore(self, step: int, like_state: Any, data_iterator: grain.DatasetIterator) -> Any:
        """Restores step ``step`` into arrays shaped and sharded like ``like_state``.

        The iterator is moved in place to the saved position.
        """
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(like_state)),
            data=grain.checkpoint.CheckpointRestore(data_iterator),
        )
        return self._manager.restore(step, args=args).state

    def restore_latest(self, like_state: Any, data_iterator: grain.DatasetIterator) -> tuple[int | None, Any, list[Damaged]]:
        """Restores the newest readable step, moving each unreadable newer one aside.

        A step that fails to restore is renamed to
        ``<directory>_damaged/<step>-<incomplete|unreadable>`` (never deleted)
        and the next older step is tried. If no step can be read, the
        iterator is left where it was and ``like_state`` is returned.

        Returns:
          ``(step or None, state, damaged steps newest first)``.

        Raises:
          CheckpointMismatchError: a step whose metadata is readable holds
            arrays of other shapes than ``like_state`` (a changed model, not
            damage: nothing is moved).
        """
        initial_position = data_iterator.get_state()
        damaged = []
        for step in sorted(self.all_steps(), reverse=True):
            try:
                return step, self.restore(step, like_state, data_iterator), damaged
            except Exception as error:  # noqa: BLE001 - any failure to read is damage, reported and kept
                _ignore_read_leftovers()
                gc.collect()  # the failed read's coroutines, now, while they are ignored
                mismatch = self._mismatch(step, like_state)
                if mismatch:
                    raise CheckpointMismatchError(
                        f"checkpoint step {step} in {self.directory} was written by a different model ({mismatch}); "
                        "resume with the config that wrote it or use a new workdir"
                    ) from error
                damaged.append(Damaged(step, _first_line(error), self._move_aside(step, _kind(error))))
                self._manager.reload()
        data_iterator.set_state(initial_position)
        return None, like_state, damaged

    def _mismatch(self, step: int, like_state: Any) -> str | None:
        """How the saved array shapes differ from ``like_state``, or None (also when unreadable)."""
        try:
            with ocp.StandardCheckpointer() as reader:
                saved = reader.metadata(self.directory / str(step) / "state").item_metadata.tree
            saved_shapes = jax.tree.map(lambda m: tuple(m.shape), saved)
        except Exception:  # noqa: BLE001 - unreadable metadata: damage, not a mismatch
            return None
        want = jax.tree.map(lambda a: tuple(np.shape(a)), like_state)
        # The model's variables (nested dicts); optimiser states may read back with other containers.
        for key in ("params", "model_state"):
            if not (isinstance(saved_shapes, dict) and isinstance(want, dict) and key in want):
                continue
            got_leaves = dict(jax.tree_util.tree_leaves_with_path(saved_shapes.get(key, {})))
            want_leaves = dict(jax.tree_util.tree_leaves_with_path(want[key]))
            if set(got_leaves) != set(want_leaves):
                return f"other {key} names"
            for path, expected in want_leaves.items():
                if got_leaves[path] != expected:
                    return f"{key}{jax.tree_util.keystr(path)} has shape {got_leaves[path]}, the model {expected}"
        return None

    def _move_aside(self, step: int, kind: str) -> str:
        """Renames step ``step`` into ``<directory>_damaged/`` (a fresh name each time)."""
        source = self.directory / str(step)
        target_dir = self.directory.parent / f"{self.directory.name}_damaged"
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{step}-{kind}"
        if target.exists():
            target = target_dir / f"{step}-{kind}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        source.rename(target)
        return os.fspath(target)

    def wait(self) -> None:
        """Blocks until pending background writes are complete."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def _on_one_device(metadata_tree: Any) -> Any:
    """Restore targets placing every saved array on this process's first device.

    Lets a checkpoint written on 8 devices be read on 1 (Orbax otherwise
    insists on the saved topology).
    """
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata_tree)


def load_state(directory: paths.PathLike, step: int | None = None) -> dict:
    """The ``state`` item of a train checkpoint on one device (latest step if ``step`` is None).

    Raises:
      FileNotFoundError: ``directory`` holds no complete checkpoint.
    """
    options = ocp.CheckpointManagerOptions(read_only=True, create=False)
    handlers = {"state": ocp.StandardCheckpointHandler()}
    with ocp.CheckpointManager(paths.as_path(directory), options=options, item_handlers=handlers) as manager:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no complete checkpoint in {directory}")
        target = _on_one_device(manager.item_metadata(step).state.tree)
        return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))).state


def export(path: paths.PathLike, tree: Any) -> None:
    """Writes ``tree`` (e.g. ``{"params": ..., "model_state": ...}``) to ``path`` (synchronously)."""
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(paths.as_path(path), tree, force=True)


def load_export(path: paths.PathLike) -> Any:
    """Reads a tree written by :func:`export` onto one device, whatever devices wrote it."""
    path = paths.as_path(path)
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(path, _on_one_device(checkpointer.metadata(path).item_metadata.tree))
