"""Models from ``config.model``: a zoo network whose convolutions come from a ``conv`` factory.

The dense and compact forms of one network differ only in the factory::

    model:
      name: resnet20                  # compact_jax.models.get_model name
      kwargs: {stage_sizes: (1, 1, 1)}
      conv:
        method: filtermap             # a compact_jax.METHODS name or alias
        kwargs: {}                    # fields of the method's Linen module
        dense_1x1: True               # 1x1 convs stay dense (the papers' rule)
        dense_layers: ("stem_conv",)  # layer names kept dense
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn

from train.errors import UserError, did_you_mean

__all__ = ["available_methods", "conv_factory", "build_model"]


def available_methods() -> tuple[str, ...]:
    """Names a config's ``model.conv.method`` accepts: every :data:`compact_jax.METHODS`
    name followed by its aliases (``"cosine"``, ``"cos"``, ...)."""
    from compact_jax import registry

    return registry.method_names()



def conv_factory(
    method: str, *, dense_1x1: bool = True, dense_layers: Sequence[str] = (), **kwargs: Any
) -> Callable[..., nn.Module]:
    """A ``flax.linen.Conv``-compatible factory building ``method``'s layers.

    Args:
      method: a :data:`compact_jax.METHODS` name or alias (``"cos"``, ``"cheb"``).
      dense_1x1: build 1x1 (1x1x1) convolutions densely.
      dense_layers: layer names (as given by the model) built densely.
      **kwargs: fields of the method's module, e.g. ``grid=(4, 4, 4)``.

    Returns:
      ``factory(features, kernel_size, **conv_kwargs) -> nn.Module``.
    """
    from compact_jax import linen, registry

    valid = available_methods()
    if method not in valid:
        raise UserError(f"unknown conv method {method!r}; {did_you_mean(method, valid)}valid: {', '.join(valid)}")
    record = registry.get_method(method)
    kwargs = record.rename_options(kwargs, where=f"conv method {record.name!r}")
    cls = linen.conv_class(record)
    fields = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name")]
    for key in kwargs:
        if key not in fields:
            raise UserError(f"model.conv.kwargs: conv method {method!r} ({cls.__name__}) has no field {key!r}; "
                            f"{did_you_mean(key, fields)}valid fields: {', '.join(fields)}")
    compact = functools.partial(cls, **kwargs)
    dense_layers = tuple(dense_layers)
    if record.name == "dense" or (not dense_1x1 and not dense_layers):
        return compact

    def factory(features, kernel_size, **conv_kwargs):
        name = conv_kwargs.get("name")
        is_1x1 = all(k == 1 for k in tuple(kernel_size))
        if (dense_1x1 and is_1x1) or name in dense_layers:
            return linen.DenseConv(features, kernel_size, **conv_kwargs)
        return compact(features, kernel_size, **conv_kwargs)

    return factory


def build_model(
    cfg, *, num_classes: int | None = None, input_shape: Sequence[int] | None = None, dtype: str = "float32"
) -> nn.Module:
    """The network ``cfg.name`` of ``compact_jax.models`` with ``cfg.conv``'s factory.

    With a compression preset (``cfg.compress.preset``, see
    :mod:`train.pipelines.policy`) the dense network is compressed by the
    preset's rules instead (``compact_jax.compress.build``).

    Args:
      cfg: ``config.model`` (fields ``name``, ``kwargs``, ``conv``, optional ``compress``).
      num_classes: set on models that have a ``num_classes`` field.
      input_shape: ``(N, *spatial, C)`` of an input batch (needed with a preset).
      dtype: compute dtype, ``"float32"`` or ``"bfloat16"`` (set on the
        model's ``dtype`` field, which its layers follow); parameters stay
        float32.

    Raises:
      UserError: unknown model, model field or conv method (one line).
    """
    from compact_jax import models

    if cfg.name not in models.MODELS:
        raise UserError(f"unknown model {cfg.name!r}; {did_you_mean(cfg.name, models.MODELS)}valid models: {', '.join(models.MODELS)}")
    conv_cfg = dict(cfg.conv)
    conv = conv_factory(conv_cfg.pop("method"), **conv_cfg.pop("kwargs", {}), **conv_cfg)
    kwargs = dict(cfg.get("kwargs", {}))
    try:
        model = models.get_model(cfg.name, conv=conv, **kwargs)
    except TypeError as error:
        fields = [f for f in _fields(models, cfg.name) if f not in ("parent", "name", "conv")]
        bad = [k for k in kwargs if k not in fields]
        if not bad:
            raise
        raise UserError(
            f"model {cfg.name!r} has no field {bad[0]!r}; {did_you_mean(bad[0], fields)}valid fields: {', '.join(fields)}"
        ) from error
    if num_classes is not None and hasattr(model, "num_classes"):
        model = model.clone(num_classes=num_classes)
    from train.pipelines.policy import has_policy, resolve_plan

    if has_policy(cfg):
        if cfg.conv.method != "dense":
            raise UserError("model.compress.preset needs model.conv.method 'dense' (the preset picks the layers' methods)")
        if input_shape is None:
            raise TypeError("build_model: a compression preset needs input_shape (the model is traced to resolve it)")
        from compact_jax import compress

        model = compress.build(resolve_plan(cfg.compress, model, input_shape))
    return _with_dtype(model, dtype)


def _with_dtype(model: nn.Module, dtype: str) -> nn.Module:
    import jax.numpy as jnp

    if dtype == "float32":
        return model
    if dtype not in ("bfloat16",):
        raise UserError(f"config train.compute_dtype = {dtype!r}: expected one of 'float32', 'bfloat16'")
    if "dtype" not in {f.name for f in dataclasses.fields(model)}:
        raise UserError(f"train.compute_dtype {dtype!r}: model {type(model).__name__} has no dtype field; use 'float32'")
    return model.clone(dtype=jnp.dtype(dtype))


def _fields(models, name: str) -> list[str]:
    """Field names of a zoo model (its defaults must build)."""
    try:
        return [f.name for f in dataclasses.fields(type(models.get_model(name)))]
    except (TypeError, ValueError):
        return []
