"""compact_jax: compact convolutions for JAX and Flax.

Each method generates a full convolution kernel from a small set of learned
parameters and follows one protocol (:mod:`compact_jax.protocol`):

* :mod:`compact_jax.filtermap` -- 3D-FilterMap (overlapping windows of a 3-D map)
* :mod:`compact_jax.basis`     -- Learning Filter Basis (split-wise shared bases)
* :mod:`compact_jax.series`    -- ApproxConv (cosine / Chebyshev series kernels)
* :mod:`compact_jax.fdc3d`     -- FDC3D (frequency-domain compact 3-D convolutions;
  also importable under its former name :mod:`compact_jax.temporal`)
* :mod:`compact_jax.dense`     -- the dense baseline

Flax modules are in :mod:`compact_jax.linen` and :mod:`compact_jax.nnx`, the
papers' networks in :mod:`compact_jax.models`, fake quantisers in
:mod:`compact_jax.quant`, compression policies (dense -> compact and back) in
:mod:`compact_jax.compress` and paper-style tables in :mod:`compact_jax.report`.
"""

from compact_jax import (
    arith,
    basis,
    compress,
    dense,
    fdc3d,
    filtermap,
    layer,
    models,
    protocol,
    quant,
    registry,
    report,
    series,
    temporal,
)
from compact_jax.basis import BasisSpec
from compact_jax.conv import conv
from compact_jax.dense import DenseSpec
from compact_jax.filtermap import FilterMapSpec
from compact_jax.protocol import ConvSpec, count_params
from compact_jax.quant import Quantizer
from compact_jax.registry import METHODS, get_method, register_method, unregister_method
from compact_jax.series import SeriesSpec
from compact_jax.fdc3d import FrequencySpec

__version__ = "0.1.0"

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
    "compress",
    "conv",
    "count_params",
    "get_method",
    "dense",
    "fdc3d",
    "filtermap",
    "layer",
    "models",
    "protocol",
    "quant",
    "register_method",
    "registry",
    "report",
    "series",
    "temporal",
    "unregister_method",
]
