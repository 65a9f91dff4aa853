"""Building the compact Linen model a plan describes.

Private helper of :mod:`compact_jax.compress`. The dense model is cloned with
its ``conv`` factory replaced by :class:`DispatchConv`, a module that looks up
its own parameter path in the plan and runs the planned layer in its own scope
(``flax.linen.share_scope``), so parameter paths do not change:
``stage1/block0/conv1/filtermap``. Shared bases are created once by the
:class:`CompactModel` wrapper, at the top level (``shared_basis_<key>/basis``),
and handed to the layers using them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from compact_jax import linen
from compact_jax.compress._plan import Plan
from compact_jax.layer import canonical_kernel_size

__all__ = ["DispatchConv", "CompactModel", "build"]


class DispatchConv(linen.ConvFields):
    """A ``flax.linen.Conv``-compatible factory target that runs the planned layer.

    Takes ``flax.linen.Conv``'s fields (what the model passes) plus ``plan``
    and ``shared`` (the shared-basis modules by key).
    """

    plan: Plan | None = None
    shared: Mapping[str, Any] | None = None

    @nn.compact
    def __call__(self, inputs: Any) -> Any:
        path = "/".join(self.path)
        if not isinstance(self.plan, Plan):
            raise TypeError(f"DispatchConv {path!r}: needs plan=<compress.Plan>; use compress.build(plan)")
        entry = self.plan.layer(path)
        layer = entry.layer
        kernel_size = canonical_kernel_size(self.kernel_size, where=path)
        if (self.features, kernel_size, self.feature_group_count) != (
            layer.features, layer.kernel_size, layer.feature_group_count
        ):
            raise ValueError(
                f"layer {path!r}: the model builds a {kernel_size} conv to {self.features} features "
                f"(groups {self.feature_group_count}), but the plan holds {layer.kernel_size} to "
                f"{layer.features} (groups {layer.feature_group_count}); resolve the plan on this model"
            )
        extra = {} if entry.share is None else {"basis": self.shared[entry.share]}
        module = linen.conv_class(entry.record).from_spec(entry.spec, **self.conv_fields(), **extra)
        nn.share_scope(self, module)
        spec = module.spec(int(inputs.shape[-1]))
        if spec != entry.spec:
            raise ValueError(f"layer {path!r}: built spec {spec} differs from the planned {entry.spec}")
        return module(inputs)


class CompactModel(nn.Module):
    """The compact version of ``plan.model``: same call signature, same parameter
    paths, plus one ``shared_basis_<key>`` entry per shared basis.

    Attributes:
      plan: a :class:`compact_jax.compress.Plan`.
      param_dtype: dtype of the shared bases.
    """

    plan: Plan
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the compact model like the dense one, e.g. ``(x, train=False)``."""
        shared = {
            group.key: linen.SharedBasis(num_basis=group.shape[3], in_features=group.shape[2],
                                         kernel_size=group.shape[:2], param_dtype=self.param_dtype,
                                         name=group.module_name)
            for group in self.plan.shared
        }
        conv = functools.partial(DispatchConv, plan=self.plan, shared=shared)
        model = self.plan.model.clone(conv=conv, parent=self, name="compact")
        nn.share_scope(self, model)
        return model(*args, **kwargs)


def build(plan: Plan) -> CompactModel:
    """The compact model of ``plan`` (see :func:`compact_jax.compress.build`)."""
    if not isinstance(plan, Plan):
        raise TypeError(f"build needs a compact_jax.compress.Plan, got {type(plan).__name__}")
    return CompactModel(plan=plan)
