"""NNX twins of :mod:`compact_jax.linen`, with ``flax.nnx.Conv``'s signature.

``DenseConv(in_features, out_features, kernel_size, strides=1, *, padding=...,
rngs=...)`` plus each method's own keyword-only fields. Parameter names equal
the Linen module's, so copying a Linen ``params`` dict into an NNX module (see
:func:`load_linen_params`) gives identical outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import jax.numpy as jnp
from flax import nnx

from compact_jax import dense
from compact_jax import basis as _basis
from compact_jax import filtermap as _filtermap
from compact_jax import series as _series
from compact_jax import fdc3d as _fdc3d
from compact_jax.arith import PaddingLike
from compact_jax.layer import canonical_kernel_size, layer_apply
from compact_jax.protocol import ConvSpec
from compact_jax.validate import check_array

__all__ = [
    "CompactConv",
    "DenseConv",
    "FilterMapConv",
    "CosConv",
    "ChebConv",
    "SharedBasis",
    "BasisConv",
    "FrequencyConv3D",
    "load_linen_params",
]


class CompactConv(nnx.Module):
    """Base class of the NNX compact convolutions (not used directly).

    Subclasses set ``method``, build their spec from the shared conv shape plus
    their own fields and call ``super().__init__(..., spec=spec)``. They may
    override :meth:`create_params` (e.g. to reference a shared basis).
    """

    method: ModuleType | None = None

    def __init__(
        self,
        *,
        spec: ConvSpec,
        strides: None | int | Sequence[int] = 1,
        padding: PaddingLike = "SAME",
        input_dilation: None | int | Sequence[int] = 1,
        kernel_dilation: None | int | Sequence[int] = 1,
        use_bias: bool = True,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        bias_init: Any = nnx.initializers.zeros_init(),
        rngs: nnx.Rngs,
    ):
        self.spec = spec
        self.strides = strides
        self.padding = padding
        self.input_dilation = input_dilation
        self.kernel_dilation = kernel_dilation
        self.dtype = dtype
        self.precision = precision
        self.param_names = tuple(self.create_params(spec, param_dtype=param_dtype, rngs=rngs))
        self.bias = (
            nnx.Param(bias_init(rngs.params(), (spec.features,), param_dtype)) if use_bias else None
        )

    @staticmethod
    def conv_shape(in_features, out_features, kernel_size, feature_group_count) -> dict:
        return dict(
            features=out_features,
            in_features=in_features,
            kernel_size=canonical_kernel_size(kernel_size, where="nnx conv"),
            feature_group_count=feature_group_count,
        )

    def create_params(self, spec: ConvSpec, *, param_dtype: Any, rngs: nnx.Rngs) -> list[str]:
        """Creates one ``nnx.Param`` attribute per leaf of ``method.init``."""
        values = self.method.init(rngs.params(), spec, dtype=param_dtype)
        for name, value in values.items():
            setattr(self, name, nnx.Param(value))
        return list(values)

    def compact_params(self) -> dict:
        return {name: getattr(self, name)[...] for name in self.param_names}

    def __call__(self, inputs: Any) -> Any:
        return layer_apply(
            self.method,
            self.compact_params(),
            inputs,
            self.spec,
            bias=None if self.bias is None else self.bias[...],
            strides=self.strides,
            padding=self.padding,
            input_dilation=self.input_dilation,
            kernel_dilation=self.kernel_dilation,
            precision=self.precision,
            dtype=self.dtype,
            where=type(self).__name__,
        )


class DenseConv(CompactConv):
    """An ordinary convolution written against the method protocol."""

    method = dense

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: None | int | Sequence[int] = 1,
        *,
        feature_group_count: int = 1,
        rngs: nnx.Rngs,
        **conv_kwargs: Any,
    ):
        spec = dense.DenseSpec(
            **self.conv_shape(in_features, out_features, kernel_size, feature_group_count)
        )
        super().__init__(spec=spec, strides=strides, rngs=rngs, **conv_kwargs)


def load_linen_params(module: CompactConv, params: dict) -> None:
    """Copies a Linen module's ``params`` collection into an NNX twin in place.

    Raises:
      TypeError: ``params`` is not a dict, or a value is not an array.
      ValueError: a parameter is missing (nothing is copied then), unknown,
        or of the wrong shape.
    """
    expected = list(module.param_names) + (["bias"] if module.bias is not None else [])
    if not isinstance(params, Mapping):
        raise TypeError(f"load_linen_params: params must be a dict of arrays {expected}, got {type(params).__name__}")
    missing = [name for name in expected if name not in params]
    if missing:
        raise ValueError(
            f"load_linen_params: params lack {missing} for {type(module).__name__} (it needs "
            f"{expected}), got {sorted(map(str, params))}; nothing was copied"
        )
    for name, value in params.items():
        variable = getattr(module, name, None)
        if not isinstance(variable, nnx.Variable):
            raise ValueError(
                f"load_linen_params: {type(module).__name__} has no parameter {name!r}; it has {expected}"
            )
        check_array(f"load_linen_params: params[{name!r}]", value)
        if tuple(variable[...].shape) != tuple(value.shape):
            raise ValueError(
                f"load_linen_params: parameter {name!r} has shape {tuple(variable[...].shape)}, "
                f"got {tuple(value.shape)}"
            )
    for name, value in params.items():
        getattr(module, name)[...] = value


# --- 3D-FilterMap -------------------------------------------------------------------------------

class FilterMapConv(CompactConv):
    """NNX twin of :class:`compact_jax.linen.FilterMapConv` (parameter ``filtermap``)."""

    method = _filtermap

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: None | int | Sequence[int] = 1,
        *,
        grid: tuple[int, int, int] | None = None,
        map_strides: tuple[int, int, int] | None = None,
        wrap: str = "modular",
        gradient: str = "mean",
        allow_larger: bool = False,
        feature_group_count: int = 1,
        rngs: nnx.Rngs,
        **conv_kwargs: Any,
    ):
        spec = _filtermap.FilterMapSpec(
            **self.conv_shape(in_features, out_features, kernel_size, feature_group_count),
            grid=grid,
            map_strides=map_strides,
            wrap=wrap,
            gradient=gradient,
            allow_larger=allow_larger,
        )
        super().__init__(spec=spec, strides=strides, rngs=rngs, **conv_kwargs)


# --- ApproxConv series kernels (CosConv, ChebConv) ----------------------------------------------

class _SeriesConv(CompactConv):
    """Shared body of the NNX :class:`CosConv` and :class:`ChebConv` (parameter ``coeffs``)."""

    method = _series
    family = ""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: None | int | Sequence[int] = 1,
        *,
        harmonics: None | int | tuple[int, int] = None,
        points: str | None = None,
        interval: tuple[float, float] | None = None,
        coeff_init: str = "paper",
        feature_group_count: int = 1,
        rngs: nnx.Rngs,
        **conv_kwargs: Any,
    ):
        spec = _series.SeriesSpec(
            **self.conv_shape(in_features, out_features, kernel_size, feature_group_count),
            family=self.family,
            harmonics=harmonics,
            points=points,
            interval=interval,
            coeff_init=coeff_init,
        )
        super().__init__(spec=spec, strides=strides, rngs=rngs, **conv_kwargs)


class CosConv(_SeriesConv):
    """NNX twin of :class:`compact_jax.linen.CosConv` (cosine series kernel)."""

    family = "cosine"


class ChebConv(_SeriesConv):
    """NNX twin of :class:`compact_jax.linen.ChebConv` (Chebyshev series kernel)."""

    family = "chebyshev"


# --- Learning Filter Basis ----------------------------------------------------------------------

class SharedBasis(nnx.Module):
    """NNX twin of :class:`compact_jax.linen.SharedBasis`: one basis for several layers.

    Pass the same instance as ``basis=`` to several :class:`BasisConv`; NNX
    keeps one ``nnx.Param`` ``basis`` ``(kh, kw, in_features, num_basis)``.
    """

    def __init__(
        self,
        in_features: int,
        num_basis: int,
        kernel_size: int | Sequence[int],
        *,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.shape = _basis.basis_shape(
            num_basis=num_basis, in_features=in_features, kernel_size=kernel_size, where="SharedBasis"
        )
        self.basis = nnx.Param(_basis.init_basis(rngs.params(), self.shape, param_dtype))


class BasisConv(CompactConv):
    """NNX twin of :class:`compact_jax.linen.BasisConv` (``basis``, ``coef``, ``basis_bias``)."""

    method = _basis

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: None | int | Sequence[int] = 1,
        *,
        num_basis: int | None = None,
        splits: int = 1,
        basis_bias: bool = False,
        coef_kernel_size: int | Sequence[int] = 1,
        path: str = "auto",
        basis: SharedBasis | None = None,
        basis_slice: str = "leading",
        allow_larger: bool = False,
        feature_group_count: int = 1,
        rngs: nnx.Rngs,
        **conv_kwargs: Any,
    ):
        shape = self.conv_shape(in_features, out_features, kernel_size, feature_group_count)
        basis_in_features = None
        if basis is not None:
            if not isinstance(basis, SharedBasis):
                raise TypeError(f"BasisConv: basis must be a SharedBasis, got {type(basis).__name__}")
            num_basis, basis_in_features = _basis.shared_basis_fields(
                basis.shape, num_basis=num_basis, kernel_size=shape["kernel_size"], where="BasisConv"
            )
        if num_basis is None:
            raise ValueError("BasisConv: num_basis is required without a shared basis")
        spec = _basis.BasisSpec(
            **shape,
            num_basis=num_basis,
            splits=splits,
            basis_bias=basis_bias,
            coef_kernel_size=coef_kernel_size,
            path=path,
            basis_in_features=basis_in_features,
            basis_slice=basis_slice,
            allow_larger=allow_larger,
        )
        self.shared_basis = basis
        super().__init__(spec=spec, strides=strides, rngs=rngs, **conv_kwargs)

    def create_params(self, spec: _basis.BasisSpec, *, param_dtype: Any, rngs: nnx.Rngs) -> list[str]:
        names = ["coef"]
        if self.shared_basis is None:
            self.basis = nnx.Param(_basis.init_basis(rngs.params(), spec.basis_shape, param_dtype))
            names.insert(0, "basis")
        self.coef = nnx.Param(_basis.init_coef(rngs.params(), spec, param_dtype))
        if spec.basis_bias:
            self.basis_bias = nnx.Param(jnp.zeros((spec.num_basis,), param_dtype))
            names.append("basis_bias")
        return names

    def compact_params(self) -> dict:
        params = super().compact_params()
        if self.shared_basis is not None:
            params["basis"] = self.shared_basis.basis[...]
        return params


# --- FDC3D frequency-domain 3-D convolution -----------------------------------------------------

class FrequencyConv3D(CompactConv):
    """NNX twin of :class:`compact_jax.linen.FrequencyConv3D` (same parameter names)."""

    method = _fdc3d

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: None | int | Sequence[int] = 1,
        *,
        transform: str = "learned_householder",
        transform_init: str | None = None,
        kept_rows: tuple[int, ...] | None = None,
        kept_channels: tuple[int, ...] | None = None,
        importance: str = "group",
        feature_group_count: int = 1,
        rngs: nnx.Rngs,
        **conv_kwargs: Any,
    ):
        spec = _fdc3d.FrequencySpec(
            **self.conv_shape(in_features, out_features, kernel_size, feature_group_count),
            transform=transform,
            transform_init=transform_init,
            kept_rows=kept_rows,
            kept_channels=kept_channels,
            importance=importance,
        )
        super().__init__(spec=spec, strides=strides, rngs=rngs, **conv_kwargs)
