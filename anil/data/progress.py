"""Progress bars where people wait for data (rendering, decoding): shown on a terminal, quiet when
stderr is not one and in multirun sweeps (the command line sets `enabled`)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

enabled = True  # False in multirun sweeps: many jobs' bars would interleave in one log


def bar(items: Iterable[T], total: int, description: str, unit: str) -> Iterator[T]:
    shown = enabled and sys.stderr.isatty()
    yield from tqdm(items, total=total, desc=description, unit=unit, disable=not shown, leave=False)
