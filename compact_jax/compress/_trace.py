"""Tracing a model: its convolutions (path, shape, input and output sizes) and other layers.

Private helper of :mod:`compact_jax.compress`. The model is initialised
abstractly (``jax.eval_shape``, no compute) with its ``conv`` factory replaced
by a recording ``flax.linen.Conv`` subclass, under ``flax.linen.intercept_methods``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from compact_jax import arith
from compact_jax.validate import check_int_tuple

__all__ = ["ConvLayer", "DenseLayer", "ModelTrace", "trace_model", "NORM_TYPES"]

#: Module types counted as normalisation layers.
NORM_TYPES = (nn.BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)


class _FactoryConv(nn.Conv):
    """``flax.linen.Conv`` made by the model's ``conv`` factory (tells them from hard-coded convs)."""


def _freeze(value: Any) -> Any:
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, Sequence):
        return tuple(_freeze(v) for v in value)
    return value


def _per_dim(value: Any, n: int) -> tuple[int, ...]:
    if value is None:
        return (1,) * n
    if isinstance(value, int):
        return (value,) * n
    return tuple(int(v) for v in value)


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One convolution of a traced model.

    Attributes:
      path: ``/``-joined parameter path, e.g. ``"stage1/block0/conv1"``.
      features, in_features, kernel_size, feature_group_count, use_bias: its shape.
      strides, padding, input_dilation, kernel_dilation: as the model passed them.
      input_shape, output_shape: ``(N, *spatial, C)`` of the traced call.
      index: position in call order.
    """

    path: str
    features: int
    in_features: int
    kernel_size: tuple[int, ...]
    strides: tuple[int, ...]
    padding: Any
    input_dilation: tuple[int, ...]
    kernel_dilation: tuple[int, ...]
    feature_group_count: int
    use_bias: bool
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    index: int

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))

    @property
    def name(self) -> str:
        """Last path part (``"conv1"``)."""
        return self.parts[-1]

    @property
    def parent(self) -> str:
        """Path without its last part (``"stage1/block0"``; ``""`` at the top)."""
        return "/".join(self.parts[:-1])

    @property
    def stage(self) -> str:
        """First path part (``"stage1"``)."""
        return self.parts[0]

    @property
    def dense_params(self) -> int:
        """Weights of the dense kernel (no bias)."""
        return arith.conv_params(self.kernel_size, in_channels=self.in_features, out_channels=self.features,
                                 feature_group_count=self.feature_group_count, use_bias=False)

    @property
    def dense_macs(self) -> int:
        """Multiply-adds of the dense convolution for one example."""
        return arith.conv_macs(self.output_shape[1:-1], self.kernel_size, in_channels=self.in_features,
                               out_channels=self.features, feature_group_count=self.feature_group_count)

    @property
    def conv_kwargs(self) -> dict[str, Any]:
        """``strides, padding, input_dilation, kernel_dilation`` for :func:`compact_jax.conv.conv`."""
        return dict(strides=self.strides, padding=self.padding, input_dilation=self.input_dilation,
                    kernel_dilation=self.kernel_dilation)

    def share_fields(self) -> dict[str, Any]:
        """The fields a ``Rule.share`` template may use."""
        return dict(path=self.path, parent=self.parent, stage=self.stage, name=self.name,
                    in_features=self.in_features, features=self.features)


@dataclasses.dataclass(frozen=True)
class DenseLayer:
    """A fully connected layer of a traced model (for multiply-add totals)."""

    path: str
    in_features: int
    features: int
    positions: int  # positions per example the layer is applied at

    @property
    def macs(self) -> int:
        return self.positions * self.in_features * self.features


@dataclasses.dataclass(frozen=True, eq=False)
class ModelTrace:
    """What :func:`trace_model` learns about a model.

    Attributes:
      model: the model as given.
      input_shape: the traced input shape ``(N, *spatial, C)``.
      call_kwargs: keyword arguments of the call (``{"train": False}``).
      layers: the convolutions built through the ``conv`` factory, in call order.
      dense_layers: the ``flax.linen.Dense`` layers, in call order.
      module_types: path -> class of every module called.
      params: the ``"params"`` collection as ``jax.ShapeDtypeStruct`` leaves.
    """

    model: nn.Module
    input_shape: tuple[int, ...]
    call_kwargs: Mapping[str, Any]
    layers: tuple[ConvLayer, ...]
    dense_layers: tuple[DenseLayer, ...]
    module_types: Mapping[str, type]
    params: Any

    @property
    def classifier(self) -> str | None:
        """Path of the last dense layer called (the classifier), if any."""
        return self.dense_layers[-1].path if self.dense_layers else None

    def layer(self, path: str) -> ConvLayer:
        for layer in self.layers:
            if layer.path == path:
                return layer
        raise KeyError(path)


def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a flax.linen Module, got {type(model).__name__}")
    if "conv" not in {f.name for f in dataclasses.fields(model)}:
        raise TypeError(
            f"{type(model).__name__} has no `conv` field: compression needs a model that builds its "
            f"convolutions through a `conv` factory (as every compact_jax.models network does)"
        )


def trace_model(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    call_kwargs: Mapping[str, Any] | None = None,
    dtype: Any = jnp.float32,
) -> ModelTrace:
    """Traces ``model`` on an abstract input of ``input_shape`` (no compute).

    Raises:
      TypeError: ``model`` has no ``conv`` field; ``input_shape`` is not a
        sequence of ints.
      ValueError: an ``input_shape`` entry (batch, spatial size or channels)
        is 0 or negative, or it has fewer than 3 entries.
      ValueError: a convolution does not go through the ``conv`` factory.
    """
    _check_model(model)
    input_shape = check_int_tuple("input_shape", input_shape, minimum=1, broadcast=False)
    if len(input_shape) < 3:
        raise ValueError(
            f"input_shape must be (N, *spatial, C) with at least one spatial dim, got {input_shape}"
        )
    call_kwargs = {"train": False} if call_kwargs is None else dict(call_kwargs)
    layers: list[ConvLayer] = []
    dense_layers: list[DenseLayer] = []
    types: dict[str, type] = {}
    stray: list[str] = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name != "__call__":
            return out
        path = "/".join(module.path)
        if path in types:
            return out
        types[path] = type(module)
        if isinstance(module, _FactoryConv):
            x = args[0]
            nd = x.ndim - 2
            ks = (module.kernel_size,) * nd if isinstance(module.kernel_size, int) else tuple(module.kernel_size)
            layers.append(ConvLayer(
                path=path, features=module.features, in_features=int(x.shape[-1]), kernel_size=ks,
                strides=_per_dim(module.strides, nd), padding=_freeze(module.padding),
                input_dilation=_per_dim(module.input_dilation, nd),
                kernel_dilation=_per_dim(module.kernel_dilation, nd),
                feature_group_count=module.feature_group_count, use_bias=module.use_bias,
                input_shape=tuple(x.shape), output_shape=tuple(out.shape), index=len(layers),
            ))
        elif isinstance(module, (nn.Conv, nn.ConvTranspose, nn.ConvLocal)):
            stray.append(path)
        elif isinstance(module, nn.Dense):
            x = args[0]
            dense_layers.append(DenseLayer(path, int(x.shape[-1]), module.features,
                                           math.prod(x.shape[1:-1])))
        return out

    probe = model.clone(conv=_FactoryConv)
    x = jax.ShapeDtypeStruct(input_shape, dtype)
    with nn.intercept_methods(record):
        variables = jax.eval_shape(lambda key, x: probe.init(key, x, **call_kwargs), jax.random.key(0), x)
    unnamed = [layer.path for layer in layers if layer.name.startswith(f"{_FactoryConv.__name__}_")]
    if unnamed:
        raise ValueError(
            f"{type(model).__name__}: convolutions {unnamed} were built without a name; pass name=... to the "
            f"`conv` factory so that their parameter paths do not depend on the factory's class"
        )
    if stray:
        raise ValueError(
            f"{type(model).__name__}: convolutions {stray} are not built through the model's `conv` "
            f"factory, so a policy cannot replace them"
        )
    return ModelTrace(model=model, input_shape=input_shape, call_kwargs=call_kwargs, layers=tuple(layers),
                      dense_layers=tuple(dense_layers), module_types=types,
                      params=variables.get("params", {}))
