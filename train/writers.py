"""Where training reports go: a JSON-lines log, TensorBoard event files and a tqdm progress bar.

Only process 0 writes. ``workdir/metrics.jsonl`` gets one JSON object per
line: ``{"step": 10, "kind": "train", "loss": 0.7, ...}`` for metrics and
``{"step": 30, "event": "resume", ...}`` for events, so a run can be read
back with ``[json.loads(l) for l in open(path)]``. A resumed run first drops
the records past its restored step (they are about to be written again), so
the file holds each step once however often a run is resumed.

The workdir may be a local path or a URL (``gs://bucket/run``): every file is
written through :mod:`train.paths` (``etils.epath``), TensorBoard's included.
Object stores cannot append, so there a file is rewritten whole at each flush
(metrics files are small; TensorBoard flushes every two minutes).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from typing import Any

import jax
import numpy as np

from train import paths

__all__ = ["Writer", "read_jsonl"]


class _AppendFile:
    """A file opened for appending on any ``epath`` file system (``"a"`` or ``"ab"`` mode).

    A local file is appended to directly. An object in a bucket cannot be
    appended to: its old content is read once, and the whole object is
    rewritten at every :meth:`flush` and at :meth:`close`.
    """

    def __init__(self, path: paths.PathLike, *, binary: bool = False):
        self.path = paths.as_path(path)
        self._binary = binary
        self._local = None if paths.is_remote(self.path) else self.path.open("ab" if binary else "a", **self._encoding())
        self._buffer = None
        if self._local is None:
            self._buffer = io.BytesIO() if binary else io.StringIO()
            if self.path.exists():
                self._buffer.write(self.path.read_bytes() if binary else self.path.read_text(encoding="utf-8"))
        self.closed = False

    def _encoding(self) -> dict:
        return {} if self._binary else {"encoding": "utf-8"}

    def write(self, data) -> None:
        (self._local or self._buffer).write(data)

    def flush(self) -> None:
        if self._local is not None:
            self._local.flush()
        elif self._binary:
            self.path.write_bytes(self._buffer.getvalue())
        else:
            self.path.write_text(self._buffer.getvalue(), encoding="utf-8")

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        if self._local is not None:
            self._local.close()
        self.closed = True


class _RecordWriterFactory:
    """tensorboardX's writer factory for a URL scheme: event files written through ``epath``."""

    def directory_check(self, path: str) -> None:
        paths.as_path(path).mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> _AppendFile:
        return _AppendFile(path, binary=True)


def _summary_writer(logdir: paths.Path):
    """A tensorboardX ``SummaryWriter`` writing to ``logdir`` (local or URL) through ``epath``."""
    from tensorboardX import SummaryWriter, record_writer

    if paths.is_remote(logdir):
        record_writer.register_writer_factory(os.fspath(logdir).split("://")[0], _RecordWriterFactory())
    return SummaryWriter(os.fspath(logdir))


def _scalar(value: Any) -> Any:
    value = np.asarray(value)
    if value.size != 1:
        return value.tolist()
    value = value.item()
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)


class Writer:
    """JSON lines + TensorBoard + progress bar for one run.

    Args:
      workdir: run directory (``metrics.jsonl`` and ``tensorboard/`` go here),
        a local path or a URL; None: progress bar only.
      total_steps: length of the progress bar.
      initial_step: where the bar starts (a resumed run).
      tensorboard: write TensorBoard event files.
      progress: show a tqdm bar with the live loss and throughput.
      desc: label of the progress bar.
      drop_after: drop the records of ``metrics.jsonl`` whose step is larger
        (the restored step of a resumed run); None keeps everything.
    """

    def __init__(
        self,
        workdir: paths.PathLike | None,
        *,
        total_steps: int,
        initial_step: int = 0,
        tensorboard: bool = True,
        progress: bool = True,
        desc: str = "train",
        drop_after: int | None = None,
    ):
        self.enabled = jax.process_index() == 0
        self._jsonl = self._tb = self._bar = None
        if not self.enabled:
            return
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=initial_step, desc=desc, unit="step", leave=True, dynamic_ncols=True)
        self._last_time, self._last_step = time.perf_counter(), initial_step
        if workdir is None:
            return
        workdir = paths.as_path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        if drop_after is not None:
            _drop_after(workdir / "metrics.jsonl", drop_after)
        self._jsonl = _AppendFile(workdir / "metrics.jsonl")
        if tensorboard:
            self._tb = _summary_writer(workdir / "tensorboard")

    def write(self, step: int, metrics: dict[str, Any], *, kind: str = "train") -> None:
        """Logs scalar ``metrics`` of ``kind`` ("train", "eval", ...) at ``step``."""
        if self._jsonl is None:
            return
        row = {k: _scalar(v) for k, v in metrics.items()}
        self._jsonl.write(json.dumps({"step": int(step), "kind": kind, **row}) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{kind}/{key}", value, int(step))

    def event(self, step: int, name: str, **info: Any) -> None:
        """Logs a non-metric event such as ``"resume"`` or ``"checkpoint"``."""
        if self._jsonl is not None:
            self._jsonl.write(json.dumps({"step": int(step), "event": name, **info}) + "\n")
            self._jsonl.flush()

    def progress(self, step: int, *, loss: float, examples_per_step: int) -> None:
        """Moves the bar to ``step`` and shows the loss and examples per second."""
        if self._bar is None:
            return
        now = time.perf_counter()
        rate = (step - self._last_step) * examples_per_step / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        self._bar.set_postfix(loss=f"{loss:.4f}", ex_per_s=f"{rate:.0f}", refresh=False)
        self._bar.update(step - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        if self._jsonl is not None:
            self._jsonl.close()


def _drop_after(path: paths.PathLike, step: int) -> None:
    """Rewrites ``path`` without the records whose step is larger than ``step`` (atomically where local)."""
    path = paths.as_path(path)
    if not path.exists():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if line.strip()]
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a kill mid-write
            continue
        if not isinstance(record, dict) or int(record.get("step", 0)) <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if len(kept) == len(lines):
        return
    if paths.is_remote(path):  # an object is replaced whole by one write
        path.write_text("".join(kept), encoding="utf-8")
        return
    temporary = f"{os.fspath(path)}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        f.writelines(kept)
    os.replace(temporary, os.fspath(path))


def read_jsonl(path: paths.PathLike) -> list[dict]:
    """All records of a ``metrics.jsonl`` file (local path or URL)."""
    text = paths.as_path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
