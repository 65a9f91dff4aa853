"""Times any protocol layer against the dense conv of the same shape, in one run."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp

from compact_jax import dense
from compact_jax.arith import conv_macs, output_shape
from compact_jax.bench._timing import time_jitted
from compact_jax.layer import layer_apply
from compact_jax.protocol import ConvSpec

__all__ = ["RESNET18_CIFAR_SHAPES", "time_layer", "compare_to_dense"]

# (name, channels, spatial) of ResNet-18-CIFAR's 3x3 stride-1 convs, batch 64.
RESNET18_CIFAR_SHAPES = (
    ("stage1 64x32x32", 64, 32),
    ("stage2 128x16x16", 128, 16),
    ("stage3 256x8x8", 256, 8),
    ("stage4 512x4x4", 512, 4),
)


def time_layer(
    method: ModuleType, params: dict, spec: ConvSpec, x: jax.Array, **conv_kwargs: Any
) -> tuple[float, float]:
    """(forward seconds, forward+backward seconds) of one layer.

    The backward pass differentiates w.r.t. the compact parameters and the
    input, as a training step does.
    """

    def forward(p, x):
        return layer_apply(method, p, x, spec, **conv_kwargs)

    def loss(p, x):
        return jnp.mean(forward(p, x) ** 2)

    fwd = jax.jit(forward)
    train = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return time_jitted(fwd, params, x), time_jitted(train, params, x)


def compare_to_dense(
    method: ModuleType, spec: ConvSpec, *, batch: int, spatial: tuple[int, ...], **conv_kwargs: Any
) -> dict:
    """Times ``method`` and a dense conv of the same shape on the same input.

    Returns a dict with the compact/dense ratios of forward and
    forward+backward time, and the parameter ratio.
    """
    key_x, key_p, key_d = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(key_x, (batch, *spatial, spec.in_features))
    dense_spec = dense.DenseSpec(
        features=spec.features,
        in_features=spec.in_features,
        kernel_size=spec.kernel_size,
        feature_group_count=spec.feature_group_count,
    )
    d_fwd, d_train = time_layer(dense, dense.init(key_d, dense_spec), dense_spec, x, **conv_kwargs)
    c_fwd, c_train = time_layer(method, method.init(key_p, spec), spec, x, **conv_kwargs)
    out = output_shape(spatial, spec.kernel_size, **{k: v for k, v in conv_kwargs.items() if k in ("strides", "padding")})
    return {
        "dense_fwd_ms": 1e3 * d_fwd,
        "fwd_ratio": c_fwd / d_fwd,
        "train_ratio": c_train / d_train,
        "param_ratio": method.num_params(spec) / spec.dense_num_params,
        "dense_macs": batch * conv_macs(out, spec.kernel_size, in_channels=spec.in_features,
                                        out_channels=spec.features,
                                        feature_group_count=spec.feature_group_count),
    }
