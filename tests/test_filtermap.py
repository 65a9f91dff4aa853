"""3D-FilterMap against NumPy loops, the paper's numbers and least squares."""

import dataclasses
import functools
import itertools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

from compact_jax import filtermap as fm
from compact_jax import linen as cl
from compact_jax import nnx as cn
from compact_jax.conv import conv
from compact_jax.dense import DenseSpec
from tests.reference import np_conv


# ----------------------------------------------------------------------------- references


def wrap_index(i, size, wrap):
    """The spatial wrap rules, one scalar at a time."""
    if wrap == "modular" or size == 1:
        return i % size
    return i if i < size else 1 + (i - size) % (size - 1)


def loop_kernel(fmap, grid, strides, kernel_size, channels, wrap="modular"):
    """kernel[r, s, c, k] = map[w(k1*x + r), w(k2*y + s), (k3*z + c) % M3], k = (k3*K1 + k1)*K2 + k2."""
    k1_n, k2_n, k3_n = grid
    x, y, z = strides
    m1, m2, m3 = fmap.shape
    s1, s2 = kernel_size
    kernel = np.zeros((s1, s2, channels, k1_n * k2_n * k3_n), fmap.dtype)
    for k in range(kernel.shape[-1]):
        k3, rest = divmod(k, k1_n * k2_n)
        k1, k2 = divmod(rest, k2_n)
        for c in range(channels):
            for r in range(s1):
                for s in range(s2):
                    kernel[r, s, c, k] = fmap[
                        wrap_index(k1 * x + r, m1, wrap),
                        wrap_index(k2 * y + s, m2, wrap),
                        (k3 * z + c) % m3,
                    ]
    return kernel


def loop_scatter(grad_kernel, spec):
    """Sum and count of the kernel entries copied from each map element (NumPy loop)."""
    total = np.zeros(spec.map_shape)
    count = np.zeros(spec.map_shape)
    k1_n, k2_n, _ = spec.grid
    x, y, z = spec.map_strides
    m1, m2, m3 = spec.map_shape
    s1, s2, channels, features = grad_kernel.shape
    for k, c, r, s in itertools.product(range(features), range(channels), range(s1), range(s2)):
        k3, rest = divmod(k, k1_n * k2_n)
        k1, k2 = divmod(rest, k2_n)
        j = (wrap_index(k1 * x + r, m1, spec.wrap), wrap_index(k2 * y + s, m2, spec.wrap), (k3 * z + c) % m3)
        total[j] += grad_kernel[r, s, c, k]
        count[j] += 1
    return total, count


def random_map(spec, seed=0):
    return np.random.default_rng(seed).standard_normal(spec.map_shape).astype(np.float32)


def spec_of(**kw):
    base = dict(features=16, in_features=8, kernel_size=(3, 3))
    return fm.FilterMapSpec(**{**base, **kw})


# ----------------------------------------------------------------------------- kernel


@pytest.mark.parametrize("wrap", ["modular", "to_one"])
@pytest.mark.parametrize(
    "kw",
    [
        dict(features=64, in_features=64),  # the paper's example, default grid (4, 4, 4)
        dict(features=12, in_features=6),  # Table 1 grid (2, 3, 2)
        dict(features=16, in_features=8, kernel_size=(5, 5)),
        dict(features=16, in_features=8, kernel_size=(7, 7), grid=(4, 2, 2)),
        dict(features=6, in_features=5, kernel_size=(5, 3), grid=(1, 3, 2), map_strides=(3, 1, 2)),
        dict(features=8, in_features=6, kernel_size=(7, 7), grid=(2, 2, 2), map_strides=(1, 2, 4)),
        dict(features=8, in_features=12, feature_group_count=2, grid=(2, 2, 2)),
        dict(features=8, in_features=5, grid=(1, 4, 2), map_strides=(1, 2, 3)),  # map height 1
    ],
)
def test_kernel_equals_numpy_loop(kw, wrap):
    spec = spec_of(**kw, wrap=wrap)
    fmap = random_map(spec)
    expected = loop_kernel(fmap, spec.grid, spec.map_strides, spec.kernel_size, spec.in_per_group, wrap)
    got = fm.build_kernel({"filtermap": jnp.asarray(fmap)}, spec)
    assert got.shape == spec.kernel_shape
    np.testing.assert_array_equal(got, expected)


def test_wrap_rules_on_a_hand_worked_row():
    # Map height M1 = K1*x = 4; filter k1 = 1 starts at row 2 and spans 7 rows: 2..8.
    spec = spec_of(features=2, in_features=1, kernel_size=(7, 1), grid=(2, 1, 1), map_strides=(2, 1, 1))
    to_one = dataclasses.replace(spec, wrap="to_one")
    index = fm.index_map(spec)[:, 0, 0, 1]  # flat index = row * M2 * M3 with M2 = M3 = 1
    np.testing.assert_array_equal(index, [2, 3, 0, 1, 2, 3, 0])
    np.testing.assert_array_equal(fm.index_map(to_one)[:, 0, 0, 1], [2, 3, 1, 2, 3, 1, 2])


@pytest.mark.parametrize("grid, in_features", [((4, 4, 4), 64), ((2, 3, 2), 6), ((8, 4, 4), 16)])
def test_to_one_matches_the_authors_padding(grid, in_features):
    """The authors' code: two map copies along channels, then row 1 and column 1 appended."""
    spec = fm.FilterMapSpec(features=int(np.prod(grid)), in_features=in_features, kernel_size=(3, 3),
                            grid=grid, wrap="to_one")
    fmap = random_map(spec, seed=3)
    padded = np.concatenate([fmap, fmap], axis=2)
    padded = np.concatenate([padded, padded[1:2]], axis=0)
    padded = np.concatenate([padded, padded[:, 1:2]], axis=1)
    (k1_n, k2_n, k3_n), (x, y, z) = spec.grid, spec.map_strides
    filters = [
        padded[k1 * x : k1 * x + 3, k2 * y : k2 * y + 3, k3 * z : k3 * z + in_features]
        for k3, k1, k2 in itertools.product(range(k3_n), range(k1_n), range(k2_n))
    ]
    got = fm.build_kernel({"filtermap": jnp.asarray(fmap)}, spec)
    np.testing.assert_array_equal(got, np.stack(filters, axis=-1))


def test_modular_and_to_one_differ_only_where_indices_wrap():
    spec = spec_of(features=64, in_features=64)
    fmap = random_map(spec)
    a = np.asarray(fm.build_kernel({"filtermap": fmap}, spec))
    b = np.asarray(fm.build_kernel({"filtermap": fmap}, dataclasses.replace(spec, wrap="to_one")))
    wrapped = np.zeros(a.shape, bool)
    wrapped[2, :, :, :] |= (np.arange(64) // 4 % 4 == 3)  # k1 = 3: row 6 + 2 = 8 wraps
    wrapped[:, 2, :, :] |= (np.arange(64) % 4 == 3)  # k2 = 3: column 8 wraps
    np.testing.assert_array_equal(a[~wrapped], b[~wrapped])
    assert not np.any(a[wrapped] == b[wrapped])


# ----------------------------------------------------------------------------- counts


def test_paper_example_counts_and_multiplicity():
    spec = fm.FilterMapSpec(features=64, in_features=64, kernel_size=(3, 3))
    assert spec.grid == (4, 4, 4) and spec.map_strides == (2, 2, 16) and spec.map_shape == (8, 8, 64)
    assert fm.num_params(spec) == 64 * 8 * 8 == 4096
    assert fm.param_ratio(spec) == 9.0
    mult = fm.multiplicity(spec)
    assert set(np.unique(mult)) == {4, 8, 16}
    _, count = loop_scatter(np.zeros(spec.kernel_shape), spec)
    np.testing.assert_array_equal(mult, count)
    assert mult.sum() == 64 * 64 * 9


@pytest.mark.parametrize("features, grid", [(12, (2, 3, 2)), (32, (4, 4, 2)), (64, (4, 4, 4)),
                                            (128, (8, 4, 4)), (256, (8, 8, 4)), (512, (8, 8, 8))])
def test_table_1_grids_and_paper_ratio(features, grid):
    spec = fm.FilterMapSpec(features=features, in_features=64, kernel_size=(3, 3))
    assert spec.grid == grid
    k3 = grid[2]
    assert fm.param_ratio(spec) == pytest.approx(3 * 3 * k3 / (2 * 2))  # S1*S2*K3 / (x*y)
    assert fm.num_params(spec) == (grid[0] * 2) * (grid[1] * 2) * 64


def test_ratio_with_explicit_channel_stride_is_dense_over_compact():
    spec = spec_of(features=8, in_features=6, grid=(2, 2, 2), map_strides=(1, 2, 1), kernel_size=(5, 3))
    assert fm.num_params(spec) == 2 * 4 * 2
    assert fm.param_ratio(spec) == pytest.approx(5 * 3 * 6 * 8 / 16)


def test_unread_elements_have_zero_multiplicity():
    spec = spec_of(features=16, in_features=8, kernel_size=(1, 1), allow_larger=True)  # strides 2 > size 1
    mult = fm.multiplicity(spec)
    assert np.all(mult[1::2] == 0) and np.all(mult[:, 1::2] == 0)
    assert np.all(mult[::2, ::2] == 4)


# ----------------------------------------------------------------------------- gradients


def _loss(fmap, spec, weights):
    kernel = fm.build_kernel({"filtermap": fmap}, spec)
    return jnp.sum(jnp.sin(kernel) * weights)


@pytest.mark.parametrize("wrap", ["modular", "to_one"])
def test_sum_and_mean_gradients_against_numpy_scatter(wrap):
    spec = spec_of(features=16, in_features=8, kernel_size=(5, 5), wrap=wrap, gradient="sum")
    fmap = jnp.asarray(random_map(spec))
    weights = jnp.asarray(np.random.default_rng(1).standard_normal(spec.kernel_shape), jnp.float32)
    g_kernel = np.asarray(jnp.cos(fm.build_kernel({"filtermap": fmap}, spec)) * weights)
    total, count = loop_scatter(g_kernel, spec)
    g_sum = jax.grad(_loss)(fmap, spec, weights)
    g_mean = jax.grad(_loss)(fmap, dataclasses.replace(spec, gradient="mean"), weights)
    np.testing.assert_allclose(g_sum, total, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_mean, total / count, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_mean, g_sum / fm.multiplicity(spec), rtol=1e-6, atol=1e-7)


def test_mean_gradient_is_zero_on_unread_elements():
    spec = spec_of(kernel_size=(1, 1), allow_larger=True)  # the map is larger than a 1x1 kernel
    g = jax.grad(lambda m: fm.build_kernel({"filtermap": m}, spec).sum())(jnp.ones(spec.map_shape))
    np.testing.assert_array_equal(g, np.where(fm.multiplicity(spec) > 0, 1.0, 0.0))


def test_check_grads_sum():
    spec = spec_of(features=8, in_features=4, grid=(2, 2, 2), gradient="sum")
    weights = jnp.asarray(np.random.default_rng(2).standard_normal(spec.kernel_shape), jnp.float32)
    check_grads(jax.jit(lambda m: _loss(m, spec, weights)), (jnp.asarray(random_map(spec)),), order=2,
                modes=("fwd", "rev"), eps=1e-2)


def test_mean_is_a_preconditioned_not_a_true_gradient():
    """"mean" = diag(1/multiplicity) times the true derivative, in both modes.

    Finite differences see the true derivative, so check_grads must reject it;
    what must hold is that its JVP and VJP are transposes of each other and
    equal the true ("sum") ones rescaled by the multiplicity.
    """
    spec = spec_of(features=8, in_features=4, grid=(2, 2, 2), gradient="mean")
    true = dataclasses.replace(spec, gradient="sum")
    weights = jnp.asarray(np.random.default_rng(2).standard_normal(spec.kernel_shape), jnp.float32)
    fmap = jnp.asarray(random_map(spec))
    with pytest.raises(AssertionError):
        check_grads(lambda m: _loss(m, spec, weights), (fmap,), order=1, modes=("rev",), eps=1e-2)
    inv_mult = 1.0 / fm.multiplicity(spec)
    kernel = lambda s: (lambda m: fm.build_kernel({"filtermap": m}, s))  # noqa: E731
    rng = np.random.default_rng(4)
    tangent = jnp.asarray(rng.standard_normal(spec.map_shape), jnp.float32)
    cotangent = jnp.asarray(rng.standard_normal(spec.kernel_shape), jnp.float32)
    value, jvp_mean = jax.jvp(kernel(spec), (fmap,), (tangent,))
    _, jvp_true = jax.jvp(kernel(true), (fmap,), (tangent * inv_mult,))
    np.testing.assert_array_equal(value, kernel(true)(fmap))
    np.testing.assert_allclose(jvp_mean, jvp_true, rtol=1e-6)
    (vjp_mean,) = jax.vjp(kernel(spec), fmap)[1](cotangent)
    np.testing.assert_allclose(jnp.vdot(jvp_mean, cotangent), jnp.vdot(tangent, vjp_mean), rtol=1e-4)


def test_mean_gradient_in_low_precision():
    spec = spec_of()
    fmap = jnp.asarray(random_map(spec), jnp.bfloat16)
    g = jax.grad(lambda m: fm.build_kernel({"filtermap": m}, spec).astype(jnp.float32).sum())(fmap)
    assert g.dtype == jnp.bfloat16
    np.testing.assert_array_equal(g, np.ones(spec.map_shape))


# ----------------------------------------------------------------------------- fit


@pytest.mark.parametrize("kw", [dict(), dict(kernel_size=(1, 1), allow_larger=True),
                                dict(kernel_size=(5, 5), wrap="to_one")])
def test_fit_inverts_build_kernel_on_read_elements(kw):
    spec = spec_of(**kw)
    fmap = random_map(spec)
    fitted = np.asarray(fm.fit(fm.build_kernel({"filtermap": fmap}, spec), spec)["filtermap"])
    read = fm.multiplicity(spec) > 0
    np.testing.assert_allclose(fitted[read], fmap[read], rtol=1e-6)
    np.testing.assert_array_equal(fitted[~read], 0.0)


@pytest.mark.parametrize("kw", [dict(), dict(kernel_size=(1, 1), allow_larger=True),
                                dict(kernel_size=(5, 3), wrap="to_one")])
def test_fit_is_minimum_norm_least_squares(kw):
    spec = spec_of(features=8, in_features=3, grid=(2, 2, 2), map_strides=(2, 2, 1), **kw)
    n = fm.num_params(spec)
    # The linear map p -> vec(build_kernel(p)), column by column from unit maps.
    basis = np.eye(n, dtype=np.float32).reshape(n, *spec.map_shape)
    design = np.stack([np.asarray(fm.build_kernel({"filtermap": e}, spec)).ravel() for e in basis], axis=1)
    target = np.random.default_rng(5).standard_normal(spec.kernel_shape)
    expected = np.linalg.lstsq(design.astype(np.float64), target.ravel(), rcond=None)[0]
    got = fm.fit(jnp.asarray(target, jnp.float32), spec)["filtermap"]
    np.testing.assert_allclose(np.asarray(got).ravel(), expected, rtol=1e-5, atol=1e-6)
    # Unit-map design columns also pin down the gather itself against the loop.
    np.testing.assert_array_equal(design @ np.arange(n, dtype=np.float32),
                                  loop_kernel(np.arange(n, dtype=np.float32).reshape(spec.map_shape),
                                              spec.grid, spec.map_strides, spec.kernel_size, 3,
                                              spec.wrap).ravel())


# ----------------------------------------------------------------------------- transforms


def test_jit_vmap_and_leading_batch():
    spec = spec_of()
    maps = jnp.asarray(np.stack([random_map(spec, seed) for seed in range(3)]))
    expected = np.stack([loop_kernel(np.asarray(m), spec.grid, spec.map_strides, (3, 3), 8) for m in maps])
    build = lambda m: fm.build_kernel({"filtermap": m}, spec)  # noqa: E731
    np.testing.assert_array_equal(jax.jit(jax.vmap(build))(maps), expected)
    np.testing.assert_array_equal(build(maps), expected)
    weights = jnp.asarray(np.random.default_rng(6).standard_normal((3, *spec.kernel_shape)), jnp.float32)
    loss = lambda m, w: jnp.vdot(build(m), w)  # noqa: E731
    np.testing.assert_allclose(jax.grad(loss)(maps, weights), jax.vmap(jax.grad(loss))(maps, weights),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("gradient", ["mean", "sum"])
def test_jit_vmap_grad_match_per_example(gradient):
    spec = spec_of(gradient=gradient)
    maps = jnp.asarray(np.stack([random_map(spec, seed) for seed in range(3)]))
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 8))

    def loss(m):
        return jnp.sum(conv(x, fm.build_kernel({"filtermap": m}, spec)) ** 2)

    batched = jax.jit(jax.vmap(jax.grad(loss)))(maps)
    single = jax.jit(jax.grad(loss))
    for m, g in zip(maps, batched):
        np.testing.assert_allclose(g, single(m), rtol=1e-5, atol=1e-6 * float(jnp.abs(g).max()))


def test_init_is_lecun_normal_per_kernel_entry():
    spec = fm.FilterMapSpec(features=64, in_features=64, kernel_size=(3, 3))
    params = fm.init(jax.random.key(0), spec)
    assert set(params) == {"filtermap"} and params["filtermap"].shape == (8, 8, 64)
    assert float(jnp.std(params["filtermap"])) == pytest.approx(1 / np.sqrt(9 * 64), rel=0.05)
    assert fm.init(jax.random.key(0), spec, dtype=jnp.bfloat16)["filtermap"].dtype == jnp.bfloat16


# ----------------------------------------------------------------------------- modules


def test_linen_equals_conv_of_built_kernel_and_nnx_twin():
    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 8))
    layer = cl.FilterMapConv(16, (3, 3), strides=2, grid=(4, 2, 2), wrap="to_one")
    params = jax.jit(layer.init)(jax.random.key(1), x)["params"]
    params = {**params, "bias": jnp.arange(16, dtype=jnp.float32)}
    spec = fm.FilterMapSpec(features=16, in_features=8, kernel_size=(3, 3), grid=(4, 2, 2), wrap="to_one")
    assert params["filtermap"].shape == spec.map_shape
    y = jax.jit(layer.apply)({"params": params}, x)
    kernel = fm.build_kernel({"filtermap": params["filtermap"]}, spec)
    np.testing.assert_allclose(y, conv(x, kernel, params["bias"], strides=2), rtol=1e-6, atol=1e-6)
    ref = np_conv(x, loop_kernel(np.asarray(params["filtermap"]), (4, 2, 2), (2, 2, 4), (3, 3), 8, "to_one"),
                  strides=(2, 2), pads=((1, 1), (1, 1))) + np.arange(16)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)

    twin = cn.FilterMapConv(8, 16, (3, 3), 2, grid=(4, 2, 2), wrap="to_one", rngs=nnx.Rngs(3))
    assert twin.spec == spec
    cn.load_linen_params(twin, params)
    np.testing.assert_array_equal(twin(x), y)


class TinyNet(nn.Module):
    conv: Any = nn.Conv

    @nn.compact
    def __call__(self, x):
        x = nn.relu(self.conv(16, (3, 3), strides=2, name="conv1")(x))
        return self.conv(16, (3, 3), strides=1, use_bias=False, name="conv2")(x).mean((1, 2))


def test_partial_factory_as_model_conv():
    x = jnp.ones((2, 8, 8, 4))
    model = TinyNet(conv=functools.partial(cl.FilterMapConv, grid=(2, 4, 2), gradient="sum"))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    params = variables["params"]
    assert params["conv1"]["filtermap"].shape == (4, 8, 4)  # (K1*2, K2*2, K3*z), z = 4/2
    assert params["conv2"]["filtermap"].shape == (4, 8, 16) and "bias" not in params["conv2"]
    assert jax.eval_shape(model.apply, variables, x).shape == (2, 16)


def test_module_errors_name_the_value():
    with pytest.raises(ValueError, match="features=10"):
        cl.FilterMapConv(10, (3, 3)).init(jax.random.key(0), jnp.ones((1, 4, 4, 4)))
    with pytest.raises(ValueError, match="kernel_size must be 2-D"):
        cn.FilterMapConv(4, 16, (3, 3, 3), rngs=nnx.Rngs(0))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kw, error, match",
    [
        (dict(grid=(4, 4, 2)), ValueError, r"grid=\(4, 4, 2\) generates K1\*K2\*K3=32 filters, but features=16"),
        (dict(grid=(2, 2, 4), in_features=6), ValueError, r"K3=4 .* divide the filter depth C=.*=6"),
        (dict(grid=(4, 4)), ValueError, r"grid must have 3 entries, got 2: \(4, 4\)"),
        (dict(grid=(2, 2.0, 4)), TypeError, r"grid must contain only integers, got \(2, 2.0, 4\)"),
        (dict(grid=(0, 4, 4)), ValueError, r"grid entries must be >= 1"),
        (dict(kernel_size=(3, 3, 3)), ValueError, r"kernel_size must be 2-D .* got kernel_size=\(3, 3, 3\)"),
        (dict(kernel_size=(3,)), ValueError, r"kernel_size must be 2-D"),
        (dict(wrap="to_zero"), ValueError, r"wrap must be one of \['modular', 'to_one'\], got 'to_zero'"),
        (dict(gradient="average"), ValueError, r"gradient must be one of .*got 'average'"),
        (dict(features=48), ValueError, r"no default grid for features=48"),
        (dict(map_strides=(2, 2)), ValueError, r"map_strides must have 3 entries"),
        (dict(map_strides=(2, 0, 2)), ValueError, r"map_strides entries must be >= 1"),
    ],
)
def test_bad_specs_raise(kw, error, match):
    with pytest.raises(error, match=match):
        spec_of(**kw)


def test_bad_arguments_raise():
    spec = spec_of()
    with pytest.raises(ValueError, match=r"must have shape \(\*batch, 4, 4, 8\).*got \(4, 4, 4\)"):
        fm.build_kernel({"filtermap": jnp.zeros((4, 4, 4))}, spec)
    with pytest.raises(ValueError, match=r"unexpected params \['kernel'\]; expected \['filtermap'\]"):
        fm.build_kernel({"kernel": jnp.zeros((4, 4, 8))}, spec)
    with pytest.raises(ValueError, match=r"kernel must have shape \(3, 3, 8, 16\)"):
        fm.fit(jnp.zeros((3, 3, 8, 8)), spec)
    with pytest.raises(TypeError, match="spec must be a FilterMapSpec, got DenseSpec"):
        fm.multiplicity(DenseSpec(features=4, in_features=4, kernel_size=(3, 3)))
