"""Benchmarks: compact layers against dense ones, timed in the same run (``python -m compact_jax.bench``)."""
