"""Synthetic 3-D volumes for segmentation: noisy balls and boxes on a background.

Class 0 is background, odd classes are balls and even classes (>= 2) are
axis-aligned boxes; every foreground class has its own mean intensity and
the volume carries Gaussian noise, so a voxel's class needs its neighbourhood.
Objects are drawn with a fixed seed, train and test from disjoint streams.
"""

from __future__ import annotations

import numpy as np

from compact_jax.validate import check_int, check_positive_int
from train.data.sources import ArraySource, Dataset

__all__ = ["volumes"]


def _volume(rng: np.random.Generator, *, size: int, num_classes: int, objects: int, noise: float):
    """One ``(S, S, S)`` label map and its noisy intensity volume."""
    labels = np.zeros((size,) * 3, np.int32)
    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij"), axis=-1)
    for _ in range(objects):
        cls = int(rng.integers(1, num_classes))
        centre = rng.uniform(0.2 * size, 0.8 * size, 3)
        radius = rng.uniform(0.1 * size, 0.25 * size)
        if cls % 2:
            inside = np.sum((grid - centre) ** 2, axis=-1) <= radius**2
        else:
            inside = np.all(np.abs(grid - centre) <= radius, axis=-1)
        labels[inside] = cls
    means = np.linspace(0.0, 1.0, num_classes, dtype=np.float32)
    image = means[labels] + noise * rng.standard_normal(labels.shape).astype(np.float32)
    return image, labels


def volumes(
    *,
    size: int = 16,
    num_classes: int = 3,
    num_train: int = 64,
    num_test: int = 16,
    objects: int = 3,
    noise: float = 0.3,
    seed: int = 0,
) -> Dataset:
    """Segmentation of synthetic volumes.

    Args:
      size: side ``S`` of the cubic volume.
      num_classes: classes including background (>= 2).
      num_train: training volumes.
      num_test: held-out volumes.
      objects: objects drawn per volume (later ones overwrite earlier ones).
      noise: standard deviation of the additive Gaussian noise.
      seed: seed of the object draws.

    Returns:
      A segmentation :class:`Dataset`: inputs ``(S, S, S, 1)`` float32,
      targets ``(S, S, S)`` int32 labels.
    """
    check_int("size", size, minimum=4)
    check_int("num_classes", num_classes, minimum=2)
    check_positive_int("num_train", num_train)
    check_positive_int("num_test", num_test)
    check_positive_int("objects", objects)
    sources = []
    for stream, count in ((0, num_train), (1, num_test)):
        rng = np.random.default_rng([seed, stream])
        pairs = [_volume(rng, size=size, num_classes=num_classes, objects=objects, noise=noise) for _ in range(count)]
        images = np.stack([p[0] for p in pairs])[..., None]
        sources.append(ArraySource({"inputs": images, "targets": np.stack([p[1] for p in pairs])}))
    return Dataset("volumes", "segmentation", *sources, num_classes=num_classes)
