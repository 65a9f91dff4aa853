"""Evaluation metrics as pure ``jax.numpy`` functions (jit / vmap safe).

* :func:`top1_correct` - classification hits.
* :func:`psnr` - peak signal-to-noise ratio, ``10 log10(R^2 / MSE)``.
* :func:`ssim` - structural similarity (Wang et al. 2004) with an 11x11
  Gaussian window of sigma 1.5 (``K1 = 0.01, K2 = 0.03``), averaged over the
  "valid" positions and the channels; equal to
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=R, channel_axis=-1)``.
* :func:`dice_counts` / :func:`dice_from_counts` - per-class Dice
  ``2 |P n T| / (|P| + |T|)`` from integer label maps, in two halves so that
  counts can be summed over batches before dividing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["top1_correct", "psnr", "ssim", "dice_counts", "dice_from_counts"]


def top1_correct(logits, labels):
    """``logits (N, K)``, ``labels (N,)`` -> ``(N,)`` float 1.0 where the argmax is the label."""
    return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


def psnr(images, references, *, data_range: float = 1.0):
    """Per-image PSNR in dB.

    Args:
      images: ``(N, H, W, C)`` (any trailing shape after N).
      references: same shape as ``images``.
      data_range: the value range ``R`` (1.0 for ``[0, 1]``, 255 for uint8).

    Returns:
      ``(N,)`` PSNR of each image against its reference (``inf`` if equal).
    """
    diff = jnp.asarray(images, jnp.float32) - jnp.asarray(references, jnp.float32)
    mse = jnp.mean(jnp.square(diff), axis=tuple(range(1, diff.ndim)))
    return 10.0 * jnp.log10(data_range**2 / mse)


def _gaussian_valid_matrix(size: int, *, sigma: float, radius: int) -> np.ndarray:
    """``(size - 2 radius, size)`` matrix applying a normalised 1-D Gaussian ("valid" mode)."""
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = size - 2 * radius
    if out < 1:
        raise ValueError(f"ssim needs images of at least {2 * radius + 1} pixels per side, got {size}")
    matrix = np.zeros((out, size), np.float32)
    for i in range(out):
        matrix[i, i : i + 2 * radius + 1] = taps
    return matrix


def ssim(images, references, *, data_range: float = 1.0, sigma: float = 1.5):
    """Per-image mean SSIM with a Gaussian window (Wang et al. 2004).

    Args:
      images: ``(N, H, W, C)``.
      references: ``(N, H, W, C)``.
      data_range: the value range ``R``.
      sigma: Gaussian window width; the window radius is ``int(3.5 sigma + 0.5)``.

    Returns:
      ``(N,)`` SSIM averaged over the valid window positions and channels.
    """
    x = jnp.asarray(images, jnp.float32)
    y = jnp.asarray(references, jnp.float32)
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(f"ssim expects two (N, H, W, C) arrays of one shape, got {x.shape} and {y.shape}")
    radius = int(3.5 * sigma + 0.5)
    gh = jnp.asarray(_gaussian_valid_matrix(x.shape[1], sigma=sigma, radius=radius))
    gw = jnp.asarray(_gaussian_valid_matrix(x.shape[2], sigma=sigma, radius=radius))

    def blur(a):  # (N, H, W, C) -> (N, H - 2r, W - 2r, C)
        return jnp.einsum("ih,jw,nhwc->nijc", gh, gw, a, precision="highest")

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return jnp.mean(num / den, axis=(1, 2, 3))


def dice_counts(predicted, labels, *, num_classes: int, weights=None):
    """Per-class overlap counts of two integer label maps.

    Args:
      predicted: integer labels of any shape ``(N, ...)``.
      labels: same shape as ``predicted``.
      num_classes: number of classes ``K``.
      weights: optional ``(N,)`` example weights (0 for padding examples).

    Returns:
      ``(intersection, predicted_total, label_total)``, each ``(K,)``.
    """
    p = jax.nn.one_hot(predicted, num_classes, dtype=jnp.float32)
    t = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    if weights is not None:
        w = jnp.reshape(jnp.asarray(weights, jnp.float32), (-1,) + (1,) * (p.ndim - 1))
        p, t = p * w, t * w
    axes = tuple(range(p.ndim - 1))
    return jnp.sum(p * t, axis=axes), jnp.sum(p, axis=axes), jnp.sum(t, axis=axes)


def dice_from_counts(intersection, predicted_total, label_total):
    """Per-class Dice ``2 I / (|P| + |T|)``; 1.0 where a class is absent from both."""
    total = predicted_total + label_total
    return jnp.where(total > 0, 2.0 * intersection / jnp.maximum(total, 1e-12), 1.0)
