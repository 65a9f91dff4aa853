"""Package layout: private modules and names stay inside their own package."""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("compact_jax", "train")
MAX_TOP_LEVEL_FILES = 20


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _package_of(path: pathlib.Path) -> str:
    """Dotted package of a source file; a package's ``__init__`` belongs to the package itself."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1])


def _imported_paths(tree: ast.AST, package: str):
    """Yields the dotted path of every imported module and ``module.name``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                yield module if alias.name == "*" else f"{module}.{alias.name}"


def private_imports(source: str, package: str) -> list[str]:
    """Dotted paths imported by ``source`` (a module of ``package``) that are private to another package.

    The owner of ``a.b._c.d`` is ``a.b``, the package holding the first private
    component; only modules of exactly that package may import it.
    """
    found = []
    for dotted in _imported_paths(ast.parse(source), package):
        parts = dotted.split(".")
        private = [i for i, part in enumerate(parts) if _is_private(part)]
        if private and ".".join(parts[: private[0]]) != package:
            found.append(dotted)
    return found


def _sources():
    return sorted(p for name in PACKAGES for p in (REPO / name).rglob("*.py"))


def test_the_sources_are_found():
    names = {p.relative_to(REPO).as_posix() for p in _sources()}
    assert {"compact_jax/__init__.py", "compact_jax/compress/__init__.py", "train/trainer.py"} <= names


def test_no_private_module_or_name_is_imported_from_another_package():
    violations = [f"{path.relative_to(REPO)}: {dotted}" for path in _sources()
                  for dotted in private_imports(path.read_text(), _package_of(path))]
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize(
    "source, package, expected",
    [
        ("from compact_jax.compress._fit import fit\n", "compact_jax.compress", []),
        ("from compact_jax.compress._fit import fit\n", "compact_jax.report", ["compact_jax.compress._fit.fit"]),
        ("from compact_jax.compress import _fit\n", "train", ["compact_jax.compress._fit"]),
        ("import compact_jax._x\n", "compact_jax.models", ["compact_jax._x"]),
        ("from compact_jax.fdc3d import _orthogonal as orth\n", "compact_jax.fdc3d", []),
        ("from ._plan import Plan\n", "compact_jax.compress", []),
        ("from .._plan import Plan\n", "compact_jax.compress.sub", ["compact_jax.compress._plan.Plan"]),
        ("from __future__ import annotations\nfrom compact_jax.validate import check_int\n", "train.data", []),
    ],
)
def test_the_rule_itself(source, package, expected):
    assert private_imports(source, package) == expected


def test_compact_jax_top_level_is_small():
    files = sorted(p.name for p in (REPO / "compact_jax").glob("*.py"))
    assert len(files) <= MAX_TOP_LEVEL_FILES, files
