"""Parameter paths and shapes of the zoo models, against the list captured before the method registry.

Checkpoints load by parameter path, so no refactor may move one. The full list
(every zoo model with every method, ``tests/data/param_paths.json``) is long to
trace; the quick suite checks every model with one compact method (rotating
through the methods) plus every method on the small models and every compression
policy; the other entries are marked ``slow`` (``pytest -m slow``).
"""

import json

import pytest

import param_paths

with open(param_paths.PATH) as f:
    EXPECTED = json.load(f)

_SMALL = ("resnet20", "resnet3d_18")


def _selected():
    """The quick suite's entries (see the module docstring)."""
    chosen = []
    compact = [m for m in param_paths.FACTORY_METHODS if m != "dense"]
    for kind, name, method in param_paths.cases():
        key = f"{kind}:{name}:{method}"
        if kind == "policy" or name in _SMALL:
            chosen.append(key)
            continue
        working = [m for m in compact if "error" not in EXPECTED[f"factory:{name}:{m}"]]
        if working and method == working[param_paths.models.MODELS.index(name) % len(working)]:
            chosen.append(key)
    return chosen


def every_case(quick):
    """Every entry as a pytest param, those not in ``quick`` marked slow."""
    quick = set(quick)
    return [key if key in quick else pytest.param(key, marks=pytest.mark.slow) for key in EXPECTED]


def test_the_snapshot_lists_every_case():
    assert sorted(EXPECTED) == sorted(f"{k}:{n}:{m}" for k, n, m in param_paths.cases())


@pytest.mark.parametrize("key", every_case(_selected()))
def test_param_paths_unchanged(key):
    kind, name, method = key.split(":")
    assert param_paths.compute(kind, name, method) == EXPECTED[key]
