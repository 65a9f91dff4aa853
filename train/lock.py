"""One run per workdir: a lock file naming the process that holds it.

``WORKDIR/lock`` holds one JSON object ``{"pid": ..., "host": ..., "started": ...}``.
On a local filesystem it is created atomically (``O_CREAT | O_EXCL``), so of
two runs started together exactly one gets it. A lock whose holder is a
process of this host that is no longer alive (a run killed with ``kill -9``)
is stale and taken over. On an object store (``gs://...``) there is no
atomic create: the lock is written after checking that none exists, which
catches a second run started later but not two started in the same instant
(best effort); a stale lock there is only taken over if written on this host.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from etils import epath

from train import paths
from train.errors import UserError

__all__ = ["WorkdirBusyError", "WorkdirLock"]

LOCK_NAME = "lock"


class WorkdirBusyError(UserError):
    """Another live process holds the workdir's lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"


class WorkdirLock:
    """Holds ``workdir/lock`` while a run writes to ``workdir`` (a context manager).

    Re-entrant: acquiring a lock this process already holds is a no-op
    (the outer holder releases it).

    Args:
      workdir: the run directory (a local path or an ``etils.epath`` path).

    Raises (on enter):
      WorkdirBusyError: a live process holds the lock; the message names it.
    """

    def __init__(self, workdir):
        self.path = epath.Path(workdir) / LOCK_NAME
        self._content = json.dumps({
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        self._held = False

    def _local(self) -> bool:
        return not paths.is_remote(self.path)

    def _create(self) -> bool:
        """Creates the lock file with our content; False if it already exists."""
        if self._local():
            try:
                fd = os.open(os.fspath(self.path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self._content)
            return True
        if self.path.exists():  # no atomic create on object stores: best effort
            return False
        self.path.write_text(self._content)
        return True

    def _holder(self) -> dict | None:
        """The current lock's content (None if it vanished); unparsable content names itself."""
        return self._holder_at(self.path)

    @staticmethod
    def _holder_at(path) -> dict | None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(text)
            return holder if isinstance(holder, dict) else {"pid": None, "host": None, "started": None, "raw": text}
        except json.JSONDecodeError:  # a holder still writing it, or a torn write
            return {"pid": None, "host": None, "started": None, "raw": text}

    def _stale(self, holder: dict) -> bool:
        """The holder is a process of this host that no longer exists."""
        pid = holder.get("pid")
        return holder.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid)

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self._held = True
                return
            holder = self._holder()
            if holder is None:  # released between our create and read: try again
                continue
            if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
                return  # held further up in this process (nested): the outer holder releases it
            if not self._stale(holder):
                raise WorkdirBusyError(
                    f"workdir {os.fspath(self.path.parent)} is in use by another run ({_describe(holder)}); "
                    f"wait for it, or delete {os.fspath(self.path)} if that process is gone"
                )
            self._take_over(holder)
        raise WorkdirBusyError(f"could not take the lock {os.fspath(self.path)}: other runs keep taking it")

    def _take_over(self, holder: dict) -> None:
        """Removes a stale lock (renamed first, so that only one contender removes it)."""
        aside = self.path.parent / f"{LOCK_NAME}.stale-{os.getpid()}"
        try:
            self.path.rename(aside)
        except FileNotFoundError:  # another contender took it over first
            return
        if self._holder_at(aside) != holder:  # a contender's fresh lock, not the stale one: put it back
            if self._local():
                try:
                    os.link(os.fspath(aside), os.fspath(self.path))
                except FileExistsError:
                    pass
            aside.unlink(missing_ok=True)
            return
        print(f"note: taking over the lock of a process that is gone ({_describe(holder)})", file=sys.stderr)
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Removes the lock if this process holds it (and it is still ours)."""
        if not self._held:
            return
        self._held = False
        try:
            if self.path.read_text() == self._content:
                self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
