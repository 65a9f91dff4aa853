"""The FDC3D layer spec and parameter-shape checks (see :mod:`compact_jax.temporal`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from compact_jax.fdc3d import _orthogonal as orth
from compact_jax.validate import check_array, check_choice, check_int_tuple
from compact_jax.protocol import ConvSpec

__all__ = [
    "TRANSFORMS",
    "TRANSFORM_PARAM",
    "TRANSFORM_INITS",
    "IMPORTANCE",
    "FrequencySpec",
    "initial_transform",
    "check_params",
]

#: Transform kinds: three learned orthogonal parametrisations, the fixed DCT,
#: and ``"none"`` (identity: pruning raw temporal taps, the min-l2 ablation).
TRANSFORMS = ("learned_householder", "learned_cayley", "learned_expm", "dct", "none")
TRANSFORM_PARAM = {
    "learned_householder": "householder",
    "learned_cayley": "skew",
    "learned_expm": "skew",
}
TRANSFORM_INITS = ("dct", "identity")
IMPORTANCE = ("group", "summed")


def _check_indices(name: str, value: Any, n: int, what: str) -> tuple[int, ...]:
    if value is None:
        return tuple(range(n))
    items = check_int_tuple(name, value, minimum=0, broadcast=False)
    if len(items) > n:
        raise ValueError(f"{name} keeps {len(items)} entries but {what} is {n}: {items}")
    if max(items) >= n:
        raise ValueError(f"{name} entries must lie in [0, {n}) ({what} = {n}), got {items}")
    if len(set(items)) != len(items):
        raise ValueError(f"{name} must not repeat an index, got {items}")
    return tuple(sorted(items))


@dataclasses.dataclass(frozen=True, kw_only=True)
class FrequencySpec(ConvSpec):
    """FDC3D layer: ``FrequencySpec(features=64, in_features=64, kernel_size=(3, 3, 3))``.

    Attributes:
      kernel_size: ``(t, k_h, k_w)``, time first (DHWIO kernels).
      transform: one of :data:`TRANSFORMS`.
      transform_init: initial ``S`` of a learned transform, ``"dct"`` or
        ``"identity"``; ``None`` means ``"dct"`` for learned transforms and
        must be left ``None`` for the fixed ones.
      kept_rows: sorted indices of the kept frequency rows of ``S`` (the mask
        ``M``); ``None`` keeps all ``t``.
      kept_channels: sorted indices of the kept input channels; ``None``
        keeps all ``in_features``. The layer still takes all channels.
      importance: row importance ``V_i`` used by :func:`importance` and the
        l2,1 penalty: ``"group"`` (default), the l2 norm of all coefficients of
        row ``i``, as the paper's text reads; or ``"summed"``, the l2 norm over
        ``N`` of the row summed over the ``d^2 c`` filter positions, as its
        formula ``||(sum_j S f_j)_i||_2`` literally reads.
    """

    transform: str = "learned_householder"
    transform_init: str | None = None
    kept_rows: tuple[int, ...] | None = None
    kept_channels: tuple[int, ...] | None = None
    importance: str = "group"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_spatial != 3:
            raise ValueError(
                f"FrequencySpec.kernel_size must be (t, k_h, k_w) for a 3-D convolution "
                f"(time first), got {self.kernel_size}"
            )
        if self.feature_group_count != 1:
            raise ValueError(
                f"FrequencySpec supports feature_group_count=1 only, got {self.feature_group_count}"
            )
        check_choice("FrequencySpec.transform", self.transform, TRANSFORMS)
        if self.transform in TRANSFORM_PARAM:
            if self.transform_init is not None:
                check_choice("FrequencySpec.transform_init", self.transform_init, TRANSFORM_INITS)
        elif self.transform_init is not None:
            raise ValueError(
                f"FrequencySpec.transform_init applies to learned transforms only; transform="
                f"{self.transform!r} is fixed, got transform_init={self.transform_init!r}"
            )
        check_choice("FrequencySpec.importance", self.importance, IMPORTANCE)
        t = self.kernel_size[0]
        rows = _check_indices("FrequencySpec.kept_rows", self.kept_rows, t, "the temporal kernel size t")
        channels = _check_indices(
            "FrequencySpec.kept_channels", self.kept_channels, self.in_features, "in_features"
        )
        object.__setattr__(self, "kept_rows", rows)
        object.__setattr__(self, "kept_channels", channels)

    @property
    def temporal_size(self) -> int:
        """``t``, the temporal kernel size."""
        return self.kernel_size[0]

    @property
    def num_rows(self) -> int:
        """``t'``, the kept frequency rows."""
        return len(self.kept_rows)

    @property
    def num_channels(self) -> int:
        """``c'``, the kept input channels."""
        return len(self.kept_channels)

    @property
    def coeffs_shape(self) -> tuple[int, ...]:
        """``(t', k_h, k_w, c', N)``."""
        return (self.num_rows, *self.kernel_size[1:], self.num_channels, self.features)


def initial_transform(spec: FrequencySpec) -> np.ndarray:
    """The fixed ``S``, or a learned one's initial value (float64)."""
    kind = (spec.transform_init or "dct") if spec.transform in TRANSFORM_PARAM else spec.transform
    t = spec.temporal_size
    return orth.dct_matrix(t) if kind == "dct" else np.eye(t)


def check_spec(spec: Any, where: str) -> None:
    """Raises a ``TypeError`` unless ``spec`` is a :class:`FrequencySpec`."""
    if not isinstance(spec, FrequencySpec):
        raise TypeError(f"{where}: spec must be a FrequencySpec, got {type(spec).__name__}")


def check_params(params: Any, spec: FrequencySpec, *, where: str) -> None:
    """Raises unless ``params`` holds the spec's arrays with their shapes (extra keys allowed)."""
    check_spec(spec, where)
    if not isinstance(params, Mapping):
        raise TypeError(f"{where}: params must be a dict, got {type(params).__name__}")
    t = spec.temporal_size
    expected = {"coeffs": spec.coeffs_shape, "beta": (spec.num_channels,)}
    if spec.transform in TRANSFORM_PARAM:
        expected[TRANSFORM_PARAM[spec.transform]] = (t, t)
    for name, shape in expected.items():
        if name not in params:
            raise ValueError(
                f"{where}: params lack {name!r} (transform={spec.transform!r} needs "
                f"{sorted(expected)}), got keys {sorted(params)}"
            )
        got = tuple(check_array(f"{where}: params[{name!r}]", params[name], floating=True).shape)
        if got != shape:
            raise ValueError(
                f"{where}: params[{name!r}] must have shape {shape} for t'={spec.num_rows} kept "
                f"rows and c'={spec.num_channels} kept channels, got {got}"
            )
