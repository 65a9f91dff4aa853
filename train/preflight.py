"""What the command line checks before training: the config is usable on this machine.

:func:`preflight` checks the ranges (:mod:`train.validate_config`), the batch
split over the devices, the workdir, a resume's config (:mod:`train.run_config`),
opens the dataset and traces the model's
initialisation (``jax.eval_shape``: nothing is computed). A ``ValueError`` or
``TypeError`` raised while doing so comes from the user's config (a conv
kwarg of the wrong type, an impossible shape) and is re-raised as a one-line
:class:`~train.errors.UserError`; errors during training are bugs and keep
their traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from train.errors import UserError

__all__ = ["preflight", "as_user_error", "one_line"]


def one_line(error: BaseException) -> str:
    """``error``'s message on one line (its lines joined), or its type name if it has none."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


@contextlib.contextmanager
def as_user_error(what: str) -> Iterator[None]:
    """Re-raises a ``ValueError`` / ``TypeError`` from the body as ``UserError(f"{what}: {message}")``."""
    try:
        yield
    except UserError:
        raise
    except (ValueError, TypeError) as error:
        raise UserError(f"{what}: {one_line(error)}") from error


def preflight(config, workdir: str | None) -> None:
    """Checks ``config`` and ``workdir`` as far as possible without training.

    Raises:
      UserError: the first problem found, in one line.
    """
    import jax
    import jax.numpy as jnp

    from train import data, models, run_config, sharding, validate_config

    validate_config.validate(config)
    validate_config.check_workdir(workdir)
    run_config.check_resume(config, workdir, dry_run=True)  # dry run: does not touch the backend
    # Multi-host: jax.distributed must start before anything below touches the backend
    # (idempotent: the trainer's own call is then a no-op).
    sharding.maybe_initialize_distributed(config.get("distributed", False), **dict(config.get("cluster", {})))
    validate_config.check_devices(config, jax.device_count())
    with as_user_error(f"data {config.data.name!r}"):
        dataset = data.get_dataset(config.data.name, **config.data.get("kwargs", {}))
    shape = (1, *dataset.example()["inputs"].shape)
    what = f"model {config.model.name!r} with conv method {config.model.conv.method!r}"
    kwargs = dict(config.model.conv.get("kwargs", {}))
    if kwargs:
        what += f" and model.conv.kwargs {kwargs}"
    with as_user_error(f"cannot build {what}"):
        model = models.build_model(config.model, num_classes=dataset.num_classes, input_shape=shape,
                                   dtype=config.train.get("compute_dtype", "float32"))
        key = jax.random.key(0)
        jax.eval_shape(lambda x: model.init({"params": key, "dropout": key}, x, train=False), jnp.zeros(shape, jnp.float32))
