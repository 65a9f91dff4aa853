"""train.trainer in-process: learning, smoke runs of the digits configs, NaN handling, other tasks."""

import os

import jax
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from compact_jax import registry
from train import checkpoint, data, models, trainer
from train import config as config_lib
from train.errors import NonFiniteLossError
from train.writers import read_jsonl

# Tiny settings shared by the tests: 8x8 digits, no progress bars or TensorBoard.
TINY = ["data.kwargs.image_size=8", "train.progress=False", "train.tensorboard=False"]
# Shallower ResNets compile faster: one stage (stem, one block, classifier) for
# tests of the loop, two stages (a strided compact conv and shortcut) for the configs.
ONE_STAGE = ["model.kwargs.stage_sizes=(1,)", "model.kwargs.widths=(16,)"]
TWO_STAGES = ["model.kwargs.stage_sizes=(1, 1)", "model.kwargs.widths=(16, 32)"]


# A persistent XLA cache for this module: runs repeating a program skip its compilation.
pytestmark = pytest.mark.usefixtures("compilation_cache")


def test_loss_decreases_on_embedded_digits(tmp_path):
    config = config_lib.load("digits_dense:runlocal", TINY + ONE_STAGE + [
        "train.steps=60", "data.batch_size=32", "optimizer.lr=0.2", "optimizer.warmup_steps=0", "train.checkpoint_every=0",
        "train.tensorboard=True"])
    result = trainer.train(config, str(tmp_path))
    losses = [r["loss"] for r in read_jsonl(tmp_path / "metrics.jsonl") if r.get("kind") == "train"]
    assert len(losses) == 60
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert result.metrics["accuracy"] > 0.4  # 10 classes: chance is 0.1
    assert result.steps_run == 60 and result.resumed_from is None
    evals = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if r.get("kind") == "eval"]
    assert evals[-1]["step"] == 60 and evals[-1]["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tensorboard"))


# Explicit: a method whose layer went missing fails here instead of dropping its case.
DIGITS_METHODS = ("dense", "filtermap", "basis", "cos", "cheb")


def test_every_digits_method_is_available_and_smoke_run():
    assert set(DIGITS_METHODS) <= set(models.available_methods())
    canonical = {registry.get_method(name).name for name in models.available_methods()}
    covered = {registry.get_method(name).name for name in DIGITS_METHODS}
    assert canonical - covered == {"fdc3d"}  # 3-D only: no digits config


@pytest.mark.parametrize("method", DIGITS_METHODS)
def test_digits_config_smoke_one_step_then_resume_to_a_few(method, tmp_path):
    """One step, then the same command with more steps resumes from its final checkpoint.

    A constant learning rate keeps the two runs' programs identical (the
    second one is served by the compilation cache).
    """
    name = f"digits_{method}:runlocal"
    constant = TINY + TWO_STAGES + ["optimizer.schedule=constant", "optimizer.warmup_steps=0"]
    one = trainer.train(config_lib.load(name, constant + ["train.steps=1"]), str(tmp_path))
    assert one.steps_run == 1 and int(one.state["step"]) == 1
    few = trainer.train(config_lib.load(name, constant + ["train.steps=4"]), str(tmp_path))
    assert few.resumed_from == 1 and few.steps_run == 3 and int(few.state["step"]) == 4
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(few.state["params"]))
    exported = checkpoint.load_export(os.path.join(tmp_path, "export"))
    jax.tree.map(np.testing.assert_array_equal, exported["params"], jax.device_get(few.state["params"]))
    assert os.path.isdir(tmp_path / "tensorboard") is False  # disabled by TINY
    # The reported accuracy is the argmax accuracy over the 359 test digits (9 batches of 40, one padded).
    config = config_lib.load(name, constant)
    test = data.get_dataset(config.data.name, **config.data.kwargs).test.arrays
    compact = models.build_model(config.model, num_classes=10)
    state = jax.device_get(few.state["model_state"])
    want = np.asarray(compact.apply({"params": jax.device_get(few.state["params"]), **state}, test["inputs"], train=False))
    assert len(test["targets"]) == 359 and config.data.eval_batch_size == 40
    assert few.metrics["accuracy"] == pytest.approx(np.mean(np.argmax(want, axis=-1) == test["targets"]), abs=1e-6)
    events = read_jsonl(tmp_path / "metrics.jsonl")
    if method == "dense":
        assert not (tmp_path / "export_dense").exists()
        assert any(e.get("event") == "export_dense_skipped" for e in events)
        return
    # The folded dense export loads into the dense network and computes what the compact one does.
    folded = checkpoint.load_export(os.path.join(tmp_path, "export_dense"))
    dense = models.build_model(config_lib.load("digits_dense:runlocal", constant).model, num_classes=10)
    got = dense.apply({"params": folded["params"], **folded["model_state"]}, test["inputs"][:4], train=False)
    np.testing.assert_allclose(got, want[:4], rtol=1e-4, atol=1e-4)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = config_lib.load("digits_dense:runlocal", TINY + ONE_STAGE + ["train.checkpoint_every=2", "debug_nan_at_step=5"])
    with pytest.raises(NonFiniteLossError, match=r"at step 5; last good checkpoint: step 4 in .*checkpoints$"):
        trainer.train(config, str(tmp_path))
    state = checkpoint.load_state(str(tmp_path / "checkpoints"))
    assert int(state["step"]) == 4
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(state))
    assert not (tmp_path / "export").exists()


def test_huge_learning_rate_diverges_with_the_same_error(tmp_path):
    config = config_lib.load("digits_dense:runlocal", TINY + ONE_STAGE + [
        "optimizer.lr=1e30", "optimizer.warmup_steps=0", "train.checkpoint_every=0"])
    with pytest.raises(NonFiniteLossError, match=r"at step \d+; no checkpoints"):
        trainer.train(config, None)


def test_super_resolution_task_trains_and_reports_psnr_and_ssim():
    sr = config_lib.load("digits_dense:runlocal", TINY[1:] + [
        "data.name=photos_sr", "data.kwargs={}", "data.kwargs.patch_size=8", "data.kwargs.test_tile=16",
        "model.name=edsr", "model.kwargs={}", "model.kwargs.scale=2", "model.kwargs.num_blocks=1",
        "model.kwargs.features=8", "train.steps=2", "data.batch_size=4", "data.eval_batch_size=16",
        "optimizer.name=adam", "optimizer.lr=1e-3", "train.checkpoint_every=0",
    ])
    result = trainer.train(sr, None)
    assert {"psnr", "ssim", "loss"} <= set(result.metrics) and 5.0 < result.metrics["psnr"] < 60.0
    # Against scikit-image on the trained model's clipped outputs for every test tile (the last batch padded).
    test, outputs = _test_outputs(sr, result)
    assert len(outputs) % sr.data.eval_batch_size != 0
    images = np.clip(outputs, 0.0, 1.0).astype(np.float64)
    targets = test["targets"].astype(np.float64)
    psnr = [peak_signal_noise_ratio(t, o, data_range=1.0) for o, t in zip(images, targets)]
    ssim = [structural_similarity(t, o, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False) for o, t in zip(images, targets)]
    assert result.metrics["psnr"] == pytest.approx(np.mean(psnr), rel=1e-4)
    assert result.metrics["ssim"] == pytest.approx(np.mean(ssim), rel=1e-3, abs=1e-4)


def test_segmentation_task_trains_and_reports_dice():
    seg = config_lib.load("digits_dense:runlocal", TINY[1:] + [
        "data.name=volumes", "data.kwargs={}", "data.kwargs.size=8", "data.kwargs.num_train=8", "data.kwargs.num_test=3",
        "model.name=resunet3d", "model.kwargs={}", "model.kwargs.widths=(4,)", "train.steps=2", "data.batch_size=4",
        "data.eval_batch_size=2", "train.checkpoint_every=0",
    ])
    result = trainer.train(seg, None)
    # Against a NumPy Dice of the trained model's predictions on the 3 test volumes (2 batches of 2, one padded).
    test, logits = _test_outputs(seg, result)
    predicted, labels = np.argmax(logits, axis=-1), test["targets"]
    dice = []
    for k in range(3):
        p, t = predicted == k, labels == k
        dice.append(1.0 if p.sum() + t.sum() == 0 else 2.0 * np.sum(p & t) / (p.sum() + t.sum()))
    np.testing.assert_allclose([result.metrics[f"dice_{k}"] for k in range(3)], dice, rtol=1e-5, atol=1e-7)
    assert result.metrics["dice"] == pytest.approx(np.mean(dice[1:]), rel=1e-5)  # the background is left out


def _test_outputs(config, result):
    """The test set's arrays and the trained model's outputs on them (one jitted forward pass)."""
    dataset = data.get_dataset(config.data.name, **config.data.kwargs)
    test = dataset.test.arrays
    model = models.build_model(config.model, num_classes=dataset.num_classes, input_shape=(1, *test["inputs"].shape[1:]))
    variables = {"params": jax.device_get(result.state["params"]), **jax.device_get(result.state["model_state"])}
    outputs = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, test["inputs"])
    return test, np.asarray(outputs)
