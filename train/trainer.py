"""The training loop: data -> jitted step over the device mesh -> logs and checkpoints -> eval.

``train(config, workdir)`` resumes automatically from the newest checkpoint
in ``workdir/checkpoints`` (model, optimiser, batch statistics, step and the
data-iterator position), so re-running a killed command continues it and
ends with the parameters an uninterrupted run would have. A NaN / infinite
loss stops the run with :class:`~train.errors.NonFiniteLossError` naming the
step; checkpoints are only written after a step is known to be finite.
SIGTERM or SIGINT (Ctrl-C; single process) saves a checkpoint at the next
step and stops (a second Ctrl-C interrupts at once).

A checkpoint step that cannot be read is reported as one warning line on
stderr, moved aside into ``workdir/checkpoints_damaged`` and the next older
step is used. ``workdir/lock`` keeps a second run off a busy workdir
(:mod:`train.lock`). After a resume ``metrics.jsonl`` drops the records past
the restored step, so it holds each step once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import signal
import statistics
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from compact_jax import count_params
from train import data, models, optim, paths, run_config, sharding, steps, tasks, validate_config
from train.checkpoint import Checkpointer, export
from train.errors import NonFiniteLossError
from train.lock import WorkdirLock
from train.writers import Writer

__all__ = ["Result", "train", "evaluate"]


@dataclasses.dataclass
class Result:
    """What a run produced.

    Attributes:
      state: final train state (replicated ``jax.Array`` pytree).
      metrics: final evaluation metrics (e.g. ``accuracy``, ``psnr``, ``dice``).
      num_params: learned parameters of the model.
      step_time: median seconds per train step (compilation excluded).
      steps_run: steps executed by this invocation (0 if already complete).
      resumed_from: checkpoint step resumed from, or None.
      stopped: stopped early by SIGTERM or SIGINT (metrics empty; re-run to resume).
      stopped_by: the signal's name (``"SIGTERM"``, ``"SIGINT"``) when stopped, else ``""``.
    """

    state: Any
    metrics: dict
    num_params: int
    step_time: float
    steps_run: int
    resumed_from: int | None
    stopped: bool = False
    stopped_by: str = ""


def evaluate(eval_step, task: tasks.Task, state, *, dataset, mesh, batch_size: int, num_threads: int = 0) -> dict:
    """Runs ``eval_step`` over every held-out example; returns ``task.summarize`` of the sums.

    Raises:
      NonFiniteLossError: some example's outputs (e.g. logits) are NaN or infinite.
    """
    total = None
    for local in data.eval_batches(dataset, global_batch_size=batch_size, num_threads=num_threads):
        sums = jax.device_get(eval_step(state, sharding.global_batch(local, mesh)))
        total = sums if total is None else jax.tree.map(np.add, total, sums)
    bad = int(total.pop(steps.NONFINITE, 0))
    if bad:
        raise NonFiniteLossError(f"non-finite model outputs on {bad} evaluation examples at step {int(state['step'])}")
    return {k: float(v) if np.ndim(v) == 0 else v for k, v in task.summarize(total).items()}


class _StopRequest:
    """Turns SIGTERM and SIGINT into a flag checked between steps (single-process runs).

    A second SIGINT while the first is pending raises ``KeyboardInterrupt``
    (the user insists).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested = False
        self.signal_name = ""
        self._installed = jax.process_count() == 1 and _in_main_thread()
        self._previous = {}
        if self._installed:
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def restore(self):
        for signum, previous in self._previous.items():
            # A handler installed outside Python reads back as None: fall back to the default.
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _checkpointer(config, workdir: paths.Path | None) -> Checkpointer | None:
    tc = config.train
    if not workdir or not tc.checkpoint_every:
        return None
    return Checkpointer(
        workdir / "checkpoints", every=tc.checkpoint_every, keep=tc.keep_checkpoints, async_save=tc.async_checkpoint
    )


def _export_dense(workdir: paths.Path, model, state: dict, inputs, writer: Writer) -> None:
    """``WORKDIR/export_dense``: the folded dense model, every compact conv replaced by its kernel.

    It loads into the same network built with dense convolutions
    (``model.conv.method=dense``, no preset). A dense run has nothing to fold,
    and a layer with no single kernel (a basis with a larger coefficient conv)
    cannot be folded: both are logged as an ``export_dense_skipped`` event.
    """
    from compact_jax import compress

    model_state = jax.device_get(state["model_state"])
    variables = {"params": jax.device_get(state["params"]), **model_state}
    try:
        # On the host: Orbax writes host arrays from process 0 alone (one-device arrays fail on many hosts).
        folded = jax.device_get(compress.fold_modules(model, variables, inputs, train=False))
    except ValueError as error:
        writer.event(int(state["step"]), "export_dense_skipped", reason=str(error))
        return
    export(workdir / "export_dense", {"params": folded, "model_state": model_state})


def train(
    config, workdir: paths.PathLike | None = None, *, desc: str = "train", model=None, task: tasks.Task | None = None,
    variables: dict | None = None,
) -> Result:
    """Trains ``config`` (see :mod:`train.configs`); logs and checkpoints go to ``workdir``.

    Args:
      config: an ``ml_collections.ConfigDict`` from :func:`train.config.load`.
      workdir: run directory, a local path or a URL such as ``gs://bucket/run``
        (see :mod:`train.paths`); None: no checkpoints, logs or export.
      desc: label of the progress bar.
      model: train this model (``init`` / ``apply`` like a Linen module)
        instead of building ``config.model`` (compression pipelines).
      task: use this task instead of the dataset's.
      variables: start from ``{"params": ..., <model state collections>}``
        (e.g. fitted compact parameters) instead of the random init; a
        checkpoint in ``workdir`` still takes precedence (resume).

    Raises:
      UserError: before anything is built: a config value out of range
        (:mod:`train.validate_config`), an unusable workdir, or a resume with a
        changed config (:mod:`train.run_config`; the config is kept in
        ``workdir/config.json``).
      NonFiniteLossError: a non-finite loss, parameters or evaluation outputs.
    """
    workdir = paths.as_path(workdir) if workdir else None
    sharding.maybe_initialize_distributed(config.get("distributed", False), **dict(config.get("cluster", {})))
    validate_config.validate(config)
    validate_config.check_workdir(workdir)
    with WorkdirLock(workdir) if workdir and jax.process_index() == 0 else contextlib.nullcontext():
        return _train(config, workdir, desc=desc, model=model, task=task, variables=variables)


def _train(config, workdir: str | None, *, desc: str, model, task: tasks.Task | None, variables: dict | None) -> Result:
    run_config.check_resume(config, workdir)
    mesh = sharding.make_mesh()
    validate_config.check_devices(config, mesh.size)
    dataset = data.get_dataset(config.data.name, **config.data.get("kwargs", {}))
    inputs = jnp.zeros((1, *dataset.example()["inputs"].shape), jnp.float32)
    if model is None:
        model = models.build_model(config.model, num_classes=dataset.num_classes, input_shape=inputs.shape,
                                   dtype=config.train.get("compute_dtype", "float32"))
    task = task or tasks.get_task(dataset.task, num_classes=dataset.num_classes, label_smoothing=config.get("label_smoothing", 0.0))
    total, tc = int(config.train.steps), config.train
    optimizer = optim.make_optimizer(config.optimizer, total)
    if variables is None:
        state = steps.init_state(model, optimizer, inputs, seed=config.seed, mesh=mesh)
    else:
        state = _start_from(model, optimizer, inputs, variables, mesh)
    iterator = data.train_iterator(
        dataset, global_batch_size=config.data.batch_size, seed=config.seed, num_threads=config.data.num_threads
    )
    ckpt = _checkpointer(config, workdir)
    start, damaged = None, []
    if ckpt is not None:
        start, state, damaged = ckpt.restore_latest(state, iterator)
        _warn_damaged(ckpt, start, damaged)
    writer = Writer(
        workdir, total_steps=total, initial_step=start or 0, tensorboard=tc.tensorboard, progress=tc.progress, desc=desc,
        drop_after=start or 0,
    )
    writer.event(start or 0, "start", devices=jax.device_count(), processes=jax.process_count(), config=config.get("name"))
    for d in damaged:
        writer.event(start or 0, "checkpoint_damaged", damaged_step=d.step, reason=d.reason, moved_to=d.moved_to)
    if start is not None:
        writer.event(start, "resume", checkpoint=str(ckpt.directory))
    train_step = steps.make_train_step(
        model, optimizer, task, mesh, seed=config.seed, schedule=optim.make_schedule(config.optimizer, total),
        nan_at_step=config.get("debug_nan_at_step"),
    )
    eval_step = steps.make_eval_step(model, task, mesh)
    run_eval = functools.partial(evaluate, eval_step, task, dataset=dataset, mesh=mesh, batch_size=config.data.eval_batch_size)
    stop, times, results = _StopRequest(), [], {}
    try:
        batch = next(iterator) if (start or 0) < total else None
        for step in range((start or 0) + 1, total + 1):
            tick = time.perf_counter()
            state, metrics = train_step(state, sharding.global_batch(batch, mesh))
            stopping = stop.requested or step == total
            save_due = ckpt is not None and (stopping or ckpt.should_save(step))
            if not save_due and not stopping:
                batch = next(iterator)  # read the next batch while the step runs
            metrics = jax.device_get(metrics)
            if not metrics["finite"]:
                raise NonFiniteLossError(_nan_message(step, metrics, ckpt))
            times.append(time.perf_counter() - tick)
            if step % tc.log_every == 0 or step == total:
                writer.write(step, {k: v for k, v in metrics.items() if k != "finite"})
            writer.progress(step, loss=float(metrics["loss"]), examples_per_step=config.data.batch_size)
            if save_due:
                ckpt.save(step, state, iterator, force=stopping)
                if not stopping:
                    batch = next(iterator)
            if stopping:
                break
            if tc.eval_every and step % tc.eval_every == 0:
                writer.write(step, run_eval(state), kind="eval")
        if stop.requested:  # preempted: leave quickly, the checkpoint is written
            writer.event(int(state["step"]), "stopped", reason=stop.signal_name)
        else:
            results = run_eval(state)
            writer.write(int(state["step"]), results, kind="eval")
            if workdir:
                export(workdir / "export", {"params": state["params"], "model_state": state["model_state"]})
                _export_dense(workdir, model, state, inputs, writer)
    except jax.errors.JaxRuntimeError as error:
        raise sharding.peer_failure(error) from error
    finally:
        stop.restore()
        if ckpt is not None:
            ckpt.wait()
            ckpt.close()
        writer.close()
    return Result(
        state=state,
        metrics=results,
        num_params=count_params(state["params"]),
        step_time=statistics.median(times[1:]) if len(times) > 1 else float("nan"),
        steps_run=len(times),
        resumed_from=start,
        stopped=stop.requested,
        stopped_by=stop.signal_name if stop.requested else "",
    )


def _start_from(model, optimizer, inputs, variables: dict, mesh) -> dict:
    """A train state at step 0 holding ``variables`` and a fresh optimiser state (replicated).

    Checked against the model's own variables (traced, not computed).
    """
    key = jax.random.key(0, impl=steps.RNG_IMPL)
    want = jax.eval_shape(lambda x: model.init({"params": key, "dropout": key}, x, train=False), inputs)
    got = {k: variables.get(k) for k in want}
    shapes = lambda tree: jax.tree.map(lambda a: tuple(np.shape(a)), tree)  # noqa: E731
    if jax.tree.structure(got) != jax.tree.structure(want) or shapes(got) != shapes(want):
        raise ValueError("train(variables=...): the variables do not match the model's parameters and state")

    def fresh(variables):
        params = jax.tree.map(lambda a, b: jnp.asarray(a, b.dtype), variables["params"], want["params"])
        model_state = {k: v for k, v in variables.items() if k != "params"}
        return {"step": jnp.zeros((), jnp.int32), "params": params, "model_state": model_state,
                "opt_state": optimizer.init(params)}

    return jax.jit(fresh, out_shardings=sharding.replicated(mesh))(got)


def _warn_damaged(ckpt: Checkpointer, start: int | None, damaged: list) -> None:
    """One stderr line per damaged step, and one before a fresh start if nothing was readable."""
    if jax.process_index() != 0:
        return
    then = f"resuming from step {start}" if start is not None else "trying an older step"
    for i, d in enumerate(damaged):
        nxt = then if i == len(damaged) - 1 else "trying an older step"
        print(f"warning: checkpoint step {d.step} cannot be read ({d.reason}); moved to {d.moved_to}; {nxt}", file=sys.stderr)
    if damaged and start is None:
        print(f"warning: no readable checkpoint left in {ckpt.directory}; starting from step 0", file=sys.stderr)


def _nan_message(step: int, metrics: dict, ckpt: Checkpointer | None) -> str:
    if ckpt is not None:
        ckpt.wait()
        last = ckpt.latest_step()
        where = f"last good checkpoint: step {last} in {ckpt.directory}" if last is not None else "no checkpoint saved yet"
    else:
        where = "no checkpoints (no workdir)"
    return f"non-finite training loss ({metrics['loss']}) or parameters at step {step}; {where}"
