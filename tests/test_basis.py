"""Learning Filter Basis against NumPy loops, numpy.linalg.svd and the paper's numbers."""

import dataclasses
import functools
import itertools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from compact_jax import basis as lfb
from compact_jax import linen as cl
from compact_jax import nnx as cn
from compact_jax.conv import conv
from compact_jax.protocol import count_params
from tests.reference import np_conv

# ----------------------------------------------------------------------------- references


def same_pads(size, k, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return (total // 2, total - total // 2)


def pads_for(padding, spatial, kernel_size, stride):
    if padding == "VALID":
        return ((0, 0), (0, 0))
    return tuple(same_pads(n, k, stride) for n, k in zip(spatial, kernel_size))


def used_basis(basis, spec):
    """The layer's p channels of the (possibly wider) basis, by explicit index."""
    p, wide = spec.in_features // spec.splits, basis.shape[2]
    start = 0 if spec.basis_slice == "leading" else wide - p
    return np.asarray(basis, np.float64)[:, :, start : start + p, :]


def loop_kernel(params, spec):
    """W[:, :, g*p:(g+1)*p, i] = sum_j A[i, g, j] B_j, one filter split at a time."""
    basis, coef = used_basis(params["basis"], spec), np.asarray(params["coef"], np.float64)
    s, m, n = spec.splits, spec.num_basis, spec.features
    kh, kw, p, _ = basis.shape
    kernel = np.zeros((kh, kw, s * p, n))
    for i, g, j in itertools.product(range(n), range(s), range(m)):
        kernel[:, :, g * p : (g + 1) * p, i] += coef[0, 0, g * m + j, i] * basis[:, :, :, j]
    return kernel


def loop_layer(params, x, spec, *, stride=1, padding="SAME"):
    """The paper's Fig. 2, literally: each input split through the basis conv (+ basis bias),
    responses concatenated split-major, then the coefficient conv (stride 1)."""
    x = np.asarray(x, np.float64)
    basis = used_basis(params["basis"], spec)
    p, kh_kw = basis.shape[2], basis.shape[:2]
    bias = np.asarray(params.get("basis_bias", np.zeros(spec.num_basis)), np.float64)
    pads = pads_for(padding, x.shape[1:3], kh_kw, stride)
    responses = [
        np_conv(x[..., g * p : (g + 1) * p], basis, strides=(stride, stride), pads=pads) + bias
        for g in range(spec.splits)
    ]
    stacked = np.concatenate(responses, axis=-1)
    coef = np.asarray(params["coef"], np.float64)
    return np_conv(stacked, coef, pads=pads_for(padding, stacked.shape[1:3], coef.shape[:2], 1))


def loop_splits_matrix(kernel, spec):
    """Rows: every filter split (i, g), flattened in (kh, kw, p) order."""
    kernel = np.asarray(kernel, np.float64)
    p = spec.in_features // spec.splits
    rows = [
        kernel[:, :, g * p : (g + 1) * p, i].reshape(-1)
        for i in range(spec.features)
        for g in range(spec.splits)
    ]
    return np.stack(rows)


def make_spec(**kw):
    # These small layers test the arithmetic, often at full rank (m >= kh*kw*p), which has more
    # weights than the dense conv: allowed here (the refusal is tested in test_bad_inputs.py).
    base = dict(features=6, in_features=8, kernel_size=(3, 3), num_basis=5, allow_larger=True)
    return lfb.BasisSpec(**{**base, **kw})


def rand(shape, seed=1, scale=1.0):
    """NumPy-generated test data (eager jax.random compiles anew for every shape: slow)."""
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape), jnp.float32)


def random_params(spec, seed=0):
    return {name: rand(shape, seed + i, 0.5) for i, (name, shape) in enumerate(spec.param_shapes.items())}


def filled(tree, seed=3):
    """Random values for every leaf of a tree of shapes."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return jax.tree_util.tree_unflatten(treedef, [rand(leaf.shape, seed + i, 0.5) for i, leaf in enumerate(leaves)])


def linen_params(module, x, seed=3):
    """A Linen module's params, traced (not run) for their shapes, then filled."""
    return filled(jax.eval_shape(module.init, jax.random.key(0), x)["params"], seed)


def nnx_module(make):
    """An NNX module built abstractly, then filled (shared references survive)."""
    graphdef, state = nnx.split(nnx.eval_shape(make))
    return nnx.merge(graphdef, filled(state))


def with_path(spec, path):
    return dataclasses.replace(spec, execution_path=path)


# ----------------------------------------------------------------------------- kernel math


@pytest.mark.parametrize("splits", [1, 2, 4])
@pytest.mark.parametrize("basis_slice", ["leading", "trailing"])
def test_build_kernel_matches_loops(splits, basis_slice):
    wide = 8 // splits + 3  # a wider shared basis, sliced
    spec = make_spec(splits=splits, basis_in_features=wide, basis_slice=basis_slice)
    params = random_params(spec)
    kernel = lfb.build_kernel(params, spec)
    assert kernel.shape == spec.kernel_shape == (3, 3, 8, 6)
    np.testing.assert_allclose(kernel, loop_kernel(params, spec), rtol=1e-5, atol=1e-6)


def test_non_square_and_1x1_kernels():
    for ks in [(1, 1), (1, 3), (3, 2)]:
        spec = make_spec(kernel_size=ks, splits=2, num_basis=3)
        params = random_params(spec)
        np.testing.assert_allclose(lfb.build_kernel(params, spec), loop_kernel(params, spec), atol=1e-6)
        x = rand((2, 5, 6, 8))
        for path in ("reconstruct", "decomposed"):
            y = lfb.apply(params, x, with_path(spec, path))
            np.testing.assert_allclose(y, loop_layer(params, x, spec), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- the two paths


@pytest.mark.parametrize("splits", [1, 2, 4])
@pytest.mark.parametrize("many", [False, True], ids=["m<pkk", "m>pkk"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_paths_agree(splits, many, stride, padding):
    basis_bias = (stride == 2) != (padding == "VALID")  # both values for every (splits, m)
    p = 8 // splits
    m = 9 * p + 3 if many else 3
    spec = make_spec(splits=splits, num_basis=m, basis_bias=basis_bias)
    params = random_params(spec)
    x = rand((2, 7, 6, 8))
    ref = loop_layer(params, x, spec, stride=stride, padding=padding)
    kw = dict(strides=stride, padding=padding)
    via_kernel = conv(x, lfb.build_kernel(params, spec), lfb.build_bias(params, spec), **kw)
    paths = [lfb.apply(params, x, with_path(spec, p), **kw) for p in ("reconstruct", "decomposed", "auto")]
    for y in [via_kernel, *paths]:
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("coef_kernel_size", [3, (3, 1), 2])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_coef_conv_kxk_matches_two_convs(coef_kernel_size, stride, padding):
    spec = make_spec(splits=2, num_basis=4, basis_bias=True, coef_kernel_size=coef_kernel_size)
    params = random_params(spec)
    x = rand((2, 9, 8, 8))
    ref = loop_layer(params, x, spec, stride=stride, padding=padding)
    for s in (spec, with_path(spec, "decomposed")):
        y = lfb.apply(params, x, s, strides=stride, padding=padding)
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=2e-5)
    staged = lfb.coef_conv(
        params, lfb.basis_conv(params, x, spec, strides=stride, padding=padding), spec, padding=padding
    )
    np.testing.assert_allclose(staged, ref, rtol=1e-4, atol=2e-5)


def test_composed_kernel_exact_for_valid_stride_1():
    spec = make_spec(splits=2, num_basis=4, basis_bias=True, coef_kernel_size=3)
    params = random_params(spec)
    x = rand((2, 9, 8, 8))
    kernel = lfb.composed_kernel(params, spec)
    assert kernel.shape == (5, 5, 8, 6)
    y = conv(x, kernel, lfb.build_bias(params, spec), padding="VALID")
    np.testing.assert_allclose(y, loop_layer(params, x, spec, padding="VALID"), rtol=1e-4, atol=2e-5)
    plain = make_spec(splits=2, num_basis=4)
    plain_params = random_params(plain)
    np.testing.assert_allclose(
        lfb.composed_kernel(plain_params, plain), lfb.build_kernel(plain_params, plain), atol=1e-6
    )


def test_basis_conv_is_split_major():
    spec = make_spec(splits=2, num_basis=3, basis_bias=True)
    params = random_params(spec)
    x = rand((1, 5, 5, 8))
    z = lfb.basis_conv(params, x, spec)
    basis = used_basis(params["basis"], spec)
    for g in range(2):
        ref = np_conv(x[..., 4 * g : 4 * g + 4], basis, pads=((1, 1), (1, 1))) + np.asarray(params["basis_bias"])
        np.testing.assert_allclose(z[..., 3 * g : 3 * g + 3], ref, rtol=1e-5, atol=1e-5)


def test_other_conv_options_and_batch_dims():
    spec = make_spec(splits=2, num_basis=5, basis_bias=True)
    params = random_params(spec)
    x = rand((2, 3, 6, 7, 8))
    for kw in [
        dict(padding="CIRCULAR"),
        dict(kernel_dilation=2, padding="SAME"),
        dict(input_dilation=2, padding=((1, 2), (0, 1))),
        dict(strides=(2, 1), padding=1),
    ]:
        ref = conv(x, lfb.build_kernel(params, spec), lfb.build_bias(params, spec), **kw)
        y = lfb.apply(params, x, with_path(spec, "decomposed"), **kw)
        assert y.shape == ref.shape and y.shape[:2] == (2, 3)
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=2e-5)


def test_auto_chooses_by_macs():
    # EDSR-8-128, s = 2, m = 16: decomposed costs 0.15 of dense.
    edsr = lfb.BasisSpec(features=128, in_features=128, kernel_size=(3, 3), num_basis=16, splits=2)
    macs = lfb.path_macs(edsr, (16, 48, 48, 128))
    dense = 16 * 48 * 48 * 128 * 128 * 9
    assert macs["dense"] == dense
    assert macs["decomposed"] == 16 * 48 * 48 * (2 * 16 * 64 * 9 + 128 * 2 * 16)
    assert macs["reconstruct"] == dense + 128 * 128 * 9 * 16
    assert lfb.choose_path(edsr, (16, 48, 48, 128)) == "decomposed"
    wide = dataclasses.replace(edsr, num_basis=100, splits=1, basis_in_features=None, allow_larger=True)  # more work than dense
    assert lfb.choose_path(wide, (16, 48, 48, 128)) == "reconstruct"
    assert lfb.choose_path(with_path(wide, "decomposed"), (16, 48, 48, 128)) == "decomposed"
    kxk = dataclasses.replace(wide, coef_kernel_size=3)
    assert lfb.choose_path(kxk, (16, 48, 48, 128)) == "decomposed"
    # The paper's count with m padded to a multiple of 8: 27 -> 32 filters.
    assert lfb.path_macs(dataclasses.replace(edsr, num_basis=27, splits=1, basis_in_features=None), (1, 4, 4, 128))["decomposed"] == (
        16 * (32 * 128 * 9 + 128 * 32)
    )


# ----------------------------------------------------------------------------- transforms


def test_jit_vmap_grad():
    spec = make_spec(splits=2, num_basis=4, basis_bias=True)
    x = rand((2, 6, 6, 8))
    sets = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *(random_params(spec, seed) for seed in (3, 13, 23)))
    kernels = jax.jit(jax.vmap(lambda p: lfb.build_kernel(p, spec)))(sets)
    batched = lfb.build_kernel(sets, spec)  # leading batch dims work directly too
    outs = {
        path: jax.jit(jax.vmap(lambda p, s=with_path(spec, path): lfb.apply(p, x, s)))(sets)
        for path in ("reconstruct", "decomposed")
    }
    for b in range(3):
        one = jax.tree_util.tree_map(lambda a, b=b: a[b], sets)
        np.testing.assert_allclose(kernels[b], loop_kernel(one, spec), atol=1e-5)
        np.testing.assert_allclose(batched[b], kernels[b], atol=1e-6)
        for y in outs.values():
            np.testing.assert_allclose(y[b], loop_layer(one, x, spec), rtol=1e-4, atol=2e-5)

    def loss(params, x, path):
        return jnp.sum(jnp.sin(lfb.apply(params, x, with_path(spec, path))))

    params = random_params(spec)
    g_rec = jax.jit(jax.grad(loss, (0, 1)), static_argnums=2)(params, x, "reconstruct")
    g_dec = jax.jit(jax.grad(loss, (0, 1)), static_argnums=2)(params, x, "decomposed")
    for a, b in zip(jax.tree_util.tree_leaves(g_rec), jax.tree_util.tree_leaves(g_dec)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # Finite differences on one coefficient and one basis entry.
    eps = 1e-2
    for name, index in (("coef", (0, 0, 3, 2)), ("basis", (1, 2, 0, 1)), ("basis_bias", (2,))):
        bumped = [dict(params, **{name: params[name].at[index].add(d)}) for d in (eps, -eps)]
        fd = (loss(bumped[0], x, "decomposed") - loss(bumped[1], x, "decomposed")) / (2 * eps)
        np.testing.assert_allclose(g_dec[0][name][index], fd, rtol=2e-2, atol=2e-2)


# ----------------------------------------------------------------------------- sharing


def test_pure_sharing_and_slices():
    shared = rand((3, 3, 6, 4), 0)
    x = rand((2, 5, 5, 8))
    for splits, basis_slice in [(2, "leading"), (2, "trailing"), (4, "trailing"), (1, None)]:
        if basis_slice is None:
            spec = make_spec(splits=1, num_basis=4)
            params = {"basis": rand((3, 3, 8, 4), 1), "coef": rand(spec.coef_shape, 2)}
        else:
            spec = make_spec(splits=splits, num_basis=4, basis_in_features=6, basis_slice=basis_slice)
            params = {"basis": shared, "coef": rand(spec.coef_shape, 2)}
        p = 8 // splits
        start = 0 if basis_slice in ("leading", None) else params["basis"].shape[2] - p
        narrow = make_spec(splits=splits, num_basis=4)
        narrow_params = {"basis": params["basis"][:, :, start : start + p], "coef": params["coef"]}
        y = lfb.apply(params, x, with_path(spec, "decomposed"))
        np.testing.assert_allclose(y, lfb.apply(narrow_params, x, with_path(narrow, "reconstruct")), atol=2e-5)
        np.testing.assert_allclose(y, loop_layer(params, x, spec), rtol=1e-4, atol=2e-5)


class LinenBlock(nn.Module):
    """A residual block whose two convs share one basis (the paper's Basis-S)."""

    shared: bool = True

    @nn.compact
    def __call__(self, x):
        basis = cl.SharedBasis(num_basis=4, in_features=4, kernel_size=(3, 3), name="basis") if self.shared else None
        m = None if self.shared else 4
        y = cl.BasisConv(8, (3, 3), num_basis=m, splits=2, basis=basis, basis_bias=True, name="conv1")(x)
        y = cl.BasisConv(8, (3, 3), num_basis=m, splits=2, basis=basis, name="conv2")(nn.relu(y))
        return x + y


class NNXBlock(nnx.Module):
    def __init__(self, *, rngs):
        self.basis = cn.SharedBasis(4, 4, (3, 3), rngs=rngs)
        self.conv1 = cn.BasisConv(8, 8, (3, 3), splits=2, basis=self.basis, basis_bias=True, rngs=rngs)
        self.conv2 = cn.BasisConv(8, 8, (3, 3), splits=2, basis=self.basis, rngs=rngs)

    def __call__(self, x):
        return x + self.conv2(nnx.relu(self.conv1(x)))


def block_reference(params, x):
    """The block through the pure functions, basis taken from one place."""
    spec1 = make_spec(features=8, splits=2, num_basis=4, basis_bias=True)
    spec2 = make_spec(features=8, splits=2, num_basis=4)
    basis = params["basis"]["basis"]
    c1, c2 = params["conv1"], params["conv2"]
    y = lfb.apply({"basis": basis, "coef": c1["coef"], "basis_bias": c1["basis_bias"]}, x, spec1)
    y = y + c1["bias"].reshape(1, 1, 1, -1)
    y = lfb.apply({"basis": basis, "coef": c2["coef"]}, jax.nn.relu(y), spec2)
    return x + y + c2["bias"].reshape(1, 1, 1, -1)


def test_linen_sharing_one_basis_in_tree():
    x = rand((2, 6, 6, 8))
    shared = linen_params(LinenBlock(), x)
    basis_leaves = [k for k, _ in jax.tree_util.tree_leaves_with_path(shared) if k[-1].key == "basis"]
    assert len(basis_leaves) == 1 and shared["basis"]["basis"].shape == (3, 3, 4, 4)
    assert "basis" not in shared["conv1"] and "basis" not in shared["conv2"]
    conv = make_spec(features=8, splits=2, num_basis=4)
    weights = lfb.num_params_shared([dataclasses.replace(conv, basis_bias=True), conv])
    assert count_params(shared) == weights + 2 * 8  # + two conv biases
    separate = jax.eval_shape(LinenBlock(shared=False).init, jax.random.key(0), x)["params"]
    assert count_params(separate) == count_params(shared) + 3 * 3 * 4 * 4
    np.testing.assert_allclose(LinenBlock().apply({"params": shared}, x), block_reference(shared, x), atol=2e-5)
    # The gradient of the shared basis collects both convs' contributions.
    grads = jax.grad(lambda p: jnp.sum(LinenBlock().apply({"params": p}, x) ** 2))(shared)
    ref = jax.grad(lambda p: jnp.sum(block_reference(p, x) ** 2))(shared)
    np.testing.assert_allclose(grads["basis"]["basis"], ref["basis"]["basis"], rtol=1e-4, atol=1e-4)


def test_nnx_sharing_and_equals_linen():
    x = rand((2, 6, 6, 8))
    block = nnx_module(lambda: NNXBlock(rngs=nnx.Rngs(0)))
    state = nnx.state(block, nnx.Param)
    leaves = jax.tree_util.tree_leaves(state)
    assert sum(1 for leaf in leaves if leaf.shape == (3, 3, 4, 4)) == 1
    assert block.conv1.shared_basis is block.conv2.shared_basis
    params = linen_params(LinenBlock(), x, seed=20)
    block.basis.basis[...] = params["basis"]["basis"]
    cn.load_linen_params(block.conv1, params["conv1"])
    cn.load_linen_params(block.conv2, params["conv2"])
    np.testing.assert_allclose(block(x), LinenBlock().apply({"params": params}, x), atol=1e-6)
    # An update through the shared parameter reaches both layers.
    block.basis.basis[...] = jnp.zeros((3, 3, 4, 4))
    block.conv1.basis_bias[...] = jnp.zeros(4)
    np.testing.assert_allclose(block.conv1(x), jnp.broadcast_to(block.conv1.bias[...], (2, 6, 6, 8)), atol=1e-6)
    np.testing.assert_allclose(block.conv2(x), jnp.broadcast_to(block.conv2.bias[...], (2, 6, 6, 8)), atol=1e-6)


def test_densenet_style_slices_of_one_wide_basis():
    """Layers with growing inputs use the leading p channels of one wider basis (Fig. 3)."""

    class Dense(nn.Module):
        @nn.compact
        def __call__(self, x):
            basis = cl.SharedBasis(num_basis=5, in_features=10, kernel_size=(3, 3), name="basis")
            for i in range(3):  # 4 -> 6 -> 8 -> 10 input channels
                y = cl.BasisConv(2, (3, 3), basis=basis, coef_kernel_size=3, basis_bias=True, allow_larger=True,
                                name=f"c{i}")(x)
                x = jnp.concatenate([x, y], axis=-1)
            return x

    x = rand((1, 5, 5, 4))
    params = linen_params(Dense(), x)
    assert count_params(params) == 3 * 3 * 10 * 5 + 3 * (3 * 3 * 5 * 2 + 5 + 2)
    out = Dense().apply({"params": params}, x)
    ref = np.asarray(x, np.float64)
    for i in range(3):
        spec = make_spec(
            features=2, in_features=4 + 2 * i, num_basis=5, basis_in_features=10, coef_kernel_size=3, basis_bias=True
        )
        layer = {"basis": params["basis"]["basis"], **params[f"c{i}"]}
        bias = layer.pop("bias")
        ref = np.concatenate([ref, loop_layer(layer, ref, spec) + np.asarray(bias)], axis=-1)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=2e-5)


def test_drop_in_for_flax_conv():
    class Net(nn.Module):
        conv: nn.Module = nn.Conv

        @nn.compact
        def __call__(self, x):
            x = self.conv(8, (3, 3), strides=2, name="stem")(x)
            return self.conv(8, (3, 3), strides=(1, 1), padding="VALID", name="body")(nn.relu(x))

    x = rand((2, 9, 9, 4))
    net = Net(conv=functools.partial(cl.BasisConv, num_basis=6, splits=2, basis_bias=True))
    params = linen_params(net, x)
    assert set(params["stem"]) == {"basis", "coef", "basis_bias", "bias"}
    assert net.apply({"params": params}, x).shape == (2, 3, 3, 8)

    class NNXNet(nnx.Module):
        def __init__(self, conv, rngs):
            self.stem = conv(4, 8, (3, 3), strides=2, rngs=rngs)
            self.body = conv(8, 8, (3, 3), padding="VALID", rngs=rngs)

        def __call__(self, x):
            return self.body(nnx.relu(self.stem(x)))

    nnx_net = nnx_module(lambda: NNXNet(functools.partial(cn.BasisConv, num_basis=6, splits=2, basis_bias=True), nnx.Rngs(0)))
    cn.load_linen_params(nnx_net.stem, params["stem"])
    cn.load_linen_params(nnx_net.body, params["body"])
    np.testing.assert_allclose(nnx_net(x), net.apply({"params": params}, x), atol=1e-6)


# ----------------------------------------------------------------------------- fits


def test_fit_full_rank_reproduces_kernel():
    kernel = rand((3, 3, 8, 6), seed=7)
    for splits, m in [(1, 6), (4, 18), (2, 40)]:  # m = n*s = rank; the last m > p*k*k = 36
        spec = make_spec(splits=splits, num_basis=m, basis_bias=True)
        params = lfb.fit(kernel, spec)
        np.testing.assert_allclose(lfb.build_kernel(params, spec), kernel, atol=2e-5)
        np.testing.assert_array_equal(params["basis_bias"], np.zeros(m))
        rows = np.asarray(params["basis"]).reshape(-1, m).T
        used = min(m, rows.shape[1])
        np.testing.assert_allclose(rows[:used] @ rows[:used].T, np.eye(used), atol=1e-5)  # orthonormal basis


@pytest.mark.parametrize("splits, m", [(1, 3), (2, 5), (4, 7)])
def test_truncated_fit_is_eckart_young(splits, m):
    kernel = rand((3, 3, 8, 6), seed=8)
    spec = make_spec(splits=splits, num_basis=m)
    params = lfb.fit(kernel, spec)
    err = np.sum((np.asarray(lfb.build_kernel(params, spec), np.float64) - np.asarray(kernel)) ** 2)
    singular = np.linalg.svd(loop_splits_matrix(kernel, spec), compute_uv=False)
    np.testing.assert_allclose(err, np.sum(singular[m:] ** 2), rtol=1e-4)
    np.testing.assert_allclose(lfb.splits_matrix(kernel, spec), loop_splits_matrix(kernel, spec), atol=1e-6)
    target = loop_splits_matrix(kernel, spec)
    rng = np.random.default_rng(0)
    for _ in range(5):  # any basis with its best coefficients does no better
        basis_rows = rng.normal(size=(m, target.shape[1]))
        coef = np.linalg.lstsq(basis_rows.T, target.T, rcond=None)[0].T
        assert err <= np.sum((coef @ basis_rows - target) ** 2) * (1 + 1e-5)
        fitted = lfb.fit_coefficients(kernel, spec, basis_rows.reshape(m, 3, 3, -1).transpose(1, 2, 3, 0))
        fitted_err = np.sum((np.asarray(lfb.build_kernel(fitted, spec)) - np.asarray(kernel)) ** 2)
        np.testing.assert_allclose(fitted_err, np.sum((coef @ basis_rows - target) ** 2), rtol=1e-3)


def test_fit_wide_basis_and_kxk_coefficients():
    kernel = rand((3, 3, 8, 6), seed=9)
    spec = make_spec(splits=2, num_basis=12, basis_in_features=7, basis_slice="trailing", coef_kernel_size=3)
    params = jax.jit(lfb.fit, static_argnames="spec")(kernel, spec=spec)
    assert params["basis"].shape == (3, 3, 7, 12)
    np.testing.assert_array_equal(params["basis"][:, :, :3], 0.0)
    x = rand((2, 6, 5, 8))
    np.testing.assert_allclose(lfb.apply(params, x, spec), conv(x, kernel), rtol=1e-4, atol=5e-5)


def test_fit_shared_stacks_all_splits():
    kernels = [rand((3, 3, 8, 6), seed=s) for s in (10, 11, 12)]
    specs = [make_spec(splits=2, num_basis=9), make_spec(splits=2, num_basis=9, features=4), make_spec(splits=2, num_basis=9)]
    kernels[1] = kernels[1][..., :4]
    fitted = lfb.fit_shared(kernels, specs)
    assert all(p["basis"] is fitted[0]["basis"] for p in fitted)
    err = sum(
        np.sum((np.asarray(lfb.build_kernel(p, s), np.float64) - np.asarray(k)) ** 2)
        for p, s, k in zip(fitted, specs, kernels)
    )
    stacked = np.concatenate([loop_splits_matrix(k, s) for k, s in zip(kernels, specs)])
    singular = np.linalg.svd(stacked, compute_uv=False)
    np.testing.assert_allclose(err, np.sum(singular[9:] ** 2), rtol=1e-4)


def test_basis_regularizer():
    spec = make_spec(splits=2, num_basis=4)
    params, kernel = random_params(spec), rand((3, 3, 8, 6), seed=13)
    ref = 0.3 * np.sum((np.asarray(kernel, np.float64) - loop_kernel(params, spec)) ** 2)
    np.testing.assert_allclose(lfb.basis_regularizer(kernel, params, spec, 0.3), ref, rtol=1e-5)
    full = make_spec(splits=2, num_basis=12)
    assert float(lfb.basis_regularizer(kernel, lfb.fit(kernel, full), full, 1.0)) < 1e-8
    grads = jax.jit(jax.grad(lambda p: lfb.basis_regularizer(kernel, p, spec, 0.3)))(params)
    residual = np.asarray(kernel, np.float64) - loop_kernel(params, spec)
    # d/dA[i, g, j] = -2 gamma <residual split (i, g), B_j>
    basis = used_basis(params["basis"], spec)
    ref_coef = np.zeros((8, 6))
    for i, g, j in itertools.product(range(6), range(2), range(4)):
        ref_coef[g * 4 + j, i] = -0.6 * np.sum(residual[:, :, 4 * g : 4 * g + 4, i] * basis[..., j])
    np.testing.assert_allclose(grads["coef"][0, 0], ref_coef, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- counts and rates


def residual_block(channels, m, splits):
    return lfb.BasisSpec(features=channels, in_features=channels, kernel_size=(3, 3), num_basis=m, splits=splits)


def test_paper_parameter_counts():
    # Table 2 / Table 9: EDSR-8-128 with a 128-channel basis of 27 and 40 filters, one per conv.
    for m, weights in [(27, 69_120), (40, 102_400)]:
        conv = residual_block(128, m, 1)
        assert lfb.num_params_shared([conv, conv], ["conv1", "conv2"]) == weights == 2 * lfb.num_params(conv)
    # Table 1 (per residual block, 128 channels, p = 64): a basis per conv / one shared basis.
    conv = residual_block(128, 16, 2)
    assert lfb.num_params_shared([conv, conv], ["conv1", "conv2"]) == 26_624
    assert lfb.num_params_shared([conv, conv]) == 17_408
    for m, (own_k, shared_k) in [(32, (53, 35)), (64, (106, 70))]:
        conv = residual_block(128, m, 2)
        assert round(lfb.num_params_shared([conv, conv], "ab") / 1000) == own_k
        assert round(lfb.num_params_shared([conv, conv]) / 1000) == shared_k
    # Table 2 SRResNet (64 channels): Basis-64-14 18k, Basis-32-32 27k; Table 3 EDSR Basis 164k, Basis-S 90k.
    for conv, k in [(residual_block(64, 14, 1), 18), (residual_block(64, 32, 2), 27), (residual_block(256, 32, 1), 164)]:
        assert round(lfb.num_params_shared([conv, conv], "ab") / 1000) == k
    assert round(lfb.num_params_shared([residual_block(256, 32, 1)] * 2) / 1000) == 90
    biased = dataclasses.replace(conv, basis_bias=True, coef_kernel_size=3)
    assert lfb.num_params(biased) == 3 * 3 * 256 * 32 + 9 * 32 * 256 + 32


def test_gamma_rates():
    def rate(m, n, c, s, k):  # Eq. (12), left-hand side
        p = c // s
        return (m * p * k * k + m * n * s) / (n * c * k * k)

    for m, n, c, s in [(16, 128, 128, 2), (27, 128, 128, 1), (14, 64, 64, 1), (38, 12, 444, 12)]:
        spec = residual_block(c, m, s)
        spec = dataclasses.replace(spec, features=n)
        assert lfb.gamma_split(m=m, n=n, s=s, p=c // s, kernel_size=3) == pytest.approx(rate(m, n, c, s, 3))
        assert lfb.gamma_split(m=m, n=n, s=s, p=c // s, kernel_size=(3, 3)) == pytest.approx(1 / lfb.param_ratio(spec))
    assert lfb.gamma_filter(m=16, n=64, c=32, kernel_size=3) == pytest.approx(16 / 64 + 16 / (32 * 9))
    assert lfb.gamma_channel(m=4, n=64, c=32, kernel_size=(3, 3)) == pytest.approx(4 / (64 * 32) + 4 / 9)
    assert lfb.param_ratio(residual_block(128, 16, 2)) == pytest.approx(147_456 / 13_312)


@pytest.mark.parametrize("c, n, kh, kw", [(128, 128, 3, 3), (64, 64, 3, 3), (444, 12, 3, 3), (96, 256, 1, 1), (7, 5, 3, 3)])
def test_optimal_splits_eq13(c, n, kh, kw):
    s, p = lfb.optimal_splits(c, n, kh, kw)
    assert s * p == c
    rates = {q: 1 / (n * (c // q)) + 1 / (q * kh * kw) for q in range(1, c + 1) if c % q == 0}
    assert rates[p] == pytest.approx(min(rates.values()))
    p_star = math.sqrt(n * c / (kh * kw))  # Eq. (13)
    below = max([q for q in rates if q <= p_star], default=p)
    above = min([q for q in rates if q >= p_star], default=p)
    assert p in (below, above)
    if (c, n) == (128, 128):
        assert (s, p) == (4, 32)  # s* = sqrt(9) = 3 quantised


# ----------------------------------------------------------------------------- init


def test_init_like_the_authors():
    spec = make_spec(features=64, in_features=32, splits=2, num_basis=40, basis_in_features=20, basis_bias=True)
    params = lfb.init(jax.random.key(0), spec)
    assert {k: v.shape for k, v in params.items()} == spec.param_shapes
    assert spec.param_shapes == {"basis": (3, 3, 20, 40), "coef": (1, 1, 80, 64), "basis_bias": (40,)}
    bound_basis, bound_coef = math.sqrt(6 / (9 * 20)), math.sqrt(6 / 80)
    for name, bound in (("basis", bound_basis), ("coef", bound_coef)):
        v = np.asarray(params[name])
        assert np.abs(v).max() <= bound and np.abs(v).max() > 0.95 * bound
        np.testing.assert_allclose(v.var(), bound**2 / 3, rtol=0.1)
    np.testing.assert_array_equal(params["basis_bias"], 0.0)
    half = jax.eval_shape(functools.partial(lfb.init, spec=spec, dtype=jnp.bfloat16), jax.random.key(0))
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(half)} == {jnp.dtype(jnp.bfloat16)}


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kw, error, match",
    [
        (dict(in_features=10, splits=4), ValueError, r"in_features \(10\).*splits \(4\)"),
        (dict(num_basis=0), ValueError, "num_basis"),
        (dict(num_basis=2.5), TypeError, "num_basis"),
        (dict(splits=0), ValueError, "splits"),
        (dict(execution_path="fast"), ValueError, "execution_path.*'fast'"),
        (dict(coef_kernel_size=0), ValueError, "coef_kernel_size"),
        (dict(coef_kernel_size=(1, 1, 1)), ValueError, "coef_kernel_size"),
        (dict(execution_path="reconstruct", coef_kernel_size=3), ValueError, "reconstruct.*coef_kernel_size"),
        (dict(splits=2, basis_in_features=3), ValueError, r"basis_in_features \(3\).*p = .* = 4"),
        (dict(basis_slice="middle"), ValueError, "basis_slice.*'middle'"),
        (dict(feature_group_count=2), ValueError, "feature_group_count must be 1.*2"),
        (dict(kernel_size=(3,)), ValueError, "2-D"),
        (dict(kernel_size=(3, 3, 3)), ValueError, "2-D"),
        (dict(basis_bias=1), TypeError, "basis_bias"),
    ],
)
def test_bad_specs(kw, error, match):
    with pytest.raises(error, match=match):
        make_spec(**kw)


def test_bad_calls():
    spec = make_spec(splits=2, num_basis=4)
    params = random_params(spec)
    x = rand((1, 5, 5, 8))
    with pytest.raises(ValueError, match=r"params\['basis'\] must have shape \(3, 3, 4, 4\).*got \(3, 3, 6, 4\)"):
        lfb.apply({**params, "basis": jnp.zeros((3, 3, 6, 4))}, x, spec)  # shared basis, wrong channels
    with pytest.raises(ValueError, match=r"params\['basis'\].*got \(5, 5, 4, 4\)"):
        lfb.build_kernel({**params, "basis": jnp.zeros((5, 5, 4, 4))}, spec)
    with pytest.raises(ValueError, match="lack 'coef'"):
        lfb.apply({"basis": params["basis"]}, x, spec)
    with pytest.raises(ValueError, match="basis_bias=False"):
        lfb.apply({**params, "basis_bias": jnp.zeros(4)}, x, spec)
    with pytest.raises(ValueError, match="feature_group_count must be 1, got 2"):
        lfb.apply(params, x, spec, feature_group_count=2)
    with pytest.raises(ValueError, match="input has 6 channels"):
        lfb.apply(params, rand((1, 5, 5, 6)), spec)
    with pytest.raises(ValueError, match="kernel must have shape"):
        lfb.fit(jnp.zeros((3, 3, 8, 5)), spec)
    kxk = make_spec(splits=2, num_basis=4, coef_kernel_size=3)
    with pytest.raises(ValueError, match="composed_kernel"):
        lfb.build_kernel(random_params(kxk), kxk)
    with pytest.raises(ValueError, match="whole shared basis"):
        lfb.fit_shared([jnp.zeros((3, 3, 8, 6))] * 2, [spec, make_spec(splits=2, num_basis=4, basis_in_features=6)])
    with pytest.raises(ValueError, match="one kernel per spec"):
        lfb.fit_shared([jnp.zeros((3, 3, 8, 6))], [spec, spec])
    with pytest.raises(ValueError, match="must agree on its shape"):
        lfb.num_params_shared([spec, make_spec(splits=1, num_basis=4)])
    with pytest.raises(ValueError, match="gamma"):
        lfb.basis_regularizer(jnp.zeros((3, 3, 8, 6)), params, spec, -1.0)
    with pytest.raises(ValueError, match=r"basis must have shape \(3, 3, 4, 4\)"):
        lfb.fit_coefficients(jnp.zeros((3, 3, 8, 6)), spec, jnp.zeros((3, 3, 4, 5)))


def test_bad_modules():
    x = rand((1, 5, 5, 8))

    def linen_layer(**kw):
        class Net(nn.Module):
            @nn.compact
            def __call__(self, x):
                basis = cl.SharedBasis(**kw.pop("shared")) if "shared" in kw else None
                return cl.BasisConv(6, (3, 3), basis=basis, **kw)(x)

        return jax.eval_shape(Net().init, jax.random.key(0), x)

    with pytest.raises(ValueError, match="num_basis is required"):
        linen_layer(splits=2)
    with pytest.raises(ValueError, match=r"basis_in_features \(3\) must be >= .* 4"):  # basis narrower than p
        linen_layer(splits=2, shared=dict(num_basis=4, in_features=3, kernel_size=(3, 3)))
    with pytest.raises(ValueError, match=r"kernel_size \(3, 3\) differs from the shared basis's \(5, 5\)"):
        linen_layer(splits=2, shared=dict(num_basis=4, in_features=4, kernel_size=(5, 5)))
    with pytest.raises(ValueError, match="num_basis=3 differs from the shared basis's 4"):
        linen_layer(splits=2, num_basis=3, shared=dict(num_basis=4, in_features=4, kernel_size=3))
    with pytest.raises(TypeError, match="basis must be a SharedBasis"):
        jax.eval_shape(cl.BasisConv(6, (3, 3), basis=nn.Dense(3)).init, jax.random.key(0), x)
    rngs = nnx.Rngs(0)
    shared = nnx_module(lambda: cn.SharedBasis(4, 4, (5, 5), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="differs from the shared basis's"):
        cn.BasisConv(8, 6, (3, 3), splits=2, basis=shared, rngs=rngs)
    with pytest.raises(ValueError, match=r"basis_in_features \(4\)"):
        cn.BasisConv(8, 6, (5, 5), splits=1, basis=shared, rngs=rngs)
    with pytest.raises(ValueError, match="num_basis is required"):
        cn.BasisConv(8, 6, (3, 3), rngs=rngs)
    with pytest.raises(ValueError, match="2-D"):
        cn.SharedBasis(4, 4, (3, 3, 3), rngs=rngs)
