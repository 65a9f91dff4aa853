"""Which layers get which compact method: a named compression preset from ``config.model.compress``.

The rules themselves live in :data:`compact_jax.compress.PRESETS` (the papers'
configurations, with their published figures); a config only names one and,
optionally, adjusts it without restating its rules::

    model:
      compress:
        preset: approx-resnet32     # a compact_jax.compress.PRESETS name ("" : no policy)
        method: chebyshev           # swap the method of every compressed rule ("" : keep)
        values: "3,3,2,2"           # one value per compressed rule, in order ("" : keep)
        option: harmonics           # ... of this option
        kwargs: {transform: dct}    # options set on every compressed rule (its method must take them)
        lenient: false              # true: rules may match no layer (a preset on a shrunken smoke-test net)

Compressed rules are those whose method is not ``"dense"``. The model is then
:func:`compact_jax.compress.build` of the preset's plan on the dense network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from train.errors import UserError

__all__ = ["COMPRESS_KEYS", "has_policy", "policy_from_config", "resolve_plan"]

#: Keys of ``config.model.compress``.
COMPRESS_KEYS = ("preset", "method", "values", "option", "kwargs", "lenient")


def has_policy(model_cfg) -> bool:
    """Whether ``config.model`` names a compression preset."""
    compress = model_cfg.get("compress")
    return bool(compress and compress.get("preset"))


def _values(raw: Any) -> tuple:
    from compact_jax import compress

    if isinstance(raw, str):
        try:
            return compress.expand_runs(raw)
        except ValueError as error:
            raise UserError(f"model.compress.values: {error}") from None
    return tuple(raw)


def policy_from_config(compress_cfg):
    """The :class:`compact_jax.compress.Policy` that ``config.model.compress`` describes.

    Raises:
      UserError: an unknown preset, method or option, or a wrong number of values.
    """
    from compact_jax import compress

    unknown = sorted(set(compress_cfg) - set(COMPRESS_KEYS))
    if unknown:
        raise UserError(f"model.compress has unknown keys {unknown}; valid keys: {', '.join(COMPRESS_KEYS)}")
    name = compress_cfg.get("preset", "")
    if name not in compress.PRESETS:
        raise UserError(f"unknown compression preset {name!r}; valid presets: {', '.join(compress.PRESETS)}")
    policy = compress.PRESETS[name].policy
    rules = list(policy.rules)
    compressed = [i for i, rule in enumerate(rules) if rule.method != "dense"]
    method = compress_cfg.get("method", "")
    options = dict(compress_cfg.get("kwargs", {}))
    values = _values(compress_cfg.get("values", "") or ())
    if values and len(values) != len(compressed):
        raise UserError(
            f"model.compress.values has {len(values)} values but preset {name!r} has {len(compressed)} "
            f"compressed rules ({', '.join(rules[i].path for i in compressed)})"
        )
    option = compress_cfg.get("option", "") or "harmonics"
    try:
        for k, i in enumerate(compressed):
            rule = rules[i]
            extra = dict(options)
            if values:
                extra[option] = values[k]
            rules[i] = dataclasses.replace(rule, method=method or rule.method, options={**rule.options, **extra})
        if compress_cfg.get("lenient", False):
            rules = [dataclasses.replace(rule, optional=True) for rule in rules]
    except (ValueError, TypeError) as error:
        raise UserError(f"model.compress: preset {name!r}: {error}") from None
    settings = [method, ",".join(map(str, values)) if values else "", *(f"{k}={v}" for k, v in options.items())]
    label = "+".join(filter(None, [name, *settings]))
    return compress.Policy(rules=rules, name=label)


def resolve_plan(compress_cfg, model, input_shape: Sequence[int]):
    """The preset's plan on ``model`` (a dense zoo network) for inputs of ``input_shape``.

    Raises:
      UserError: the preset does not fit the model (a rule matches no layer,
        a grid does not fit a layer, ...), naming the layer or rule.
    """
    from compact_jax import compress

    policy = policy_from_config(compress_cfg)
    try:
        return compress.resolve(policy, model, tuple(input_shape))
    except (ValueError, TypeError) as error:
        raise UserError(f"compression preset {compress_cfg.preset!r} on model {type(model).__name__}: {error}") from None
