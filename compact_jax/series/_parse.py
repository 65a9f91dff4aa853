"""Per-block harmonics configurations as written in the paper's tables.

The paper names a network configuration by one harmonics entry per group of
layers:

* ResNet-20/32 on CIFAR-10 (Table 1), ``"3,3,3,2"``: 4 entries = the 3x3 stem
  conv, then the 3x3 convs of stages 1, 2, 3 (16, 32, 64 channels).
* ResNet-18 on ImageNet (Tables 2, 4), ``"6,3,3,3,2"``: 5 entries = the 7x7
  stem conv, then the 3x3 convs of stages 1-4 (64, 128, 256, 512 channels).
  The 1x1 projection shortcuts are not approximated (a 1x1 kernel has one
  harmonic); with this reading the paper's parameter counts are reproduced
  exactly (see ``tests/test_series.py``).
* ConvNeXt-T (Table 3), ``"7x3,7x3,7x9,6x3"``: one entry per 7x7 depthwise conv,
  written run-length (``N x R`` = ``R`` consecutive blocks with ``N``
  harmonics; the paper's :math:`7_{\\times 3}`).

An entry ``Nh:Nw`` gives anisotropic harmonics (the paper's future work).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from typing import Any

from compact_jax.validate import check_int_tuple

__all__ = ["parse_harmonics"]

_ENTRY = re.compile(r"^(?P<h>[+-]?\d+)(?::(?P<w>[+-]?\d+))?(?:[x×*](?P<r>[+-]?\d+))?$")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _parse_string(config: str) -> list[tuple[int, int]]:
    text = "".join(config.split())
    if not text:
        raise ValueError(f"harmonics config must not be empty, got {config!r}")
    entries: list[tuple[int, int]] = []
    for token in text.split(","):
        match = _ENTRY.match(token)
        if match is None:
            raise ValueError(
                f"harmonics config {config!r}: cannot parse entry {token!r}; expected an integer N, "
                f"'Nh:Nw', optionally followed by a repeat count 'xR' (e.g. '6,3,3,3,2' or '7x3,6x3')"
            )
        nh = int(match["h"])
        nw = nh if match["w"] is None else int(match["w"])
        repeat = 1 if match["r"] is None else int(match["r"])
        if nh < 1 or nw < 1:
            raise ValueError(f"harmonics config {config!r}: entry {token!r} must have harmonics >= 1")
        if repeat < 1:
            raise ValueError(f"harmonics config {config!r}: entry {token!r} must have a repeat count >= 1")
        entries.extend([(nh, nw)] * repeat)
    return entries


def parse_harmonics(
    config: str | Sequence[int | tuple[int, int]],
    *,
    kernel_sizes: int | Sequence[int | tuple[int, int]] | None = None,
    num_groups: int | None = None,
) -> tuple[tuple[int, int], ...]:
    """Parses a per-block harmonics configuration into one ``(N_h, N_w)`` per group.

    Args:
      config: ``"6,3,3,3,2"``, ``"7x3,7x3,7x9,6x3"`` (run-length), ``"5:3,3"``
        (anisotropic), or a sequence of ints / ``(N_h, N_w)`` pairs.
      kernel_sizes: the kernel size of each group's convs to validate against:
        one int for all groups, or one int / ``(kh, kw)`` per group.
      num_groups: the number of groups the network has; checked if given.

    Returns:
      A tuple with one ``(N_h, N_w)`` per group (run-lengths expanded).

    Raises:
      TypeError / ValueError naming the bad entry: unparsable or non-integer
      entries, harmonics or repeat counts ``<= 0``, harmonics larger than the
      group's kernel size, a wrong number of groups.
    """
    if isinstance(config, str):
        entries = _parse_string(config)
    elif isinstance(config, Sequence) and not isinstance(config, bytes):
        if not config:
            raise ValueError(f"harmonics config must not be empty, got {config!r}")
        entries = [
            check_int_tuple(f"harmonics config {config!r} entry {i}", item, ndim=2, minimum=1)
            for i, item in enumerate(config)
        ]
    else:
        raise TypeError(
            f"harmonics config must be a string like '6,3,3,3,2' or a sequence of ints, got {config!r}"
        )
    if num_groups is not None and len(entries) != num_groups:
        raise ValueError(
            f"harmonics config {config!r} gives {len(entries)} groups, expected {num_groups}"
        )
    if kernel_sizes is not None:
        if _is_int(kernel_sizes):
            sizes = [kernel_sizes] * len(entries)
        elif isinstance(kernel_sizes, Sequence) and not isinstance(kernel_sizes, str):
            sizes = list(kernel_sizes)
            if len(sizes) != len(entries):
                raise ValueError(
                    f"kernel_sizes {kernel_sizes!r} has {len(sizes)} entries but harmonics config "
                    f"{config!r} gives {len(entries)} groups"
                )
        else:
            raise TypeError(f"kernel_sizes must be an int or a sequence, got {kernel_sizes!r}")
        for i, (harmonics, size) in enumerate(zip(entries, sizes)):
            size = check_int_tuple(f"kernel_sizes entry {i}", size, ndim=2, minimum=1)
            if any(n > k for n, k in zip(harmonics, size)):
                raise ValueError(
                    f"harmonics config {config!r}: group {i} has harmonics {harmonics} larger than "
                    f"its kernel size {size}"
                )
    return tuple(entries)
