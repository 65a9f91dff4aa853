"""FDC3D (compact_jax.temporal) against the paper's formulas, dense conv3d and NumPy."""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
import scipy.stats
from flax import nnx

from compact_jax.fdc3d import _orthogonal as orth
from compact_jax import linen as cl
from compact_jax import nnx as cn
from compact_jax import temporal as T
from compact_jax.arith import canonical_padding
from compact_jax.conv import conv
from reference import np_conv

RNG = np.random.default_rng(2)
LEARNED = ("learned_householder", "learned_cayley", "learned_expm")


def _spec(**kwargs):
    fields = dict(features=4, in_features=5, kernel_size=(3, 3, 3))
    fields.update(kwargs)
    return T.FrequencySpec(**fields)


def _random_params(spec, seed=0):
    """Random coefficients, beta and a learned S away from its init, built with NumPy."""
    rng = np.random.default_rng(seed)
    t = spec.temporal_size
    params = {
        "coeffs": rng.normal(size=spec.coeffs_shape),
        "beta": rng.uniform(0.5, 1.5, size=spec.num_channels),
    }
    if spec.transform == "learned_householder":
        params["householder"] = orth.reflection_vectors(T.dct_matrix(t))[0] + 0.3 * rng.normal(size=(t, t))
    elif spec.transform in LEARNED:
        params["skew"] = 0.3 * rng.normal(size=(t, t))
    return {name: jnp.asarray(value, jnp.float32) for name, value in params.items()}


def _apply(params, x, spec, **kwargs):
    """``T.apply`` compiled once (faster than op-by-op dispatch)."""
    return jax.jit(lambda p, x: T.apply(p, x, spec, **kwargs))(params, x)


def _x(spec, shape=(2, 6, 7, 6)):
    return RNG.normal(size=(*shape, spec.in_features)).astype(np.float32)


# --- the transform -----------------------------------------------------------------------------


@pytest.mark.parametrize("t", range(1, 8))
def test_dct_matrix_is_scipy_orthonormal_dct2(t):
    s = T.dct_matrix(t)
    np.testing.assert_allclose(s, scipy.fft.dct(np.eye(t), norm="ortho", axis=0), atol=1e-12)
    # Eq. (3): row m is proportional to cos(pi / t * m * (i + 1/2)).
    for m in range(t):
        eq3 = np.cos(np.pi / t * m * (np.arange(t) + 0.5))
        np.testing.assert_allclose(s[m], eq3 * s[m, 0] / eq3[0], atol=1e-12)
    if t == 3:
        spec = _spec(kernel_size=(t, 1, 1), transform="dct")
        np.testing.assert_allclose(T.transform_matrix(T.init(jax.random.key(0), spec), spec), s, atol=1e-6)


@pytest.mark.parametrize("t", [1, 2, 3, 5])
@pytest.mark.parametrize("det", [1, -1])
def test_householder_product_reaches_both_components(t, det):
    q = scipy.stats.ortho_group.rvs(t, random_state=t) if t > 1 else np.eye(1)
    if np.sign(np.linalg.det(q)) != det:
        q[0] *= -1
    vectors, flip = orth.reflection_vectors(q)
    assert vectors.shape == (t, t)
    assert flip == (det != (-1) ** t)
    s = orth.householder_product(jnp.asarray(vectors), flip=flip, precision="highest")
    np.testing.assert_allclose(s, q, atol=1e-6)


@pytest.mark.parametrize(
    "transform, init", [(LEARNED[0], "dct"), (LEARNED[0], "identity"), (LEARNED[1], "identity"), (LEARNED[2], "dct")]
)
def test_learned_transforms_start_at_their_init(transform, init):
    spec = _spec(kernel_size=(4, 1, 1), transform=transform, transform_init=init)
    s = T.transform_matrix(T.init(jax.random.key(0), spec), spec)
    np.testing.assert_allclose(s, T.dct_matrix(4) if init == "dct" else np.eye(4), atol=1e-6)


@pytest.mark.parametrize("transform", LEARNED)
def test_orthogonal_after_1000_sgd_steps(transform):
    spec = _spec(kernel_size=(5, 1, 1), transform=transform)
    params = T.init(jax.random.key(0), spec)
    name = "householder" if transform == "learned_householder" else "skew"
    target = jnp.asarray(np.random.default_rng(3).normal(size=(5, 5)), jnp.float32)

    def loss(w):
        s = T.transform_matrix({**params, name: w}, spec)
        return jnp.sum(s * target) + 0.1 * jnp.sum(s**4)

    step = lambda _, w: w - 0.02 * jax.grad(loss)(w)  # noqa: E731
    w = jax.jit(lambda w: jax.lax.fori_loop(0, 1000, step, w))(params[name])
    s = np.asarray(T.transform_matrix({**params, name: w}, spec), np.float64)
    assert np.abs(s - T.dct_matrix(5)).max() > 0.3  # it moved
    assert loss(w) < loss(params[name]) - 1.0  # and descended
    np.testing.assert_allclose(s.T @ s, np.eye(5), atol=1e-5)


# --- exactness and the two paths ---------------------------------------------------------------


@pytest.mark.parametrize("transform", T.TRANSFORMS)
def test_fit_without_pruning_is_exact(transform):
    spec = _spec(transform=transform)
    kernel = RNG.normal(size=spec.kernel_shape).astype(np.float32)
    params = T.fit(kernel, spec)
    np.testing.assert_allclose(T.build_kernel(params, spec), kernel, atol=1e-5)
    s = np.asarray(T.transform_matrix(params, spec), np.float64)
    expect = np.einsum("ft,thwcn->fhwcn", s, kernel)  # G = S K along time
    np.testing.assert_allclose(params["coeffs"], expect, atol=1e-5)


CONV_CASES = [
    dict(),
    dict(strides=(2, 1, 2), padding="VALID"),
    dict(padding="CIRCULAR"),
    dict(padding=((2, 0), (1, 1), (0, 2)), kernel_dilation=(2, 1, 1)),
    dict(strides=(1, 2, 1), input_dilation=(2, 1, 2), padding=((1, 1), (1, 0), (2, 2))),
]


@pytest.mark.parametrize("transform, conv_kwargs", list(zip(T.TRANSFORMS, CONV_CASES)))
def test_unpruned_paths_equal_conv3d_with_rebuilt_kernel(transform, conv_kwargs):
    spec = _spec(transform=transform)
    params = _random_params(spec)
    x = _x(spec)
    ref = conv(x, T.build_kernel(params, spec), impl="xla", precision="highest", **conv_kwargs)
    for path in ("kernel", "frequency"):
        y = _apply(params, x, spec, path=path, precision="highest", **conv_kwargs)
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_frequency_path_matches_numpy_reference():
    spec = _spec(transform="learned_cayley")
    params = _random_params(spec)
    s = np.asarray(T.transform_matrix(params, spec), np.float64)
    coeffs, beta = np.asarray(params["coeffs"], np.float64), np.asarray(params["beta"], np.float64)
    kernel = np.einsum("ft,fhwcn->thwcn", s, coeffs) * beta[:, None]  # S^T G, channels scaled by beta
    x = _x(spec, (1, 5, 5, 6))
    y = _apply(params, x, spec, path="frequency", strides=(2, 1, 1), precision="highest")
    pads = canonical_padding("SAME", input_spatial=(5, 5, 6), kernel_size=(3, 3, 3), strides=(2, 1, 1))
    np.testing.assert_allclose(y, np_conv(x, kernel, strides=(2, 1, 1), pads=pads), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "transform, conv_kwargs",
    list(zip(("dct", "none", "learned_householder", "learned_cayley", "dct"), CONV_CASES[::-1])),
)
def test_pruned_paths_agree(transform, conv_kwargs):
    spec = _spec(transform=transform)
    params, pruned = T.prune(_random_params(spec), spec, p_c=0.4, p_t=1 / 3)
    x = _x(spec)
    yk = _apply(params, x, pruned, path="kernel", precision="highest", **conv_kwargs)
    yf = _apply(params, x, pruned, path="frequency", precision="highest", **conv_kwargs)
    ref = conv(x, T.build_kernel(params, pruned), impl="xla", precision="highest", **conv_kwargs)
    np.testing.assert_allclose(yf, yk, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(yk, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_apply(params, x, pruned, **conv_kwargs), yf, rtol=1e-4, atol=1e-4)


# --- importance, penalties, pruning ------------------------------------------------------------


def test_importance_and_penalties_match_numpy():
    spec = _spec()
    params = _random_params(spec)
    g = np.asarray(params["coeffs"], np.float64)
    group = np.sqrt((g**2).sum(axis=(1, 2, 3, 4)))
    summed = np.linalg.norm(g.sum(axis=(1, 2, 3)), axis=-1)  # ||(sum_j S f_j)_i||_2
    np.testing.assert_allclose(T.importance(params, spec), group, rtol=1e-5)
    np.testing.assert_allclose(T.importance(params, dataclasses.replace(spec, importance="summed")), summed, rtol=1e-5)
    np.testing.assert_allclose(T.group_sparsity(params, spec), group.sum(), rtol=1e-5)
    beta = np.asarray(params["beta"], np.float64)
    np.testing.assert_allclose(T.channel_sparsity(params), np.abs(beta).sum(), rtol=1e-6)
    np.testing.assert_allclose(
        T.penalty(params, spec, lam=0.3, gamma=2.0), 0.3 * group.sum() + 2.0 * np.abs(beta).sum(), rtol=1e-5
    )


def test_penalty_gradient_is_finite_at_a_zero_row():
    spec = _spec()
    params = _random_params(spec)
    params["coeffs"] = params["coeffs"].at[1].set(0.0)
    grads = jax.jit(jax.grad(lambda p: T.penalty(p, spec, lam=1.0, gamma=1.0)))(params)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in grads.values())


def test_prune_drops_smallest_beta_then_smallest_rows():
    spec = _spec(in_features=8, features=4)
    params = _random_params(spec)
    params["beta"] = jnp.array([0.1, -2.0, 0.05, 1.0, 0.5, -0.3, 3.0, 0.2])
    params["coeffs"] = params["coeffs"] * jnp.array([1.0, 0.01, 2.0]).reshape(3, 1, 1, 1, 1)
    params["bias"] = jnp.arange(4.0)
    new, pruned = T.prune(params, spec, p_c=1 / 4, p_t=1 / 3)
    assert pruned.kept_channels == (1, 3, 4, 5, 6, 7)  # |beta| 0.05 and 0.1 dropped
    assert pruned.kept_rows == (0, 2)  # the row scaled by 0.01 dropped
    assert new["coeffs"].shape == (2, 3, 3, 6, 4) and new["beta"].shape == (6,)
    np.testing.assert_array_equal(new["coeffs"], np.asarray(params["coeffs"])[[0, 2]][:, :, :, [1, 3, 4, 5, 6, 7]])
    np.testing.assert_array_equal(new["householder"], params["householder"])
    np.testing.assert_array_equal(new["bias"], params["bias"])
    assert T.num_params(pruned) == 2 * 9 * 6 * 4 + 6 + 9 < T.num_params(spec)
    # Pruning again takes fractions of the current sizes.
    _, again = T.prune(new, pruned, p_c=0.5, p_t=0.5)
    assert again.num_channels == 3 and again.num_rows == 1


@pytest.mark.parametrize("p_c, p_t, c_kept, t_kept", [(0.25, 1 / 3, 48, 2), (0.625, 1 / 3, 24, 2), (0.0, 0.0, 64, 3)])
def test_pruned_layer_is_physically_smaller(p_c, p_t, c_kept, t_kept):
    spec = _spec(in_features=64, features=8)
    params, pruned = T.prune(_random_params(spec), spec, p_c=p_c, p_t=p_t)
    assert (pruned.num_channels, pruned.num_rows) == (c_kept, t_kept)
    assert params["coeffs"].shape == (t_kept, 3, 3, c_kept, 8)
    assert params["beta"].shape == (c_kept,)
    assert T.pruned_sizes(64, 3, p_c=p_c, p_t=p_t) == (c_kept, t_kept)
    assert T.build_kernel(params, pruned).shape == (3, 3, 3, 64, 8)  # the full dense kernel


def test_min_l2_ablation_prunes_the_weakest_raw_tap():
    spec = _spec(transform="none")
    kernel = RNG.normal(size=spec.kernel_shape).astype(np.float32)
    kernel[1] *= 1e-3
    params, pruned = T.prune(T.fit(kernel, spec), spec, p_c=0.0, p_t=1 / 3)
    assert pruned.kept_rows == (0, 2)
    kernel[1] = 0.0
    x = _x(spec)
    np.testing.assert_allclose(
        _apply(params, x, pruned), conv(x, kernel, impl="xla", precision="highest"), rtol=1e-4, atol=1e-4
    )


def test_dct_compacts_a_temporally_constant_kernel_exactly():
    spec = _spec(transform="dct")
    kernel = np.broadcast_to(RNG.normal(size=(1, 3, 3, 5, 4)), spec.kernel_shape).astype(np.float32)
    params, pruned = T.prune(T.fit(kernel, spec), spec, p_c=0.0, p_t=2 / 3)
    assert pruned.kept_rows == (0,)  # only the DC row is non-zero
    x = _x(spec)
    ref = conv(x, kernel, impl="xla", precision="highest")
    np.testing.assert_allclose(_apply(params, x, pruned, precision="highest"), ref, rtol=1e-4, atol=1e-4)


def test_fit_transform_learns_a_sparser_transform_than_the_dct():
    spec = _spec(features=8, in_features=6, transform="learned_householder")
    rng = np.random.default_rng(4)
    profile = rng.normal(size=(3, 1, 1, 1, 1))  # one temporal profile: ideal S has it as a row
    kernel = (profile * rng.normal(size=(1, 3, 3, 6, 8)) + 0.05 * rng.normal(size=spec.kernel_shape)).astype(np.float32)
    dct, learned = T.fit(kernel, spec), T.fit_transform(kernel, spec, steps=300)
    np.testing.assert_allclose(T.build_kernel(learned, spec), kernel, atol=1e-5)  # exact unpruned
    assert float(T.group_sparsity(learned, spec)) < 0.8 * float(T.group_sparsity(dct, spec))

    def pruned_error(params):
        params, pruned = T.prune(params, spec, p_c=0.0, p_t=2 / 3)
        return np.linalg.norm(np.asarray(T.build_kernel(params, pruned)) - kernel) / np.linalg.norm(kernel)

    assert pruned_error(learned) < 0.2 < pruned_error(dct)
    with pytest.raises(ValueError, match="needs a learned transform, got transform='dct'"):
        T.fit_transform(kernel, dataclasses.replace(spec, transform="dct"))


def test_eq13_speedup_and_eq14_compression():
    assert T.speedup(in_features=64, temporal_size=3, p_c=1 / 4, p_t=1 / 3) == pytest.approx(2.0)
    assert T.speedup(in_features=64, temporal_size=3, p_c=5 / 8, p_t=1 / 3) == pytest.approx(4.0)
    # Unapproximated: c t N / (c' t' t + c' t' N) with c'=48, t'=2.
    exact = T.speedup(in_features=64, temporal_size=3, p_c=1 / 4, p_t=1 / 3, features=64)
    assert exact == pytest.approx(64 * 3 * 64 / (48 * 2 * 3 + 48 * 2 * 64))
    rate = T.compression_rate(features=64, in_features=64, kernel_size=(3, 3, 3), p_c=1 / 4, p_t=1 / 3)
    assert rate == pytest.approx((64 * 48 * 9 * 2 + 9) / (64 * 64 * 9 * 3))
    assert rate == pytest.approx(0.5, abs=1e-3)  # ~ c't'/(ct)
    rate4 = T.compression_rate(features=64, in_features=64, kernel_size=(3, 3, 3), p_c=5 / 8, p_t=1 / 3)
    assert rate4 == pytest.approx((64 * 24 * 9 * 2 + 9) / (64 * 64 * 9 * 3))


def test_num_params_and_ratio():
    spec = _spec(in_features=8, features=16, kept_rows=(0, 2), kept_channels=(1, 2, 5))
    assert T.num_params(spec) == 2 * 9 * 3 * 16 + 3 + 9
    assert T.num_params(dataclasses.replace(spec, transform="dct")) == 2 * 9 * 3 * 16 + 3
    assert T.param_ratio(spec) == pytest.approx(27 * 8 * 16 / T.num_params(spec))
    leaves = jax.tree_util.tree_leaves(jax.eval_shape(lambda k: T.init(k, spec), jax.random.key(0)))
    assert sum(math.prod(v.shape) for v in leaves) == T.num_params(spec)


# --- transformations ---------------------------------------------------------------------------


def test_jit_vmap_grad():
    spec = _spec(kept_rows=(0, 1), kept_channels=(0, 2, 4))
    build = jax.jit(T.build_kernel, static_argnums=1)
    sets = [_random_params(spec, seed) for seed in range(2)]
    for params in sets:  # jit against a NumPy rebuild: S_kept^T G scaled by beta, zeros elsewhere
        s = np.asarray(jax.jit(T.transform_matrix, static_argnums=1)(params, spec), np.float64)
        kept = np.einsum("ft,fhwcn->thwcn", s[[0, 1]], params["coeffs"]) * np.asarray(params["beta"])[:, None]
        expect = np.zeros(spec.kernel_shape)
        expect[:, :, :, [0, 2, 4]] = kept
        np.testing.assert_allclose(build(params, spec), expect, atol=1e-5)
    stacked = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), *sets)
    kernels = jax.vmap(T.build_kernel, in_axes=(0, None))(stacked, spec)
    for kernel, params in zip(kernels, sets):
        np.testing.assert_allclose(kernel, build(params, spec), atol=1e-6)
    params = sets[0]
    x = _x(spec, (1, 4, 4, 4))

    def loss(path):
        return jax.jit(jax.grad(lambda p, x: jnp.sum(T.apply(p, x, spec, path=path, precision="highest") ** 2), argnums=(0, 1)))

    (gk, gxk), (gf, gxf) = loss("kernel")(params, x), loss("frequency")(params, x)
    for name in params:
        np.testing.assert_allclose(gf[name], gk[name], rtol=1e-3, atol=1e-3)
        assert bool(jnp.any(gf[name] != 0))
    np.testing.assert_allclose(gxf, gxk, rtol=1e-3, atol=1e-3)


def test_linen_equals_nnx_and_apply():
    fields = dict(kernel_size=(3, 3, 3), kept_rows=(0, 2), kept_channels=(0, 2, 3), transform="learned_cayley")
    x = jnp.asarray(RNG.normal(size=(2, 5, 6, 6, 5)), jnp.float32)
    linen = cl.FrequencyConv3D(features=4, strides=(1, 2, 1), **fields)
    variables = linen.init(jax.random.key(0), x)
    params = dict(variables["params"])
    assert params["coeffs"].shape == (2, 3, 3, 3, 4) and params["skew"].shape == (3, 3)
    params["bias"] = jnp.arange(4.0)
    params["skew"] = params["skew"] + 0.1
    y = linen.apply({"params": params}, x)
    twin = cn.FrequencyConv3D(5, 4, strides=(1, 2, 1), rngs=nnx.Rngs(1), **fields)
    cn.load_linen_params(twin, params)
    np.testing.assert_allclose(twin(x), y, rtol=1e-5, atol=1e-5)
    spec = linen.spec(5)
    direct = _apply({k: v for k, v in params.items() if k != "bias"}, x, spec, strides=(1, 2, 1))
    np.testing.assert_allclose(y, direct + jnp.arange(4.0).reshape(1, 1, 1, 1, 4), rtol=1e-5, atol=1e-5)
    assert isinstance(linen, nn.Module)


# --- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(kernel_size=(3, 3)), ValueError, r"kernel_size must be \(t, k_h, k_w\)"),
        (dict(kept_rows=(0, 1, 2, 0)), ValueError, "kept_rows keeps 4 entries but the temporal kernel size t is 3"),
        (dict(kept_rows=()), ValueError, "kept_rows must not be empty"),
        (dict(kept_rows=(0, 3)), ValueError, r"kept_rows entries must lie in \[0, 3\)"),
        (dict(kept_rows=(1, 1)), ValueError, "kept_rows must not repeat"),
        (dict(kept_rows=(0.5,)), TypeError, "kept_rows must contain only integers"),
        (dict(kept_channels=(0, 5)), ValueError, r"kept_channels entries must lie in \[0, 5\)"),
        (dict(transform="fourier"), ValueError, r"transform must be one of .*'fourier'"),
        (dict(transform="dct", transform_init="identity"), ValueError, "transform_init applies to learned"),
        (dict(transform_init="random"), ValueError, r"transform_init must be one of .*'random'"),
        (dict(importance="l1"), ValueError, r"importance must be one of .*'l1'"),
        (dict(in_features=4, feature_group_count=2), ValueError, "feature_group_count=1 only, got 2"),
    ],
)
def test_bad_spec_raises(kwargs, error, match):
    with pytest.raises(error, match=match):
        _spec(**kwargs)


def test_bad_calls_raise():
    spec = _spec()
    params = T.init(jax.random.key(0), spec)
    with pytest.raises(ValueError, match=r"p_c must lie in \[0, 1\), got 1.0"):
        T.prune(params, spec, p_c=1.0, p_t=0.0)
    with pytest.raises(ValueError, match=r"p_t must lie in \[0, 1\), got -0.1"):
        T.prune(params, spec, p_c=0.0, p_t=-0.1)
    with pytest.raises(ValueError, match=r"params\['beta'\] must have shape \(5,\).*got \(4,\)"):
        T.prune({**params, "beta": jnp.ones(4)}, spec, p_c=0.2, p_t=0.0)
    with pytest.raises(ValueError, match=r"params lack 'householder'"):
        T.build_kernel({k: v for k, v in params.items() if k != "householder"}, spec)
    with pytest.raises(TypeError, match="needs concrete params; call it outside jit"):
        jax.jit(lambda p: T.prune(p, spec, p_c=0.2, p_t=0.0)[0])(params)
    with pytest.raises(ValueError, match=r"kernel must have shape \(3, 3, 3, 5, 4\)"):
        T.fit(jnp.ones((3, 3, 5, 4)), spec)  # a 2-D (HWIO) kernel
    with pytest.raises(ValueError, match="input has 4 channels"):
        T.apply(params, jnp.ones((1, 4, 4, 4, 4)), spec)
    with pytest.raises(ValueError, match=r"path must be one of .*'fast'"):
        T.apply(params, jnp.ones((1, 4, 4, 4, 5)), spec, path="fast")
    with pytest.raises(ValueError, match="feature_group_count=5 differs"):
        T.apply(params, jnp.ones((1, 4, 4, 4, 5)), spec, feature_group_count=5)
    with pytest.raises(ValueError, match=r"p_c must lie in \[0, 1\)"):
        T.speedup(in_features=64, temporal_size=3, p_c=1.5, p_t=0.0)
    with pytest.raises(ValueError, match="kernel_size must have 3 entries"):
        T.compression_rate(features=8, in_features=8, kernel_size=(3, 3), p_c=0.0, p_t=0.0)


# --- Algorithm 1 on recorded data (compact_jax.fdc3d.fit_outputs, capture_layers) ------------------------------


def _recorded_layer(transform="dct", batches=2):
    from compact_jax import fdc3d

    spec = fdc3d.FrequencySpec(features=3, in_features=2, kernel_size=(3, 3, 3), transform=transform)
    kernel = RNG.normal(size=spec.kernel_shape).astype(np.float32)
    xs = RNG.normal(size=(batches, 2, 4, 5, 5, 2)).astype(np.float32)
    ys = np.stack([np_conv(x, kernel, pads=((1, 1),) * 3) for x in xs]).astype(np.float32)
    return fdc3d, spec, kernel, xs, ys


def test_fit_outputs_from_the_exact_layer_starts_at_zero_error_and_keeps_the_fixed_params():
    fdc3d, spec, kernel, xs, ys = _recorded_layer()
    params = fdc3d.fit(kernel, spec)
    fitted, history = fdc3d.fit_outputs(params, spec, xs, ys, train=("beta",), steps=3, learning_rate=0.01,
                                        conv_kwargs={"padding": ((1, 1),) * 3})
    assert history.shape == (3, 2) and float(history[0, 1]) < 1e-6 and float(history[0, 0]) == float(history[0, 1])
    np.testing.assert_array_equal(fitted["coeffs"], params["coeffs"])  # not trained
    np.testing.assert_allclose(fitted["beta"], np.ones(2), atol=0.05)


def test_fit_outputs_channel_penalty_shrinks_beta_and_is_counted_in_the_objective():
    fdc3d, spec, kernel, xs, ys = _recorded_layer()
    params = fdc3d.fit(kernel, spec)
    fitted, history = fdc3d.fit_outputs(params, spec, xs, ys, train=("beta",), channel_weight=0.5, steps=10,
                                        learning_rate=0.01, conv_kwargs={"padding": ((1, 1),) * 3})
    assert float(history[0, 0]) == pytest.approx(float(history[0, 1]) + 0.5 * 2, rel=1e-5)  # ||beta||_1 = 2 at start
    assert np.all(np.asarray(fitted["beta"]) < 1.0)


def test_fit_outputs_mistakes():
    fdc3d, spec, kernel, xs, ys = _recorded_layer()
    params = fdc3d.fit(kernel, spec)
    with pytest.raises(ValueError, match=r"train names \['skew'\]"):
        fdc3d.fit_outputs(params, spec, xs, ys, train=("skew",))
    with pytest.raises(ValueError, match="records of the same B batches"):
        fdc3d.fit_outputs(params, spec, xs, ys[:1], train=("beta",))
    with pytest.raises(ValueError, match="unknown keys"):
        fdc3d.fit_outputs(params, spec, xs, ys, train=("beta",), conv_kwargs={"stride": 1})


def test_capture_layers_records_a_module_and_names_missing_ones():
    from compact_jax import fdc3d

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            return nn.Dense(3, name="out")(nn.relu(nn.Dense(4, name="hidden")(x)))

    model, x = Net(), np.ones((2, 5), np.float32)
    variables = model.init(jax.random.key(0), x)
    records = fdc3d.capture_layers(model, variables, [x, 2 * x], ["out"])
    inputs, outputs = records["out"]
    assert inputs.shape == (2, 2, 4) and outputs.shape == (2, 2, 3)
    np.testing.assert_allclose(outputs[1], model.apply(variables, 2 * x), rtol=1e-6)
    with pytest.raises(ValueError, match=r"no convolution called at \['nowhere'\]"):
        fdc3d.capture_layers(model, variables, [x], ["nowhere"])
