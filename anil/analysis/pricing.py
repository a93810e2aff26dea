"""What a run's iterations cost: the paper's evaluation counts, and seconds at a clean, measured
time per iteration. Torch-free: the reports read it.

The paper states complexity as counts (Section 3.3, Tables 1 and 2): gradient evaluations in w and
in φ, and second-order products (∇²_w L_S v and ∇_φ∇_w L_S v). The runs log those counts per
iteration (metrics.csv; anil/engine/opcount.py), so the counts to a target are exact. Table 2
compares ANIL with MAML in *entries*: an evaluation counted by the dimension it fills
(n_w or n_φ for a gradient; n_w², n_w·n_φ or MAML's (n_w + n_φ)² for a second-order product).

Seconds are a second view, and depend on the machine: they are iterations to the target times
the seconds one iteration of that configuration takes, timed round-robin in one process
(anil/analysis/iteration_time.py, docs/data/iteration-timing.json), not the runs' own clocks,
which jobs sharing the machine distort (anil/analysis/overlap.py). How the priced verdicts come
out depends on what an inner step costs against the rest of an iteration (a body pass): that
ratio is fitted from the same timing and stated beside them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

GRADIENTS = ("grad_evals_w", "grad_evals_phi")  # the paper's gradient evaluations
SECOND_ORDER = ("second_order_w", "second_order_phi")  # its second-order evaluations
COUNT_VIEWS = {  # column added to a curve -> (the counters it sums, what it is called in the documents)
    "gradient_evals": (GRADIENTS, "gradient evaluations (∇_w and ∇_φ, counted)"),
    "second_order_evals": (SECOND_ORDER, "second-order evaluations (∇²_w and ∇_φ∇_w products, counted)"),
}


@dataclass(frozen=True)
class Pace:
    """Measured seconds per iteration of each (algorithm, geometry, N), with how they were measured."""

    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    source: Path

    def seconds(self, algorithm: str, geometry: str, n: int) -> float | None:
        row = self._row(algorithm, geometry, n)
        return float(row["seconds"]) if row else None

    def expected(self, algorithm: str, geometry: str, n: int, dataset: str, tasks: int) -> float | None:
        """Seconds one iteration takes alone: the timed row at this N, else the line fitted through
        the timed N (inner_step_ratio); None where no row has this dataset and batch of tasks."""
        if not any(r.get("dataset") == dataset and int(r.get("B", -1)) == tasks for r in self.rows):
            return None
        timed = self.seconds(algorithm, geometry, n)
        fitted = self.inner_step_ratio(geometry, algorithm)
        return timed if timed is not None or fitted is None else fitted[1] + fitted[0] * n

    def dimensions(self, geometry: str) -> tuple[int, int] | None:
        """(n_w, n_φ) of the network the timing built for `geometry`, where it recorded them."""
        row = next((r for r in self.rows if r["geometry"] == geometry and "n_w" in r), None)
        return (int(row["n_w"]), int(row["n_phi"])) if row else None

    def inner_step_ratio(self, geometry: str, algorithm: str = "anil") -> tuple[float, float] | None:
        """(seconds of one inner step, seconds of the rest of an iteration) from a least-squares
        line through the seconds per iteration against N; None with fewer than two N."""
        points = sorted((int(r["N"]), float(r["seconds"])) for r in self.rows if self._is(r, algorithm, geometry))
        if len({n for n, _ in points}) < 2:
            return None
        slope, intercept = np.polyfit([n for n, _ in points], [s for _, s in points], 1)
        return float(slope), float(intercept)

    def describe(self) -> str:
        meta = self.meta
        threads = int(meta.get("threads", 0))
        repeats = {int(r.get("repeats", 0)) for r in self.rows}
        return (
            f"timed round-robin in one process on {meta.get('machine')} ({meta.get('cpus')} CPUs, torch "
            f"{meta.get('torch')}, {threads} thread{'' if threads == 1 else 's'}, {max(repeats)} iterations per "
            f"configuration, load average {meta.get('load_average', float('nan')):.2f} when it ended; "
            f"`{meta.get('command')}`, {meta.get('date')})"
        )

    def _row(self, algorithm: str, geometry: str, n: int) -> dict[str, Any] | None:
        return next((r for r in self.rows if self._is(r, algorithm, geometry) and int(r["N"]) == n), None)

    @staticmethod
    def _is(row: dict[str, Any], algorithm: str, geometry: str) -> bool:
        return row["algorithm"] == algorithm and row["geometry"] == geometry


def read_pace(path: Path) -> Pace | None:
    """docs/data/iteration-timing.json, or None where it was not measured."""
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return Pace(list(data["rows"]), dict(data["meta"]), path)


def has_counters(frame: pd.DataFrame) -> bool:
    """Whether a run's rows carry the evaluation counters (runs before anil counted them do not)."""
    return all(c in frame for c in (*GRADIENTS, *SECOND_ORDER))


def with_costs(run: pd.DataFrame, pace: Pace | None, algorithm: str) -> pd.DataFrame:
    """One run's curve (sorted by iteration) with cumulative counts per view and per counter, and,
    where its configuration was timed, `priced`: iterations times the measured seconds of one."""
    added: dict[str, pd.Series] = {}
    if has_counters(run):
        for counter in (*GRADIENTS, *SECOND_ORDER):
            added[f"{counter}_total"] = run[counter].astype(float).cumsum()
        for column, (counters, _) in COUNT_VIEWS.items():
            added[column] = sum((added[f"{c}_total"] for c in counters), pd.Series(0.0, index=run.index))
    if pace is not None:
        seconds = pace.seconds(algorithm, str(run["geometry"].iloc[0]), int(run["N"].iloc[0]))
        if seconds is not None:
            added["priced"] = run["iteration"].astype(float) * seconds
    return run.assign(**added)


def entries(run: pd.DataFrame, dimensions: tuple[int, int], algorithm: str) -> dict[str, pd.Series]:
    """Table 2's gradient and second-order entry evaluations, cumulative, of one curve from
    with_costs. ANIL's gradients fill n_w (in w) or n_φ (in φ) entries and its second-order products
    n_w² (∇²_w) or n_w·n_φ (∇_φ∇_w); MAML adapts every parameter, so each of its φ-gradients fills
    n_w + n_φ and each second-order product (n_w + n_φ)² (its w-counters come out of those passes)."""
    n_w, n_phi = dimensions
    if algorithm == "maml":
        gradient = run["grad_evals_phi_total"] * (n_w + n_phi)
        second = run["second_order_phi_total"] * (n_w + n_phi) ** 2
    else:
        gradient = run["grad_evals_w_total"] * n_w + run["grad_evals_phi_total"] * n_phi
        second = run["second_order_w_total"] * n_w**2 + run["second_order_phi_total"] * n_w * n_phi
    return {"gradient_entries": gradient, "second_order_entries": second}
