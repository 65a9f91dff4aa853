"""The config a run was started with, kept as ``WORKDIR/config.json`` and checked on resume.

Resuming with another config is what a mistyped command does, so a resume
compares the saved config with the new one before anything is built:

* a change of the model or the dataset (``model.*``, ``data.name``) stops
  with one line: the checkpoint's parameters would not fit;
* a change of a hyperparameter (optimiser, seed, batch size, ...) stops with
  one line unless ``train.allow_config_change=True`` (``--allow-config-change``)
  is given; then each change is logged in one line on stderr and the run
  continues with the new values;
* run-length and bookkeeping keys (:data:`FREE`: ``train.steps``, logging,
  checkpoint cadence, progress bars, the multi-host ``cluster`` settings, ...) may change freely; extending a
  finished run is a resume with more ``train.steps``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from train import paths
from train.errors import UserError

__all__ = ["FILE", "FREE", "STRUCTURAL", "flatten", "load", "save", "changes", "check_resume"]

FILE = "config.json"

#: Keys (or key prefixes) whose change makes the saved parameters unusable.
STRUCTURAL = ("model", "data.name")

#: Keys that may change between a run and its resume without a word.
FREE = (
    "name",
    "distributed",
    "cluster",  # where the job runs (coordinator port, process ids, timeouts), not what it learns
    "debug_nan_at_step",
    "train.steps",
    "train.log_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.async_checkpoint",
    "train.tensorboard",
    "train.progress",
    "train.allow_config_change",
    "data.eval_batch_size",
    "data.num_threads",
)


def _matches(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _plain(value: Any) -> Any:
    """A JSON-comparable form (tuples as lists, other objects by repr)."""
    return json.loads(json.dumps(value, default=repr))


def flatten(config, prefix: str = "") -> dict[str, Any]:
    """``{"optimizer.lr": 0.1, ...}``: every leaf of a (nested) config by dotted key."""
    items = config.items() if hasattr(config, "items") else ()
    flat = {}
    for key, value in items:
        path = f"{prefix}{key}"
        if hasattr(value, "items"):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = _plain(value)
    return flat


def _path(workdir: paths.PathLike) -> paths.Path:
    return paths.as_path(workdir) / FILE


def save(config, workdir: paths.PathLike) -> None:
    """Writes ``WORKDIR/config.json`` (local: a temporary file, then a rename; a bucket: one write)."""
    target = _path(workdir)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(flatten(config), indent=1, sort_keys=True)
    if paths.is_remote(target):  # an object is replaced whole by one write
        target.write_text(text, encoding="utf-8")
        return
    tmp = f"{os.fspath(target)}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, os.fspath(target))


def load(workdir: paths.PathLike) -> dict[str, Any] | None:
    """The flat config saved in ``workdir``, or None if there is none (or it cannot be read)."""
    try:
        saved = json.loads(_path(workdir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def changes(saved: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, new value)`` for every key that differs (missing: ``"<unset>"``)."""
    out = []
    for key in sorted(set(saved) | set(new)):
        old, value = saved.get(key, "<unset>"), new.get(key, "<unset>")
        if old != value and not _matches(key, FREE):
            out.append((key, old, value))
    return out


def _has_checkpoint(workdir: paths.PathLike) -> bool:
    directory = paths.as_path(workdir) / "checkpoints"
    return directory.is_dir() and any(child.name.isdigit() for child in directory.iterdir())


def check_resume(config, workdir: str | None, *, dry_run: bool = False) -> None:
    """Compares ``config`` with the one saved in ``workdir`` (if a checkpoint exists), then saves it.

    Args:
      config: the new run's config.
      workdir: the run directory (None: nothing to do).
      dry_run: only raise if the resume would be refused (no log, nothing saved).

    Raises:
      UserError: the model or dataset changed, or a hyperparameter changed
        without ``train.allow_config_change`` (one line naming the key, the
        saved value and the new one).
    """
    if not workdir:
        return
    import jax

    saved = load(workdir) if _has_checkpoint(workdir) else None
    if saved is not None:
        found = changes(saved, flatten(config))
        for key, old, new in found:
            if _matches(key, STRUCTURAL):
                raise UserError(f"cannot resume {workdir!r}: its checkpoints are of another model/dataset "
                                f"({key}: {old!r} -> {new!r}); use a new --workdir")
        allowed = config.get("train", {}).get("allow_config_change", False)
        if found and not allowed:
            key, old, new = found[0]
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise UserError(f"cannot resume {workdir!r} with a changed config: {key}: {old!r} -> {new!r}{more}; "
                            "pass --allow-config-change (train.allow_config_change=True) to continue with the new values")
        if not dry_run and jax.process_index() == 0:
            for key, old, new in found:
                print(f"warning: resuming {workdir} with {key} changed: {old!r} -> {new!r}", file=sys.stderr)
    if not dry_run and jax.process_index() == 0:  # dry_run: never touches the backend (before jax.distributed)
        save(config, workdir)
