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

__all__ = [
    "DATA_AXIS",
    "PeerFailureError",
    "make_mesh",
    "replicated",
    "batch_sharded",
    "global_batch",
    "maybe_initialize_distributed",
    "peer_failure",
]

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


class PeerFailureError(RuntimeError):
    """A collective of a multi-process job failed: another process died or became unreachable."""


def peer_failure(error: Exception) -> Exception:
    """``error`` as a :class:`PeerFailureError` with a one-line cause in a multi-process job, else unchanged.

    Used as ``raise peer_failure(error) from error`` around the train loop.
    """
    if jax.process_count() == 1 or not isinstance(error, jax.errors.JaxRuntimeError):
        return error
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return PeerFailureError(
        f"process {jax.process_index()} of {jax.process_count()}: a collective failed, another process of the job "
        f"probably died or became unreachable (see its log); this one stops too. Cause: {first}"
    )


_INITIALIZED_HERE = False


def _distributed_is_initialized() -> bool:
    is_initialized = getattr(jax.distributed, "is_initialized", None)
    if is_initialized is not None:
        return bool(is_initialized())
    return _INITIALIZED_HERE  # older jax without a public query: what this module did


def maybe_initialize_distributed(
    enabled: Any,
    *,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    initialization_timeout: int = 300,
    heartbeat_timeout: int = 100,
) -> bool:
    """Joins a multi-process JAX job when ``enabled``; a no-op if this process already joined.

    Idempotent: the compression pipelines call the trainer more than once, and
    a user script may call ``jax.distributed.initialize`` itself before
    :func:`train.trainer.train`; the second and later calls do nothing. It
    must run before anything touches a JAX device (the trainer calls it first).

    Unset arguments are auto-detected by ``jax.distributed.initialize`` (TPU
    pods, SLURM, Open MPI, Kubernetes ...). On a plain multi-node GPU or CPU
    job set ``coordinator_address`` (``host:port`` of process 0),
    ``num_processes`` and each process's ``process_id``.

    A process that dies stops the others: a peer that misses heartbeats for
    ``heartbeat_timeout`` seconds is declared dead and every other process
    terminates with "the JAX distributed service detected fatal errors ...
    another task died" (a broken collective may end it sooner) instead of
    hanging.

    Args:
      enabled: join a multi-process job (``config.distributed``).
      coordinator_address: ``host:port`` of process 0's coordination service.
      num_processes: processes in the job.
      process_id: this process's index in ``0 .. num_processes - 1``.
      initialization_timeout: seconds to wait for every process to connect.
      heartbeat_timeout: seconds without heartbeats after which a process is dead.

    Returns:
      Whether this call initialised the distributed runtime.
    """
    if not enabled or _distributed_is_initialized():
        return False
    jax.distributed.initialize(
        coordinator_address=coordinator_address or None,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=int(initialization_timeout),
        heartbeat_timeout_seconds=int(heartbeat_timeout),
    )
    global _INITIALIZED_HERE
    _INITIALIZED_HERE = True
    return True
