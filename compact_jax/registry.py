"""The method registry: every method's :class:`~compact_jax.protocol.Method` record by name.

:data:`METHODS` is the only table of methods: the Linen and NNX modules
(:func:`compact_jax.linen.conv_class`), compression policies, fitting, folding,
reports and the training package all read it. Adding a method is one line::

    compact_jax.register_method(my_method.METHOD)
"""

from __future__ import annotations

import contextlib
import difflib
import types
from collections.abc import Iterator, Mapping

from compact_jax import basis, dense, fdc3d, filtermap, series
from compact_jax.protocol import Method

__all__ = ["METHODS", "register_method", "unregister_method", "registered", "get_method", "method_names"]

_METHODS: dict[str, Method] = {}
_ALIASES: dict[str, str] = {}

METHODS: Mapping[str, Method] = types.MappingProxyType(_METHODS)
"""Canonical method name -> record, read-only; see :func:`register_method`."""


def register_method(record: Method) -> Method:
    """Adds ``record`` to :data:`METHODS` (its aliases to :func:`get_method`) and returns it.

    Raises:
      TypeError: ``record`` is not a :class:`compact_jax.protocol.Method`.
      ValueError: its name or an alias is already taken.
    """
    if not isinstance(record, Method):
        raise TypeError(f"register_method expects a compact_jax.protocol.Method record, got {type(record).__name__}")
    for name in (record.name, *record.aliases):
        if name in _METHODS or name in _ALIASES:
            owner = _ALIASES.get(name, name)
            raise ValueError(
                f"register_method({record.name!r}): the name {name!r} is already taken by method {owner!r}"
            )
    if len(set(record.aliases) | {record.name}) != len(record.aliases) + 1:
        raise ValueError(f"register_method({record.name!r}): repeated name in aliases {record.aliases}")
    _METHODS[record.name] = record
    _ALIASES.update(dict.fromkeys(record.aliases, record.name))
    return record


def unregister_method(name: str) -> Method:
    """Removes the method ``name`` (canonical) and its aliases; returns its record."""
    if name not in _METHODS:
        raise ValueError(f"unregister_method: no method {name!r}; registered: {', '.join(_METHODS)}")
    record = _METHODS.pop(name)
    for alias in record.aliases:
        _ALIASES.pop(alias, None)
    return record


@contextlib.contextmanager
def registered(record: Method) -> Iterator[Method]:
    """``with registered(record):`` the method is registered inside the block only (for tests)."""
    register_method(record)
    try:
        yield record
    finally:
        unregister_method(record.name)


def method_names(*, aliases: bool = True) -> tuple[str, ...]:
    """Every canonical name, each followed by its aliases (with ``aliases``)."""
    if not aliases:
        return tuple(_METHODS)
    return tuple(n for record in _METHODS.values() for n in (record.name, *record.aliases))


def get_method(name: str | Method) -> Method:
    """The record of a canonical name or alias (a record is returned as is).

    Raises:
      ValueError: unknown name, with the closest registered names.
    """
    if isinstance(name, Method):
        return name
    if not isinstance(name, str):
        raise TypeError(f"a method name must be a string, got {name!r}")
    if name in _METHODS:
        return _METHODS[name]
    if name in _ALIASES:
        return _METHODS[_ALIASES[name]]
    near = difflib.get_close_matches(name, method_names(), n=3)
    hint = f"did you mean {' or '.join(map(repr, near))}? " if near else ""
    raise ValueError(f"unknown method {name!r}; {hint}valid: {', '.join(method_names())}")


for _record in (dense.METHOD, filtermap.METHOD, basis.METHOD, series.COSINE, series.CHEBYSHEV, fdc3d.METHOD):
    register_method(_record)
del _record
