"""A method defined here, registered in one line, works everywhere the built-ins do."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import compact_jax as cj
from compact_jax import compress, linen, protocol, registry, report
from compact_jax import nnx as cnnx
from test_protocol import check_protocol


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToySpec(protocol.ConvSpec):
    """Kernel = ``scale * pattern + U V`` with a fixed pattern and a rank-``rank`` term."""

    rank: int = 2


def _pattern(spec):
    """A fixed, full-rank pattern (the same for every call)."""
    return jax.random.normal(jax.random.key(42), spec.kernel_shape, jnp.float32)


def _init(key, spec, *, dtype=jnp.float32):
    k1, k2 = jax.random.split(key)
    rows = int(np.prod(spec.kernel_shape[:-1]))
    return {"scale": jnp.ones((), dtype), "u": 0.1 * jax.random.normal(k1, (rows, spec.rank), dtype),
            "v": 0.1 * jax.random.normal(k2, (spec.rank, spec.features), dtype)}


def _build_kernel(params, spec, *, precision=None):
    low = jnp.matmul(params["u"], params["v"], precision=precision).reshape(spec.kernel_shape)
    return params["scale"] * _pattern(spec) + low


def _num_params(spec):
    return 1 + int(np.prod(spec.kernel_shape[:-1])) * spec.rank + spec.rank * spec.features


def _low_rank(matrix, rank):
    u, s, vt = jnp.linalg.svd(matrix, full_matrices=False)
    return u[:, :rank] * s[None, :rank], vt[:rank]


def _fit(kernel, spec):
    """Least squares by alternating minimisation: the scale by projection on the pattern,
    the rest by the best rank-r approximation (exact for a kernel the method generated)."""
    pattern = _pattern(spec).reshape(-1, spec.features)
    matrix = kernel.reshape(-1, spec.features)

    def step(_, scale):
        u, v = _low_rank(matrix - scale * pattern, spec.rank)
        return jnp.sum((matrix - u @ v) * pattern) / jnp.sum(pattern**2)

    scale = jax.lax.fori_loop(0, 200, step, jnp.zeros((), kernel.dtype))
    u, v = _low_rank(matrix - scale * pattern, spec.rank)
    return {"scale": scale, "u": u, "v": v}


TOY = protocol.Method(name="toy", spec_cls=ToySpec, init=_init, build_kernel=_build_kernel,
                      num_params=_num_params, fit=_fit, describe=lambda spec: f"rank {spec.rank}",
                      description="a scaled fixed pattern plus a low-rank term")


@pytest.fixture
def toy():
    with registry.registered(TOY):  # the one line
        yield TOY


def test_registration_is_one_line_and_reversible(toy):
    assert cj.METHODS["toy"] is toy and cj.get_method("toy") is toy
    with pytest.raises(ValueError, match="'toy' is already taken"):
        cj.register_method(toy)
    with pytest.raises(ValueError, match="did you mean 'toy'"):
        cj.get_method("tooy")


def test_toy_is_unregistered_outside_the_fixture():
    assert "toy" not in cj.METHODS


def test_toy_passes_the_protocol_checks(toy):
    check_protocol(toy, ToySpec(features=6, in_features=4, kernel_size=(3, 3), rank=2))


def test_toy_in_linen_and_nnx(toy):
    cls = linen.conv_class("toy")
    conv_fields = [f.name for f in dataclasses.fields(linen.ConvFields) if f.name not in ("parent", "name")]
    assert [f.name for f in dataclasses.fields(cls)][len(conv_fields)] == "rank"
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 4))
    module = cls(features=5, kernel_size=(3, 3), rank=1, strides=2)
    variables = module.init(jax.random.key(0), x)
    y = module.apply(variables, x)
    spec = ToySpec(features=5, in_features=4, kernel_size=(3, 3), rank=1)
    kernel = _build_kernel(variables["params"], spec)
    ref = nn.Conv(5, (3, 3), strides=2).apply({"params": {"kernel": kernel, "bias": variables["params"]["bias"]}}, x)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert linen.conv_class(toy).from_spec(spec, strides=2).spec(4) == spec
    twin = cnnx.conv_class("toy")(4, 5, (3, 3), 2, rank=1, rngs=nnx.Rngs(0))
    cnnx.load_linen_params(twin, variables["params"])
    np.testing.assert_allclose(twin(x), y, rtol=1e-5, atol=1e-5)


def test_toy_through_compress_and_report(toy):
    model = cj.models.get_model("resnet20", stage_sizes=(1, 1, 1))
    policy = compress.Policy(rules=[compress.Rule(path="stage2/*", kernel="3x3", method="toy", options={"rank": 2})])
    plan = compress.resolve(policy, model, (1, 16, 16, 3))
    toys = [e for e in plan.layers if e.method == "toy"]
    assert toys and all(e.spec == ToySpec(**{**_shape(e.layer), "rank": 2}) for e in toys)
    x = jnp.ones((1, 16, 16, 3))
    dense = model.init(jax.random.key(0), x, train=False)
    # A dense model whose toy layers hold toy kernels: fitting is exact, so fold(fit(W)) == W.
    params = jax.tree.map(lambda a: a, dense["params"])
    for e in toys:
        node = params
        for part in e.path.split("/"):
            node = node[part]
        node["kernel"] = _build_kernel(_init(jax.random.key(3), e.spec), e.spec)
    fitted_plan, compact = compress.fit(plan, params)
    folded = compress.fold(fitted_plan, compact)
    for a, b in zip(jax.tree.leaves(folded), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    built = compress.build(fitted_plan)
    y = built.apply({**dense, "params": compact}, x, train=False)
    np.testing.assert_allclose(y, model.apply({**dense, "params": params}, x, train=False), rtol=1e-3, atol=1e-3)
    text = report.make_report(plan).table()
    assert "toy" in text and "rank 2" in text


def _shape(layer):
    return dict(features=layer.features, in_features=layer.in_features, kernel_size=layer.kernel_size,
                feature_group_count=layer.feature_group_count)
