"""The theorems' quantity in the sweeps: the least full-objective ‖∇L_meta‖² over the iterations
(Definition 1's ε-stationarity, which Theorems 1 and 2 bound), how densely the runs sampled it, and
the guard that keeps a verdict on it inconclusive where the samples were too sparse to find that
least value. Torch-free."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import pandas as pd

from anil.analysis import claims
from anil.analysis.statistics import Verdict
from anil.analysis.thresholds import GRADIENT_EVERY, GRADIENT_TASKS
from anil.run.metrics import OBJECTIVE_METRICS


class Gradients(NamedTuple):
    levels: claims.Levels  # N -> seed -> log10 of the run's least ‖∇L_meta‖² over `points`
    points: list[int]  # the iterations where every run evaluated it

    @property
    def spacing(self) -> str:
        points = self.points
        return f"{len(points)} evaluation{'s' if len(points) > 1 else ''}, iterations {points[0]}–{points[-1]}"


def gradient_levels(curves: dict[int, dict[int, pd.DataFrame]]) -> Gradients | None:
    """log10 of the smallest full-objective ‖∇L_meta‖² (both blocks, on the runs' fixed task set)
    over the iterations where every run evaluated it: Theorems 1 and 2 bound the minimum over
    iterations (Definition 1's ε-stationarity), not the last value. None when the runs did not log it."""
    evaluated: set[int] | None = None
    for runs in curves.values():
        for run in runs.values():
            if not all(column in run for column in OBJECTIVE_METRICS):
                return None
            done = set(run.dropna(subset=list(OBJECTIVE_METRICS))["iteration"].astype(int))
            evaluated = done if evaluated is None else evaluated & done
    if not evaluated:
        return None
    points = sorted(evaluated)

    def level(run: pd.DataFrame) -> float:
        rows = run[run["iteration"].isin(points)]
        return math.log10(float(sum(rows[column] for column in OBJECTIVE_METRICS).min()))

    return Gradients({n: {s: level(run) for s, run in runs.items()} for n, runs in curves.items()}, points)


def gradient_tasks(jobs: pd.DataFrame) -> int | None:
    """The fixed tasks every job evaluated ‖∇L_meta‖² on (the fewest), None where not recorded."""
    if "grad_eval_tasks" not in jobs or jobs["grad_eval_tasks"].isna().any():
        return None
    return int(jobs["grad_eval_tasks"].min())


def unless_dense(judged: claims.Judgement, evaluated: list[int], tasks: int | None) -> claims.Judgement:
    """`judged` on min ‖∇L_meta‖², or inconclusive unless it was evaluated at least every
    GRADIENT_EVERY iterations (from the start) on at least GRADIENT_TASKS tasks: the theorems bound
    the least value over the iterations, which sparse samples can miss. `tasks`: None if unrecorded."""
    gap = max(b - a for a, b in zip([0, *evaluated], evaluated))
    if gap <= GRADIENT_EVERY and tasks is not None and tasks >= GRADIENT_TASKS:
        return judged
    on = "an unrecorded number of" if tasks is None else str(tasks)
    reason = (
        f"‖∇L_meta‖² was evaluated every {gap} iterations on {on} tasks; the least value over the iterations "
        f"that Theorems 1-2 bound needs at most every {GRADIENT_EVERY} on at least {GRADIENT_TASKS}"
    )
    return dataclasses.replace(judged, verdict=Verdict.INCONCLUSIVE, reason=reason)
