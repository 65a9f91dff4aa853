"""Every method against the shared protocol, with the same checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import compact_jax as cj
from compact_jax import protocol
from compact_jax.conv import conv
from compact_jax.layer import layer_apply

CASES = [
    (cj.dense, cj.DenseSpec(features=6, in_features=4, kernel_size=(3, 3))),
    (cj.dense, cj.DenseSpec(features=6, in_features=6, kernel_size=(3, 3, 3), feature_group_count=3)),
    (cj.filtermap, cj.FilterMapSpec(features=16, in_features=8, kernel_size=(3, 3))),
    (cj.filtermap, cj.FilterMapSpec(features=12, in_features=6, kernel_size=(5, 5), gradient="sum")),
    (cj.basis, cj.BasisSpec(features=8, in_features=8, kernel_size=(3, 3), num_basis=5, splits=2)),
    (cj.basis, cj.BasisSpec(features=6, in_features=4, kernel_size=(3, 3), num_basis=40, execution_path="reconstruct",
                            allow_larger=True)),
    (cj.series, cj.SeriesSpec(features=6, in_features=4, kernel_size=(3, 3), family="cosine", harmonics=2)),
    (cj.series, cj.SeriesSpec(features=6, in_features=6, kernel_size=(5, 5), family="chebyshev",
                              harmonics=(4, 2), feature_group_count=3)),
    (cj.temporal, cj.FrequencySpec(features=6, in_features=4, kernel_size=(3, 3, 3))),
    (cj.temporal, cj.FrequencySpec(features=6, in_features=4, kernel_size=(3, 3, 3), transform="dct",
                                   kept_rows=(0, 2), kept_channels=(1, 3))),
]
IDS = [f"{m.__name__.split('.')[-1]}-{i}" for i, (m, _) in enumerate(CASES)]


def check_protocol(method, spec):
    """The protocol checks every method passes (a method module or a ``protocol.Method`` record)."""
    assert isinstance(method, protocol.MethodModule)
    params = method.init(jax.random.key(0), spec)
    assert isinstance(params, dict) and params
    kernel = method.build_kernel(params, spec)
    assert kernel.shape == spec.kernel_shape and kernel.dtype == jnp.float32
    np.testing.assert_allclose(jax.jit(lambda p: method.build_kernel(p, spec))(params), kernel,
                               rtol=1e-5, atol=1e-6)
    assert method.num_params(spec) <= protocol.count_params(params)
    # vmap over a batch of parameter sets equals building each set alone.
    batch = [method.init(jax.random.key(i), spec) for i in range(3)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *batch)
    kernels = jax.vmap(lambda p: method.build_kernel(p, spec))(stacked)
    for i in range(3):
        np.testing.assert_allclose(kernels[i], method.build_kernel(batch[i], spec), rtol=1e-5, atol=1e-6)
    # Differentiable, with finite gradients.
    grads = jax.grad(lambda p: jnp.sum(method.build_kernel(p, spec) ** 2))(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    # A kernel the method generated is fitted back exactly.
    refit = method.build_kernel(method.fit(kernel, spec), spec)
    np.testing.assert_allclose(refit, kernel, rtol=1e-4, atol=1e-5)
    # The layer (direct path where there is one) equals a dense conv with the kernel.
    x = jax.random.normal(jax.random.key(9), (2, *(6,) * spec.num_spatial, spec.in_features))
    y = layer_apply(method, params, x, spec, strides=2, precision="highest")
    ref = conv(x, kernel, strides=2, feature_group_count=spec.feature_group_count, precision="highest")
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method, spec", CASES, ids=IDS)
def test_protocol(method, spec):
    check_protocol(method, spec)


def test_num_params_counts_the_learned_values():
    # Methods whose parameters are all learned weights: the count is exact.
    for method, spec in CASES:
        if method in (cj.temporal,):
            continue  # FDC3D also holds the transform's parameters and beta; see test_temporal.
        assert method.num_params(spec) == protocol.count_params(method.init(jax.random.key(0), spec)), spec


def test_public_surface():
    for name in cj.__all__:
        assert getattr(cj, name) is not None, name
    for name, method in cj.METHODS.items():
        assert method.name == name and isinstance(method, protocol.MethodModule)
        for fn in ("init", "build_kernel", "num_params", "fit"):
            assert callable(getattr(method, fn)), (name, fn)
        assert issubclass(method.spec_cls, protocol.ConvSpec), name
