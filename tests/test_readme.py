"""Every ```python block of README.md runs: the blocks are executed in order in one namespace."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _blocks():
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_examples():
    assert len(_blocks()) >= 2


def test_every_python_block_runs_in_order():
    namespace = {"__name__": "readme"}
    for index, block in enumerate(_blocks()):
        try:
            exec(compile(block, f"README.md python block {index}", "exec"), namespace)
        except Exception as error:  # name the block that broke
            pytest.fail(f"README python block {index} raised {type(error).__name__}: {error}\n{block}")
    # The shapes the blocks state in their comments.
    assert namespace["params"]["filtermap"].shape == (8, 8, 64)
    assert namespace["kernel_hwio"].shape == (3, 3, 64, 64)
    assert namespace["y"].shape == (8, 32, 32, 64)
    shared = namespace["pair_vars"]["params"]["SharedBasis_0"]["basis"]
    assert shared.shape == (3, 3, 64, 16)
    assert namespace["out"].shape == (2, 8, 8, 64)
    net = namespace["variables"]["params"]
    assert set(net["stem_conv"]) == {"kernel"} and "filtermap" in net["stage1"]["block0"]["conv1"]
