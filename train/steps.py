"""Train state, the jitted train step and eval step (big_vision style: state is a plain dict).

State: ``{"step": () int32, "params": ..., "model_state": {"batch_stats": ...},
"opt_state": ...}``. ``step`` counts completed updates, so the update that
reads batch ``s`` (0-based) is reported as step ``s + 1``.

Both steps are ``jax.jit``-compiled with replicated state and batches split
along the mesh's ``"data"`` axis; the train step donates the old state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from train import sharding
from train.tasks import Task

__all__ = ["NONFINITE", "init_state", "make_train_step", "make_eval_step"]

#: Key of the evaluation sums counting examples with non-finite outputs.
NONFINITE = "nonfinite_outputs"

State = dict[str, Any]


# XLA:CPU compiles threefry (JAX's default PRNG) slowly - seconds per random
# call site, over ten seconds for a small ResNet's init - while the "rbg"
# generator (XLA's RngBitGenerator) compiles in a fraction of that.
RNG_IMPL = "rbg"


def init_state(model: nn.Module, optimizer: optax.GradientTransformation, inputs, *, seed: int, mesh) -> State:
    """Initialises the model on ``inputs`` (one example batch) directly into replicated arrays."""

    def init(inputs):
        key = jax.random.key(seed, impl=RNG_IMPL)
        variables = model.init({"params": key, "dropout": key}, inputs, train=False)
        params = variables.pop("params")
        return {
            "step": jnp.zeros((), jnp.int32),
            "params": params,
            "model_state": dict(variables),
            "opt_state": optimizer.init(params),
        }

    return jax.jit(init, out_shardings=sharding.replicated(mesh))(inputs)


def _apply(model, state, params, inputs, *, train: bool, rng=None):
    """``model.apply`` returning ``(outputs, new_model_state)`` whether or not it has batch stats.

    Outputs are cast to float32, so losses and metrics are computed in float32
    whatever the model's compute dtype (e.g. bfloat16).
    """
    variables = {"params": params, **state["model_state"]}
    rngs = {"dropout": rng} if rng is not None else None
    if train and state["model_state"]:
        outputs, model_state = model.apply(variables, inputs, train=True, mutable=list(state["model_state"]), rngs=rngs)
    else:
        outputs, model_state = model.apply(variables, inputs, train=train, rngs=rngs), state["model_state"]
    return jax.tree.map(lambda o: jnp.asarray(o, jnp.float32), outputs), model_state


def make_train_step(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    task: Task,
    mesh,
    *,
    seed: int,
    schedule: Callable | None = None,
    nan_at_step: int | None = None,
) -> Callable[[State, dict], tuple[State, dict]]:
    """The jitted ``(state, batch) -> (state, metrics)`` update.

    ``metrics`` holds the task's training metrics plus ``grad_norm``, ``lr``
    and ``finite`` (loss and updated parameters all finite).
    ``nan_at_step`` (testing aid) replaces the loss of that step by NaN.
    """

    def train_step(state, batch):
        step = state["step"] + 1
        rng = jax.random.fold_in(jax.random.key(seed, impl=RNG_IMPL), step)

        def loss_fn(params):
            outputs, model_state = _apply(model, state, params, batch["inputs"], train=True, rng=rng)
            loss, metrics = task.loss(outputs, batch)
            if nan_at_step is not None:
                loss = jnp.where(step == nan_at_step, jnp.nan, loss)
            return loss, (metrics, model_state)

        (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        finite = jnp.isfinite(loss)
        for leaf in jax.tree.leaves(params):
            finite &= jnp.all(jnp.isfinite(leaf))
        metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads), finite=finite)
        if schedule is not None:
            metrics["lr"] = schedule(state["step"])
        new_state = {"step": step, "params": params, "model_state": model_state, "opt_state": opt_state}
        return new_state, metrics

    repl, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    return jax.jit(train_step, in_shardings=(repl, data), out_shardings=(repl, repl), donate_argnums=0)


def make_eval_step(model: nn.Module, task: Task, mesh) -> Callable[[State, dict], dict]:
    """The jitted ``(state, batch) -> sums`` of the task's weighted evaluation sums.

    The sums also hold ``nonfinite_outputs``: the number of (non-padding)
    examples with a NaN or infinite output.
    """

    def eval_step(state, batch):
        outputs, _ = _apply(model, state, state["params"], batch["inputs"], train=False)
        sums = dict(task.eval_sums(outputs, batch))
        finite = jnp.all(jnp.isfinite(outputs.reshape(outputs.shape[0], -1)), axis=1)
        sums[NONFINITE] = jnp.sum(jnp.where(finite, 0.0, batch["weights"]))
        return sums

    repl, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    return jax.jit(eval_step, in_shardings=(repl, data), out_shardings=repl)
