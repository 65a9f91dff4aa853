"""What each task trains and measures: loss, per-batch evaluation sums, final metrics.

A :class:`Task` is three pure functions. ``loss(outputs, batch)`` returns the
mean training loss and metrics; ``eval_sums(outputs, batch)`` returns sums
weighted by ``batch["weights"]`` (0 for padding), which the trainer adds up
over batches and ``summarize`` turns into the reported numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from train import metrics

__all__ = ["Task", "get_task"]


@dataclasses.dataclass(frozen=True)
class Task:
    """Loss and metrics of one task (see the module docstring)."""

    name: str
    loss: Callable
    eval_sums: Callable
    summarize: Callable[[dict], dict]


def _cross_entropy(logits, labels, label_smoothing: float):
    """Per-example (per-voxel) cross entropy; ``logits (..., K)``, ``labels (...)`` int."""
    if not label_smoothing:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    k = logits.shape[-1]
    onehot = optax.smooth_labels(jax.nn.one_hot(labels, k, dtype=logits.dtype), label_smoothing)
    return optax.softmax_cross_entropy(logits, onehot)


def _classification(label_smoothing: float) -> Task:
    def loss(logits, batch):
        ce = jnp.mean(_cross_entropy(logits, batch["targets"], label_smoothing))
        return ce, {"loss": ce, "accuracy": jnp.mean(metrics.top1_correct(logits, batch["targets"]))}

    def eval_sums(logits, batch):
        w = batch["weights"]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        return {"count": jnp.sum(w), "loss": jnp.sum(w * ce), "correct": jnp.sum(w * metrics.top1_correct(logits, batch["targets"]))}

    def summarize(sums):
        return {"accuracy": sums["correct"] / sums["count"], "loss": sums["loss"] / sums["count"]}

    return Task("classification", loss, eval_sums, summarize)


def _segmentation(num_classes: int, label_smoothing: float) -> Task:
    def loss(logits, batch):
        ce = jnp.mean(_cross_entropy(logits, batch["targets"], label_smoothing))
        hits = jnp.argmax(logits, axis=-1) == batch["targets"]
        return ce, {"loss": ce, "voxel_accuracy": jnp.mean(hits.astype(jnp.float32))}

    def eval_sums(logits, batch):
        w = batch["weights"]
        per_example = jnp.mean(
            optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]),
            axis=tuple(range(1, logits.ndim - 1)),
        )
        inter, pred, true = metrics.dice_counts(
            jnp.argmax(logits, axis=-1), batch["targets"], num_classes=num_classes, weights=w
        )
        return {"count": jnp.sum(w), "loss": jnp.sum(w * per_example), "intersection": inter, "predicted": pred, "label": true}

    def summarize(sums):
        dice = np.asarray(metrics.dice_from_counts(sums["intersection"], sums["predicted"], sums["label"]))
        out = {"loss": sums["loss"] / sums["count"], "dice": float(np.mean(dice[1:]))}
        out.update({f"dice_{k}": float(d) for k, d in enumerate(dice)})
        return out

    return Task("segmentation", loss, eval_sums, summarize)


def _super_resolution(data_range: float) -> Task:
    def loss(outputs, batch):
        l1 = jnp.mean(jnp.abs(outputs - batch["targets"]))  # EDSR's L1 loss
        return l1, {"loss": l1}

    def eval_sums(outputs, batch):
        w = batch["weights"]
        images = jnp.clip(outputs, 0.0, data_range)
        return {
            "count": jnp.sum(w),
            "loss": jnp.sum(w * jnp.mean(jnp.abs(outputs - batch["targets"]), axis=(1, 2, 3))),
            # A padding example equal to its target has PSNR inf, and 0 * inf is NaN: leave it out.
            "psnr": jnp.sum(jnp.where(w > 0, w * metrics.psnr(images, batch["targets"], data_range=data_range), 0.0)),
            "ssim": jnp.sum(w * metrics.ssim(images, batch["targets"], data_range=data_range)),
        }

    def summarize(sums):
        return {k: sums[k] / sums["count"] for k in ("loss", "psnr", "ssim")}

    return Task("super_resolution", loss, eval_sums, summarize)


def get_task(name: str, *, num_classes: int | None = None, label_smoothing: float = 0.0, data_range: float = 1.0) -> Task:
    """The :class:`Task` of a dataset's ``task`` name."""
    if name == "classification":
        return _classification(label_smoothing)
    if name == "segmentation":
        return _segmentation(num_classes, label_smoothing)
    if name == "super_resolution":
        return _super_resolution(data_range)
    raise ValueError(f"unknown task {name!r}; valid: classification, segmentation, super_resolution")
