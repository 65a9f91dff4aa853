"""Flax's own tools on the compact modules: ``nn.tabulate``, ``nnx.tabulate``,
``flax.linen.Conv``'s fields (``kernel_init``, ``mask``, ``promote_dtype``), the
``path`` -> ``execution_path`` rename and NNX partitioning metadata.

Zoo models: the quick suite tabulates every model with one compact method (rotating, as in
``test_param_paths``) plus every method on the small models and two built policies; every
other model, method and policy is marked ``slow`` (``pytest -m slow``).
"""

import dataclasses
import os
import re
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from flax.linen.dtypes import promote_dtype as linen_promote

import param_paths
from compact_jax import compress, linen, models
from compact_jax import nnx as cnnx
from compact_jax.basis import BasisSpec
from compact_jax.protocol import ConvSpec, Method

#: method -> (own fields, kernel_size) of a small layer 4 -> 8 channels.
CASES = {
    "dense": ({}, (3, 3)),
    "filtermap": ({"grid": (2, 2, 2), "map_strides": (1, 1, 2)}, (3, 3)),
    "basis": ({"num_basis": 4}, (3, 3)),
    "cosine": ({"harmonics": 2}, (3, 3)),
    "chebyshev": ({"harmonics": 2}, (3, 3)),
    "fdc3d": ({}, (3, 3, 3)),
}
IN, OUT = 4, 8
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _text(table: str) -> str:
    return _ANSI.sub("", table)


def _input(kernel_size, key=1):
    return jax.random.normal(jax.random.key(key), (2,) + (6,) * len(kernel_size) + (IN,))


def _spec(name):
    own, ks = CASES[name]
    return linen.conv_class(name).method.spec(features=OUT, in_features=IN, kernel_size=ks, **own)


def _reference_conv(x, kernel, **kwargs):
    nd = kernel.ndim - 2
    spatial = "DHW"[-nd:]
    dims = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    return jax.lax.conv_general_dilated(x, kernel, (1,) * nd, "SAME", dimension_numbers=dims,
                                        precision="highest", **kwargs)


def _total(table: str) -> int:
    match = re.search(r"Total Parameters: ([\d,]+)", table)
    assert match, table[-500:]
    return int(match.group(1).replace(",", ""))


# --- nn.tabulate / nnx.tabulate of each module ----------------------------------------------------

@pytest.mark.parametrize("name", CASES)
def test_linen_tabulate_lists_the_module_and_its_params(name):
    own, ks = CASES[name]
    spec = _spec(name)
    module = linen.conv_class(name)(features=OUT, kernel_size=ks, **own)
    table = _text(nn.tabulate(module, jax.random.key(0), console_kwargs={"width": 300})(_input(ks)))
    assert _total(table) == linen.conv_class(name).method.num_params(spec) + OUT
    params = jax.eval_shape(module.init, jax.random.key(0), _input(ks))["params"]
    for param in params:
        assert f"{param}:" in table
    assert "a/u/t/o" not in table


def test_linen_tabulate_lists_each_layer_of_a_network_with_a_shared_basis():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            shared = linen.SharedBasis(num_basis=4, in_features=IN, kernel_size=(3, 3), name="shared")
            x = linen.BasisConv(features=IN, kernel_size=(3, 3), basis=shared, allow_larger=True, name="first")(x)
            return linen.BasisConv(features=OUT, kernel_size=(3, 3), num_basis=4, execution_path="decomposed",
                                   name="second")(x)

    table = _text(nn.tabulate(Net(), jax.random.key(0), depth=None, console_kwargs={"width": 300})(_input((3, 3))))
    rows = {line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│")}
    assert {"first", "second", "shared"} <= rows
    # basis 3x3x4x4 shared; coef 4x4 and 4x8 plus two biases; the second layer's own basis.
    assert _total(table) == 144 + (16 + 4) + (144 + 32 + 8)


@pytest.mark.parametrize("name", CASES)
def test_nnx_tabulate_leaves_the_class_usable(name):
    own, ks = CASES[name]
    cls = cnnx.conv_class(name)
    module = cls(IN, OUT, ks, rngs=nnx.Rngs(0), **own)
    table = _text(nnx.tabulate(module, _input(ks), console_kwargs={"width": 300}))
    assert f"{cls.method.num_params(_spec(name)) + OUT:,}" in table
    assert "compact_params" not in table  # internal calls are no rows of their own
    again = cls(IN, OUT, ks, rngs=nnx.Rngs(0), **own)  # raised TypeError after nnx.tabulate before
    np.testing.assert_allclose(again(_input(ks)), module(_input(ks)), rtol=1e-6, atol=1e-6)


def test_nnx_tabulate_with_a_shared_basis():
    shared = cnnx.SharedBasis(IN, 4, (3, 3), rngs=nnx.Rngs(0))
    layer = cnnx.BasisConv(IN, OUT, (3, 3), basis=shared, rngs=nnx.Rngs(1))
    nnx.tabulate(layer, _input((3, 3)))
    cnnx.BasisConv(IN, OUT, (3, 3), basis=shared, rngs=nnx.Rngs(1))(_input((3, 3)))


# --- nn.tabulate of every zoo network -------------------------------------------------------------

_SMALL = ("resnet20", "resnet3d_18")
_POLICIES = ("basis_shared", "fdc3d_pruned")  # built models in the quick suite: shared bases, pruned FDC3D
_PARAM_NAMES = {"dense": ("kernel",), "filtermap": ("filtermap",), "basis": ("coef",), "cos": ("coeffs",),
                "cheb": ("coeffs",), "fdc3d": ("coeffs",)}


def _zoo_cases():
    """Every zoo entry that builds; outside the quick selection, marked slow."""
    import test_param_paths

    chosen, selected = [], set(test_param_paths._selected())
    for kind, name, method in param_paths.cases():
        key = f"{kind}:{name}:{method}"
        if method == "flax" or "error" in test_param_paths.EXPECTED[key]:
            continue
        quick = method in _POLICIES if kind == "policy" else name in _SMALL or key in selected
        chosen.append(key if quick else pytest.param(key, marks=pytest.mark.slow))
    return chosen


def _zoo_model(kind, name, method):
    shape = param_paths.input_shape(name)
    if kind == "policy":
        policy = compress.Policy(rules=param_paths.POLICIES[method])
        return compress.build(compress.resolve(policy, models.get_model(name), shape)), shape
    from train.models import conv_factory

    return models.get_model(name, conv=conv_factory(method, **param_paths.FACTORY_METHODS[method])), shape


@pytest.mark.parametrize("key", _zoo_cases())
def test_linen_tabulate_of_every_zoo_network(key):
    import test_param_paths

    kind, name, method = key.split(":")
    expected = test_param_paths.EXPECTED[key]  # paths and shapes captured before this change
    model, shape = _zoo_model(kind, name, method)
    table = _text(nn.tabulate(model, jax.random.key(0), depth=None, console_kwargs={"width": 400})(
        jnp.zeros(shape), train=False))
    assert _total(table) >= sum(int(np.prod(s)) for s in expected.values())
    rows = {line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│")}
    if kind == "policy":
        names = ("filtermap", "coeffs", "coef", "basis")
        prefix = "compact/"  # the built model runs the dense model in a child scope named "compact"
    else:
        names, prefix = _PARAM_NAMES[method], ""
    layers = {p.rsplit("/", 1)[0] for p in expected if p.rsplit("/", 1)[1] in names}
    assert layers
    missing = sorted(layer for layer in layers if layer not in rows and prefix + layer not in rows)
    assert not missing, f"no tabulate row for {missing[:5]}"


# --- the path -> execution_path rename ------------------------------------------------------------

def test_basis_spec_path_is_deprecated():
    with pytest.warns(DeprecationWarning, match="'path' is deprecated; use 'execution_path'"):
        spec = BasisSpec(features=OUT, in_features=IN, kernel_size=(3, 3), num_basis=4, path="decomposed")
    assert spec.execution_path == "decomposed"
    with pytest.warns(DeprecationWarning, match="BasisSpec.path is deprecated"):
        assert spec.path == "decomposed"
    with pytest.raises(TypeError, match="both 'path' and 'execution_path'"):
        BasisSpec(features=OUT, in_features=IN, kernel_size=(3, 3), num_basis=4, path="auto",
                  execution_path="decomposed")


def test_linen_and_nnx_basis_conv_take_the_old_path_keyword():
    x = _input((3, 3))
    new = linen.BasisConv(features=OUT, kernel_size=(3, 3), num_basis=4, execution_path="decomposed")
    with pytest.warns(DeprecationWarning, match="BasisConv: 'path' is deprecated"):
        old = linen.BasisConv(features=OUT, kernel_size=(3, 3), num_basis=4, path="decomposed")
    assert old.execution_path == "decomposed"
    with pytest.raises(ValueError, match="unbound"):
        old.path  # flax's own Module.path again, not a field
    variables = new.init(jax.random.key(0), x)
    np.testing.assert_array_equal(old.apply(variables, x), new.apply(variables, x))
    with pytest.warns(DeprecationWarning, match="BasisConv: 'path' is deprecated"):
        layer = cnnx.BasisConv(IN, OUT, (3, 3), num_basis=4, path="reconstruct", rngs=nnx.Rngs(0))
    assert layer.spec.execution_path == "reconstruct"


def test_rule_options_and_conv_factory_take_the_old_path_name():
    from train.models import conv_factory

    with pytest.warns(DeprecationWarning, match="'path' is deprecated"):
        rule = compress.Rule(method="basis", options={"num_basis": 4, "path": "decomposed"})
    assert dict(rule.options) == {"num_basis": 4, "execution_path": "decomposed"}
    with pytest.warns(DeprecationWarning, match="'path' is deprecated"):
        factory = conv_factory("basis", num_basis=4, path="decomposed")
    assert factory(OUT, (3, 3)).execution_path == "decomposed"


@pytest.mark.parametrize("field", ["path", "scope", "variables"])
def test_a_spec_field_shadowing_a_flax_module_attribute_is_refused(field):
    spec_cls = dataclasses.make_dataclass("ShadowSpec", [(field, str, dataclasses.field(default="x"))],
                                          bases=(ConvSpec,), frozen=True, kw_only=True)
    record = Method(name="shadow", spec_cls=spec_cls, init=lambda *a, **k: {}, build_kernel=lambda *a, **k: None,
                    num_params=lambda spec: 0, fit=lambda *a: {})
    with pytest.raises(ValueError, match=f"'{field}' would shadow flax.linen.Module.{field}"):
        type("ShadowConv", (linen.CompactConv,), {}, method=record)


# --- kernel_init, mask, promote_dtype ---------------------------------------------------------------

def _representable_kernel(name):
    """A dense kernel the method represents exactly (built from other compact params)."""
    record, spec = linen.conv_class(name).method, _spec(name)
    return record.build_kernel(record.init(jax.random.key(3), spec), spec)


@pytest.mark.parametrize("name", CASES)
def test_kernel_init_is_fitted_into_the_compact_params(name):
    own, ks = CASES[name]
    kernel = _representable_kernel(name)
    calls = []

    def kernel_init(key, shape, dtype):
        calls.append((tuple(shape), dtype))
        return kernel

    x = _input(ks)
    module = linen.conv_class(name)(features=OUT, kernel_size=ks, kernel_init=kernel_init, **own)
    variables = jax.jit(module.init)(jax.random.key(0), x)
    assert calls == [(kernel.shape, jnp.float32)]
    np.testing.assert_allclose(module.apply(variables, x), _reference_conv(x, kernel), atol=2e-5)
    layer = cnnx.conv_class(name)(IN, OUT, ks, kernel_init=kernel_init, rngs=nnx.Rngs(0), **own)
    np.testing.assert_allclose(layer(x), _reference_conv(x, kernel), atol=2e-5)


def test_kernel_init_errors():
    x = _input((3, 3))
    shared = linen.SharedBasis(num_basis=4, in_features=IN, kernel_size=(3, 3), parent=None)
    with pytest.raises(ValueError, match="kernel_init fits a layer's own basis"):
        linen.BasisConv(features=OUT, kernel_size=(3, 3), basis=shared, kernel_init=nn.initializers.lecun_normal()
                        ).init(jax.random.key(0), x)
    with pytest.raises(TypeError, match="kernel_init must be an initializer"):
        linen.CosConv(features=OUT, kernel_size=(3, 3), kernel_init="lecun").init(jax.random.key(0), x)
    with pytest.raises(TypeError, match="param_sharding"):
        cnnx.CosConv(IN, OUT, (3, 3), kernel_init=nnx.with_partitioning(nnx.initializers.lecun_normal(),
                                                                        (None, None, None, "model")),
                     rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name", ["cosine", "fdc3d", "basis"])
def test_mask_multiplies_the_generated_kernel(name):
    own, ks = CASES[name]
    x = _input(ks)
    record, spec = linen.conv_class(name).method, _spec(name)
    mask = jax.random.bernoulli(jax.random.key(5), 0.5, spec.kernel_shape).astype(jnp.float32)
    module = linen.conv_class(name)(features=OUT, kernel_size=ks, mask=mask, use_bias=False, **own)
    variables = module.init(jax.random.key(0), x)
    kernel = record.build_kernel(variables["params"], spec)
    np.testing.assert_allclose(module.apply(variables, x), _reference_conv(x, kernel * mask), atol=2e-5)
    layer = cnnx.conv_class(name)(IN, OUT, ks, mask=mask, use_bias=False, rngs=nnx.Rngs(0), **own)
    params = {n: getattr(layer, n)[...] for n in layer.param_names}
    np.testing.assert_allclose(layer(x), _reference_conv(x, record.build_kernel(params, spec) * mask), atol=2e-5)


def test_mask_errors():
    x = _input((3, 3))
    with pytest.raises(ValueError, match=r"mask must have the generated kernel's shape \(3, 3, 4, 8\)"):
        linen.CosConv(features=OUT, kernel_size=(3, 3), mask=jnp.ones((3, 3, 4))).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="mask needs the layer's single generated kernel"):
        linen.BasisConv(features=OUT, kernel_size=(3, 3), num_basis=2, coef_kernel_size=3,
                        mask=jnp.ones((3, 3, 4, 8))).init(jax.random.key(0), x)


def test_promote_dtype_hook():
    x = _input((3, 3))
    seen = []

    def to_bf16(*args, dtype=None, inexact=True):
        seen.append(len(args))
        return linen_promote(*args, dtype=jnp.bfloat16, inexact=inexact)

    module = linen.BasisConv(features=OUT, kernel_size=(3, 3), num_basis=4, promote_dtype=to_bf16)
    variables = module.init(jax.random.key(0), x)
    assert module.apply(variables, x).dtype == jnp.bfloat16
    assert seen[-1] == 4  # input, basis, coef, bias
    assert variables["params"]["coef"].dtype == jnp.float32
    # flax's default: parameters and input promoted together (float32 here), or to dtype.
    default = linen.CosConv(features=OUT, kernel_size=(3, 3), harmonics=2)
    v = default.init(jax.random.key(0), x)
    assert default.apply(v, x.astype(jnp.bfloat16)).dtype == jnp.float32
    assert default.clone(dtype=jnp.bfloat16).apply(v, x).dtype == jnp.bfloat16
    layer = cnnx.CosConv(IN, OUT, (3, 3), harmonics=2, rngs=nnx.Rngs(0),
                         promote_dtype=lambda args, dtype=None, inexact=True: tuple(
                             None if a is None else jnp.asarray(a, jnp.bfloat16) for a in args))
    assert layer(x).dtype == jnp.bfloat16


# --- NNX partitioning metadata ---------------------------------------------------------------------

def test_param_sharding_errors():
    with pytest.raises(ValueError, match=r"name \['kernel'\], not parameters of this layer.*\['coeffs'\]"):
        cnnx.CosConv(IN, OUT, (3, 3), param_sharding={"kernel": (None, None, None, "model")}, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="param_sharding\\['coeffs'\\] must be a tuple of mesh axis names"):
        cnnx.CosConv(IN, OUT, (3, 3), param_sharding={"coeffs": "model"}, rngs=nnx.Rngs(0))
    with nnx.use_eager_sharding(False):
        with pytest.raises(ValueError, match="'coeffs' has 4 dims .* names 2"):
            cnnx.CosConv(IN, OUT, (3, 3), param_sharding={"coeffs": (None, "model")}, rngs=nnx.Rngs(0))
        layer = cnnx.BasisConv(IN, OUT, (3, 3), num_basis=4, rngs=nnx.Rngs(0),
                               param_metadata={"coef": {"out_sharding": (None, None, None, "model"), "tag": 1}})
    assert layer.coef.get_metadata()["tag"] == 1
    assert nnx.get_partition_spec(nnx.state(layer))["coef"].get_value() == jax.sharding.PartitionSpec(
        None, None, None, "model")


_SHARDED = textwrap.dedent("""
    import jax, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from flax import nnx
    from compact_jax import nnx as cnnx

    MODEL = (None, None, None, "model")

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.a = cnnx.CosConv(4, 8, (3, 3), harmonics=2, param_sharding={"coeffs": MODEL},
                                  bias_metadata={"out_sharding": ("model",)}, rngs=rngs)
            shared = cnnx.SharedBasis(8, 4, (3, 3), basis_metadata={"out_sharding": MODEL}, rngs=rngs)
            self.b = cnnx.BasisConv(8, 8, (3, 3), basis=shared, param_sharding={"coef": MODEL}, rngs=rngs)

        def __call__(self, x):
            return self.b(jax.nn.relu(self.a(x)))

    assert jax.device_count() == 8
    x = jax.random.normal(jax.random.key(1), (8, 6, 6, 4))
    with nnx.use_eager_sharding(False):
        reference = Net(nnx.Rngs(0))(x)
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    with jax.set_mesh(mesh):
        model = Net(nnx.Rngs(0))
        y = nnx.jit(lambda m, x: m(x))(model, jax.device_put(x, NamedSharding(mesh, P("data"))))
    assert model.a.coeffs[...].sharding.spec == P(*MODEL), model.a.coeffs[...].sharding
    assert model.a.bias[...].sharding.spec == P("model")
    assert model.b.coef[...].sharding.spec == P(*MODEL)
    assert model.b.shared_basis.basis[...].sharding.spec == P(*MODEL)
    assert len(model.b.coef[...].sharding.device_set) == 8
    np.testing.assert_allclose(np.asarray(y), np.asarray(reference), rtol=1e-5, atol=1e-5)
    print("sharded ok")
""")


def test_sharded_nnx_model_runs_under_jit_on_8_devices(tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(_SHARDED)
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8".strip()
    env["JAX_PLATFORMS"] = "cpu"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-W", "error", str(script)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sharded ok" in done.stdout
