"""Folding compact parameters back into dense kernels, for a plan or for any model of compact modules."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from compact_jax import basis
from compact_jax.compress._fit import _HIGHEST, _copy_tree, _expect_keys, _jit, _kernel_fn, _node, _set
from compact_jax.compress._plan import Plan
from compact_jax.protocol import Method

__all__ = ["fold", "fold_modules"]


def _folded_kernel(method: Method, compact: dict, spec: Any, path: str, where: str):
    """``(kernel, extra_bias)`` of one layer: ``method.build_kernel``; a basis bias goes to the conv bias."""
    if method is basis.METHOD:
        if spec.coef_kernel_size != (1, 1):
            raise ValueError(
                f"{where}: layer {path!r} uses a {spec.coef_kernel_size} coefficient conv, so it is two "
                f"convolutions with no single {spec.kernel_size} kernel and cannot be folded into the dense model"
            )
        bias = basis.build_bias(compact, spec, precision=_HIGHEST) if spec.basis_bias else None
        return _jit(_kernel_fn(basis.build_kernel))(compact, spec), bias
    return _jit(_kernel_fn(method.build_kernel))(compact, spec), None


def _dense_node(kernel, extra_bias, bias, path: str, where: str) -> dict:
    folded = {"kernel": kernel}
    if extra_bias is not None:
        if bias is None:
            raise ValueError(f"{where}: layer {path!r} has a basis bias but the dense layer has no bias to hold it")
        bias = bias + extra_bias
    if bias is not None:
        folded["bias"] = bias
    return folded


def fold(plan: Plan, params: Any) -> dict:
    """Dense parameters for compact ones; see :func:`compact_jax.compress.fold`."""
    where = "compress.fold"
    source = _copy_tree(params)
    out = _copy_tree(params)
    for group in plan.shared:
        if group.module_name not in source:
            raise ValueError(f"{where}: params lack the shared basis {group.module_name!r}")
    for entry in plan.layers:
        node = _node(source, entry.path, where)
        compact = {k: v for k, v in node.items() if k != "bias"}
        if entry.share is not None:
            compact["basis"] = source[plan.shared_basis(entry.share).module_name]["basis"]
        shapes = jax.eval_shape(lambda k, s=entry.spec: entry.record.init(k, s), jax.random.key(0))
        _expect_keys(compact, set(shapes), entry.path, where,
                     f"the {entry.method} layer's params: pass the compact model's params")
        kernel, extra_bias = _folded_kernel(entry.record, compact, entry.spec, entry.path, where)
        _set(out, entry.path, _dense_node(kernel, extra_bias, node.get("bias"), entry.path, where))
    for group in plan.shared:
        del out[group.module_name]
    return out


def fold_modules(model: nn.Module, variables: Any, *args: Any, **kwargs: Any) -> dict:
    """Dense parameters for any Linen model whose convolutions are :mod:`compact_jax.linen` modules.

    ``model.apply(variables, *args, **kwargs)`` is traced (use one example and
    inference mode, e.g. ``train=False``); every compact conv it calls is
    replaced by ``{"kernel", "bias"}`` with its built kernel, and shared-basis
    modules are dropped. The result loads into the same network built with
    dense convolutions (``flax.linen.Conv`` / ``DenseConv``). The layers are
    found by an abstract trace, so a model with nothing to fold costs no
    compilation; the compact parameters are then gathered by one jitted call
    whose forward pass is dead code.

    Raises:
      ValueError: naming a layer with no single dense kernel (a basis layer
        with a larger coefficient conv), or if the model calls no compact conv.
    """
    from compact_jax import linen

    where = "compress.fold_modules"
    if not hasattr(variables, "keys") or "params" not in variables:
        raise TypeError(f"{where}: variables must be a dict with a 'params' collection, got {type(variables).__name__}")
    specs, shared = {}, set()

    def gather(variables, args):
        """``path -> compact params`` of every compact conv the forward pass calls (fills ``specs``, ``shared``)."""
        compact = {}

        def record(next_fun, call_args, call_kwargs, context):
            out = next_fun(*call_args, **call_kwargs)
            module = context.module
            path = "/".join(module.scope.path)
            if (isinstance(module, linen.CompactConv) and not isinstance(module, linen.DenseConv)
                    and context.method_name == "compact_params" and path not in compact):
                specs[path] = (module.method, call_args[0] if call_args else call_kwargs["spec"])
                compact[path] = out
            elif isinstance(module, linen.SharedBasis):
                shared.add(path)
            return out

        with nn.intercept_methods(record):
            model.apply(variables, *args, **kwargs)
        return compact

    jax.eval_shape(gather, variables, args)
    if not specs:
        raise ValueError(f"{where}: {type(model).__name__} called no compact_jax.linen convolution "
                         f"other than DenseConv: nothing to fold")
    compact = jax.jit(gather)(variables, args)
    out = _copy_tree(variables["params"])
    for path, (method, spec) in specs.items():
        kernel, extra_bias = _folded_kernel(method, compact[path], spec, path, where)
        bias = _node(out, path, where).get("bias")
        _set(out, path, _dense_node(kernel, extra_bias, bias, path, where))
    for path in sorted(shared, key=len, reverse=True):  # nested entries before their parents
        *parents, last = path.split("/")
        (_node(out, "/".join(parents), where) if parents else out).pop(last, None)
    return out
