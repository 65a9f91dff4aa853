"""Shared fixtures (the strict JAX settings are in the repository's top-level conftest.py)."""

import jax
import pytest


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory):
    """A persistent XLA compilation cache for one test module (``pytest.mark.usefixtures``).

    The training tests run many short programs of a few shapes: with the
    cache, a program repeated in a later run skips its compilation.
    """
    settings = {
        "jax_compilation_cache_dir": str(tmp_path_factory.mktemp("xla_cache")),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    previous = {key: getattr(jax.config, key) for key in settings}
    for key, value in settings.items():
        jax.config.update(key, value)
    yield
    for key, value in previous.items():
        jax.config.update(key, value)
