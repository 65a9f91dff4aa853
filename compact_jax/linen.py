"""Linen modules: drop-in replacements for ``flax.linen.Conv``.

Every module takes ``flax.linen.Conv``'s fields (``features, kernel_size,
strides, padding, input_dilation, kernel_dilation, feature_group_count,
use_bias, dtype, param_dtype, precision, bias_init``) plus its method's own,
keyword-only. A model written as ``conv: ModuleDef = nn.Conv`` therefore takes
``functools.partial(FilterMapConv, grid=(4, 4, 4))`` unchanged.

Modules only hold parameters; the arithmetic is the method's pure functions,
applied through :func:`compact_jax.layer.layer_apply`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from compact_jax import dense
from compact_jax import basis as _basis
from compact_jax import filtermap as _filtermap
from compact_jax import series as _series
from compact_jax import fdc3d as _fdc3d
from compact_jax.arith import PaddingLike
from compact_jax.layer import canonical_kernel_size, layer_apply
from compact_jax.protocol import ConvSpec

__all__ = [
    "CompactConv",
    "DenseConv",
    "FilterMapConv",
    "CosConv",
    "ChebConv",
    "SharedBasis",
    "BasisConv",
    "FrequencyConv3D",
]


class CompactConv(nn.Module):
    """Base class of the compact convolutions (not used directly).

    Subclasses set the class attribute ``method`` (a method module), declare
    their own fields and implement :meth:`spec`. They may override
    :meth:`compact_params` to create parameters differently (for example, to
    take a basis from a shared module).
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: None | int | Sequence[int] = 1
    padding: PaddingLike = "SAME"
    input_dilation: None | int | Sequence[int] = 1
    kernel_dilation: None | int | Sequence[int] = 1
    feature_group_count: int = 1
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    bias_init: Any = nn.initializers.zeros_init()

    method = None  # type: ModuleType | None

    def spec(self, in_features: int) -> ConvSpec:
        """The method's spec for this layer given the input channel count."""
        raise NotImplementedError

    def conv_shape(self, in_features: int) -> dict:
        """The :class:`ConvSpec` fields shared by every method's spec."""
        return dict(
            features=self.features,
            in_features=in_features,
            kernel_size=canonical_kernel_size(self.kernel_size, where=self._where()),
            feature_group_count=self.feature_group_count,
        )

    def compact_params(self, spec: ConvSpec) -> dict:
        """Declares one Linen param per leaf of ``method.init``."""
        shapes = _init_shapes(self.method, spec, self.param_dtype)
        return {
            name: self.param(name, _leaf_init(self.method, spec, self.param_dtype, name))
            for name in shapes
        }

    def _where(self) -> str:
        return f"{type(self).__name__}({self.name or ''})"

    @nn.compact
    def __call__(self, inputs: Any) -> Any:
        """``(*batch, *spatial, C_in) -> (*batch, *spatial_out, features)``."""
        if not hasattr(inputs, "shape") or not inputs.shape:
            got = f"a {type(inputs).__name__}" if not hasattr(inputs, "shape") else f"shape {inputs.shape}"
            raise TypeError(f"{self._where()}: input must be an array with a channel axis, got {got}")
        spec = self.spec(int(inputs.shape[-1]))
        params = self.compact_params(spec)
        bias = (
            self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        return layer_apply(
            self.method,
            params,
            inputs,
            spec,
            bias=bias,
            strides=self.strides,
            padding=self.padding,
            input_dilation=self.input_dilation,
            kernel_dilation=self.kernel_dilation,
            precision=self.precision,
            dtype=self.dtype,
            where=self._where(),
        )


def _init_shapes(method: ModuleType, spec: ConvSpec, dtype: Any) -> dict:
    return jax.eval_shape(lambda k: method.init(k, spec, dtype=dtype), jax.random.key(0))


def _leaf_init(method: ModuleType, spec: ConvSpec, dtype: Any, name: str):
    def init(key):
        return method.init(key, spec, dtype=dtype)[name]

    return init


class DenseConv(CompactConv):
    """An ordinary convolution written against the method protocol."""

    method = dense

    def spec(self, in_features: int) -> dense.DenseSpec:
        return dense.DenseSpec(**self.conv_shape(in_features))


# --- 3D-FilterMap -------------------------------------------------------------------------------

class FilterMapConv(CompactConv):
    """3D-FilterMap convolution: ``K`` filters cut from one learned map.

    Parameters: ``filtermap`` ``(K1*x, K2*y, K3*z)`` and ``bias`` ``(features,)``.
    See :class:`compact_jax.filtermap.FilterMapSpec` for the fields below.

    Attributes:
      grid: ``(K1, K2, K3)`` with product ``features``; None: the paper's Table 1.
      map_strides: ``(x, y, z)``; None: ``(2, 2, C/K3)``.
      wrap: ``"modular"`` (paper) or ``"to_one"`` (authors' code).
      gradient: ``"mean"`` (paper's Eq. 1) or ``"sum"`` (plain autodiff).
      allow_larger: accept a map larger than the dense kernel (see the spec).
    """

    grid: tuple[int, int, int] | None = None
    map_strides: tuple[int, int, int] | None = None
    wrap: str = "modular"
    gradient: str = "mean"
    allow_larger: bool = False

    method = _filtermap

    def spec(self, in_features: int) -> _filtermap.FilterMapSpec:
        return _filtermap.FilterMapSpec(
            **self.conv_shape(in_features),
            grid=self.grid,
            map_strides=self.map_strides,
            wrap=self.wrap,
            gradient=self.gradient,
            allow_larger=self.allow_larger,
        )


# --- ApproxConv series kernels (CosConv, ChebConv) ----------------------------------------------

class _SeriesConv(CompactConv):
    """Shared body of :class:`CosConv` and :class:`ChebConv` (not used directly).

    Parameters: ``coeffs`` ``(N_h, N_w, C_in/groups, features)`` and ``bias``.
    See :class:`compact_jax.series.SeriesSpec` for the fields below.

    Attributes:
      harmonics: ``N`` or ``(N_h, N_w)``, at most the kernel size per axis;
        None: the kernel size (exact, no compression).
      points: sample points; None: the family default.
      interval: ``(low, high)`` of the points; None: the family default.
      coeff_init: ``"paper"``, ``"normal"``, ``"dc_mean"`` or ``"fit"``.
    """

    harmonics: None | int | tuple[int, int] = None
    points: str | None = None
    interval: tuple[float, float] | None = None
    coeff_init: str = "paper"

    method = _series
    family = ""

    def spec(self, in_features: int) -> _series.SeriesSpec:
        return _series.SeriesSpec(
            **self.conv_shape(in_features),
            family=self.family,
            harmonics=self.harmonics,
            points=self.points,
            interval=self.interval,
            coeff_init=self.coeff_init,
        )


class CosConv(_SeriesConv):
    """ApproxConv CosConv: filters are 2-D cosine series ``sum A_ij cos(i x) cos(j y)``.

    Sampled at equispaced points on ``interval`` (default ``[0.2 pi, 0.8 pi]``);
    ``functools.partial(CosConv, harmonics=2)`` drops into a model taking
    ``conv: ModuleDef = nn.Conv``. Fields as in :class:`_SeriesConv`.
    """

    family = "cosine"


class ChebConv(_SeriesConv):
    """ApproxConv ChebConv: filters are 2-D Chebyshev series ``sum A_ij T_i(x) T_j(y)``.

    Sampled at Chebyshev-Gauss-Lobatto points (``points="lobatto"``, the
    paper) or equispaced (``"equispaced"``, the authors' code) on ``[-1, 1]``.
    Fields as in :class:`_SeriesConv`.
    """

    family = "chebyshev"


# --- Learning Filter Basis ----------------------------------------------------------------------

class SharedBasis(nn.Module):
    """One filter basis used by several :class:`BasisConv` layers (basis sharing, Sec. 4.2).

    Create it once in the parent and pass it as ``basis=`` to each layer; the
    parameter tree then holds one ``basis`` ``(kh, kw, in_features,
    num_basis)`` under this module's name. Layers whose split size ``p`` is
    below ``in_features`` use its leading (or trailing) ``p`` channels.

    Attributes:
      num_basis: ``m``, basis filters.
      in_features: channels ``P`` of each basis filter.
      kernel_size: ``(kh, kw)`` (an int means square).
      param_dtype: dtype of the parameter.
    """

    num_basis: int
    in_features: int
    kernel_size: int | Sequence[int]
    param_dtype: Any = jnp.float32

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(kh, kw, in_features, num_basis)``, validated."""
        return _basis.basis_shape(
            num_basis=self.num_basis,
            in_features=self.in_features,
            kernel_size=self.kernel_size,
            where=f"SharedBasis({self.name or ''})",
        )

    @nn.compact
    def __call__(self) -> jax.Array:
        """Returns the basis ``(kh, kw, in_features, num_basis)``."""
        shape = self.shape
        return self.param("basis", lambda key: _basis.init_basis(key, shape, self.param_dtype))


class BasisConv(CompactConv):
    """Learning Filter Basis convolution (2-D), a drop-in for ``flax.linen.Conv``.

    Parameters: ``basis`` ``(kh, kw, p, num_basis)`` (absent with a shared
    ``basis=``), ``coef`` ``(kch, kcw, splits * num_basis, features)``,
    optional ``basis_bias`` ``(num_basis,)`` and ``bias`` ``(features,)``.
    See :class:`compact_jax.basis.BasisSpec` for the fields below.

    Attributes:
      num_basis: ``m``; None: the shared basis's.
      splits: ``s``, splits of the input channels.
      basis_bias: per-layer bias of the basis conv, shared by the splits.
      coef_kernel_size: kernel of the coefficient conv (1 by default).
      path: ``"auto"``, ``"reconstruct"`` or ``"decomposed"``.
      basis: a :class:`SharedBasis` to use instead of an own basis.
      basis_slice: ``"leading"`` or ``"trailing"`` channels of a wider basis.
      allow_larger: accept more weights than the dense conv (see the spec).
    """

    num_basis: int | None = None
    splits: int = 1
    basis_bias: bool = False
    coef_kernel_size: int | Sequence[int] = 1
    path: str = "auto"
    basis: SharedBasis | None = None
    basis_slice: str = "leading"
    allow_larger: bool = False

    method = _basis

    def spec(self, in_features: int) -> _basis.BasisSpec:
        shape = self.conv_shape(in_features)
        num_basis, basis_in_features = self.num_basis, None
        if self.basis is not None:
            if not isinstance(self.basis, SharedBasis):
                raise TypeError(f"{self._where()}: basis must be a SharedBasis, got {type(self.basis).__name__}")
            num_basis, basis_in_features = _basis.shared_basis_fields(
                self.basis.shape, num_basis=num_basis, kernel_size=shape["kernel_size"], where=self._where()
            )
        if num_basis is None:
            raise ValueError(f"{self._where()}: num_basis is required without a shared basis")
        return _basis.BasisSpec(
            **shape,
            num_basis=num_basis,
            splits=self.splits,
            basis_bias=self.basis_bias,
            coef_kernel_size=self.coef_kernel_size,
            path=self.path,
            basis_in_features=basis_in_features,
            basis_slice=self.basis_slice,
            allow_larger=self.allow_larger,
        )

    def compact_params(self, spec: _basis.BasisSpec) -> dict:
        dtype = self.param_dtype
        if self.basis is None:
            basis = self.param("basis", lambda key: _basis.init_basis(key, spec.basis_shape, dtype))
        else:
            basis = self.basis()
        params = {"basis": basis, "coef": self.param("coef", lambda key: _basis.init_coef(key, spec, dtype))}
        if spec.basis_bias:
            params["basis_bias"] = self.param(
                "basis_bias", nn.initializers.zeros_init(), (spec.num_basis,), dtype
            )
        return params


# --- FDC3D frequency-domain 3-D convolution -----------------------------------------------------

class FrequencyConv3D(CompactConv):
    """FDC3D: a 3-D conv stored as temporal-frequency coefficients of an orthogonal ``S``.

    Parameters: ``coeffs`` ``(t', k_h, k_w, c', N)``, ``beta`` ``(c',)``, the
    learned transform's ``householder`` or ``skew`` ``(t, t)``, and ``bias``.
    ``kernel_size`` is ``(t, k_h, k_w)``, time first. The forward pass is
    :func:`compact_jax.temporal.apply` (the frequency path when rows are
    pruned). See :class:`compact_jax.temporal.FrequencySpec` for the fields.

    Attributes:
      transform: ``"learned_householder"`` (default), ``"learned_cayley"``,
        ``"learned_expm"``, ``"dct"`` or ``"none"``.
      transform_init: ``"dct"`` or ``"identity"`` for learned transforms.
      kept_rows: kept frequency rows (``None``: all ``t``); set from
        :func:`compact_jax.temporal.prune`'s returned spec.
      kept_channels: kept input channels (``None``: all).
      importance: ``"group"`` or ``"summed"`` row importance.
    """

    transform: str = "learned_householder"
    transform_init: str | None = None
    kept_rows: tuple[int, ...] | None = None
    kept_channels: tuple[int, ...] | None = None
    importance: str = "group"

    method = _fdc3d

    def spec(self, in_features: int) -> _fdc3d.FrequencySpec:
        return _fdc3d.FrequencySpec(
            **self.conv_shape(in_features),
            transform=self.transform,
            transform_init=self.transform_init,
            kept_rows=self.kept_rows,
            kept_channels=self.kept_channels,
            importance=self.importance,
        )
