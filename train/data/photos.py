"""Super-resolution patches from the photos bundled with scikit-image.

Low-resolution images are the bicubic downscales of the high-resolution
photos (EDSR's DIV2K "bicubic" track), computed once per photo; training
patches are random aligned crops (plus flips and 90 degree rotations, as in
EDSR), test examples are the non-overlapping tiles of held-out photos, so
the test PSNR is the mean over tiles. Values are float32 in ``[0, 1]``.
"""

from __future__ import annotations

import functools

import numpy as np

from compact_jax.validate import check_int, check_positive_int
from train.data.sources import ArraySource, Dataset

__all__ = ["photos_sr", "TRAIN_PHOTOS", "TEST_PHOTOS"]

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
TEST_PHOTOS = ("chelsea", "motorcycle_left")


@functools.cache
def _photo(name: str) -> np.ndarray:
    """``(H, W, 3)`` uint8."""
    import skimage.data

    image = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
    return np.ascontiguousarray(image[..., :3], np.uint8)


@functools.cache
def _pair(name: str, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """High-resolution photo cropped to a multiple of ``scale`` and its bicubic downscale, in ``[0, 1]``.

    PIL's antialiased bicubic, as MATLAB's ``imresize`` used to make DIV2K's
    low-resolution images.
    """
    from PIL import Image

    hr = _photo(name)
    h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
    hr = hr[:h, :w]
    lr = np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC))
    return hr.astype(np.float32) / 255.0, lr.astype(np.float32) / 255.0


def _random_patch(element, rng: np.random.Generator, *, pairs, scale: int, lr_patch: int):
    hr, lr = pairs[int(element["photo"]) % len(pairs)]
    y = rng.integers(0, lr.shape[0] - lr_patch + 1)
    x = rng.integers(0, lr.shape[1] - lr_patch + 1)
    lr = lr[y : y + lr_patch, x : x + lr_patch]
    hr = hr[y * scale : (y + lr_patch) * scale, x * scale : (x + lr_patch) * scale]
    if rng.random() < 0.5:  # horizontal flip
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    turns = int(rng.integers(0, 4))
    lr, hr = np.rot90(lr, turns), np.rot90(hr, turns)
    return {"inputs": np.ascontiguousarray(lr), "targets": np.ascontiguousarray(hr)}


def _tiles(names, *, scale: int, lr_tile: int) -> ArraySource:
    inputs, targets = [], []
    for name in names:
        hr, lr = _pair(name, scale)
        for y in range(0, lr.shape[0] - lr_tile + 1, lr_tile):
            for x in range(0, lr.shape[1] - lr_tile + 1, lr_tile):
                inputs.append(lr[y : y + lr_tile, x : x + lr_tile])
                targets.append(hr[y * scale : (y + lr_tile) * scale, x * scale : (x + lr_tile) * scale])
    return ArraySource({"inputs": np.stack(inputs), "targets": np.stack(targets)})


def photos_sr(
    *, scale: int = 2, patch_size: int = 24, test_tile: int = 48, patches_per_epoch: int = 1000
) -> Dataset:
    """Bicubic super-resolution on scikit-image's bundled photos.

    Args:
      scale: upscaling factor (2, 3, 4, ...).
      patch_size: low-resolution training patch side (EDSR: 48).
      test_tile: low-resolution side of the held-out tiles.
      patches_per_epoch: training examples per epoch (random crops).

    Returns:
      A super-resolution :class:`Dataset`: inputs ``(p, p, 3)``, targets
      ``(scale p, scale p, 3)``; train photos :data:`TRAIN_PHOTOS`, test
      photos :data:`TEST_PHOTOS`.
    """
    check_int("scale", scale, minimum=2)
    check_positive_int("patch_size", patch_size)
    check_positive_int("test_tile", test_tile)
    check_positive_int("patches_per_epoch", patches_per_epoch)
    pairs = tuple(_pair(name, scale) for name in TRAIN_PHOTOS)
    train = ArraySource({"photo": np.arange(patches_per_epoch, dtype=np.int32)})
    return Dataset(
        "photos_sr",
        "super_resolution",
        train,
        _tiles(TEST_PHOTOS, scale=scale, lr_tile=test_tile),
        train_map=functools.partial(_random_patch, pairs=pairs, scale=scale, lr_patch=patch_size),
    )
