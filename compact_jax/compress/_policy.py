"""Compression policies: ordered rules saying which convolution gets which method.

Private helper of :mod:`compact_jax.compress` (import the public names from
there). A :class:`Rule` matches convolutions by parameter path, kernel size and
input channels and names a method with its hyperparameters; a :class:`Policy`
is an ordered list of rules where the first match wins and unmatched layers
keep ``Policy.default`` (dense).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import operator
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from compact_jax import registry
from compact_jax.validate import check_positive_int

__all__ = ["METHODS", "Rule", "Policy", "per_group_rules", "expand_runs", "SHARE_FIELDS"]

#: The method registry (:data:`compact_jax.METHODS`): names accepted by :class:`Rule`.
METHODS = registry.METHODS


#: Names a ``Rule.share`` template may use (see :class:`Rule`).
SHARE_FIELDS = ("path", "parent", "stage", "name", "in_features", "features")

_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
            "==": operator.eq, "!=": operator.ne}
_COMPARE_RE = re.compile(r"^(>=|<=|==|!=|>|<)\s*(\d+)$")
_EXACT_RE = re.compile(r"^\d+(x\d+)*$")


def _kernel_predicate(kernel: str | None) -> Callable[[tuple[int, ...]], bool]:
    if kernel is None:
        return lambda ks: True
    if not isinstance(kernel, str):
        raise TypeError(f"Rule.kernel must be a string such as '3x3', '3x3x3' or '>1', got {kernel!r}")
    text = kernel.replace(" ", "").lower()
    if _EXACT_RE.match(text):
        sizes = tuple(int(v) for v in text.split("x"))
        return lambda ks: tuple(ks) == sizes
    match = _COMPARE_RE.match(text)
    if match:
        op, bound = _COMPARE[match.group(1)], int(match.group(2))
        return lambda ks: all(op(k, bound) for k in ks)
    raise ValueError(
        f"Rule.kernel must be an exact size such as '3x3' / '1x1x1' or a comparison applied to every "
        f"kernel dim such as '>1' / '>=3' / '==1', got {kernel!r}"
    )


def _path_predicate(path: str) -> Callable[[str], bool]:
    if not isinstance(path, str) or not path:
        raise TypeError(f"Rule.path must be a non-empty glob pattern or 're:<regex>', got {path!r}")
    if path.startswith("re:"):
        try:
            pattern = re.compile(path[3:])
        except re.error as err:
            raise ValueError(f"Rule.path {path!r} is not a valid regular expression: {err}") from None
        return lambda p: pattern.fullmatch(p) is not None
    return lambda p: fnmatch.fnmatchcase(p, path)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rule:
    """Which convolutions get which method.

    A convolution matches when its parameter path (``"stage1/block0/conv1"``)
    matches ``path``, its kernel size satisfies ``kernel`` and its input
    channels equal ``in_features`` (each criterion optional).

    Examples::

        Rule(kernel=">1", method="filtermap")                 # every k x k conv, k > 1
        Rule(path="stage4/*", kernel=">1", method="cosine", options={"harmonics": 2})
        Rule(path="block*/conv[12]", method="basis", options={"num_basis": 32}, share="{parent}")

    Attributes:
      method: a name (or alias) of :data:`compact_jax.METHODS`.
      path: a glob over the ``/``-joined path (``*`` also crosses ``/``) or
        ``"re:<regex>"`` (full match).
      kernel: ``None`` (any), an exact size ``"3x3"`` / ``"1x1x1"``, or a
        comparison applied to every kernel dim (``">1"``, ``">=3"``, ``"==1"``).
      in_features: match only convolutions with this many input channels.
      options: the method's hyperparameters: its spec fields (``grid``,
        ``harmonics``, ``num_basis``, ``splits``, ``coef_kernel_size``,
        ``transform``, ...) plus ``split_size`` (basis: ``p``, sets
        ``splits = in_features / p``) and ``p_c`` / ``p_t`` (FDC3D channel and
        temporal pruning fractions, Algorithm 1). A callable value is called
        with the layer (a :class:`compact_jax.compress.ConvLayer`) and returns
        the value, e.g. ``{"num_basis": lambda layer: layer.in_features // 6}``.
      share: basis only: layers whose formatted ``share`` strings are equal
        share one filter basis. A ``str.format`` template over the layer's
        ``path``, ``parent`` (path without its last part), ``stage`` (first
        part), ``name`` (last part), ``in_features`` and ``features``:
        ``"{parent}"`` is block-wise sharing, ``"{stage}"`` group-wise,
        ``"network"`` network-wise. Layers whose split size ``p`` is below
        the basis's channels use its leading (``basis_slice``) channels; the
        basis has ``options["basis_in_features"]`` channels if given, else
        the largest ``p`` among its layers.
      optional: allow the rule to match no convolution (otherwise an error).
    """

    method: str = "dense"
    path: str = "*"
    kernel: str | None = None
    in_features: int | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    share: str | None = None
    optional: bool = False

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "method", registry.get_method(self.method).name)
        except ValueError:
            raise ValueError(f"Rule.method must be one of {', '.join(METHODS)}, got {self.method!r}") from None
        _path_predicate(self.path)
        _kernel_predicate(self.kernel)
        if self.in_features is not None:
            check_positive_int("Rule.in_features", self.in_features)
        if not isinstance(self.options, Mapping):
            raise TypeError(f"Rule.options must be a mapping of option name to value, got {self.options!r}")
        options = METHODS[self.method].rename_options(self.options, where=f"Rule(method={self.method!r}).options")
        object.__setattr__(self, "options", options)
        allowed = METHODS[self.method].options
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            raise ValueError(
                f"Rule(method={self.method!r}): unknown options {unknown}; valid options: {', '.join(allowed)}"
            )
        if "split_size" in self.options and "splits" in self.options:
            raise ValueError("Rule: give either options['splits'] or options['split_size'], not both")
        object.__setattr__(self, "options", types.MappingProxyType(dict(self.options)))
        if self.share is not None:
            if self.method != "basis":
                raise ValueError(f"Rule.share applies to method 'basis' only, got method={self.method!r}")
            if not isinstance(self.share, str) or not self.share:
                raise TypeError(f"Rule.share must be a non-empty format string, got {self.share!r}")
            try:
                self.share.format(**{name: "" for name in SHARE_FIELDS})
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(
                    f"Rule.share {self.share!r} may only use the fields {', '.join(SHARE_FIELDS)}: {err!r}"
                ) from None
        if not isinstance(self.optional, bool):
            raise TypeError(f"Rule.optional must be a bool, got {self.optional!r}")

    def __hash__(self) -> int:
        return hash((self.method, self.path, self.kernel, self.in_features,
                     tuple(sorted(self.options.items(), key=lambda kv: kv[0])), self.share, self.optional))

    def matches(self, layer: Any) -> bool:
        """Whether the convolution ``layer`` (path, kernel_size, in_features) matches."""
        return (
            _path_predicate(self.path)(layer.path)
            and _kernel_predicate(self.kernel)(layer.kernel_size)
            and (self.in_features is None or layer.in_features == self.in_features)
        )

    def describe(self) -> str:
        """Short text for error messages: ``path='stage1/*', kernel='>1' -> cosine``."""
        parts = [f"path={self.path!r}"]
        if self.kernel is not None:
            parts.append(f"kernel={self.kernel!r}")
        if self.in_features is not None:
            parts.append(f"in_features={self.in_features}")
        return f"{', '.join(parts)} -> {self.method}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    """An ordered list of rules; the first matching rule wins.

    Attributes:
      rules: the rules, tried in order.
      default: method of convolutions no rule matches (``"dense"``: unchanged).
      name: optional label shown in reports.
    """

    rules: Sequence[Rule] = ()
    default: str = "dense"
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.rules, (str, Rule)) or not isinstance(self.rules, Iterable):
            raise TypeError(f"Policy.rules must be a sequence of Rule, got {self.rules!r}")
        rules = tuple(self.rules)
        for i, rule in enumerate(rules):
            if not isinstance(rule, Rule):
                raise TypeError(f"Policy.rules[{i}] must be a Rule, got {type(rule).__name__}")
        object.__setattr__(self, "rules", rules)
        try:
            object.__setattr__(self, "default", registry.get_method(self.default).name)
        except ValueError:
            raise ValueError(f"Policy.default must be one of {', '.join(METHODS)}, got {self.default!r}") from None

    def __add__(self, other: Policy) -> Policy:
        """Rules of ``self`` first, then ``other``'s (``self``'s default and name)."""
        if not isinstance(other, Policy):
            return NotImplemented
        return dataclasses.replace(self, rules=self.rules + other.rules)


def expand_runs(config: str | Sequence[int]) -> tuple[int, ...]:
    """Run-length values in the papers' notation: ``"7x3,6x2"`` -> ``(7, 7, 7, 6, 6)``.

    Plain numbers stand for one value each: ``"6,3,3,3,2"`` -> ``(6, 3, 3, 3, 2)``.

    Raises:
      ValueError: an unparsable entry, a value or repeat count below 1
        (``"0,3"``, ``"7x0"``), or an empty config.
    """
    if isinstance(config, str):
        values: list[int] = []
        for token in config.replace(" ", "").split(","):
            match = re.fullmatch(r"(\d+)(?:[x\u00d7*](\d+))?", token)
            if not match:
                raise ValueError(f"expected values such as '6,3,3' or runs such as '7x3,6x2', got {config!r}")
            value, repeat = int(match.group(1)), int(match.group(2) or 1)
            if value < 1 or repeat < 1:
                what = f"value {value}" if value < 1 else f"repeat count {repeat}"
                raise ValueError(f"config {config!r}: entry {token!r} has {what}; values and repeat counts must be >= 1")
            values += [value] * repeat
        if not values:
            raise ValueError(f"config {config!r} is empty; expected values such as '6,3,3' or runs such as '7x3'")
        return tuple(values)
    return tuple(check_positive_int(f"config[{i}]", v) for i, v in enumerate(config))


def per_group_rules(
    method: str,
    values: str | Sequence[Any],
    groups: Sequence[str],
    *,
    option: str = "harmonics",
    kernel: str | None = ">1",
    options: Mapping[str, Any] | None = None,
    **rule_fields: Any,
) -> tuple[Rule, ...]:
    """One rule per path group, each with its own value of one option.

    ``per_group_rules("cosine", "6,3,3,3,2", ["stem_conv", "stage1/*", "stage2/*",
    "stage3/*", "stage4/*"])`` is the ApproxConv paper's ResNet-18 configuration
    (harmonics per block of layers; 1x1 convs stay dense via ``kernel=">1"``).

    Args:
      method: method of every rule.
      values: one value per group (a ``"6,3,3"`` string or a sequence).
      groups: one path glob per group.
      option: the option the values set.
      kernel: kernel criterion of every rule.
      options: options shared by every rule.
      **rule_fields: further :class:`Rule` fields (``share``, ``optional``, ...).
    """
    values = expand_runs(values) if isinstance(values, str) else tuple(values)
    groups = tuple(groups)
    if len(values) != len(groups):
        raise ValueError(
            f"per_group_rules: {len(values)} values {values} for {len(groups)} groups {groups}"
        )
    return tuple(
        Rule(method=method, path=group, kernel=kernel, options={**(options or {}), option: value},
             **rule_fields)
        for value, group in zip(values, groups)
    )
