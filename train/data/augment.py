"""NumPy image augmentations used by the papers' training recipes (per example, channels last).

Every random function takes a ``np.random.Generator`` (grain's ``random_map``
hands one per example, seeded from the pipeline seed and the example index),
so augmentation is reproducible and resumes exactly from a checkpoint.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "normalize",
    "pad_and_random_crop",
    "random_flip",
    "resize",
    "center_crop",
    "random_resized_crop",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(image_uint8: np.ndarray, mean, std) -> np.ndarray:
    """``uint8 (..., C)`` -> float32 ``(x / 255 - mean) / std`` per channel."""
    x = np.asarray(image_uint8, np.float32) / 255.0
    return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


def pad_and_random_crop(image: np.ndarray, rng: np.random.Generator, *, pad: int) -> np.ndarray:
    """Zero-pads ``(H, W, C)`` by ``pad`` on each side and crops a random ``(H, W)`` window.

    The CIFAR recipe of He et al. (2016): ``pad=4`` for 32x32 images.
    """
    h, w = image.shape[:2]
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    y, x = rng.integers(0, 2 * pad + 1, size=2)
    return padded[y : y + h, x : x + w]


def random_flip(image: np.ndarray, rng: np.random.Generator, *, axis: int = 1) -> np.ndarray:
    """Mirrors ``image`` along ``axis`` (1: width of ``(H, W, C)``) with probability 1/2."""
    return np.flip(image, axis=axis) if rng.random() < 0.5 else image


def resize(image_uint8: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a ``uint8 (H, W, C)`` image with PIL (antialiased when shrinking)."""
    from PIL import Image

    pil = Image.fromarray(np.asarray(image_uint8))
    return np.asarray(pil.resize((width, height), Image.BILINEAR))


def center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The central ``(height, width)`` window of ``(H, W, C)``."""
    h, w = image.shape[:2]
    y, x = (h - height) // 2, (w - width) // 2
    return image[y : y + height, x : x + width]


def random_resized_crop(
    image_uint8: np.ndarray,
    rng: np.random.Generator,
    *,
    size: int,
    area: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> np.ndarray:
    """Inception-style crop (torchvision ``RandomResizedCrop``) resized to ``(size, size)``.

    Falls back to the central crop of the whole image after ``attempts``
    rejected samples, as torchvision does.
    """
    h, w = image_uint8.shape[:2]
    for _ in range(attempts):
        target = h * w * rng.uniform(*area)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw, ch = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            return resize(image_uint8[y : y + ch, x : x + cw], size, size)
    side = min(h, w)
    return resize(center_crop(image_uint8, side, side), size, size)
