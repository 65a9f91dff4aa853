"""Strict JAX settings for every test, and shared fixtures.

* Implicit rank promotion is an error, so broadcasting bugs surface here.
* Non-partitionable threefry: the tests run on one host device, and compiling
  a random sampler for each new shape is several times cheaper this way.
"""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_threefry_partitionable", False)


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
