"""The benchmark tables build their rows (tiny shapes; no timing is asserted)."""

import math

import pytest

from compact_jax import filtermap
from compact_jax.bench import basis_paths, fdc3d, series_layers
from compact_jax.bench import timing as _timing
from compact_jax.bench._layers import compare_to_dense


@pytest.fixture(autouse=True)
def _one_call_per_round(monkeypatch):
    monkeypatch.setattr(_timing, "MIN_SECONDS", 0.0)


def _positive(values):
    return all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in values)


def test_compare_to_dense_row():
    spec = filtermap.FilterMapSpec(features=16, in_features=16, kernel_size=(3, 3))
    row = compare_to_dense(filtermap, spec, batch=1, spatial=(6, 6))
    assert _positive([row["fwd_ratio"], row["train_ratio"]])
    assert row["param_ratio"] == 1 / 9 and row["dense_macs"] == 36 * 9 * 16 * 16


def test_series_and_basis_and_fdc3d_rows():
    rows = series_layers.series_rows((("tiny", 8, 6),), batch=1, rounds=1)
    assert [r[1] for r in rows[:2]] == ["CosConv", "ChebConv"] and _positive(rows[0][3:])
    (row,) = basis_paths.basis_rows((basis_paths.Layer("tiny", 1, 6, 8, 2, 3),), rounds=1)
    assert row["mac_ratio"] == 3 / 8 + 2 * 3 / (8 * 9)
    assert _positive([row["recon_fwd"], row["dec_fwd"], row["recon_train"], row["dec_train"]])
    rows = fdc3d.fdc3d_rows(batch=1, frames=4, size=6, channels=8, repeats=1)
    assert len(rows) == 4 and [r[5] for r in rows[2:]] == [2.0, 4.0]


def test_network_rows_at_tiny_sizes(monkeypatch):
    import jax.numpy as jnp

    from compact_jax.bench import networks

    monkeypatch.setenv(networks.TINY_ENV, "1")
    rows = networks.network_rows(networks=("edsr_8_128",), dtypes=(jnp.float32,), rounds=1)
    assert [r[2] for r in rows] == ["dense", "basis m=27"]
    assert rows[0][0] == "edsr_8_128 (1, 8, 8, 3)" and rows[0][5:] == (1.0, 1.0, 1.0, 1.0)
    assert _positive(list(rows[1][3:])) and rows[1][7] > 1.0


def test_xla_flops_is_xlas_count_of_the_program():
    import jax
    import jax.numpy as jnp

    from compact_jax.bench.networks import xla_flops
    from compact_jax.conv import conv

    a, b = jnp.ones((8, 16)), jnp.ones((16, 4))
    assert xla_flops(jax.jit(jnp.matmul).lower(a, b).compile()) == 2 * 8 * 16 * 4
    x, k = jnp.ones((2, 10, 10, 3)), jnp.ones((3, 3, 3, 5))
    compiled = jax.jit(lambda x, k: conv(x, k, padding="VALID", impl="xla")).lower(x, k).compile()
    assert xla_flops(compiled) == 2 * (2 * 8 * 8) * (3 * 3 * 3) * 5  # 2 x positions x taps x outputs


def test_xla_flops_without_a_count_is_nan():
    import math

    from compact_jax.bench.networks import xla_flops

    class NoCount:
        def __init__(self, cost):
            self.cost = cost

        def cost_analysis(self):
            return self.cost

    assert all(math.isnan(xla_flops(NoCount(c))) for c in (None, {}, [], [{}], {"flops": 0.0}))
    assert xla_flops(NoCount([{"flops": 6.0}])) == 6.0


def test_lowering_rows_name_the_auto_choice():
    from compact_jax.bench import conv_lowering

    shapes = {
        "deep": ((1, 2, 2, 128), (3, 3, 128, 128), 1),   # 4 positions <= 128 outputs: patches
        "wide": ((1, 8, 8, 4), (3, 3, 4, 4), 1),          # xla
        "clip": ((1, 3, 6, 6, 2), (3, 3, 3, 2, 2), 1),    # frames
        # An explicit padding: VALID leaves 1 x 2 x 2 positions (patches), SAME would leave 48 (frames).
        "valid": ((1, 3, 4, 4, 4), (3, 3, 3, 4, 4), 1, "VALID"),
    }
    rows = conv_lowering.lowering_rows(shapes, rounds=1)
    assert [r[2] for r in rows] == ["patches", "xla", "frames", "patches"]
    assert all(r[5] >= 1.0 and r[6] >= 1.0 and r[7] in ("yes", "no") for r in rows)


def test_restrict_to_group_compresses_exactly_that_group():
    import jax.numpy as jnp

    from compact_jax import compress, models
    from compact_jax.bench.network_groups import groups_of, restrict_to_group
    from compact_jax.report import get_preset

    model = models.get_model("resnet3d_18", widths=(4, 8, 8, 8), stage_sizes=(1, 1, 1, 1), dtype=jnp.float32)
    shape = (1, 4, 16, 16, 3)
    policy = get_preset("fdc3d-4x").policy
    full = compress.resolve(policy, model, shape)
    methods = {e.path: e.method for e in full.layers}
    groups = groups_of(full)
    assert list(groups) == ["stem_conv", "stage1", "stage2", "stage3", "stage4"]
    assert sum(groups.values()) == sum(m != "dense" for m in methods.values())
    for group in groups:
        plan = compress.resolve(restrict_to_group(policy, group), model, shape)
        inside = {e.path: e.method for e in plan.layers if e.path.split("/")[0] == group}
        outside = [e.method for e in plan.layers if e.path.split("/")[0] != group]
        assert inside == {p: m for p, m in methods.items() if p.split("/")[0] == group}
        assert set(outside) == {"dense"}


def test_restrict_to_group_does_not_take_a_longer_name():
    from types import SimpleNamespace

    from compact_jax import compress
    from compact_jax.bench.network_groups import restrict_to_group

    restricted = restrict_to_group(compress.Policy(rules=[compress.Rule(method="fdc3d")], default="fdc3d"), "stage1")
    assert restricted.default == "fdc3d" and restricted.rules[1].optional
    outside = restricted.rules[0]
    layer = lambda path: SimpleNamespace(path=path, kernel_size=(3, 3, 3), in_features=4)  # noqa: E731
    assert outside.method == "dense"
    assert outside.matches(layer("stage10/block0/conv1")) and outside.matches(layer("stem_conv"))
    assert not outside.matches(layer("stage1/block0/conv1")) and not outside.matches(layer("stage1"))


def test_group_rows_at_tiny_sizes(monkeypatch):
    from compact_jax.bench import network_groups, networks

    monkeypatch.setenv(networks.TINY_ENV, "1")
    rows = network_groups.group_rows(networks=("edsr_8_128",), rounds=1)
    assert [r[2] for r in rows] == ["block0", "block1", network_groups.ALL_GROUPS]
    assert [r[3] for r in rows] == [2, 2, 4]
    # Disjoint groups: XLA's counts of the separately compiled programs add up.
    assert math.isclose(sum(r[6] for r in rows[:-1]), rows[-1][6], rel_tol=1e-9)
    assert all(math.isfinite(v) for r in rows for v in r[4:7])


def test_benchmark_names_are_checked():
    from compact_jax.bench import networks

    picked = networks.select(["resnet3d_18"], ["fdc3d (5/8, 1/3)"])
    assert [(net.model, list(methods)) for net, methods in picked] == [("resnet3d_18", ["fdc3d (5/8, 1/3)"])]
    assert [net.model for net, _ in networks.select(None, None)] == [net.model for net in networks.NETWORKS]
    with pytest.raises(ValueError, match="unknown network 'resnet3d'.*resnet3d_18"):
        networks.select(["resnet3d"], None)
    with pytest.raises(ValueError, match="unknown method label 'fdc3d'.*fdc3d \\(1/4, 1/3\\)"):
        networks.select(["resnet3d_18"], ["fdc3d"])
    with pytest.raises(TypeError, match="networks must be a sequence of names.*'resnet3d_18'"):
        networks.select("resnet3d_18", None)


def test_time_per_flops_saved_needs_operations_saved():
    from compact_jax.bench.network_groups import MIN_FLOPS_SAVED_PCT, time_per_flops_saved

    assert time_per_flops_saved(8.0, 27.0) == 8.0 / 27.0
    assert time_per_flops_saved(-1.0, MIN_FLOPS_SAVED_PCT) == -1.0 / MIN_FLOPS_SAVED_PCT
    # FilterMap saves ~1e-4 % of the operations: a quotient of time noise over ~0 is no number.
    assert all(math.isnan(time_per_flops_saved(1.0, f)) for f in (0.000106, 0.0, -9.7))
