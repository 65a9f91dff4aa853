"""Tests for compact_jax.models: parameter counts, forward shapes, the conv factory.

Full-size models are only traced (``jax.eval_shape``); forward passes run at
tiny widths. Expected counts are published numbers or independent arithmetic
over each architecture's layer list (written here, not taken from the code).
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compact_jax import linen as cj_linen
from compact_jax import models
from compact_jax.models import resnet3d, sr
from compact_jax.models._resnet_blocks import BasicBlock, zero_pad_shortcut

KEY = jax.random.key(0)
IMAGE = (1, 32, 32, 3)


# ---------------------------------------------------------------- helpers


def _param_shapes(model, shape):
    """Parameter shapes of ``model`` for an input of ``shape``, without compute."""
    init = lambda k: model.init(k, jnp.zeros(shape), train=False)  # noqa: E731
    return jax.eval_shape(init, KEY)["params"]


@functools.lru_cache(maxsize=None)
def _registry_shapes(name, shape, **kwargs):
    """:func:`_param_shapes` of a registry model, traced once per test session."""
    return _param_shapes(models.get_model(name, **kwargs), shape)


def _count(tree, where=lambda path: True):
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return sum(math.prod(leaf.shape) for path, leaf in leaves if where(jax.tree_util.keystr(path)))


def _conv(k, c_in, c_out, bias=False):
    return math.prod(k) * c_in * c_out + (c_out if bias else 0)


def _bn(c):
    return 2 * c


def _fc(c_in, c_out):
    return c_in * c_out + c_out


def _resnet_count(stage_sizes, widths, *, block, shortcut, stem_kernel, classes, in_ch=3):
    """Independent count from the ResNet layer list (stem, blocks, shortcuts, fc)."""
    nd = len(stem_kernel)
    k1, k3 = (1,) * nd, (3,) * nd
    c = widths[0]
    total = _conv(stem_kernel, in_ch, c) + _bn(c)
    expansion = 4 if block == "bottleneck" else 1
    for stage, (n, w) in enumerate(zip(stage_sizes, widths)):
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            if block == "basic":
                total += _conv(k3, c, w) + _bn(w) + _conv(k3, w, w) + _bn(w)
            else:
                total += _conv(k1, c, w) + _bn(w) + _conv(k3, w, w) + _bn(w)
                total += _conv(k1, w, 4 * w) + _bn(4 * w)
            if shortcut == "B" and (stride != 1 or c != w * expansion):
                total += _conv(k1, c, w * expansion) + _bn(w * expansion)
            c = w * expansion
    return total + _fc(c, classes)


def _densenet_count(block_sizes, *, growth, bottleneck, compression, stem, classes):
    c = stem
    total = _conv((3, 3), 3, stem)
    for i, n in enumerate(block_sizes):
        for _ in range(n):
            if bottleneck:
                total += _bn(c) + _conv((1, 1), c, 4 * growth) + _bn(4 * growth)
                total += _conv((3, 3), 4 * growth, growth)
            else:
                total += _bn(c) + _conv((3, 3), c, growth)
            c += growth
        if i + 1 < len(block_sizes):
            out = math.floor(compression * c)
            total += _bn(c) + _conv((1, 1), c, out)
            c = out
    return total + _bn(c) + _fc(c, classes)


def _edsr_count(blocks, f, scale):
    ups = [3] if scale == 3 else [2] * int(math.log2(scale))
    total = _conv((3, 3), 3, f, True) + blocks * 2 * _conv((3, 3), f, f, True)
    total += _conv((3, 3), f, f, True) + _conv((3, 3), f, 3, True)
    return total + sum(_conv((3, 3), f, r * r * f, True) for r in ups)


def _is_conv_kernel(path):
    return path.endswith("['kernel']") and "classifier" not in path and "pwconv" not in path


# ---------------------------------------------------------- parameter counts

# (registry name, input shape, kwargs, expected total) - published numbers.
PUBLISHED = [
    ("resnet18_cifar", IMAGE, {}, 11_173_962),  # 3D-FilterMap Table 2: 11.2M
    ("resnet34_cifar", IMAGE, {}, 21_282_122),  # 21.3M
    ("resnet50_cifar", IMAGE, {}, 23_520_842),  # 23.5M
    ("resnet32", IMAGE, {}, 464_154),  # ApproxConv Table 1: 0.46M
    ("resnet18_imagenet", IMAGE, {}, 11_689_512),  # torchvision resnet18; ApproxConv 11.68M
    ("densenet121_cifar", IMAGE, {}, 6_956_298),  # 3D-FilterMap Table 2: 7.0M
    ("densenet40", IMAGE, {"stem_features": 16}, 1_019_722),  # DenseNet-40 (k=12), CIFAR-10
    ("vgg16_cifar", IMAGE, {}, 14_728_266),  # BN, one classifier layer
    ("convnext_tiny", IMAGE, {}, 28_589_128),  # torchvision convnext_tiny
    ("edsr", (1, 8, 8, 3), {"scale": 4}, 43_089_923),  # EDSR paper: 43M (x4)
    ("srresnet", (1, 8, 8, 3), {"scale": 4}, 1_549_462),  # filter-basis paper: 1.5M
]


@pytest.mark.parametrize("name, shape, kwargs, expected", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_param_counts(name, shape, kwargs, expected):
    assert _count(_registry_shapes(name, shape, **kwargs)) == expected


@pytest.mark.parametrize(
    "name, stage_sizes, widths, shortcut",
    [
        ("resnet20", (3, 3, 3), (16, 32, 64), "A"),  # He et al.: 0.27M
        ("resnet56", (9, 9, 9), (16, 32, 64), "A"),  # He et al.: 0.85M
        ("resnet18_cifar", (2, 2, 2, 2), (64, 128, 256, 512), "B"),
        ("resnet50_cifar", (3, 4, 6, 3), (64, 128, 256, 512), "B"),
    ],
)
def test_cifar_resnet_counts_match_layer_arithmetic(name, stage_sizes, widths, shortcut):
    block = "bottleneck" if "50" in name else "basic"
    expected = _resnet_count(stage_sizes, widths, block=block, shortcut=shortcut, stem_kernel=(3, 3),
                             classes=10)
    assert _count(_registry_shapes(name, IMAGE)) == expected


def test_resnet_cifar_he_published_sizes():
    counts = [_count(_registry_shapes(n, IMAGE)) for n in ("resnet20", "resnet56")]
    assert [round(c / 1e6, 2) for c in counts] == [0.27, 0.85]


def test_resnet32_conv_weights_are_the_approxconv_count():
    # 461,232 = every conv kernel (stem included), without BN and classifier.
    params = _registry_shapes("resnet32", IMAGE)
    assert _count(params, _is_conv_kernel) == 461_232
    assert 461_232 == 3 * 16 * 9 + 10 * 16 * 16 * 9 + (16 * 32 + 9 * 32 * 32) * 9 + (32 * 64 + 9 * 64 * 64) * 9


@pytest.mark.parametrize(
    "factory, stage_sizes, block",
    [
        (resnet3d.ResNet3D18, (2, 2, 2, 2), "basic"),
        (resnet3d.ResNet3D34, (3, 4, 6, 3), "basic"),
        (resnet3d.ResNet3D50, (3, 4, 6, 3), "bottleneck"),
        (resnet3d.ResNet3D101, (3, 4, 23, 3), "bottleneck"),
    ],
    ids=["18", "34", "50", "101"],
)
def test_resnet3d_counts_match_layer_arithmetic(factory, stage_sizes, block):
    params = _param_shapes(factory(num_classes=101), (1, 8, 32, 32, 3))
    expected = _resnet_count(stage_sizes, (64, 128, 256, 512), block=block, shortcut="B",
                             stem_kernel=(7, 7, 7), classes=101)
    assert _count(params) == expected


def test_resnet3d_18_kinetics_sizes():
    shapes = {sc: _param_shapes(resnet3d.ResNet3D18(shortcut=sc), (1, 8, 32, 32, 3)) for sc in "AB"}
    # Hara et al.'s 3D-ResNet-18 (type-A shortcuts, 400 classes): 33.2M.
    assert round(_count(shapes["A"]) / 1e6, 1) == 33.2
    assert _count(shapes["B"]) == _count(shapes["A"]) + 64 * 128 + 128 * 256 + 256 * 512 + 2 * (128 + 256 + 512)
    assert shapes["B"]["stage1"]["block0"]["conv1"]["kernel"].shape == (3, 3, 3, 64, 64)
    assert shapes["B"]["stem_conv"]["kernel"].shape == (7, 7, 7, 3, 64)


@pytest.mark.parametrize("stem", [16, 24])
def test_densenet40_count_matches_layer_arithmetic(stem):
    params = _registry_shapes("densenet40", IMAGE, stem_features=stem)
    expected = _densenet_count((12, 12, 12), growth=12, bottleneck=False, compression=1.0, stem=stem,
                               classes=10)
    assert _count(params) == expected
    if stem == 24:  # the filter-basis authors' variant: conv + classifier weights = their 1041k
        assert round(_count(params, lambda p: "bn" not in p) / 1e3) == 1041


def test_densenet121_count_matches_layer_arithmetic():
    expected = _densenet_count((6, 12, 24, 16), growth=32, bottleneck=True, compression=0.5, stem=64,
                               classes=10)
    assert expected == 6_956_298


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_counts(scale):
    params = _registry_shapes("edsr", (1, 8, 8, 3), scale=scale)
    assert _count(params) == _edsr_count(32, 256, scale)
    # one residual block: the filter-basis paper's 1180k
    assert round(_count(params["block0"]) / 1e3) == 1180


def test_light_sr_block_counts_match_filter_basis_paper():
    edsr = _registry_shapes("edsr_8_128", (1, 8, 8, 3))
    srres = _registry_shapes("srresnet", (1, 8, 8, 3), scale=4)
    assert _count(edsr) == _edsr_count(8, 128, 4)
    assert round(_count(edsr["block0"], _is_conv_kernel) / 1e3) == 295  # Table 2: 295k
    assert round(_count(srres["block0"]) / 1e3) == 74  # Table 2: 74k
    assert sorted(srres["block0"]) == ["act", "bn1", "bn2", "conv1", "conv2"]


def test_convnext_depthwise_weights():
    params = _registry_shapes("convnext_tiny", IMAGE)
    dw = lambda p: "dwconv" in p  # noqa: E731
    assert _count(params, lambda p: dw(p) and p.endswith("['kernel']")) == 324_576
    assert _count(params, dw) == 331_200
    assert params["stage3"]["block8"]["dwconv"]["kernel"].shape == (7, 7, 1, 384)


# ------------------------------------------------------------ forward passes

TINY = [
    ("resnet18_cifar", dict(widths=(4, 8, 8, 16)), (2, 16, 16, 3), (2, 10)),
    ("resnet50_cifar", dict(stage_sizes=(1, 1, 1, 1), widths=(2, 4, 4, 8)), (2, 16, 16, 3), (2, 10)),
    ("resnet20", dict(stage_sizes=(1, 2, 1), widths=(4, 8, 16)), (2, 15, 15, 3), (2, 10)),
    ("resnet18_imagenet", dict(stage_sizes=(1, 1, 1, 1), widths=(4, 4, 8, 8), num_classes=7),
     (1, 32, 32, 3), (1, 7)),
    ("densenet121_cifar", dict(block_sizes=(1, 2), growth_rate=4), (2, 8, 8, 3), (2, 10)),
    ("densenet40", dict(block_sizes=(2, 2, 2), growth_rate=4), (2, 8, 8, 3), (2, 10)),
    ("vgg16_cifar", dict(layers=(4, "M", 8, 8, "M")), (2, 8, 8, 3), (2, 10)),
    ("convnext_tiny", dict(depths=(1, 2), dims=(8, 16), num_classes=5), (2, 16, 16, 3), (2, 5)),
    ("edsr", dict(num_blocks=2, features=8, scale=2), (1, 5, 6, 3), (1, 10, 12, 3)),
    ("edsr", dict(num_blocks=1, features=8, scale=3), (1, 5, 6, 3), (1, 15, 18, 3)),
    ("edsr_8_128", dict(num_blocks=1, features=8, scale=4), (1, 5, 6, 3), (1, 20, 24, 3)),
    ("srresnet", dict(num_blocks=2, features=8), (1, 5, 6, 3), (1, 20, 24, 3)),
    ("resnet3d_18", dict(stage_sizes=(1, 1, 1, 1), widths=(4, 4, 8, 8), num_classes=6),
     (1, 4, 16, 16, 3), (1, 6)),
    ("resnet3d_50", dict(stage_sizes=(1, 1, 1, 1), widths=(2, 2, 4, 4), num_classes=6),
     (1, 4, 16, 16, 3), (1, 6)),
    ("resunet3d", dict(widths=(4, 8, 8), num_classes=3), (1, 8, 4, 12, 2), (1, 8, 4, 12, 3)),
]
# Forward passes compile (seconds each): skip the cases whose code the others run.
FORWARD = [t for t in TINY if t[0] not in ("resnet18_cifar", "resnet3d_50")]


def _random_variables(model, x, seed=0):
    """Variables of the right shapes filled by NumPy (compiling flax's random
    initializers costs seconds per model on CPU; the tests need only values)."""
    shapes = jax.eval_shape(lambda k: model.init(k, x, train=False), KEY)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path[-1:])
        if "batch_stats" in jax.tree_util.keystr(path[:1]):
            value = np.ones(leaf.shape) if "var" in name else 0.1 * rng.normal(size=leaf.shape)
        elif len(leaf.shape) >= 2:  # kernels: unit-variance outputs
            value = rng.normal(size=leaf.shape) / math.sqrt(math.prod(leaf.shape[:-1]))
        else:  # scales, biases, slopes
            value = ("scale" in name or "gamma" in name) + 0.1 * rng.normal(size=leaf.shape)
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.mark.parametrize("name, kwargs, in_shape, out_shape", FORWARD, ids=[t[0] for t in FORWARD])
def test_tiny_forward_shapes(name, kwargs, in_shape, out_shape):
    model = models.get_model(name, **kwargs)
    x = jax.random.uniform(KEY, in_shape)
    variables = _random_variables(model, x)

    @jax.jit
    def run(variables, x):
        y = model.apply(variables, x, train=False)
        y_train, state = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return y, y_train, state.get("batch_stats", {})

    y, y_train, new_stats = run(variables, x)
    assert y.shape == y_train.shape == out_shape
    assert bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(jnp.isfinite(y_train)))
    has_bn = name not in ("edsr", "edsr_8_128", "convnext_tiny")
    assert ("batch_stats" in variables) == has_bn
    if has_bn:  # training mode updates every running statistic
        changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"],
                                         new_stats)
        assert all(jax.tree_util.tree_leaves(changed))
    else:
        np.testing.assert_array_equal(np.asarray(y), np.asarray(y_train))


def test_convnext_drop_path_needs_rng_and_runs():
    model = models.ConvNeXt(depths=(2,), dims=(8,), num_classes=3, drop_path_rate=0.5)
    x = jnp.ones((4, 8, 8, 3))
    variables = _random_variables(model, x)
    y = jax.jit(functools.partial(model.apply, train=True))(variables, x, rngs={"dropout": KEY})
    assert y.shape == (4, 3)
    with pytest.raises(Exception, match="dropout"):
        jax.eval_shape(functools.partial(model.apply, train=True), variables, x)


def test_bfloat16_dtype():
    model = models.ResNet20(stage_sizes=(1, 1, 1), widths=(4, 8, 8), dtype=jnp.bfloat16)
    x = jnp.ones((1, 8, 8, 3))
    y = jax.jit(functools.partial(model.apply, train=False))(_random_variables(model, x), x)
    assert y.dtype == jnp.bfloat16


# ------------------------------------------------ references for the pieces


def _np_conv2d(x, w, stride, pad):
    """Plain NumPy cross-correlation, NHWC x HWIO, symmetric padding."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw = w.shape[:2]
    ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[-1]))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[:, i, j] = np.einsum("nhwc,hwco->no", patch, w)
    return out


def test_basic_block_matches_numpy_with_pytorch_padding():
    norm = functools.partial(nn.BatchNorm, use_running_average=True, epsilon=1e-5)
    block = BasicBlock(6, strides=2, shortcut="B", norm=norm)
    x = jax.random.normal(KEY, (2, 6, 6, 4))
    shapes = jax.eval_shape(block.init, KEY, x)
    rng = np.random.default_rng(2)
    p = jax.tree_util.tree_map(lambda a: rng.normal(size=a.shape).astype(np.float32), shapes["params"])
    stats = jax.tree_util.tree_map(lambda a: np.ones(a.shape, np.float32), shapes["batch_stats"])
    stats = {name: {"mean": 0 * v["mean"], "var": v["var"]} for name, v in stats.items()}

    def bn(y, name):  # running mean 0, variance 1
        return y * p[name]["scale"] / np.sqrt(1 + 1e-5) + p[name]["bias"]

    xn = np.asarray(x, np.float64)
    y = np.maximum(bn(_np_conv2d(xn, p["conv1"]["kernel"], 2, 1), "bn1"), 0)
    y = bn(_np_conv2d(y, p["conv2"]["kernel"], 1, 1), "bn2")
    sc = bn(_np_conv2d(xn, p["proj_conv"]["kernel"], 2, 0), "proj_bn")
    expected = np.maximum(y + sc, 0)
    got = jax.jit(block.apply)({"params": p, "batch_stats": stats}, x)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)


def test_zero_pad_shortcut_matches_numpy():
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 4)).astype(np.float32)
    expected = np.zeros((2, 3, 3, 8), np.float32)
    expected[..., 2:6] = x[:, ::2, ::2, :]
    np.testing.assert_array_equal(np.asarray(zero_pad_shortcut(jnp.asarray(x), 8, 2)), expected)


@pytest.mark.parametrize("scale", [2, 3])
def test_pixel_shuffle_matches_pytorch_definition(scale):
    n, h, w, c = 2, 3, 4, 2
    x = np.random.default_rng(1).normal(size=(n, h, w, c * scale * scale)).astype(np.float32)
    expected = np.zeros((n, h * scale, w * scale, c), np.float32)
    for ch in range(c):
        for i in range(scale):
            for j in range(scale):
                expected[:, i::scale, j::scale, ch] = x[..., ch * scale * scale + i * scale + j]
    np.testing.assert_array_equal(np.asarray(sr.pixel_shuffle(jnp.asarray(x), scale)), expected)


# -------------------------------------------------------- the conv factory


def _module_types(model, x):
    """Classes of every module called while tracing ``model.init``."""
    seen = set()

    def record(next_fun, args, kwargs, context):
        seen.add(type(context.module))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda k: model.init(k, x, train=False), KEY)
    return seen


@pytest.mark.parametrize("name, kwargs, in_shape, out_shape", TINY, ids=[t[0] for t in TINY])
def test_every_conv_goes_through_the_factory(name, kwargs, in_shape, out_shape):
    model = models.get_model(name, conv=cj_linen.DenseConv, **kwargs)
    types = _module_types(model, jnp.zeros(in_shape))
    assert cj_linen.DenseConv in types
    assert not any(issubclass(t, (nn.Conv, nn.ConvTranspose)) for t in types)


@pytest.mark.parametrize(
    "model_fn, shape",
    [
        (lambda conv: models.ResNet20(stage_sizes=(1, 1, 1), widths=(4, 8, 8), conv=conv), (2, 8, 8, 3)),
        (lambda conv: models.ConvNeXt(depths=(1, 1), dims=(8, 16), num_classes=4, conv=conv),
         (2, 16, 16, 3)),
        (lambda conv: models.ResUNet3D(widths=(4, 8), num_classes=2, join="concat", conv=conv),
         (1, 4, 4, 4, 1)),
    ],
    ids=["resnet20", "convnext", "resunet3d"],
)
def test_dense_conv_factory_is_a_drop_in(model_fn, shape):
    flax_model = model_fn(nn.Conv)
    compact_model = model_fn(functools.partial(cj_linen.DenseConv))
    x = jax.random.normal(KEY, shape)
    variables = _random_variables(flax_model, x)
    expected = jax.jit(functools.partial(flax_model.apply, train=False))(variables, x)
    shapes = jax.eval_shape(lambda k: compact_model.init(k, x, train=False), KEY)
    same = jax.tree_util.tree_map(lambda a, b: a.shape == b.shape, variables, shapes)
    assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(shapes)
    assert all(jax.tree_util.tree_leaves(same))
    got = jax.jit(functools.partial(compact_model.apply, train=False))(variables, x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------- names and bad input


def test_registry_lists_every_model():
    assert len(models.MODELS) == len(set(models.MODELS)) == 19
    for name in models.MODELS:
        assert isinstance(models.get_model(name), nn.Module)


def test_unknown_model_name():
    with pytest.raises(ValueError, match=r"unknown model 'resnet19'.*resnet18_cifar.*resunet3d"):
        models.get_model("resnet19")
    with pytest.raises(TypeError, match="model name must be a string"):
        models.get_model(18)


def test_parameter_paths_are_readable():
    resnet = _registry_shapes("resnet18_cifar", IMAGE)
    assert set(resnet) == {"stem_conv", "stem_bn", "stage1", "stage2", "stage3", "stage4", "classifier"}
    assert set(resnet["stage2"]["block0"]) == {"conv1", "bn1", "conv2", "bn2", "proj_conv", "proj_bn"}
    dense = _registry_shapes("densenet121_cifar", IMAGE)
    assert set(dense["block1"]["layer0"]) == {"bottleneck_bn", "bottleneck_conv", "bn", "conv"}
    assert dense["transition1"]["conv"]["kernel"].shape == (1, 1, 256, 128)
    unet = _param_shapes(models.ResUNet3D(widths=(4, 8)), (1, 4, 4, 4, 1))
    assert set(unet) == {"encoder0", "encoder1", "decoder0", "head"}
    assert {"up_conv", "conv1", "conv2"} <= set(unet["decoder0"])


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: models.ResNet(stage_sizes=(2, 2), widths=(4, 8, 16)), ValueError, "same length"),
        (lambda: models.ResNet(stage_sizes=(2, 2), widths=(4, 8), block="wide"), ValueError, "block must be"),
        (lambda: models.ResNet(stage_sizes=(2, 2), widths=(4, 8), shortcut="C"), ValueError, "shortcut"),
        (lambda: models.ResNet(stage_sizes=(2, 0), widths=(4, 8)), ValueError, r"stage_sizes\[1\]"),
        (lambda: models.ResNet(stage_sizes=2), TypeError, "stage_sizes"),
        (lambda: models.EDSR(scale=5), ValueError, "scale must be 3 or a power of two"),
        (lambda: models.EDSR(num_channels=1), ValueError, "rgb_mean"),
        (lambda: models.DenseNet(compression=0.0), ValueError, "compression"),
        (lambda: models.DenseNet(compression=1.5), ValueError, "compression"),
        (lambda: models.VGG(layers=(8, "X")), TypeError, r"layers\[1\]"),
        (lambda: models.ConvNeXt(depths=(1, 1), dims=(8,)), ValueError, "same length"),
        (lambda: models.ResUNet3D(join="sum"), ValueError, "join"),
    ],
)
def test_bad_fields_are_rejected_at_construction(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(
    "model, shape, match",
    [
        (models.ResNet20(), (1, 4, 8, 8, 3), r"rank 4 \(NHWC"),
        (models.ResNet3D18(), (1, 8, 8, 3), r"rank 5 \(NTHWC"),
        (models.SRResNet(), (1, 8, 8, 1), "3 channels"),
        (models.ResUNet3D(widths=(4, 8, 16)), (1, 8, 6, 8, 1), "divisible by"),
    ],
)
def test_bad_inputs_are_rejected(model, shape, match):
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(functools.partial(model.init, train=False), KEY, jnp.zeros(shape))
