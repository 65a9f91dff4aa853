"""The frequency path's custom VJPs: finite differences and the kernel path's gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from compact_jax import fdc3d
from compact_jax.fdc3d._conv import gather_channels, project_frames

RNG = np.random.default_rng(7)


def _normal(*shape):
    return jnp.asarray(RNG.normal(size=shape), jnp.float32)


@pytest.mark.parametrize("frequency_axis", [-1, 2])
@pytest.mark.parametrize("stride, dilation, length", [(1, 1, 6), (2, 1, 7), (1, 2, 8), (3, 2, 9)])
def test_projection_vjp_matches_finite_differences(stride, dilation, length, frequency_axis):
    x, rows = _normal(2, length, 3, 2, 3), _normal(2, 3)
    t_out = (length - 2 * dilation - 1) // stride + 1
    project = lambda x, rows: project_frames(
        x, rows, t_out=t_out, stride=stride, dilation=dilation, frequency_axis=frequency_axis
    )
    with jax.default_matmul_precision("highest"):
        check_grads(project, (x, rows), order=1, modes=("rev",), eps=1e-2, atol=2e-2, rtol=2e-2)


def test_projection_matches_numpy():
    x, rows = _normal(1, 7, 2, 2, 3), _normal(2, 3)
    z = project_frames(x, rows, t_out=3, stride=2, dilation=1)
    xs, r = np.asarray(x, np.float64), np.asarray(rows, np.float64)
    expect = np.zeros((1, 3, 2, 2, 3, 2))
    for j in range(3):
        for f in range(2):
            expect[:, j, ..., f] = sum(r[f, tau] * xs[:, 2 * j + tau] for tau in range(3))
    np.testing.assert_allclose(z, expect, rtol=1e-5, atol=1e-5)
    stacked = project_frames(x, rows, t_out=3, stride=2, dilation=1, frequency_axis=2)
    np.testing.assert_allclose(stacked, np.moveaxis(expect, -1, 2), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="frequency_axis must be -1 or 2, got 1"):
        project_frames(x, rows, t_out=3, frequency_axis=1)


def test_gather_vjp_is_the_scatter():
    x = _normal(2, 3, 6)
    kept = (4, 0, 3)
    check_grads(lambda x: gather_channels(x, kept), (x,), order=1, modes=("rev",), eps=1e-2)
    dy = _normal(2, 3, 3)
    (dx,) = jax.vjp(lambda x: gather_channels(x, kept), x)[1](dy)
    expect = np.zeros((2, 3, 6), np.float32)
    expect[..., list(kept)] = dy
    np.testing.assert_array_equal(dx, expect)


CASES = [
    dict(),
    dict(strides=(2, 1, 2), padding="VALID"),
    dict(padding="CIRCULAR"),
    dict(padding=((2, 0), (1, 1), (0, 2)), kernel_dilation=(2, 1, 1)),
    dict(strides=(1, 2, 1), input_dilation=(2, 1, 2), padding=((1, 1), (1, 0), (2, 2))),
]


@pytest.mark.parametrize(
    "transform, conv_kwargs",
    list(zip(("learned_householder", "learned_cayley", "dct", "learned_expm", "none"), CASES)),
)
def test_pruned_frequency_gradients_equal_kernel_path(transform, conv_kwargs):
    spec = fdc3d.FrequencySpec(features=3, in_features=5, kernel_size=(3, 3, 3), transform=transform)
    params = fdc3d.init(jax.random.key(1), spec)
    params["beta"] = jnp.asarray(RNG.uniform(0.5, 1.5, size=5), jnp.float32)
    name = fdc3d.TRANSFORM_PARAM.get(transform)
    if name == "householder":
        params[name] = params[name] + 0.3 * _normal(3, 3)
    elif name:
        params[name] = 0.3 * _normal(3, 3)
    params, spec = fdc3d.prune(params, spec, p_c=0.4, p_t=1 / 3)
    x = _normal(2, 6, 5, 4, 5)

    def grads(path):
        def loss(p, x):
            y = fdc3d.apply(p, x, spec, path=path, precision="highest", **conv_kwargs)
            return jnp.sum(y * jnp.cos(jnp.arange(y.size, dtype=y.dtype).reshape(y.shape)))
        return jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)

    (gk, gxk), (gf, gxf) = grads("kernel"), grads("frequency")
    assert set(gf) == set(params)
    for key in params:
        np.testing.assert_allclose(gf[key], gk[key], rtol=1e-3, atol=1e-4, err_msg=key)
        assert bool(jnp.any(gf[key] != 0)), key
    np.testing.assert_allclose(gxf, gxk, rtol=1e-3, atol=1e-4)


def test_frequency_path_vjp_matches_finite_differences():
    spec = fdc3d.FrequencySpec(features=2, in_features=3, kernel_size=(3, 2, 2), transform="learned_cayley")
    params = fdc3d.init(jax.random.key(2), spec)
    params["skew"] = 0.3 * _normal(3, 3)
    params, spec = fdc3d.prune(params, spec, p_c=1 / 3, p_t=1 / 3)
    x = _normal(1, 5, 3, 3, 3)
    f = lambda p, x: fdc3d.apply(p, x, spec, path="frequency", strides=(2, 1, 1), padding="SAME")
    with jax.default_matmul_precision("highest"):
        check_grads(f, (params, x), order=1, modes=("rev",), eps=1e-2, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("x_shape", [(2, 6, 5, 4, 5), (1, 1, 2, 2, 5)])  # beta on the coefficients / on x
@pytest.mark.parametrize("platform", ["cpu", "gpu"])  # stacked / folded frequency maps
@pytest.mark.parametrize("conv_kwargs", CASES[:2] + CASES[3:])
def test_both_frequency_layouts_equal_the_kernel_path(monkeypatch, platform, x_shape, conv_kwargs):
    """The folded layout (one 2-D conv over c' t' maps, what accelerators run) and the stacked one
    (a VALID 3-D conv over the t' axis, what the CPU runs) give the kernel path's values and gradients."""
    from compact_jax.fdc3d import _conv as frequency_module

    monkeypatch.setattr(frequency_module, "platform_of", lambda x=None: platform)
    spec = fdc3d.FrequencySpec(features=4, in_features=5, kernel_size=(3, 3, 3), transform="learned_cayley")
    params = fdc3d.init(jax.random.key(3), spec)
    params["skew"] = 0.3 * _normal(3, 3)
    params["beta"] = jnp.asarray(RNG.uniform(0.5, 1.5, size=5), jnp.float32)
    params, spec = fdc3d.prune(params, spec, p_c=0.4, p_t=1 / 3)
    x = _normal(*x_shape)
    if x_shape[1] == 1 and conv_kwargs.get("padding") == "VALID":
        return  # no output frames: both fall back to the kernel path

    def run(path):
        def loss(p, x):
            y = fdc3d.apply(p, x, spec, path=path, precision="highest", **conv_kwargs)
            return jnp.sum(jnp.sin(y)), y
        return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(params, x)

    (gk, gxk), yk = run("kernel")
    (gf, gxf), yf = run("frequency")
    np.testing.assert_allclose(yf, yk, rtol=1e-4, atol=1e-4)
    for key in params:
        np.testing.assert_allclose(gf[key], gk[key], rtol=1e-3, atol=1e-4, err_msg=key)
    np.testing.assert_allclose(gxf, gxk, rtol=1e-3, atol=1e-4)
