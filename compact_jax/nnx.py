"""NNX twins of :mod:`compact_jax.linen`, with ``flax.nnx.Conv``'s signature.

``DenseConv(in_features, out_features, kernel_size, strides=1, *, padding=...,
rngs=...)`` plus each method's own keyword-only fields. Parameter names equal
the Linen module's, so copying a Linen ``params`` dict into an NNX module (see
:func:`load_linen_params`) gives identical outputs.

``flax.nnx.Conv``'s ``mask``, ``kernel_init``, ``promote_dtype`` and
``bias_metadata`` mean what they mean for the Linen modules
(:class:`compact_jax.linen.ConvFields`). In place of ``kernel_metadata`` (there
is no kernel parameter) a layer takes ``param_metadata``, compact parameter
name -> ``nnx.Param`` metadata, or its shorthand ``param_sharding``, name ->
mesh axis names (``{"coef": (None, None, None, "model")}``), as
``nnx.with_partitioning`` would attach.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.variablelib import VariableMetadata

from compact_jax import dense
from compact_jax import basis as _basis
from compact_jax import filtermap as _filtermap
from compact_jax import series as _series
from compact_jax import fdc3d as _fdc3d
from compact_jax.arith import PaddingLike
from compact_jax.layer import canonical_kernel_size, layer_apply, method_class
from compact_jax.protocol import ConvSpec, Method
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
    "conv_class",
]


def _signature(cls: type, method: Method) -> inspect.Signature:
    """``flax.nnx.Conv``'s signature plus the spec's fields (keyword-only, the spec's defaults)."""
    params = [p for p in inspect.signature(CompactConv.__init__).parameters.values() if p.name != "self"]
    kwargs = [p for p in params if p.kind is p.VAR_KEYWORD]
    params = [p for p in params if p.kind is not p.VAR_KEYWORD]
    if cls.__init__ is not CompactConv.__init__:  # a subclass's own keyword arguments (BasisConv's basis)
        params += [p for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]
    taken = {p.name for p in params}
    for field in method.module_fields:
        if field.name not in taken:
            default = None if field.default is dataclasses.MISSING else field.default
            params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=field.type))
    return inspect.Signature(params + kwargs)


class CompactConv(nnx.Module):
    """Base class of the NNX compact convolutions (not used directly).

    A subclass names its method record, ``class MyConv(CompactConv,
    method=my.METHOD)``; its constructor is ``flax.nnx.Conv``'s plus the
    record's spec fields, keyword-only, with the spec's defaults. It may
    override :meth:`make_spec` and :meth:`create_params` (e.g. to reference a
    shared basis).
    """

    method: Method | None = None

    def __init_subclass__(cls, *, method: Method | None = None, **kwargs: Any) -> None:
        if method is not None:
            if not isinstance(method, Method):
                raise TypeError(f"{cls.__name__}: method must be a compact_jax.protocol.Method, got {method!r}")
            cls.method = method
            cls.__signature__ = _signature(cls, method)
        super().__init_subclass__(**kwargs)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: None | int | Sequence[int] = 1,
        *,
        feature_group_count: int = 1,
        rngs: nnx.Rngs,
        **kwargs: Any,
    ):
        names = {f.name for f in self.method.module_fields}
        kwargs = self.method.rename_options(kwargs, where=type(self).__name__, stacklevel=3)
        own = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
        shape = self.conv_shape(in_features, out_features, kernel_size, feature_group_count)
        spec = self.make_spec(shape, own)
        self._setup(spec=spec, strides=strides, rngs=rngs, **kwargs)

    @classmethod
    def from_spec(cls, spec: ConvSpec, *, rngs: nnx.Rngs, **conv_kwargs: Any) -> CompactConv:
        """The module of ``spec`` plus ``flax.nnx.Conv``'s other arguments (``strides``, ...)."""
        from compact_jax.linen import spec_kwargs

        kwargs = spec_kwargs(cls, spec, cls.method)
        return cls(spec.in_features, kwargs.pop("features"), kwargs.pop("kernel_size"), rngs=rngs,
                   **kwargs, **conv_kwargs)

    def make_spec(self, shape: dict, own: dict) -> ConvSpec:
        """The spec from the conv shape and the method's own keyword arguments."""
        return self.method.spec(**shape, **own)

    def _setup(
        self,
        *,
        spec: ConvSpec,
        strides: None | int | Sequence[int] = 1,
        padding: PaddingLike = "SAME",
        input_dilation: None | int | Sequence[int] = 1,
        kernel_dilation: None | int | Sequence[int] = 1,
        use_bias: bool = True,
        mask: Any = None,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        kernel_init: Any = None,
        bias_init: Any = nnx.initializers.zeros_init(),
        promote_dtype: Any = None,
        rngs: nnx.Rngs,
        param_metadata: Mapping[str, Mapping[str, Any]] = MappingProxyType({}),
        param_sharding: Mapping[str, Sequence[str | None]] = MappingProxyType({}),
        bias_metadata: Mapping[str, Any] = MappingProxyType({}),
    ):
        where = type(self).__name__
        self.spec = spec
        self.strides = strides
        self.padding = padding
        self.input_dilation = input_dilation
        self.kernel_dilation = kernel_dilation
        self.dtype = dtype
        self.precision = precision
        self.mask = nnx.data(None if mask is None else jnp.asarray(mask))
        if promote_dtype is None:
            from flax.nnx.nn.dtypes import promote_dtype
        self.promote_dtype = promote_dtype
        if kernel_init is not None and not callable(kernel_init):
            raise TypeError(f"{where}: kernel_init must be an initializer (key, shape, dtype) or None, "
                            f"got {kernel_init!r}")
        metadata = _param_metadata(param_metadata, param_sharding, where=where)
        self.param_names = tuple(self.create_params(spec, param_dtype=param_dtype, rngs=rngs,
                                                    kernel_init=kernel_init, metadata=metadata))
        unknown = sorted(set(metadata) - set(self.param_names))
        if unknown:
            raise ValueError(f"{where}: param_metadata/param_sharding name {unknown}, not parameters of this "
                             f"layer; its parameters: {list(self.param_names)}")
        for name in metadata:
            _check_sharding(getattr(self, name), name, where=where)
        self.bias = (
            nnx.Param(bias_init(rngs.params(), (spec.features,), param_dtype), **bias_metadata)
            if use_bias else nnx.data(None)
        )

    def conv_shape(self, in_features, out_features, kernel_size, feature_group_count) -> dict:
        """The :class:`ConvSpec` fields shared by every method's spec."""
        return dict(
            features=out_features,
            in_features=in_features,
            kernel_size=canonical_kernel_size(kernel_size, where=type(self).__name__),
            feature_group_count=feature_group_count,
        )

    def create_params(self, spec: ConvSpec, *, param_dtype: Any, rngs: nnx.Rngs, kernel_init: Any = None,
                      metadata: Mapping[str, Mapping[str, Any]] = MappingProxyType({})) -> list[str]:
        """Creates one ``nnx.Param`` attribute per leaf of ``method.init`` (or of the fit of
        ``kernel_init``'s dense kernel), with ``metadata[name]``; returns the names."""
        if kernel_init is None:
            values = self.method.init(rngs.params(), spec, dtype=param_dtype)
        else:
            values = self.fitted_init(spec, kernel_init, rngs.params(), param_dtype)
        for name, value in values.items():
            setattr(self, name, nnx.Param(value, **metadata.get(name, {})))
        return list(values)

    def fitted_init(self, spec: ConvSpec, kernel_init: Any, key: jax.Array, param_dtype: Any) -> dict:
        """``method.fit`` of the dense kernel ``kernel_init(key, spec.kernel_shape, param_dtype)``."""
        from compact_jax.linen import fit_kernel_init

        shapes = jax.eval_shape(lambda k: self.method.init(k, spec, dtype=param_dtype), key)
        return fit_kernel_init(self.method, spec, _strip_metadata(kernel_init, type(self).__name__), key,
                               param_dtype, shapes, where=type(self).__name__)

    def compact_params(self) -> dict:
        """The compact parameters' values by name (what the forward pass uses)."""
        return self._compact_params()

    def _compact_params(self) -> dict:
        # Private: nnx.tabulate lists each public method call as a row of its own.
        return {name: getattr(self, name)[...] for name in self.param_names}

    def __call__(self, inputs: Any) -> Any:
        return layer_apply(
            self.method,
            self._compact_params(),
            inputs,
            self.spec,
            bias=None if self.bias is None else self.bias[...],
            strides=self.strides,
            padding=self.padding,
            input_dilation=self.input_dilation,
            kernel_dilation=self.kernel_dilation,
            precision=self.precision,
            dtype=self.dtype,
            mask=self.mask,
            # flax.nnx's hook takes one tuple; layer_apply calls it the Linen (variadic) way.
            promote_dtype=lambda *arrays, dtype, inexact: self.promote_dtype(arrays, dtype=dtype, inexact=inexact),
            where=type(self).__name__,
        )


def _param_metadata(param_metadata: Any, param_sharding: Any, *, where: str) -> dict:
    """Name -> ``nnx.Param`` metadata from ``param_metadata`` and the ``param_sharding`` shorthand."""
    for label, value in (("param_metadata", param_metadata), ("param_sharding", param_sharding)):
        if not isinstance(value, Mapping):
            raise TypeError(f"{where}: {label} must map parameter names to values, got {value!r}")
    out = {}
    for name, meta in param_metadata.items():
        if not isinstance(meta, Mapping):
            raise TypeError(f"{where}: param_metadata[{name!r}] must be a mapping of nnx.Param metadata "
                            f"(e.g. {{'out_sharding': (None, 'model')}}), got {meta!r}")
        out[name] = dict(meta)
    for name, axes in param_sharding.items():
        if isinstance(axes, str) or not isinstance(axes, Sequence) or not all(
                a is None or isinstance(a, str) or (isinstance(a, tuple) and all(isinstance(b, str) for b in a))
                for a in axes):
            raise TypeError(f"{where}: param_sharding[{name!r}] must be a tuple of mesh axis names or None "
                            f"per dimension, got {axes!r}")
        if "out_sharding" in out.get(name, {}):
            raise ValueError(f"{where}: parameter {name!r} has a sharding in both param_metadata and param_sharding")
        out.setdefault(name, {})["out_sharding"] = tuple(axes)
    return out


def _check_sharding(variable: nnx.Variable, name: str, *, where: str) -> None:
    sharding = variable.get_metadata().get("out_sharding")
    ndim = variable[...].ndim
    if sharding is not None and len(sharding) != ndim:
        raise ValueError(f"{where}: parameter {name!r} has {ndim} dims {tuple(variable[...].shape)}, but its "
                         f"sharding {tuple(sharding)} names {len(sharding)}")


def _strip_metadata(kernel_init: Any, where: str) -> Any:
    """``kernel_init`` that refuses ``nnx.with_partitioning``: a compact layer has no dense kernel to shard."""

    def init(key, shape, dtype):
        kernel = kernel_init(key, shape, dtype)
        if isinstance(kernel, VariableMetadata):
            raise TypeError(
                f"{where}: kernel_init carries metadata {dict(kernel.metadata)} for a dense kernel, but a compact "
                f"layer stores no kernel; give param_sharding={{name: axes}} (or param_metadata) for its "
                f"parameters instead"
            )
        return kernel

    return init


class DenseConv(CompactConv, method=dense.METHOD):
    """An ordinary convolution written against the method protocol."""


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

class FilterMapConv(CompactConv, method=_filtermap.METHOD):
    """NNX twin of :class:`compact_jax.linen.FilterMapConv` (parameter ``filtermap``)."""


# --- ApproxConv series kernels (CosConv, ChebConv) ----------------------------------------------

class CosConv(CompactConv, method=_series.COSINE):
    """NNX twin of :class:`compact_jax.linen.CosConv` (cosine series kernel, parameter ``coeffs``)."""


class ChebConv(CompactConv, method=_series.CHEBYSHEV):
    """NNX twin of :class:`compact_jax.linen.ChebConv` (Chebyshev series kernel, parameter ``coeffs``)."""


# --- Learning Filter Basis ----------------------------------------------------------------------

class SharedBasis(nnx.Module):
    """NNX twin of :class:`compact_jax.linen.SharedBasis`: one basis for several layers.

    Pass the same instance as ``basis=`` to several :class:`BasisConv`; NNX
    keeps one ``nnx.Param`` ``basis`` ``(kh, kw, in_features, num_basis)``,
    with ``basis_metadata`` (e.g. ``{"out_sharding": (None, None, None, "model")}``).
    """

    def __init__(
        self,
        in_features: int,
        num_basis: int,
        kernel_size: int | Sequence[int],
        *,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
        basis_metadata: Mapping[str, Any] = MappingProxyType({}),
    ):
        self.shape = _basis.basis_shape(
            num_basis=num_basis, in_features=in_features, kernel_size=kernel_size, where="SharedBasis"
        )
        self.basis = nnx.Param(_basis.init_basis(rngs.params(), self.shape, param_dtype), **basis_metadata)


class BasisConv(CompactConv, method=_basis.METHOD):
    """NNX twin of :class:`compact_jax.linen.BasisConv` (``basis``, ``coef``, ``basis_bias``).

    Takes a :class:`SharedBasis` as ``basis=`` besides the spec's fields.
    """

    def __init__(self, *args: Any, basis: SharedBasis | None = None, **kwargs: Any):
        if basis is not None and not isinstance(basis, SharedBasis):
            raise TypeError(f"BasisConv: basis must be a SharedBasis, got {type(basis).__name__}")
        self.shared_basis = basis
        super().__init__(*args, **kwargs)

    def make_spec(self, shape: dict, own: dict) -> _basis.BasisSpec:
        shared = None if self.shared_basis is None else self.shared_basis.shape
        return _basis.layer_spec(shape, own, shared, where="BasisConv")

    def create_params(self, spec: _basis.BasisSpec, *, param_dtype: Any, rngs: nnx.Rngs, kernel_init: Any = None,
                      metadata: Mapping[str, Mapping[str, Any]] = MappingProxyType({})) -> list[str]:
        if kernel_init is not None:
            if self.shared_basis is not None:
                raise ValueError("BasisConv: kernel_init fits a layer's own basis; a shared basis= is initialised "
                                 "by its SharedBasis (give kernel_init=None)")
            return super().create_params(spec, param_dtype=param_dtype, rngs=rngs, kernel_init=kernel_init,
                                         metadata=metadata)
        names = ["coef"]
        if self.shared_basis is None:
            self.basis = nnx.Param(_basis.init_basis(rngs.params(), spec.basis_shape, param_dtype),
                                   **metadata.get("basis", {}))
            names.insert(0, "basis")
        self.coef = nnx.Param(_basis.init_coef(rngs.params(), spec, param_dtype), **metadata.get("coef", {}))
        if spec.basis_bias:
            self.basis_bias = nnx.Param(jnp.zeros((spec.num_basis,), param_dtype), **metadata.get("basis_bias", {}))
            names.append("basis_bias")
        return names

    def _compact_params(self) -> dict:
        params = super()._compact_params()
        if self.shared_basis is not None:
            params["basis"] = self.shared_basis.basis[...]
        return params


# --- FDC3D frequency-domain 3-D convolution -----------------------------------------------------

class FrequencyConv3D(CompactConv, method=_fdc3d.METHOD):
    """NNX twin of :class:`compact_jax.linen.FrequencyConv3D` (same parameter names)."""


_NAMED = {cls.method.name: cls for cls in (DenseConv, FilterMapConv, CosConv, ChebConv, BasisConv, FrequencyConv3D)}
_GENERATED: dict[str, type] = {}


def conv_class(method: str | Method) -> type:
    """The NNX module class of a registered method (name, alias or record); see
    :func:`compact_jax.linen.conv_class`."""
    return method_class(method, base=CompactConv, named=_NAMED, generated=_GENERATED)
