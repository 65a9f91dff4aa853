"""Learning Filter Basis (Li, Gu, Van Gool, Timofte, ICCV 2019).

A 2-D convolution with ``c`` input and ``n`` output channels and a
``kh x kw`` kernel is cut along its input channels into ``s`` splits of
``p = c / s`` channels. Its ``n * s`` filter splits are linear combinations of
one basis of ``m`` filters of ``p x kh x kw`` (Eqs. 15-16)::

    W[:, :, g*p:(g+1)*p, i] = sum_j A[i, g, j] B_j        g < s, i < n, j < m

stored as ``basis (kh, kw, p, m)`` and ``coef (1, 1, s*m, n)`` with
``coef[0, 0, g*m + j, i] = A[i, g, j]`` (split-major, the authors' order).
By linearity (Eq. 17) the layer is also a conv of every input split with the
basis followed by a 1x1 conv with the coefficients, the cheaper *decomposed*
path; :func:`apply` picks a path by multiply-add count. Both give the same
numbers.

Beyond the plain layer, as in the authors' code: an optional basis bias
(``m`` values shared by all splits), a ``kch x kcw`` coefficient conv (their
DenseNet-12-40 uses 3x3; then the layer is two convs, see
:func:`composed_kernel`), and basis sharing: several layers take one basis
array (Linen/NNX: one ``SharedBasis`` module), a layer with split size ``p``
using the leading or trailing ``p`` channels of a wider basis.

:func:`fit` is the truncated SVD of the filter splits, the best basis in
Frobenius norm (Eckart-Young); :func:`basis_regularizer` is Eq. (18)'s
penalty. Compression rates: :func:`gamma_filter` (Eq. 7),
:func:`gamma_channel` (Eq. 8), :func:`gamma_split` (Eq. 12),
:func:`optimal_splits` (Eq. 13).

Example (one EDSR-8-128 residual block conv, Table 2's Basis-128-27)::

    >>> spec = BasisSpec(features=128, in_features=128, kernel_size=(3, 3), num_basis=27)
    >>> num_params(spec)   # 27 * 128 * 9 basis + 128 * 27 coefficients
    34560
    >>> params = init(jax.random.key(0), spec)
    >>> y = apply(params, jnp.ones((2, 8, 8, 128)), spec)   # (2, 8, 8, 128)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from compact_jax.basis._fit import basis_regularizer, fit, fit_coefficients, fit_shared, splits_matrix
from compact_jax.basis._paths import apply, basis_conv, choose_path, coef_conv, decomposed, path_macs
from compact_jax.basis._spec import BasisSpec, basis_shape, build_bias, build_kernel, composed_kernel
from compact_jax.protocol import Method, dense_macs
from compact_jax.validate import check_positive_int

__all__ = [
    "METHOD",
    "BasisSpec",
    "init",
    "init_basis",
    "init_coef",
    "build_kernel",
    "build_bias",
    "composed_kernel",
    "apply",
    "basis_conv",
    "coef_conv",
    "choose_path",
    "decomposed",
    "path_macs",
    "num_params",
    "num_params_shared",
    "param_ratio",
    "fit",
    "fit_coefficients",
    "fit_shared",
    "splits_matrix",
    "basis_regularizer",
    "basis_shape",
    "shared_basis_fields",
    "layer_spec",
    "gamma_filter",
    "gamma_channel",
    "gamma_split",
    "optimal_splits",
]


def _kaiming_uniform(key: jax.Array, shape: Sequence[int], fan_in: int, dtype: Any) -> jax.Array:
    """PyTorch's ``kaiming_uniform_`` (a=0): U(-b, b) with ``b = sqrt(6 / fan_in)``."""
    bound = math.sqrt(6.0 / fan_in)
    return jax.random.uniform(key, tuple(shape), dtype, -bound, bound)


def init_basis(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    """Kaiming-uniform basis ``(kh, kw, P, m)``, fan-in ``kh * kw * P`` (the authors' init)."""
    kh, kw, channels, _ = shape
    return _kaiming_uniform(key, shape, kh * kw * channels, dtype)


def init_coef(key: jax.Array, spec: BasisSpec, dtype: Any = jnp.float32) -> jax.Array:
    """Kaiming-uniform coefficients ``(kch, kcw, s*m, n)``, fan-in ``kch * kcw * s * m``.

    The authors' init of their coefficient (``proj``) conv. With the basis
    init, the reconstructed kernel has variance ``4 / (c * kh * kw * kch *
    kcw)``, twice He's ``2 / fan_in`` for a 1x1 coefficient conv.
    """
    kch, kcw = spec.coef_kernel_size
    return _kaiming_uniform(key, spec.coef_shape, kch * kcw * spec.splits * spec.num_basis, dtype)


def init(key: jax.Array, spec: BasisSpec, *, dtype: Any = jnp.float32) -> dict:
    """Fresh parameters: Kaiming-uniform basis and coefficients, zero basis bias.

    Returns:
      ``{"basis": (kh, kw, P, m), "coef": (kch, kcw, s*m, n)(, "basis_bias": (m,))}``.
    """
    if not isinstance(spec, BasisSpec):
        raise TypeError(f"basis.init: spec must be a BasisSpec, got {type(spec).__name__}")
    key_basis, key_coef = jax.random.split(key)
    params = {
        "basis": init_basis(key_basis, spec.basis_shape, dtype),
        "coef": init_coef(key_coef, spec, dtype),
    }
    if spec.basis_bias:
        params["basis_bias"] = jnp.zeros((spec.num_basis,), dtype)
    return params


def shared_basis_fields(
    shape: Sequence[int], *, num_basis: int | None, kernel_size: Sequence[int], where: str
) -> tuple[int, int]:
    """``(num_basis, basis_in_features)`` of a layer on a shared basis of ``shape``.

    Args:
      shape: the shared basis's ``(kh, kw, P, m)``.
      num_basis: the layer's ``m``, or None to take the basis's.
      kernel_size: the layer's ``(kh, kw)``.
      where: layer name for error messages.
    """
    kh, kw, channels, m = shape
    if num_basis is not None and num_basis != m:
        raise ValueError(f"{where}: num_basis={num_basis} differs from the shared basis's {m}")
    if tuple(kernel_size) != (kh, kw):
        raise ValueError(f"{where}: kernel_size {tuple(kernel_size)} differs from the shared basis's {(kh, kw)}")
    return m, channels


def layer_spec(shape: dict, own: dict, shared_shape: Sequence[int] | None, *, where: str) -> BasisSpec:
    """The spec of a Linen / NNX basis layer: its conv ``shape`` and ``own`` fields, with
    ``num_basis`` and ``basis_in_features`` read from a shared basis of ``shared_shape`` if any."""
    num_basis, basis_in_features = own.get("num_basis"), None
    if shared_shape is not None:
        num_basis, basis_in_features = shared_basis_fields(
            shared_shape, num_basis=num_basis, kernel_size=shape["kernel_size"], where=where
        )
    if num_basis is None:
        raise ValueError(f"{where}: num_basis is required without a shared basis")
    return BasisSpec(**shape, **{**own, "num_basis": num_basis}, basis_in_features=basis_in_features)


def num_params(spec: BasisSpec) -> int:
    """Learned weights of one layer: basis + coefficients (+ basis bias), no conv bias.

    A layer on a wider shared basis counts the whole basis; count layers that
    share a basis with :func:`num_params_shared`.
    """
    if not isinstance(spec, BasisSpec):
        raise TypeError(f"basis.num_params: spec must be a BasisSpec, got {type(spec).__name__}")
    return sum(math.prod(shape) for shape in spec.param_shapes.values())


def num_params_shared(specs: Sequence[BasisSpec], basis_ids: Sequence[Hashable] | None = None) -> int:
    """Learned weights of several layers, each shared basis counted once.

    Args:
      specs: the layers.
      basis_ids: one hashable per layer naming its basis; layers with equal ids
        share one basis (which must have one shape). ``None``: all layers share
        one basis.

    Example (a 128-channel residual block, s = 2, m = 16, Table 1)::

        >>> conv = BasisSpec(features=128, in_features=128, kernel_size=(3, 3), num_basis=16, splits=2)
        >>> num_params_shared([conv, conv]), num_params_shared([conv, conv], ["a", "b"])
        (17408, 26624)
    """
    specs = list(specs)
    ids = [None] * len(specs) if basis_ids is None else list(basis_ids)
    if len(ids) != len(specs):
        raise ValueError(
            f"basis.num_params_shared: need one basis id per spec, got {len(ids)} ids for {len(specs)} specs"
        )
    bases: dict[Hashable, tuple[int, ...]] = {}
    total = 0
    for spec, key in zip(specs, ids):
        shape = bases.setdefault(key, spec.basis_shape)
        if shape != spec.basis_shape:
            raise ValueError(
                f"basis.num_params_shared: layers sharing basis {key!r} must agree on its shape, "
                f"got {shape} and {spec.basis_shape}"
            )
        total += num_params(spec) - math.prod(spec.basis_shape)
    return total + sum(math.prod(shape) for shape in bases.values())


def param_ratio(spec: BasisSpec) -> float:
    """Dense weights over compact weights (the reciprocal of Eq. 12's rate)."""
    return spec.dense_num_params / num_params(spec)


def _kernel_area(kernel_size: Any) -> int:
    if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
        kernel_size = (kernel_size, kernel_size)
    return math.prod(basis_shape(num_basis=1, in_features=1, kernel_size=kernel_size, where="gamma")[:2])


def gamma_filter(*, m: int, n: int, c: int, kernel_size: Any) -> float:
    """Eq. (7): rate of ``m`` whole ``c x kh x kw`` basis filters, ``m/n + m/(c kh kw)``."""
    return gamma_split(m=m, n=n, s=1, p=c, kernel_size=kernel_size)


def gamma_channel(*, m: int, n: int, c: int, kernel_size: Any) -> float:
    """Eq. (8): rate of ``m`` 2-D ``kh x kw`` basis filters per channel, ``m/(n c) + m/(kh kw)``."""
    return gamma_split(m=m, n=n, s=c, p=1, kernel_size=kernel_size)


def gamma_split(*, m: int, n: int, s: int, p: int, kernel_size: Any) -> float:
    """Eq. (12): compact / dense weights with ``s`` splits of ``p`` channels.

    ``(m p kh kw + m n s) / (n s p kh kw) = m / (n s) + m / (p kh kw)``.
    """
    m, n, s, p = (check_positive_int(name, v) for name, v in (("m", m), ("n", n), ("s", s), ("p", p)))
    area = _kernel_area(kernel_size)
    return m / (n * s) + m / (p * area)


def optimal_splits(c: int, n: int, kh: int, kw: int) -> tuple[int, int]:
    """Eq. (13): the split count ``s`` and size ``p`` minimising Eq. (12).

    The continuous optimum is ``s* = sqrt(c kh kw / n)``, ``p* = sqrt(n c /
    (kh kw))``. ``p`` is quantised to the divisor of ``c`` with the smallest
    rate; as the rate is convex in ``p``, that is one of the two divisors
    either side of ``p*``.

    Returns:
      ``(s, p)`` with ``s * p == c``.
    """
    c, n, kh, kw = (check_positive_int(name, v) for name, v in (("c", c), ("n", n), ("kh", kh), ("kw", kw)))
    p_star = math.sqrt(n * c / (kh * kw))
    divisors = [p for p in range(1, c + 1) if c % p == 0]
    best = min(divisors, key=lambda p: (gamma_split(m=1, n=n, s=c // p, p=p, kernel_size=(kh, kw)), abs(p - p_star)))
    return c // best, best


def _macs(spec: BasisSpec, *, input_shape: Sequence[int], output_shape: Sequence[int]) -> int:
    """The decomposed path (basis conv on every split, then the coefficient conv) with the
    paper's ``m`` (no padding), when cheaper than the dense conv or when the coefficient
    conv is larger than 1x1."""
    positions = math.prod(output_shape[1:-1])
    (kh, kw), (kch, kcw) = spec.kernel_size, spec.coef_kernel_size
    s, m, p, n = spec.splits, spec.num_basis, spec.split_size, spec.features
    decomposed = positions * (s * m * p * kh * kw + n * s * m * kch * kcw)
    return decomposed if (kch, kcw) != (1, 1) else min(decomposed, dense_macs(spec, output_shape=output_shape))


def _describe(spec: BasisSpec) -> str:
    text = f"m={spec.num_basis}, s={spec.splits}, p={spec.split_size}"
    if spec.coef_kernel_size != (1, 1):
        text += f", coef {'x'.join(map(str, spec.coef_kernel_size))}"
    return text


#: Learning Filter Basis's record (see :class:`compact_jax.protocol.Method`).
METHOD = Method(
    name="basis", spec_cls=BasisSpec, init=init, build_kernel=build_kernel, num_params=num_params, fit=fit,
    apply=apply, macs=_macs, describe=_describe, extras=("split_size",),
    description="Learning Filter Basis: split-wise filters from a (shareable) small basis",
)
