"""compact_jax: compact convolutions for JAX and Flax.

Each method generates a full convolution kernel from a small set of learned
parameters, following one protocol (see :mod:`compact_jax.protocol`).
"""

from compact_jax import arith, dense, layer, protocol
from compact_jax.conv import conv
from compact_jax.protocol import ConvSpec, count_params

__version__ = "0.1.0"

__all__ = [
    "arith",
    "conv",
    "ConvSpec",
    "count_params",
    "dense",
    "layer",
    "protocol",
]
