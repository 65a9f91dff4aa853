"""The frames lowering of 3-D convolutions against XLA's conv3d and a NumPy reference."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compact_jax import arith
from compact_jax.conv import conv
from reference import np_conv

RNG = np.random.default_rng(1)

KERNELS = ((3, 3, 3), (2, 1, 3))
STRIDES = ((1, 1, 1), (2, 1, 2))
PADDINGS = ("SAME", "VALID", "CIRCULAR", ((1, 2), (0, 1), (2, -1)))
KERNEL_DILATIONS = ((1, 1, 1), (2, 1, 2))
INPUT_DILATIONS = ((1, 1, 1), (2, 1, 1), (1, 2, 2))


def _grid():
    cases = []
    for i, (ksize, strides, padding) in enumerate(itertools.product(KERNELS, STRIDES, PADDINGS)):
        idil = (1, 1, 1) if padding == "CIRCULAR" else INPUT_DILATIONS[i % 3]
        kdil = KERNEL_DILATIONS[(i + i // 4) % 2]
        cases.append((ksize, strides, padding, kdil, idil, 1 + (i // 4) % 2))
    return cases


def _conv_pair(x, k, **kwargs):
    kwargs.setdefault("precision", "highest")
    return conv(x, k, impl="xla", **kwargs), conv(x, k, impl="frames", **kwargs)


@pytest.mark.parametrize("ksize, strides, padding, kdil, idil, groups", _grid())
def test_frames_equals_xla(ksize, strides, padding, kdil, idil, groups):
    x = RNG.normal(size=(2, 5, 6, 7, 2 * groups)).astype(np.float32)
    k = RNG.normal(size=(*ksize, 2, 3 * groups)).astype(np.float32)
    xla, frames = _conv_pair(
        x, k, strides=strides, padding=padding, kernel_dilation=kdil, input_dilation=idil,
        feature_group_count=groups,
    )
    assert frames.shape == xla.shape
    np.testing.assert_allclose(frames, xla, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "strides, padding, kdil, idil",
    [((1, 1, 1), "SAME", (1, 1, 1), (1, 1, 1)), ((2, 2, 1), ((2, 1), (1, 0), (0, 2)), (2, 1, 1), (2, 1, 2))],
)
def test_frames_matches_numpy_reference(strides, padding, kdil, idil):
    x = RNG.normal(size=(2, 4, 5, 6, 3)).astype(np.float32)
    k = RNG.normal(size=(3, 2, 3, 3, 4)).astype(np.float32)
    y = conv(x, k, strides=strides, padding=padding, kernel_dilation=kdil, input_dilation=idil,
             impl="frames", precision="highest")
    pads = arith.canonical_padding(
        padding, input_spatial=x.shape[1:4], kernel_size=k.shape[:3], strides=strides, kernel_dilation=kdil
    )
    ref = np_conv(x, k, strides=strides, pads=pads, input_dilation=idil, kernel_dilation=kdil)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def _num_convs(fn, *args):
    jaxpr = jax.make_jaxpr(fn)(*args)
    return sum(eqn.primitive.name == "conv_general_dilated" for eqn in jaxpr.eqns)


def test_auto_uses_frames_on_cpu_and_xla_on_request():
    assert jax.default_backend() == "cpu"
    x = jnp.ones((1, 4, 5, 5, 2))
    k = jnp.ones((3, 3, 3, 2, 2))
    assert _num_convs(lambda x, k: conv(x, k), x, k) == 3  # one 2-D conv per temporal tap
    assert _num_convs(lambda x, k: conv(x, k, impl="frames"), x, k) == 3
    assert _num_convs(lambda x, k: conv(x, k, impl="xla"), x, k) == 1
    # Concrete (non-traced) inputs pick the lowering from their device's platform.
    np.testing.assert_allclose(conv(x, k), conv(x, k, impl="xla"), rtol=1e-6)


def test_batch_dims_bias_and_jit():
    x = RNG.normal(size=(2, 3, 4, 5, 5, 2)).astype(np.float32)
    k = RNG.normal(size=(3, 3, 3, 2, 4)).astype(np.float32)
    b = RNG.normal(size=(4,)).astype(np.float32)
    y = jax.jit(lambda x, k, b: conv(x, k, b, impl="frames", precision="highest"))(x, k, b)
    flat = conv(x.reshape(6, 4, 5, 5, 2), k, b, impl="xla", precision="highest")
    np.testing.assert_allclose(y, flat.reshape(2, 3, *flat.shape[1:]), rtol=1e-5, atol=1e-5)


def test_gradients_equal_xla():
    x = RNG.normal(size=(2, 5, 6, 6, 3)).astype(np.float32)
    k = RNG.normal(size=(3, 3, 3, 3, 4)).astype(np.float32)
    r = RNG.normal(size=(2, 3, 3, 3, 4)).astype(np.float32)

    def loss(impl):
        return lambda x, k: jnp.sum(conv(x, k, strides=2, padding="SAME", impl=impl, precision="highest") * r)

    gx, gk = jax.grad(loss("xla"), argnums=(0, 1))(x, k)
    fx, fk = jax.grad(loss("frames"), argnums=(0, 1))(x, k)
    np.testing.assert_allclose(fx, gx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fk, gk, rtol=1e-4, atol=1e-4)


def test_vmap_over_kernels():
    x = RNG.normal(size=(1, 4, 5, 5, 2)).astype(np.float32)
    ks = RNG.normal(size=(3, 2, 3, 3, 2, 3)).astype(np.float32)
    ys = jax.vmap(lambda k: conv(x, k, impl="frames", precision="highest"))(ks)
    for k, y in zip(ks, ys):
        np.testing.assert_allclose(y, conv(x, k, impl="xla", precision="highest"), rtol=1e-5, atol=1e-5)


def test_low_precision_accumulates_in_float32():
    """bfloat16 in and out, the taps summed in float32 and rounded once: within half a bfloat16 ulp.

    Five taps over 16 channels: rounding each tap (or each partial sum) to
    bfloat16 misses this bound at about a third of the outputs (by up to 1.6
    times the output), so bfloat16 accumulation fails here.
    """
    x = jnp.asarray(RNG.normal(size=(1, 8, 6, 6, 16)), jnp.bfloat16)
    k = jnp.asarray(RNG.normal(size=(5, 3, 3, 16, 4)), jnp.bfloat16)
    exact = np_conv(np.asarray(x, np.float64), np.asarray(k, np.float64), pads=((2, 2), (1, 1), (1, 1)))
    y = conv(x, k, impl="frames")
    assert y.dtype == jnp.bfloat16
    # bfloat16 keeps 8 significant bits: rounding once is off by at most 2^-8 of the value.
    np.testing.assert_allclose(np.asarray(y, np.float64), exact, rtol=2.0**-8, atol=1e-4)
    y32 = conv(x, k, impl="frames", preferred_element_type=jnp.float32)
    assert y32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y32, np.float64), exact, rtol=1e-5, atol=1e-4)


def test_empty_temporal_output_matches_xla():
    x = jnp.ones((1, 2, 4, 4, 1))
    k = jnp.ones((3, 3, 3, 1, 2))
    xla, frames = _conv_pair(x, k, padding="VALID")
    assert frames.shape == xla.shape == (1, 0, 2, 2, 2)


def test_bad_impl_raises():
    x, k = jnp.ones((1, 4, 4, 4, 1)), jnp.ones((3, 3, 3, 1, 1))
    with pytest.raises(ValueError, match=r"impl must be one of .*'cuda'"):
        conv(x, k, impl="cuda")
    with pytest.raises(TypeError, match="impl must be one of"):
        conv(x, k, impl=None)
    with pytest.raises(ValueError, match="impl='frames' lowers 3-D convolutions only"):
        conv(jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1)), impl="frames")
