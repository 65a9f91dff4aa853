"""pyproject.toml: the console scripts resolve, the typing marker ships, jax is never pinned apart."""

import importlib
import pathlib
import re
import tomllib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["compact-jax-train", "compact-jax-report", "compact-jax-bench"])
def test_console_scripts_point_at_main_functions(name):
    module, _, attr = PROJECT["project"]["scripts"][name].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_the_typing_marker_and_license_ship():
    assert (REPO / "compact_jax" / "py.typed").is_file()
    assert "py.typed" in PROJECT["tool"]["setuptools"]["package-data"]["compact_jax"]
    assert (REPO / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    assert PROJECT["project"]["license"] == "Apache-2.0"


def test_an_installed_jax_is_kept():
    """No separate jaxlib requirement and no upper bound on jax (a TPU runtime's own pair stays)."""
    names = {re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0].lower(): req for req in PROJECT["project"]["dependencies"]}
    assert "jaxlib" not in names
    assert "<" not in names["jax"]
