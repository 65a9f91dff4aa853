"""Resolve a config by name, apply ``--set key=value`` overrides, check names early.

A config is a module ``train/configs/NAME.py`` with ``get_config(arg=None)``
returning an ``ml_collections.ConfigDict``; ``NAME:ARG`` passes ``ARG``
(e.g. ``digits_dense:runlocal`` for the tiny variant). Every mistake is one
line: a key typo lists close matches, an unknown config, model, dataset or
conv method lists the valid names.

Example::

    config = load("digits_filtermap:runlocal", ["optimizer.lr=0.05", "train.steps=30"])
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator, Sequence
from typing import Any

import ml_collections

from train.errors import UserError, did_you_mean

__all__ = ["available_configs", "available_experiments", "load", "apply_override", "flat_keys"]

# Nodes whose children are free-form keyword arguments (checked by their consumer).
_OPEN_NODES = ("kwargs",)


def available_configs() -> list[str]:
    """Names of the modules in ``train/configs`` (private ``_helpers`` excluded)."""
    from train import configs

    return sorted(m.name for m in pkgutil.iter_modules(configs.__path__) if not m.name.startswith("_"))


def available_experiments() -> list[str]:
    """Every experiment by name: ``NAME``, or ``NAME:VARIANT`` for each entry of a family
    config's ``EXPERIMENTS`` tuple (e.g. ``cifar_filtermap:resnet34``)."""
    names = []
    for name in available_configs():
        variants = getattr(importlib.import_module(f"train.configs.{name}"), "EXPERIMENTS", ())
        names += [f"{name}:{v}" for v in variants] if variants else [name]
    return names



def flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every leaf (and every empty sub-dict) of ``config``."""
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict) and len(value):
            yield from flat_keys(value, path + ".")
        else:
            yield path


def _parse(raw: str) -> Any:
    """A Python literal (``3``, ``0.1``, ``(1, 1)``, ``None``, ``True``) or else the string itself."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def apply_override(config: ml_collections.ConfigDict, item: str) -> None:
    """Sets ``key=value`` (dotted key) in place; new keys only under ``kwargs`` nodes."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set expects key=value, got {item!r}")
    valid = list(flat_keys(config))
    parts = key.split(".")
    node = config
    for depth, part in enumerate(parts):
        is_leaf = depth == len(parts) - 1
        open_node = depth > 0 and parts[depth - 1] in _OPEN_NODES
        if part not in node and not (is_leaf and open_node):
            raise UserError(f"unknown config key {key!r}; {did_you_mean(key, valid, cutoff=0.5)}valid keys: {', '.join(valid)}")
        if not is_leaf:
            node = node[part]
            if not isinstance(node, ml_collections.ConfigDict):
                raise UserError(f"config key {'.'.join(parts[: depth + 1])!r} is a value, not a group; cannot set {key!r}")
    value = _parse(raw)
    if isinstance(value, list):
        value = tuple(value)
    try:
        node[parts[-1]] = value
    except TypeError as error:
        old = node[parts[-1]]
        raise UserError(f"--set {key}: expected a {type(old).__name__} like {old!r}, got {raw!r}") from error


def _import(name: str):
    names = available_configs()
    if name not in names:
        raise UserError(f"unknown config {name!r}; {did_you_mean(name, names, cutoff=0.5)}valid configs: {', '.join(names)}")
    return importlib.import_module(f"train.configs.{name}")


def load(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """The config ``NAME`` or ``NAME:ARG`` with ``overrides`` applied and its names checked.

    Raises:
      UserError: unknown config, key, dataset, model or conv method, or a
        value out of its range (:mod:`train.validate_config`).
    """
    name, _, arg = spec.partition(":")
    module = _import(name)
    config = module.get_config(arg) if arg else module.get_config()
    for item in overrides:
        apply_override(config, item)
    check_names(config)
    from train.validate_config import validate

    validate(config)
    config.name = spec
    return config


def check_names(config: ml_collections.ConfigDict) -> None:
    """Fails fast (before any data is loaded) on unknown dataset, model and conv method names."""
    from compact_jax import models

    from train import data
    from train.models import available_methods

    checks = (
        ("dataset", config.data.name, data.DATASETS),
        ("model", config.model.name, models.MODELS),
        ("conv method", config.model.conv.method, available_methods()),
    )
    for what, value, valid in checks:
        if value not in valid:
            raise UserError(f"unknown {what} {value!r}; {did_you_mean(str(value), valid, cutoff=0.5)}valid: {', '.join(valid)}")
