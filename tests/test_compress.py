"""Tests for compact_jax.compress: policies, compact models, fit and fold.

References: the dense model's own output (for lossless settings the compact
model must reproduce it), the dense kernels themselves (``fold(fit(W)) == W``),
NumPy SVDs for the optimal bases, and NumPy norms for FDC3D's pruning choices.
Models are the zoo's networks at tiny widths.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compact_jax import basis, compress, models, temporal
from compact_jax.compress import Policy, Rule

KEY = jax.random.key(0)


def _random_variables(model, x, seed=0):
    """Variables of the right shapes filled by NumPy (no compiled initialisers)."""
    shapes = jax.eval_shape(lambda k: model.init(k, x, train=False), KEY)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path[-1:])
        if "batch_stats" in jax.tree_util.keystr(path[:1]):
            value = 1.0 + 0.1 * rng.random(leaf.shape) if "var" in name else 0.1 * rng.normal(size=leaf.shape)
        elif len(leaf.shape) >= 2:
            value = rng.normal(size=leaf.shape) / math.sqrt(math.prod(leaf.shape[:-1]))
        else:
            value = ("scale" in name or "gamma" in name) + 0.1 * rng.normal(size=leaf.shape)
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _leaves(tree):
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _count(tree):
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


# ------------------------------------------------------- lossless settings

def _in_per_group(layer):
    return layer.in_features // layer.feature_group_count


# Exact reparametrisations: non-overlapping FilterMap filters, N = K harmonics,
# a full-rank basis (m = kh * kw * p, or kh * kw * P when shared), FDC3D unpruned.
EXACT_MAP = {"grid": lambda l: (l.features, 1, 1), "map_strides": lambda l: (*l.kernel_size, _in_per_group(l))}


def _full_rank(split_size=None):
    return lambda l: math.prod(l.kernel_size) * (split_size or l.in_features)


LOSSLESS = [
    # (model, kwargs, input shape, rules) - every method each model can take, mixed in one model.
    ("resnet20", dict(stage_sizes=(1, 2, 1), widths=(4, 8, 8)), (2, 9, 9, 3), [
        Rule(path="stem_conv", method="cosine"),
        # group-wise sharing keyed by input channels (stage2/block0/conv1 reads 4 channels)
        Rule(kernel="3x3", in_features=4, method="basis", options={"num_basis": 36, "allow_larger": True},
             share="c{in_features}"),
        Rule(path="stage2/*", method="filtermap", options=EXACT_MAP),
        Rule(path="stage3/*", method="chebyshev"),
    ]),
    ("resnet50_cifar", dict(stage_sizes=(1, 1), widths=(2, 4)), (2, 8, 8, 3), [
        Rule(path="stem_conv", method="filtermap", options=EXACT_MAP),
        Rule(kernel="3x3", method="basis", options={"splits": 2, "num_basis": lambda l: 9 * l.in_features // 2,
                                                             "allow_larger": True}),
        Rule(path="*/conv[13]", kernel="1x1", method="basis", options={"num_basis": _full_rank(), "allow_larger": True}),
    ]),
    ("resnet18_imagenet", dict(stage_sizes=(1, 1, 1, 1), widths=(4, 4, 8, 8), num_classes=7), (1, 32, 32, 3), [
        Rule(path="stem_conv", method="cosine", options={"points": "equispaced", "interval": (0.1, 3.0)}),
        Rule(kernel="3x3", method="chebyshev", options={"points": "equispaced"}),
    ]),
    ("densenet40", dict(block_sizes=(1, 1, 1), growth_rate=4), (2, 8, 8, 3), [
        # network-wise sliced sharing with a 3x3 coefficient conv, as the authors' DenseNet (P = 24)
        Rule(path="block*/conv", method="basis", options={"num_basis": 9 * 24, "coef_kernel_size": 3,
                                                                 "allow_larger": True}, share="network"),
        Rule(path="transition*/conv", method="basis", options={"num_basis": _full_rank(), "allow_larger": True}),
    ]),
    ("vgg16_cifar", dict(layers=(4, "M", 8, 8, "M")), (2, 8, 8, 3), [
        Rule(path="conv0", method="dense"),
        Rule(kernel="3x3", method="basis", options={"split_size": 4, "num_basis": 36, "basis_bias": True,
                                                         "allow_larger": True}),
    ]),
    ("convnext_tiny", dict(depths=(1, 2), dims=(8, 16), num_classes=5), (2, 16, 16, 3), [
        Rule(path="*/dwconv", method="cosine"),
        Rule(path="stem_conv", method="filtermap", options=EXACT_MAP),
        Rule(path="*/downsample_conv", method="chebyshev"),
    ]),
    ("edsr", dict(num_blocks=2, features=8, scale=2), (1, 5, 6, 3), [
        Rule(path="block*/conv[12]", method="basis", options={"num_basis": 72, "allow_larger": True}, share="{parent}"),
        Rule(path="head", method="cosine"),
        Rule(path="body_conv", method="filtermap", options=EXACT_MAP),
        Rule(path="upsample/*", method="chebyshev"),
    ]),
    ("srresnet", dict(num_blocks=2, features=8), (1, 5, 6, 3), [
        Rule(path="block*/conv[12]", method="basis", options={"num_basis": 36, "split_size": 4, "allow_larger": True}),
        Rule(path="re:head|tail", method="chebyshev"),  # 9x9: Lobatto points keep N = K well conditioned
    ]),
    ("resnet3d_18", dict(stage_sizes=(1, 1, 1, 1), widths=(4, 4, 8, 8), num_classes=6), (1, 4, 16, 16, 3), [
        Rule(path="stem_conv", method="fdc3d", options={"transform": "dct"}),
        Rule(path="stage1/*", kernel=">1", method="fdc3d"),
        Rule(path="stage2/*", kernel=">1", method="fdc3d", options={"transform": "learned_cayley"}),
        Rule(kernel=">1", method="fdc3d", options={"transform": "none"}),
    ]),
    ("resunet3d", dict(widths=(4, 8), num_classes=3), (1, 4, 4, 6, 2), [
        Rule(kernel="3x3x3", method="fdc3d", options={"transform_init": "identity"}),
    ]),
]


def _apply(model, variables, x):
    return jax.jit(functools.partial(model.apply, train=False))(variables, x)


@pytest.mark.parametrize("name, kwargs, shape, rules", LOSSLESS, ids=[c[0] for c in LOSSLESS])
def test_lossless_compact_model_reproduces_dense(name, kwargs, shape, rules):
    model = models.get_model(name, **kwargs)
    x = jax.random.uniform(jax.random.key(1), shape)
    variables = _random_variables(model, x)
    plan = compress.resolve(Policy(rules=rules), model, shape)
    plan, params = compress.fit(plan, variables["params"])
    compact = compress.build(plan)
    # The fitted tree is exactly the compact model's parameter tree.
    expected = jax.eval_shape(lambda k: compact.init(k, x, train=False), KEY)["params"]
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(expected)
    assert all(a.shape == b.shape for a, b in zip(jax.tree_util.tree_leaves(params),
                                                   jax.tree_util.tree_leaves(expected)))
    y_dense = _apply(model, variables, x)
    y_compact = _apply(compact, {**variables, "params": params}, x)
    np.testing.assert_allclose(np.asarray(y_compact), np.asarray(y_dense), rtol=2e-4, atol=2e-5)
    # Every compressed layer actually changed representation.
    methods = {e.method for e in plan.layers}
    assert methods - {"dense"}
    if name == "densenet40":  # 3x3 coefficient convs have no single kernel
        with pytest.raises(ValueError, match=r"layer 'block1/layer0/conv'.*cannot be folded"):
            compress.fold(plan, params)
        return
    folded = compress.fold(plan, params)
    dense, back = _leaves(variables["params"]), _leaves(folded)
    assert dense.keys() == back.keys()
    for key in dense:
        np.testing.assert_allclose(back[key], dense[key], rtol=1e-4, atol=2e-5, err_msg=key)


def test_mixed_methods_and_sharing_in_one_tree():
    name, kwargs, shape, rules = LOSSLESS[0]
    model = models.get_model(name, **kwargs)
    plan = compress.resolve(Policy(rules=rules), model, shape)
    x = jnp.zeros(shape)
    params = jax.eval_shape(lambda k: compress.build(plan).init(k, x, train=False), KEY)["params"]
    # stage1 convs and stage2's first conv all read 4 channels: one basis shared by three layers
    assert [g.members for g in plan.shared] == [
        ("stage1/block0/conv1", "stage1/block0/conv2", "stage2/block0/conv1")]
    assert params["shared_basis_c4"]["basis"].shape == (3, 3, 4, 36)
    assert set(params["stage1"]["block0"]["conv1"]) == {"coef"}  # no own basis, no bias (use_bias=False)
    assert params["stage2"]["block0"]["conv2"]["filtermap"].shape == (8 * 3, 3, 8)
    assert params["stage3"]["block0"]["conv1"]["coeffs"].shape == (3, 3, 8, 8)
    assert params["stem_conv"]["coeffs"].shape == (3, 3, 3, 4)
    assert params["stage1"]["block0"]["bn1"]["scale"].shape == (4,)


def test_fresh_compact_model_trains_like_any_model():
    """build() alone gives a trainable model: a gradient step through every method, batch statistics."""
    model = models.get_model("resnet20", stage_sizes=(1, 1), widths=(4, 8))
    policy = Policy(rules=[Rule(kernel=">1", in_features=3, method="cosine", options={"harmonics": 2}),
                           Rule(kernel=">1", method="filtermap", options={"grid": (2, 2, 1)}, path="stage1/*"),
                           Rule(kernel=">1", method="basis", options={"num_basis": 6, "allow_larger": True},
                                share="{stage}")])
    plan = compress.resolve(policy, model, (2, 8, 8, 3))
    compact = compress.build(plan)
    x = jax.random.normal(KEY, (2, 8, 8, 3))
    variables = _random_variables(compact, x)

    @jax.jit
    @functools.partial(jax.grad, has_aux=True)
    def grad(params):
        y, state = compact.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        return jnp.sum(y**2), state

    grads, state = grad(variables["params"])
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(variables["params"])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    assert float(jnp.abs(grads["shared_basis_stage2"]["basis"]).sum()) > 0
    assert jax.tree_util.tree_structure(state["batch_stats"]) == jax.tree_util.tree_structure(
        variables["batch_stats"])


# ------------------------------------------------------------ fit quality


def _splits_matrix_np(kernel, s):
    """NumPy reference: filter splits as rows, ``(n*s, kh*kw*p)``."""
    kh, kw, c, n = kernel.shape
    p = c // s
    return np.transpose(np.asarray(kernel).reshape(kh, kw, s, p, n), (4, 2, 0, 1, 3)).reshape(n * s, -1)


def _vgg_tiny():
    return models.get_model("vgg16_cifar", layers=(8, 8, 16)), (2, 6, 6, 3)


def test_truncated_basis_fit_is_the_svd_optimum():
    model, shape = _vgg_tiny()
    variables = _random_variables(model, jnp.zeros(shape))
    policy = Policy(rules=[Rule(path="conv[12]", method="basis", options={"num_basis": 5, "splits": 2})])
    plan, params = compress.fit(compress.resolve(policy, model, shape), variables["params"])
    folded = compress.fold(plan, params)
    for name in ("conv1", "conv2"):
        dense = np.asarray(variables["params"][name]["kernel"], np.float64)
        error = np.sum((np.asarray(folded[name]["kernel"]) - dense) ** 2)
        sv = np.linalg.svd(_splits_matrix_np(dense, 2), compute_uv=False)
        np.testing.assert_allclose(error, np.sum(sv[5:] ** 2), rtol=1e-3)  # Eckart-Young
        np.testing.assert_array_equal(folded[name]["bias"], variables["params"][name]["bias"])


def test_shared_basis_fit_is_the_joint_svd_optimum():
    model, shape = _vgg_tiny()
    model = models.get_model("vgg16_cifar", layers=(8, 8, 8))
    variables = _random_variables(model, jnp.zeros(shape))
    policy = Policy(rules=[Rule(path="conv[12]", method="basis", options={"num_basis": 7}, share="net")])
    plan, params = compress.fit(compress.resolve(policy, model, shape), variables["params"])
    folded = compress.fold(plan, params)
    dense = [np.asarray(variables["params"][n]["kernel"], np.float64) for n in ("conv1", "conv2")]
    error = sum(np.sum((np.asarray(folded[n]["kernel"]) - d) ** 2) for n, d in zip(("conv1", "conv2"), dense))
    sv = np.linalg.svd(np.concatenate([_splits_matrix_np(d, 1) for d in dense]), compute_uv=False)
    np.testing.assert_allclose(error, np.sum(sv[7:] ** 2), rtol=1e-3)
    assert "shared_basis_net" not in folded and _count(params["shared_basis_net"]) == 9 * 8 * 7


def test_sliced_basis_refinement_lowers_the_error():
    rng = np.random.default_rng(0)
    kernels = [jnp.asarray(rng.normal(size=(3, 3, c, 6)), jnp.float32) for c in (4, 8)]
    build = jax.jit(basis.build_kernel, static_argnums=1)
    specs = [basis.BasisSpec(features=6, in_features=c, kernel_size=(3, 3), num_basis=10, basis_in_features=8,
                             allow_larger=True)
             for c in (4, 8)]

    def error(steps):
        fitted = compress.fit_sliced_basis(kernels, specs, steps=steps)
        assert all(np.array_equal(f["basis"], fitted[0]["basis"]) for f in fitted)
        return sum(float(np.sum((np.asarray(build(f, s)) - np.asarray(k)) ** 2))
                   for f, s, k in zip(fitted, specs, kernels))

    errors = [error(steps) for steps in (0, 1, 5)]
    assert errors[0] > errors[1] > errors[2] > 0
    # A basis spanning all kh*kw*P directions fits every slice exactly.
    wide = [dataclasses_replace(s, num_basis=9 * 8) for s in specs]
    for f, s, k in zip(compress.fit_sliced_basis(kernels, wide, steps=0), wide, kernels):
        np.testing.assert_allclose(build(f, s), k, atol=1e-4)


def dataclasses_replace(spec, **changes):
    import dataclasses

    return dataclasses.replace(spec, **changes)


def test_fdc3d_fit_prunes_weak_channels_and_low_energy_rows():
    model = models.get_model("resnet3d_18", stage_sizes=(1,), widths=(8,), num_classes=3)
    shape = (1, 4, 8, 8, 3)
    variables = _random_variables(model, jnp.zeros(shape), seed=3)
    policy = Policy(rules=[Rule(path="stage1/*", kernel=">1", method="fdc3d",
                                options={"transform": "dct", "p_c": 1 / 4, "p_t": 1 / 3})])
    plan = compress.resolve(policy, model, shape)
    assert plan.layer("stage1/block0/conv1").spec.coeffs_shape == (2, 3, 3, 6, 8)  # placeholder sizes
    new_plan, params = compress.fit(plan, variables["params"])
    kernel = np.asarray(variables["params"]["stage1"]["block0"]["conv1"]["kernel"], np.float64)
    spec = new_plan.layer("stage1/block0/conv1").spec
    norms = np.sqrt(np.sum(kernel**2, axis=(0, 1, 2, 4)))  # per input channel (S is orthogonal)
    assert spec.kept_channels == tuple(sorted(np.argsort(norms)[2:]))
    s = temporal.dct_matrix(3)
    energy = np.sum(np.einsum("ft,thwcn->fhwcn", s, kernel[:, :, :, list(spec.kept_channels)]) ** 2,
                    axis=(1, 2, 3, 4))
    assert spec.kept_rows == tuple(sorted(np.argsort(energy)[1:]))
    # The folded kernel is the projection onto the kept rows and channels.
    expected = np.zeros_like(kernel)
    kept = np.einsum("ft,fhwcn->thwcn", s[list(spec.kept_rows)],
                     np.einsum("ft,thwcn->fhwcn", s[list(spec.kept_rows)], kernel))
    expected[:, :, :, list(spec.kept_channels)] = kept[:, :, :, list(spec.kept_channels)]
    folded = compress.fold(new_plan, params)
    np.testing.assert_allclose(folded["stage1"]["block0"]["conv1"]["kernel"], expected, atol=1e-5)
    # The pruned compact model runs (frequency path) and equals the dense model with folded weights.
    compact = compress.build(new_plan)
    x = jax.random.normal(KEY, shape)
    y = _apply(compact, {**variables, "params": params}, x)
    np.testing.assert_allclose(y, _apply(model, {**variables, "params": folded}, x), rtol=1e-4, atol=1e-5)


def test_default_policies_run_on_tiny_models():
    """Non-lossless settings (Table 1 grids, few harmonics, small bases) still run."""
    model = models.get_model("densenet121_cifar", block_sizes=(1, 2), growth_rate=4)
    shape = (2, 8, 8, 3)
    policy = Policy(rules=[Rule(kernel=">1", in_features=3, method="filtermap", options={"grid": (2, 2, 2),
                                                                                         "map_strides": (2, 2, 3)}),
                           Rule(kernel=">1", method="filtermap", options={"grid": (2, 2, 1)})])
    x = jax.random.uniform(KEY, shape)
    variables = _random_variables(model, x)
    compact, params, plan = compress.compress(policy, model, variables["params"], shape)
    y = _apply(compact, {**variables, "params": params}, x)
    assert y.shape == (2, 10) and bool(jnp.all(jnp.isfinite(y)))
    assert {e.method for e in plan.layers} == {"filtermap", "dense"}


# ------------------------------------------------------------ policies


def _resolve(rules, name="resnet20", shape=(1, 8, 8, 3), **kwargs):
    model = models.get_model(name, **{"stage_sizes": (1, 1, 1), "widths": (4, 8, 16), **kwargs}) \
        if name == "resnet20" else models.get_model(name, **kwargs)
    return compress.resolve(Policy(rules=rules), model, shape)


def test_first_matching_rule_wins_and_default_is_dense():
    plan = _resolve([Rule(path="stage2/*", method="chebyshev", options={"harmonics": 2}),
                     Rule(kernel="3x3", method="cosine"),
                     Rule(path="stage1/block0/conv2", method="filtermap", optional=True)])
    methods = {e.path: e.method for e in plan.layers}
    assert methods["stage2/block0/conv1"] == "chebyshev" and methods["stage1/block0/conv2"] == "cosine"
    assert methods["stem_conv"] == "cosine"
    plan = _resolve([Rule(path="re:stage[12]/block0/conv1", method="cosine")])
    assert [e.path for e in plan.layers if e.method == "cosine"] == ["stage1/block0/conv1", "stage2/block0/conv1"]
    assert {e.method for e in plan.layers if e.method != "cosine"} == {"dense"}


@pytest.mark.parametrize("kernel, expected", [
    (">1", {"stage1/block0/conv1"}), ("1x1", {"stage2/block0/proj_conv"}), ("3x3", {"stage1/block0/conv1"}),
    ("==1", {"stage2/block0/proj_conv"}), ("<3", {"stage2/block0/proj_conv"})])
def test_kernel_criteria(kernel, expected):
    model = models.get_model("resnet18_cifar", stage_sizes=(1, 1), widths=(4, 8))
    plan = compress.resolve(Policy(rules=[Rule(kernel=kernel, method="dense")]), model, (1, 8, 8, 3))
    matched = {e.path for e in plan.layers if e.rule == 0}
    assert expected <= matched
    assert all(Rule(kernel=kernel).matches(e.layer) for e in plan.layers if e.path in matched)


def test_per_group_rules_and_runs():
    rules = compress.per_group_rules("cosine", "6,3,3,3,2", ["stem_conv", "s1", "s2", "s3", "s4"])
    assert [r.options["harmonics"] for r in rules] == [6, 3, 3, 3, 2]
    assert all(r.kernel == ">1" and r.method == "cosine" for r in rules)
    assert compress.expand_runs("7x3,6x2,5") == (7, 7, 7, 6, 6, 5)
    with pytest.raises(ValueError, match="2 values"):
        compress.per_group_rules("cosine", "3,2", ["a"])


def test_fdc3d_prune_options_set_the_pruned_sizes():
    plan = _resolve([Rule(kernel=">1", method="fdc3d", options={"p_c": 5 / 8, "p_t": 1 / 3})],
                    name="resnet3d_18", shape=(1, 4, 16, 16, 3), stage_sizes=(1, 1), widths=(8, 16))
    spec = plan.layer("stage2/block0/conv2").spec
    assert (spec.num_channels, spec.num_rows) == (16 - 10, 2)
    assert plan.layer("stage2/block0/conv2").prune == (5 / 8, 1 / 3)


# ------------------------------------------------------------ bad policies


@pytest.mark.parametrize("rules, error, match", [
    ([Rule(path="stage9/*", method="cosine")], ValueError, r"rule 0 \(path='stage9/\*' -> cosine\) matches no"),
    ([Rule(kernel="3x3", method="cosine", options={"harmonics": 4})], ValueError,
     r"layer 'stem_conv' \(3x3 conv 3->4\).*harmonics \(4, 4\) exceeds kernel_size"),
    ([Rule(path="stage2/*", kernel="3x3", method="filtermap", options={"grid": (2, 2, 3)})], ValueError,
     r"layer 'stage2/block0/conv1' \(3x3 conv 4->8\).*grid=\(2, 2, 3\) generates K1\*K2\*K3=12 filters"),
    ([Rule(path="stage2/*", kernel="3x3", method="filtermap", options={"grid": (1, 1, 8)})], ValueError,
     r"layer 'stage2/block0/conv1'.*K3=8 .*divide the filter depth C=in_features/feature_group_count=4"),
    ([Rule(path="stage2/*", kernel="3x3", method="filtermap")], ValueError,
     r"layer 'stage2/block0/conv1'.*no default grid for features=8"),
    ([Rule(kernel="3x3", method="basis", options={"num_basis": 4, "basis_in_features": 8, "allow_larger": True},
           share="all")],
     ValueError, r"layer 'stage3/block0/conv2' \(3x3 conv 16->16\): its split size p = 16 exceeds the 8 "
     r"channels of shared basis 'all'"),
    ([Rule(kernel="3x3", method="basis", options={"num_basis": 4, "split_size": 3, "allow_larger": True})], ValueError,
     r"layer 'stage1/block0/conv1'.*split_size=3 must be a positive divisor of the layer's 4 input"),
    ([Rule(kernel="3x3", method="basis", options={"num_basis": 4, "allow_larger": True}, share="{stage}"),
      Rule(kernel="3x3", method="cosine")], ValueError, r"rule 1 .*only convolutions already claimed"),
    ([Rule(path="stem_conv", method="fdc3d")], ValueError, r"layer 'stem_conv'.*\(t, k_h, k_w\)"),
])
def test_bad_policies_name_the_rule_or_layer(rules, error, match):
    with pytest.raises(error, match=match):
        _resolve(rules)


def test_basis_on_a_depthwise_conv_names_the_layer():
    with pytest.raises(ValueError, match=r"layer 'stage1/block0/dwconv' \(7x7 conv 8->8, groups 8\).*"
                                         r"feature_group_count must be 1"):
        _resolve([Rule(path="*/dwconv", method="basis", options={"num_basis": 4})], name="convnext_tiny",
                 shape=(1, 16, 16, 3), depths=(1,), dims=(8,))


def test_shared_basis_layers_must_agree():
    with pytest.raises(ValueError, match=r"shared basis 'x': layer 'stage2/block0/proj_conv' has kernel \(1, 1\)"):
        _resolve([Rule(path="stage2/*", method="basis", options={"num_basis": 4, "allow_larger": True}, share="x")],
                 name="resnet18_cifar", stage_sizes=(1, 1), widths=(4, 8))


@pytest.mark.parametrize("build, error, match", [
    (lambda: Rule(method="pruning"), ValueError, "Rule.method must be one of dense, filtermap"),
    (lambda: Rule(method="cosine", options={"harmonic": 2}), ValueError, r"unknown options \['harmonic'\].*harmonics"),
    (lambda: Rule(method="cosine", share="{stage}"), ValueError, "share applies to method 'basis' only"),
    (lambda: Rule(method="basis", share="{block}"), ValueError, "may only use the fields path, parent"),
    (lambda: Rule(kernel="3by3"), ValueError, "Rule.kernel must be an exact size"),
    (lambda: Rule(path="re:("), ValueError, "not a valid regular expression"),
    (lambda: Rule(method="basis", options={"splits": 2, "split_size": 4}), ValueError, "either"),
    (lambda: Policy(rules=Rule()), TypeError, "sequence of Rule"),
    (lambda: Policy(rules=["x"]), TypeError, r"Policy.rules\[0\] must be a Rule"),
    (lambda: Policy(default="sparse"), ValueError, "Policy.default"),
])
def test_bad_rules_are_rejected_at_construction(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_fit_and_fold_check_their_params():
    plan = _resolve([Rule(path="stage1/*", method="cosine")])
    model = plan.model
    variables = _random_variables(model, jnp.zeros((1, 8, 8, 3)))
    _, params = compress.fit(plan, variables["params"])
    with pytest.raises(ValueError, match=r"compress.fit: layer 'stage1/block0/conv1' has params \['coeffs'\]"):
        compress.fit(plan, params)
    with pytest.raises(ValueError, match=r"compress.fold: layer 'stage1/block0/conv1' has params \['kernel'\]"):
        compress.fold(plan, variables["params"])
    with pytest.raises(ValueError, match="no entry for layer 'stem_conv'"):
        compress.fit(plan, {})
    with pytest.raises(TypeError, match="must be a flax.linen Module"):
        compress.resolve(Policy(), "resnet20", (1, 8, 8, 3))


def test_models_without_a_conv_factory_are_rejected():
    class Hardcoded(nn.Module):
        conv: object = nn.Conv

        @nn.compact
        def __call__(self, x, train=False):
            x = self.conv(4, (3, 3), name="ok")(x)
            return nn.Conv(4, (3, 3), name="hard")(x)

    class Unnamed(nn.Module):
        conv: object = nn.Conv

        @nn.compact
        def __call__(self, x, train=False):
            return self.conv(4, (3, 3))(x)

    class NoField(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            return nn.Conv(4, (3, 3))(x)

    with pytest.raises(ValueError, match=r"\['hard'\] are not built through the model's `conv` factory"):
        compress.resolve(Policy(), Hardcoded(), (1, 8, 8, 3))
    with pytest.raises(ValueError, match=r"\['_FactoryConv_0'\] were built without a name"):
        compress.resolve(Policy(), Unnamed(), (1, 8, 8, 3))
    with pytest.raises(TypeError, match="has no `conv` field"):
        compress.resolve(Policy(), NoField(), (1, 8, 8, 3))


def _assert_trees_close(got, want, **tol):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **tol)


def test_fold_modules_of_a_built_model_is_fold_of_its_plan():
    """Shared and per-layer bases (with basis bias), a series layer: fold_modules needs no plan."""
    model = models.get_model("vgg16_cifar", layers=(8, 8, 8))
    shape = (2, 6, 6, 3)
    variables = _random_variables(model, jnp.zeros(shape))
    policy = Policy(rules=[
        Rule(path="conv0", method="cosine"),
        Rule(path="conv[12]", method="basis", options={"num_basis": 7, "basis_bias": True}, share="net"),
    ])
    plan, params = compress.fit(compress.resolve(policy, model, shape), variables["params"])
    params = jax.tree.map(lambda p: p + 0.1, params)  # a non-zero basis bias to fold
    x = jnp.ones((1, *shape[1:]))
    folded = compress.fold_modules(compress.build(plan), {**variables, "params": params}, x, train=False)
    _assert_trees_close(folded, compress.fold(plan, params), rtol=1e-6, atol=1e-6)
    assert "shared_basis_net" not in folded


@pytest.mark.parametrize("method", ["filtermap", "basis", "cos", "cheb"])
def test_fold_modules_of_a_conv_factory_model_loads_into_the_dense_network(method):
    from train.models import conv_factory

    kwargs = dict(stage_sizes=(1, 1), widths=(16, 32), num_classes=5)
    options = {"num_basis": 6} if method == "basis" else {}
    compact = models.get_model("resnet20", conv=conv_factory(method, dense_layers=("stem_conv",), **options), **kwargs)
    dense = models.get_model("resnet20", **kwargs)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 12, 12, 3)), jnp.float32)
    variables = _random_variables(compact, x)
    folded = compress.fold_modules(compact, variables, x[:1], train=False)
    assert jax.tree.structure(folded) == jax.tree.structure(_random_variables(dense, x)["params"])
    want = compact.apply(variables, x, train=False)
    np.testing.assert_allclose(dense.apply({**variables, "params": folded}, x, train=False), want, rtol=1e-4, atol=1e-4)


def test_fold_modules_mistakes_name_what_is_wrong():
    dense = models.get_model("vgg16_cifar", layers=(8, 8, 8))
    x = jnp.zeros((1, 6, 6, 3))
    variables = _random_variables(dense, x)
    with pytest.raises(ValueError, match="called no compact_jax.linen convolution"):
        compress.fold_modules(dense, variables, x, train=False)
    with pytest.raises(TypeError, match="'params' collection"):
        compress.fold_modules(dense, variables["params"], x, train=False)
    policy = Policy(rules=[Rule(path="conv1", method="basis", options={"num_basis": 4, "coef_kernel_size": 3})])
    plan, params = compress.fit(compress.resolve(policy, dense, x.shape), variables["params"])
    with pytest.raises(ValueError, match="'conv1' uses a \\(3, 3\\) coefficient conv"):
        compress.fold_modules(compress.build(plan), {**variables, "params": params}, x, train=False)


def test_fold_modules_of_a_pruned_frequency_conv3d_model_loads_into_the_dense_network():
    from train.models import conv_factory

    kwargs = dict(stage_sizes=(1,), widths=(8,), stem_features=8, stem_kernel=(3, 3, 3), num_classes=4)
    conv = conv_factory("fdc3d", dense_layers=("stem_conv",), kept_rows=(0, 2), transform="dct")
    compact = models.get_model("resnet3d_18", conv=conv, **kwargs)
    dense = models.get_model("resnet3d_18", **kwargs)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 4, 8, 8, 3)), jnp.float32)
    variables = _random_variables(compact, x)
    folded = compress.fold_modules(compact, variables, x[:1], train=False)
    assert folded["stage1"]["block0"]["conv1"]["kernel"].shape == (3, 3, 3, 8, 8)
    want = compact.apply(variables, x, train=False)
    np.testing.assert_allclose(dense.apply({**variables, "params": folded}, x, train=False), want, rtol=1e-4, atol=1e-4)
