"""Parameter and multiply-add tables of compressed models, like the papers'.

For a model and a compression policy (a :class:`compact_jax.compress.Policy`
or a named preset from :data:`PRESETS`), :func:`make_report` lists per
convolution and in total the dense and compact weights, their ratio and the
multiply-adds per example, counting the way the preset's paper counts
(:class:`Counting`: conv biases? batch norm? classifier?), with the paper's
figure beside ours. Counts are read from the built models' parameter trees
(traced abstractly, no compute).

Multiply-adds: dense convs ``H' W' k^2 C_in/g C_out``; a compact layer counts
its cheapest exact path (:func:`compact_macs`: the filter basis's decomposed
path with the paper's ``m``; FDC3D's frequency path); fully connected layers
are added to both totals.

How each paper counts (the presets' :class:`Counting`), and where we differ:

* 3D-FilterMap (``filtermap``): every parameter (1x1 convs, batch norm,
  classifier). The RGB stem (C = 3, not divisible by Table 1's K3) uses grid
  (8, 8, 1), as the authors do; ResNet-18/34/50 and DenseNet-121 give 0.95M,
  1.8M, 13.1M and 5.3M as printed.
* Learning Filter Basis, classification (``basis-vgg16``, ``-densenet40``,
  ``-resnet56``): conv and classifier weights (classifier bias included), no
  batch norm, no conv biases. ResNet-56: Table 5 prints 186k; Table 8's
  configuration as the authors' code builds it (the strided first conv of a
  stage uses the previous stage's basis) has 195,002, which we match.
  DenseNet-40 "T6" transitions are the authors' ``c -> c/6 -> c`` 1x1
  factorisation (a basis of ``c/6`` 1x1 filters); their identity shortcut
  around it has no parameters and is not part of our dense model.
* Learning Filter Basis, super-resolution (``basis-edsr``, ``-edsr-s``,
  ``-edsr8-*``, ``-srresnet-*``): conv weights of one residual block.
* ApproxConv: ResNet-32 every parameter; ImageNet ResNet-18 without batch norm
  (the printed ratios lie between ours without and with it); ConvNeXt-T the
  7x7 depthwise weights (the printed ratios lie between ours without and with
  their biases).
* FDC3D (``fdc3d-2x``, ``-4x``): conv weights; a layer stores ``t' d^2 c' N``
  coefficients, ``c'`` channel scales and ``t^2`` transform parameters
  (Eq. 14 plus ``beta``). The 3-channel stem prunes time only, to the same rate.

Command line::

    python -m compact_jax.report resnet18_cifar --policy filtermap
    python -m compact_jax.report --policy basis-resnet56     # the preset's model
    python -m compact_jax.report --list                      # presets
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from compact_jax import compress, models
# The presets and counting conventions live with compress; re-exported here.
from compact_jax.compress import (ALL, CATEGORIES, CONV_WEIGHTS, FILTER_BASIS, PER_BLOCK, PRESETS, Counting,
                                  ModelSetting, PaperFigure, Preset, get_preset)
from compact_jax.report._count import Counts, LayerCount, compact_macs, count_plan
from compact_jax.report._table import format_table

__all__ = [
    "Counting",
    "ALL",
    "FILTER_BASIS",
    "PER_BLOCK",
    "CONV_WEIGHTS",
    "PaperFigure",
    "ModelSetting",
    "Preset",
    "PRESETS",
    "get_preset",
    "DEFAULT_INPUTS",
    "LayerCount",
    "Report",
    "compact_macs",
    "format_table",
    "make_report",
    "report_model",
    "main",
]

#: Input shape ``(N, *spatial, C)`` used for each registry model (MACs depend on it).
DEFAULT_INPUTS: Mapping[str, tuple[int, ...]] = {
    **dict.fromkeys(["resnet18_cifar", "resnet34_cifar", "resnet50_cifar", "resnet20", "resnet32", "resnet56",
                     "densenet121_cifar", "densenet40", "vgg16_cifar"], (1, 32, 32, 3)),
    "resnet18_imagenet": (1, 224, 224, 3),
    "convnext_tiny": (1, 224, 224, 3),
    **dict.fromkeys(["edsr", "edsr_8_128", "srresnet"], (1, 48, 48, 3)),
    **dict.fromkeys(["resnet3d_18", "resnet3d_34", "resnet3d_50", "resnet3d_101"], (1, 16, 112, 112, 3)),
    "resunet3d": (1, 64, 64, 64, 4),
}

_CATEGORY_NAMES = {"conv": "conv weights", "conv_bias": "conv biases", "norm": "norm layers",
                   "classifier": "classifier", "other": "other"}


@dataclasses.dataclass(frozen=True)
class Report:
    """A model's dense and compact sizes under one counting convention.

    Attributes:
      title: heading line.
      counting: the convention.
      counts: per-layer rows and per-category totals.
      paper: the published figure, if known.
    """

    title: str
    counting: Counting
    counts: Counts
    paper: PaperFigure | None = None

    def _total(self, side: dict[str, int]) -> int:
        return sum(v for c, v in side.items() if self.counting.includes(c))

    @property
    def dense_params(self) -> int:
        return self._total(self.counts.dense)

    @property
    def compact_params(self) -> int:
        return self._total(self.counts.compact)

    @property
    def fraction(self) -> float:
        """Compact over dense parameters (the papers' "compression rate")."""
        return self.compact_params / self.dense_params

    @property
    def dense_macs(self) -> int:
        return sum(r.dense_macs for r in self.counts.rows) + self.counts.other_macs

    @property
    def compact_macs(self) -> int:
        return sum(r.compact_macs for r in self.counts.rows) + self.counts.other_macs

    def table(self, *, layers: bool = True) -> str:
        """The report as aligned text: per-layer rows (optional), category rows, totals, paper."""
        header = ("layer", "method", "detail", "dense W", "compact W", "ratio", "dense MACs", "compact MACs")
        rows = []
        if layers:
            rows += [(r.path, r.method, r.detail, f"{r.dense_params:,}", f"{r.compact_params:,}",
                      _ratio(r.dense_params, r.compact_params), _si(r.dense_macs) if r.dense_macs else "",
                      _si(r.compact_macs) if r.compact_macs else "")
                     for r in self.counts.rows]
            rows.append(None)
        for category in CATEGORIES:
            dense, compact = self.counts.dense[category], self.counts.compact[category]
            if not self.counting.includes(category) or (dense == compact == 0):
                continue
            rows.append((_CATEGORY_NAMES[category], "", "", f"{dense:,}", f"{compact:,}",
                         _ratio(dense, compact), "", ""))
        rows.append(("total", "", f"{100 * self.fraction:.2f}% of dense", f"{self.dense_params:,}",
                     f"{self.compact_params:,}", _ratio(self.dense_params, self.compact_params),
                     _si(self.dense_macs), _si(self.compact_macs)))
        if self.paper is not None:
            p = self.paper
            rows.append((f"paper ({p.source})", "", p.ratio, p.dense, p.compact, "", "", ""))
        lines = [self.title, f"counting: {self.counting.describe()}", "", format_table(header, rows, left=3)]
        if self.paper is not None and self.paper.note:
            lines.append(f"note: {self.paper.note}")
        skipped = [c for c in CATEGORIES if not self.counting.includes(c) and self.counts.dense[c]]
        if skipped:
            lines.append("not counted: " + ", ".join(f"{_CATEGORY_NAMES[c]} {self.counts.dense[c]:,}"
                                                     for c in skipped))
        return "\n".join(lines)


def _ratio(dense: int, compact: int) -> str:
    return f"{dense / compact:.2f}x" if dense and compact else ""


def _si(n: int) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.2f}{suffix}"
    return str(n)


def make_report(
    plan: compress.Plan,
    *,
    counting: Counting = ALL,
    paper: PaperFigure | None = None,
    title: str | None = None,
) -> Report:
    """The report of a resolved plan (see :func:`compact_jax.compress.resolve`)."""
    if not isinstance(counting, Counting):
        raise TypeError(f"counting must be a report.Counting, got {type(counting).__name__}")
    if title is None:
        title = f"{type(plan.model).__name__}, policy {plan.policy.name or '(unnamed)'}, input {plan.trace.input_shape}"
    return Report(title, counting, count_plan(plan, counting), paper)


def report_model(
    model_name: str,
    policy: str | compress.Policy = "dense",
    *,
    input_shape: Sequence[int] | None = None,
    counting: Counting | None = None,
    **model_kwargs: Any,
) -> Report:
    """Report of a registry model under a preset (by name) or a policy.

    A preset applies its paper's counting and the model settings it was
    published with (e.g. DenseNet-40's 24-channel stem); ``model_kwargs`` and
    ``counting`` override them.
    """
    preset = get_preset(policy) if isinstance(policy, str) else None
    setting = preset.models.get(model_name, ModelSetting()) if preset else ModelSetting()
    model = models.get_model(model_name, **{**setting.kwargs, **model_kwargs})
    shape = tuple(input_shape) if input_shape is not None else DEFAULT_INPUTS.get(model_name)
    if shape is None:
        raise ValueError(f"no default input shape for {model_name!r}; pass input_shape")
    plan = compress.resolve(preset.policy if preset else policy, model, shape)
    counting = counting or (preset.counting if preset else ALL)
    name = preset.name if preset else (policy.name or "(custom policy)")
    kwargs = {**setting.kwargs, **model_kwargs}
    extra = f" {kwargs}" if kwargs else ""
    title = f"{model_name}{extra} + {name}, input {shape}" + (f": {preset.description}" if preset else "")
    return make_report(plan, counting=counting, paper=setting.paper, title=title)


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m compact_jax.report``)."""
    parser = argparse.ArgumentParser(prog="python -m compact_jax.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help=f"registry model ({', '.join(models.MODELS)}); "
                        "default: the preset's model")
    parser.add_argument("--policy", default="dense", help="preset name (see --list)")
    parser.add_argument("--input", help="input shape N,H,W,C (default per model)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="model constructor override, e.g. --set num_classes=100")
    parser.add_argument("--count-all", action="store_true", help="count every parameter (not the paper's way)")
    parser.add_argument("--summary", action="store_true", help="category and total rows only")
    parser.add_argument("--list", action="store_true", help="list the presets and exit")
    args = parser.parse_args(argv)
    if args.list:
        for preset in PRESETS.values():
            print(f"{preset.name:20s} {preset.default_model or '':18s} {preset.description}")
        return 0
    try:
        preset = get_preset(args.policy)
        model = args.model or preset.default_model
        if model is None:
            parser.error(f"preset {args.policy!r} has no default model; name one")
        shape = tuple(int(v) for v in args.input.split(",")) if args.input else None
        report = report_model(model, args.policy, input_shape=shape, counting=ALL if args.count_all else None,
                              **_parse_set(args.set))
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    print(report.table(layers=not args.summary))
    return 0

