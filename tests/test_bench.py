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

    from compact_jax.bench.networks import _xla_flops
    from compact_jax.conv import conv

    a, b = jnp.ones((8, 16)), jnp.ones((16, 4))
    assert _xla_flops(jax.jit(jnp.matmul).lower(a, b).compile()) == 2 * 8 * 16 * 4
    x, k = jnp.ones((2, 10, 10, 3)), jnp.ones((3, 3, 3, 5))
    compiled = jax.jit(lambda x, k: conv(x, k, padding="VALID", impl="xla")).lower(x, k).compile()
    assert _xla_flops(compiled) == 2 * (2 * 8 * 8) * (3 * 3 * 3) * 5  # 2 x positions x taps x outputs


def test_xla_flops_without_a_count_is_nan():
    import math

    from compact_jax.bench.networks import _xla_flops

    class NoCount:
        def __init__(self, cost):
            self.cost = cost

        def cost_analysis(self):
            return self.cost

    assert all(math.isnan(_xla_flops(NoCount(c))) for c in (None, {}, [], [{}], {"flops": 0.0}))
    assert _xla_flops(NoCount([{"flops": 6.0}])) == 6.0


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
