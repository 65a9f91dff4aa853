"""Datasets by name: embedded offline data and tensorflow-datasets data sources.

Embedded (no download, shipped inside scikit-learn / scikit-image):

* ``digits`` - 8x8 handwritten digits as CIFAR-like images.
* ``moving_digits`` - clips of a moving digit; the label is the direction.
* ``photos_sr`` - bicubic super-resolution on scikit-image's photos.
* ``volumes`` - synthetic 3-D volumes for segmentation.

Prepared offline with ``tfds build NAME --file_format array_record``:
``cifar10``, ``cifar100``, ``imagenet2012``, ``div2k``, ``ucf101``.

Example::

    from train import data
    ds = data.get_dataset("digits", image_size=16)
    it = data.train_iterator(ds, global_batch_size=64, seed=0)
    batch = next(it)  # {"inputs": (64, 16, 16, 3), "targets": (64,)}
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from train.data import digits as _digits
from train.data import photos as _photos
from train.data import tfds_data as _tfds
from train.data import volumes as _volumes
from train.data.pipeline import eval_batches, per_process_batch_size, train_iterator
from train.data.sources import TASKS, ArraySource, Dataset
from train.errors import UserError, did_you_mean

__all__ = [
    "DATASETS",
    "ArraySource",
    "Dataset",
    "TASKS",
    "eval_batches",
    "get_dataset",
    "per_process_batch_size",
    "train_iterator",
]

_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": _digits.digits,
    "moving_digits": _digits.moving_digits,
    "photos_sr": _photos.photos_sr,
    "volumes": _volumes.volumes,
    "cifar10": functools.partial(_tfds.cifar, name="cifar10"),
    "cifar100": functools.partial(_tfds.cifar, name="cifar100"),
    "imagenet2012": _tfds.imagenet2012,
    "div2k": _tfds.div2k,
    "ucf101": _tfds.ucf101,
}

DATASETS: tuple[str, ...] = tuple(_LOADERS)
"""Names accepted by :func:`get_dataset`."""



def get_dataset(name: str, **options: Any) -> Dataset:
    """Loads a dataset by name; ``options`` are its loader's keyword arguments.

    Raises:
      UserError: unknown ``name`` or option (one line listing the valid ones),
        or a tensorflow-datasets dataset that is not prepared.
    """
    if name not in _LOADERS:
        raise UserError(f"unknown dataset {name!r}; {did_you_mean(str(name), DATASETS)}valid datasets: {', '.join(DATASETS)}")
    loader = _LOADERS[name]
    valid = [p for p in inspect.signature(loader).parameters if p != "name"]
    for option in options:
        if option not in valid:
            raise UserError(
                f"dataset {name!r} has no option {option!r}; {did_you_mean(option, valid)}valid options: {', '.join(valid)}"
            )
    return loader(**options)
