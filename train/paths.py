"""The one path type of the training package: ``etils.epath.Path`` (what Orbax uses).

Workdirs, checkpoints, exports, metrics and dataset directories may be local
paths or remote URLs (``gs://bucket/run``, ``s3://...``): a URL stays a URL
(``os.path.abspath`` would turn ``gs://bucket/run`` into a local folder
``./gs:/bucket/run``), a local path is made absolute (``~`` expanded).

Example::

    from train import paths
    paths.as_path("gs://bucket/run") / "checkpoints"   # PosixGPath('gs://bucket/run/checkpoints')
    paths.as_path("runs/x")                            # PosixGPath('/abs/cwd/runs/x')
"""

from __future__ import annotations

import os

from etils import epath

__all__ = ["Path", "PathLike", "as_path", "is_remote", "join"]

Path = epath.Path
PathLike = epath.PathLike


def is_remote(path: epath.PathLike) -> bool:
    """Whether ``path`` is a URL (``scheme://...``) rather than a local file system path."""
    return "://" in os.fspath(path)


def as_path(path: epath.PathLike) -> epath.Path:
    """``path`` as an ``epath.Path``: a URL unchanged, a local path absolute.

    Raises:
      TypeError: ``path`` is not a string or path-like object.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a path (str or os.PathLike, local or a URL like gs://bucket/dir), got {path!r}")
    path = epath.Path(path)
    return path if is_remote(path) else epath.Path(os.path.abspath(os.path.expanduser(path)))


def join(directory: epath.PathLike | None, *parts: str) -> epath.Path | None:
    """``directory / parts...`` as an ``epath.Path``, or None when ``directory`` is None or empty."""
    if not directory:
        return None
    return as_path(directory).joinpath(*parts)
