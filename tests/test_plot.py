"""compact_jax.plot: figures are built without pyplot, their artists hold exactly the inputs, and save as PNG."""

import json

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from compact_jax import plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _saves_png(fig, tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == PNG_MAGIC


def _records():
    return [
        {"step": 0, "event": "start", "devices": 1},
        {"step": 1, "kind": "train", "loss": 2.0, "accuracy": 0.1, "lr": 0.0},
        {"step": 2, "kind": "train", "loss": 1.5, "accuracy": 0.3},
        {"step": 3, "kind": "train", "loss": "nan", "accuracy": 0.2},  # the writer stores non-finite as strings
        {"step": 4, "kind": "train", "loss": 1.0, "accuracy": 0.5},
        {"step": 4, "kind": "eval", "loss": 1.2, "accuracy": 0.45},
    ]


def test_read_log_reads_json_lines_and_names_a_bad_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _records()) + "\n\n", encoding="utf-8")
    assert plot.read_log(path) == _records()
    path.write_text('{"step": 1}\n{"step": oops}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        plot.read_log(path)
    path.write_text('{"step": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2 must be a JSON object, got \[1, 2\]"):
        plot.read_log(path)


def test_training_curves_plot_train_lines_and_eval_markers(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _records()), encoding="utf-8")
    fig = plot.training_curves(path, metrics=("loss", "accuracy", "psnr"), title="run")
    assert isinstance(fig, Figure)
    loss_ax, acc_ax, psnr_ax = fig.axes
    train, evaluation = loss_ax.get_lines()
    assert train.get_label() == "train" and evaluation.get_label() == "eval"
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 4])  # the "nan" string is skipped
    np.testing.assert_array_equal(train.get_ydata(), [2.0, 1.5, 1.0])
    np.testing.assert_array_equal(evaluation.get_xdata(), [4])
    np.testing.assert_array_equal(evaluation.get_ydata(), [1.2])
    np.testing.assert_array_equal(acc_ax.get_lines()[0].get_ydata(), [0.1, 0.3, 0.2, 0.5])
    assert loss_ax.get_ylabel() == "loss" and acc_ax.get_xlabel() == "step"
    assert psnr_ax.get_lines() == [] and "no 'psnr' values" in psnr_ax.texts[0].get_text()
    _saves_png(fig, tmp_path, "curves")


def test_training_curves_take_records_and_reject_bad_metrics():
    fig = plot.training_curves(_records(), metrics=("loss",))
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 2
    with pytest.raises(ValueError, match="metrics must be a non-empty sequence"):
        plot.training_curves(_records(), metrics="loss")


def test_error_curves_draw_one_labelled_line_per_curve(tmp_path):
    curves = {"cosine": ([1, 2, 3], [0.9, 0.5, 0.0]), "chebyshev": (np.array([1.0, 3.0]), np.array([0.8, 0.1]))}
    fig = plot.error_curves(curves, xlabel="order", logy=False, logx=True, title="t")
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["cosine", "chebyshev"]
    for line, (x, y) in zip(lines, curves.values()):
        np.testing.assert_array_equal(line.get_xdata(), x)
        np.testing.assert_array_equal(line.get_ydata(), y)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert ax.get_xlabel() == "order" and ax.get_ylabel() == "relative error"
    _saves_png(fig, tmp_path, "errors")


@pytest.mark.parametrize(
    "function, xlabel",
    [(plot.error_vs_order, "order N"), (plot.error_vs_params, "parameters kept"), (plot.error_vs_speedup, "speed-up")],
)
def test_labelled_error_plots(function, xlabel):
    fig = function({"a": ([1, 2], [0.5, 0.25])}, ylabel="output error", logy=True)
    (ax,) = fig.axes
    assert xlabel in ax.get_xlabel() and ax.get_ylabel() == "output error" and ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [0.5, 0.25])


def test_error_curves_reject_bad_input():
    with pytest.raises(ValueError, match="non-empty mapping"):
        plot.error_curves({}, xlabel="x")
    with pytest.raises(ValueError, match=r"curves\['a'\] needs x and y of one equal length, got shapes \(2,\) and \(3,\)"):
        plot.error_curves({"a": ([1, 2], [1, 2, 3])}, xlabel="x")
    with pytest.raises(ValueError, match=r"curves\['a'\] must be an \(x, y\) pair"):
        plot.error_curves({"a": ([1], [1], [1])}, xlabel="x")


def test_filter_grid_shows_originals_beside_approximations(tmp_path):
    rng = np.random.default_rng(0)
    originals = rng.normal(size=(3, 5, 5))
    approx = {"N=4": originals + 0.1 * rng.normal(size=originals.shape), "N=2": 0.5 * originals}
    fig = plot.filter_grid(originals, approx, title="grid")
    assert len(fig.axes) == 3 * 3
    grid = np.array(fig.axes).reshape(3, 3)
    for r in range(3):
        expected = [originals[r], approx["N=4"][r], approx["N=2"][r]]
        limit = np.max(np.abs(originals[r]))
        for c in range(3):
            (image,) = grid[r, c].get_images()
            np.testing.assert_array_equal(image.get_array(), expected[c])
            np.testing.assert_allclose(image.get_clim(), (-limit, limit))
        error = np.sqrt(np.sum((approx["N=2"][r] - originals[r]) ** 2))
        assert f"l2 {error:.3g}" in grid[r, 2].get_title()
    assert grid[0, 1].get_title().startswith("N=4") and grid[0, 0].get_title() == "original"
    _saves_png(fig, tmp_path, "grid")


def test_filter_grid_rejects_mismatched_stacks():
    with pytest.raises(ValueError, match=r"originals must be a stack of 2-D filters \(count, h, w\), got shape \(5, 5\)"):
        plot.filter_grid(np.zeros((5, 5)), {})
    with pytest.raises(ValueError, match=r"approximations\['a'\] must have the shape of the originals \(2, 3, 3\)"):
        plot.filter_grid(np.zeros((2, 3, 3)), {"a": np.zeros((2, 2, 2))})
    with pytest.raises(TypeError, match="approximations must be a mapping"):
        plot.filter_grid(np.zeros((2, 3, 3)), [np.zeros((2, 3, 3))])


def test_frequency_panels_show_every_slice_and_box_the_kept_rows(tmp_path):
    rng = np.random.default_rng(1)
    rows = {"spatial": rng.normal(size=(4, 3, 3)), "frequency": 3 * rng.normal(size=(4, 3, 3))}
    fig = plot.frequency_panels(rows, boxed={"frequency": (0, 2)}, title="fig 3")
    grid = np.array(fig.axes).reshape(2, 4)
    limit = max(np.max(np.abs(v)) for v in rows.values())  # one shared scale by default
    for r, stack in enumerate(rows.values()):
        for i in range(4):
            (image,) = grid[r, i].get_images()
            np.testing.assert_array_equal(image.get_array(), stack[i])
            np.testing.assert_allclose(image.get_clim(), (-limit, limit))
    boxed = [[any(isinstance(p, Rectangle) and p.get_edgecolor()[:3] == (1.0, 0.0, 0.0) for p in ax.patches)
              for ax in row] for row in grid]
    assert boxed == [[False] * 4, [True, False, True, False]]
    assert grid[1, 2].get_title() == "freq 2" and grid[0, 1].get_title() == "tap 1"
    assert grid[0, 0].get_ylabel() == "spatial"
    _saves_png(fig, tmp_path, "panels")


def test_frequency_panels_per_row_scale_and_bad_input():
    rows = {"a": np.ones((2, 2, 2)), "b": 4 * np.ones((2, 2, 2))}
    fig = plot.frequency_panels(rows, shared_scale=False, column_labels={"a": ["x", "y"]})
    grid = np.array(fig.axes).reshape(2, 2)
    assert grid[0, 0].get_images()[0].get_clim() == (-1.0, 1.0)
    assert grid[1, 0].get_images()[0].get_clim() == (-4.0, 4.0)
    assert grid[0, 1].get_title() == "y"
    with pytest.raises(ValueError, match=r"boxed\['a'\] indices must lie in \[0, 2\), got \[2\]"):
        plot.frequency_panels(rows, boxed={"a": [2]})
    with pytest.raises(ValueError, match="boxed names row 'c'"):
        plot.frequency_panels(rows, boxed={"c": [0]})
    with pytest.raises(ValueError, match=r"rows\['b'\] must have the shape of the first row \(2, 2, 2\), got \(3, 2, 2\)"):
        plot.frequency_panels({"a": np.ones((2, 2, 2)), "b": np.ones((3, 2, 2))})


def test_plotting_leaves_pyplot_and_the_backend_alone():
    backend = matplotlib.get_backend()
    plot.error_curves({"a": ([1], [1])}, xlabel="x")
    assert matplotlib.get_backend() == backend
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # nothing registered with pyplot: nothing to close, nothing leaks
