"""compact_jax.experiments: approximation sweeps against NumPy references built from the papers' formulas."""

import math

import numpy as np
import pytest
import scipy.fft

from compact_jax import compress, experiments, models, temporal
from compact_jax.conv import conv


def _kernel(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _relative(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(np.asarray(b, np.float64))


# --- small helpers -----------------------------------------------------------------------------


def test_relative_error():
    target = np.array([3.0, 4.0])
    assert experiments.relative_error(np.array([3.0, 0.0]), target) == pytest.approx(4.0 / 5.0)
    with pytest.raises(ValueError, match=r"approx shape \(3,\) differs from target shape \(2,\)"):
        experiments.relative_error(np.zeros(3), target)
    with pytest.raises(ValueError, match="target is all zeros"):
        experiments.relative_error(np.zeros(2), np.zeros(2))


def test_conv_kernels_collects_conv_kernels_by_path():
    params = {
        "stem_conv": {"kernel": np.ones((7, 7, 3, 8))},
        "stage1": {"block0": {"conv1": {"kernel": np.ones((3, 3, 8, 8)), "bias": np.ones(8)},
                              "proj_conv": {"kernel": np.ones((1, 1, 8, 8))}}},
        "clip_conv": {"kernel": np.ones((3, 3, 3, 2, 4))},
        "classifier": {"kernel": np.ones((8, 10)), "bias": np.ones(10)},
        "fm": {"filtermap": np.ones((4, 4, 8))},
    }
    found = experiments.conv_kernels(params)
    assert sorted(found) == ["clip_conv", "stage1/block0/conv1", "stem_conv"]
    assert found["stem_conv"].shape == (7, 7, 3, 8)
    assert "stage1/block0/proj_conv" in experiments.conv_kernels(params, min_size=1)
    with pytest.raises(ValueError, match="min_size"):
        experiments.conv_kernels(params, min_size=0)


def test_filter_stack_and_strongest_filters_follow_a_loop():
    kernel = _kernel((3, 2, 4, 5))
    stack = experiments.filter_stack(kernel)
    assert stack.shape == (20, 3, 2)
    for o in range(5):
        for c in range(4):
            np.testing.assert_array_equal(stack[o * 4 + c], kernel[:, :, c, o])
    norms = [np.sqrt(np.sum(stack[i] ** 2)) for i in range(20)]
    expected = sorted(range(20), key=lambda i: -norms[i])[:3]
    np.testing.assert_array_equal(experiments.strongest_filters(kernel, 3), expected)
    assert len(experiments.strongest_filters(kernel, 99)) == 20
    with pytest.raises(ValueError, match=r"kernel must be a 2-D conv kernel \(kh, kw, C_in, C_out\)"):
        experiments.filter_stack(np.zeros((3, 3, 4)))


def test_select_and_curves():
    records = [dict(family="cos", method="cf", order=3, error=0.1),
               dict(family="cos", method="cf", order=1, error=0.9),
               dict(family="cheb", method="cf", order=2, error=0.5)]
    assert experiments.select(records, family="cos") == records[:2]
    assert experiments.select(records, family="cos", order=1) == [records[1]]
    out = experiments.curves(records, x="order", by=("family", "method"))
    assert list(out) == ["cos cf", "cheb cf"]
    np.testing.assert_array_equal(out["cos cf"][0], [1, 3])  # sorted by x
    np.testing.assert_array_equal(out["cos cf"][1], [0.9, 0.1])
    single = experiments.curves(records, x="order")
    assert list(single) == ["error"] and len(single["error"][0]) == 3
    with pytest.raises(KeyError, match=r"records\[0\] has no key 'speedup'"):
        experiments.curves(records, x="speedup")


# --- ApproxConv series ---------------------------------------------------------------------------


def _cosine_basis(k, n):
    """The paper's cosine basis: ``cos(i p)`` at ``k`` points equispaced on [0.2 pi, 0.8 pi]."""
    points = np.linspace(0.2 * np.pi, 0.8 * np.pi, k)
    return np.cos(np.outer(points, np.arange(n)))


def _chebyshev_basis(k, n):
    """``T_i`` at the Chebyshev-Gauss-Lobatto points, by ``T_i(cos a) = cos(i a)``."""
    angles = np.pi * np.arange(k)[::-1] / (k - 1)
    return np.cos(np.outer(angles, np.arange(n)))


def test_series_sweep_closed_form_is_the_least_squares_fit_and_bounds_the_gradient_fit():
    kernel = _kernel((5, 5, 2, 3))
    records = experiments.series_sweep(kernel, orders=(1, 3, 5), schedule=((0.1, 60), (0.01, 60)))
    assert len(records) == 2 * 3 * 2
    for r in records:
        basis = {"cosine": _cosine_basis, "chebyshev": _chebyshev_basis}[r["family"]](5, r["order"])
        design = np.kron(basis, basis)  # (25, N^2): row h*5 + w, column i*N + j
        targets = kernel.reshape(25, -1).astype(np.float64)
        best = design @ np.linalg.lstsq(design, targets, rcond=None)[0]
        best_error = _relative(best, targets)
        assert r["num_params"] == r["order"] ** 2 * 6
        assert r["param_fraction"] == pytest.approx(r["order"] ** 2 / 25)
        assert r["kernel"].shape == kernel.shape
        assert r["error"] == pytest.approx(_relative(r["kernel"], kernel), rel=1e-6)
        if r["method"] == "closed form":
            assert r["error"] == pytest.approx(best_error, rel=1e-4, abs=1e-5)
        else:
            assert r["error"] >= best_error - 1e-4
    exact = experiments.select(records, order=5, method="closed form")
    assert all(r["error"] < 1e-4 for r in exact)


def test_series_sweep_without_gradient_and_bad_orders():
    kernel = _kernel((3, 3, 1, 2))
    records = experiments.series_sweep(kernel, families=("chebyshev",), gradient=False, keep_kernels=False)
    assert [(r["order"], r["method"]) for r in records] == [(1, "closed form"), (2, "closed form"), (3, "closed form")]
    assert "kernel" not in records[0]
    with pytest.raises(ValueError, match=r"orders must be integers in \[1, 3\] .* got 4"):
        experiments.series_sweep(kernel, orders=(1, 4))


# --- filter basis and FilterMap ----------------------------------------------------------------------


def test_basis_sweep_error_is_the_eckart_young_tail():
    kernel = _kernel((3, 3, 4, 6), seed=2)
    for splits in (1, 2):
        p = 4 // splits
        rows = [kernel[:, :, g * p:(g + 1) * p, o].reshape(-1) for o in range(6) for g in range(splits)]
        singular = np.linalg.svd(np.array(rows, np.float64), compute_uv=False)
        records = experiments.basis_sweep(kernel, [1, 3, len(singular)], splits=splits)
        for r in records:
            m = r["num_basis"]
            tail = np.sqrt(np.sum(singular[m:] ** 2) / np.sum(singular**2))
            assert r["error"] == pytest.approx(tail, rel=1e-4, abs=1e-5)
            assert r["num_params"] == m * 9 * p + m * 6 * splits
    assert records[-1]["error"] < 1e-5


def test_filtermap_grids():
    assert experiments.filtermap_grids(16, 16) == [(1, 1, 16), (2, 2, 4), (4, 4, 1)]
    assert experiments.filtermap_grids(16, 3) == [(4, 4, 1)]  # K3 must divide the 3 input channels
    assert experiments.filtermap_grids(32, 32) == [(1, 1, 32), (2, 2, 8), (4, 4, 2)]  # (4, 4, 2): Table 1
    with pytest.raises(ValueError, match="features"):
        experiments.filtermap_grids(0, 3)


def _filtermap_reference_error(kernel, grid):
    """Least squares from the paper's formula: each kernel entry copies map element
    ``((k1 x + r) % M1, (k2 y + s) % M2, (k3 z + c) % M3)``, so the best map is the mean of its copies."""
    kh, kw, c_in, _ = kernel.shape
    k1s, k2s, k3s = grid
    x, y, z = 2, 2, c_in // k3s
    shape = (k1s * x, k2s * y, k3s * z)
    sums, counts = np.zeros(shape), np.zeros(shape)
    index = {}
    for k3 in range(k3s):
        for k1 in range(k1s):
            for k2 in range(k2s):
                k = (k3 * k1s + k1) * k2s + k2
                for r in range(kh):
                    for s in range(kw):
                        for c in range(c_in):
                            at = ((k1 * x + r) % shape[0], (k2 * y + s) % shape[1], (k3 * z + c) % shape[2])
                            index[r, s, c, k] = at
                            sums[at] += kernel[r, s, c, k]
                            counts[at] += 1
    best = sums / np.maximum(counts, 1)
    approx = np.zeros(kernel.shape)
    for (r, s, c, k), at in index.items():
        approx[r, s, c, k] = best[at]
    return _relative(approx, kernel), math.prod(shape)


def test_filtermap_sweep_matches_the_least_squares_map():
    kernel = _kernel((3, 3, 4, 8), seed=3)
    records = experiments.filtermap_sweep(kernel, grids=[(2, 2, 2), (1, 2, 4)])
    assert [r["grid"] for r in records] == [(2, 2, 2), (1, 2, 4)]
    for r in records:
        error, size = _filtermap_reference_error(kernel, r["grid"])
        assert r["num_params"] == size and r["error"] == pytest.approx(error, rel=1e-5)
        assert r["param_fraction"] == pytest.approx(size / kernel.size)
    default = experiments.filtermap_sweep(kernel)
    assert [r["grid"] for r in default] == experiments.filtermap_grids(8, 4)


# --- policies from a training config -----------------------------------------------------------------


def test_policy_from_conv_config_mirrors_the_train_conv_factory():
    model = models.get_model("resnet20", stage_sizes=(1, 1, 1), num_classes=10)
    policy = experiments.policy_from_conv_config("cos", options={"harmonics": 2}, dense_layers=("stem_conv",))
    plan = compress.resolve(policy, model, (1, 16, 16, 3))
    methods = {entry.path: entry.method for entry in plan.layers}
    assert methods.pop("stem_conv") == "dense"
    assert set(methods.values()) == {"cosine"}
    assert all(entry.spec.harmonics == (2, 2) for entry in plan.layers if entry.method == "cosine")
    resnet18 = models.get_model("resnet18_cifar", num_classes=10)
    plan = compress.resolve(experiments.policy_from_conv_config("filtermap", dense_layers=("stem_conv",)),
                            resnet18, (1, 32, 32, 3))
    assert {e.method for e in plan.layers if e.path.endswith("proj_conv")} == {"dense"}  # 1x1 stay dense
    with pytest.raises(ValueError, match="unknown method 'fm'"):
        experiments.policy_from_conv_config("fm")
    with pytest.raises(TypeError, match="dense_layers must be a sequence of layer paths"):
        experiments.policy_from_conv_config("filtermap", dense_layers="stem_conv")


# --- FDC3D single-layer pruning --------------------------------------------------------------------

STEM = dict(strides=(1, 2, 2), padding=((1, 1),) * 3)


def _layer(seed=4):
    kernel = _kernel((3, 3, 3, 2, 4), seed) / 8.0
    x = _kernel((2, 4, 6, 6, 2), seed + 1)
    return kernel, x


def _masked_reference(kernel, s, kept):
    """``S^T M S K`` along time with the rows ``kept``."""
    mask = np.zeros((s.shape[0], 1, 1, 1, 1))
    mask[list(kept)] = 1.0
    return np.einsum("ft,fhwcn->thwcn", s, mask * np.einsum("ft,thwcn->fhwcn", s, kernel))


def test_prune_sweep_drops_the_weakest_dct_rows():
    kernel, x = _layer()
    spec = experiments.frequency_spec(kernel, transform="dct")
    target = conv(x, kernel, **STEM)
    records = experiments.prune_sweep(temporal.fit(kernel, spec), spec, x, target, conv_kwargs=STEM)
    s = scipy.fft.dct(np.eye(3), norm="ortho", axis=0)
    energy = np.sum(np.einsum("ft,thwcn->fhwcn", s, kernel) ** 2, axis=(1, 2, 3, 4))
    assert [r["kept_rows"] for r in records] == [3, 2, 1]
    for r in records:
        kept = sorted(np.argsort(-energy)[: r["kept_rows"]])
        assert list(r["rows"]) == kept
        reference = conv(x, _masked_reference(kernel, s, kept).astype(np.float32), **STEM)
        assert r["error"] == pytest.approx(_relative(reference, target), rel=1e-4, abs=1e-5)
        assert r["speedup"] == pytest.approx(3 / r["kept_rows"])
        assert r["spec"].num_rows == r["kept_rows"]
    assert records[0]["error"] < 1e-5


def test_prune_sweep_min_l2_drops_the_weakest_taps_and_validates():
    kernel, x = _layer()
    spec = experiments.frequency_spec(kernel, transform="none")
    target = conv(x, kernel, **STEM)
    (record,) = experiments.prune_sweep(temporal.fit(kernel, spec), spec, x, target, kept_rows=[2], conv_kwargs=STEM)
    norms = np.sqrt(np.sum(kernel**2, axis=(1, 2, 3, 4)))
    pruned = kernel.copy()
    pruned[np.argmin(norms)] = 0.0
    assert record["error"] == pytest.approx(_relative(conv(x, pruned, **STEM), target), rel=1e-4)
    params, small = temporal.prune(temporal.fit(kernel, spec), spec, p_c=0.0, p_t=0.5)
    with pytest.raises(ValueError, match="needs an unpruned layer"):
        experiments.prune_sweep(params, small, x, target)
    with pytest.raises(ValueError, match=r"kept_rows entries must lie in \[1, 3\], got 4"):
        experiments.prune_sweep(temporal.fit(kernel, spec), spec, x, target, kept_rows=[4])
    with pytest.raises(ValueError, match="unknown keys"):
        experiments.prune_sweep(temporal.fit(kernel, spec), spec, x, target, conv_kwargs={"stride": 2})


def test_fit_frequency_layer_lowers_its_objective_and_keeps_s_orthogonal():
    kernel, x = _layer()
    params, spec, history = experiments.fit_frequency_layer(kernel, x, lam=0.5, steps=25, learning_rate=0.02,
                                                            conv_kwargs=STEM)
    assert history.shape == (25, 2)
    assert history[0, 1] < 1e-8  # starts exact: the output error term is 0
    assert history[-1, 0] < history[0, 0]
    s = np.asarray(temporal.transform_matrix(params, spec), np.float64)
    np.testing.assert_allclose(s @ s.T, np.eye(3), atol=1e-5)
    exact = experiments.transform_kernel(kernel, params, spec)
    np.testing.assert_allclose(temporal.build_kernel(exact, spec), kernel, atol=1e-5)
    np.testing.assert_allclose(np.asarray(exact["coeffs"]), np.einsum("ft,thwcn->fhwcn", s, kernel), atol=1e-5)
    with pytest.raises(ValueError, match="transform must be a learned one"):
        experiments.fit_frequency_layer(kernel, x, transform="dct")
    with pytest.raises(ValueError, match=r"3-D conv kernel \(t, kh, kw, C_in, C_out\)"):
        experiments.fit_frequency_layer(kernel[0], x)


def test_pruning_comparison_and_frequency_views():
    kernel, x = _layer()
    held_out = _kernel((3, 4, 6, 6, 2), seed=9)
    result = experiments.pruning_comparison(kernel, x, eval_x=held_out, steps=5, conv_kwargs=STEM, kept_rows=(3, 1))
    assert list(result.records) == ["min-l2", "DCT", "learned"]
    assert [r["method"] for r in result.all_records] == ["min-l2"] * 2 + ["DCT"] * 2 + ["learned"] * 2
    assert all(sweep[0]["error"] < 1e-5 for sweep in result.records.values())  # t' = t is exact
    assert result.history.shape == (5, 2)
    target = conv(held_out, kernel, **STEM)
    np.testing.assert_allclose(result.target, target, atol=1e-6)
    dct = experiments.prune_sweep(*result.layers["DCT"], held_out, target, kept_rows=[1], conv_kwargs=STEM)
    assert result.records["DCT"][1]["error"] == pytest.approx(dct[0]["error"])  # measured on the held-out inputs

    params, spec = result.layers["DCT"]
    rows, kept = experiments.frequency_views(kernel, params, spec, channel=1, output=2, num_kept=2)
    s = scipy.fft.dct(np.eye(3), norm="ortho", axis=0)
    np.testing.assert_array_equal(rows["spatial"], kernel[:, :, :, 1, 2])
    np.testing.assert_allclose(rows["frequency"], np.einsum("ft,thw->fhw", s, kernel[:, :, :, 1, 2]), atol=1e-5)
    energy = np.sum(np.einsum("ft,thwcn->fhwcn", s, kernel) ** 2, axis=(1, 2, 3, 4))
    assert kept == tuple(sorted(np.argsort(-energy)[:2]))
    np.testing.assert_allclose(rows["reconstructed"], _masked_reference(kernel, s, kept)[:, :, :, 1, 2], atol=1e-5)
    full, _ = experiments.frequency_views(kernel, params, spec, channel=0, output=0, num_kept=3)
    np.testing.assert_allclose(full["reconstructed"], full["spatial"], atol=1e-5)
    with pytest.raises(ValueError, match=r"output must lie in \[0, 4\), got 4"):
        experiments.frequency_views(kernel, params, spec, channel=0, output=4, num_kept=1)
    with pytest.raises(ValueError, match=r"num_kept must lie in \[1, 3\], got 4"):
        experiments.frequency_views(kernel, params, spec, channel=0, output=0, num_kept=4)
    with pytest.raises(ValueError, match="methods entry"):
        experiments.pruning_comparison(kernel, x, methods=("OT",))


def test_layer_timings_times_every_layer():
    kernel, x = _layer()
    spec = experiments.frequency_spec(kernel, transform="dct")
    layer = temporal.prune(temporal.fit(kernel, spec), spec, p_c=0.0, p_t=0.5)
    timed = experiments.layer_timings(kernel, {"t'=2": layer}, x, conv_kwargs=STEM, repeats=1, min_seconds=0.0)
    assert set(timed) == {"dense (xla)", "dense (frames)", "dense", "t'=2"}
    assert timed["dense"] == min(timed["dense (xla)"], timed["dense (frames)"])
    assert all(np.isfinite(v) and v > 0 for v in timed.values())

