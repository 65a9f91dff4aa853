"""3D-FilterMap: filters extracted as overlapping windows of one learned 3-D map.

A 3D-FilterMap layer (Yang et al., "3D-FilterMap: A Compact Architecture for
Deep Convolutional Neural Networks") learns one tensor, the *filter map*, of
shape ``(K1*x, K2*y, K3*z)`` (height, width, channels) and generates its
``K = K1*K2*K3`` filters of size ``S1 x S2 x C`` as overlapping sub-blocks of
it. Filter ``(k1, k2, k3)`` starts at map position ``(k1*x, k2*y, k3*z)`` and
spans ``S1 x S2 x C`` elements, wrapping around the map's edges::

    kernel_hwio[r, s, c, k] = filtermap[w1(k1*x + r), w2(k2*y + s), (k3*z + c) % M3]

with ``(M1, M2, M3) = (K1*x, K2*y, K3*z)`` the map shape and ``w1, w2`` the
spatial wrap rule:

* ``wrap="modular"`` (the paper, default): ``w(i) = i mod M``.
* ``wrap="to_one"`` (the authors' PyTorch code): an index past the end
  continues from index 1, not 0: ``w(i) = i`` for ``i < M`` and
  ``w(i) = 1 + (i - M) mod (M - 1)`` for ``i >= M`` (``w(i) = 0`` when
  ``M == 1``). The authors' code appends one copy of row 1 and column 1 to
  the map, which is exactly this rule for an overrun of one element (3x3
  kernels with stride 2); the formula continues it periodically (period
  ``M - 1`` over indices ``1 .. M-1``) for larger kernels, where their
  flattened indexing would leak into the next row. Channels wrap modularly
  under both options, as in the paper and in the authors' code (which
  concatenates two copies of the map along channels).

Filter order: ``k = (k3*K1 + k1)*K2 + k2`` -- channel offset slowest, then
height, then width -- the order of the authors' code, so their trained maps
port by a transpose ``(C, H, W) -> (H, W, C)``.

The generated kernel is one gather with a NumPy index map precomputed from the
(static, hashable) spec. ``gradient="mean"`` applies the paper's Eq. 1: the
gradient of a map element is the *average* of the gradients of its copies,
i.e. the autodiff (``"sum"``) gradient divided by the multiplicity map.

Beyond the paper: :func:`fit`, the closed-form least-squares map for a dense
kernel (the mean of the kernel entries copied from each map element).

Example (Table 1's grid for 64 filters of 3 x 3 x 64: one 8 x 8 x 64 map, 9x
fewer weights):

>>> import jax
>>> from compact_jax import filtermap
>>> spec = filtermap.FilterMapSpec(features=64, in_features=64, kernel_size=(3, 3))
>>> spec.grid, filtermap.num_params(spec), spec.dense_num_params // filtermap.num_params(spec)
((4, 4, 4), 4096, 9)
>>> filtermap.build_kernel(filtermap.init(jax.random.key(0), spec), spec).shape
(3, 3, 64, 64)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from compact_jax.validate import check_choice, check_int_tuple, check_param_dict
from compact_jax.protocol import ConvSpec, Method, check_kernel_shape

__all__ = [
    "METHOD",
    "DEFAULT_GRIDS",
    "FilterMapSpec",
    "init",
    "build_kernel",
    "num_params",
    "param_ratio",
    "multiplicity",
    "index_map",
    "fit",
]

#: Default ``(K1, K2, K3)`` by filter count. All but 16 are the paper's Table 1;
#: 16 = (2, 2, 4) is not in the table and is taken from the authors' code.
DEFAULT_GRIDS: types.MappingProxyType[int, tuple[int, int, int]] = types.MappingProxyType({
    12: (2, 3, 2),
    16: (2, 2, 4),
    32: (4, 4, 2),
    64: (4, 4, 4),
    128: (8, 4, 4),
    256: (8, 8, 4),
    512: (8, 8, 8),
})

WRAPS = ("modular", "to_one")
GRADIENTS = ("mean", "sum")
PARAM_NAME = "filtermap"


@dataclasses.dataclass(frozen=True, kw_only=True)
class FilterMapSpec(ConvSpec):
    """Hyperparameters of a 3D-FilterMap layer (2-D convolutions only).

    Example: the paper's 64 filters of 64x3x3 from a 8x8x64 map (ratio 9)::

        FilterMapSpec(features=64, in_features=64, kernel_size=(3, 3))

    Attributes:
      grid: ``(K1, K2, K3)`` filters along height, width and channels, with
        ``K1*K2*K3 == features``. ``None`` takes :data:`DEFAULT_GRIDS`
        (the paper's Table 1) for the filter count.
      map_strides: ``(x, y, z)``, the sampling strides of the filters in the
        map along height, width and channels. ``None`` means ``(2, 2, C/K3)``
        (the paper: x = y = 2 and a map of exactly ``C = in_features/groups``
        channels), which needs ``K3`` to divide ``C``.
      wrap: ``"modular"`` (paper) or ``"to_one"`` (authors' code); see the
        module docstring for the exact rules.
      gradient: ``"mean"`` (paper's Eq. 1: average over the copies) or
        ``"sum"`` (plain autodiff, what the authors' code trains with).
      allow_larger: accept a map with more elements than the dense kernel it
        replaces (e.g. large ``map_strides``, or a 1x1 kernel with the default
        strides). False by default: such a map is usually a mistake.

    After construction ``grid`` and ``map_strides`` hold the resolved tuples.
    With groups, one map generates all ``features`` filters, each of
    ``in_features/groups`` channels.
    """

    grid: tuple[int, int, int] | None = None
    map_strides: tuple[int, int, int] | None = None
    wrap: str = "modular"
    gradient: str = "mean"
    allow_larger: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if len(self.kernel_size) != 2:
            raise ValueError(
                f"{name}.kernel_size must be 2-D (S1, S2): a 3D-FilterMap generates filters for a "
                f"2-D convolution, got kernel_size={self.kernel_size}"
            )
        check_choice(f"{name}.wrap", self.wrap, WRAPS)
        check_choice(f"{name}.gradient", self.gradient, GRADIENTS)
        grid = self.grid
        if grid is None:
            if self.features not in DEFAULT_GRIDS:
                raise ValueError(
                    f"{name}: no default grid for features={self.features} (defaults exist for "
                    f"{sorted(DEFAULT_GRIDS)}); pass grid=(K1, K2, K3) with K1*K2*K3 == "
                    f"{self.features}"
                )
            grid = DEFAULT_GRIDS[self.features]
        grid = check_int_tuple(f"{name}.grid", grid, ndim=3, minimum=1, broadcast=False)
        if math.prod(grid) != self.features:
            raise ValueError(
                f"{name}.grid={grid} generates K1*K2*K3={math.prod(grid)} filters, but "
                f"features={self.features}"
            )
        strides = self.map_strides
        if strides is None:
            channels = self.in_per_group
            if channels % grid[2]:
                raise ValueError(
                    f"{name}: the default channel stride z = C/K3 needs K3={grid[2]} (grid={grid}) "
                    f"to divide the filter depth C=in_features/feature_group_count={channels}; "
                    f"pass map_strides=(x, y, z) or a grid whose K3 divides {channels} "
                    f"(the authors use grid=(8, 8, 1) for RGB input)"
                )
            strides = (2, 2, channels // grid[2])
        strides = check_int_tuple(f"{name}.map_strides", strides, ndim=3, minimum=1, broadcast=False)
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "map_strides", strides)
        if not isinstance(self.allow_larger, bool):
            raise TypeError(f"{name}.allow_larger must be a bool, got {self.allow_larger!r}")
        if math.prod(self.map_shape) > self.dense_num_params and not self.allow_larger:
            raise ValueError(
                f"{name}: the map {self.map_shape} (grid={grid}, map_strides={strides}) has "
                f"{math.prod(self.map_shape)} elements, more than the {self.dense_num_params} weights of "
                f"the dense kernel {self.kernel_shape}; use smaller map_strides or pass allow_larger=True"
            )

    @property
    def map_shape(self) -> tuple[int, int, int]:
        """``(K1*x, K2*y, K3*z)``: map height, width and channels."""
        return tuple(k * s for k, s in zip(self.grid, self.map_strides))  # type: ignore[return-value]


def _check_spec(spec: Any, where: str) -> None:
    if not isinstance(spec, FilterMapSpec):
        raise TypeError(f"{where}: spec must be a FilterMapSpec, got {type(spec).__name__}")


def _wrap_spatial(index: np.ndarray, size: int, wrap: str) -> np.ndarray:
    """Folds non-negative map indices into ``[0, size)`` by the wrap rule."""
    if wrap == "modular" or size == 1:
        return index % size
    return np.where(index < size, index, 1 + (index - size) % (size - 1))


@functools.lru_cache(maxsize=256)
def _index_map(spec: FilterMapSpec) -> np.ndarray:
    k1_count, k2_count, k3_count = spec.grid
    x, y, z = spec.map_strides
    m1, m2, m3 = spec.map_shape
    s1, s2 = spec.kernel_size
    # Filter k = (k3*K1 + k1)*K2 + k2: C-order flattening of (k3, k1, k2).
    k3, k1, k2 = (a.reshape(-1) for a in np.meshgrid(
        np.arange(k3_count), np.arange(k1_count), np.arange(k2_count), indexing="ij"))
    r = np.arange(s1)[:, None, None, None]
    s = np.arange(s2)[None, :, None, None]
    c = np.arange(spec.in_per_group)[None, None, :, None]
    rows = _wrap_spatial(k1 * x + r, m1, spec.wrap)
    cols = _wrap_spatial(k2 * y + s, m2, spec.wrap)
    chans = (k3 * z + c) % m3
    flat = (rows * m2 + cols) * m3 + chans  # broadcasts to (S1, S2, C, K)
    flat = np.ascontiguousarray(flat, dtype=np.int32)
    flat.setflags(write=False)
    return flat


def index_map(spec: FilterMapSpec) -> np.ndarray:
    """Flat map index read by every kernel entry (cached, read-only).

    Returns:
      int32 ``(S1, S2, C, K)`` (the kernel's HWIO shape); entry ``[r, s, c, k]``
      indexes ``filtermap.reshape(-1)`` (row-major over ``(M1, M2, M3)``).
    """
    _check_spec(spec, "filtermap.index_map")
    return _index_map(spec)


@functools.lru_cache(maxsize=256)
def _multiplicity(spec: FilterMapSpec) -> np.ndarray:
    counts = np.bincount(_index_map(spec).reshape(-1), minlength=math.prod(spec.map_shape))
    counts = counts.reshape(spec.map_shape).astype(np.int32)
    counts.setflags(write=False)
    return counts


def multiplicity(spec: FilterMapSpec) -> np.ndarray:
    """How many kernel entries copy each map element (cached, read-only).

    Returns:
      int32 ``(M1, M2, M3)``; sums to ``spec.dense_num_params``. Zero marks
      map elements no filter reads (possible when a stride exceeds the kernel
      size along that axis).
    """
    _check_spec(spec, "filtermap.multiplicity")
    return _multiplicity(spec)


@functools.lru_cache(maxsize=256)
def _inverse_multiplicity(spec: FilterMapSpec) -> np.ndarray:
    inv = 1.0 / np.maximum(_multiplicity(spec), 1).reshape(-1)
    inv.setflags(write=False)
    return inv


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _average_copies(flat_map: jax.Array, spec: FilterMapSpec) -> jax.Array:
    """Identity whose derivative is ``diag(1 / multiplicity)`` (Eq. 1).

    Placed before the gather, it turns the autodiff gradient of the map (the
    sum over copies) into the mean over copies. Defined through its JVP, so
    forward mode, reverse mode (the transpose), jit and vmap all work.
    """
    return flat_map


@_average_copies.defjvp
def _average_copies_jvp(spec, primals, tangents):
    (flat_map,), (tangent,) = primals, tangents
    scale = jnp.asarray(_inverse_multiplicity(spec), tangent.dtype)
    scale = scale.reshape((1,) * (tangent.ndim - 1) + scale.shape)
    return flat_map, tangent * scale


def _check_map(filtermap: Any, spec: FilterMapSpec, where: str) -> jax.Array:
    shape = getattr(filtermap, "shape", None)
    if shape is None:
        raise TypeError(f"{where}: params[{PARAM_NAME!r}] must be an array, got {type(filtermap).__name__}")
    if tuple(shape[len(shape) - 3 :]) != spec.map_shape:
        raise ValueError(
            f"{where}: params[{PARAM_NAME!r}] must have shape (*batch, {', '.join(map(str, spec.map_shape))}) "
            f"(K1*x, K2*y, K3*z) for grid={spec.grid}, map_strides={spec.map_strides}, got {tuple(shape)}"
        )
    return jnp.asarray(filtermap)


def init(key: jax.Array, spec: FilterMapSpec, *, dtype: Any = jnp.float32) -> dict:
    """Variance-preserving init: map entries ~ N(0, 1/fan_in), fan_in = S1*S2*C.

    Every kernel entry is a copy of one map entry, so each generated filter
    has LeCun-normal statistics per entry, like ``flax.linen.Conv``'s default.
    (The authors' code draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)), a third of
    this variance.)

    Returns:
      ``{"filtermap": (K1*x, K2*y, K3*z)}``.
    """
    _check_spec(spec, "filtermap.init")
    fan_in = math.prod(spec.kernel_size) * spec.in_per_group
    return {PARAM_NAME: jax.random.normal(key, spec.map_shape, dtype) / math.sqrt(fan_in)}


def build_kernel(params: dict, spec: FilterMapSpec, *, precision: Any = None) -> jax.Array:
    """Extracts the ``K`` filters from the map with one gather.

    Args:
      params: ``{"filtermap": (*batch, K1*x, K2*y, K3*z)}``; leading batch
        dims are optional (``vmap`` works as well).
      spec: the layer's :class:`FilterMapSpec`.
      precision: unused (a gather is exact); accepted for the protocol.

    Returns:
      ``kernel_hwio`` of shape ``(*batch, S1, S2, C, K)``.
    """
    del precision
    _check_spec(spec, "filtermap.build_kernel")
    check_param_dict(params, {PARAM_NAME: spec.map_shape}, where="filtermap.build_kernel")
    filtermap = _check_map(params[PARAM_NAME], spec, "filtermap.build_kernel")
    flat = filtermap.reshape(*filtermap.shape[:-3], -1)
    if spec.gradient == "mean":
        flat = _average_copies(flat, spec)
    return jnp.take(flat, jnp.asarray(_index_map(spec)), axis=-1)


def num_params(spec: FilterMapSpec) -> int:
    """Map size ``K1*x * K2*y * K3*z`` (e.g. 8*8*64 = 4096 for 64 filters of 64x3x3)."""
    _check_spec(spec, "filtermap.num_params")
    return math.prod(spec.map_shape)


def param_ratio(spec: FilterMapSpec) -> float:
    """Dense weights over map weights, ``S1*S2*C / (x*y*z)``.

    With the default channel stride (``K3*z = C``) this is the paper's
    ``ParamRatio = S1*S2*K3 / (x*y)`` (9 for 3x3 filters on a (4, 4, 4) grid).
    """
    return spec.dense_num_params / num_params(spec)


def fit(kernel: jax.Array, spec: FilterMapSpec) -> dict:
    """Least-squares filter map for a dense kernel.

    Each kernel entry copies exactly one map element, so the problem
    ``min_p ||build_kernel(p) - W||`` separates per map element and its
    solution is the mean of the kernel entries copied from that element
    (a scatter-add divided by the multiplicity). Elements no filter reads do
    not affect the kernel; they get 0, the minimum-norm choice. Hence
    ``fit(build_kernel(p))`` returns ``p`` on every read element.

    Args:
      kernel: ``kernel_hwio`` of shape ``spec.kernel_shape = (S1, S2, C, K)``.
      spec: the target :class:`FilterMapSpec`.

    Returns:
      ``{"filtermap": (K1*x, K2*y, K3*z)}`` in the kernel's (floating) dtype.
    """
    _check_spec(spec, "filtermap.fit")
    check_kernel_shape(kernel, spec, where="filtermap.fit")
    kernel = jnp.asarray(kernel)
    if not jnp.issubdtype(kernel.dtype, jnp.inexact):
        kernel = kernel.astype(jnp.float32)
    size = math.prod(spec.map_shape)
    sums = jnp.zeros((size,), kernel.dtype).at[_index_map(spec).reshape(-1)].add(kernel.reshape(-1))
    mean = sums * jnp.asarray(_inverse_multiplicity(spec), kernel.dtype)
    return {PARAM_NAME: mean.reshape(spec.map_shape)}


def _describe(spec: FilterMapSpec) -> str:
    return f"grid {'x'.join(map(str, spec.grid))}, map {'x'.join(map(str, spec.map_shape))}"


#: 3D-FilterMap's record (see :class:`compact_jax.protocol.Method`).
METHOD = Method(
    name="filtermap", spec_cls=FilterMapSpec, init=init, build_kernel=build_kernel, num_params=num_params,
    fit=fit, describe=_describe, description="3D-FilterMap: filters cut from overlapping windows of one 3-D map",
)
