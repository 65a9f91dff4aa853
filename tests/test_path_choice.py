"""``auto`` path choices depend on static shapes and the platform only, and can be forced."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compact_jax import basis
from compact_jax.conv import platform_of


def _spec(channels, splits, num_basis, path="auto"):
    return basis.BasisSpec(features=channels, in_features=channels, kernel_size=(3, 3),
                           num_basis=num_basis, splits=splits, execution_path=path)


# ResNet-18-CIFAR stages at (s, m) = (2, c/4) and (1, c/2), EDSR-8-128 Basis-128-27.
LAYERS = [((64, 32, 32), 2, 16), ((256, 8, 8), 1, 128), ((512, 4, 4), 2, 128), ((128, 48, 48), 1, 27)]


@pytest.mark.parametrize("shape, splits, num_basis", LAYERS)
def test_basis_auto_is_per_platform(shape, splits, num_basis):
    channels, h, w = shape
    spec = _spec(channels, splits, num_basis)
    x_shape = (8, h, w, channels)
    macs = basis.path_macs(spec, x_shape)
    ratio = macs["decomposed"] / macs["reconstruct"]
    # The cost model: decompose below the platform's threshold of the MAC ratio.
    assert 0.1 < ratio < 0.75
    assert basis.choose_path(spec, x_shape, platform="cpu") == "decomposed"
    assert basis.choose_path(spec, x_shape, platform="gpu") == "reconstruct"
    assert basis.choose_path(spec, x_shape, platform="tpu") == "reconstruct"
    for platform in ("cpu", "gpu"):
        for path in ("reconstruct", "decomposed"):
            assert basis.choose_path(dataclasses.replace(spec, execution_path=path), x_shape, platform=platform) == path


def test_basis_auto_decomposes_far_below_dense_on_gpu():
    spec = _spec(512, 8, 8)  # p = 64, m = 8: decomposed is ~2% of dense
    assert basis.choose_path(spec, (8, 16, 16, 512), platform="gpu") == "decomposed"


def test_platform_is_decided_at_trace_time():
    x = jnp.ones((1, 4, 4, 8))
    assert platform_of(x) == jax.devices()[0].platform
    seen = []
    jax.jit(lambda x: seen.append(platform_of(x)) or x)(x)
    assert seen == [jax.default_backend()]
    assert platform_of((1, 2, 3)) == jax.default_backend()


def test_basis_apply_follows_the_default_platform_choice():
    spec = _spec(16, 2, 4)
    params = basis.init(jax.random.key(0), spec)
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 16))
    expect = basis.choose_path(spec, x.shape, platform=jax.default_backend())
    forced = basis.apply(params, x, dataclasses.replace(spec, execution_path=expect))
    np.testing.assert_array_equal(jax.jit(lambda p, x: basis.apply(p, x, spec))(params, x),
                                  jax.jit(lambda p, x: basis.apply(p, x, dataclasses.replace(spec, execution_path=expect)))(params, x))
    assert forced.shape == (2, 6, 6, 16)
