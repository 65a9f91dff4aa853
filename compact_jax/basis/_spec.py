"""Learning Filter Basis: the spec, parameter checks and kernel algebra.

Private helper of :mod:`compact_jax.basis` (import the public names from
there). Notation: ``c`` input channels, ``n`` output channels, ``s`` splits of
``p = c / s`` channels, ``m`` basis filters of ``p x kh x kw``, ``P >= p`` the
channels of a (possibly wider, shared) basis, ``kch x kcw`` the coefficient
kernel. Parameter layouts (all channels-last, HWIO like a conv kernel)::

    basis       (kh, kw, P, m)            m filters of P x kh x kw
    coef        (kch, kcw, s * m, n)      input channel g * m + j (split-major)
    basis_bias  (m,)                      optional, shared by all splits
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from compact_jax.validate import check_array, check_choice, check_int_tuple, check_positive_int
from compact_jax.protocol import NOT_A_MODULE_FIELD, ConvSpec, renamed_fields

__all__ = [
    "BasisSpec",
    "PATHS",
    "SLICES",
    "basis_shape",
    "check_params",
    "layer_basis",
    "split_coef",
    "build_kernel",
    "build_bias",
    "composed_kernel",
]

PATHS = ("auto", "reconstruct", "decomposed")
SLICES = ("leading", "trailing")


def basis_shape(*, num_basis: int, in_features: int, kernel_size: Any, where: str = "basis") -> tuple:
    """Validated basis shape ``(kh, kw, in_features, num_basis)`` of a 2-D basis."""
    m = check_positive_int(f"{where}: num_basis", num_basis)
    channels = check_positive_int(f"{where}: in_features", in_features)
    if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
        kernel_size = (kernel_size, kernel_size)
    ks = check_int_tuple(f"{where}: kernel_size", kernel_size, minimum=1, broadcast=False)
    if len(ks) != 2:
        raise ValueError(f"{where}: filter basis supports 2-D kernels only, got kernel_size={ks}")
    return (*ks, channels, m)


@renamed_fields(path="execution_path")
@dataclasses.dataclass(frozen=True, kw_only=True)
class BasisSpec(ConvSpec):
    """A 2-D convolution whose filter splits are combinations of a learned basis.

    ``BasisSpec(features=128, in_features=128, kernel_size=(3, 3), num_basis=16,
    splits=2)`` is a 128 -> 128 3x3 conv whose 256 filter splits of 64 x 3 x 3
    are combinations of 16 basis filters (EDSR's Table 1 operating point).

    Attributes:
      num_basis: ``m``, basis filters (each ``p x kh x kw``).
      splits: ``s``, splits of the input channels; ``in_features % splits == 0``.
      basis_bias: a bias of ``m`` values added to the basis conv output,
        shared by all splits (as in the authors' code).
      coef_kernel_size: kernel of the coefficient conv (``1`` by default; an
        int means square). The authors' DenseNet-12-40 uses ``3``; then the
        layer is two convs and has no single-kernel form (see
        :func:`composed_kernel`), so ``execution_path`` must be ``"auto"`` or
        ``"decomposed"``.
      execution_path: ``"reconstruct"`` (build the full kernel, one conv),
        ``"decomposed"`` (basis conv on the splits, then the coefficient conv)
        or ``"auto"`` (the cheaper one, see :func:`compact_jax.basis.apply`).
        Formerly ``path`` (still accepted, with a ``DeprecationWarning``; the
        Linen module's field may not be called ``path``, flax's
        ``Module.path``).
      basis_in_features: channels ``P`` of the basis parameter; default ``p``.
        A wider (shared) basis is sliced to ``p`` channels per ``basis_slice``.
      basis_slice: ``"leading"`` (channels ``[:p]``) or ``"trailing"``
        (``[P - p:]``) of a wider basis, as in the authors' DenseNet code.
      allow_larger: accept a layer with more weights than the dense
        convolution it replaces (``kh kw p m + kch kcw s m n`` plus the basis
        bias, the basis counted at the layer's own ``p`` channels, against
        ``kh kw c n``). False by default: a ``num_basis`` that large is
        usually a mistake; exact (full-rank) reparametrisations and the
        authors' DenseNet setting pass True.
    """

    num_basis: int
    splits: int = 1
    basis_bias: bool = False
    coef_kernel_size: int | tuple[int, int] = 1
    execution_path: str = "auto"
    basis_in_features: int | None = dataclasses.field(default=None, metadata=NOT_A_MODULE_FIELD)
    basis_slice: str = "leading"
    allow_larger: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if self.num_spatial != 2:
            raise ValueError(f"{name}: filter basis supports 2-D kernels only, got kernel_size={self.kernel_size}")
        if self.feature_group_count != 1:
            raise ValueError(
                f"{name}: feature_group_count must be 1 (splits take the place of groups), "
                f"got {self.feature_group_count}"
            )
        check_positive_int(f"{name}.num_basis", self.num_basis)
        s = check_positive_int(f"{name}.splits", self.splits)
        if self.in_features % s:
            raise ValueError(
                f"{name}: in_features ({self.in_features}) must be divisible by splits ({s})"
            )
        if not isinstance(self.basis_bias, bool):
            raise TypeError(f"{name}.basis_bias must be a bool, got {self.basis_bias!r}")
        kc = self.coef_kernel_size
        if isinstance(kc, int) and not isinstance(kc, bool):
            kc = (kc, kc)
        kc = check_int_tuple(f"{name}.coef_kernel_size", kc, ndim=2, minimum=1, broadcast=False)
        object.__setattr__(self, "coef_kernel_size", kc)
        check_choice(f"{name}.execution_path", self.execution_path, PATHS)
        if self.execution_path == "reconstruct" and kc != (1, 1):
            raise ValueError(
                f"{name}: execution_path='reconstruct' needs coef_kernel_size (1, 1), got {kc}: with a "
                f"larger coefficient kernel the layer is two convs (use 'decomposed' or 'auto')"
            )
        p = self.in_features // s
        if self.basis_in_features is None:
            object.__setattr__(self, "basis_in_features", p)
        wide = check_positive_int(f"{name}.basis_in_features", self.basis_in_features)
        if wide < p:
            raise ValueError(
                f"{name}: basis_in_features ({wide}) must be >= the split size p = in_features / "
                f"splits = {self.in_features} / {s} = {p}"
            )
        check_choice(f"{name}.basis_slice", self.basis_slice, SLICES)
        if not isinstance(self.allow_larger, bool):
            raise TypeError(f"{name}.allow_larger must be a bool, got {self.allow_larger!r}")
        m, (kh, kw), (kch, kcw) = self.num_basis, self.kernel_size, kc
        own = kh * kw * p * m + kch * kcw * s * m * self.features + (m if self.basis_bias else 0)
        dense = kh * kw * self.in_features * self.features
        if own > dense and not self.allow_larger:
            raise ValueError(
                f"{name}: num_basis={m} (splits={s}, coef_kernel_size={kc}) gives the layer {own} "
                f"weights, more than the {dense} of the dense {kh}x{kw} conv with {self.in_features} -> "
                f"{self.features} channels; use a smaller num_basis (at most "
                f"{max(0, dense // (kh * kw * p + kch * kcw * s * self.features))} here) or pass "
                f"allow_larger=True"
            )

    @property
    def split_size(self) -> int:
        """``p = in_features / splits``, the input channels of one split."""
        return self.in_features // self.splits

    @property
    def basis_shape(self) -> tuple[int, int, int, int]:
        """``(kh, kw, basis_in_features, num_basis)``."""
        return (*self.kernel_size, self.basis_in_features, self.num_basis)

    @property
    def coef_shape(self) -> tuple[int, int, int, int]:
        """``(kch, kcw, splits * num_basis, features)``."""
        return (*self.coef_kernel_size, self.splits * self.num_basis, self.features)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every parameter of one layer (the basis included)."""
        shapes = {"basis": self.basis_shape, "coef": self.coef_shape}
        if self.basis_bias:
            shapes["basis_bias"] = (self.num_basis,)
        return shapes


def check_params(params: Any, spec: BasisSpec, *, where: str, batched: bool = True) -> None:
    """Raises unless ``params`` holds exactly ``spec.param_shapes`` (trailing dims).

    With ``batched``, leading dims (a batch of parameter sets) are allowed.
    """
    if not isinstance(spec, BasisSpec):
        raise TypeError(f"{where}: spec must be a BasisSpec, got {type(spec).__name__}")
    if not isinstance(params, Mapping):
        raise TypeError(f"{where}: params must be a dict of arrays, got {type(params).__name__}")
    expected = spec.param_shapes
    unknown = sorted(set(params) - set(expected))
    if unknown:
        hint = " (the spec has basis_bias=False)" if "basis_bias" in unknown else ""
        raise ValueError(f"{where}: unexpected params {unknown}{hint}; expected {sorted(expected)}")
    for name, shape in expected.items():
        if name not in params:
            raise ValueError(f"{where}: params lack {name!r}; expected {sorted(expected)}")
        got = tuple(check_array(f"{where}: params[{name!r}]", params[name], floating=True).shape)
        ok = got[len(got) - len(shape) :] == shape if batched else got == shape
        if not ok or len(got) < len(shape):
            raise ValueError(f"{where}: params[{name!r}] must have shape {shape} for {spec}, got {got}")


def layer_basis(basis: jax.Array, spec: BasisSpec) -> jax.Array:
    """The ``p`` basis channels a layer uses: ``(..., kh, kw, P, m) -> (..., kh, kw, p, m)``."""
    p, wide = spec.split_size, spec.basis_in_features
    if p == wide:
        return basis
    start = 0 if spec.basis_slice == "leading" else wide - p
    return basis[..., start : start + p, :]


def split_coef(coef: jax.Array, spec: BasisSpec) -> jax.Array:
    """``(..., kch, kcw, s*m, n) -> (..., kch, kcw, s, m, n)`` (split-major input channels)."""
    return coef.reshape(coef.shape[:-2] + (spec.splits, spec.num_basis, spec.features))


def build_kernel(params: dict, spec: BasisSpec, *, precision: Any = None) -> jax.Array:
    """The full kernel ``W[..., g*p + q, i] = sum_j coef[g*m + j, i] * basis[..., q, j]``.

    Args:
      params: ``{"basis", "coef"(, "basis_bias")}``, optionally with leading
        batch dims (a batch of parameter sets).
      spec: a :class:`BasisSpec` with ``coef_kernel_size == (1, 1)``.
      precision: einsum precision.

    Returns:
      ``kernel_hwio`` of shape ``(..., kh, kw, in_features, features)``. The
      basis bias is not part of the kernel: see :func:`build_bias`.
    """
    check_params(params, spec, where="basis.build_kernel")
    if spec.coef_kernel_size != (1, 1):
        raise ValueError(
            f"basis.build_kernel: coef_kernel_size {spec.coef_kernel_size} makes the layer two "
            f"convs with no single {spec.kernel_size} kernel; use basis.composed_kernel (exact for "
            f"stride 1 with VALID padding) or basis.apply"
        )
    basis = layer_basis(params["basis"], spec)
    coef = split_coef(params["coef"], spec)[..., 0, 0, :, :, :]
    kernel = jnp.einsum("...hwqj,...gji->...hwgqi", basis, coef, precision=precision)
    return kernel.reshape(kernel.shape[:-3] + (spec.in_features, spec.features))


def build_bias(params: dict, spec: BasisSpec, *, precision: Any = None) -> jax.Array | None:
    """Output bias equivalent to the basis bias: ``sum_{taps, g, j} coef[.., g*m + j, i] b_j``.

    Returns ``None`` when ``spec.basis_bias`` is False, else ``(..., features)``.
    Exact for a 1x1 coefficient conv (any padding); for a larger one only where
    the coefficient window sees no zero padding (e.g. VALID padding).
    """
    check_params(params, spec, where="basis.build_bias")
    if not spec.basis_bias:
        return None
    coef = split_coef(params["coef"], spec)
    return jnp.einsum("...j,...uvgji->...i", params["basis_bias"], coef, precision=precision)


def _sum_index_map(k: int, kc: int) -> np.ndarray:
    """``S[t, a, u] = 1`` where ``t == a + u``: the taps of a composed 1-D kernel."""
    out = np.zeros((k + kc - 1, k, kc), np.float32)
    for a in range(k):
        for u in range(kc):
            out[a + u, a, u] = 1.0
    return out


def composed_kernel(params: dict, spec: BasisSpec, *, precision: Any = None) -> jax.Array:
    """The single kernel of basis conv followed by coefficient conv.

    Cross-correlation composes as ``K[t] = sum_{a + u = t} basis[a] coef[u]``
    (per spatial axis), a ``(kh + kch - 1, kw + kcw - 1, in_features,
    features)`` kernel. ``conv(x, K, build_bias(...))`` equals the two-conv
    layer exactly for stride 1, no dilation and VALID padding; with SAME
    padding it differs at the borders (the layer zero-pads between the two
    convs), and with stride > 1 there is no single-kernel form. For a 1x1
    coefficient conv this is :func:`build_kernel`.

    Returns:
      ``(..., kh + kch - 1, kw + kcw - 1, in_features, features)``.
    """
    check_params(params, spec, where="basis.composed_kernel")
    (kh, kw), (kch, kcw) = spec.kernel_size, spec.coef_kernel_size
    basis = layer_basis(params["basis"], spec)
    coef = split_coef(params["coef"], spec)
    rows = jnp.asarray(_sum_index_map(kh, kch), basis.dtype)
    cols = jnp.asarray(_sum_index_map(kw, kcw), basis.dtype)
    kernel = jnp.einsum(
        "xau,ybv,...abqj,...uvgji->...xygqi", rows, cols, basis, coef, precision=precision
    )
    return kernel.reshape(kernel.shape[:-3] + (spec.in_features, spec.features))
