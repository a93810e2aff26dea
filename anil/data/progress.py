"""Progress where people wait for data (rendering, decoding): a bar on a terminal; elsewhere (a log
file, a sweep, CI) log lines that say what is being done, how long it should take once the rate
is known, and how long it took. The command line turns the bar off in multirun sweeps
(`enabled`), where many jobs' bars would interleave in one log."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

log = logging.getLogger(__name__)

enabled = True  # False in multirun sweeps: many jobs' bars would interleave in one log
ESTIMATE_AFTER = 2.0  # seconds of work before the log states the time left (the rate is known by then)


def bar(items: Iterable[T], total: int, description: str, unit: str) -> Iterator[T]:
    if enabled and sys.stderr.isatty():
        yield from tqdm(items, total=total, desc=description, unit=unit, leave=False)
        return
    yield from _logged(items, total, description, unit)


def _logged(items: Iterable[T], total: int, description: str, unit: str) -> Iterator[T]:
    units = unit + ("es" if unit.endswith("s") else "s")
    log.info("%s: %d %s (done once, then read from the cache)", description, total, units)
    started = time.perf_counter()
    estimated = False
    for done, item in enumerate(items, 1):
        yield item
        elapsed = time.perf_counter() - started
        if not estimated and elapsed >= ESTIMATE_AFTER and done < total:
            estimated = True
            left = elapsed / done * (total - done)
            log.info("%s: %d of %d %s in %.0f s, about %.0f s left", description, done, total, units, elapsed, left)
    log.info("%s: done in %.1f s", description, time.perf_counter() - started)
