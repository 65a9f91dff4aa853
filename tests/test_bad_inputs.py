"""Malformed inputs to the library's public functions and modules, one row each.

Each row is ``(callable, exception type, substrings)``: calling it must raise
exactly that type (``TypeError`` for the wrong kind of value, ``ValueError``
for the right kind with a wrong value), from compact_jax's own validation
(never from inside JAX/XLA), with a message containing every substring; the
substrings name the bad value or parameter. A row that returns instead of
raising fails, so nothing here may produce NaN or a silent result.
Shapes are tiny and nothing is compiled beyond a few small ops.
"""

from __future__ import annotations

import functools
import math
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from compact_jax import basis, compress, dense, fdc3d, filtermap, quant, report, series
from compact_jax import linen as cl
from compact_jax import models
from compact_jax import nnx as cx
from compact_jax.basis import BasisSpec
from compact_jax.compress import Policy, expand_runs, per_group_rules
from compact_jax.conv import conv
from compact_jax.dense import DenseSpec
from compact_jax.fdc3d import FrequencySpec
from compact_jax.fdc3d._orthogonal import householder_product
from compact_jax.filtermap import FilterMapSpec
from compact_jax.series import SeriesSpec, parse_harmonics

KEY = jax.random.key(0)

DS = DenseSpec(features=4, in_features=2, kernel_size=(3, 3))
SS = SeriesSpec(features=4, in_features=2, kernel_size=(3, 3), family="cosine", harmonics=2)
FS = FilterMapSpec(features=4, in_features=2, kernel_size=(3, 3), grid=(2, 2, 1))
BS = BasisSpec(features=4, in_features=2, kernel_size=(3, 3), num_basis=2)
TS = FrequencySpec(features=2, in_features=2, kernel_size=(3, 3, 3))

X2 = np.zeros((1, 5, 5, 2), np.float32)
K2 = np.zeros((3, 3, 2, 4), np.float32)
COEFFS = np.zeros(SS.coeff_shape, np.float32)


def _f32(shape):
    return np.zeros(shape, np.float32)


def _basis_params(**overrides):
    params = {"basis": _f32(BS.basis_shape), "coef": _f32(BS.coef_shape)}
    params.update(overrides)
    return params


def _fdc_params(**overrides):
    params = {"coeffs": _f32(TS.coeffs_shape), "beta": _f32((2,)), "householder": _f32((3, 3))}
    params.update(overrides)
    return params


def _linen_init(module, x):
    return module.init(KEY, x)


def _tiny_model():
    return models.get_model("resnet20", stage_sizes=(1, 1, 1), widths=(2, 2, 2))


def _nnx_dense():
    return cx.DenseConv(2, 4, (3, 3), rngs=nnx.Rngs(0))


def _load(params):
    return lambda: cx.load_linen_params(_nnx_dense(), params)


CASES = [
    # --- series (ApproxConv): param dicts, dtypes, intervals, harmonics strings
    ("series.build_kernel missing key", lambda: series.build_kernel({}, SS), ValueError, ["'coeffs'"]),
    ("series.build_kernel bare array", lambda: series.build_kernel(COEFFS, SS), TypeError, ["ndarray", "'coeffs'"]),
    ("series.build_kernel list", lambda: series.build_kernel([COEFFS], SS), TypeError, ["list"]),
    ("series.build_kernel list value", lambda: series.build_kernel({"coeffs": COEFFS.tolist()}, SS),
     TypeError, ["params['coeffs']", "list"]),
    ("series.build_kernel int coeffs", lambda: series.build_kernel({"coeffs": np.ones(SS.coeff_shape, np.int32)}, SS),
     TypeError, ["int32", "floating"]),
    ("series.build_kernel wrong shape", lambda: series.build_kernel({"coeffs": _f32((3, 3, 2, 4))}, SS),
     ValueError, ["(3, 3, 2, 4)", "2, 2, 2, 4"]),
    ("series.build_kernel extra key", lambda: series.build_kernel({"coeffs": COEFFS, "bias": _f32((4,))}, SS),
     ValueError, ["'bias'"]),
    ("series.build_kernel wrong spec", lambda: series.build_kernel({"coeffs": COEFFS}, DS), TypeError, ["DenseSpec"]),
    ("SeriesSpec near-zero-width interval",
     lambda: SeriesSpec(features=4, in_features=2, kernel_size=(3, 3), family="cosine", interval=(1.0, 1.0001)),
     ValueError, ["(1.0, 1.0001)", "condition number"]),
    ("SeriesSpec reversed interval",
     lambda: SeriesSpec(features=4, in_features=2, kernel_size=(3, 3), family="cosine", interval=(2.0, 1.0)),
     ValueError, ["(2.0, 1.0)", "low < high"]),
    ("SeriesSpec non-finite interval",
     lambda: SeriesSpec(features=4, in_features=2, kernel_size=(3, 3), family="cosine", interval=(0.0, math.inf)),
     ValueError, ["inf", "finite"]),
    ("SeriesSpec interval outside domain",
     lambda: SeriesSpec(features=4, in_features=2, kernel_size=(3, 3), family="chebyshev", interval=(-2.0, 1.0)),
     ValueError, ["(-2.0, 1.0)", "[-1, 1]"]),
    ("SeriesSpec harmonics > kernel",
     lambda: SeriesSpec(features=4, in_features=2, kernel_size=(3, 3), family="cosine", harmonics=4),
     ValueError, ["(4, 4)", "kernel_size"]),
    ("SeriesSpec unknown family",
     lambda: SeriesSpec(features=4, in_features=2, kernel_size=(3, 3), family="sine"), ValueError, ["'sine'"]),
    ("series.fit list kernel", lambda: series.fit(K2.tolist(), SS), TypeError, ["list"]),
    ("series.fit wrong kernel shape", lambda: series.fit(_f32((3, 3, 4, 2)), SS), ValueError, ["(3, 3, 4, 2)"]),
    ("series.fit_gradient empty start", lambda: series.fit_gradient(K2, SS, start={}), ValueError, ["'coeffs'"]),
    ("parse_harmonics zero repeat", lambda: parse_harmonics("7x0"), ValueError, ["'7x0'", "repeat"]),
    ("parse_harmonics zero harmonics", lambda: parse_harmonics("0,3"), ValueError, ["'0'"]),
    ("expand_runs zero repeat", lambda: expand_runs("7x0"), ValueError, ["'7x0'", "repeat count 0"]),
    ("expand_runs zero value", lambda: expand_runs("0,3"), ValueError, ["'0'", "value 0"]),
    ("expand_runs empty", lambda: expand_runs(""), ValueError, ["''"]),
    ("per_group_rules zero repeat", lambda: per_group_rules("cosine", "3x0,2", ["a", "b"]), ValueError, ["'3x0'"]),
    # --- dense baseline
    ("dense.build_kernel missing key", lambda: dense.build_kernel({}, DS), ValueError, ["'kernel'"]),
    ("dense.build_kernel list value", lambda: dense.build_kernel({"kernel": K2.tolist()}, DS), TypeError, ["list"]),
    ("dense.build_kernel int kernel", lambda: dense.build_kernel({"kernel": K2.astype(np.int32)}, DS),
     TypeError, ["int32"]),
    ("dense.build_kernel wrong shape", lambda: dense.build_kernel({"kernel": _f32((3, 3, 4, 2))}, DS),
     ValueError, ["(3, 3, 4, 2)"]),
    ("dense.init wrong spec", lambda: dense.init(KEY, "spec"), TypeError, ["str"]),
    ("DenseSpec zero features", lambda: DenseSpec(features=0, in_features=2, kernel_size=(3, 3)),
     ValueError, ["features", "0"]),
    ("DenseSpec 4-D kernel", lambda: DenseSpec(features=4, in_features=2, kernel_size=(3, 3, 3, 3)),
     ValueError, ["(3, 3, 3, 3)"]),
    ("DenseSpec bool kernel size", lambda: DenseSpec(features=4, in_features=2, kernel_size=(True, 3)),
     TypeError, ["True"]),
    ("DenseSpec groups", lambda: DenseSpec(features=4, in_features=3, kernel_size=(3, 3), feature_group_count=2),
     ValueError, ["(3)", "(2)"]),
    # --- 3D-FilterMap
    ("filtermap.build_kernel missing key", lambda: filtermap.build_kernel({}, FS), ValueError, ["'filtermap'"]),
    ("filtermap.build_kernel wrong shape", lambda: filtermap.build_kernel({"filtermap": _f32((4, 4, 1))}, FS),
     ValueError, ["(4, 4, 1)"]),
    ("filtermap.build_kernel int map", lambda: filtermap.build_kernel({"filtermap": np.ones(FS.map_shape, int)}, FS),
     TypeError, ["int64"]),
    ("FilterMapSpec grid product", lambda: FilterMapSpec(features=4, in_features=2, kernel_size=(3, 3), grid=(2, 2, 2)),
     ValueError, ["(2, 2, 2)", "features=4"]),
    ("FilterMapSpec wrap", lambda: FilterMapSpec(features=4, in_features=2, kernel_size=(3, 3), grid=(2, 2, 1),
                                                  wrap="around"), ValueError, ["'around'"]),
    ("FilterMapSpec larger than dense", lambda: FilterMapSpec(features=4, in_features=2, kernel_size=(3, 3),
                                                              grid=(2, 2, 1), map_strides=(5, 5, 2)),
     ValueError, ["(10, 10, 2)", "map_strides=(5, 5, 2)", "allow_larger"]),
    ("linen FilterMapConv larger than dense", lambda: _linen_init(cl.FilterMapConv(4, (1, 1), grid=(2, 2, 1)), X2),
     ValueError, ["(4, 4, 2)", "allow_larger"]),
    ("filtermap.fit list", lambda: filtermap.fit(K2.tolist(), FS), TypeError, ["list"]),
    # --- Learning Filter Basis
    ("basis.build_kernel missing coef", lambda: basis.build_kernel({"basis": _f32(BS.basis_shape)}, BS),
     ValueError, ["'coef'"]),
    ("basis.build_kernel int basis", lambda: basis.build_kernel(_basis_params(basis=np.ones(BS.basis_shape, np.int32)),
                                                                BS), TypeError, ["params['basis']", "int32"]),
    ("basis.build_kernel list coef", lambda: basis.build_kernel(_basis_params(coef=[[1.0]]), BS),
     TypeError, ["params['coef']", "list"]),
    ("basis.apply list input", lambda: basis.apply(_basis_params(), X2.tolist(), BS), TypeError, ["list"]),
    ("BasisSpec larger than dense", lambda: BasisSpec(features=4, in_features=2, kernel_size=(3, 3), num_basis=100),
     ValueError, ["num_basis=100", "allow_larger"]),
    ("BasisSpec allow_larger not bool", lambda: BasisSpec(features=4, in_features=2, kernel_size=(3, 3), num_basis=2,
                                                          allow_larger="yes"), TypeError, ["'yes'"]),
    ("BasisSpec splits", lambda: BasisSpec(features=4, in_features=2, kernel_size=(3, 3), num_basis=1, splits=3),
     ValueError, ["splits (3)"]),
    ("BasisSpec zero num_basis", lambda: BasisSpec(features=4, in_features=2, kernel_size=(3, 3), num_basis=0),
     ValueError, ["num_basis", "0"]),
    # --- FDC3D
    ("temporal.build_kernel empty", lambda: fdc3d.build_kernel({}, TS), ValueError, ["'coeffs'"]),
    ("temporal.build_kernel int householder", lambda: fdc3d.build_kernel(
        _fdc_params(householder=np.eye(3, dtype=np.int32)), TS), TypeError, ["params['householder']", "int32"]),
    ("temporal.build_kernel wrong beta", lambda: fdc3d.build_kernel(_fdc_params(beta=_f32((3,))), TS),
     ValueError, ["'beta'", "(3,)"]),
    ("temporal.build_kernel wrong spec", lambda: fdc3d.build_kernel(_fdc_params(), DS), TypeError, ["DenseSpec"]),
    ("temporal.init wrong spec", lambda: fdc3d.init(KEY, SS), TypeError, ["SeriesSpec"]),
    ("temporal.apply list input", lambda: fdc3d.apply(_fdc_params(), [[0.0]], TS), TypeError, ["list"]),
    ("FrequencySpec 2-D kernel", lambda: FrequencySpec(features=2, in_features=2, kernel_size=(3, 3)),
     ValueError, ["(3, 3)"]),
    ("FrequencySpec kept_rows out of range",
     lambda: FrequencySpec(features=2, in_features=2, kernel_size=(3, 3, 3), kept_rows=(5,)), ValueError, ["(5,)"]),
    ("temporal.importance list", lambda: fdc3d.importance([1.0], TS), TypeError, ["list"]),
    ("temporal.importance int coeffs", lambda: fdc3d.importance({"coeffs": np.ones(TS.coeffs_shape, np.int32)}, TS),
     TypeError, ["params['coeffs']", "int32"]),
    ("temporal.channel_sparsity no beta", lambda: fdc3d.channel_sparsity({"coeffs": _f32((2,))}), TypeError,
     ["'beta'", "['coeffs']"]),
    ("temporal.transform_matrix empty", lambda: fdc3d.transform_matrix({}, TS), ValueError, ["'householder'"]),
    ("householder_product list", lambda: householder_product([[1.0, 0.0]], flip=False), TypeError, ["list"]),
    ("householder_product int", lambda: householder_product(np.eye(3, dtype=np.int32), flip=False),
     TypeError, ["int32"]),
    # --- conv
    ("conv list input", lambda: conv(X2.tolist(), K2), TypeError, ["list"]),
    ("conv list kernel", lambda: conv(X2, K2.tolist()), TypeError, ["list"]),
    ("conv wrong channels", lambda: conv(np.zeros((1, 5, 5, 3), np.float32), K2), ValueError, ["3 channels",
                                                                                            "in_features=2"]),
    ("conv zero stride", lambda: conv(X2, K2, strides=0), ValueError, ["strides", "(0, 0)"]),
    ("conv unknown impl", lambda: conv(X2, K2, impl="fast"), ValueError, ["'fast'"]),
    ("conv empty spatial", lambda: conv(np.zeros((1, 0, 5, 2), np.float32), K2), ValueError, ["(1, 0, 5, 2)"]),
    ("conv rank-2 kernel", lambda: conv(X2, np.zeros((3, 3), np.float32)), ValueError, ["(3, 3)"]),
    ("conv frames on 2-D", lambda: conv(X2, K2, impl="frames"), ValueError, ["'frames'"]),
    ("conv bias shape", lambda: conv(X2, K2, _f32((3,))), ValueError, ["(3,)"]),
    # --- Linen modules
    ("linen 3-D layer given NHWC batch", lambda: _linen_init(cl.FrequencyConv3D(2, (3, 3, 3)), _f32((2, 5, 5, 2))),
     ValueError, ["(2, 5, 5, 2)", "rank >= 5"]),
    ("linen 2-D layer given HWC", lambda: _linen_init(cl.DenseConv(4, (3, 3)), _f32((5, 5, 2))),
     ValueError, ["(5, 5, 2)", "rank >= 4"]),
    ("linen 1-D layer given WC", lambda: _linen_init(cl.DenseConv(4, (3,)), _f32((5, 2))),
     ValueError, ["(5, 2)", "rank >= 3"]),
    ("linen layer list input", lambda: _linen_init(cl.DenseConv(4, (3, 3)), X2.tolist()), TypeError, ["list"]),
    ("linen BasisConv larger than dense", lambda: _linen_init(cl.BasisConv(4, (3, 3), num_basis=100), X2),
     ValueError, ["num_basis=100", "allow_larger"]),
    ("linen CosConv harmonics", lambda: _linen_init(cl.CosConv(4, (3, 3), harmonics=5), X2), ValueError, ["(5, 5)"]),
    ("linen FilterMapConv grid", lambda: _linen_init(cl.FilterMapConv(4, (3, 3), grid=(3, 1, 1)), X2),
     ValueError, ["(3, 1, 1)"]),
    # --- NNX modules
    ("nnx 2-D layer given HWC", lambda: _nnx_dense()(_f32((5, 5, 2))), ValueError, ["(5, 5, 2)", "rank >= 4"]),
    ("nnx 3-D layer given NHWC batch", lambda: cx.FrequencyConv3D(2, 2, (3, 3, 3), rngs=nnx.Rngs(0))(
        _f32((2, 5, 5, 2))), ValueError, ["(2, 5, 5, 2)", "rank >= 5"]),
    ("nnx BasisConv larger than dense", lambda: cx.BasisConv(2, 4, (3, 3), num_basis=100, rngs=nnx.Rngs(0)),
     ValueError, ["num_basis=100", "allow_larger"]),
    ("nnx load_linen_params empty", _load({}), ValueError, ["'kernel'", "'bias'"]),
    ("nnx load_linen_params partial", _load({"kernel": K2}), ValueError, ["['bias']"]),
    ("nnx load_linen_params not a dict", _load([K2]), TypeError, ["list"]),
    ("nnx load_linen_params list value", _load({"kernel": K2.tolist(), "bias": _f32((4,))}), TypeError,
     ["params['kernel']", "list"]),
    ("nnx load_linen_params wrong shape", _load({"kernel": _f32((3, 3, 2, 5)), "bias": _f32((4,))}), ValueError,
     ["(3, 3, 2, 5)"]),
    ("nnx load_linen_params unknown", _load({"kernel": K2, "bias": _f32((4,)), "scale": _f32((4,))}), ValueError,
     ["'scale'"]),
    # --- quantisers
    ("quantize_int int input", lambda: quant.quantize_int(np.ones(3, np.int32), bits=8), TypeError, ["int32"]),
    ("quantize_int 1 bit", lambda: quant.quantize_int(_f32((3,)), bits=1), ValueError, ["bits", "1"]),
    ("quantize_int axis", lambda: quant.quantize_int(_f32((3,)), bits=8, axis=5), ValueError, ["axis 5"]),
    ("quantize_int float bits", lambda: quant.quantize_int(_f32((3,)), bits=8.0), TypeError, ["8.0"]),
    ("quantize_mantissa 0 bits", lambda: quant.quantize_mantissa(_f32((3,)), bits=0), ValueError, ["bits", "0"]),
    ("Quantizer kind", lambda: quant.Quantizer(kind="float", bits=8), ValueError, ["'float'"]),
    ("Quantizer mantissa axis", lambda: quant.Quantizer(kind="mantissa", bits=4, axis=0), ValueError, ["axis=0"]),
    ("quantize_tree not callable", lambda: quant.quantize_tree({}, "int8"), TypeError, ["'int8'"]),
    # --- compress
    ("compress.resolve zero spatial", lambda: compress.resolve(Policy(), _tiny_model(), (2, 0, 8, 3)),
     ValueError, ["input_shape", "(2, 0, 8, 3)"]),
    ("compress.resolve negative spatial", lambda: compress.resolve(Policy(), _tiny_model(), (2, 8, -8, 3)),
     ValueError, ["input_shape", "(2, 8, -8, 3)"]),
    ("compress.resolve string shape", lambda: compress.resolve(Policy(), _tiny_model(), "2,8,8,3"),
     TypeError, ["input_shape", "'2,8,8,3'"]),
    ("compress.resolve float shape", lambda: compress.resolve(Policy(), _tiny_model(), (2, 8.5, 8, 3)),
     TypeError, ["input_shape", "8.5"]),
    ("compress.resolve short shape", lambda: compress.resolve(Policy(), _tiny_model(), (8, 3)),
     ValueError, ["input_shape", "(8, 3)"]),
    ("compress.resolve no shape", lambda: compress.resolve(Policy(), _tiny_model()), TypeError, ["input_shape"]),
    ("compress.trace_model not a model", lambda: compress.trace_model(object(), (1, 8, 8, 3)), TypeError,
     ["object"]),
    # --- report
    ("report.get_preset unknown", lambda: report.get_preset("basis-vgg99"), ValueError, ["'basis-vgg99'"]),
    ("report.get_preset not a string", lambda: report.get_preset(3), TypeError, ["3"]),
    ("report.report_model zero spatial", lambda: report.report_model("resnet20", input_shape=(1, 0, 32, 3)),
     ValueError, ["input_shape", "(1, 0, 32, 3)"]),
]


def test_table_is_large_enough():
    assert len(CASES) >= 60
    assert len({name for name, *_ in CASES}) == len(CASES), "case names must be unique"


@pytest.mark.parametrize("name, call, error, substrings", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, call, error, substrings):
    with pytest.raises(Exception) as info:
        result = call()
        pytest.fail(f"{name}: returned {result!r:.200} instead of raising {error.__name__}")
    assert type(info.value) is error, f"{name}: raised {type(info.value).__name__}: {info.value}"
    message = str(info.value)
    for text in substrings:
        assert text in message, f"{name}: {text!r} not in message {message!r}"
    # Raised by compact_jax's own checks, not from inside JAX/XLA or Flax.
    frames = traceback.extract_tb(info.value.__traceback__)
    assert "compact_jax" in frames[-1].filename, f"{name}: raised at {frames[-1].filename}:{frames[-1].lineno}"


# --- documented treatments (not errors): checked against independent references


def _int_reference(x, bits):
    """NumPy symmetric int-k quantisation with the scale from the finite values."""
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x)
    amax = np.abs(x[finite]).max() if finite.any() else 0.0
    q_max = 2 ** (bits - 1) - 1
    scale = amax / q_max if amax > 0 else 1.0
    with np.errstate(invalid="ignore"):
        return np.clip(np.round(x / scale), -q_max, q_max) * scale


def test_quantize_int_with_inf_keeps_finite_values_and_saturates():
    x = np.array([0.4, -1.0, 0.2, np.inf, -np.inf, np.nan, 0.7], np.float32)  # no rounding ties
    quantize = jax.jit(functools.partial(quant.quantize_int, bits=4))
    out = np.asarray(quantize(jnp.asarray(x)))
    np.testing.assert_allclose(out, _int_reference(x, 4), rtol=1e-6)
    # The finite entries are quantised exactly as without the non-finite ones.
    np.testing.assert_allclose(out[[0, 1, 2, 6]], np.asarray(quantize(jnp.asarray(x[[0, 1, 2, 6]]))))
    assert out[3] == 1.0 and out[4] == -1.0  # +-inf saturate at max |finite x|
    assert np.isnan(out[5]) and np.isfinite(np.delete(out, 5)).all()


def test_quantize_int_per_channel_inf_only_affects_its_channel():
    x = np.array([[0.5, 2.0], [np.inf, -1.0], [0.25, 1.0]], np.float32)
    out = np.asarray(jax.jit(functools.partial(quant.quantize_int, bits=8, axis=-1))(jnp.asarray(x)))
    expected = np.stack([_int_reference(x[:, c], 8) for c in range(2)], axis=-1)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert np.isfinite(out).all()


def test_zero_householder_vector_is_identity_factor():
    v = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.0, 0.0]], np.float32)
    s = np.asarray(jax.jit(functools.partial(householder_product, flip=False))(jnp.asarray(v)))
    u = v[1].astype(np.float64)
    reference = np.eye(3) - 2.0 * np.outer(u, u) / (u @ u)  # only the non-zero reflection
    np.testing.assert_allclose(s, reference, atol=1e-6)
    # All-zero vectors (a zeroed parameter) give J^flip, with a finite gradient.
    value, grad = jax.jit(jax.value_and_grad(lambda w: householder_product(w, flip=True)[0, 0]))(jnp.zeros((3, 3)))
    assert value == -1.0 and np.isfinite(np.asarray(grad)).all()


def test_allow_larger_builds_a_larger_basis_layer():
    spec = BasisSpec(features=4, in_features=2, kernel_size=(3, 3), num_basis=18, allow_larger=True)
    assert basis.num_params(spec) > spec.dense_num_params
    x = jnp.ones((1, 5, 5, 2))
    variables = jax.eval_shape(cl.BasisConv(4, (3, 3), num_basis=18, allow_larger=True).init, KEY, x)
    assert variables["params"]["coef"].shape == (1, 1, 18, 4)


def test_unbatched_input_to_raw_conv_still_allowed():
    # The functional conv keeps accepting zero batch dims; only layers require one.
    y = conv(jnp.ones((5, 5, 2)), jnp.ones((3, 3, 2, 4)), padding="VALID")
    np.testing.assert_allclose(np.asarray(y), np.full((3, 3, 4), 18.0))


def test_linen_and_nnx_accept_batched_input():
    x = jnp.ones((2, 5, 5, 2))
    module = cl.DenseConv(4, (3, 3))
    assert jax.eval_shape(lambda x: module.apply(module.init(KEY, x), x), x).shape == (2, 5, 5, 4)
    assert jax.eval_shape(_nnx_dense(), x).shape == (2, 5, 5, 4)
