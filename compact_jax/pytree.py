"""Parameter trees addressed by ``/``-joined module paths (``"stage1/block0/conv1"``).

A model's ``params`` collection is a nested dict; a layer's parameters are the
node at its path. These helpers copy such a tree, read and replace a node, and
list the leaves with their paths.

>>> params = {"stage1": {"conv": {"kernel": 1, "bias": 2}}, "head": {"kernel": 3}}
>>> get_node(params, "stage1/conv")
{'kernel': 1, 'bias': 2}
>>> copied = copy_tree(params)
>>> set_node(copied, "stage1/conv", {"coeffs": 4})
>>> copied["stage1"], params["stage1"]
({'conv': {'coeffs': 4}}, {'conv': {'kernel': 1, 'bias': 2}})
>>> [path for path, _ in leaf_paths(params)]
['head/kernel', 'stage1/conv/bias', 'stage1/conv/kernel']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax
import jax

__all__ = ["copy_tree", "get_node", "set_node", "leaf_paths"]


def copy_tree(tree: Any, *, where: str = "copy_tree") -> dict:
    """The nested dicts of ``tree`` copied (a ``FrozenDict`` thawed); the leaves are shared.

    Raises:
      TypeError: ``tree`` is not a mapping.
    """
    tree = flax.core.unfreeze(tree) if isinstance(tree, flax.core.FrozenDict) else tree
    if not isinstance(tree, Mapping):
        raise TypeError(f"{where}: params must be a nested dict (a model's 'params' collection), "
                        f"got {type(tree).__name__}")
    return {k: copy_tree(v, where=where) if isinstance(v, Mapping) else v for k, v in tree.items()}


def get_node(tree: Mapping, path: str, where: str = "get_node") -> Any:
    """``tree["a"]["b"]`` for ``path="a/b"``.

    Raises:
      ValueError: no entry at ``path`` (naming the missing part).
    """
    node = tree
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise ValueError(f"{where}: params have no entry for layer {path!r} (missing {part!r})")
        node = node[part]
    return node


def set_node(tree: dict, path: str, value: Any) -> None:
    """Sets ``tree["a"]["b"] = value`` for ``path="a/b"`` (the parents must exist)."""
    *parents, last = path.split("/")
    node = tree
    for part in parents:
        node = node[part]
    node[last] = value


def leaf_paths(tree: Any) -> list[tuple[str, Any]]:
    """``(path, leaf)`` of every leaf in tree order; ``path`` joins the dict keys (or sequence indices) by ``/``."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [("/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path), leaf)
            for path, leaf in leaves]
