"""Embedded scikit-learn digits: images for 2-D nets and moving-digit clips for 3-D nets.

scikit-learn ships the 1,797 8x8 UCI handwritten digits (grey levels 0..16)
inside the wheel, so these datasets need no download. The train/test split is
stratified and fixed by ``split_seed`` (default: 1,438 / 359 examples).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

from compact_jax.validate import check_fraction, check_int, check_positive_int
from train.data.sources import ArraySource, Dataset

__all__ = ["digits", "moving_digits", "DIRECTIONS"]

# (dy, dx) per frame of each motion class, counter-clockwise from "right".
DIRECTIONS = {
    4: ((0, 1), (-1, 0), (0, -1), (1, 0)),
    8: ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1)),
}


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits ``(N, 8, 8)`` in 0..16 and labels ``(N,)``, as ``sklearn.datasets.load_digits``.

    Reads the CSV shipped inside scikit-learn directly when it is there (the
    same data; importing scikit-learn itself takes seconds).
    """
    spec = importlib.util.find_spec("sklearn")
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz") if spec else ""
    if os.path.exists(path):
        table = np.loadtxt(path, delimiter=",")
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int32)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target.astype(np.int32)


@functools.cache
def _split(test_fraction: float, split_seed: int):
    """Stratified split: ``round(test_fraction * n_c)`` random examples of each class ``c`` are held out."""
    images, labels = _load_digits()
    images = (images / 16.0).astype(np.float32)  # [0, 1]
    rng = np.random.default_rng(split_seed)
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        test[members[: int(round(test_fraction * len(members)))]] = True
    return images[~test], images[test], labels[~test], labels[test]  # x_train, x_test, y_train, y_test


def _resize(images: np.ndarray, image_size: int) -> np.ndarray:
    """``(N, 8, 8)`` -> ``(N, S, S)``: nearest upsampling by ``S // 8``, then centred zero padding."""
    factor = image_size // 8
    images = images.repeat(factor, axis=1).repeat(factor, axis=2)
    lo = (image_size - images.shape[1]) // 2
    hi = image_size - images.shape[1] - lo
    return np.pad(images, ((0, 0), (lo, hi), (lo, hi)))


def digits(
    *, image_size: int = 16, channels: int = 3, test_fraction: float = 0.2, split_seed: int = 0
) -> Dataset:
    """Digits as CIFAR-like images, standardised with the training mean and std.

    Args:
      image_size: output side ``S >= 8`` (e.g. 16 or 32 for CIFAR-style nets).
      channels: grey level repeated on this many channels (3: RGB-like).
      test_fraction: held-out fraction (stratified).
      split_seed: seed of the fixed split.

    Returns:
      A classification :class:`Dataset`: inputs ``(S, S, channels)`` float32,
      targets int32 in ``0..9``.
    """
    check_int("image_size", image_size, minimum=8)
    check_positive_int("channels", channels)
    check_fraction("test_fraction", test_fraction)
    x_train, x_test, y_train, y_test = _split(float(test_fraction), int(split_seed))
    x_train, x_test = _resize(x_train, image_size), _resize(x_test, image_size)
    mean, std = x_train.mean(), x_train.std()

    def arrays(x, y):
        x = np.repeat(((x - mean) / std)[..., None], channels, axis=-1).astype(np.float32)
        return ArraySource({"inputs": x, "targets": y})

    return Dataset("digits", "classification", arrays(x_train, y_train), arrays(x_test, y_test), 10)


def _clips(images: np.ndarray, *, frames: int, size: int, steps, rng: np.random.Generator):
    """Moves each ``(8, 8)`` digit along a random direction: ``(N, T, S, S)`` and labels ``(N,)``."""
    labels = rng.integers(0, len(steps), len(images)).astype(np.int32)
    travel = frames - 1
    clips = np.zeros((len(images), frames, size, size), np.float32)
    for n, (image, label) in enumerate(zip(images, labels)):
        dy, dx = steps[label]
        # Start anywhere that keeps the whole path inside the canvas.
        y0 = rng.integers(max(0, -dy * travel), size - 8 - max(0, dy * travel) + 1)
        x0 = rng.integers(max(0, -dx * travel), size - 8 - max(0, dx * travel) + 1)
        for t in range(frames):
            y, x = y0 + dy * t, x0 + dx * t
            clips[n, t, y : y + 8, x : x + 8] = image
    return clips, labels


def moving_digits(
    *,
    frames: int = 8,
    size: int = 16,
    directions: int = 4,
    channels: int = 1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> Dataset:
    """Clips of one digit moving one pixel per frame; the label is the direction.

    Digit images of the train and test clips come from the digits split, so
    test clips show unseen handwriting. Directions and start positions are
    drawn with ``split_seed``.

    Args:
      frames: clip length ``T``.
      size: canvas side ``S``; needs ``S >= 8 + frames - 1``.
      directions: 4 (right, up, left, down) or 8 (with diagonals).
      channels: intensity repeated on this many channels.
      test_fraction: held-out fraction.
      split_seed: seed of the split, directions and start positions.

    Returns:
      A classification :class:`Dataset`: inputs ``(T, S, S, channels)``,
      targets int32 direction indices (see :data:`DIRECTIONS`).
    """
    check_int("frames", frames, minimum=2)
    if directions not in DIRECTIONS:
        raise ValueError(f"directions must be one of {tuple(DIRECTIONS)}, got {directions!r}")
    check_positive_int("channels", channels)
    if check_int("size", size) < 8 + frames - 1:
        raise ValueError(f"size must be >= 8 + frames - 1 = {8 + frames - 1} for the path to fit, got {size}")
    x_train, x_test, _, _ = _split(float(test_fraction), int(split_seed))
    rng = np.random.default_rng(split_seed)
    sources = []
    for images in (x_train, x_test):
        clips, labels = _clips(images, frames=frames, size=size, steps=DIRECTIONS[directions], rng=rng)
        clips = np.repeat((clips - 0.5)[..., None] * 2.0, channels, axis=-1)
        sources.append(ArraySource({"inputs": clips.astype(np.float32), "targets": labels}))
    return Dataset("moving_digits", "classification", *sources, num_classes=directions)
