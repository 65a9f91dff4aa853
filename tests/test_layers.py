"""Linen and NNX base modules: drop-in for flax's Conv, identical to each other."""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from compact_jax import linen as cl
from compact_jax import nnx as cn
from compact_jax.layer import layer_apply
from compact_jax import dense


class TinyNet(nn.Module):
    """A model written against flax's ``conv: ModuleDef`` hook."""

    conv: Any = nn.Conv

    @nn.compact
    def __call__(self, x):
        x = self.conv(8, (3, 3), name="stem")(x)
        x = nn.relu(x)
        x = self.conv(8, (3, 3), strides=2, use_bias=False, name="down")(x)
        return x.mean((1, 2))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(strides=2),
        dict(padding="VALID", kernel_dilation=2),
        dict(padding=((1, 0), (2, 1)), use_bias=False),
        dict(feature_group_count=3, padding="CIRCULAR"),
        dict(input_dilation=2, padding=1),
    ],
)
def test_dense_conv_equals_flax_conv(kwargs):
    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 6))
    ours = cl.DenseConv(9, (3, 3), **kwargs)
    variables = ours.init(jax.random.key(1), x)
    ref = nn.Conv(9, (3, 3), **kwargs).apply(variables, x)
    np.testing.assert_allclose(ours.apply(variables, x), ref, rtol=1e-5, atol=1e-5)


def test_linen_and_nnx_agree():
    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 4))
    lin = cl.DenseConv(6, (3, 3), strides=2, padding="VALID")
    params = lin.init(jax.random.key(1), x)["params"]
    twin = cn.DenseConv(4, 6, (3, 3), 2, padding="VALID", rngs=nnx.Rngs(5))
    assert not np.allclose(twin(x), lin.apply({"params": params}, x))
    cn.load_linen_params(twin, params)
    np.testing.assert_array_equal(twin(x), lin.apply({"params": params}, x))


def test_drop_in_factory():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    flax_net, our_net = TinyNet(), TinyNet(conv=functools.partial(cl.DenseConv))
    variables = flax_net.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(
        jnp.shape, our_net.init(jax.random.key(1), x)
    )
    np.testing.assert_allclose(our_net.apply(variables, x), flax_net.apply(variables, x), rtol=1e-5, atol=1e-6)


def test_layer_apply_uses_direct_path_when_present():
    calls = []

    class Direct:
        DenseSpec = dense.DenseSpec
        init, build_kernel = staticmethod(dense.init), staticmethod(dense.build_kernel)

        @staticmethod
        def apply(params, x, spec, **kwargs):
            calls.append(sorted(kwargs))
            return jnp.zeros(x.shape[:-1] + (spec.features,))

    spec = dense.DenseSpec(features=2, in_features=3, kernel_size=(3, 3))
    y = layer_apply(Direct, dense.init(jax.random.key(0), spec), jnp.ones((1, 4, 4, 3)), spec)
    assert y.shape == (1, 4, 4, 2) and calls
    assert calls[0] == sorted(
        ["strides", "padding", "input_dilation", "kernel_dilation", "feature_group_count", "precision"]
    )


def test_bad_input_names_the_layer():
    net = cl.DenseConv(4, (3, 3), name="head")
    with pytest.raises(ValueError, match=r"DenseConv\(head\).*rank >= 4"):
        net.init(jax.random.key(0), jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="in_features"):
        cn.DenseConv(3, 4, (3, 3), rngs=nnx.Rngs(0))(jnp.ones((1, 5, 5, 2)))
    with pytest.raises(ValueError, match="features"):
        cn.DenseConv(3, 0, (3, 3), rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="kernel_size"):
        cl.DenseConv(4, "3x3").init(jax.random.key(0), jnp.ones((1, 5, 5, 2)))
    with pytest.raises(ValueError, match="load_linen_params.*'kernal'"):
        cn.load_linen_params(cn.DenseConv(3, 4, (3, 3), rngs=nnx.Rngs(0)), {"kernal": jnp.ones(3)})
