"""compact_jax: compact convolutions for JAX and Flax.

Each method generates a full convolution kernel from a small set of learned
parameters and follows one protocol (:mod:`compact_jax.protocol`):

* :mod:`compact_jax.filtermap` -- 3D-FilterMap (overlapping windows of a 3-D map)
* :mod:`compact_jax.basis`     -- Learning Filter Basis (split-wise shared bases)
* :mod:`compact_jax.series`    -- ApproxConv (cosine / Chebyshev series kernels)
* :mod:`compact_jax.temporal`  -- FDC3D (frequency-domain compact 3-D convolutions)
* :mod:`compact_jax.dense`     -- the dense baseline

Flax modules are in :mod:`compact_jax.linen` and :mod:`compact_jax.nnx`, the
papers' networks in :mod:`compact_jax.models`, fake quantisers in
:mod:`compact_jax.quant`.
"""

from compact_jax import (
    arith,
    basis,
    dense,
    filtermap,
    layer,
    protocol,
    quant,
    series,
    temporal,
)
from compact_jax.basis import BasisSpec
from compact_jax.conv import conv
from compact_jax.dense import DenseSpec
from compact_jax.filtermap import FilterMapSpec
from compact_jax.protocol import ConvSpec, count_params
from compact_jax.quant import Quantizer
from compact_jax.series import SeriesSpec
from compact_jax.temporal import FrequencySpec

__version__ = "0.1.0"

#: The method modules by name, each following :mod:`compact_jax.protocol`.
METHODS = {
    "dense": dense,
    "filtermap": filtermap,
    "basis": basis,
    "series": series,
    "temporal": temporal,
}

__all__ = [
    "METHODS",
    "BasisSpec",
    "ConvSpec",
    "DenseSpec",
    "FilterMapSpec",
    "FrequencySpec",
    "Quantizer",
    "SeriesSpec",
    "arith",
    "basis",
    "conv",
    "count_params",
    "dense",
    "filtermap",
    "layer",
    "protocol",
    "quant",
    "series",
    "temporal",
]
