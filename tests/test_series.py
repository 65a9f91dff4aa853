"""ApproxConv series kernels against NumPy references and the paper's numbers."""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from numpy.polynomial import chebyshev as npcheb

from compact_jax import linen, series
from compact_jax import nnx as cnnx
from compact_jax.dense import DenseSpec
from reference import np_conv

RNG = np.random.default_rng(0)
DEFAULT_INTERVAL = {"cosine": (0.2 * np.pi, 0.8 * np.pi), "chebyshev": (-1.0, 1.0)}
DEFAULT_POINTS = {"cosine": "equispaced", "chebyshev": "lobatto"}


# ---------------------------------------------------------------- independent references


def ref_points(size, points, interval):
    """The sample points as the paper / the authors define them."""
    low, high = interval
    if size == 1:
        return np.array([(low + high) / 2])
    if points == "lobatto":  # Chebyshev-Gauss-Lobatto nodes cos(pi k / (K - 1)), ascending
        unit = np.sort(np.cos(np.pi * np.arange(size) / (size - 1)))
        return low + (high - low) * (unit + 1) / 2
    return np.linspace(low, high, size)


def ref_phi(family, i, x):
    if family == "cosine":
        return np.cos(i * x)
    return npcheb.chebval(x, np.eye(i + 1)[i])


def ref_kernel(coeffs, family, kernel_size, points="equispaced", interval=None):
    """Double loop over harmonics (i, j) of A_ij phi_i(x) phi_j(y), float64."""
    coeffs = np.asarray(coeffs, np.float64)
    interval = interval or DEFAULT_INTERVAL[family]
    xs = ref_points(kernel_size[0], points, interval)
    ys = ref_points(kernel_size[1], points, interval)
    nh, nw, c_in, c_out = coeffs.shape
    out = np.zeros((*kernel_size, c_in, c_out))
    for i in range(nh):
        for j in range(nw):
            plane = np.outer(ref_phi(family, i, xs), ref_phi(family, j, ys))
            out += plane[:, :, None, None] * coeffs[i, j][None, None]
    return out


def spec_of(family, kernel_size=(3, 3), harmonics=None, c_in=2, c_out=3, **kw):
    return series.SeriesSpec(
        features=c_out, in_features=c_in, kernel_size=kernel_size, family=family,
        harmonics=harmonics, **kw,
    )


def filter_mse(coeffs, kernel, spec):
    approx = ref_kernel(coeffs, spec.family, spec.kernel_size, spec.points, spec.interval)
    return np.mean((approx - np.asarray(kernel, np.float64)) ** 2, axis=(0, 1))


# ---------------------------------------------------------------- basis and kernel values


def test_chebyshev_recurrence_matches_chebval_orders_0_to_10():
    x = np.concatenate([RNG.uniform(-1, 1, 50), [-1.0, 0.0, 1.0], RNG.uniform(-1.5, 1.5, 10)])
    values = series.chebyshev_t(x, 11)
    assert values.shape == (x.size, 11)
    for n in range(11):
        np.testing.assert_allclose(values[:, n], npcheb.chebval(x, np.eye(n + 1)[n]), rtol=1e-12, atol=1e-12)


KERNEL_CASES = [
    # (family, points, kernel_size, harmonics, interval)
    ("cosine", "equispaced", (3, 3), 2, None),
    ("cosine", "equispaced", (5, 5), (5, 3), None),
    ("cosine", "equispaced", (7, 7), 6, (0.0, np.pi)),
    ("cosine", "equispaced", (3, 5), (2, 4), None),
    ("chebyshev", "lobatto", (3, 3), 2, None),
    ("chebyshev", "lobatto", (7, 5), (4, 5), (-0.5, 0.8)),
    ("chebyshev", "equispaced", (5, 5), 3, None),
    ("chebyshev", "lobatto", (1, 3), (1, 3), None),
]


@pytest.mark.parametrize("family, points, ksize, harmonics, interval", KERNEL_CASES)
def test_build_kernel_equals_numpy_double_loop(family, points, ksize, harmonics, interval):
    spec = spec_of(family, ksize, harmonics, points=points, interval=interval)
    coeffs = RNG.normal(size=spec.coeff_shape).astype(np.float32)
    kernel = series.build_kernel({"coeffs": jnp.asarray(coeffs)}, spec, precision="highest")
    assert kernel.shape == spec.kernel_shape
    expected = ref_kernel(coeffs, family, ksize, points, interval)
    np.testing.assert_allclose(kernel, expected, rtol=1e-5, atol=1e-5)


def test_basis_matrices_are_cached_read_only_numpy():
    spec = spec_of("chebyshev", (3, 5), (2, 3))
    ph, pw = series.basis_matrices(spec)
    assert isinstance(ph, np.ndarray) and ph.shape == (3, 2) and pw.shape == (5, 3)
    assert series.basis_matrices(spec_of("chebyshev", (3, 5), (2, 3)))[1] is pw
    with pytest.raises(ValueError):
        ph[0, 0] = 1.0


@pytest.mark.parametrize(
    "family, points, ksize, interval",
    [
        ("cosine", "equispaced", (1, 1), None),
        ("cosine", "equispaced", (3, 3), None),
        ("cosine", "equispaced", (5, 5), None),
        ("cosine", "equispaced", (7, 7), None),
        ("cosine", "equispaced", (4, 6), (0.0, np.pi)),
        ("chebyshev", "lobatto", (3, 3), None),
        ("chebyshev", "lobatto", (7, 7), None),
        ("chebyshev", "lobatto", (2, 5), (-0.5, 0.8)),
        ("chebyshev", "equispaced", (5, 5), None),
        ("chebyshev", "equispaced", (7, 3), None),
    ],
)
def test_full_harmonics_reproduce_any_dense_kernel(family, points, ksize, interval):
    spec = spec_of(family, ksize, None, c_in=3, c_out=4, points=points, interval=interval)
    assert spec.harmonics == ksize
    kernel = RNG.normal(size=spec.kernel_shape).astype(np.float32)
    params = series.fit(jnp.asarray(kernel), spec)
    rebuilt = series.build_kernel(params, spec, precision="highest")
    np.testing.assert_allclose(rebuilt, kernel, rtol=1e-5, atol=3e-5)


# ---------------------------------------------------------------- fitting


GRADIENT_FIT_CASES = [
    # (family, points, kernel_size, harmonics, groups)
    ("cosine", "equispaced", (3, 3), 2, 1),
    ("chebyshev", "lobatto", (3, 3), 2, 1),
    ("chebyshev", "equispaced", (5, 5), 3, 1),
    ("cosine", "equispaced", (7, 7), 5, 4),  # ConvNeXt-style depthwise 7x7
    ("chebyshev", "lobatto", (3, 5), (2, 3), 1),  # anisotropic
]


@pytest.mark.parametrize("family, points, ksize, harmonics, groups", GRADIENT_FIT_CASES)
def test_closed_form_fit_is_no_worse_than_gradient_fit(family, points, ksize, harmonics, groups):
    spec = spec_of(family, ksize, harmonics, c_in=4, c_out=4, points=points, feature_group_count=groups)
    kernel = RNG.normal(size=spec.kernel_shape).astype(np.float32)
    closed = series.fit(jnp.asarray(kernel), spec)["coeffs"]
    gradient, reported_mse = series.fit_gradient(jnp.asarray(kernel), spec)
    mse_closed = filter_mse(closed, kernel, spec)
    mse_gradient = filter_mse(gradient["coeffs"], kernel, spec)
    assert reported_mse.shape == (spec.in_per_group, spec.features)
    np.testing.assert_allclose(reported_mse, mse_gradient, rtol=1e-4, atol=1e-7)
    # Least squares is the global minimum; allow float32 rounding only.
    assert np.all(mse_closed <= mse_gradient * (1 + 1e-5) + 1e-9)
    if (family, ksize, harmonics) == ("cosine", (3, 3), 2):
        np.testing.assert_allclose(mse_gradient, mse_closed, rtol=1e-4)


def test_gradient_fit_short_schedule_is_worse_and_start_is_honoured():
    spec = spec_of("chebyshev", (5, 5), 3, c_in=2, c_out=2)
    kernel = RNG.normal(size=spec.kernel_shape).astype(np.float32)
    start = series.start_params(jnp.asarray(kernel), spec, key=jax.random.key(0))
    # Zero steps are not allowed; a single tiny step barely moves from the start.
    params, mse = series.fit_gradient(jnp.asarray(kernel), spec, schedule=((1e-6, 1),))
    np.testing.assert_allclose(params["coeffs"], start["coeffs"], atol=1e-5)
    np.testing.assert_allclose(mse, filter_mse(start["coeffs"], kernel, spec), rtol=1e-4)
    mse_closed = filter_mse(series.fit(jnp.asarray(kernel), spec)["coeffs"], kernel, spec)
    assert np.all(mse > mse_closed * 1.01)


def test_fit_under_jit_matches_eager():
    spec = spec_of("cosine", (5, 5), 3)
    kernel = jnp.asarray(RNG.normal(size=spec.kernel_shape), jnp.float32)
    eager = series.fit(kernel, spec)["coeffs"]
    jitted = jax.jit(lambda k: series.fit(k, spec))(kernel)["coeffs"]
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- initialisation


def test_cosine_paper_init_is_normal_with_variance_one_over_cin_k2():
    spec = spec_of("cosine", (3, 3), 3, c_in=64, c_out=64)
    coeffs = np.asarray(series.init(jax.random.key(1), spec)["coeffs"])
    assert coeffs.shape == (3, 3, 64, 64)
    assert abs(coeffs.mean()) < 0.002
    np.testing.assert_allclose(coeffs.std(), 1 / np.sqrt(64 * 9), rtol=0.03)


def test_chebyshev_paper_init_is_filter_mean_in_dc_harmonic_only():
    spec = spec_of("chebyshev", (3, 3), 3, c_in=64, c_out=64)
    coeffs = np.asarray(series.init(jax.random.key(2), spec)["coeffs"])
    higher = coeffs.copy()
    higher[0, 0] = 0
    assert np.all(higher == 0)
    # DC = mean of 9 LeCun-normal weights of a fresh dense kernel: std 1/sqrt(fan_in)/3.
    np.testing.assert_allclose(coeffs[0, 0].std(), 1 / np.sqrt(64 * 9) / 3, rtol=0.03)
    kernel = np.asarray(series.build_kernel({"coeffs": jnp.asarray(coeffs)}, spec))
    np.testing.assert_allclose(kernel, np.broadcast_to(coeffs[0, 0], kernel.shape), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("family", ["cosine", "chebyshev"])
def test_dc_mean_start_matches_each_filters_mean(family):
    spec = spec_of(family, (5, 3), (3, 2), coeff_init="dc_mean")
    kernel = RNG.normal(size=spec.kernel_shape).astype(np.float32)
    coeffs = np.asarray(series.start_params(jnp.asarray(kernel), spec, key=jax.random.key(0))["coeffs"])
    np.testing.assert_allclose(coeffs[0, 0], kernel.mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)
    assert not coeffs[1:].any() and not coeffs[:, 1:].any()


def test_fit_init_with_full_harmonics_is_a_lecun_normal_kernel():
    spec = spec_of("chebyshev", (3, 3), None, c_in=64, c_out=64, coeff_init="fit")
    kernel = np.asarray(series.build_kernel(series.init(jax.random.key(3), spec), spec))
    np.testing.assert_allclose(kernel.std(), 1 / np.sqrt(64 * 9), rtol=0.03)


def test_init_honours_dtype():
    for scheme in series.COEFF_INITS:
        spec = spec_of("cosine", (3, 3), 2, c_in=4, c_out=4, coeff_init=scheme)
        assert series.init(jax.random.key(0), spec, dtype=jnp.bfloat16)["coeffs"].dtype == jnp.bfloat16


# ---------------------------------------------------------------- transforms


def test_jit_vmap_over_parameter_sets_and_grad():
    spec = spec_of("chebyshev", (3, 5), (2, 3))
    batch = RNG.normal(size=(3, *spec.coeff_shape)).astype(np.float32)
    build = jax.jit(lambda c: series.build_kernel({"coeffs": c}, spec, precision="highest"))
    vmapped = jax.vmap(build)(jnp.asarray(batch))
    for b in range(3):
        expected = ref_kernel(batch[b], "chebyshev", (3, 5), "lobatto")
        np.testing.assert_allclose(vmapped[b], expected, rtol=1e-5, atol=1e-5)
    # d/dA sum(kernel * G) = sum_hw phi_i(x_h) G[h, w] phi_j(y_w)
    cotangent = RNG.normal(size=spec.kernel_shape)
    grad = jax.jit(jax.grad(lambda c: jnp.sum(build(c) * cotangent)))(jnp.asarray(batch[0]))
    xs, ys = ref_points(3, "lobatto", (-1, 1)), ref_points(5, "lobatto", (-1, 1))
    expected = np.zeros(spec.coeff_shape)
    for i in range(2):
        for j in range(3):
            plane = np.outer(ref_phi("chebyshev", i, xs), ref_phi("chebyshev", j, ys))
            expected[i, j] = np.einsum("hw,hwco->co", plane, cotangent)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- counting (paper numbers)


def resnet_cifar_convs(blocks_per_stage):
    """He et al. CIFAR ResNet-6n+2: 3x3 stem 3->16, stages 16-32-64, option-A (parameter-free)
    shortcuts. Returns (harmonics group, kernel, C_in, C_out): group 0 = stem, 1..3 = stages."""
    layers, c_in = [(0, 3, 3, 16)], 16
    for stage, width in enumerate((16, 32, 64), start=1):
        for _ in range(blocks_per_stage):
            layers += [(stage, 3, c_in, width), (stage, 3, width, width)]
            c_in = width
    return layers


def resnet18_imagenet_convs():
    """torchvision ResNet-18: 7x7 stem 3->64, stages 64-128-256-512 of 2 basic blocks, 1x1
    projection shortcuts. Returns (approximated layers as above, dense 1x1 shortcut weights)."""
    layers, shortcut_weights, c_in = [(0, 7, 3, 64)], 0, 64
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for _ in range(2):
            layers += [(stage, 3, c_in, width), (stage, 3, width, width)]
            if c_in != width:
                shortcut_weights += c_in * width
            c_in = width
    return layers, shortcut_weights


def series_weights(layers, config, family="cosine"):
    kernel_sizes = [max(k for g, k, _, _ in layers if g == group) for group in range(len(config.split(",")))]
    harmonics = series.parse_harmonics(config, kernel_sizes=kernel_sizes)
    total = 0
    for group, k, c_in, c_out in layers:
        spec = series.SeriesSpec(
            features=c_out, in_features=c_in, kernel_size=(k, k), family=family, harmonics=harmonics[group]
        )
        total += series.num_params(spec)
    return total


@pytest.mark.parametrize("family", ["cosine", "chebyshev"])
def test_resnet32_cifar_conv_weights_3332(family):
    layers = resnet_cifar_convs(5)
    assert sum(k * k * c_in * c_out for _, k, c_in, c_out in layers) == 461_232
    assert series_weights(layers, "3,3,3,2", family) == 266_672


@pytest.mark.parametrize("family", ["cosine", "chebyshev"])
def test_resnet18_imagenet_approximated_weights_63332(family):
    layers, _ = resnet18_imagenet_convs()
    assert sum(k * k * c_in * c_out for _, k, c_in, c_out in layers) == 10_994_880
    assert series_weights(layers, "6,3,3,3,2", family) == 6_404_864


# "# Params" columns of Tables 1 and 2: series convs + dense rest (1x1 shortcuts, fc weights and
# bias; BatchNorm not counted), in millions rounded to 2 decimals. (Table 2's 10.99M for 5,3,3,3,3
# is the approximated-conv count, not the model's, and is left out.)
@pytest.mark.parametrize(
    "config, millions",
    [("3,3,3,2", 0.27), ("3,3,2,2", 0.22), ("3,2,2,2", 0.21), ("2,2,2,3", 0.40), ("2,2,2,2", 0.21)],
)
def test_resnet32_table1_param_counts(config, millions):
    fc = 64 * 10 + 10
    assert round((series_weights(resnet_cifar_convs(5), config) + fc) / 1e6, 2) == millions


@pytest.mark.parametrize(
    "config, millions",
    [("6,3,3,3,3", 11.68), ("6,3,3,3,2", 7.09), ("6,3,3,2,2", 5.94), ("6,3,2,2,2", 5.66),
     ("5,3,3,3,2", 7.09), ("5,3,3,2,2", 5.94), ("4,3,3,3,2", 7.09), ("4,3,3,2,2", 5.94)],
)
def test_resnet18_table2_param_counts(config, millions):
    layers, shortcuts = resnet18_imagenet_convs()
    fc = 512 * 1000 + 1000
    assert round((series_weights(layers, config) + shortcuts + fc) / 1e6, 2) == millions


def test_num_params_and_param_ratio():
    spec = series.SeriesSpec(features=64, in_features=32, kernel_size=(3, 3), family="cosine", harmonics=2)
    assert series.num_params(spec) == 2 * 2 * 32 * 64 and series.param_ratio(spec) == 9 / 4
    spec = series.SeriesSpec(features=6, in_features=8, kernel_size=(5, 7), family="chebyshev",
                             harmonics=(3, 4), feature_group_count=2)
    assert series.num_params(spec) == 3 * 4 * 4 * 6 and series.param_ratio(spec) == 35 / 12
    spec = series.SeriesSpec(features=96, in_features=96, kernel_size=(7, 7), family="cosine",
                             harmonics=5, feature_group_count=96)
    assert series.num_params(spec) == 25 * 96 and series.param_ratio(spec) == 49 / 25


# ---------------------------------------------------------------- harmonics configs


def test_parse_harmonics_formats():
    assert series.parse_harmonics("6,3,3,3,2", kernel_sizes=(7, 3, 3, 3, 3), num_groups=5) == (
        (6, 6), (3, 3), (3, 3), (3, 3), (2, 2))
    # ConvNeXt-T (Table 3), one entry per 7x7 depthwise block: depths 3, 3, 9, 3.
    convnext = series.parse_harmonics("7x3,7x3,7x4,6x5,6x3", kernel_sizes=7, num_groups=18)
    assert convnext == ((7, 7),) * 10 + ((6, 6),) * 8
    assert series.parse_harmonics(" 7×2, 6*1 ") == ((7, 7), (7, 7), (6, 6))
    assert series.parse_harmonics("5:3,3", kernel_sizes=[5, (3, 3)]) == ((5, 3), (3, 3))
    assert series.parse_harmonics([6, (5, 3), np.int64(2)]) == ((6, 6), (5, 3), (2, 2))


# ---------------------------------------------------------------- modules


def test_linen_equals_nnx_equals_numpy_conv():
    x = RNG.normal(size=(2, 7, 6, 4)).astype(np.float32)
    kw = dict(strides=2, padding=((1, 1), (1, 1)))
    # Layer shapes shared with other tests: each new shape compiles a random sampler.
    for linen_cls, nnx_cls, family, points in [
        (linen.CosConv, cnnx.CosConv, "cosine", "equispaced"),
        (linen.ChebConv, cnnx.ChebConv, "chebyshev", "lobatto"),
    ]:
        module = linen_cls(features=4, kernel_size=(3, 3), harmonics=2, **kw)
        variables = module.init(jax.random.key(0), x)
        params = dict(variables["params"])
        assert params["coeffs"].shape == (2, 2, 4, 4)
        params["bias"] = jnp.asarray(RNG.normal(size=4), jnp.float32)
        y_linen = module.apply({"params": params}, x)
        twin = nnx_cls(4, 4, (3, 3), harmonics=2, rngs=nnx.Rngs(1), **kw)
        cnnx.load_linen_params(twin, params)
        np.testing.assert_allclose(twin(x), y_linen, rtol=1e-6, atol=1e-6)
        kernel = ref_kernel(params["coeffs"], family, (3, 3), points)
        ref = np_conv(x, kernel, strides=(2, 2), pads=((1, 1), (1, 1))) + np.asarray(params["bias"])
        np.testing.assert_allclose(y_linen, ref, rtol=1e-4, atol=1e-4)


class TinyNet(nn.Module):
    conv: Any = nn.Conv

    @nn.compact
    def __call__(self, x):
        x = nn.relu(self.conv(4, (3, 3), strides=(2, 2), name="conv1")(x))
        return self.conv(4, (3, 3), strides=1, use_bias=False, name="conv2")(x)


@pytest.mark.parametrize("cls, family", [(linen.CosConv, "cosine"), (linen.ChebConv, "chebyshev")])
def test_partial_drops_into_model_written_for_nn_conv(cls, family):
    x = RNG.normal(size=(2, 8, 8, 4)).astype(np.float32)
    # coeff_init="normal" for both families only to share compiled samplers (faster test).
    model = TinyNet(conv=functools.partial(cls, harmonics=2, coeff_init="normal"))
    params = model.init(jax.random.key(0), x)["params"]
    assert params["conv1"]["coeffs"].shape == (2, 2, 4, 4) and "bias" in params["conv1"]
    assert set(params["conv2"]) == {"coeffs"}
    # The same model with nn.Conv holding the series' kernels gives the same output.
    points = DEFAULT_POINTS[family]
    dense_params = {
        "conv1": {"kernel": ref_kernel(params["conv1"]["coeffs"], family, (3, 3), points),
                  "bias": params["conv1"]["bias"]},
        "conv2": {"kernel": ref_kernel(params["conv2"]["coeffs"], family, (3, 3), points)},
    }
    dense_params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), dense_params)
    np.testing.assert_allclose(
        model.apply({"params": params}, x), TinyNet().apply({"params": dense_params}, x), rtol=1e-4, atol=1e-4
    )


def test_depthwise_7x7_convnext_style():
    channels = 4
    x = RNG.normal(size=(1, 9, 9, channels)).astype(np.float32)
    module = linen.CosConv(features=channels, kernel_size=(7, 7), feature_group_count=channels,
                           harmonics=5, padding=3)
    params = module.init(jax.random.key(0), x)["params"]
    assert params["coeffs"].shape == (5, 5, 1, channels)
    kernel = ref_kernel(params["coeffs"], "cosine", (7, 7))
    ref = np_conv(x, kernel, pads=((3, 3), (3, 3)), groups=channels)
    np.testing.assert_allclose(module.apply({"params": params}, x), ref, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- malformed input


def make(**kw):
    base = dict(features=4, in_features=4, kernel_size=(3, 3), family="cosine", harmonics=2)
    return series.SeriesSpec(**{**base, **kw})


GOOD = make()
MALFORMED = [
    (lambda: make(harmonics=4), ValueError, r"harmonics \(4, 4\) exceeds kernel_size \(3, 3\)"),
    (lambda: make(harmonics=(2, 4)), ValueError, r"harmonics \(2, 4\) exceeds"),
    (lambda: make(harmonics=0), ValueError, r"harmonics entries must be >= 1, got \(0, 0\)"),
    (lambda: make(harmonics=-2), ValueError, r"harmonics entries must be >= 1, got \(-2, -2\)"),
    (lambda: make(harmonics=2.0), TypeError, r"harmonics must be an integer .* got 2.0"),
    (lambda: make(harmonics=(2, 2, 2)), ValueError, r"harmonics must have 2 entries, got 3"),
    (lambda: make(family="fourier"), ValueError, r"family must be one of .* got 'fourier'"),
    (lambda: make(family="chebyshev", points="gauss"), ValueError, r"points .* got 'gauss'"),
    (lambda: make(points="lobatto"), ValueError, r"points \(family 'cosine'\) .* got 'lobatto'"),
    (lambda: make(interval=(2.0, 1.0)), ValueError, r"interval must have low < high, got \(2.0, 1.0\)"),
    (lambda: make(interval=(0.0, 4.0)), ValueError, r"interval \(0.0, 4.0\) must lie inside \[0, 3.14159\]"),
    (lambda: make(family="chebyshev", interval=(-2, 1)), ValueError, r"\(-2, 1\) must lie inside \[-1, 1\]"),
    (lambda: make(interval=(float("nan"), 1.0)), ValueError,
     r"interval must be .* finite numbers, got \(nan, 1.0\)"),
    (lambda: make(interval=(0, "1")), TypeError,
     r"interval must be a \(low, high\) pair of real numbers, got \(0, '1'\)"),
    (lambda: make(interval="0,1"), TypeError, r"interval must be a \(low, high\) pair .* '0,1'"),
    (lambda: make(kernel_size=(3, 3, 3)), ValueError, r"kernel_size must be 2-D .* \(3, 3, 3\)"),
    (lambda: make(kernel_size=(3,)), ValueError, r"kernel_size must be 2-D .* \(3,\)"),
    (lambda: make(coeff_init="xavier"), ValueError, r"coeff_init must be one of .* 'xavier'"),
    (lambda: series.parse_harmonics("3,a,3"), ValueError, r"cannot parse entry 'a'"),
    (lambda: series.parse_harmonics("3.5,2"), ValueError, r"cannot parse entry '3.5'"),
    (lambda: series.parse_harmonics("3,,2"), ValueError, r"cannot parse entry ''"),
    (lambda: series.parse_harmonics(""), ValueError, r"must not be empty, got ''"),
    (lambda: series.parse_harmonics("3,0,2"), ValueError, r"entry '0' must have harmonics >= 1"),
    (lambda: series.parse_harmonics("7x0"), ValueError, r"entry '7x0' must have a repeat count >= 1"),
    (lambda: series.parse_harmonics("6,4,3", kernel_sizes=(7, 3, 3)), ValueError,
     r"group 1 has harmonics \(4, 4\) larger than its kernel size \(3, 3\)"),
    (lambda: series.parse_harmonics("3,3,3", num_groups=4), ValueError, r"gives 3 groups, expected 4"),
    (lambda: series.parse_harmonics("3,3", kernel_sizes=(3, 3, 3)), ValueError, r"has 3 entries .* gives 2"),
    (lambda: series.parse_harmonics([3, 2.5]), TypeError, r"entry 1 must be an integer .* 2.5"),
    (lambda: series.parse_harmonics(3), TypeError, r"must be a string like .* got 3"),
    (lambda: series.fit(jnp.zeros((3, 3, 4)), GOOD), ValueError, r"kernel must have shape \(3, 3, 4, 4\)"),
    (lambda: series.build_kernel({"coeffs": jnp.zeros((3, 3, 4, 4))}, GOOD), ValueError,
     r"params\['coeffs'\] must have shape \(\*batch, 2, 2, 4, 4\), got \(3, 3, 4, 4\)"),
    (lambda: series.build_kernel({"coeffs": jnp.zeros((2, 2, 4, 4))},
                                 DenseSpec(features=4, in_features=4, kernel_size=(3, 3))),
     TypeError, r"spec must be a SeriesSpec, got DenseSpec"),
    (lambda: series.fit_gradient(jnp.zeros((3, 3, 4, 4)), GOOD, schedule=((0.1, 0),)), ValueError,
     r"step counts must be integers >= 1, got 0"),
    (lambda: series.fit_gradient(jnp.zeros((3, 3, 4, 4)), GOOD, schedule=((-0.1, 5),)), ValueError,
     r"learning rates must be positive reals, got -0.1"),
    (lambda: series.fit_gradient(jnp.zeros((3, 3, 4, 4)), GOOD, start={"coeffs": jnp.zeros((3, 3, 4, 4))}),
     ValueError, r"start: params\['coeffs'\] must have shape \(2, 2, 4, 4\)"),
    (lambda: series.start_params(jnp.zeros((3, 3, 4, 4)), GOOD, key=jax.random.key(0), scheme="he"),
     ValueError, r"scheme must be one of .* 'he'"),
    (lambda: linen.CosConv(features=4, kernel_size=(3, 3), harmonics=5).init(
        jax.random.key(0), jnp.zeros((1, 5, 5, 2))), ValueError, r"harmonics \(5, 5\) exceeds kernel_size"),
    (lambda: cnnx.ChebConv(2, 4, (3, 3), points="cosine", rngs=nnx.Rngs(0)), ValueError,
     r"points \(family 'chebyshev'\) .* got 'cosine'"),
]


@pytest.mark.parametrize("call, error, match", MALFORMED)
def test_malformed_input_raises_naming_the_value(call, error, match):
    with pytest.raises(error, match=match):
        call()
