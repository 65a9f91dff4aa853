"""FDC3D single-layer pruning experiments (the paper's Sec. 5.3, Figures 2 and 3).

Private helper of :mod:`compact_jax.experiments`. One trained 3-D layer (a
DHWIO kernel ``K`` and a batch of its inputs ``x``) is pruned along its
temporal frequencies without fine-tuning, three ways:

* ``"min-l2"``: no transform (``S = I``): drop the temporal taps of smallest
  l2 norm;
* ``"DCT"``: ``G = S K`` with the DCT, drop the weakest frequency rows;
* ``"learned"``: an orthogonal ``S`` (Householder) learned on the layer's
  inputs and outputs ``y = conv(x, K)`` by Eq. (9) with ``beta`` fixed at 1
  (temporal pruning only): ``S`` and ``G`` keep the outputs under the l2,1
  row penalty. The original filters are then transformed, ``G = S K``, and
  the weakest rows dropped ("applying the optimal transform before pruning").

The error is the relative output error ``||y_pruned - y|| / ||y||``; the
speed-up is Eq. (13)'s ``c t / (c' t') = t / t'``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from compact_jax import fdc3d
from compact_jax.fdc3d import TRANSFORM_PARAM
from compact_jax.experiments._error import relative_error
from compact_jax.validate import check_choice, check_int, check_positive_int
from compact_jax.bench.fdc3d import layer_times
from compact_jax.conv import conv

__all__ = [
    "PRUNING_METHODS",
    "frequency_spec",
    "fit_frequency_layer",
    "transform_kernel",
    "prune_sweep",
    "PruningComparison",
    "pruning_comparison",
    "frequency_views",
    "layer_timings",
]

#: Label -> ``FrequencySpec.transform`` of the three single-layer pruning methods.
PRUNING_METHODS = {"min-l2": "none", "DCT": "dct", "learned": "learned_householder"}


def _kernel_dhwio(kernel: Any, where: str) -> jax.Array:
    kernel = jnp.asarray(kernel)
    if kernel.ndim != 5:
        raise ValueError(f"{where}: kernel must be a 3-D conv kernel (t, kh, kw, C_in, C_out), got shape {kernel.shape}")
    return kernel


def _conv_kwargs(conv_kwargs: Mapping[str, Any] | None) -> dict:
    conv_kwargs = dict(conv_kwargs or {})
    unknown = sorted(set(conv_kwargs) - set(fdc3d.CONV_KEYS))
    if unknown:
        raise ValueError(f"conv_kwargs may hold {', '.join(fdc3d.CONV_KEYS)}; got unknown keys {unknown}")
    return conv_kwargs


def frequency_spec(kernel: Any, *, transform: str) -> fdc3d.FrequencySpec:
    """The unpruned :class:`~compact_jax.temporal.FrequencySpec` of a DHWIO kernel's shape."""
    t, kh, kw, c_in, c_out = _kernel_dhwio(kernel, "frequency_spec").shape
    return fdc3d.FrequencySpec(features=c_out, in_features=c_in, kernel_size=(t, kh, kw), transform=transform)


def fit_frequency_layer(
    kernel: Any,
    x: Any,
    *,
    transform: str = "learned_householder",
    lam: float = 0.2,
    steps: int = 200,
    learning_rate: float = 0.01,
    conv_kwargs: Mapping[str, Any] | None = None,
) -> tuple[dict, fdc3d.FrequencySpec, np.ndarray]:
    """Eq. (9) on one layer with ``beta = 1``: ``S`` and ``G`` keep the outputs with few strong rows.

    Minimises, with Adam from the exact start ``G = S_0 K`` (``S_0`` the DCT),

    .. math:: \\frac{\\|y' - y\\|^2}{\\|y\\|^2}
              + \\lambda \\frac{\\|G\\|_{2,1}}{\\|K\\|_F},
              \\quad y = \\mathrm{conv}(x, K),\\; y' = \\mathrm{conv}(x, S^T G),

    both terms scale-free: :func:`compact_jax.fdc3d.fit_outputs` over ``S``
    and ``G`` with ``beta`` fixed at 1. ``S`` stays exactly orthogonal (its
    parametrisation).

    Args:
      kernel: the trained dense DHWIO kernel ``(t, kh, kw, C_in, C_out)``.
      x: a batch of the layer's inputs ``(N, T, H, W, C_in)``.
      transform: a learned transform of :data:`compact_jax.temporal.TRANSFORMS`.
      lam: weight of the row penalty.
      steps: Adam steps.
      learning_rate: Adam learning rate.
      conv_kwargs: the layer's ``strides``, ``padding``, dilations.

    Returns:
      ``(params, spec, history)``: unpruned layer params, its spec, and
      ``history (steps, 2)`` of the total loss and the output-error term before
      each step.
    """
    kernel = _kernel_dhwio(kernel, "fit_frequency_layer")
    if transform not in TRANSFORM_PARAM:
        learned = ", ".join(TRANSFORM_PARAM)
        raise ValueError(f"fit_frequency_layer: transform must be a learned one ({learned}), got {transform!r}")
    steps = check_int("steps", steps, minimum=1)
    conv_kwargs = _conv_kwargs(conv_kwargs)
    spec = frequency_spec(kernel, transform=transform)
    x = jnp.asarray(x, kernel.dtype)
    target = conv(x, kernel, **conv_kwargs)
    params, history = fdc3d.fit_outputs(
        fdc3d.fit(kernel, spec), spec, x[None], target[None], train=("coeffs", TRANSFORM_PARAM[transform]),
        row_weight=lam / float(jnp.linalg.norm(kernel)), steps=steps, learning_rate=learning_rate,
        conv_kwargs=conv_kwargs)
    return params, spec, np.asarray(history)


def transform_kernel(kernel: Any, params: dict, spec: fdc3d.FrequencySpec) -> dict:
    """``params`` with the coefficients replaced by the exact transform ``G = S K`` of ``kernel``.

    Applies a (learned) transform to the original filters, as FDC3D's Figure 2
    does before pruning: the layer equals the dense one until rows are dropped.
    """
    kernel = _kernel_dhwio(kernel, "transform_kernel")
    if spec.num_rows != spec.temporal_size or spec.num_channels != spec.in_features:
        raise ValueError("transform_kernel needs an unpruned spec (all rows and channels kept)")
    s = fdc3d.transform_matrix(params, spec, precision="highest", dtype=kernel.dtype)
    coeffs = jnp.einsum("ft,thwcn->fhwcn", s, kernel, precision="highest")
    return {**params, "coeffs": coeffs, "beta": jnp.ones((spec.in_features,), kernel.dtype)}


def prune_sweep(
    params: dict,
    spec: fdc3d.FrequencySpec,
    x: Any,
    target: Any,
    *,
    kept_rows: Iterable[int] | None = None,
    conv_kwargs: Mapping[str, Any] | None = None,
) -> list[dict]:
    """Prunes an unpruned layer to each number of kept frequency rows and measures the output error.

    Args:
      params, spec: the layer with all ``t`` rows and channels kept.
      x: a batch of the layer's inputs.
      target: the outputs to match (the dense layer's).
      kept_rows: the ``t'`` values, each in ``1 .. t``; default ``t, ..., 1``.
      conv_kwargs: the layer's ``strides``, ``padding``, dilations.

    Returns:
      One record per ``t'``: ``kept_rows``, ``p_t``, ``speedup`` (Eq. 13,
      ``t / t'``), ``mac_speedup`` (Eq. 10 over Eq. 12 with the projection
      cost), ``error`` (relative output error), ``rows`` (the kept row
      indices), ``params`` and ``spec`` of the pruned layer.
    """
    t = spec.temporal_size
    if spec.num_rows != t or spec.num_channels != spec.in_features:
        raise ValueError(
            f"prune_sweep needs an unpruned layer (all {t} rows, all {spec.in_features} channels), got "
            f"kept_rows={spec.kept_rows}, {spec.num_channels} channels"
        )
    conv_kwargs = _conv_kwargs(conv_kwargs)
    kept_rows = tuple(range(t, 0, -1)) if kept_rows is None else tuple(kept_rows)
    for kept in kept_rows:
        check_int("kept_rows entry", kept, minimum=1)
        if kept > t:
            raise ValueError(f"prune_sweep: kept_rows entries must lie in [1, {t}], got {kept} in {kept_rows}")
    x = jnp.asarray(x)
    records = []
    for kept in kept_rows:
        p_t = (t - kept) / t
        pruned, pruned_spec = fdc3d.prune(params, spec, p_c=0.0, p_t=p_t)
        out = fdc3d.apply(pruned, x, pruned_spec, **conv_kwargs)
        eq13 = dict(in_features=spec.in_features, temporal_size=t, p_c=0.0, p_t=p_t)
        records.append(dict(
            kept_rows=pruned_spec.num_rows, p_t=p_t, speedup=fdc3d.speedup(**eq13),
            mac_speedup=fdc3d.speedup(**eq13, features=spec.features),
            error=relative_error(out, target), rows=pruned_spec.kept_rows, params=pruned, spec=pruned_spec,
        ))
    return records


@dataclasses.dataclass(frozen=True)
class PruningComparison:
    """What :func:`pruning_comparison` produced.

    Attributes:
      records: method label -> :func:`prune_sweep` records, each with its
        ``method`` label added.
      layers: method label -> ``(params, spec)`` of its unpruned layer.
      target: the dense layer's outputs on the evaluation inputs.
      history: the learned fit's ``(steps, 2)`` loss history (empty without it).
    """

    records: dict[str, list[dict]]
    layers: dict[str, tuple[dict, fdc3d.FrequencySpec]]
    target: np.ndarray
    history: np.ndarray

    @property
    def all_records(self) -> list[dict]:
        """Every method's records in one list (for :func:`compact_jax.experiments.curves`)."""
        return [record for sweep in self.records.values() for record in sweep]


def pruning_comparison(
    kernel: Any,
    x: Any,
    *,
    eval_x: Any = None,
    methods: Iterable[str] = tuple(PRUNING_METHODS),
    kept_rows: Iterable[int] | None = None,
    lam: float = 0.2,
    steps: int = 200,
    learning_rate: float = 0.01,
    conv_kwargs: Mapping[str, Any] | None = None,
) -> PruningComparison:
    """FDC3D's single-layer experiment: min-l2, DCT and learned transform, each pruned to every ``t'``.

    Args:
      kernel: the trained dense DHWIO kernel.
      x: a batch of the layer's inputs (the learned transform is fitted on them).
      eval_x: held-out inputs the errors are measured on; default ``x``.
      methods: labels of :data:`PRUNING_METHODS`.
      kept_rows: the ``t'`` values (default all).
      lam, steps, learning_rate: the learned fit (:func:`fit_frequency_layer`).
      conv_kwargs: the layer's ``strides``, ``padding``, dilations.
    """
    kernel = _kernel_dhwio(kernel, "pruning_comparison")
    conv_kwargs = _conv_kwargs(conv_kwargs)
    methods = [check_choice("methods entry", m, tuple(PRUNING_METHODS)) for m in methods]
    x = jnp.asarray(x, kernel.dtype)
    eval_x = x if eval_x is None else jnp.asarray(eval_x, kernel.dtype)
    target = conv(eval_x, kernel, **conv_kwargs)
    layers, history = {}, np.zeros((0, 2))
    for label in methods:
        transform = PRUNING_METHODS[label]
        if transform in TRANSFORM_PARAM:
            fitted, spec, history = fit_frequency_layer(kernel, x, transform=transform, lam=lam, steps=steps,
                                                        learning_rate=learning_rate, conv_kwargs=conv_kwargs)
            params = transform_kernel(kernel, fitted, spec)
        else:
            spec = frequency_spec(kernel, transform=transform)
            params = fdc3d.fit(kernel, spec)
        layers[label] = (params, spec)
    records = {}
    for label, (params, spec) in layers.items():
        sweep = prune_sweep(params, spec, eval_x, target, kept_rows=kept_rows, conv_kwargs=conv_kwargs)
        records[label] = [dict(record, method=label) for record in sweep]
    return PruningComparison(records, layers, np.asarray(target), history)


def frequency_views(
    kernel: Any,
    params: dict,
    spec: fdc3d.FrequencySpec,
    *,
    channel: int,
    output: int,
    num_kept: int,
) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """One filter's temporal slices in the spatial and frequency domain (FDC3D's Figure 3).

    Args:
      kernel: the original dense DHWIO kernel ``(t, kh, kw, C_in, C_out)``.
      params, spec: an unpruned FDC3D layer (e.g. from :func:`fit_frequency_layer`).
      channel, output: the filter's input channel and output channel.
      num_kept: ``t'``, the frequency rows kept (the layer's strongest by
        :func:`compact_jax.temporal.importance`).

    Returns:
      ``(rows, kept)``: ``rows`` holds ``"spatial"`` (the original taps),
      ``"frequency"`` (the rows of ``G``) and ``"reconstructed"`` (``S^T`` of
      the kept rows), each ``(t, kh, kw)``; ``kept`` the kept row indices.
    """
    kernel = _kernel_dhwio(kernel, "frequency_views")
    t = spec.temporal_size
    if spec.num_rows != t or spec.num_channels != spec.in_features:
        raise ValueError("frequency_views needs an unpruned layer (all rows and channels kept)")
    check_positive_int("num_kept", num_kept)
    if num_kept > t:
        raise ValueError(f"frequency_views: num_kept must lie in [1, {t}], got {num_kept}")
    for name, value, size in (("channel", channel, spec.in_features), ("output", output, spec.features)):
        check_int(name, value, minimum=0)
        if value >= size:
            raise ValueError(f"frequency_views: {name} must lie in [0, {size}), got {value}")
    strength = np.asarray(fdc3d.importance(params, spec))
    kept = tuple(sorted(np.argsort(-strength, kind="stable")[:num_kept].tolist()))
    s = np.asarray(fdc3d.transform_matrix(params, spec), np.float64)
    coeffs = np.asarray(params["coeffs"], np.float64)[:, :, :, channel, output]
    mask = np.zeros((t, 1, 1))
    mask[list(kept)] = 1.0
    rows = {
        "spatial": np.asarray(kernel, np.float64)[:, :, :, channel, output],
        "frequency": coeffs,
        "reconstructed": np.einsum("ft,fhw->thw", s, mask * coeffs),
    }
    return rows, kept


def layer_timings(
    kernel: Any,
    layers: Mapping[str, tuple[dict, fdc3d.FrequencySpec]],
    x: Any,
    *,
    conv_kwargs: Mapping[str, Any] | None = None,
    repeats: int = 5,
    min_seconds: float = 0.2,
) -> dict[str, float]:
    """Forward seconds of the dense layer and of each (pruned) FDC3D layer on ``x``.

    The dense layer is timed with both 3-D convolution implementations
    (``"dense (xla)"``, ``"dense (frames)"``) and ``"dense"`` is the faster;
    each FDC3D layer runs its default path (the frequency path when rows are
    pruned). Uses :func:`compact_jax.bench.fdc3d.layer_times`.
    """
    kernel = _kernel_dhwio(kernel, "layer_timings")
    x = jnp.asarray(x, kernel.dtype)
    times = layer_times(kernel, layers, x, conv_kwargs=_conv_kwargs(conv_kwargs), repeats=repeats, backward=False,
                        min_seconds=min_seconds)
    timed = {name: forward for name, (forward, _) in times.items()}
    return {"dense": min(timed["dense (xla)"], timed["dense (frames)"]), **timed}
