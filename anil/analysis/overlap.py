"""Whether a sweep's time axis can be trusted: did its jobs share a machine while they trained?

Two jobs timed side by side on a few cores slow each other down by amounts that differ from job
to job (measured here: identical work at 0.69 against 0.55 s/iteration), and the spread within one
configuration does not show it. Each row of metrics.csv records when its step ended (`clock`, Unix
seconds) and the step's wall seconds (the difference of `time`), and summary.json the host: a job
occupied its host from each step's start to its end. Jobs on one host whose steps interleave in
time shared it. Runs written before `clock` existed cannot tell: their timing is "not recorded".
Torch-free: the plot and the reports read it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pandas as pd

# Rows of one job further apart than this (seconds, beyond the step itself) are two sessions (a
# stop and a resume), not one: an evaluation between rows takes seconds to minutes.
SESSION_GAP = 900.0

Span = tuple[float, float]  # (start, end), Unix seconds


class Sharing(enum.Enum):
    ALONE = "alone"  # no two jobs on one host trained at the same time
    SHARED = "shared"  # some did: wall-clock comparisons between them are biased
    UNRECORDED = "unrecorded"  # the runs did not record when they ran


@dataclass(frozen=True)
class Occupancy:
    sharing: Sharing
    overlapping: int  # jobs that trained at the same time as another job on their host
    jobs: int

    @property
    def trusted(self) -> bool:
        return self.sharing is Sharing.ALONE

    def describe(self) -> str:
        """One line for a figure or a document."""
        if self.sharing is Sharing.ALONE:
            return f"the {self.jobs} jobs trained one at a time on each host"
        if self.sharing is Sharing.SHARED:
            return f"{self.overlapping} of {self.jobs} jobs trained at the same time as another on one host"
        return "the runs did not record when they trained, so sharing the machine cannot be ruled out"


def spans(rows: pd.DataFrame) -> list[Span]:
    """One job's occupied spans from its rows' `time` (cumulative training seconds) and `clock`."""
    ordered = rows.sort_values("iteration")
    step = ordered["time"].diff().fillna(ordered["time"].iloc[0]).clip(lower=0.0)
    merged: list[list[float]] = []
    for start, end in zip(ordered["clock"] - step, ordered["clock"]):
        if merged and start - merged[-1][1] < SESSION_GAP:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def occupancy(table: pd.DataFrame) -> Occupancy:
    """`table`: rows of many jobs with columns job, host, iteration, time and clock (per_seed's)."""
    jobs = table["job"].nunique()
    if "clock" not in table or table["clock"].isna().any():
        return Occupancy(Sharing.UNRECORDED, 0, jobs)
    host = lambda rows: str(rows["host"].iloc[0]) if "host" in rows else ""  # noqa: E731
    by_job = {job: (host(rows), spans(rows)) for job, rows in table.groupby("job")}
    shared = {
        a
        for a, (host_a, spans_a) in by_job.items()
        for b, (host_b, spans_b) in by_job.items()
        if a != b and host_a == host_b and _intersect(spans_a, spans_b)
    }
    return Occupancy(Sharing.SHARED if shared else Sharing.ALONE, len(shared), jobs)


def _intersect(first: list[Span], second: list[Span]) -> bool:
    return any(min(b1, b2) > max(a1, a2) for a1, b1 in first for a2, b2 in second)
