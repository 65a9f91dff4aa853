"""train.metrics and the tasks' evaluation sums against NumPy and scikit-image references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from train import metrics, tasks


def _image_pair(rng, shape=(2, 24, 20, 3)):
    ref = rng.uniform(0, 1, shape).astype(np.float32)
    noisy = np.clip(ref + rng.normal(0, 0.1, shape), 0, 1).astype(np.float32)
    return noisy, ref


def test_top1_correct_counts_argmax_hits():
    logits = np.array([[0.1, 2.0, 0.3], [5.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(metrics.top1_correct(logits, np.array([1, 2, 2])), [1.0, 0.0, 1.0])


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_psnr_matches_skimage(data_range):
    noisy, ref = _image_pair(np.random.default_rng(0))
    noisy, ref = noisy * data_range, ref * data_range
    got = metrics.psnr(noisy, ref, data_range=data_range)
    want = [peak_signal_noise_ratio(r, n, data_range=data_range) for n, r in zip(noisy, ref)]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_ssim_matches_skimage_gaussian_window():
    noisy, ref = _image_pair(np.random.default_rng(1))
    got = metrics.ssim(noisy, ref, data_range=1.0)
    want = [
        structural_similarity(
            r, n, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False,
        )
        for n, r in zip(noisy, ref)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-4)
    np.testing.assert_allclose(metrics.ssim(ref, ref), [1.0, 1.0], rtol=1e-6)


def test_ssim_rejects_small_or_mismatched_images():
    with pytest.raises(ValueError, match="at least 11 pixels"):
        metrics.ssim(np.zeros((1, 8, 16, 1)), np.zeros((1, 8, 16, 1)))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        metrics.ssim(np.zeros((1, 16, 16, 1)), np.zeros((1, 16, 15, 1)))


def test_dice_matches_numpy_reference():
    rng = np.random.default_rng(2)
    pred = rng.integers(0, 3, (4, 5, 6, 7))
    true = rng.integers(0, 3, (4, 5, 6, 7))
    weights = np.array([1.0, 1.0, 0.0, 1.0])
    got = metrics.dice_from_counts(*metrics.dice_counts(pred, true, num_classes=4, weights=weights))
    keep = weights > 0
    want = []
    for k in range(4):
        p, t = pred[keep] == k, true[keep] == k
        denom = p.sum() + t.sum()
        want.append(1.0 if denom == 0 else 2 * np.logical_and(p, t).sum() / denom)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[3] == 1.0  # class 3 never occurs: perfect by convention


# --- the tasks' evaluation sums over padded batches, against per-example references ----------------


def _summarize(task, batches):
    """What ``trainer.evaluate`` does: ``eval_sums`` per batch, added up, then ``summarize``."""
    total, eval_sums = None, jax.jit(task.eval_sums)
    for outputs, batch in batches:
        sums = {k: np.asarray(v, np.float64) for k, v in eval_sums(jnp.asarray(outputs), batch).items()}
        total = sums if total is None else {k: total[k] + sums[k] for k in total}
    return task.summarize(total)


def _padded(arrays, real: int):
    """``arrays`` as an eval batch whose rows from ``real`` on are padding (weight 0)."""
    size = len(next(iter(arrays.values())))
    return {**arrays, "weights": (np.arange(size) < real).astype(np.float32)}


def test_classification_accuracy_and_loss_leave_out_padding():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 8, 5)).astype(np.float32)
    labels = rng.integers(0, 5, (2, 8))
    labels[1, 5:] = np.argmax(logits[1, 5:], axis=-1)  # the padding rows would all count as hits
    batches = [(logits[0], _padded({"targets": labels[0]}, 8)), (logits[1], _padded({"targets": labels[1]}, 5))]
    got = _summarize(tasks.get_task("classification", num_classes=5), batches)
    real_logits = np.concatenate([logits[0], logits[1, :5]]).astype(np.float64)
    real_labels = np.concatenate([labels[0], labels[1, :5]])
    hits = [int(np.argmax(row) == label) for row, label in zip(real_logits, real_labels)]
    log_softmax = real_logits - np.log(np.exp(real_logits).sum(axis=-1, keepdims=True))
    assert got["accuracy"] == pytest.approx(sum(hits) / 13, rel=1e-6)
    assert got["loss"] == pytest.approx(-np.mean(log_softmax[np.arange(13), real_labels]), rel=1e-5)


def test_segmentation_mean_dice_is_over_the_foreground_classes_only():
    """Mostly background, well segmented (its Dice near 1), foreground poorly: the mean without class 0."""
    rng = np.random.default_rng(4)
    labels = np.zeros((2, 3, 6, 6, 6), np.int64)
    labels[:, :, 1:3, 1:4, 1:4] = 1
    labels[:, :, 4:6, 2:5, 3:6] = 2
    predicted = np.where(rng.uniform(size=labels.shape) < 0.3, rng.integers(0, 3, labels.shape), labels)
    predicted[1, 2] = 1  # a padding volume predicted as all class 1: counted, it would change Dice 1
    logits = 5.0 * np.eye(3, dtype=np.float32)[predicted]
    batches = [(logits[i], _padded({"targets": labels[i]}, 3 if i == 0 else 2)) for i in range(2)]
    got = _summarize(tasks.get_task("segmentation", num_classes=3), batches)
    real_p = np.concatenate([predicted[0], predicted[1, :2]])
    real_t = np.concatenate([labels[0], labels[1, :2]])
    per_class = []
    for k in range(3):
        p, t = real_p == k, real_t == k
        per_class.append(2.0 * np.sum(p & t) / (p.sum() + t.sum()))
    np.testing.assert_allclose([got[f"dice_{k}"] for k in range(3)], per_class, rtol=1e-6)
    assert got["dice"] == pytest.approx(np.mean(per_class[1:]), rel=1e-6)
    assert abs(np.mean(per_class) - np.mean(per_class[1:])) > 0.05  # counting the background would show


def test_super_resolution_psnr_and_ssim_clip_and_leave_out_padding():
    rng = np.random.default_rng(5)
    targets = rng.uniform(0, 1, (2, 3, 16, 16, 3)).astype(np.float32)
    outputs = (targets + rng.normal(0, 0.15, targets.shape)).astype(np.float32)  # some outside [0, 1]: clipped
    outputs[1, 2] = targets[1, 2]  # a perfect padding image (infinite PSNR) if it were counted
    batches = [(outputs[i], _padded({"targets": targets[i]}, 3 if i == 0 else 2)) for i in range(2)]
    got = _summarize(tasks.get_task("super_resolution"), batches)
    real_out = np.concatenate([outputs[0], outputs[1, :2]])
    real_tgt = np.concatenate([targets[0], targets[1, :2]])
    clipped = np.clip(real_out, 0, 1)
    want_psnr = np.mean([peak_signal_noise_ratio(t, o, data_range=1.0) for o, t in zip(clipped, real_tgt)])
    want_ssim = np.mean([
        structural_similarity(t, o, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for o, t in zip(clipped, real_tgt)
    ])
    assert got["psnr"] == pytest.approx(want_psnr, rel=1e-5)
    assert got["ssim"] == pytest.approx(want_ssim, rel=1e-4)
    assert got["loss"] == pytest.approx(np.mean(np.abs(real_out - real_tgt)), rel=1e-5)  # L1 before clipping
