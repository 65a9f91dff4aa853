"""Tests for compact_jax.quant against plain-Python / NumPy references."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compact_jax import dense
from compact_jax.conv import conv
from compact_jax.quant import Quantizer, quantize_int, quantize_mantissa, quantize_tree


def mantissa_reference(x: float, bits: int) -> float:
    """The authors' formula, one Python float at a time (round() is half-to-even)."""
    if x == 0:
        return 0.0
    exponent = min(max(math.floor(math.log2(abs(x))), -64), 63)
    q_max = 2**bits - 1
    q = min(max(round(x * 2.0 ** (bits - 1 - exponent)), -q_max), q_max)
    return q * 2.0 ** (exponent - (bits - 1))


def int_reference(x: np.ndarray, bits: int, axis: int | None) -> np.ndarray:
    """Symmetric int-k on the whole tensor, or one channel at a time along ``axis``."""
    if axis is not None:
        channels = [int_reference(np.take(x, c, axis), bits, None) for c in range(x.shape[axis])]
        return np.stack(channels, axis=axis)
    q_max = 2 ** (bits - 1) - 1
    amax = np.abs(x).max()
    scale = amax / np.float32(q_max) if amax > 0 else np.float32(1)
    return (np.clip(np.round(x / scale), -q_max, q_max) * scale).astype(np.float32)


def wide_range_values(seed: int, n: int = 600) -> np.ndarray:
    """Signed float32 values with magnitudes spread over 2**-70 .. 2**70."""
    rng = np.random.default_rng(seed)
    magnitudes = 2.0 ** rng.uniform(-70, 70, n)
    return (rng.choice([-1.0, 1.0], n) * magnitudes).astype(np.float32)


# ----------------------------------------------------------------- mantissa


ACCEPTANCE = [(0.3, 0.3125), (-0.1234, -0.1171875), (1.7, 1.75)]


@pytest.mark.parametrize("x, expected", ACCEPTANCE)
def test_mantissa_acceptance_numbers(x, expected):
    assert mantissa_reference(x, 4) == expected
    assert float(quantize_mantissa(jnp.float32(x), bits=4)) == expected


def test_mantissa_rounds_half_to_even_and_saturates_in_binade():
    # m=2: 1.25 -> q=2.5 -> 2 (even, not 3); 1.75 -> q=3.5 -> 4 -> clamped to 3.
    x = jnp.array([1.25, -1.25, 1.75, 2.5], jnp.float32)
    np.testing.assert_array_equal(quantize_mantissa(x, bits=2), [1.0, -1.0, 1.5, 2.0])


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 12, 23, 24])
def test_mantissa_matches_python_reference(bits):
    x = wide_range_values(bits)
    expected = np.array([mantissa_reference(float(v), bits) for v in x], np.float32)
    np.testing.assert_array_equal(quantize_mantissa(jnp.asarray(x), bits=bits), expected)


def test_mantissa_float64_matches_python_reference():
    # 1 + 2**-12 + 2**-40 rounds up to 1 + 2**-11 at m=12; via float32 it would tie down to 1.
    x = np.append(wide_range_values(7).astype(np.float64) * (1 + 2.0**-40), 1 + 2.0**-12 + 2.0**-40)
    with jax.enable_x64(True):
        out = quantize_mantissa(jnp.asarray(x), bits=12)
        assert out.dtype == jnp.float64 and out[-1] == 1 + 2.0**-11
        np.testing.assert_array_equal(out, [mantissa_reference(float(v), 12) for v in x])


def test_mantissa_24_bits_is_lossless_in_exponent_range():
    x = np.random.default_rng(0).normal(size=500).astype(np.float32)
    np.testing.assert_array_equal(quantize_mantissa(jnp.asarray(x), bits=24), x)


def test_mantissa_zero_tiny_huge_are_finite():
    x = jnp.array([0.0, -0.0, 1e-30, 1e-45, 3 * 2.0**-66, 3e38, -3e38, jnp.inf], jnp.float32)
    out = quantize_mantissa(x, bits=4)
    top = (2**4 - 1) * 2.0 ** (63 - 3)  # largest value: q=15 at E=63
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 3 * 2.0**-66, top, -top, top])
    grad = jax.grad(lambda v: quantize_mantissa(v, bits=4).sum())(x)
    np.testing.assert_array_equal(grad, np.ones(8))


# ---------------------------------------------------------------------- int


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("axis", [None, -1, 0, 2])
def test_int_matches_numpy_reference(bits, axis):
    x = np.random.default_rng(bits).normal(size=(3, 3, 4, 5)).astype(np.float32)
    out = quantize_int(jnp.asarray(x), bits=bits, axis=axis)
    np.testing.assert_allclose(out, int_reference(x, bits, axis), rtol=1e-6, atol=1e-7)


def test_int_values_lie_on_the_grid():
    x = np.random.default_rng(1).normal(size=(3, 3, 2, 4)).astype(np.float32)
    out = np.asarray(quantize_int(jnp.asarray(x), bits=4, axis=-1))
    scale = np.abs(x).max(axis=(0, 1, 2)) / 7
    levels = out / scale
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-5)
    np.testing.assert_allclose(np.abs(levels).max(axis=(0, 1, 2)), 7, rtol=1e-6)
    assert len(np.unique(np.round(levels[..., 0]))) <= 15


def test_int_zero_tensor_and_zero_channel():
    x = np.random.default_rng(2).normal(size=(3, 3, 2, 4)).astype(np.float32)
    x[..., 1] = 0.0
    out = quantize_int(jnp.asarray(x), bits=8, axis=-1)
    assert np.all(np.isfinite(out)) and np.all(np.asarray(out)[..., 1] == 0)
    zeros = jnp.zeros((2, 3))
    np.testing.assert_array_equal(quantize_int(zeros, bits=8), zeros)
    grad = jax.grad(lambda v: quantize_int(v, bits=8).sum())(zeros)
    np.testing.assert_array_equal(grad, np.ones((2, 3)))


# ------------------------------------------------------------------- shared

QUANTIZERS = [
    Quantizer(kind="mantissa", bits=3),
    Quantizer(kind="mantissa", bits=8),
    Quantizer(kind="int", bits=4),
    Quantizer(kind="int", bits=8, axis=-1),
]


@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=str)
def test_idempotent(quantizer):
    x = jnp.asarray(np.random.default_rng(3).normal(size=(3, 3, 4, 6)).astype(np.float32))
    once = quantizer(x)
    if quantizer.kind == "mantissa":
        np.testing.assert_array_equal(quantizer(once), once)
    else:  # the rescale from the quantised max may move a value by an ulp
        np.testing.assert_allclose(quantizer(once), once, rtol=1e-6, atol=0)


@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=str)
def test_gradient_is_identity(quantizer):
    rng = np.random.default_rng(4)
    x, w = (jnp.asarray(rng.normal(size=(2, 5)).astype(np.float32)) for _ in range(2))
    grad = jax.grad(lambda v: jnp.sum(w * quantizer(v)))(x)
    np.testing.assert_array_equal(grad, w)
    _, tangent = jax.jvp(quantizer, (x,), (w,))
    np.testing.assert_array_equal(tangent, w)


@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=str)
def test_jit_and_vmap(quantizer):
    x = jnp.asarray(np.random.default_rng(5).normal(size=(3, 4, 6)).astype(np.float32))
    eager = quantizer(x)
    per_example = np.stack([quantizer(x_i) for x_i in x])
    # XLA may turn the division by q_max into a reciprocal multiply: 1 ulp.
    np.testing.assert_allclose(jax.jit(quantizer)(x), eager, rtol=1e-6, atol=0)
    np.testing.assert_allclose(jax.vmap(quantizer)(x), per_example, rtol=1e-6, atol=0)
    static = jax.jit(lambda v, q: q(v), static_argnums=1)
    np.testing.assert_allclose(static(x, quantizer), eager, rtol=1e-6, atol=0)
    if quantizer.kind == "int" and quantizer.axis is None:  # scales really are per example
        assert not np.allclose(eager, per_example)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_dtype_preserved(dtype):
    x = jnp.array([0.3, -0.1234, 1.7], dtype)
    out = quantize_mantissa(x, bits=4)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.astype(jnp.float32), [0.3125, -0.1171875, 1.75])
    assert quantize_int(x, bits=8).dtype == dtype


def test_quantize_tree_only_touches_float_leaves():
    rng = np.random.default_rng(6)
    params = {"coeffs": jnp.asarray(rng.normal(size=(4, 2, 3, 3)), jnp.float32),
              "bias": jnp.asarray(rng.normal(size=(4,)), jnp.float32),
              "index": jnp.arange(5), "name": "layer0"}
    quantizer = Quantizer(kind="int", bits=4, axis=-1)
    out = quantize_tree(params, quantizer)
    for key in ("coeffs", "bias"):
        np.testing.assert_allclose(out[key], int_reference(np.asarray(params[key]), 4, -1), rtol=1e-6)
    assert out["index"] is params["index"] and out["name"] == "layer0"


def test_quantised_kernel_and_activations_in_a_conv():
    """The straight-through gradient through conv equals the conv gradient at the quantised kernel."""
    spec = dense.DenseSpec(features=4, in_features=3, kernel_size=(3, 3))
    kernel = dense.build_kernel(dense.init(jax.random.key(0), spec), spec)
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
    q_w, q_a = Quantizer(kind="mantissa", bits=4), Quantizer(kind="int", bits=8)

    def loss(k):
        return jnp.sum(q_a(conv(x, q_w(k))) ** 2)

    k_hat = q_w(kernel)
    y_hat = q_a(conv(x, k_hat))
    # Both quantisers pass the cotangent through unchanged: d loss / d k = conv_vjp(2 * y_hat) at k_hat.
    (expected,) = jax.vjp(lambda k: conv(x, k), k_hat)[1](2 * y_hat)
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(kernel), expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(kind="mantissa", bits=0), ValueError, r"bits must lie in \[1, 24\].*got 0"),
    (dict(kind="mantissa", bits=-3), ValueError, r"got -3"),
    (dict(kind="mantissa", bits=25), ValueError, r"mantissa quantiser, got 25"),
    (dict(kind="int", bits=1), ValueError, r"bits must lie in \[2, 16\].*got 1"),
    (dict(kind="int", bits=17), ValueError, r"int quantiser, got 17"),
    (dict(kind="int", bits=4.0), TypeError, r"bits must be an integer, got 4.0"),
    (dict(kind="int", bits=True), TypeError, r"bits must be an integer, got True"),
    (dict(kind="fp8", bits=4), ValueError, r"kind must be one of .*got 'fp8'"),
    (dict(kind=None, bits=4), TypeError, r"kind must be one of .*got None"),
    (dict(kind="mantissa", bits=4, axis=-1), ValueError, r"axis applies to kind='int' only, got axis=-1"),
    (dict(kind="int", bits=4, axis="out"), TypeError, r"axis must be an integer, got 'out'"),
])
def test_bad_quantizer_spec(kwargs, error, match):
    with pytest.raises(error, match=match):
        Quantizer(**kwargs)


def test_bad_function_input():
    x = jnp.ones((3, 3, 2, 4))
    with pytest.raises(ValueError, match=r"bits must lie in \[1, 24\].*got 0"):
        quantize_mantissa(x, bits=0)
    with pytest.raises(ValueError, match=r"axis 4 is out of range for an input of shape \(3, 3, 2, 4\)"):
        quantize_int(x, bits=8, axis=4)
    with pytest.raises(ValueError, match=r"axis -1 is out of range for an input of shape \(\)"):
        Quantizer(kind="int", bits=8, axis=-1)(jnp.float32(1.0))
    with pytest.raises(TypeError, match=r"quantize_int expects a floating-point array, got dtype int32"):
        quantize_int(jnp.arange(4), bits=8)
    with pytest.raises(TypeError, match=r"quantize_mantissa expects a floating-point array, got dtype int32"):
        quantize_mantissa(jnp.arange(4), bits=8)
    with pytest.raises(TypeError, match=r"quantizer must be a Quantizer or a callable, got 8"):
        quantize_tree({"w": x}, 8)
