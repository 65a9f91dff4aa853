"""Data parallelism over a device mesh: parameters replicated, batches split along ``"data"``.

``jax.jit`` with ``NamedSharding`` in/out shardings is JAX's successor of
``pmap``: the same program runs on one device or many, and XLA inserts the
gradient all-reduce. The mesh axis is declared ``Auto`` explicitly (recent
``jax.make_mesh`` defaults to ``Explicit`` axes, which would demand sharding
annotations on every batch-reducing op, e.g. inside batch norm).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

__all__ = ["DATA_AXIS", "make_mesh", "replicated", "batch_sharded", "global_batch", "maybe_initialize_distributed"]

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A 1-D ``("data",)`` mesh over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (parameters, optimiser state)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Axis 0 (examples) split over the ``"data"`` axis, the rest whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles this process's ``(B_local, ...)`` arrays into global ``(B, ...)`` arrays.

    Raises:
      ValueError: the global batch does not split evenly over the devices.
    """
    sharding = batch_sharded(mesh)
    size = next(iter(local_batch.values())).shape[0] * jax.process_count()
    if size % mesh.size:
        raise ValueError(f"global batch size {size} is not divisible by the {mesh.size} devices of the mesh")
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def maybe_initialize_distributed(enabled: Any) -> None:
    """Calls ``jax.distributed.initialize()`` (cluster auto-detection) when ``enabled``."""
    if enabled:
        jax.distributed.initialize()
