"""grain input pipelines: seeded shuffling, augmentation, batching, per-process sharding.

The training iterator is a grain ``DatasetIterator``: its ``get_state()`` /
``set_state()`` record how many batches were consumed, and
:mod:`train.checkpoint` saves that state with the model so a resumed run sees
exactly the batches an uninterrupted run would have seen.

Training: every process computes the same seeded, shuffled stream of examples
and cuts it into global batches; process ``p`` of ``P`` reads (and decodes and
augments) only its block ``[p * B / P, (p + 1) * B / P)`` of each global batch
of ``B``. The shares are disjoint, together they are the whole stream (every
example once per epoch), and the global batch is the same whatever the
number of processes, so 2 processes of 2 devices train exactly like 1 process
of 4. The trainer assembles the global batch with
``jax.make_array_from_process_local_data``. Evaluation: process ``p`` reads
``test[p::P]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import grain
import jax
import numpy as np

from compact_jax.validate import check_int, check_positive_int
from train.data.sources import Dataset
from train.errors import UserError

__all__ = ["train_iterator", "eval_batches", "per_process_batch_size"]


def per_process_batch_size(global_batch_size: int, *, process_count: int | None = None) -> int:
    """``global_batch_size / process_count`` (default ``jax.process_count()``); raises unless it divides evenly."""
    check_positive_int("batch_size", global_batch_size)
    count = jax.process_count() if process_count is None else process_count
    if global_batch_size % count:
        raise UserError(f"batch_size {global_batch_size} is not divisible by the {count} processes")
    return global_batch_size // count


def _read_options(num_threads: int) -> grain.ReadOptions:
    check_int("num_threads", num_threads, minimum=0)
    return grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=max(2, 2 * num_threads))


def _process(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    count = jax.process_count() if process_count is None else check_positive_int("process_count", process_count)
    index = jax.process_index() if process_index is None else check_int("process_index", process_index, minimum=0)
    if index >= count:
        raise ValueError(f"process_index must be < process_count = {count}, got {index}")
    return index, count


def train_iterator(
    dataset: Dataset,
    *,
    global_batch_size: int,
    seed: int,
    num_threads: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.DatasetIterator:
    """An endless, checkpointable iterator of training batches for this process.

    Every epoch is shuffled differently (grain folds the epoch into the seed);
    augmentation draws from a generator seeded by ``seed`` and the example's
    position in the stream.

    Args:
      dataset: the dataset; ``dataset.train_map`` is applied per example.
      global_batch_size: examples per step over all processes.
      seed: shuffle and augmentation seed.
      num_threads: grain reader threads (0: read in the main thread, best for
        in-memory arrays).
      process_index: this process's share (default ``jax.process_index()``).
      process_count: number of shares (default ``jax.process_count()``).

    Returns:
      Iterator of dicts of ``(B_local, ...)`` NumPy arrays: this process's
      block of each global batch (see the module docstring).
    """
    index, count = _process(process_index, process_count)
    local = per_process_batch_size(global_batch_size, process_count=count)
    ds = grain.MapDataset.source(dataset.train)
    if len(ds) < global_batch_size:
        raise UserError(f"dataset {dataset.name!r} has {len(ds)} training examples, fewer than one batch ({global_batch_size})")
    ds = ds.seed(seed).shuffle().repeat()
    if dataset.train_map is not None:
        ds = ds.random_map(dataset.train_map)
    # Blocks of B / P consecutive examples; block k is process (k mod P)'s share of global batch k // P.
    # MapDataset is lazy: slicing keeps only this process's blocks, and only they are read and mapped.
    ds = ds.batch(local, drop_remainder=True)[index::count]
    return iter(ds.to_iter_dataset(_read_options(num_threads)))


def eval_batches(dataset: Dataset, *, global_batch_size: int, num_threads: int = 0) -> Iterator[dict]:
    """Every held-out example once, in order, in fixed-size batches with a ``weights`` mask.

    All processes yield the same number of batches (collectives stay in step);
    padding examples are zeros with weight 0.

    Yields:
      Dicts of ``(B_local, ...)`` arrays plus ``"weights"`` ``(B_local,)`` float32.
    """
    local = per_process_batch_size(global_batch_size)
    count = jax.process_count()
    ds = grain.MapDataset.source(dataset.test)[jax.process_index() :: count]
    if dataset.eval_map is not None:
        ds = ds.map(dataset.eval_map)
    num_batches = math.ceil(math.ceil(len(dataset.test) / count) / local)
    batches = iter(ds.batch(local, drop_remainder=False).to_iter_dataset(_read_options(num_threads)))
    template = None
    for _ in range(num_batches):
        batch = next(batches, None)
        if batch is None:  # this process ran out before the others
            batch = {k: v[:0] for k, v in template.items()}
        template = batch
        size = len(batch["inputs"])
        padded = {k: np.concatenate([v, np.zeros((local - size, *v.shape[1:]), v.dtype)]) for k, v in batch.items()}
        padded["weights"] = (np.arange(local) < size).astype(np.float32)
        yield padded
