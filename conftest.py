"""Strict JAX settings for every test and docstring example (``tests/`` and ``compact_jax/``).

* Implicit rank promotion is an error, so broadcasting bugs surface here.
* Non-partitionable threefry: the tests run on one host device, and compiling
  a random sampler for each new shape is several times cheaper this way.

The command-line entry points (``__main__`` modules) are not imported for
their docstring examples.
"""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_threefry_partitionable", False)

collect_ignore_glob = ["compact_jax/*/__main__.py"]
