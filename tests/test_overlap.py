"""Whether jobs shared a machine while they trained, from the clocks their rows recorded."""

import math

import pandas as pd

from anil.analysis.overlap import SESSION_GAP, Sharing, occupancy, spans


def job(name: str, start: float, steps: int, step: float = 1.0, host: str = "a") -> pd.DataFrame:
    """A job's rows: `steps` iterations of `step` seconds each, the first starting at `start`."""
    iterations = range(1, steps + 1)
    return pd.DataFrame({
        "job": name, "host": host, "iteration": list(iterations),
        "time": [i * step for i in iterations], "clock": [start + i * step for i in iterations],
    })  # fmt: skip


def test_jobs_one_after_another_trained_alone():
    table = pd.concat([job("a", 0, 10), job("b", 11, 10), job("c", 30, 5)])
    found = occupancy(table)
    assert found.sharing is Sharing.ALONE and found.trusted and found.jobs == 3


def test_jobs_side_by_side_shared_the_machine():
    table = pd.concat([job("a", 0, 10), job("b", 5, 10), job("c", 100, 5)])
    found = occupancy(table)
    assert found.sharing is Sharing.SHARED and not found.trusted
    assert found.overlapping == 2 and "2 of 3 jobs" in found.describe()


def test_jobs_on_different_hosts_may_run_at_once():
    table = pd.concat([job("a", 0, 10, host="node1"), job("b", 0, 10, host="node2")])
    assert occupancy(table).sharing is Sharing.ALONE


def test_a_resumed_job_occupies_two_sessions_not_the_gap_between():
    first, later = job("a", 0, 5), job("a", 2 * SESSION_GAP, 5)
    later = later.assign(iteration=later["iteration"] + 5, time=later["time"] + 5)
    resumed = pd.concat([first, later])
    assert len(spans(resumed)) == 2
    in_the_gap = job("b", SESSION_GAP, 10)  # ran while job a was stopped
    assert occupancy(pd.concat([resumed, in_the_gap])).sharing is Sharing.ALONE


def test_runs_without_clocks_cannot_tell():
    old = job("a", 0, 5).drop(columns="clock")
    assert occupancy(old).sharing is Sharing.UNRECORDED
    mixed = pd.concat([job("a", 0, 5), job("b", 10, 5).assign(clock=math.nan)])
    found = occupancy(mixed)
    assert found.sharing is Sharing.UNRECORDED and "cannot be ruled out" in found.describe()
