"""Every Orbax call of the project: periodic train checkpoints and the final export.

A checkpoint is one Orbax step directory holding two items: ``state`` (the
train-state pytree) and ``data`` (the grain iterator position, one JSON file
per process). Orbax writes each step to a temporary directory and renames it
when complete, so a run killed mid-save leaves the previous checkpoint intact
(and the leftover temporary directory is removed on the next start).
"""

from __future__ import annotations

from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from train import paths

__all__ = ["Checkpointer", "export", "load_export", "load_state"]


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
