"""FDC3D: frequency-domain compact 3-D convolutions (Chen et al., 2020).

A 3-D kernel ``K`` (DHWIO: ``(t, k_h, k_w, c, N)``, time first) is stored in a
temporal frequency domain: ``G = S K`` along the time axis, with ``S`` an
orthogonal ``t x t`` transform (learned, the DCT, or the identity). Pruning
keeps ``t'`` of the ``t`` frequency rows (the mask ``M`` of Eq. 5) and ``c'``
of the ``c`` input channels (the channel-selection vector ``beta`` of Eq. 8),
so the layer is, for kept rows ``f`` and kept channels ``i``::

    K[tau, :, :, i, :] = beta_i * sum_f S[f, tau] G[f, :, :, i, :]

and pruned channels have zero filters. Parameters (all physically of the
kept sizes):

* ``coeffs``: ``G``, ``(t', k_h, k_w, c', N)``, the kept frequency rows of the
  kept channels' filters;
* ``beta``: ``(c',)``, initialised to ones;
* ``householder`` (``(t, t)`` reflection normals) or ``skew`` (``(t, t)``, the
  generator ``W`` of ``A = W - W^T``) for the learned transforms; fixed
  transforms have no parameters. See :mod:`compact_jax.fdc3d._orthogonal`.

Storing ``G`` rather than ``K`` reparametrises Eq. (9): the same objective
(``K = S^T G`` since ``S`` is orthogonal) in frequency coordinates, so that a
pruned layer is physically smaller.

Two execution paths give the same numbers: ``path="kernel"`` rebuilds the
``(t, k_h, k_w, c', N)`` kernel and runs one 3-D convolution;
``path="frequency"`` (Eq. 5) projects the input onto the ``t'`` kept rows of
``S`` and runs one 2-D convolution over ``c' t'`` maps
(:mod:`compact_jax.fdc3d._conv`). Both read only the kept channels of the
full ``c``-channel input. Only ``feature_group_count=1`` is supported.

Learning ``S``: the learned transforms are trained with the rest of the
network (``penalty`` adds Eq. 9's regularisers to a loss), or, for a fixed
pretrained kernel, by :func:`fit_transform` (Eq. 7 on one layer).

Algorithm 1 on a trained network (:mod:`compact_jax.fdc3d._network`):
:func:`capture_layers` records each layer's inputs and outputs,
:func:`fit_layer` fits Eq. (9) on them (:func:`fit_outputs`: Adam on the
recorded data), :func:`fit_network` does both for every FDC3D layer of a
:class:`compact_jax.compress.Plan` and :func:`prune_network` prunes them.

Example (``fit_transform`` would learn ``S`` by Eq. (7) instead; fine-tune
with ``penalty()`` before pruning):

>>> import jax
>>> import jax.numpy as jnp
>>> from compact_jax import fdc3d
>>> spec = fdc3d.FrequencySpec(features=16, in_features=16, kernel_size=(3, 3, 3))
>>> dense_kernel = jax.random.normal(jax.random.key(0), spec.kernel_shape)
>>> params = fdc3d.fit(dense_kernel, spec)          # exact: G = S K
>>> bool(jnp.allclose(fdc3d.build_kernel(params, spec), dense_kernel, atol=1e-5))
True
>>> params, spec = fdc3d.prune(params, spec, p_c=1/4, p_t=1/3)   # the paper's 2x setting
>>> params["coeffs"].shape, fdc3d.speedup(in_features=16, temporal_size=3, p_c=1/4, p_t=1/3)
((2, 3, 3, 12, 16), 2.0)
>>> fdc3d.apply(params, jnp.ones((1, 4, 8, 8, 16)), spec).shape
(1, 4, 8, 8, 16)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from compact_jax.fdc3d import _orthogonal as orth
from compact_jax.fdc3d._conv import frequency_conv3d, gather_channels
from compact_jax.fdc3d._network import (
    CONV_KEYS,
    FittedLayer,
    capture_layers,
    fit_layer,
    fit_network,
    fit_outputs,
    prune_network,
)
from compact_jax.fdc3d._prune import (
    channel_sparsity,
    compression_rate,
    group_sparsity,
    importance,
    penalty,
    prune,
    pruned_sizes,
    speedup,
)
from compact_jax.fdc3d._spec import (
    IMPORTANCE,
    TRANSFORM_INITS,
    TRANSFORM_PARAM,
    TRANSFORMS,
    FrequencySpec,
    check_params,
    check_spec,
    initial_transform,
)
from compact_jax.validate import check_choice, check_int, check_param_dict
from compact_jax.arith import PaddingLike
from compact_jax.conv import check_conv_input, conv
from compact_jax.protocol import Method, check_kernel_shape

__all__ = [
    "METHOD",
    "TRANSFORMS",
    "TRANSFORM_INITS",
    "TRANSFORM_PARAM",
    "IMPORTANCE",
    "FrequencySpec",
    "init",
    "transform_matrix",
    "build_kernel",
    "apply",
    "num_params",
    "param_ratio",
    "fit",
    "fit_transform",
    "importance",
    "group_sparsity",
    "channel_sparsity",
    "penalty",
    "prune",
    "pruned_sizes",
    "speedup",
    "compression_rate",
    "dct_matrix",
    "CONV_KEYS",
    "capture_layers",
    "fit_outputs",
    "fit_layer",
    "FittedLayer",
    "fit_network",
    "prune_network",
]

dct_matrix = orth.dct_matrix
PATHS = ("auto", "kernel", "frequency")


def _init_transform_params(spec: FrequencySpec, dtype: Any) -> dict:
    name = TRANSFORM_PARAM.get(spec.transform)
    if name is None:
        return {}
    if name == "householder":
        vectors, _ = orth.reflection_vectors(initial_transform(spec))
        return {name: jnp.asarray(vectors, dtype)}
    t = spec.temporal_size
    return {name: jnp.zeros((t, t), dtype)}


def init(key: jax.Array, spec: FrequencySpec, *, dtype: Any = jnp.float32) -> dict:
    """Random coefficients (LeCun-normal scale of the dense kernel), ``beta = 1``, ``S`` at init."""
    check_spec(spec, "temporal.init")
    fan_in = math.prod(spec.kernel_size) * spec.in_features
    coeffs = jax.random.normal(key, spec.coeffs_shape, dtype) / math.sqrt(fan_in)
    return {
        "coeffs": coeffs,
        "beta": jnp.ones((spec.num_channels,), dtype),
        **_init_transform_params(spec, dtype),
    }


def transform_matrix(
    params: dict, spec: FrequencySpec, *, precision: Any = None, dtype: Any = None
) -> jax.Array:
    """The orthogonal ``S`` ``(t, t)``: row ``f`` is frequency ``f``, column ``tau`` a tap.

    ``dtype`` (of a fixed ``S``) defaults to that of ``params["coeffs"]``.
    """
    where = "temporal.transform_matrix"
    check_spec(spec, where)
    needed = [TRANSFORM_PARAM[spec.transform]] if spec.transform in TRANSFORM_PARAM else []
    needed += ["coeffs"] if dtype is None else []
    check_param_dict(params, {}, where=where, extra=True)
    missing = [name for name in needed if name not in params]
    if missing:
        raise ValueError(
            f"{where}: params lack {missing} (transform={spec.transform!r}"
            + (", and dtype=None reads params['coeffs']" if dtype is None else "") + f"), got {sorted(map(str, params))}"
        )
    dtype = params["coeffs"].dtype if dtype is None else dtype
    base = initial_transform(spec)
    if spec.transform == "learned_householder":
        return orth.householder_product(
            params["householder"], flip=orth.needs_flip(base), precision=precision
        )
    if spec.transform == "learned_cayley":
        return jnp.matmul(jnp.asarray(base, dtype), orth.cayley(params["skew"]), precision=precision)
    if spec.transform == "learned_expm":
        return jnp.matmul(jnp.asarray(base, dtype), orth.expm_skew(params["skew"]), precision=precision)
    return jnp.asarray(base, dtype)


def _kept_rows(params: dict, spec: FrequencySpec, precision: Any) -> jax.Array:
    return transform_matrix(params, spec, precision=precision)[np.asarray(spec.kept_rows)]


def _beta_scale(params: dict, ndim: int) -> jax.Array:
    """``beta`` shaped to scale the channel axis (second to last) of a rank-``ndim`` kernel."""
    return params["beta"].reshape((1,) * (ndim - 2) + (-1, 1))


def _kept_kernel(params: dict, spec: FrequencySpec, precision: Any) -> jax.Array:
    """``(t, k_h, k_w, c', N)``: ``beta_i * S_kept^T G`` over the kept channels."""
    rows = _kept_rows(params, spec, precision)
    kernel = jnp.einsum("ft,fhwcn->thwcn", rows, params["coeffs"], precision=precision)
    return kernel * _beta_scale(params, kernel.ndim)


def build_kernel(params: dict, spec: FrequencySpec, *, precision: Any = None) -> jax.Array:
    """The full DHWIO kernel ``(t, k_h, k_w, c, N)``; pruned channels are zero."""
    check_params(params, spec, where="temporal.build_kernel")
    kernel = _kept_kernel(params, spec, precision)
    if spec.num_channels == spec.in_features:
        return kernel
    full = jnp.zeros(spec.kernel_shape, kernel.dtype)
    return full.at[:, :, :, np.asarray(spec.kept_channels), :].set(kernel)


def apply(
    params: dict,
    x: jax.Array,
    spec: FrequencySpec,
    *,
    strides: int | Sequence[int] = 1,
    padding: PaddingLike = "SAME",
    input_dilation: int | Sequence[int] = 1,
    kernel_dilation: int | Sequence[int] = 1,
    feature_group_count: int = 1,
    precision: Any = None,
    path: str = "auto",
    conv_impl: str = "auto",
) -> jax.Array:
    """The layer on ``x (*batch, T, H, W, c)`` -> ``(*batch, T', H', W', N)`` (no bias).

    Args:
      params, spec: the layer.
      x: the full ``c = spec.in_features``-channel input; the kept channels
        are gathered here.
      strides, padding, input_dilation, kernel_dilation, precision: as in
        :func:`compact_jax.conv.conv`, time first; all supported by both paths.
      feature_group_count: must equal the spec's (1).
      path: ``"kernel"`` (rebuilt ``(t, k_h, k_w, c', N)`` kernel, one 3-D
        conv), ``"frequency"`` (Eq. 5: temporal projection onto the ``t'``
        kept rows, one 2-D conv over ``c' t'`` maps) or ``"auto"``: the
        frequency path when rows are pruned (``t' < t``), else the kernel path.
        The choice is static (made at trace time from the spec) and the same
        on every backend: the pruned frequency path was the faster one on CPU
        and on an NVIDIA H200 at 3D-ResNet-18 shapes. Its backward pass stays
        in the pruned domain (custom VJPs of the temporal projection and the
        channel gather, :mod:`compact_jax.fdc3d._conv`).
      conv_impl: ``impl`` of the kernel path's 3-D convolution.
    """
    where = "temporal.apply"
    check_choice("path", path, PATHS)
    if feature_group_count != spec.feature_group_count:
        raise ValueError(
            f"{where}: feature_group_count={feature_group_count!r} differs from the spec's "
            f"{spec.feature_group_count}"
        )
    check_conv_input(x, num_spatial=3, in_features=spec.in_features, where=where)
    check_params(params, spec, where=where)
    if spec.num_channels < spec.in_features:
        x = gather_channels(x, spec.kept_channels)
    conv_kwargs = dict(
        strides=strides, padding=padding, input_dilation=input_dilation,
        kernel_dilation=kernel_dilation, precision=precision,
    )
    if path == "auto":
        path = "frequency" if spec.num_rows < spec.temporal_size else "kernel"
    if path == "frequency":
        # beta scales the kept input channels: applied to x or to the coefficients, whichever
        # is smaller (static), as it commutes with the temporal projection.
        coeffs, beta, scaled = params["coeffs"], params["beta"], x
        if x.size <= coeffs.size:
            scaled = x * beta.astype(x.dtype).reshape((1,) * (x.ndim - 1) + (-1,))
        else:
            coeffs = coeffs * beta.reshape(1, 1, 1, -1, 1)
        y = frequency_conv3d(
            scaled, _kept_rows(params, spec, precision), coeffs,
            temporal_size=spec.temporal_size, **conv_kwargs,
        )
        if y is not None:
            return y
    return conv(x, _kept_kernel(params, spec, precision), impl=conv_impl, **conv_kwargs)


def num_params(spec: FrequencySpec) -> int:
    """``t' k_h k_w c' N`` coefficients + ``c'`` betas + ``t^2`` for a learned ``S``."""
    check_spec(spec, "temporal.num_params")
    transform = spec.temporal_size**2 if spec.transform in TRANSFORM_PARAM else 0
    return math.prod(spec.coeffs_shape) + spec.num_channels + transform


def param_ratio(spec: FrequencySpec) -> float:
    """Dense weights over stored weights (the inverse of Eq. 14 with ``beta`` counted)."""
    return spec.dense_num_params / num_params(spec)


def fit(kernel: jax.Array, spec: FrequencySpec) -> dict:
    """Coefficients ``G = S K`` of a dense kernel at the spec's initial ``S``, ``beta = 1``.

    Keeps the spec's rows and channels: exact without pruning; with pruned
    rows it is the orthogonal projection onto them (the best approximation in
    Frobenius norm for this ``S``); pruned channels are dropped.
    """
    check_spec(spec, "temporal.fit")
    check_kernel_shape(kernel, spec, where="temporal.fit")
    kernel = jnp.asarray(kernel)
    return _fit_coeffs(kernel, spec, _init_transform_params(spec, kernel.dtype))


def _kept_channels_of(kernel: jax.Array, spec: FrequencySpec) -> jax.Array:
    return kernel[:, :, :, np.asarray(spec.kept_channels), :]


def _fit_coeffs(kernel: jax.Array, spec: FrequencySpec, transform_params: dict) -> dict:
    """``transform_params`` plus ``coeffs = (S K)[kept rows, kept channels]`` and ``beta = 1``."""
    s = transform_matrix(transform_params, spec, precision="highest", dtype=kernel.dtype)
    rows = s[np.asarray(spec.kept_rows)]
    coeffs = jnp.einsum("ft,thwcn->fhwcn", rows, _kept_channels_of(kernel, spec), precision="highest")
    beta = jnp.ones((spec.num_channels,), kernel.dtype)
    return {**transform_params, "coeffs": coeffs, "beta": beta}


def fit_transform(
    kernel: jax.Array, spec: FrequencySpec, *, steps: int = 500, learning_rate: float = 0.05
) -> dict:
    """Learns ``S`` for a fixed dense kernel (Eq. 7, single layer), then fits ``G = S K``.

    With the kernel fixed the data term of Eq. (7) is constant (``S`` is
    orthogonal), so this runs ``steps`` of gradient descent on the l2,1 norm of
    all ``t`` rows of ``S K`` (the spec's kept channels, divided by
    ``||K||_F`` so that ``learning_rate`` is scale-free) from the spec's initial
    ``S``. The returned params are :func:`fit`'s for the learned ``S``: exact
    without pruning, and the kept rows are then the ones to prune by.

    Args:
      kernel: dense ``(t, k_h, k_w, c, N)``.
      spec: a spec with a learned transform.
      steps, learning_rate: plain gradient descent on the transform parameters.
    """
    check_kernel_shape(kernel, spec, where="temporal.fit_transform")
    if spec.transform not in TRANSFORM_PARAM:
        raise ValueError(
            f"temporal.fit_transform needs a learned transform, got transform={spec.transform!r}"
        )
    steps = check_int("steps", steps, minimum=0)
    name = TRANSFORM_PARAM[spec.transform]
    kernel = jnp.asarray(kernel)
    kept = _kept_channels_of(kernel, spec)
    kept = kept / jnp.maximum(jnp.linalg.norm(kept), jnp.finfo(kept.dtype).tiny)
    full = dataclasses.replace(spec, kept_rows=None)

    def objective(w):
        s = transform_matrix({name: w}, full, precision="highest", dtype=kernel.dtype)
        coeffs = jnp.einsum("ft,thwcn->fhwcn", s, kept, precision="highest")
        return group_sparsity({"coeffs": coeffs}, full)

    def step(_, w):
        return w - learning_rate * jax.grad(objective)(w)

    start = _init_transform_params(spec, kernel.dtype)[name]
    learned = jax.lax.fori_loop(0, steps, step, start)
    return _fit_coeffs(kernel, spec, {name: learned})


def _macs(spec: FrequencySpec, *, input_shape: Sequence[int], output_shape: Sequence[int]) -> int:
    """The frequency path (projection onto the ``t'`` kept rows, then a 2-D conv over
    ``c' t'`` maps) when rows are pruned, else the 3-D conv over the ``c'`` kept channels."""
    from compact_jax import arith

    out_spatial = tuple(output_shape[1:-1])
    c_kept, t_kept, t = spec.num_channels, spec.num_rows, spec.temporal_size
    if t_kept == t:
        return arith.conv_macs(out_spatial, spec.kernel_size, in_channels=c_kept, out_channels=spec.features)
    projection = out_spatial[0] * math.prod(input_shape[2:-1]) * c_kept * t_kept * t
    conv2d = math.prod(out_spatial) * math.prod(spec.kernel_size[1:]) * c_kept * t_kept * spec.features
    return projection + conv2d


def _describe(spec: FrequencySpec) -> str:
    return (f"t'={spec.num_rows}/{spec.temporal_size}, c'={spec.num_channels}/{spec.in_features}, "
            f"{spec.transform}")


#: FDC3D's record (see :class:`compact_jax.protocol.Method`).
METHOD = Method(
    name="fdc3d", spec_cls=FrequencySpec, init=init, build_kernel=build_kernel, num_params=num_params, fit=fit,
    apply=apply, macs=_macs, describe=_describe, aliases=("temporal",), extras=("p_c", "p_t"),
    description="FDC3D: 3-D convolutions stored as temporal-frequency coefficients",
)
