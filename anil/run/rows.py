"""Where a training run's metric rows go: the metrics file, and the experiment trackers beside it."""

from __future__ import annotations

from typing import Any, Protocol

from anil.run.trackers import Trackers


class RowWriter(Protocol):
    def write(self, row: dict[str, Any]) -> None: ...


class Fanout:
    """metrics.csv first (the record), then the trackers."""

    def __init__(self, record: RowWriter, trackers: Trackers):
        self.record, self.trackers = record, trackers

    def write(self, row: dict[str, Any]) -> None:
        self.record.write(row)
        self.trackers.write(row)


class NullWriter:
    """What processes other than rank 0 write metrics to: nothing."""

    def write(self, row: dict[str, Any]) -> None:
        pass

    def __enter__(self) -> NullWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
