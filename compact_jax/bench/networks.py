"""Whole networks, dense against each compact method: forward and SGD train step.

Run: ``python -m compact_jax.bench --only networks`` (or
``python -m compact_jax.bench.networks``). Every network is built from
:mod:`compact_jax.models`, compressed with a :mod:`compact_jax.compress`
policy (FDC3D pruned by :func:`compact_jax.compress.fit`, i.e. the library's
own Algorithm 1, not hand-made masks) and timed against its dense model in
the same run, interleaved: each round times every variant once, and the
tables print medians over rounds. Rows:

* ResNet-18-CIFAR: 3D-FilterMap (Table 1 grids), filter basis at
  ``(s, m) = (2, c/4)`` and ``(1, c/2)``, CosConv and ChebConv with 2
  harmonics (stem and 1x1 shortcuts dense);
* EDSR-8-128: filter basis ``m = 27`` in every residual block;
* 3D-ResNet-18: FDC3D at ``(p_c, p_t) = (1/4, 1/3)`` and ``(5/8, 1/3)``.

Each row gives dense time / compact time (the speed-up) for the forward pass
(inference mode) and the train step (``value_and_grad`` of the loss with
batch norm in training mode, then an SGD update), beside the whole network's
multiply-add ratio (dense / compact, from :mod:`compact_jax.report`) and the
train step's floating-point-operation ratio as XLA counts it in the two
compiled programs (``Compiled.cost_analysis()``; ``nan`` where the backend
gives no count), what the train-step speed-up should be read against. It
can be below the forward MAC ratio: the dense network skips its first
convolution's input gradient, while a compact first layer with learned
parameters on its input side (FDC3D's transform) must compute it; and a
method that generates its kernel on every call adds that work. The
dense baseline and the layers a policy leaves dense run through
:func:`compact_jax.conv.conv` (``compact_jax.dense``), so that on CPU the 3-D
convolutions of both sides take the faster frames lowering.
Networks run in float32 and in bfloat16 (the models' computation dtype;
parameters stay float32).

Shapes scale with the backend: small batches and clips on CPU, the papers'
sizes on an accelerator. ``COMPACT_JAX_BENCH_TINY=1`` (or ``tiny=True``)
shrinks every network for a smoke run.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from compact_jax import compress, models
from compact_jax.bench.timing import print_table, time_jitted
from compact_jax.report import make_report, get_preset

__all__ = [
    "Network", "NETWORKS", "network_rows", "main", "dense_model", "compress_variant", "compile_steps",
    "input_shape", "interleaved_medians", "select", "xla_flops",
]

TINY_ENV = "COMPACT_JAX_BENCH_TINY"
HEADER = (
    "network", "dtype", "method", "fwd ms", "train ms", "fwd speed-up", "train speed-up", "MAC ratio",
    "train FLOP ratio",
)


_ALL_DENSE = compress.Rule(method="dense", optional=True)


def _per_channel(fraction: float) -> Callable[[Any], int]:
    return lambda layer: max(1, int(layer.in_features * fraction))


def _basis(splits: int, fraction: float) -> compress.Policy:
    return compress.Policy(name=f"basis s={splits} m=c*{fraction:g}", rules=[
        compress.Rule(path="stem_conv", method="dense"),
        compress.Rule(kernel=">1", method="basis", options={
            "split_size": lambda layer: layer.in_features // splits,
            "num_basis": _per_channel(fraction),
        }),
    ])


def _series(family: str) -> compress.Policy:
    return compress.Policy(name=family, rules=[
        compress.Rule(path="stem_conv", method="dense"),
        compress.Rule(kernel=">1", method=family, options={"harmonics": 2}),
    ])


@dataclasses.dataclass(frozen=True)
class Network:
    """One benchmarked network.

    Attributes:
      model: a :data:`compact_jax.models.MODELS` name.
      kwargs: constructor overrides.
      tiny_kwargs: overrides for the smoke run (narrower layers).
      shapes: ``{"cpu", "accelerator", "tiny"}`` -> input shape ``(N, ..., C)``.
      methods: label -> compression policy.
      classifier: whether the output is logits (cross-entropy loss) or an
        image (mean squared error).
    """

    model: str
    kwargs: dict
    tiny_kwargs: dict
    shapes: dict
    methods: dict
    classifier: bool = True


def _networks() -> tuple[Network, ...]:
    return (
        Network(
            "resnet18_cifar", {}, {},
            {"cpu": (32, 32, 32, 3), "accelerator": (256, 32, 32, 3), "tiny": (2, 8, 8, 3)},
            {
                "filtermap": get_preset("filtermap").policy,
                "basis s=2 m=c/4": _basis(2, 1 / 4),
                "basis s=1 m=c/2": _basis(1, 1 / 2),
                "cosine N=2": _series("cosine"),
                "chebyshev N=2": _series("chebyshev"),
            },
        ),
        Network(
            "edsr_8_128", {"scale": 2}, {"features": 32, "num_blocks": 2},
            {"cpu": (4, 48, 48, 3), "accelerator": (16, 48, 48, 3), "tiny": (1, 8, 8, 3)},
            {"basis m=27": get_preset("basis-edsr8-27").policy},
            classifier=False,
        ),
        Network(
            "resnet3d_18", {"num_classes": 101}, {"widths": (16, 32, 64, 128), "stage_sizes": (1, 1, 1, 1)},
            {"cpu": (2, 8, 64, 64, 3), "accelerator": (8, 16, 112, 112, 3), "tiny": (1, 4, 16, 16, 3)},
            {"fdc3d (1/4, 1/3)": get_preset("fdc3d-2x").policy,
             "fdc3d (5/8, 1/3)": get_preset("fdc3d-4x").policy},
        ),
    )


NETWORKS: tuple[Network, ...] = _networks()


def is_tiny() -> bool:
    """Whether ``COMPACT_JAX_BENCH_TINY`` asks for the smoke sizes."""
    return os.environ.get(TINY_ENV, "").strip() not in ("", "0")


def input_shape(net: Network, tiny: bool) -> tuple[int, ...]:
    """The network's input ``(N, *spatial, C)``: smoke, CPU or accelerator size."""
    if tiny:
        return net.shapes["tiny"]
    return net.shapes["cpu" if jax.default_backend() == "cpu" else "accelerator"]


def _step_fns(model: Any, classifier: bool) -> tuple[Callable, Callable]:
    """Jitted ``forward(variables, x)`` and ``train(variables, x) -> variables``."""
    optimizer = optax.sgd(1e-3)

    def forward(variables, x):
        return model.apply(variables, x, train=False)

    def loss(params, rest, x):
        y, updates = model.apply({**rest, "params": params}, x, train=True, mutable=["batch_stats"])
        if classifier:
            logits = y
            labels = jnp.zeros(logits.shape[0], jnp.int32)
            value = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()
        else:
            value = jnp.mean(jnp.square(y.astype(jnp.float32)))
        return value, updates

    def train(variables, x):
        params = variables["params"]
        rest = {k: v for k, v in variables.items() if k != "params"}
        (_, updates), grads = jax.value_and_grad(loss, has_aux=True)(params, rest, x)
        change, _ = optimizer.update(grads, optimizer.init(params), params)
        return {**rest, **updates, "params": optax.apply_updates(params, change)}

    return jax.jit(forward), jax.jit(train)


def xla_flops(compiled: Any) -> float:
    """XLA's floating-point operation count of a compiled program (``nan`` if it gives none)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per program
        cost = cost[0] if cost else None
    flops = (cost or {}).get("flops")
    return float(flops) if flops else float("nan")


def compress_variant(trace: compress.ModelTrace, variables: dict, policy: compress.Policy):
    """``(compact model, its variables, MAC ratio)`` of ``policy`` on the traced dense model, fitted
    to its ``variables``.

    Every conv the policy leaves dense runs through ``compact_jax.conv`` too (on CPU its
    3-D convs take the faster frames lowering), in the baseline and in the compact models.
    """
    policy = compress.Policy(name=policy.name, rules=[*policy.rules, _ALL_DENSE])
    plan = compress.resolve(policy, trace)
    plan, params = compress.fit(plan, variables["params"])
    report = make_report(plan)
    return compress.build(plan), {**variables, "params": params}, report.dense_macs / report.compact_macs


def dense_model(net: Network, shape: tuple[int, ...], dtype: Any, tiny: bool) -> tuple[Any, dict, Any]:
    """The network's dense model, its initial variables and its trace (every policy is resolved on it)."""
    kwargs = {**net.kwargs, **(net.tiny_kwargs if tiny else {}), "dtype": dtype}
    model = models.get_model(net.model, **kwargs)
    x = jnp.zeros(shape, jnp.float32)
    variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), x)
    return model, variables, compress.trace_model(model, shape, call_kwargs={"train": False})


def compile_steps(model: Any, variables: dict, x: jax.Array, classifier: bool) -> tuple[Any, Any]:
    """The compiled ``(forward, train step)`` of ``model`` on ``x``: timed as compiled, counted by XLA."""
    return tuple(fn.lower(variables, x).compile() for fn in _step_fns(model, classifier))


def _variants(net: Network, shape: tuple[int, ...], dtype: Any, tiny: bool, methods: dict):
    """``label -> (model, variables, mac_ratio)`` of ``methods`` (label -> policy); the dense model first."""
    _, variables, trace = dense_model(net, shape, dtype, tiny)
    return {
        label: compress_variant(trace, variables, policy)
        for label, policy in {"dense": compress.Policy(name="dense"), **methods}.items()
    }


def select(networks: Sequence[str] | None, methods: Sequence[str] | None) -> list[tuple[Network, dict]]:
    """``(network, {label: policy})`` of the named networks and method labels (``None``: all).

    Raises:
      TypeError: a bare string instead of a sequence of names.
      ValueError: a name that is no network of :data:`NETWORKS`, or a label
        that no selected network has.
    """
    for argument, value in (("networks", networks), ("methods", methods)):
        if isinstance(value, str):
            raise TypeError(f"{argument} must be a sequence of names, got the string {value!r}")
    known = {net.model: net for net in NETWORKS}
    for name in networks or ():
        if name not in known:
            raise ValueError(f"unknown network {name!r}; valid: {', '.join(known)}")
    chosen = [net for net in NETWORKS if networks is None or net.model in networks]
    labels = {label for net in chosen for label in net.methods}
    for label in methods or ():
        if label not in labels and label != "dense":
            raise ValueError(f"unknown method label {label!r} for {[n.model for n in chosen]}; valid: {sorted(labels)}")
    return [
        (net, {label: p for label, p in net.methods.items() if methods is None or label in methods})
        for net in chosen
    ]


def interleaved_medians(fns: dict, x: jax.Array, *, rounds: int, repeats: int) -> dict[str, tuple[float, float]]:
    """``label -> (forward, train step)`` median seconds of ``label -> ((forward, train), variables)``.

    Each round times every variant once, so that all see the same machine load.
    """
    times = {label: ([], []) for label in fns}
    for _ in range(rounds):
        for label, ((forward, train), variables) in fns.items():
            times[label][0].append(time_jitted(forward, variables, x, repeats=repeats))
            times[label][1].append(time_jitted(train, variables, x, repeats=repeats))
    return {label: tuple(statistics.median(t) for t in pair) for label, pair in times.items()}


def network_rows(
    *,
    networks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    dtypes: Sequence[Any] = (jnp.float32, jnp.bfloat16),
    tiny: bool | None = None,
    rounds: int = 3,
    repeats: int = 1,
) -> list[tuple]:
    """Times every network (dense and compressed) and returns the table rows.

    Args:
      networks: model names to run (default: all of :data:`NETWORKS`).
      methods: method labels to run (default: all); dense always runs.
        Unknown names raise ``ValueError`` (:func:`select`).
      dtypes: computation dtypes.
      tiny: smoke sizes; default from ``COMPACT_JAX_BENCH_TINY``.
      rounds: interleaved rounds (each times every variant once); medians
        over rounds are reported.
      repeats: timing repeats inside a round (see :func:`time_jitted`).

    Returns:
      Rows ``(network, dtype, method, fwd_ms, train_ms, fwd_speedup,
      train_speedup, mac_ratio, train_flop_ratio)``; speed-ups and both
      ratios are dense over compact.
    """
    tiny = is_tiny() if tiny is None else tiny
    rows = []
    for net, policies in select(networks, methods):
        shape = input_shape(net, tiny)
        x = jax.random.normal(jax.random.key(1), shape, jnp.float32)
        for dtype in dtypes:
            variants = _variants(net, shape, dtype, tiny, policies)
            fns, flops = {}, {}
            for label, (model, variables, _) in variants.items():
                forward, train = compile_steps(model, variables, x, net.classifier)
                fns[label] = ((forward, train), variables)
                flops[label] = xla_flops(train)
            med = interleaved_medians(fns, x, rounds=rounds, repeats=repeats)
            name = f"{net.model} {tuple(shape)}"
            for label, (fwd, train) in med.items():
                rows.append((
                    name, jnp.dtype(dtype).name, label, 1e3 * fwd, 1e3 * train,
                    med["dense"][0] / fwd, med["dense"][1] / train, variants[label][2],
                    flops["dense"] / flops[label],
                ))
    return rows


def main() -> None:
    device = jax.devices()[0]
    print_table(
        HEADER,
        network_rows(),
        title=(f"Whole networks, dense vs compact ({jax.default_backend()}: {device.device_kind}); "
               "speed-ups and MAC / FLOP ratios are dense / compact, medians of interleaved rounds"),
    )


if __name__ == "__main__":
    main()
