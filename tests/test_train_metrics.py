"""train.metrics against NumPy and scikit-image references."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from train import metrics


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
