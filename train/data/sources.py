"""Random-access data sources and the :class:`Dataset` record every loader returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["ArraySource", "Dataset", "TASKS"]

TASKS = ("classification", "super_resolution", "segmentation")

Element = dict[str, Any]


class ArraySource(Sequence):
    """Examples stored as equal-length NumPy arrays: ``source[i] -> {key: array[i]}``.

    Args:
      arrays: name -> array with the examples along axis 0, e.g.
        ``{"inputs": (N, H, W, C) float32, "targets": (N,) int32}``.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"ArraySource arrays must have one length, got {lengths}")
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self._length = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Element:
        return {k: v[index] for k, v in self.arrays.items()}

    def __repr__(self) -> str:
        shapes = {k: v.shape for k, v in self.arrays.items()}
        return f"ArraySource({shapes})"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset ready for :mod:`train.data.pipeline`.

    Every element (after ``train_map`` / ``eval_map``) is a dict with
    ``"inputs"`` (float32, channels last) and ``"targets"`` (int32 labels,
    int32 label maps, or float32 high-resolution images).

    Attributes:
      name: the registry name.
      task: one of :data:`TASKS`.
      train: random-access training examples.
      test: random-access held-out examples.
      num_classes: classes (classification, segmentation), else None.
      train_map: ``(element, np.random.Generator) -> element`` augmentation
        (and decoding) for training; None: identity.
      eval_map: ``element -> element`` decoding for evaluation; None: identity.
    """

    name: str
    task: str
    train: Sequence[Element]
    test: Sequence[Element]
    num_classes: int | None = None
    train_map: Callable[[Element, np.random.Generator], Element] | None = None
    eval_map: Callable[[Element], Element] | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    def example(self) -> Element:
        """The first test example after ``eval_map`` (for shapes and model init)."""
        element = self.test[0]
        return self.eval_map(element) if self.eval_map else element
