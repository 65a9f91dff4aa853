"""compact_jax.pytree: parameter trees addressed by ``/``-joined paths."""

import flax
import numpy as np
import pytest

from compact_jax import pytree


def test_copy_is_independent_and_thaws_frozen_dicts():
    tree = flax.core.freeze({"a": {"b": np.zeros(2)}})
    copied = pytree.copy_tree(tree)
    pytree.set_node(copied, "a/b", 1)
    assert isinstance(copied, dict) and copied == {"a": {"b": 1}} and tree["a"]["b"].shape == (2,)


def test_mistakes_name_the_missing_part_and_the_type():
    with pytest.raises(ValueError, match=r"layer 'a/c' \(missing 'c'\)"):
        pytree.get_node({"a": {"b": 1}}, "a/c", "fit")
    with pytest.raises(TypeError, match="nested dict .* got list"):
        pytree.copy_tree([1, 2])
