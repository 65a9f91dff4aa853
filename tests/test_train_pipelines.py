"""Compression pipelines end to end on embedded data (tiny nets, few steps), policies, trainer hooks.

One tiny dense ResNet (stages 16-32-64, one block each) is trained once on
the embedded digits and shared by the ApproxConv and filter-basis tests
(``pipeline.dense_export``); the FDC3D tests train a tiny 3-D ResNet on the
moving-digit clips.
"""

import copy
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from compact_jax import compress, pytree, temporal
from compact_jax import fdc3d as fdc3d_lib
from compact_jax.conv import conv
from train import config as config_lib
from train import pipelines
from train.errors import UserError
from train.pipelines import _stages, fdc3d, fdc3d_ablation
from train.pipelines import basis as basis_pipeline
from train.pipelines.policy import policy_from_config, resolve_plan


# A persistent XLA cache for this module: runs repeating a program skip its compilation.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("compilation_cache")]


# A ResNet-8 (stages 16-32-64 of one block): the runlocal nets have one stage only.
RESNET8 = ["model.kwargs.stage_sizes=(1, 1, 1)", "model.kwargs.widths=(16, 32, 64)"]


def _load(name, overrides=(), **pipeline):
    config = config_lib.load(name, list(overrides) + (RESNET8 if "cifar_" in name else []))
    for key, value in pipeline.items():
        config.pipeline[key] = value
    return config


@pytest.fixture(scope="module")
def dense_export(tmp_path_factory):
    """A tiny dense ResNet trained 40 steps on 32x32 digits: its export directory."""
    workdir = tmp_path_factory.mktemp("dense")
    config = _load("cifar_approx:resnet20_cos,digits,runlocal", ["data.batch_size=32"], dense_steps=40)
    config.pipeline.dense_optimizer.lr = 0.1
    _, _, metrics = _stages.dense_stage(config, str(workdir), _stages.load_dataset(config))
    assert metrics["accuracy"] > 0.3  # learned something (10 classes)
    return str(workdir / "dense" / "export")


# --- policies from configs -------------------------------------------------------------------------


def _compress(**fields):
    block = {"preset": "approx-resnet32", "method": "", "values": "", "option": "harmonics", "kwargs": {}}
    return ml_collections.ConfigDict({**block, **fields})


def test_policy_swaps_the_method_and_sets_values_and_options_per_rule():
    policy = policy_from_config(_compress(method="chebyshev", values="3,3,2,2", kwargs={"points": "lobatto"}))
    assert [r.method for r in policy.rules] == ["chebyshev"] * 4
    assert [r.options["harmonics"] for r in policy.rules] == [3, 3, 2, 2]
    assert all(r.options["points"] == "lobatto" for r in policy.rules)
    assert [r.path for r in policy.rules] == ["stem_conv", "stage1/*", "stage2/*", "stage3/*"]
    runs = policy_from_config(_compress(preset="approx-convnext", values="7x3,7x3,6x9,5x3"))
    assert [r.options["harmonics"] for r in runs.rules] == [7] * 6 + [6] * 9 + [5] * 3


def test_policy_mistakes_are_one_line_user_errors():
    with pytest.raises(UserError, match=r"unknown compression preset 'aprox-resnet32'; valid presets: dense, "):
        policy_from_config(_compress(preset="aprox-resnet32"))
    with pytest.raises(UserError, match=r"values has 3 values but preset 'approx-resnet32' has 4 compressed rules"):
        policy_from_config(_compress(values="3,3,3"))
    with pytest.raises(UserError, match=r"unknown options \['grid'\]"):
        policy_from_config(_compress(kwargs={"grid": (2, 2, 2)}))


# --- ApproxConv: regression then fine-tuning --------------------------------------------------------


def test_approx_lossless_harmonics_keep_the_dense_accuracy_and_zero_steps_keep_the_fit(dense_export):
    """N = K harmonics reproduce every kernel exactly, so "Pre" equals the dense accuracy; with no
    fine-tuning steps "Post" is the fitted network again (the trainer starts from the given parameters)."""
    config = _load("cifar_approx:resnet20_cos,digits,runlocal", ["model.compress.values='3,3,3,3'", "train.steps=0"],
                   dense_export=dense_export)
    result = pipelines.run(config, None)
    assert [s[0] for s in result.stages] == ["dense", "fitted (Pre)", "fine-tuned (Post)"]
    dense, pre, post = (result.value(s[0]) for s in result.stages)
    assert abs(pre - dense) <= 1 / 359 and post == pre
    assert result.stages[1][1] == result.stages[0][1]  # N = K: no fewer weights


def test_approx_fit_then_quantised_fine_tuning_reports_pre_and_post(dense_export, tmp_path):
    config = _load("cifar_approx:resnet32_cheb,digits,runlocal,q8", ["train.steps=8", "data.batch_size=32"],
                   dense_export=dense_export, fit="gradient")
    result = pipelines.run(config, str(tmp_path))
    names = [s[0] for s in result.stages]
    assert names == ["dense", "fitted (Pre)", "fitted, mantissa 8-bit", "fine-tuned, mantissa 8-bit (Post)"]
    dense, pre, pre_q, post = (result.value(n) for n in names)
    # Measured over seeds 0-2: dense 0.39-0.53, Pre 0.18-0.32 (stage 3 keeps 2 of 3 harmonics), Post 0.34-0.71
    # (at least 0.14 above Pre). 10 classes: chance is 0.1.
    assert post > 0.2 and post > pre  # the 8 fine-tuning steps learn
    assert abs(pre_q - pre) <= 0.05  # 8 significant bits barely change the network
    assert result.stages[1][1] < result.stages[0][1]  # harmonics 3,3,3,2: fewer weights in stage 3
    assert "gradient fit of 7 series layers" in result.notes[0]
    assert int(result.state["step"]) == 8


# --- Learning Filter Basis: the gamma pull towards the pretrained network -------------------------


def _reference_basis_kernel(b, coef, s, m, n):
    """``W[:, :, g p:(g+1) p, i] = sum_j A[i, g, j] B_j`` with ``coef[0, 0, g m + j, i] = A[i, g, j]``."""
    kh, kw, p, _ = b.shape
    w = np.zeros((kh, kw, s * p, n))
    for g in range(s):
        for i in range(n):
            w[:, :, g * p:(g + 1) * p, i] = sum(coef[0, 0, g * m + j, i] * b[..., j] for j in range(m))
    return w


def test_basis_gamma_pulls_the_filters_towards_the_pretrained_ones(dense_export, tmp_path):
    runs = {}
    for gamma in (0.0, 0.02):
        config = _load("cifar_basis:resnet56,pretrained,digits,runlocal", ["train.steps=15", "data.batch_size=32"],
                       dense_export=dense_export, init="random", gamma=gamma)
        runs[gamma] = pipelines.run(config, str(tmp_path / f"gamma{gamma}"))
    before, pulled = runs[0.02].values["distance_before"], runs[0.02].values["distance_after"]
    assert runs[0.0].values["distance_before"] == before  # the same random start
    assert pulled < 0.8 * before  # from a random basis towards W
    assert pulled < runs[0.0].values["distance_after"]
    assert [s[0] for s in runs[0.02].stages] == ["dense", "trained"]


def test_basis_penalty_and_distance_match_a_plain_reconstruction(dense_export):
    """Eq. (18)'s penalty and the reported distance against a loop over splits and filters (shared bases)."""
    from compact_jax import compress
    from train import checkpoint

    config = _load("cifar_basis:resnet56,pretrained,digits,runlocal", dense_export=dense_export)
    dense_params = checkpoint.load_export(dense_export)["params"]
    plan = resolve_plan(config.model.compress, _stages.dense_model(config, _stages.load_dataset(config)),
                                       (1, 32, 32, 3))
    key = jax.random.key(1)
    params = jax.jit(lambda x: compress.build(plan).init(key, x, train=False))(jnp.zeros((1, 32, 32, 3)))["params"]
    residual = total = 0.0
    entries = basis_pipeline.regularized_layers(plan)
    assert [e.path for e in plan.layers if e.method == "basis"] == [e.path for e in entries]
    for entry in entries:
        assert entry.share is not None  # group-wise shared bases (Table 8)
        b = np.asarray(params[plan.shared_basis(entry.share).module_name]["basis"], np.float64)
        coef = np.asarray(pytree.get_node(params, entry.path)["coef"], np.float64)
        approx = _reference_basis_kernel(b[:, :, :entry.spec.split_size], coef, entry.spec.splits,
                                         entry.spec.num_basis, entry.spec.features)
        kernel = np.asarray(pytree.get_node(dense_params, entry.path)["kernel"], np.float64)
        residual += np.sum((kernel - approx) ** 2)
        total += np.sum(kernel**2)
    assert len(entries) == 6  # the two 3x3 convs of each block; the RGB stem stays dense
    penalty = basis_pipeline.basis_penalty(plan, dense_params, 2.0)(params)
    assert float(penalty) == pytest.approx(2.0 * residual, rel=1e-4)
    assert basis_pipeline.basis_distance(plan, params, dense_params) == pytest.approx(np.sqrt(residual / total), rel=1e-5)


# --- FDC3D: Algorithm 1 ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips_dense(tmp_path_factory):
    """A tiny 3-D ResNet trained 30 steps on the moving-digit clips: ``(config, model, variables, dataset)``."""
    config = _load("ucf101_fdc3d:2x,runlocal", ["data.batch_size=16"], dense_steps=30)
    config.pipeline.dense_optimizer.lr = 0.05
    dataset = _stages.load_dataset(config)
    workdir = tmp_path_factory.mktemp("clips")
    model, variables, _ = _stages.dense_stage(config, str(workdir), dataset)
    return config, model, variables, dataset, str(workdir / "dense" / "export")


def test_captured_layer_outputs_are_the_convolution_of_its_inputs(clips_dense):
    config, model, variables, dataset, _ = clips_dense
    batch = np.asarray(dataset.test.arrays["inputs"][:4])
    records = fdc3d_lib.capture_layers(model, variables, [batch], ["stem_conv", "stage1/block0/conv2"])
    x, y = records["stem_conv"]
    assert x.shape == (1, *batch.shape)
    np.testing.assert_allclose(x[0], batch)
    kernel = variables["params"]["stem_conv"]["kernel"]
    want = conv(jnp.asarray(x[0]), kernel, strides=(1, 2, 2), padding=((1, 1),) * 3)
    np.testing.assert_allclose(y[0], want, rtol=1e-4, atol=1e-4)
    x2, y2 = records["stage1/block0/conv2"]
    kernel2 = variables["params"]["stage1"]["block0"]["conv2"]["kernel"]
    np.testing.assert_allclose(y2[0], conv(jnp.asarray(x2[0]), kernel2, padding=((1, 1),) * 3), rtol=1e-4, atol=1e-4)


def test_fdc3d_pipeline_prunes_every_layer_to_p_c_p_t_and_fine_tunes(clips_dense, tmp_path):
    config, *_, export = clips_dense
    config = _load("ucf101_fdc3d:2x,runlocal", ["train.steps=5", "data.batch_size=16"], dense_export=export)
    result = pipelines.run(config, str(tmp_path))
    assert [s[0] for s in result.stages] == ["dense", "pruned (before fine-tuning)", "fine-tuned"]
    assert result.stages[1][1] < result.stages[0][1] and int(result.state["step"]) == 5
    plan = result.values["plan"]
    # Hand-computed kept sizes: the 3x3x3 convs (8 channels, t = 3) at (p_c, p_t) = (1/4, 1/3) drop
    # floor(8/4) = 2 channels and floor(3/3) = 1 row; the RGB stem (3x3x3 in this tiny net) prunes time
    # only, to the same c't'/(ct) = 1/2: p_t = 1/2 drops floor(3/2) = 1 of its 3 rows.
    kept = {e.path: (e.spec.num_channels, e.spec.num_rows) for e in plan.layers if e.method == "fdc3d"}
    assert kept == {"stem_conv": (3, 2), "stage1/block0/conv1": (6, 2), "stage1/block0/conv2": (6, 2)}
    params = jax.device_get(result.state["params"])
    assert params["stage1"]["block0"]["conv1"]["coeffs"].shape == (2, 3, 3, 6, 8)
    assert params["stem_conv"]["coeffs"].shape == (2, 3, 3, 3, 8)
    assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(params))


def test_beta_stays_at_one_without_the_l1_penalty_and_the_identity_keeps_the_taps(clips_dense):
    """With gamma = 0 the dense layer is the exact optimum of Eq. (8) (beta = 1); S = I keeps G = F."""
    _, model, variables, dataset, _ = clips_dense
    batch = np.asarray(dataset.test.arrays["inputs"][:8])
    records = fdc3d_lib.capture_layers(model, variables, [batch], ["stage1/block0/conv1"])
    kernel = variables["params"]["stage1"]["block0"]["conv1"]["kernel"]
    spec = temporal.FrequencySpec(features=8, in_features=8, kernel_size=(3, 3, 3), transform="none")
    layer = dict(strides=(1, 1, 1), padding=((1, 1),) * 3, input_dilation=(1, 1, 1), kernel_dilation=(1, 1, 1))
    params, history = fdc3d_lib.fit_layer(kernel, None, *records["stage1/block0/conv1"], spec, conv_kwargs=layer,
                                          transform_steps=1, transform_learning_rate=0.05, steps=20, gamma=0.0,
                                          learning_rate=0.01)
    np.testing.assert_allclose(params["beta"], np.ones(8), atol=0.02)
    np.testing.assert_allclose(params["coeffs"], kernel, rtol=1e-6, atol=1e-7)
    assert float(history[0]) < 1e-6
    shrunk, _ = fdc3d_lib.fit_layer(kernel, None, *records["stage1/block0/conv1"], spec, conv_kwargs=layer,
                                    transform_steps=1, transform_learning_rate=0.05, steps=20, gamma=0.5,
                                    learning_rate=0.01)
    assert np.all(np.asarray(shrunk["beta"]) < 1.0)  # the l1 penalty shrinks every channel scale


def _fit_clips(clips_dense, transform, **fdc3d_cfg):
    config, model, variables, dataset, _ = clips_dense
    config = copy.deepcopy(config)
    config.model.compress.kwargs.transform = transform
    for key, value in fdc3d_cfg.items():
        config.pipeline.fdc3d[key] = value
    plan = resolve_plan(config.model.compress, model, _stages.input_shape(dataset))
    return plan, fdc3d.fit_network(config, plan, model, variables, dataset)


@pytest.mark.parametrize("transform", ["learned_householder", "dct", "none"])
def test_fitted_layers_left_unpruned_rebuild_the_dense_network(clips_dense, transform):
    """beta = 1 (no Adam steps) and nothing pruned: the frequency-domain net is the dense net, any transform."""
    _, model, variables, dataset, _ = clips_dense
    plan, fitted = _fit_clips(clips_dense, transform, steps=0)
    assert set(fitted) == {"stem_conv", "stage1/block0/conv1", "stage1/block0/conv2"}
    whole = {path: dataclasses.replace(layer, prune=(0.0, 0.0)) for path, layer in fitted.items()}
    plan, params = fdc3d.prune_network(plan, variables, whole)
    x = np.asarray(dataset.test.arrays["inputs"][:16])
    want = model.apply(variables, x, train=False)
    got = compress.build(plan).apply({**variables, "params": params}, x, train=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_prune_network_only_prunes_the_named_layer(clips_dense):
    _, _, variables, _, _ = clips_dense
    plan, fitted = _fit_clips(clips_dense, "dct")
    assert {path: layer.prune for path, layer in fitted.items()} == {
        "stem_conv": (0.0, 0.5), "stage1/block0/conv1": (0.25, 1 / 3), "stage1/block0/conv2": (0.25, 1 / 3)}
    one, _ = fdc3d.prune_network(plan, variables, fitted, only="stage1/block0/conv1")
    kept = {e.path: (e.spec.num_channels, e.spec.num_rows) for e in one.layers if e.method == "fdc3d"}
    assert kept == {"stem_conv": (3, 3), "stage1/block0/conv1": (6, 2), "stage1/block0/conv2": (8, 3)}
    with pytest.raises(ValueError, match="'conv9' is not a fitted FDC3D layer"):
        fdc3d.prune_network(plan, variables, fitted, only="conv9")


def test_ablation_orderings_count_cases_and_leave_out_collapsed_ones():
    result = fdc3d_ablation.AblationResult([0, 1, 2])
    result.dense, result.majority = [1.0, 1.0, 1.0], 0.25
    result.network = {"learned": [0.9, 0.25, 0.7], "DCT": [0.8, 0.25, 0.7], "min-l2": [0.85, 0.2, 0.3]}
    # seed 1: every transform at (or under) the majority-class rate -> left out
    assert result.orderings("network") == {"learned >= DCT": (2, 1, 2), "DCT >= min-l2": (1, 1, 2),
                                           "learned >= min-l2": (2, 2, 2)}


def test_ablation_script_measures_both_views_on_every_transform(clips_dense, capsys):
    export = clips_dense[-1]
    overrides = ["train.progress=False", "data.batch_size=16", f"pipeline.dense_export={export}"]
    result = fdc3d_ablation.ablation("ucf101_fdc3d:2x,runlocal", [0], overrides=overrides)
    assert list(result.network) == list(fdc3d_ablation.TRANSFORMS)
    assert all(len(accs) == 1 and 0.0 <= accs[0] <= 1.0 for accs in result.network.values())
    assert all(set(by_path) == {"stem_conv", "stage1/block0/conv1", "stage1/block0/conv2"}
               for by_path in result.layers.values())
    assert 0.0 < result.majority < 1.0 and result.dense[0] > result.majority
    fdc3d_ablation.report("clips", result)
    out = capsys.readouterr().out
    assert "every layer pruned" in out and "one layer pruned" in out and out.count("ordering held") == 2


def test_ablation_script_mistakes_exit_2_with_one_line(capsys):
    assert fdc3d_ablation.main(["--configs", "digits_dense", "--seeds", "0"]) == 2
    assert "needs an fdc3d config" in capsys.readouterr().err
    assert fdc3d_ablation.main(["--seeds", "0,x"]) == 2
    assert "--seeds must be comma-separated integers" in capsys.readouterr().err


def test_ablation_dense_runs_are_shared_exactly_when_the_dense_network_is_the_same():
    name = lambda config, *o: fdc3d_ablation._dense_run_name(config_lib.load(config, list(o)))  # noqa: E731
    assert name("ucf101_fdc3d:2x,digits") == name("ucf101_fdc3d:4x_dct,digits")
    assert name("ucf101_fdc3d:2x,digits") != name("ucf101_fdc3d:2x,digits", "seed=1")
    assert name("ucf101_fdc3d:2x,digits") != name("ucf101_fdc3d:2x,digits", "pipeline.dense_steps=10")
    assert name("ucf101_fdc3d:2x,digits") != name("ucf101_fdc3d:2x,runlocal")
