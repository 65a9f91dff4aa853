"""Strict JAX settings for every test: implicit rank promotion is an error."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
