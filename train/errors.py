"""Errors the command line reports as one line, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "UserError", "DatasetNotPreparedError", "NonFiniteLossError", "RunStopped"]


class UserError(ValueError):
    """A mistake in the command line, the config or the data setup.

    The message is one line that says what was wrong and how to fix it
    (valid names, close matches, a preparation command).
    """


class DatasetNotPreparedError(UserError):
    """A tensorflow-datasets dataset is not prepared (as array_record) in ``data_dir``."""


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN / infinite loss or parameters; names the step and the last good checkpoint."""


class RunStopped(Exception):
    """A run was stopped by a signal (checkpoint saved); ``signal_name`` is ``"SIGTERM"`` or ``"SIGINT"``."""

    def __init__(self, message: str, *, signal_name: str):
        super().__init__(message)
        self.signal_name = signal_name


def did_you_mean(word: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str:
    """``"did you mean 'a' or 'b'? "`` for the choices close to ``word``, else ``""`` (for one-line errors)."""
    near = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=cutoff)
    return f"did you mean {' or '.join(map(repr, near))}? " if near else ""
