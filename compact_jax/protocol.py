"""The method protocol every compact convolution follows.

A *method* is a module exposing five names (and optionally a sixth)::

    XSpec                         frozen, validated dataclass of hyperparameters
    init(key, spec, *, dtype)     -> params, a dict pytree of arrays
    build_kernel(params, spec, *, precision=None)
                                  -> full kernel (*kernel_size, C_in/groups, C_out)
    num_params(spec)              -> int, learned values (no bias)
    fit(kernel, spec)             -> params closest to a dense kernel
    apply(params, x, spec, **conv_kwargs)   optional direct path

``build_kernel`` is pure and jit/vmap/grad-safe; ``apply`` (where present)
returns the same numbers as ``conv(x, build_kernel(params, spec))`` through a
cheaper route. Every spec derives from :class:`ConvSpec`, which carries and
validates the shape of the dense convolution the method stands in for.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol, runtime_checkable

import jax

from compact_jax.validate import check_int_tuple, check_positive_int

__all__ = ["ConvSpec", "Method", "check_kernel_shape", "count_params"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvSpec:
    """Shape of the dense convolution a compact method generates a kernel for.

    Attributes:
      features: output channels ``C_out``.
      in_features: input channels ``C_in``.
      kernel_size: spatial kernel size, one int per spatial dim (an int means
        a square 2-D kernel).
      feature_group_count: convolution groups; the kernel has
        ``C_in / groups`` input channels.
    """

    features: int
    in_features: int
    kernel_size: tuple[int, ...]
    feature_group_count: int = 1

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_positive_int(f"{name}.features", self.features)
        check_positive_int(f"{name}.in_features", self.in_features)
        ks = self.kernel_size
        if isinstance(ks, int) and not isinstance(ks, bool):
            ks = (ks, ks)
        ks = check_int_tuple(f"{name}.kernel_size", ks, minimum=1, broadcast=False)
        if not 1 <= len(ks) <= 3:
            raise ValueError(f"{name}.kernel_size must have 1 to 3 entries, got {ks}")
        object.__setattr__(self, "kernel_size", ks)
        groups = check_positive_int(f"{name}.feature_group_count", self.feature_group_count)
        if self.in_features % groups or self.features % groups:
            raise ValueError(
                f"{name}: in_features ({self.in_features}) and features ({self.features}) must "
                f"both be divisible by feature_group_count ({groups})"
            )

    @property
    def num_spatial(self) -> int:
        return len(self.kernel_size)

    @property
    def in_per_group(self) -> int:
        """Input channels seen by each filter, ``C_in / groups``."""
        return self.in_features // self.feature_group_count

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """Shape of the full kernel, ``(*kernel_size, C_in / groups, C_out)``."""
        return (*self.kernel_size, self.in_per_group, self.features)

    @property
    def dense_num_params(self) -> int:
        """Weights of the equivalent dense convolution (no bias)."""
        return math.prod(self.kernel_shape)


@runtime_checkable
class Method(Protocol):
    """Structural type of a method module (see the module docstring)."""

    def init(self, key: jax.Array, spec: Any, *, dtype: Any = ...) -> dict: ...

    def build_kernel(self, params: dict, spec: Any, *, precision: Any = None) -> jax.Array: ...

    def num_params(self, spec: Any) -> int: ...

    def fit(self, kernel: jax.Array, spec: Any) -> dict: ...


def check_kernel_shape(kernel: Any, spec: ConvSpec, *, where: str) -> None:
    """Raises unless ``kernel`` has ``spec.kernel_shape``."""
    shape = getattr(kernel, "shape", None)
    if shape is None:
        raise TypeError(f"{where}: kernel must be an array, got {type(kernel).__name__}")
    if tuple(shape) != spec.kernel_shape:
        raise ValueError(
            f"{where}: kernel must have shape {spec.kernel_shape} (*kernel_size, C_in/groups, "
            f"C_out) for {spec}, got {tuple(shape)}"
        )


def count_params(params: Any) -> int:
    """Number of scalar values in a parameter pytree."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))
