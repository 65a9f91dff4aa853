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

Each method module also exports a :class:`Method` record of these functions
(plus its multiply-adds and table text), registered in
:data:`compact_jax.METHODS`; :class:`MethodModule` is the structural type both
the modules and the records satisfy.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import jax

from compact_jax.validate import check_int_tuple, check_positive_int

__all__ = [
    "ConvSpec",
    "Method",
    "MethodModule",
    "NOT_A_MODULE_FIELD",
    "check_kernel_shape",
    "count_params",
    "renamed_fields",
]

#: Dataclass field metadata of a spec field that is not a field of the method's
#: Linen / NNX modules (e.g. ``BasisSpec.basis_in_features``, which comes from a
#: shared basis): ``dataclasses.field(default=None, metadata=NOT_A_MODULE_FIELD)``.
NOT_A_MODULE_FIELD = {"module_field": False}


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
class MethodModule(Protocol):
    """Structural type of a method module (see the module docstring); a :class:`Method` record satisfies it too."""

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


def renamed_fields(**renamed: str) -> Callable[[type], type]:
    """Class decorator keeping a spec's old field names working, with a ``DeprecationWarning``.

    ``@renamed_fields(path="execution_path")`` on a spec dataclass: the
    constructor (and :func:`dataclasses.replace`) accepts ``path=`` for
    ``execution_path=``, and ``spec.path`` reads ``spec.execution_path``. The
    method's Linen and NNX modules, compression rules' options and the
    training configs accept the old names too (:meth:`Method.rename_options`).
    """

    def wrap(cls: type) -> type:
        fields = {f.name for f in dataclasses.fields(cls)}
        for old, new in renamed.items():
            if new not in fields or old in fields:
                raise ValueError(f"renamed_fields({old}={new!r}): {cls.__name__} must have {new!r} and not {old!r}")
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **rename_deprecated(kwargs, renamed, where=cls.__name__))

        cls.__init__ = __init__
        for old, new in renamed.items():
            setattr(cls, old, property(_deprecated_getter(cls.__name__, old, new),
                                       doc=f"Deprecated name of :attr:`{new}`."))
        cls.__renamed_fields__ = {**getattr(cls, "__renamed_fields__", {}), **renamed}
        return cls

    return wrap


def _deprecated_getter(owner: str, old: str, new: str) -> Callable[[Any], Any]:
    def get(self: Any) -> Any:
        warnings.warn(f"{owner}.{old} is deprecated; use {owner}.{new}", DeprecationWarning, stacklevel=2)
        return getattr(self, new)

    return get


def rename_deprecated(options: Mapping[str, Any], renamed: Mapping[str, str], *, where: str,
                      stacklevel: int = 3) -> dict:
    """``options`` with each deprecated name in ``renamed`` replaced by its new name (warning once per name).

    Raises:
      TypeError: both the old and the new name are given.
    """
    out = dict(options)
    for old, new in renamed.items():
        if old not in out:
            continue
        if new in out:
            raise TypeError(f"{where}: got both {old!r} and {new!r}; {old!r} is the deprecated name of {new!r}")
        warnings.warn(f"{where}: {old!r} is deprecated; use {new!r}", DeprecationWarning, stacklevel=stacklevel)
        out[new] = out.pop(old)
    return out


_CONV_FIELDS = frozenset(f.name for f in dataclasses.fields(ConvSpec))


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Method:
    """Everything the library knows about one method, declared once by the method's module.

    Register a record with :func:`compact_jax.register_method` and the Linen and
    NNX modules (:func:`compact_jax.linen.conv_class`), compression policies,
    fitting, folding and reports all work with it.

    Attributes:
      name: canonical name (the paper's): ``"filtermap"``, ``"basis"``,
        ``"cosine"``, ``"chebyshev"``, ``"fdc3d"``, ``"dense"``.
      spec_cls: the spec dataclass, a :class:`ConvSpec` subclass. Its own
        fields are the method's hyperparameters, declared only there.
      init: ``init(key, spec, *, dtype)`` -> params.
      build_kernel: ``build_kernel(params, spec, *, precision=None)`` -> kernel.
      num_params: ``num_params(spec)`` -> learned values (no bias).
      fit: ``fit(kernel, spec)`` -> params closest to a dense kernel.
      apply: optional direct path ``apply(params, x, spec, **conv_kwargs)``.
      macs: optional ``macs(spec, *, input_shape, output_shape)`` -> multiply-adds
        per example of the cheapest exact path (shapes ``(N, *spatial, C)``);
        None: the dense convolution's.
      describe: optional ``describe(spec)`` -> short hyperparameter text for
        tables, e.g. ``"grid 4x4x4, map 8x8x64"``.
      description: one line saying what the method is.
      fixed: spec fields the name fixes (``{"family": "cosine"}``); they are not
        options of a rule nor fields of the method's modules.
      aliases: further names accepted where a method is named (configs' ``"cos"``).
      extras: options of a compression rule handled by the policy rather than
        the spec (basis ``split_size``; FDC3D ``p_c`` / ``p_t``).
    """

    name: str
    spec_cls: type
    init: Callable[..., dict]
    build_kernel: Callable[..., Any]
    num_params: Callable[[Any], int]
    fit: Callable[..., dict]
    apply: Callable[..., Any] | None = None
    macs: Callable[..., int] | None = None
    describe: Callable[[Any], str] | None = None
    description: str = ""
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"Method.name must be an identifier-like string such as 'filtermap', got {self.name!r}")
        if not (isinstance(self.spec_cls, type) and issubclass(self.spec_cls, ConvSpec)
                and dataclasses.is_dataclass(self.spec_cls)):
            raise TypeError(f"Method({self.name!r}).spec_cls must be a ConvSpec dataclass, got {self.spec_cls!r}")
        for fn in ("init", "build_kernel", "num_params", "fit"):
            if not callable(getattr(self, fn)):
                raise TypeError(f"Method({self.name!r}).{fn} must be callable, got {getattr(self, fn)!r}")
        for fn in ("apply", "macs", "describe"):
            if getattr(self, fn) is not None and not callable(getattr(self, fn)):
                raise TypeError(f"Method({self.name!r}).{fn} must be callable or None, got {getattr(self, fn)!r}")
        names = {f.name for f in dataclasses.fields(self.spec_cls)}
        unknown = sorted(set(self.fixed) - names)
        if unknown:
            raise ValueError(f"Method({self.name!r}).fixed names {unknown}, not fields of {self.spec_cls.__name__}")
        object.__setattr__(self, "fixed", dict(self.fixed))
        if isinstance(self.aliases, str) or isinstance(self.extras, str):
            raise TypeError(f"Method({self.name!r}): aliases and extras must be tuples of strings, not a string")
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "extras", tuple(self.extras))

    def __repr__(self) -> str:
        return f"Method({self.name!r}, {self.spec_cls.__name__})"

    @property
    def own_fields(self) -> tuple[dataclasses.Field, ...]:
        """The spec's own fields (not :class:`ConvSpec`'s), minus :attr:`fixed`."""
        return tuple(f for f in dataclasses.fields(self.spec_cls)
                     if f.name not in _CONV_FIELDS and f.name not in self.fixed)

    @property
    def module_fields(self) -> tuple[dataclasses.Field, ...]:
        """The own fields the Linen and NNX modules declare (not marked :data:`NOT_A_MODULE_FIELD`)."""
        return tuple(f for f in self.own_fields if f.metadata.get("module_field", True))

    @property
    def options(self) -> tuple[str, ...]:
        """Option names a compression rule may give: the own fields plus :attr:`extras`."""
        return tuple(f.name for f in self.own_fields) + self.extras

    @property
    def renamed(self) -> Mapping[str, str]:
        """Deprecated option name -> current name (the spec's :func:`renamed_fields`)."""
        return dict(getattr(self.spec_cls, "__renamed_fields__", {}))

    def rename_options(self, options: Mapping[str, Any], *, where: str, stacklevel: int = 4) -> dict:
        """``options`` with deprecated names (:attr:`renamed`) replaced, each with a ``DeprecationWarning``."""
        return rename_deprecated(options, self.renamed, where=where, stacklevel=stacklevel)

    def spec(self, **fields: Any) -> ConvSpec:
        """The spec for ``fields`` (conv shape and options), with :attr:`fixed` applied."""
        return self.spec_cls(**{**fields, **self.fixed})

    def layer_macs(self, spec: ConvSpec, *, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
        """:attr:`macs`, or the dense convolution's multiply-adds when the method gives none."""
        if self.macs is not None:
            return int(self.macs(spec, input_shape=input_shape, output_shape=output_shape))
        return dense_macs(spec, output_shape=output_shape)

    def layer_describe(self, spec: ConvSpec) -> str:
        """:attr:`describe` of ``spec``, or ``""``."""
        return "" if self.describe is None else self.describe(spec)


def dense_macs(spec: ConvSpec, *, output_shape: tuple[int, ...]) -> int:
    """Multiply-adds per example of the dense convolution ``spec`` stands for."""
    from compact_jax.arith import conv_macs

    return conv_macs(output_shape[1:-1], spec.kernel_size, in_channels=spec.in_features,
                     out_channels=spec.features, feature_group_count=spec.feature_group_count)
