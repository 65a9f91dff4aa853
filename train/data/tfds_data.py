"""Real datasets through tensorflow-datasets *data sources* (array_record, no TensorFlow to read).

Datasets must be prepared once, on a machine with network access, in the
array_record format, e.g.::

    tfds build cifar10 --data_dir ~/tensorflow_datasets --file_format array_record

Nothing is downloaded here (``download=False``); a missing dataset raises a
one-line :class:`~train.errors.DatasetNotPreparedError` with that command.
Augmentation follows the papers: CIFAR random crop (4-pixel zero padding) and
horizontal flip with per-channel normalisation; ImageNet random-resized crop
224 and flip, evaluated on the central 224 crop of the 256-resized image;
DIV2K random aligned patches with flips and 90 degree rotations; UCF-101
random 16-frame clips of 112x112 crops from 128x171 frames (C3D).
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

from train import paths
from train.data import augment
from train.data.sources import Dataset
from train.errors import DatasetNotPreparedError, UserError

__all__ = ["cifar", "imagenet2012", "div2k", "ucf101", "load_source"]


def _build_command(name: str, data_dir: str | None) -> str:
    where = f" --data_dir {data_dir}" if data_dir else ""
    manual = " --manual_dir <dir with the ImageNet tar files>" if name.startswith("imagenet") else ""
    return f"tfds build {name}{where}{manual} --file_format array_record"


def load_source(name: str, split: str, data_dir: str | None):
    """``tfds.data_source(name, split=split, data_dir=data_dir, download=False)`` with one-line errors.

    ``data_dir`` may be a local path or a URL (``gs://bucket/tensorflow_datasets``).
    """
    import tensorflow_datasets as tfds

    data_dir = paths.as_path(data_dir) if data_dir else None

    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except (NotImplementedError, FileNotFoundError, AssertionError, KeyError) as error:
        # tfds reports an unprepared dataset as "random access ... TFRECORD is
        # not supported" (the default format of a missing dataset), or, when
        # the data directory holds its metadata without splits, as a KeyError.
        raise DatasetNotPreparedError(
            f"dataset {name!r} (split {split!r}) is not prepared as array_record in "
            f"{data_dir or '~/tensorflow_datasets'}; prepare it once with network access: "
            f"{_build_command(name, data_dir)}"
        ) from error


def _cifar_train(element, rng, *, mean, std):
    image = augment.pad_and_random_crop(element["image"], rng, pad=4)
    image = augment.random_flip(image, rng)
    return {"inputs": augment.normalize(image, mean, std), "targets": np.int32(element["label"])}


def _cifar_eval(element, *, mean, std):
    return {"inputs": augment.normalize(element["image"], mean, std), "targets": np.int32(element["label"])}


def cifar(*, name: str = "cifar10", data_dir: str | None = None) -> Dataset:
    """CIFAR-10/100: inputs ``(32, 32, 3)`` float32 normalised, targets int32."""
    stats = {
        "cifar10": (augment.CIFAR10_MEAN, augment.CIFAR10_STD, 10),
        "cifar100": (augment.CIFAR100_MEAN, augment.CIFAR100_STD, 100),
    }
    mean, std, classes = stats[name]
    return Dataset(
        name,
        "classification",
        load_source(name, "train", data_dir),
        load_source(name, "test", data_dir),
        num_classes=classes,
        train_map=functools.partial(_cifar_train, mean=mean, std=std),
        eval_map=functools.partial(_cifar_eval, mean=mean, std=std),
    )


def _imagenet_train(element, rng, *, size):
    image = augment.random_flip(augment.random_resized_crop(element["image"], rng, size=size), rng)
    return {
        "inputs": augment.normalize(image, augment.IMAGENET_MEAN, augment.IMAGENET_STD),
        "targets": np.int32(element["label"]),
    }


def _imagenet_eval(element, *, size):
    image = element["image"]
    h, w = image.shape[:2]
    short = round(size / 0.875)  # 256 for 224
    image = augment.resize(image, max(short, round(h * short / w)), max(short, round(w * short / h)))
    image = augment.center_crop(image, size, size)
    return {
        "inputs": augment.normalize(image, augment.IMAGENET_MEAN, augment.IMAGENET_STD),
        "targets": np.int32(element["label"]),
    }


def imagenet2012(*, data_dir: str | None = None, image_size: int = 224) -> Dataset:
    """ImageNet-1k (train / validation): inputs ``(S, S, 3)``, targets int32."""
    return Dataset(
        "imagenet2012",
        "classification",
        load_source("imagenet2012", "train", data_dir),
        load_source("imagenet2012", "validation", data_dir),
        num_classes=1000,
        train_map=functools.partial(_imagenet_train, size=image_size),
        eval_map=functools.partial(_imagenet_eval, size=image_size),
    )


def _div2k_crop(element, rng, *, scale, patch):
    lr, hr = element["lr"], element["hr"]
    if rng is None:  # evaluation: the central patch
        y, x = (lr.shape[0] - patch) // 2, (lr.shape[1] - patch) // 2
    else:
        y, x = rng.integers(0, lr.shape[0] - patch + 1), rng.integers(0, lr.shape[1] - patch + 1)
    lr = lr[y : y + patch, x : x + patch]
    hr = hr[y * scale : (y + patch) * scale, x * scale : (x + patch) * scale]
    if rng is not None:
        if rng.random() < 0.5:
            lr, hr = lr[:, ::-1], hr[:, ::-1]
        turns = int(rng.integers(0, 4))
        lr, hr = np.rot90(lr, turns), np.rot90(hr, turns)
    to_float = lambda a: np.ascontiguousarray(a, np.float32) / 255.0  # noqa: E731
    return {"inputs": to_float(lr), "targets": to_float(hr)}


def div2k(*, data_dir: str | None = None, scale: int = 2, patch_size: int = 48, eval_patch: int = 256) -> Dataset:
    """DIV2K bicubic track: LR ``(p, p, 3)`` -> HR ``(scale p, scale p, 3)`` in ``[0, 1]``.

    Evaluation uses the central ``eval_patch`` LR crop of each validation image.
    """
    name = f"div2k/bicubic_x{scale}"
    return Dataset(
        "div2k",
        "super_resolution",
        load_source(name, "train", data_dir),
        load_source(name, "validation", data_dir),
        train_map=functools.partial(_div2k_crop, scale=scale, patch=patch_size),
        eval_map=functools.partial(_div2k_crop, rng=None, scale=scale, patch=eval_patch),
    )


def _ucf_clip(element, rng, *, frames, size):
    video = element["video"]  # (T, H, W, 3) uint8
    start = 0 if rng is None else int(rng.integers(0, max(1, len(video) - frames + 1)))
    video = video[start : start + frames]
    video = np.concatenate([video, np.repeat(video[-1:], frames - len(video), axis=0)])
    video = np.stack([augment.resize(f, 128, 171) for f in video])
    if rng is None:
        y, x = (128 - size) // 2, (171 - size) // 2
    else:
        y, x = rng.integers(0, 128 - size + 1), rng.integers(0, 171 - size + 1)
    video = video[:, y : y + size, x : x + size]
    if rng is not None:
        video = augment.random_flip(video, rng, axis=2)
    mean, std = augment.IMAGENET_MEAN, augment.IMAGENET_STD
    return {"inputs": augment.normalize(video, mean, std), "targets": np.int32(element["label"])}


def ucf101(*, data_dir: str | None = None, frames: int = 16, image_size: int = 112) -> Dataset:
    """UCF-101 split 1: inputs ``(frames, S, S, 3)``, targets int32 of 101 classes.

    tensorflow-datasets describes UCF-101 with its ``Video`` feature, which
    needs TensorFlow even to read a prepared copy; without it this raises a
    one-line :class:`~train.errors.UserError` (``moving_digits`` is the
    offline stand-in).
    """
    if importlib.util.find_spec("tensorflow") is None:
        raise UserError(
            "dataset 'ucf101' needs TensorFlow: tensorflow-datasets decodes its videos with it "
            "(pip install tensorflow); offline, use the embedded 'moving_digits' clips"
        )
    import tensorflow_datasets.video.ucf101  # noqa: F401  (registers the builder)

    return Dataset(
        "ucf101",
        "classification",
        load_source("ucf101", "train", data_dir),
        load_source("ucf101", "test", data_dir),
        num_classes=101,
        train_map=functools.partial(_ucf_clip, frames=frames, size=image_size),
        eval_map=functools.partial(_ucf_clip, rng=None, frames=frames, size=image_size),
    )
