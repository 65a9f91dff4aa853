"""The conv core against a NumPy reference and against conv arithmetic."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compact_jax import arith
from compact_jax.conv import conv
from reference import np_conv

RNG = np.random.default_rng(0)

CASES = [
    # (spatial input, kernel size, strides, padding, kernel dilation, input dilation, groups)
    ((9,), (3,), (1,), "SAME", (1,), (1,), 1),
    ((10,), (4,), (2,), "VALID", (2,), (1,), 2),
    ((7, 8), (3, 3), (1, 1), "SAME", (1, 1), (1, 1), 1),
    ((7, 8), (3, 2), (2, 3), "SAME", (1, 2), (1, 1), 1),
    ((7, 8), (5, 5), (2, 2), "VALID", (1, 1), (1, 1), 3),
    ((6, 6), (3, 3), (1, 1), ((2, 0), (1, 1)), (1, 1), (2, 2), 1),
    ((6, 5), (3, 3), (1, 2), 2, (2, 1), (1, 1), 1),
    ((4, 5, 6), (3, 3, 3), (1, 1, 1), "SAME", (1, 1, 1), (1, 1, 1), 1),
    ((5, 6, 6), (3, 1, 2), (2, 1, 2), "VALID", (1, 1, 1), (1, 1, 1), 3),
    ((4, 5, 5), (2, 3, 3), (1, 2, 1), [(1, 0), 1, (0, 2)], (1, 1, 2), (1, 1, 1), 1),
]


@pytest.mark.parametrize("spatial, ksize, strides, padding, kdil, idil, groups", CASES)
def test_conv_matches_numpy_and_arith(spatial, ksize, strides, padding, kdil, idil, groups):
    c_in, c_out = 3 * groups, 2 * groups
    x = RNG.normal(size=(2, *spatial, c_in)).astype(np.float32)
    k = RNG.normal(size=(*ksize, c_in // groups, c_out)).astype(np.float32)
    y = conv(
        x, k, strides=strides, padding=padding, kernel_dilation=kdil, input_dilation=idil,
        feature_group_count=groups, precision="highest",
    )
    out_spatial = arith.output_shape(
        spatial, ksize, strides=strides, padding=padding, kernel_dilation=kdil, input_dilation=idil
    )
    assert y.shape == (2, *out_spatial, c_out)
    pads = arith.canonical_padding(
        padding, input_spatial=spatial, kernel_size=ksize, strides=strides, kernel_dilation=kdil
    )
    ref = np_conv(x, k, strides=strides, pads=pads, input_dilation=idil, kernel_dilation=kdil, groups=groups)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "n, k, s, d", list(itertools.product([5, 8, 13], [1, 2, 3, 4], [1, 2, 3], [1, 2]))
)
def test_string_padding_agrees_with_xla(n, k, s, d):
    x = jnp.ones((1, n, n, 1))
    kernel = jnp.ones((k, k, 1, 1))
    for padding in ("SAME", "VALID"):
        if padding == "VALID" and (k - 1) * d + 1 > n:
            continue
        ours = conv(x, kernel, strides=s, padding=padding, kernel_dilation=d)
        xla = jax.lax.conv_general_dilated(
            x, kernel, (s, s), padding, rhs_dilation=(d, d), dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        np.testing.assert_array_equal(ours, xla)


def test_circular_padding_wraps():
    x = RNG.normal(size=(1, 5, 4, 2)).astype(np.float32)
    k = RNG.normal(size=(3, 3, 2, 3)).astype(np.float32)
    y = conv(x, k, padding="CIRCULAR", precision="highest")
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    np.testing.assert_allclose(y, np_conv(xp, k), rtol=1e-5, atol=1e-5)


def test_batch_dims_bias_and_dtype():
    k = RNG.normal(size=(3, 3, 2, 4)).astype(np.float32)
    b = RNG.normal(size=(4,)).astype(np.float32)
    x = RNG.normal(size=(2, 3, 6, 6, 2)).astype(np.float32)
    y = conv(x, k, b, precision="highest")
    flat = conv(x.reshape(6, 6, 6, 2), k, b, precision="highest")
    assert y.shape == (2, 3, 6, 6, 4)
    np.testing.assert_allclose(y.reshape(6, 6, 6, 4), flat, rtol=1e-6)
    single = conv(x[0, 0], k, b, precision="highest")  # unbatched input
    np.testing.assert_allclose(single, flat[0], rtol=1e-5, atol=1e-6)
    assert conv(x.astype(jnp.bfloat16), k).dtype == jnp.float32  # promoted
    assert conv(x, k, dtype=jnp.bfloat16).dtype == jnp.bfloat16


def test_jit_vmap_grad():
    x = jnp.asarray(RNG.normal(size=(2, 6, 6, 2)), jnp.float32)
    ks = jnp.asarray(RNG.normal(size=(5, 3, 3, 2, 4)), jnp.float32)
    f = jax.jit(lambda k: conv(x, k, strides=2))
    ys = jax.vmap(f)(ks)
    assert ys.shape == (5, 2, 3, 3, 4)
    np.testing.assert_allclose(ys[3], f(ks[3]), rtol=1e-5, atol=1e-5)
    g = jax.grad(lambda k: conv(x, k, precision="highest").sum())(ks[0])
    # d/dk of sum(conv) = sum over positions of the input patch: check against autodiff-free NumPy.
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.stack(
        [np.stack([xp[:, i : i + 6, j : j + 6, :].sum((0, 1, 2)) for j in range(3)]) for i in range(3)]
    )
    np.testing.assert_allclose(g, np.repeat(ref[..., None], 4, -1), rtol=1e-4)


@pytest.mark.parametrize(
    "x_shape, k_shape, kwargs, exc, match",
    [
        ((2, 8, 8, 3), (3, 3, 4, 5), {}, ValueError, "3 channels.*in_features=4"),
        ((8, 3), (3, 3, 3, 5), {}, ValueError, "rank >= 3"),
        ((2, 8, 8, 6), (3, 3, 4, 6), {"feature_group_count": 2}, ValueError, "6 channels.*in_features=8"),
        ((2, 8, 8, 3), (3, 3, 3, 3, 3, 5), {}, ValueError, "rank 3, 4 or 5"),
        ((2, 8, 8, 3), (3, 3, 3, 5), {"padding": "FULL"}, ValueError, "padding must be one of"),
        ((2, 8, 8, 3), (3, 3, 3, 5), {"strides": (1, 2, 3)}, ValueError, "strides must have 2"),
        ((2, 8, 8, 3), (3, 3, 3, 5), {"strides": 0}, ValueError, "strides"),
        ((2, 8, 8, 4), (3, 3, 2, 5), {"feature_group_count": 2}, ValueError, "divisible"),
        ((2, 8, 8, 3), (3, 3, 3, 5), {"feature_group_count": 0}, ValueError, "feature_group_count"),
        ((2, 8, 8, 3), (3, 3, 3, 5), {"kernel_dilation": 1.5}, TypeError, "kernel_dilation"),
        ((2, 0, 8, 3), (3, 3, 3, 5), {}, ValueError, "empty spatial"),
    ],
)
def test_bad_input(x_shape, k_shape, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        conv(jnp.zeros(x_shape), jnp.zeros(k_shape), **kwargs)


def test_bad_bias_and_types():
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\)"):
        conv(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 3, 5)), jnp.zeros((4,)))
    with pytest.raises(TypeError, match="kernel must be an array"):
        conv(jnp.zeros((1, 4, 4, 3)), [[1.0]])
    with pytest.raises(TypeError, match="input must be an array"):
        conv([[1.0]], jnp.zeros((3, 3, 3, 5)))
