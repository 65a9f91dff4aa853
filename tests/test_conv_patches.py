"""The patches lowering (one matrix product over extracted patches) against XLA's convolution and NumPy."""

import importlib
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compact_jax import arith
from compact_jax.conv import conv
from reference import np_conv

conv_module = importlib.import_module("compact_jax.conv")  # the module (the package exports the function)

RNG = np.random.default_rng(5)

CASES = [
    # (input shape, kernel shape, conv kwargs)
    ((2, 9, 3), (3, 3, 4), dict()),
    ((2, 9, 3), (2, 3, 4), dict(strides=2, padding="VALID")),
    ((2, 5, 7, 3), (3, 3, 3, 4), dict()),
    ((1, 5, 7, 3), (3, 2, 3, 4), dict(strides=(2, 1), padding=((1, 0), (2, 3)), kernel_dilation=(1, 2))),
    ((2, 6, 6, 2), (3, 3, 2, 5), dict(padding="CIRCULAR")),
    ((2, 6, 6, 2), (3, 3, 2, 5), dict(padding=((2, -1), (0, 1)))),
    ((2, 1, 2, 2, 6), (3, 3, 3, 6, 4), dict()),
    ((1, 4, 5, 6, 3), (3, 2, 3, 3, 2), dict(strides=(2, 2, 1), kernel_dilation=(2, 1, 1), padding="SAME")),
]


@pytest.mark.parametrize("x_shape, k_shape, kwargs", CASES)
def test_patches_equal_xla_and_numpy(x_shape, k_shape, kwargs):
    x = RNG.normal(size=x_shape).astype(np.float32)
    k = RNG.normal(size=k_shape).astype(np.float32)
    y = conv(x, k, impl="patches", precision="highest", **kwargs)
    np.testing.assert_allclose(y, conv(x, k, impl="xla", precision="highest", **kwargs), rtol=1e-5, atol=1e-4)
    num_spatial = len(k_shape) - 2
    if kwargs.get("padding") == "CIRCULAR":
        return
    strides = kwargs.get("strides", 1)
    strides = (strides,) * num_spatial if isinstance(strides, int) else strides
    kdil = kwargs.get("kernel_dilation", 1)
    kdil = (kdil,) * num_spatial if isinstance(kdil, int) else kdil
    pads = arith.canonical_padding(
        kwargs.get("padding", "SAME"), input_spatial=x_shape[1:-1], kernel_size=k_shape[:-2],
        strides=strides, kernel_dilation=kdil,
    )
    if min(itertools.chain(*pads)) < 0:
        return  # the NumPy reference takes non-negative pads
    ref = np_conv(x, k, strides=strides, pads=pads, kernel_dilation=kdil)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_shape, k_shape, kwargs", [CASES[3], CASES[6]])
def test_patches_gradients_equal_xla(x_shape, k_shape, kwargs):
    x = jnp.asarray(RNG.normal(size=x_shape), jnp.float32)
    k = jnp.asarray(RNG.normal(size=k_shape), jnp.float32)

    def grads(impl):
        loss = lambda x, k: jnp.sum(jnp.sin(conv(x, k, impl=impl, precision="highest", **kwargs)))
        return jax.jit(jax.grad(loss, argnums=(0, 1)))(x, k)

    for got, expect in zip(grads("patches"), grads("xla")):
        np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-4)


def _primitives(fn, *args):
    """Primitives of a fresh trace (a new function object each call: traces are cached per function)."""
    return {eqn.primitive.name for eqn in jax.make_jaxpr(lambda *a: fn(*a))(*args).eqns}


def test_auto_takes_patches_on_cpu_where_the_kernel_outweighs_the_output(monkeypatch):
    assert jax.default_backend() == "cpu"
    deep = (jnp.ones((2, 2, 2, 256)), jnp.ones((3, 3, 256, 8)))      # 8 positions, 2304-long patches
    wide = (jnp.ones((2, 16, 16, 256)), jnp.ones((3, 3, 256, 8)))    # 512 positions
    tiny_map = (jnp.ones((64, 2, 2, 16)), jnp.ones((3, 3, 16, 8)))   # 4 positions per image
    clip = (jnp.ones((2, 1, 2, 2, 256)), jnp.ones((3, 3, 3, 256, 8)))
    # FDC3D's pruned maps: 2 x 4 x 4 = 32 positions <= 256 outputs, 48 >= 32 input channels.
    maps = (jnp.ones((2, 2, 8, 8, 48)), jnp.ones((2, 3, 3, 48, 256)))
    thin = (jnp.ones((2, 2, 8, 8, 16)), jnp.ones((2, 3, 3, 16, 256)))  # too few input channels
    maps_kw = dict(strides=(1, 2, 2), padding=((0, 0), (1, 1), (1, 1)))
    assert "conv_general_dilated" not in _primitives(conv, *deep)
    assert "conv_general_dilated" in _primitives(conv, *wide)
    assert "conv_general_dilated" not in _primitives(conv, *tiny_map)
    assert "conv_general_dilated" not in _primitives(conv, *clip)
    assert "conv_general_dilated" not in _primitives(lambda x, k: conv(x, k, **maps_kw), *maps)
    assert "conv_general_dilated" in _primitives(lambda x, k: conv(x, k, **maps_kw), *thin)
    # Groups and input dilation keep XLA's convolution.
    assert "conv_general_dilated" in _primitives(lambda x, k: conv(x, k, input_dilation=2), *deep)
    # Every other backend keeps XLA's convolution (decided at trace time from the platform).
    monkeypatch.setattr(conv_module, "platform_of", lambda x=None: "gpu")
    assert "conv_general_dilated" in _primitives(conv, *deep)
    assert "conv_general_dilated" in _primitives(conv, *clip)


def test_low_precision_accumulates_in_float32():
    x = jnp.asarray(RNG.normal(size=(2, 2, 2, 64)), jnp.bfloat16)
    k = jnp.asarray(RNG.normal(size=(3, 3, 64, 4)), jnp.bfloat16)
    exact = np_conv(np.asarray(x, np.float64), np.asarray(k, np.float64), pads=((1, 1), (1, 1)))
    y = conv(x, k, impl="patches")
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float64), exact, rtol=2.0**-8, atol=1e-3)


def test_empty_output_and_bad_requests():
    x, k = jnp.ones((1, 2, 4, 1)), jnp.ones((3, 3, 1, 2))
    assert conv(x, k, impl="patches", padding="VALID").shape == (1, 0, 2, 2)
    with pytest.raises(ValueError, match=r"impl='patches' needs feature_group_count=1 and input_dilation=1.*feature_group_count=2"):
        conv(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 1, 2)), feature_group_count=2, impl="patches")
    with pytest.raises(ValueError, match=r"input_dilation=\(2, 2\)"):
        conv(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 2)), input_dilation=2, impl="patches")
