"""Linen modules: drop-in replacements for ``flax.linen.Conv``.

Every module takes ``flax.linen.Conv``'s fields (``features, kernel_size,
strides, padding, input_dilation, kernel_dilation, feature_group_count,
use_bias, mask, dtype, param_dtype, precision, kernel_init, bias_init,
promote_dtype``) plus its method's own, keyword-only. The kernel is generated,
so ``kernel_init`` initialises the dense kernel the layer stands for, which is
then fitted into the compact parameters (``method.fit``; ``None``, the
default, is the method's own initialisation), and ``mask`` multiplies the
generated kernel. A model written as ``conv: ModuleDef = nn.Conv`` therefore takes
``functools.partial(FilterMapConv, grid=(4, 4, 4))`` unchanged.

Modules only hold parameters; the arithmetic is the method's pure functions,
applied through :func:`compact_jax.layer.layer_apply`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
from flax.linen.dtypes import promote_dtype
import jax.numpy as jnp

from compact_jax import dense
from compact_jax import basis as _basis
from compact_jax import filtermap as _filtermap
from compact_jax import series as _series
from compact_jax import fdc3d as _fdc3d
from compact_jax.arith import PaddingLike
from compact_jax.layer import canonical_kernel_size, layer_apply, method_class
from compact_jax.protocol import ConvSpec, Method, rename_deprecated

__all__ = [
    "CompactConv",
    "DenseConv",
    "FilterMapConv",
    "CosConv",
    "ChebConv",
    "SharedBasis",
    "BasisConv",
    "FrequencyConv3D",
    "conv_class",
    "spec_kwargs",
]


class ConvFields(nn.Module):
    """``flax.linen.Conv``'s fields, declared once for every module standing in for it.

    Attributes:
      mask: optional array of the dense kernel's shape ``(*kernel_size,
        C_in/groups, features)`` multiplied into the generated kernel; the
        layer then always builds its kernel (no direct path). A layer with no
        single kernel (a basis layer with ``coef_kernel_size > 1``) raises.
      kernel_init: ``None`` (default): the method's own initialisation.
        Otherwise ``flax.linen.Conv``'s initializer of the *dense* kernel,
        ``kernel_init(key, (*kernel_size, C_in/groups, features),
        param_dtype)``, whose kernel the method's ``fit`` turns into the
        compact parameters (a least-squares or averaging fit, see the method).
      promote_dtype: ``flax.linen.Conv``'s hook, called as
        ``promote_dtype(inputs, *compact_params, bias, dtype=dtype,
        inexact=True)``; the kernel is generated from the promoted parameters.
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: None | int | Sequence[int] = 1
    padding: PaddingLike = "SAME"
    input_dilation: None | int | Sequence[int] = 1
    kernel_dilation: None | int | Sequence[int] = 1
    feature_group_count: int = 1
    use_bias: bool = True
    mask: Any = None
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Any = None
    bias_init: Any = nn.initializers.zeros_init()
    promote_dtype: Any = promote_dtype

    def conv_fields(self) -> dict:
        """``flax.linen.Conv``'s fields other than the shape (``strides`` ... ``promote_dtype``)."""
        skip = {"features", "kernel_size", "feature_group_count"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ConvFields)
                if f.init and f.name not in skip and f.name not in ("parent", "name")}


class CompactConv(ConvFields):
    """Base class of the compact convolutions (not used directly).

    A subclass names its method record, ``class MyConv(CompactConv,
    method=my.METHOD)``, and gets the record's spec fields (its own fields, not
    :class:`~compact_jax.protocol.ConvSpec`'s nor the record's ``fixed`` ones)
    as module fields with the spec's defaults (``None`` where the spec has no
    default). It may override :meth:`spec` and :meth:`compact_params` (for
    example, to take a basis from a shared module).
    """

    method = None  # type: Method | None

    def __init_subclass__(cls, *, method: Method | None = None, **kwargs: Any) -> None:
        if method is not None:
            if not isinstance(method, Method):
                raise TypeError(f"{cls.__name__}: method must be a compact_jax.protocol.Method, got {method!r}")
            cls.method = method
            _declare_spec_fields(cls, method)
        super().__init_subclass__(**kwargs)
        if cls.method is not None and cls.method.renamed:
            _accept_renamed(cls, cls.method.renamed)

    @classmethod
    def from_spec(cls, spec: ConvSpec, **conv_kwargs: Any) -> CompactConv:
        """The module whose :meth:`spec` is ``spec``, plus ``flax.linen.Conv``'s other fields
        (``strides``, ``padding``, ``use_bias``, ``name``, ...)."""
        return cls(**spec_kwargs(cls, spec, cls.method), **conv_kwargs)

    def spec(self, in_features: int) -> ConvSpec:
        """The method's spec for this layer given the input channel count."""
        own = {f.name: getattr(self, f.name) for f in self.method.module_fields}
        return self.method.spec(**self.conv_shape(in_features), **own)

    def conv_shape(self, in_features: int) -> dict:
        """The :class:`ConvSpec` fields shared by every method's spec."""
        return dict(
            features=self.features,
            in_features=in_features,
            kernel_size=canonical_kernel_size(self.kernel_size, where=self._where()),
            feature_group_count=self.feature_group_count,
        )

    def compact_params(self, spec: ConvSpec) -> dict:
        """Declares one Linen param per leaf of ``method.init`` (fitted to ``kernel_init``'s kernel if given)."""
        shapes = _init_shapes(self.method, spec, self.param_dtype)
        if self.kernel_init is not None:
            return self.fitted_params(spec, shapes)
        return {
            name: self.param(name, _leaf_init(self.method, spec, self.param_dtype, name))
            for name in shapes
        }

    def fitted_params(self, spec: ConvSpec, shapes: dict) -> dict:
        """The params ``shapes`` declared from one ``kernel_init`` kernel fitted by ``method.fit``."""
        if not callable(self.kernel_init):
            raise TypeError(f"{self._where()}: kernel_init must be an initializer (key, shape, dtype) "
                            f"or None, got {self.kernel_init!r}")
        fitted = None
        if not all(self.has_variable("params", name) for name in shapes):
            fitted = fit_kernel_init(self.method, spec, self.kernel_init, self.make_rng("params"),
                                     self.param_dtype, shapes, where=self._where())
        # Flax checks an existing param's shape by tracing its init: the placeholder has the same shape.
        return {name: self.param(name, lambda _key, name=name: fitted[name] if fitted is not None
                                 else jnp.zeros(shapes[name].shape, self.param_dtype))
                for name in shapes}

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
            mask=self.mask,
            promote_dtype=self.promote_dtype,
            where=self._where(),
        )


def fit_kernel_init(method: Method, spec: ConvSpec, kernel_init: Any, key: Any, dtype: Any, shapes: dict,
                    *, where: str) -> dict:
    """``method.fit`` of the dense kernel ``kernel_init(key, spec.kernel_shape, dtype)``, as ``dtype`` arrays.

    Shared by the Linen and NNX modules. Raises if the fit does not give
    exactly the parameters ``shapes`` (the method's ``init``) names.
    """
    kernel = kernel_init(key, spec.kernel_shape, dtype)
    if not hasattr(kernel, "shape"):
        raise TypeError(
            f"{where}: kernel_init must return the dense kernel array, got {type(kernel).__name__} (a compact "
            f"layer has no kernel parameter to attach metadata to; give per-parameter metadata instead)"
        )
    try:
        fitted = method.fit(kernel, spec)
    except ValueError as err:
        raise ValueError(f"{where}: kernel_init's kernel cannot be fitted by method {method.name!r}: {err}") from None
    if sorted(fitted) != sorted(shapes):
        raise ValueError(f"{where}: method {method.name!r}'s fit gives {sorted(fitted)}, its init {sorted(shapes)}")
    out = {}
    for name, value in fitted.items():
        if tuple(value.shape) != tuple(shapes[name].shape):
            raise ValueError(f"{where}: fitted {name!r} has shape {tuple(value.shape)}, expected "
                             f"{tuple(shapes[name].shape)}")
        out[name] = jnp.asarray(value, dtype)
    return out


def _accept_renamed(cls: type, renamed: dict) -> None:
    """Lets ``cls(...)`` take the method's deprecated field names, with a ``DeprecationWarning``."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if any(old in kwargs for old in renamed):
            kwargs = rename_deprecated(kwargs, renamed, where=cls.__name__)
        init(self, *args, **kwargs)

    cls.__init__ = __init__


def _declare_spec_fields(cls: type, method: Method) -> None:
    """Adds ``method``'s module fields to ``cls`` before flax's dataclass transform runs."""
    annotations = cls.__dict__.get("__annotations__", {})
    inherited = {name for base in cls.__mro__[1:] for name in getattr(base, "__annotations__", {})}
    new = {}
    # Module attributes, plus the fields and instance attributes flax adds to every module.
    flax_names = set(dir(nn.Module)) | {"parent", "name", "scope"}
    for field in method.module_fields:
        if field.name in flax_names:
            raise ValueError(
                f"{cls.__name__}: method {method.name!r}'s spec field {field.name!r} would shadow "
                f"flax.linen.Module.{field.name}; rename the spec field (see compact_jax.protocol.renamed_fields)"
            )
        if field.name in annotations or field.name in inherited:
            continue
        new[field.name] = field.type if field.default is not dataclasses.MISSING or field.type.endswith("None") \
            else f"{field.type} | None"
        default = field.default
        if default is dataclasses.MISSING:
            default = None if field.default_factory is dataclasses.MISSING else field.default_factory()
        setattr(cls, field.name, default)
    # The spec's fields come first, in the spec's order, then the class's own.
    cls.__annotations__ = {**new, **annotations}


def spec_kwargs(cls: type, spec: ConvSpec, method: Method) -> dict:
    """Module keyword arguments reproducing ``spec`` (checked against the record)."""
    if not isinstance(spec, method.spec_cls):
        raise TypeError(f"{cls.__name__}.from_spec: expected a {method.spec_cls.__name__}, got {type(spec).__name__}")
    for name, value in method.fixed.items():
        if getattr(spec, name) != value:
            raise ValueError(
                f"{cls.__name__}.from_spec: {type(spec).__name__}.{name} is {getattr(spec, name)!r}, "
                f"but method {method.name!r} needs {value!r}"
            )
    own = {f.name: getattr(spec, f.name) for f in method.module_fields}
    return dict(features=spec.features, kernel_size=spec.kernel_size,
                feature_group_count=spec.feature_group_count, **own)


def _init_shapes(method: Method, spec: ConvSpec, dtype: Any) -> dict:
    return jax.eval_shape(lambda k: method.init(k, spec, dtype=dtype), jax.random.key(0))


def _leaf_init(method: Method, spec: ConvSpec, dtype: Any, name: str):
    def init(key):
        return method.init(key, spec, dtype=dtype)[name]

    return init


class DenseConv(CompactConv, method=dense.METHOD):
    """An ordinary convolution written against the method protocol."""


# --- 3D-FilterMap -------------------------------------------------------------------------------

class FilterMapConv(CompactConv, method=_filtermap.METHOD):
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


class CosConv(_SeriesConv, method=_series.COSINE):
    """ApproxConv CosConv: filters are 2-D cosine series ``sum A_ij cos(i x) cos(j y)``.

    Sampled at equispaced points on ``interval`` (default ``[0.2 pi, 0.8 pi]``);
    ``functools.partial(CosConv, harmonics=2)`` drops into a model taking
    ``conv: ModuleDef = nn.Conv``. Fields as in :class:`_SeriesConv`.
    """


class ChebConv(_SeriesConv, method=_series.CHEBYSHEV):
    """ApproxConv ChebConv: filters are 2-D Chebyshev series ``sum A_ij T_i(x) T_j(y)``.

    Sampled at Chebyshev-Gauss-Lobatto points (``points="lobatto"``, the
    paper) or equispaced (``"equispaced"``, the authors' code) on ``[-1, 1]``.
    Fields as in :class:`_SeriesConv`.
    """


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


class BasisConv(CompactConv, method=_basis.METHOD):
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
      execution_path: ``"auto"``, ``"reconstruct"`` or ``"decomposed"``
        (formerly ``path``, which is flax's ``Module.path``; ``path=`` still
        works, with a ``DeprecationWarning``).
      basis: a :class:`SharedBasis` to use instead of an own basis.
      basis_slice: ``"leading"`` or ``"trailing"`` channels of a wider basis.
      allow_larger: accept more weights than the dense conv (see the spec).
    """

    basis: SharedBasis | None = None

    def spec(self, in_features: int) -> _basis.BasisSpec:
        if self.basis is not None and not isinstance(self.basis, SharedBasis):
            raise TypeError(f"{self._where()}: basis must be a SharedBasis, got {type(self.basis).__name__}")
        own = {f.name: getattr(self, f.name) for f in self.method.module_fields}
        shared = None if self.basis is None else self.basis.shape
        return _basis.layer_spec(self.conv_shape(in_features), own, shared, where=self._where())

    def compact_params(self, spec: _basis.BasisSpec) -> dict:
        dtype = self.param_dtype
        if self.kernel_init is not None:
            if self.basis is not None:
                raise ValueError(f"{self._where()}: kernel_init fits a layer's own basis; a shared basis= is "
                                 f"initialised by its SharedBasis (give kernel_init=None)")
            return super().compact_params(spec)
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

class FrequencyConv3D(CompactConv, method=_fdc3d.METHOD):
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


_NAMED = {cls.method.name: cls for cls in (DenseConv, FilterMapConv, CosConv, ChebConv, BasisConv, FrequencyConv3D)}
_GENERATED: dict[str, type] = {}


def conv_class(method: str | Method) -> type:
    """The Linen module class of a registered method (name, alias or record).

    The built-in methods give their named classes (``conv_class("cos")`` is
    :class:`CosConv`); any other registered method gets a class generated from
    its record (and reused while the record stays registered).
    """
    return method_class(method, base=CompactConv, named=_NAMED, generated=_GENERATED)
