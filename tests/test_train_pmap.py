"""Compact layers under ``jax.pmap`` (pmean of the gradients) train like the trainer's ``jit`` with shardings.

8 fake CPU devices need their own process (the device count is fixed when
JAX starts), so the comparison runs in a subprocess.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from compact_jax.linen import FilterMapConv
from train import config as config_lib
from train import data, optim, sharding, steps, tasks


class Net(nn.Module):
    # Compact conv layers, no batch norm (pmap would need an axis_name for global batch statistics).
    @nn.compact
    def __call__(self, x, train=False):
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        x = nn.relu(FilterMapConv(features=16, kernel_size=(3, 3))(x))
        return nn.Dense(10)(x.mean(axis=(1, 2)))


STEPS, BATCH = 3, 16
config = config_lib.load("digits_filtermap:runlocal", ["data.kwargs.image_size=8", "optimizer.warmup_steps=0"])
dataset = data.get_dataset("digits", image_size=8)
model, task = Net(), tasks.get_task("classification")
optimizer = optim.make_optimizer(config.optimizer, STEPS)
mesh = sharding.make_mesh()
assert jax.device_count() == mesh.size == 8, jax.devices()
state = steps.init_state(model, optimizer, jnp.zeros((1, 8, 8, 3)), seed=0, mesh=mesh)
start = jax.device_get(state)
iterator = data.train_iterator(dataset, global_batch_size=BATCH, seed=0)
batches = [next(iterator) for _ in range(STEPS)]

# The trainer's step: jit with a replicated state and the batch split over the "data" mesh axis.
jit_step = steps.make_train_step(model, optimizer, task, mesh, seed=0)
for batch in batches:
    state, _ = jit_step(state, sharding.global_batch(batch, mesh))
want = jax.device_get(state["params"])


# The same update as pmap code writes it: per-device gradients, averaged with lax.pmean.
def pmap_step(params, opt_state, batch):
    def loss_fn(params):
        loss, _ = task.loss(model.apply({"params": params}, batch["inputs"], train=True), batch)
        return loss

    grads = lax.pmean(jax.grad(loss_fn)(params), axis_name="devices")
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


step = jax.pmap(pmap_step, axis_name="devices")
copies = lambda tree: jax.tree.map(lambda a: np.stack([np.asarray(a)] * 8), tree)
params, opt_state = copies(start["params"]), copies(start["opt_state"])
for batch in batches:
    shards = {k: v.reshape(8, BATCH // 8, *v.shape[1:]) for k, v in batch.items()}
    params, opt_state = step(params, opt_state, shards)
params = jax.device_get(params)


def check(path, got, ref):
    got, ref = np.asarray(got), np.asarray(ref)
    for replica in got:
        assert np.array_equal(replica, got[0]), f"{jax.tree_util.keystr(path)}: replicas differ"
    error, scale = np.abs(got[0] - ref).max(), np.abs(ref).max()
    assert error <= 1e-5 * scale, f"{jax.tree_util.keystr(path)}: max |diff| {error:.3g} vs max |value| {scale:.3g}"


jax.tree_util.tree_map_with_path(check, params, want)
moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(start["params"])))
assert moved > 1e-3, moved  # the steps changed the parameters
print("ok", sum(np.size(a) for a in jax.tree.leaves(want)))
"""


def test_pmap_train_step_with_pmean_matches_the_jit_trainer_on_8_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8".strip()
    env["JAX_PLATFORMS"] = "cpu"
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.startswith("ok"), f"{run.stdout}\n{run.stderr[-4000:]}"
