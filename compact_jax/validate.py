"""Argument checks shared by every spec and function.

Each helper raises a ``TypeError`` (wrong kind of value) or ``ValueError``
(right kind, wrong value) whose message names the argument, the bad value and
what was expected, so that mistakes surface where they are made rather than as
an XLA shape error deep inside a traced function.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp

__all__ = [
    "check_int",
    "check_positive_int",
    "check_int_tuple",
    "check_choice",
    "check_fraction",
    "check_array",
    "check_param_dict",
]


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but True as a size is always a mistake.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Returns ``value`` as an ``int``; raises if it is not an integer >= minimum."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive_int(name: str, value: Any) -> int:
    """Returns ``value`` as an ``int``; raises unless it is an integer >= 1."""
    return check_int(name, value, minimum=1)


def check_int_tuple(
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    minimum: int | None = 1,
    broadcast: bool = True,
) -> tuple[int, ...]:
    """Canonicalises an int or a sequence of ints to a tuple of length ``ndim``.

    Args:
      name: argument name used in error messages.
      value: an int (broadcast to ``ndim`` entries when ``broadcast``) or a
        sequence of ints.
      ndim: required length, or None to accept any non-empty length.
      minimum: smallest allowed entry, or None for no bound.
      broadcast: whether a single int is allowed.
    """
    if _is_int(value):
        if not broadcast or ndim is None:
            raise TypeError(f"{name} must be a sequence of integers, got the single integer {value!r}")
        items = (int(value),) * ndim
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = tuple(value)
        if not items:
            raise ValueError(f"{name} must not be empty")
        for item in items:
            if not _is_int(item):
                raise TypeError(f"{name} must contain only integers, got {value!r}")
        items = tuple(int(i) for i in items)
    else:
        raise TypeError(f"{name} must be an integer or a sequence of integers, got {value!r}")
    if ndim is not None and len(items) != ndim:
        raise ValueError(f"{name} must have {ndim} entries, got {len(items)}: {items}")
    if minimum is not None:
        for item in items:
            if item < minimum:
                raise ValueError(f"{name} entries must be >= {minimum}, got {items}")
    return items


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Returns ``value`` if it is one of ``choices``; raises otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {list(choices)}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_fraction(name: str, value: Any, *, upper_inclusive: bool = False) -> float:
    """Returns ``value`` as a float in [0, 1) (or [0, 1] when upper_inclusive)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    ok = 0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0
    if not ok:
        bound = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must lie in {bound}, got {value}")
    return value


def check_array(name: str, value: Any, *, floating: bool = False) -> Any:
    """Raises unless ``value`` is an array (has ``shape`` and ``dtype``).

    Lists, tuples and scalars are refused with a ``TypeError`` that names
    ``name`` (wrap them in ``jnp.asarray`` first), so that a Python container
    never reaches code that reads ``.shape``. With ``floating``, an integer or
    boolean dtype is refused too: parameters and kernels are real-valued, and
    an integer array would silently make every result integer.
    """
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        raise TypeError(
            f"{name} must be an array (jax.Array or numpy.ndarray), got {type(value).__name__}"
            + (" (wrap it in jnp.asarray)" if isinstance(value, (list, tuple)) else "")
        )
    if floating:
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise TypeError(f"{name} must have a floating-point dtype, got {value.dtype}")
    return value


def check_param_dict(
    params: Any,
    expected: Mapping[str, tuple[int, ...]],
    *,
    where: str,
    batched: bool = True,
    extra: bool = False,
) -> None:
    """Raises unless ``params`` maps each name in ``expected`` to a float array of that shape.

    Args:
      params: the parameter dict to check.
      expected: name -> required (trailing) shape.
      where: function name for error messages.
      batched: whether leading (batch) dims are allowed before the shape.
      extra: whether keys not in ``expected`` are allowed.
    """
    if not isinstance(params, Mapping):
        raise TypeError(
            f"{where}: params must be a dict {{{', '.join(repr(k) for k in expected)}}} of arrays, "
            f"got {type(params).__name__}"
        )
    if not extra:
        unknown = sorted(str(k) for k in params if k not in expected)
        if unknown:
            raise ValueError(f"{where}: unexpected params {unknown}; expected {sorted(expected)}")
    missing = [k for k in expected if k not in params]
    if missing:
        raise ValueError(f"{where}: params lack {missing}; expected {sorted(expected)}, got {sorted(map(str, params))}")
    for key, shape in expected.items():
        value = check_array(f"{where}: params[{key!r}]", params[key], floating=True)
        got = tuple(value.shape)
        ok = len(got) >= len(shape) and got[len(got) - len(shape) :] == tuple(shape)
        if ok and not batched:
            ok = got == tuple(shape)
        if not ok:
            lead = "(*batch, " if batched else "("
            raise ValueError(
                f"{where}: params[{key!r}] must have shape {lead}{', '.join(map(str, shape))}), "
                f"got {got}"
            )
