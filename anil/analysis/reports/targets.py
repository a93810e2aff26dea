"""Reaching a loss: the common target a cost claim is judged at, what each run paid to reach it,
and the guard that leaves a claim unjudged when the runs never learned."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from anil.analysis import claims
from anil.analysis.overlap import Occupancy
from anil.analysis.statistics import Verdict
from anil.analysis.thresholds import LEARNED


def common_target(*groups: Curves) -> float:
    """The loss level the median run of every N (of every group of curves) reaches: the worst
    median final smoothed loss."""
    return max(
        float(np.median([run["smooth_loss"].iloc[-1] for run in runs.values()]))
        for curves in groups
        for runs in curves.values()
    )


def cost_to(curves: Curves, column: str = "time") -> tuple[claims.Costs, float]:
    """Each run's `column` (training seconds, an evaluation count or priced seconds) when its
    smoothed loss first reaches the common target (see above)."""
    target = common_target(curves)
    return costs_at(curves, target, column), target


def reached(curves: Curves, target: float) -> dict[int, tuple[int, int]]:
    """N -> (runs whose smoothed loss reached `target`, runs)."""
    return {
        n: (sum(bool((run["smooth_loss"] <= target).any()) for run in runs.values()), len(runs))
        for n, runs in curves.items()
    }


def costs_at(curves: Curves, target: float, column: str) -> claims.Costs:
    """Each run's `column` at the first row where its smoothed loss is at most `target`; a run that
    never gets there is given its last row's (a lower bound on what it would have cost)."""
    costs: claims.Costs = {}
    for n, runs in curves.items():
        for seed, run in runs.items():
            there = run[run["smooth_loss"] <= target]
            costs.setdefault(n, {})[seed] = float((there if len(there) else run)[column].iloc[0 if len(there) else -1])
    return costs


def start_level(*groups: Curves) -> float:
    """Where training started: the lowest, over every group and N, of the median run's first logged
    training loss. Per N, because that loss is taken after the first inner adaptation, so a larger N
    starts lower, and a target above where some N started is reached by adapting, not meta-training."""
    return min(
        float(np.median([run["loss"].iloc[0] for run in runs.values()]))
        for curves in groups
        for runs in curves.values()
    )


def chance(jobs: pd.DataFrame) -> float:
    """The training loss of a uniform guess over the jobs' classes per task, ln(ways)."""
    return math.log(int(jobs["ways"].iloc[0]))


def unless_stalled(judged: claims.Judgement, target: float, chance_loss: float, *groups: Curves) -> claims.Judgement:
    """`judged`, or inconclusive when the common target is not clearly (by LEARNED) below chance and
    where each group of runs (each algorithm) started at every N: then reaching it says nothing about
    learning, and its cost nothing about the claim."""
    start = start_level(*groups)
    if target < (1 - LEARNED) * min(start, chance_loss):
        return judged
    reason = (
        f"the common target ({target:.3g}) is not below both where training started at every N (lowest "
        f"{start:.3g}) and chance ({chance_loss:.3g}): reaching it says nothing about meta-training"
    )
    return dataclasses.replace(judged, verdict=Verdict.INCONCLUSIVE, reason=reason)


def unless_unlearned(judged: claims.Judgement, curves: Curves, chance_loss: float) -> claims.Judgement:
    """`judged`, or inconclusive when at some N the median run ended no lower (by LEARNED) than
    chance or where it started: comparing how fast runs converge says nothing where some did not
    learn at all (a run stuck at chance has a small gradient too)."""
    stuck = []
    for n, runs in sorted(curves.items()):
        final = float(np.median([run["smooth_loss"].iloc[-1] for run in runs.values()]))
        start = float(np.median([run["loss"].iloc[0] for run in runs.values()]))
        if final >= (1 - LEARNED) * min(start, chance_loss):
            stuck.append(n)
    if not stuck:
        return judged
    reason = (
        f"the median run at N={stuck} ended at or above chance ({chance_loss:.3g}) or where it started: "
        "it did not learn"
    )
    return dataclasses.replace(judged, verdict=Verdict.INCONCLUSIVE, reason=reason)


def unless_alone(judged: claims.Judgement, timing: Occupancy, compared: str) -> claims.Judgement:
    """`judged` on the runs' own clocks, or inconclusive unless the jobs trained one at a time on
    their host (anil/analysis/overlap.py): shared cores bias the clocks unevenly. `compared`: what
    the clocks would compare (N, or the two algorithms)."""
    if timing.trusted:
        return judged
    reason = f"the runs' own clocks cannot compare {compared}: {timing.describe()}"
    return dataclasses.replace(judged, verdict=Verdict.INCONCLUSIVE, reason=reason)


Curves = dict[int, dict[int, pd.DataFrame]]  # N -> seed -> one run's curve (seed_curves)
