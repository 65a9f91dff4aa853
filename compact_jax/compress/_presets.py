"""Named compression policies from the papers, with their counting conventions and figures.

Private helper of :mod:`compact_jax.compress` (use ``compress.PRESETS`` /
``compress.get_preset``; :mod:`compact_jax.report` re-exports them). Each
preset records how its paper counts parameters (:class:`Counting`) and the
published figures to print beside ours.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any

from compact_jax.compress._policy import Policy, Rule, expand_runs, per_group_rules

__all__ = ["CATEGORIES", "Counting", "PaperFigure", "ModelSetting", "Preset", "PRESETS", "get_preset",
           "ALL", "FILTER_BASIS", "PER_BLOCK", "CONV_WEIGHTS"]

CATEGORIES = ("conv", "conv_bias", "norm", "classifier", "other")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Counting:
    """Which parameters a count includes (each paper counts differently).

    Convolution weights (the dense kernels, or the compact parameters standing
    for them, shared bases included) always count.

    Attributes:
      conv_bias: convolution biases (and a filter basis's basis bias).
      norm: batch / layer norm scales and offsets.
      classifier: the last fully connected layer (weights and bias).
      other: everything else (PReLU slopes, layer scales, ConvNeXt's pointwise
        linear layers, ...).
      scope: a glob over module paths restricting the count (and the
        multiply-adds), e.g. ``"block0/*"`` for one residual block; a shared
        basis counts when any layer using it is in scope.
    """

    conv_bias: bool = True
    norm: bool = True
    classifier: bool = True
    other: bool = True
    scope: str = "*"

    def includes(self, category: str) -> bool:
        return category == "conv" or getattr(self, category)

    def describe(self) -> str:
        """E.g. ``"conv weights + classifier (no conv biases, no norm layers, no other)"``."""
        names = {"conv_bias": "conv biases", "norm": "norm layers", "classifier": "classifier", "other": "other"}
        kept = [names[c] for c in CATEGORIES[1:] if getattr(self, c)]
        dropped = [names[c] for c in CATEGORIES[1:] if not getattr(self, c)]
        text = " + ".join(["conv weights"] + kept)
        if dropped:
            text += " (no " + ", no ".join(dropped) + ")"
        if self.scope != "*":
            text += f", only {self.scope!r}"
        return text


ALL = Counting()
"""Every parameter (3D-FilterMap Table 2; ApproxConv's CIFAR table)."""
FILTER_BASIS = Counting(conv_bias=False, norm=False, other=False)
"""Conv and classifier weights, no batch norm or conv biases (filter-basis Tables 4-5)."""
PER_BLOCK = Counting(conv_bias=False, norm=False, classifier=False, other=False, scope="block0/*")
"""Conv weights of one residual block (filter-basis Tables 1-3)."""
CONV_WEIGHTS = Counting(conv_bias=False, norm=False, classifier=False, other=False)
"""Conv weights only (FDC3D's Eq. 14)."""


@dataclasses.dataclass(frozen=True)
class PaperFigure:
    """A published figure to print beside ours.

    Attributes:
      dense: the paper's baseline size (text, e.g. ``"11.2M"``; empty where not printed).
      compact: the paper's compressed size.
      ratio: the paper's compression figure (e.g. ``"21.8%"``).
      source: table / equation it comes from.
      note: how our count relates to it, where they differ.
    """

    dense: str
    compact: str
    ratio: str = ""
    source: str = ""
    note: str = ""


@dataclasses.dataclass(frozen=True)
class ModelSetting:
    """A model a preset was published for: constructor overrides and the paper's figures."""

    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    paper: PaperFigure | None = None


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named policy with its paper's counting convention.

    Attributes:
      name: registry name.
      policy: the rules.
      description: one line for listings.
      counting: the paper's counting convention.
      models: model name -> :class:`ModelSetting`; the first is the default.
    """

    name: str
    policy: Policy
    description: str
    counting: Counting = ALL
    models: Mapping[str, ModelSetting] = dataclasses.field(default_factory=dict)

    @property
    def default_model(self) -> str | None:
        return next(iter(self.models), None)


def _transition_rank(layer: Any) -> int:
    """Table 7's transition split 6: the authors factor the 1x1 as ``c -> c/6 -> c``."""
    return layer.in_features // 6


_FM = "3D-FilterMap Table 2"
_FB = "Learning Filter Basis"
_AC = "ApproxConv"


def _filtermap() -> Preset:
    policy = Policy(name="filtermap", rules=[
        # RGB input: C = 3 is not divisible by Table 1's K3, so the 64 filters use
        # grid (8, 8, 1) (map 16x16x3), as the authors do.
        Rule(kernel=">1", in_features=3, method="filtermap", options={"grid": (8, 8, 1)}, optional=True),
        Rule(kernel=">1", method="filtermap"),
    ])
    figures = {"resnet18_cifar": ("11.2M", "0.95M"), "resnet34_cifar": ("21.3M", "1.8M"),
               "resnet50_cifar": ("23.5M", "13.1M"), "densenet121_cifar": ("7.0M", "5.3M")}
    return Preset("filtermap", policy, "3D-FilterMap on every k x k conv (k > 1), Table 1 grids; 1x1 dense",
                  ALL, {m: ModelSetting(paper=PaperFigure(d, c, source=_FM)) for m, (d, c) in figures.items()})


def _basis_presets() -> list[Preset]:
    vgg = Policy(name="basis-vgg16", rules=[
        Rule(path="conv[0-2]", method="dense"),  # "the first three convolutional layers are not compressed"
        # conv3 (128 -> 128) alone is larger than dense with m = 128: the paper's own setting.
        Rule(kernel="3x3", method="basis", options={"num_basis": 128, "split_size": 128, "allow_larger": True}),
    ])
    densenet = Policy(name="basis-densenet40", rules=[
        # One shared basis: each 12-filter layer alone (its 3x3 coefficients) is larger than dense.
        Rule(path="block*/layer*/conv", method="basis",
             options={"num_basis": 36, "coef_kernel_size": 3, "allow_larger": True}, share="network"),
        Rule(path="transition*/conv", method="basis", options={"num_basis": _transition_rank}),
    ])
    resnet56 = Policy(name="basis-resnet56", rules=[
        # Shared per width: a 16-channel layer counted with its own basis is larger than dense.
        Rule(kernel="3x3", in_features=c, method="basis", options={"num_basis": m, "allow_larger": True},
             share="c{in_features}")
        for c, m in ((16, 24), (32, 48), (64, 84))
    ])
    out = [
        Preset("basis-vgg16", vgg, "filter basis m=128 over 128-channel splits, conv3-conv12 (Table 9)",
               FILTER_BASIS, {"vgg16_cifar": ModelSetting(paper=PaperFigure(
                   "", "3.21M", "21.8%", f"{_FB} Table 5"))}),
        Preset("basis-densenet40", densenet,
               "one 36-filter basis sliced by all dense layers, 3x3 coefficient conv; transitions c->c/6->c "
               "(Table 4 'M36T6', Table 7)",
               FILTER_BASIS, {"densenet40": ModelSetting({"stem_features": 24}, PaperFigure(
                   "1041k", "331k", "31.8%", f"{_FB} Tables 4-5",
                   "the authors' transitions also add an identity shortcut (no parameters)"))}),
        Preset("basis-resnet56", resnet56,
               "group-wise bases m=24/48/84 over 16/32/64 channels, by input channels as in the authors' code",
               FILTER_BASIS, {"resnet56": ModelSetting(paper=PaperFigure(
                   "", "186k", "21.9%", f"{_FB} Table 5 / Table 8",
                   "the authors' code gives 195,002 (ours): the strided first conv of stages 2 and 3 uses the "
                   "previous stage's basis; the printed 186k is not reproducible from Table 8"))}),
    ]
    block = "block*/conv[12]"
    for name, model, m, split, shared, figure in [
        ("basis-edsr", "edsr", 32, None, False, ("1180k", "164k", "13.9%", "Table 3 'Basis'")),
        ("basis-edsr-s", "edsr", 32, None, True, ("1180k", "90k", "7.6%", "Table 3 'Basis-S'")),
        ("basis-edsr8-27", "edsr_8_128", 27, None, False, ("295k", "69k", "23.4%", "Table 2 'Basis-128-27'")),
        ("basis-edsr8-40", "edsr_8_128", 40, None, False, ("295k", "102k", "34.7%", "Table 2 'Basis-128-40'")),
        ("basis-srresnet-14", "srresnet", 14, None, False, ("74k", "18k", "24.3%", "Table 2 'Basis-64-14'")),
        ("basis-srresnet-32", "srresnet", 32, 32, False, ("74k", "27k", "36.1%", "Table 2 'Basis-32-32'")),
    ]:
        options = {"num_basis": m, **({"split_size": split} if split else {})}
        policy = Policy(name=name, rules=[
            Rule(path=block, method="basis", options=options, share="{parent}" if shared else None)])
        sharing = "the two convs of a block share one basis" if shared else "one basis per conv"
        out.append(Preset(name, policy, f"filter basis m={m} in every residual block, {sharing} (per block)",
                          PER_BLOCK, {model: ModelSetting({"scale": 4}, PaperFigure(
                              *figure[:3], f"{_FB} {figure[3]}", "one residual block, conv weights"))}))
    return out


def _approx_presets() -> list[Preset]:
    cifar = per_group_rules("cosine", "3,3,3,2", ["stem_conv", "stage1/*", "stage2/*", "stage3/*"])
    imagenet = per_group_rules("cosine", "6,3,3,3,2",
                               ["stem_conv", "stage1/*", "stage2/*", "stage3/*", "stage4/*"])
    depths = (3, 3, 9, 3)
    harmonics = expand_runs("7x3,7x3,7x9,6x3")
    paths = [f"stage{s + 1}/block{b}/dwconv" for s, d in enumerate(depths) for b in range(d)]
    convnext = [Rule(path=p, method="cosine", options={"harmonics": n}) for p, n in zip(paths, harmonics)]
    return [
        Preset("approx-resnet32", Policy(name="approx-resnet32", rules=cifar),
               "CosConv harmonics 3,3,3,2 (stem, stages 1-3)", ALL,
               {"resnet32": ModelSetting(paper=PaperFigure("0.46M", "0.27M", "57.74%", f"{_AC} Table 1"))}),
        Preset("approx-resnet18", Policy(name="approx-resnet18", rules=imagenet),
               "CosConv harmonics 6,3,3,3,2 (stem, stages 1-4); 1x1 shortcuts dense",
               Counting(norm=False),
               {"resnet18_imagenet": ModelSetting(paper=PaperFigure(
                   "11.68M", "7.09M", "60.70%", f"{_AC} Table 2",
                   "counted without batch norm, as the paper's 7.09M"))}),
        Preset("approx-convnext", Policy(name="approx-convnext", rules=convnext),
               "CosConv on the 7x7 depthwise convs, harmonics 7x3,7x3,7x9,6x3 (per block)",
               Counting(norm=False, classifier=False, other=False, conv_bias=False, scope="*/dwconv"),
               {"convnext_tiny": ModelSetting(paper=PaperFigure(
                   "0.33M", "0.30M", "90.90%", f"{_AC} Table 3",
                   "the paper's ratios lie between ours without and with the depthwise biases"))}),
    ]


def _fdc3d_presets() -> list[Preset]:
    out = []
    for name, p_c, speed in (("fdc3d-2x", 1 / 4, 2), ("fdc3d-4x", 5 / 8, 4)):
        rate = (1 - p_c) * (2 / 3)  # c't'/(ct) of Eq. (13)
        policy = Policy(name=name, rules=[
            # The 7x7x7 stem sees 3 RGB channels, too few to prune: it reaches the same rate
            # c't'/(ct) through time alone (2x: 4 of 7 rows, the four the paper's Fig. 3 keeps).
            Rule(path="stem_conv", kernel=">1", method="fdc3d", options={"p_t": 1 - rate}, optional=True),
            Rule(kernel=">1", method="fdc3d", options={"p_c": p_c, "p_t": 1 / 3}),
        ])
        frac = f"1/{speed}"
        out.append(Preset(
            name, policy,
            f"FDC3D on every k x k x k conv, (p_c, p_t) = ({p_c:g}, 1/3), stem time-only to the same rate: "
            f"~{speed}x fewer MACs",
            CONV_WEIGHTS, {"resnet3d_18": ModelSetting({"num_classes": 101}, PaperFigure(
                "", f"~{frac}", f"~{frac}", "FDC3D Eq. (13)-(14), Sec. 5.1",
                "the paper gives the rates c't'/(ct), not counts"))}))
    return out


def _registry() -> Mapping[str, Preset]:
    presets = [Preset("dense", Policy(name="dense"), "no compression (the baseline)", ALL,
                      {"resnet18_cifar": ModelSetting()}),
               _filtermap(), *_basis_presets(), *_approx_presets(), *_fdc3d_presets()]
    return types.MappingProxyType({p.name: p for p in presets})


PRESETS: Mapping[str, Preset] = _registry()
"""Preset name -> :class:`Preset`."""


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
      ValueError: an unknown name, listing the valid ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"preset name must be a string, got {name!r}")
    if name not in PRESETS:
        raise ValueError(f"unknown policy preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]
