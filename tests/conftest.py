"""Strict JAX settings for every test.

* Implicit rank promotion is an error, so broadcasting bugs surface here.
* Non-partitionable threefry: the tests run on one host device, and compiling
  a random sampler for each new shape is several times cheaper this way.
"""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_threefry_partitionable", False)
