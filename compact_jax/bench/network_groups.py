"""Where a compact network's speed-up comes from: its groups compressed one at a time.

Run: ``python -m compact_jax.bench --only groups`` (or
``python -m compact_jax.bench.network_groups``). For each network and method of
:mod:`compact_jax.bench.networks` (float32, the backend's shapes), the
method's policy is applied to one top-level group of the network at a time
(the first part of a convolution's parameter path: ``stem_conv``,
``stage1``, ...), every other convolution left dense, and each variant is
timed against the dense network in the same interleaved rounds. A row gives,
as shares of the dense network's:

* the time the group saves, forward and train step;
* the train step's floating-point operations it saves (XLA's count of the two
  compiled programs, :func:`compact_jax.bench.networks.xla_flops`);
* their quotient, time saved per operation saved: 1 when the group's compact
  layers run their operations as efficiently as the dense network runs its
  own, below 1 where they gain less time than operations (the group to look
  at), above 1 where the dense layers were the slow ones (e.g. weight-bound).

The last row of each method compresses every group, as in the network table.
Groups whose compact layers save (almost) no operations (kernels generated
per call, a MAC ratio of 1: under :data:`MIN_FLOPS_SAVED_PCT` percent) give
``nan`` quotients.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from compact_jax import compress
from compact_jax.bench import networks as _networks
from compact_jax.bench.timing import print_table

__all__ = ["groups_of", "restrict_to_group", "time_per_flops_saved", "group_rows", "main"]

HEADER = (
    "network", "method", "group", "layers", "fwd time saved %", "train time saved %",
    "train FLOPs saved %", "time / FLOPs saved",
)
ALL_GROUPS = "(all)"
#: Below this share (%) of the dense train step's FLOPs saved, the quotient is ``nan``: time
#: differences then stand over a count near zero (FilterMap, the series layers).
MIN_FLOPS_SAVED_PCT = 0.5


def groups_of(plan: compress.Plan) -> dict[str, int]:
    """``group -> number of compressed convolutions``, top-level groups in call order."""
    counts: dict[str, int] = {}
    for entry in plan.layers:
        if entry.method != "dense":
            group = entry.path.split("/")[0]
            counts[group] = counts.get(group, 0) + 1
    return counts


def restrict_to_group(policy: compress.Policy, group: str) -> compress.Policy:
    """``policy`` applied to the convolutions under ``group`` only; the others stay dense.

    A first rule claims every convolution outside the group as dense; the
    policy's rules follow, made optional (some match only outside the group),
    and its default applies inside the group.
    """
    outside = compress.Rule(method="dense", path=f"re:(?!{re.escape(group)}(/|$)).*", optional=True)
    rules = [outside, *(dataclasses.replace(rule, optional=True) for rule in policy.rules)]
    return dataclasses.replace(policy, name=f"{policy.name} [{group}]", rules=rules)


def _percent(saved: float, total: float) -> float:
    return 100.0 * saved / total


def time_per_flops_saved(time_saved_pct: float, flops_saved_pct: float) -> float:
    """``time_saved_pct / flops_saved_pct``, ``nan`` below :data:`MIN_FLOPS_SAVED_PCT` of FLOPs saved."""
    return time_saved_pct / flops_saved_pct if flops_saved_pct >= MIN_FLOPS_SAVED_PCT else float("nan")


def group_rows(
    *,
    networks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    tiny: bool | None = None,
    rounds: int = 5,
    repeats: int = 1,
) -> list[tuple]:
    """Times each method's groups compressed alone against the dense network (float32).

    Args:
      networks, methods, tiny, rounds, repeats: as in
        :func:`compact_jax.bench.networks.network_rows` (more rounds by
        default: a group's saving is a difference of two medians).

    Returns:
      Rows ``(network, method, group, layers, fwd_saved_pct, train_saved_pct,
      train_flops_saved_pct, time_per_flops_saved)``; one row per group that
      the method compresses, then one for all groups together.
    """
    tiny = _networks.is_tiny() if tiny is None else tiny
    rows = []
    for net, chosen_methods in _networks.select(networks, methods):
        shape = _networks.input_shape(net, tiny)
        x = jax.random.normal(jax.random.key(1), shape, jnp.float32)
        _, variables, trace = _networks.dense_model(net, shape, jnp.float32, tiny)
        dense, dense_vars, _ = _networks.compress_variant(trace, variables, compress.Policy(name="dense"))
        dense_steps = _networks.compile_steps(dense, dense_vars, x, net.classifier)
        for label, policy in chosen_methods.items():
            groups = groups_of(compress.resolve(policy, trace))
            policies = {group: restrict_to_group(policy, group) for group in groups}
            policies[ALL_GROUPS] = policy
            # The dense network, compiled once, is timed again in each method's rounds.
            fns = {"dense": (dense_steps, dense_vars)}
            flops = {"dense": _networks.xla_flops(dense_steps[1])}
            for key, chosen in policies.items():
                compact, compact_vars, _ = _networks.compress_variant(trace, variables, chosen)
                steps = _networks.compile_steps(compact, compact_vars, x, net.classifier)
                fns[key] = (steps, compact_vars)
                flops[key] = _networks.xla_flops(steps[1])
            med = _networks.interleaved_medians(fns, x, rounds=rounds, repeats=repeats)
            (dense_fwd, dense_train), dense_flops = med["dense"], flops["dense"]
            for group in policies:
                fwd, train = med[group]
                flops_saved = _percent(dense_flops - flops[group], dense_flops)
                train_saved = _percent(dense_train - train, dense_train)
                layers = sum(groups.values()) if group == ALL_GROUPS else groups[group]
                rows.append((
                    f"{net.model} {tuple(shape)}", label, group, layers,
                    _percent(dense_fwd - fwd, dense_fwd), train_saved, flops_saved,
                    time_per_flops_saved(train_saved, flops_saved),
                ))
    return rows


def main() -> None:
    device = jax.devices()[0]
    print_table(
        HEADER,
        group_rows(),
        title=(f"Each group compressed alone, the rest dense ({jax.default_backend()}: {device.device_kind}); "
               "shares of the dense network's time and train-step FLOPs, medians of interleaved rounds"),
    )


if __name__ == "__main__":
    main()
