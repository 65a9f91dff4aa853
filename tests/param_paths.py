"""Parameter tree paths and shapes of every zoo model with every method.

``python tests/param_paths.py`` writes ``tests/data/param_paths.json`` (run once,
on a known-good tree); ``tests/test_param_paths.py`` compares today's trees
against it, so a refactor cannot silently move a parameter (checkpoints load by
path). Trees are traced abstractly (``jax.eval_shape``): no compute.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp

from compact_jax import compress, models

PATH = os.path.join(os.path.dirname(__file__), "data", "param_paths.json")

SR = ("edsr", "edsr_8_128", "srresnet")
VOLUME = ("resnet3d_18", "resnet3d_34", "resnet3d_50", "resnet3d_101", "resunet3d")

#: Method -> Linen module fields of the conv factory (``train.models.conv_factory``).
FACTORY_METHODS = {
    "dense": {},
    "filtermap": {"map_strides": (2, 2, 1)},
    "basis": {"num_basis": 8},
    "cos": {"harmonics": 2},
    "cheb": {"harmonics": 2},
    "fdc3d": {},
}

#: (model, policy name, rules) built through ``compact_jax.compress``.
_STEM = compress.Rule(path="stem_conv", method="dense")
POLICIES = {
    "filtermap": [_STEM, compress.Rule(kernel=">1", method="filtermap")],
    "cosine": [_STEM, compress.Rule(kernel=">1", method="cosine", options={"harmonics": 2})],
    "chebyshev": [_STEM, compress.Rule(kernel=">1", method="chebyshev", options={"harmonics": 2})],
    "basis_shared": [_STEM, compress.Rule(path="stage1/*", kernel=">1", method="basis", options={"num_basis": 8},
                                   share="{stage}"),
                     compress.Rule(kernel=">1", method="basis", options={"num_basis": 8, "splits": 2})],
    "fdc3d_pruned": [compress.Rule(kernel=">1", method="fdc3d", options={"p_c": 0.5, "p_t": 0.3})],
}
POLICY_MODELS = {"resnet20": ("filtermap", "cosine", "chebyshev", "basis_shared"),
                 "resnet3d_18": ("fdc3d_pruned",)}


def input_shape(name: str) -> tuple[int, ...]:
    if name in SR:
        return (1, 8, 8, 3)
    if name == "resunet3d":
        return (1, 8, 16, 16, 1)
    if name in VOLUME:
        return (1, 4, 16, 16, 3)
    return (1, 32, 32, 3)


def _paths(tree) -> dict[str, list[int]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(k.key for k in path): list(leaf.shape) for path, leaf in leaves}


def _trace(model, shape) -> dict[str, list[int]]:
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return _paths(jax.eval_shape(lambda k, x: model.init(k, x, train=False), jax.random.key(0), x)["params"])


def factory_case(name: str, method: str) -> dict:
    """Param paths of ``name`` built with ``method``'s conv factory, or the error it raises."""
    from train.models import conv_factory

    try:
        model = models.get_model(name) if method == "flax" else models.get_model(
            name, conv=conv_factory(method, **FACTORY_METHODS[method]))
        return _trace(model, input_shape(name))
    except (ValueError, TypeError) as err:
        return {"error": type(err).__name__}


def policy_case(name: str, policy: str) -> dict:
    """Param paths of ``name`` compressed by ``POLICIES[policy]``."""
    shape = input_shape(name)
    plan = compress.resolve(compress.Policy(rules=POLICIES[policy]), models.get_model(name), shape)
    return _trace(compress.build(plan), shape)


def cases() -> list[tuple[str, str, str]]:
    """``(kind, model, method-or-policy)`` of every snapshot entry."""
    out = []
    for name in models.MODELS:
        for method in ("flax", *FACTORY_METHODS):
            out.append(("factory", name, method))
    for name, policies in POLICY_MODELS.items():
        out += [("policy", name, p) for p in policies]
    return out


def compute(kind: str, name: str, method: str) -> dict:
    return factory_case(name, method) if kind == "factory" else policy_case(name, method)


def main() -> None:
    import time

    data = {}
    for k, n, m in cases():
        start = time.perf_counter()
        data[f"{k}:{n}:{m}"] = compute(k, n, m)
        print(f"{k}:{n}:{m} {time.perf_counter() - start:.1f} s")
    with open(PATH, "w") as f:  # one line per case
        f.write("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(data[k], sort_keys=True, separators=(',', ':'))}"
                                    for k in sorted(data)) + "\n}\n")
    print(f"wrote {len(data)} entries to {PATH}")


if __name__ == "__main__":
    main()
