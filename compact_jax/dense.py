"""Dense baseline: the protocol with the kernel itself as the compact parameters.

Exists so that code written against the method protocol (modules, compression
policies, reports, benchmarks) treats the uncompressed layer like any other.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from compact_jax.protocol import ConvSpec, Method, check_kernel_shape
from compact_jax.validate import check_param_dict

__all__ = ["METHOD", "DenseSpec", "init", "build_kernel", "num_params", "param_ratio", "fit"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DenseSpec(ConvSpec):
    """An ordinary convolution: ``DenseSpec(features=64, in_features=64, kernel_size=(3, 3))``."""


def _check_spec(spec: Any, where: str) -> None:
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"{where}: spec must be a DenseSpec, got {type(spec).__name__}")


def init(key: jax.Array, spec: DenseSpec, *, dtype: Any = jnp.float32) -> dict:
    """LeCun-normal kernel (``flax.linen.Conv``'s default), fan-in = prod(k) * C_in/groups."""
    _check_spec(spec, "dense.init")
    fan_in = math.prod(spec.kernel_size) * spec.in_per_group
    kernel = jax.random.normal(key, spec.kernel_shape, dtype) / math.sqrt(fan_in)
    return {"kernel": kernel}


def build_kernel(params: dict, spec: DenseSpec, *, precision: Any = None) -> jax.Array:
    """Returns ``params["kernel"]``; ``(*kernel_size, C_in/groups, C_out)``."""
    del precision
    _check_spec(spec, "dense.build_kernel")
    check_param_dict(params, {"kernel": spec.kernel_shape}, where="dense.build_kernel")
    return params["kernel"]


def num_params(spec: DenseSpec) -> int:
    _check_spec(spec, "dense.num_params")
    return spec.dense_num_params


def param_ratio(spec: DenseSpec) -> float:
    """Dense weights over compact weights: 1 for the baseline."""
    return spec.dense_num_params / num_params(spec)


def fit(kernel: jax.Array, spec: DenseSpec) -> dict:
    _check_spec(spec, "dense.fit")
    check_kernel_shape(kernel, spec, where="dense.fit")
    return {"kernel": jnp.asarray(kernel)}


#: The dense baseline's record (see :class:`compact_jax.protocol.Method`).
METHOD = Method(
    name="dense", spec_cls=DenseSpec, init=init, build_kernel=build_kernel, num_params=num_params, fit=fit,
    description="an ordinary convolution (the baseline)",
)
