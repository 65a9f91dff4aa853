"""Separable max pooling (``compact_jax.models._pooling``) against NumPy loops and flax."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from compact_jax.models._common import max_pool
from compact_jax.models._pooling import max_pool_separable

CASES = [
    ((2, 9, 8, 3), (3, 3), (2, 2), (1, 1)),
    ((1, 5, 9, 7, 2), (3, 3, 3), (2, 2, 2), (1, 1, 1)),
    ((2, 8, 8, 4), (2, 2), (2, 2), (0, 0)),
    ((2, 7, 5), (2,), (2,), (0,)),
    ((1, 6, 7, 3), (3, 1), (1, 2), (2, 0)),  # unequal per-axis settings, a size-1 window
]


def _numpy_pool(x, windows, strides, pads, dy):
    """Value and gradient (to the first maximum of each window in row-major order)."""
    nd = x.ndim - 2
    padded = np.pad(x, [(0, 0)] + [(p, p) for p in pads] + [(0, 0)], constant_values=-np.inf)
    out = [(s + 2 * p - w) // st + 1 for s, w, st, p in zip(x.shape[1:-1], windows, strides, pads)]
    y = np.zeros((x.shape[0], *out, x.shape[-1]), x.dtype)
    dx = np.zeros(padded.shape, x.dtype)
    for index in np.ndindex(x.shape[0], *out):
        n, pos = index[0], index[1:]
        start = [o * st for o, st in zip(pos, strides)]
        block = padded[(n, *(slice(s, s + w) for s, w in zip(start, windows)))]
        flat = block.reshape(-1, x.shape[-1])
        y[index] = flat.max(axis=0)
        for c, a in enumerate(flat.argmax(axis=0)):
            offset = np.unravel_index(a, block.shape[:-1])
            dx[(n, *(s + o for s, o in zip(start, offset)), c)] += dy[(*index, c)]
    crop = (slice(None), *(slice(p, p + s) for p, s in zip(pads, x.shape[1:-1])), slice(None))
    assert nd == len(windows)
    return y, dx[crop]


@pytest.mark.parametrize("shape, windows, strides, pads", CASES)
def test_value_and_gradient_match_numpy_and_flax(shape, windows, strides, pads):
    rng = np.random.default_rng(3)
    x = rng.permutation(np.arange(math.prod(shape), dtype=np.float32)).reshape(shape) / 10  # no ties
    y, vjp = jax.vjp(lambda x: max_pool_separable(x, windows, strides, pads), jnp.asarray(x))
    dy = rng.normal(size=y.shape).astype(np.float32)
    (dx,) = vjp(jnp.asarray(dy))
    expect_y, expect_dx = _numpy_pool(x, windows, strides, pads, dy)
    np.testing.assert_array_equal(y, expect_y)
    np.testing.assert_allclose(dx, expect_dx, rtol=1e-6, atol=1e-6)
    flax_pool = lambda x: nn.max_pool(x, windows, strides, tuple((p, p) for p in pads))
    flax_y, flax_vjp = jax.vjp(flax_pool, jnp.asarray(x))
    np.testing.assert_array_equal(y, flax_y)
    np.testing.assert_allclose(dx, flax_vjp(jnp.asarray(dy))[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape, windows, strides, pads", CASES[:2])
def test_forward_and_reverse_mode_agree_with_finite_differences(shape, windows, strides, pads):
    size = math.prod(shape)  # distinct values 1 apart, so a step of 0.1 never changes an argmax
    x = jnp.asarray(np.random.default_rng(0).permutation(size).reshape(shape) - size // 2, jnp.float32)
    check_grads(lambda x: max_pool_separable(x, windows, strides, pads), (x,), order=1,
                modes=("fwd", "rev"), eps=0.1)


def test_ties_send_the_whole_gradient_to_one_element():
    x = jnp.zeros((1, 4, 4, 1))  # every window all ties
    dx = jax.grad(lambda x: jnp.sum(max_pool(x, 2, 2, 0)))(x)
    np.testing.assert_array_equal(dx.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4).sum(axis=1), 1.0)
    assert set(np.unique(np.asarray(dx))) == {0.0, 1.0}


def test_nan_propagates_and_bfloat16_keeps_its_dtype():
    x = jnp.ones((1, 4, 4, 2)).at[0, 1, 1, 0].set(jnp.nan)
    y = max_pool(x, 3, 2, 1)
    assert bool(jnp.isnan(y[0, 0, 0, 0])) and not bool(jnp.isnan(y[0, 0, 0, 1]))
    assert max_pool(x.astype(jnp.bfloat16), 3, 2, 1).dtype == jnp.bfloat16


def test_an_int_applies_to_every_spatial_axis():
    x = jax.random.normal(jax.random.key(0), (2, 5, 7, 6, 3))
    np.testing.assert_array_equal(
        max_pool_separable(x, 3, np.int64(2), 1), max_pool_separable(x, (3,) * 3, (2,) * 3, (1,) * 3)
    )
    expected, _ = _numpy_pool(np.asarray(x), (2, 2, 2), (1, 2, 2), (0, 0, 0), np.zeros((2, 4, 3, 3, 3), np.float32))
    np.testing.assert_array_equal(max_pool_separable(x, 2, (1, 2, 2), 0), expected)


def test_jits_and_vmaps():
    x = jax.random.normal(jax.random.key(0), (3, 2, 9, 9, 4))
    batched = jax.jit(jax.vmap(lambda x: max_pool(x, 3, 2, 1)))(x)
    np.testing.assert_array_equal(batched[1], max_pool(x[1], 3, 2, 1))


@pytest.mark.parametrize("x, windows, strides, pads, error, match", [
    (jnp.zeros((1, 4, 4, 1), jnp.int32), (2, 2), (2, 2), (0, 0), TypeError, "floating"),
    (jnp.zeros((1, 4, 4, 1)), (2,), (2, 2), (0, 0), ValueError, "per spatial axis"),
    (jnp.zeros((4, 1)), (), (), (), ValueError, "per spatial axis"),
    (jnp.zeros((1, 4, 4, 1)), (2.0, 2), (2, 2), (0, 0), TypeError, "windows must contain only integers"),
    (jnp.zeros((1, 4, 4, 1)), 2.0, 2, 0, TypeError, "windows must be an integer or a sequence"),
    (jnp.zeros((1, 4, 4, 1)), 2, "2", 0, TypeError, "strides must be an integer or a sequence"),
    (jnp.zeros((1, 4, 4, 1)), 2, 2, None, TypeError, "pads must be an integer or a sequence"),
    (jnp.zeros((1, 4, 4, 1)), (2, 2), (2, 0), (0, 0), ValueError, "strides >= 1"),
    (jnp.zeros((1, 4, 4, 1)), (2, 2), (2, 2), (2, 0), ValueError, "pad < window"),
    (jnp.zeros((1, 2, 4, 1)), (5, 2), (1, 1), (1, 0), ValueError, "larger than the padded input"),
])
def test_bad_arguments_are_rejected(x, windows, strides, pads, error, match):
    with pytest.raises(error, match=match):
        max_pool_separable(x, windows, strides, pads)
