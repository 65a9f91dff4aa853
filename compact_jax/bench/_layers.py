"""Times any protocol layer against the dense conv of the same shape, in one run."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import jax

from compact_jax import dense
from compact_jax.arith import conv_macs, output_shape
from compact_jax.bench.timing import best_times
from compact_jax.layer import layer_apply
from compact_jax.protocol import ConvSpec

__all__ = ["RESNET18_CIFAR_SHAPES", "compare_to_dense"]

# (name, channels, spatial) of ResNet-18-CIFAR's 3x3 stride-1 convs, batch 64.
RESNET18_CIFAR_SHAPES = (
    ("stage1 64x32x32", 64, 32),
    ("stage2 128x16x16", 128, 16),
    ("stage3 256x8x8", 256, 8),
    ("stage4 512x4x4", 512, 4),
)


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
    seconds = best_times(
        {
            "dense": (lambda p, x: layer_apply(dense, p, x, dense_spec, **conv_kwargs),
                      dense.init(key_d, dense_spec)),
            "compact": (lambda p, x: layer_apply(method, p, x, spec, **conv_kwargs),
                        method.init(key_p, spec)),
        },
        x,
    )
    (d_fwd, d_train), (c_fwd, c_train) = seconds["dense"], seconds["compact"]
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
