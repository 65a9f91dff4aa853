"""The skeleton of the compression pipelines: the dense network, compression, evaluation, fine-tuning, reports.

Private helper of :mod:`train.pipelines`. :func:`run_pipeline` is every
pipeline: it starts from a trained dense network (``pipeline.dense_export``:
the ``export`` directory a ``python -m train`` run writes; empty: train it here
first, resumably, in ``WORKDIR/dense``), resolves the preset's plan, lets the
pipeline's method hook compress the network (:class:`Compressed`), evaluates,
fine-tunes in ``WORKDIR/finetune`` with :func:`train.trainer.train`
(checkpoints and resume included) and reports every stage.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from compact_jax import count_params
from compact_jax.report import format_table
from train import checkpoint, data, models, optim, paths, sharding, steps, tasks, trainer
from train.errors import UserError
from train.pipelines.policy import resolve_plan

__all__ = [
    "PRIMARY_METRIC",
    "PipelineResult",
    "Compressed",
    "run_pipeline",
    "Adapted",
    "with_penalty",
    "load_dataset",
    "input_shape",
    "dense_model",
    "dense_stage",
    "evaluate",
    "finetune",
]

#: The number each task reports in the stage table.
PRIMARY_METRIC = {"classification": "accuracy", "super_resolution": "psnr", "segmentation": "dice"}


@dataclasses.dataclass
class PipelineResult:
    """What a pipeline produced.

    Attributes:
      title: what ran (config name, policy).
      metric: name of the reported metric (``accuracy``, ``psnr``, ``dice``).
      stages: ``(stage, params, metrics)`` in order, e.g. dense, fitted
        ("Pre"), fine-tuned ("Post").
      notes: extra lines for the report (fit errors, pruned sizes, ...).
      values: pipeline-specific numbers (e.g. basis distances).
      state: the final (fine-tuned) train state, or None.
    """

    title: str
    metric: str
    stages: list[tuple[str, int, dict]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    values: dict = dataclasses.field(default_factory=dict)
    state: Any = None

    def value(self, stage: str) -> float:
        """The reported metric of ``stage``."""
        for name, _, metrics in self.stages:
            if name == stage:
                return float(metrics[self.metric])
        raise KeyError(f"no stage {stage!r}; stages: {[s[0] for s in self.stages]}")

    def rows(self) -> list[tuple]:
        scale = 100.0 if self.metric == "accuracy" else 1.0
        dense = self.stages[0][1] if self.stages else None
        return [
            (name, params, f"{dense / params:.2f}x" if dense else "-", f"{scale * float(m[self.metric]):.2f}")
            for name, params, m in self.stages
        ]

    def summary(self) -> str:
        unit = " %" if self.metric == "accuracy" else ""
        header = ("stage", "params", "vs dense", f"{self.metric}{unit}")
        lines = [self.title, format_table(header, self.rows()), *self.notes]
        return "\n".join(lines)

    def add_trained(self, label: str, result) -> None:
        """Adds a :func:`finetune` result as a stage (a SIGTERM-stopped run adds a note instead)."""
        self.state = result.state
        self.values.update(resumed_from=result.resumed_from, steps_run=result.steps_run)
        if result.stopped:
            self.notes.append(f"{label}: stopped by SIGTERM at step {int(result.state['step'])}; rerun to resume")
        else:
            self.stages.append((label, result.num_params, result.metrics))


@dataclasses.dataclass(frozen=True)
class Adapted:
    """A model with fake quantisation and / or a training penalty, for :func:`train.trainer.train`.

    Has Linen's ``init`` / ``apply``. With ``quantizer`` every float parameter
    is quantised in the forward pass (straight-through gradient, so the
    float parameters keep training); with ``quantize_inputs`` so is the input
    of every convolution (the activations). With ``penalty``, a training
    forward pass returns ``(outputs, penalty(params))`` for a task wrapped by
    :func:`with_penalty`; evaluation returns the outputs alone.
    """

    model: Any
    quantizer: Callable | None = None
    quantize_inputs: bool = False
    penalty: Callable[[Any], jax.Array] | None = None

    def init(self, rngs, *args, **kwargs):
        return self.model.init(rngs, *args, **kwargs)

    def _interceptor(self, next_fun, args, kwargs, context):
        from compact_jax.linen import CompactConv

        if context.method_name == "__call__" and isinstance(context.module, (CompactConv, nn.Conv)) and args:
            args = (self.quantizer(args[0]), *args[1:])
        return next_fun(*args, **kwargs)

    def apply(self, variables, *args, train: bool = False, **kwargs):
        from compact_jax import quant

        params = variables["params"]
        if self.quantizer is not None:
            variables = {**variables, "params": quant.quantize_tree(params, self.quantizer)}
        if self.quantizer is not None and self.quantize_inputs:
            with nn.intercept_methods(self._interceptor):
                out = self.model.apply(variables, *args, train=train, **kwargs)
        else:
            out = self.model.apply(variables, *args, train=train, **kwargs)
        if not train or self.penalty is None:
            return out
        value = self.penalty(params)
        if kwargs.get("mutable"):
            outputs, state = out
            return (outputs, value), state
        return out, value


def with_penalty(task: tasks.Task) -> tasks.Task:
    """``task`` whose training loss takes ``(outputs, penalty)`` and adds the penalty."""

    def loss(outputs, batch):
        outputs, penalty = outputs
        value, metrics = task.loss(outputs, batch)
        return value + penalty, {**metrics, "loss": value + penalty, "task_loss": value, "penalty": penalty}

    return tasks.Task(task.name, loss, task.eval_sums, task.summarize)


def load_dataset(config) -> data.Dataset:
    return data.get_dataset(config.data.name, **config.data.get("kwargs", {}))


def input_shape(dataset: data.Dataset) -> tuple[int, ...]:
    """``(1, *example)``: the shape models are initialised and traced with."""
    return (1, *dataset.example()["inputs"].shape)


def _dense_config(config) -> ml_collections.ConfigDict:
    """``config`` for the dense network: no preset, the pipeline's dense recipe."""
    dense = copy.deepcopy(config)
    with dense.unlocked():
        dense.model.compress.preset = ""
        dense.pipeline.name = "train"
        for key, value in config.pipeline.dense_optimizer.items():
            dense.optimizer[key] = value
        dense.train.steps = int(config.pipeline.dense_steps)
        if config.pipeline.get("dense_batch_size"):
            dense.data.batch_size = int(config.pipeline.dense_batch_size)
    return dense


def dense_model(config, dataset: data.Dataset):
    """The dense network of ``config.model`` (no preset)."""
    return models.build_model(_dense_config(config).model, num_classes=dataset.num_classes)


def _subdir(workdir: paths.PathLike | None, name: str) -> paths.Path | None:
    return paths.join(workdir, name)


def dense_stage(config, workdir: str | None, dataset: data.Dataset) -> tuple[Any, dict, dict]:
    """The trained dense network: ``(model, variables, test metrics)``.

    Reads ``pipeline.dense_export`` if set, else trains ``pipeline.dense_steps``
    steps with ``pipeline.dense_optimizer`` in ``WORKDIR/dense`` (resuming a
    finished or interrupted run there).
    """
    model = dense_model(config, dataset)
    path = config.pipeline.get("dense_export", "")
    if path:
        if not paths.as_path(path).is_dir():
            raise UserError(f"pipeline.dense_export {path!r} is not a directory (the 'export' of a dense run)")
        tree = checkpoint.load_export(path)
        variables = {"params": tree["params"], **tree.get("model_state", {})}
        return model, variables, evaluate(config, model, variables, dataset)
    result = trainer.train(_dense_config(config), _subdir(workdir, "dense"), desc="dense")
    state = jax.device_get(result.state)
    return model, {"params": state["params"], **state["model_state"]}, result.metrics


def evaluate(config, model, variables: Mapping, dataset: data.Dataset, task: tasks.Task | None = None) -> dict:
    """Test metrics of ``model`` with ``variables`` (``{"params", <state collections>}``).

    The state is laid out like :func:`train.trainer.train`'s (with ``config``'s
    optimiser state), so the evaluation program is the trainer's own and is
    compiled once for both.
    """
    mesh = sharding.make_mesh()
    task = task or tasks.get_task(dataset.task, num_classes=dataset.num_classes)
    params = variables["params"]
    state = {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "model_state": {k: v for k, v in variables.items() if k != "params"},
        "opt_state": optim.make_optimizer(config.optimizer, int(config.train.steps)).init(params),
    }
    state = jax.device_put(state, sharding.replicated(mesh))
    eval_step = steps.make_eval_step(model, task, mesh)
    return trainer.evaluate(eval_step, task, state, dataset=dataset, mesh=mesh, batch_size=config.data.eval_batch_size)


def finetune(config, workdir: str | None, model, variables: Mapping, *, penalty: bool = False, desc: str = "finetune"):
    """:func:`train.trainer.train` of ``model`` from ``variables`` in ``WORKDIR/finetune``."""
    task = None
    if penalty:
        dataset = load_dataset(config)
        task = with_penalty(tasks.get_task(dataset.task, num_classes=dataset.num_classes,
                                           label_smoothing=config.get("label_smoothing", 0.0)))
    return trainer.train(config, _subdir(workdir, "finetune"), desc=desc, model=model, task=task, variables=dict(variables))


@dataclasses.dataclass
class Compressed:
    """What a pipeline's method hook made of the dense network (see :func:`run_pipeline`).

    Attributes:
      title: what ran (config name, method, policy).
      plan: the resolved (fitted, pruned) plan.
      variables: the compact network's variables fine-tuning starts from.
      train_model: the model fine-tuned (the compact one, or :class:`Adapted`).
      trained_label: the fine-tuned stage's name.
      evaluations: ``(stage, model)`` evaluated on ``variables`` before fine-tuning.
      notes: extra report lines.
      values: pipeline-specific numbers for :attr:`PipelineResult.values`.
      penalty: fine-tune with the training penalty (:func:`with_penalty`).
      desc: the fine-tuning run's progress label.
      after: called with the result once fine-tuned (e.g. to add measurements).
    """

    title: str
    plan: Any
    variables: dict
    train_model: Any
    trained_label: str
    evaluations: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    values: dict = dataclasses.field(default_factory=dict)
    penalty: bool = False
    desc: str = "finetune"
    after: Callable[[PipelineResult], None] | None = None


#: ``(config, plan, model, variables, dataset) -> Compressed``: a pipeline's method step.
MethodHook = Callable[[ml_collections.ConfigDict, Any, Any, dict, data.Dataset], Compressed]


def run_pipeline(config, workdir: str | None, method: MethodHook) -> PipelineResult:
    """Dense -> the method's compression -> evaluate -> fine-tune -> evaluate.

    Stages: ``dense``, each of the hook's ``evaluations``, then the fine-tuned
    network (``trained_label``); parameters counted by :func:`compact_jax.count_params`.
    """
    dataset = load_dataset(config)
    model, variables, dense_metrics = dense_stage(config, workdir, dataset)
    plan = resolve_plan(config.model.compress, model, input_shape(dataset))
    out = method(config, plan, model, variables, dataset)
    result = PipelineResult(title=out.title, metric=PRIMARY_METRIC[dataset.task], notes=list(out.notes),
                            values=dict(out.values))
    result.stages.append(("dense", count_params(variables["params"]), dense_metrics))
    size = count_params(out.variables["params"])
    for label, stage_model in out.evaluations:
        result.stages.append((label, size, evaluate(config, stage_model, out.variables, dataset)))
    tuned = finetune(config, workdir, out.train_model, out.variables, penalty=out.penalty, desc=out.desc)
    result.add_trained(out.trained_label, tuned)
    if out.after is not None:
        out.after(result)
    return result
