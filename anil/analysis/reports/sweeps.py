"""A finished sweep as the reports read it: collected into CSV files, one curve per run (smoothed
training loss, time, evaluation counts and priced seconds), the numbers read off those curves with intervals over seeds,
and each figure's claims judged under each stepsize design (anil/analysis/claims.py's rules).

docs/reproduction.md's sections (the figures, the theorems' regime, ANIL against MAML, the other
initialisation) are all built from these pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from anil.analysis import claims
from anil.analysis.overlap import Occupancy, occupancy
from anil.analysis.pricing import COUNT_VIEWS, Pace, has_counters, with_costs
from anil.analysis.reports.jobs import SMOOTH, algorithm_of, init_of, tally
from anil.analysis.reports.markdown import table
from anil.analysis.reports.stationarity import gradient_levels, gradient_tasks, unless_dense
from anil.analysis.reports.targets import (
    Curves,
    chance,
    cost_to,
    costs_at,
    unless_alone,
    unless_stalled,
    unless_unlearned,
)
from anil.analysis.statistics import Interval, interval

SCHEDULES = ("constant", "inverse_n", "authors")  # the order designs are reported in
# The cost claims need a common target: the loss level that the median run of every N reaches,
# i.e. the worst N's median final (smoothed) loss. A run that never reaches it is given its whole
# training time, a lower bound on its cost.


@dataclass(frozen=True)
class Sweep:
    seeds: pd.DataFrame  # <name>-seeds.csv
    jobs: pd.DataFrame  # <name>-jobs.csv
    pace: Pace | None = None  # measured seconds per iteration of each configuration (iteration-timing.json)

    @property
    def counted(self) -> bool:
        """Whether the runs logged the paper's evaluation counts (anil/engine/opcount.py)."""
        return has_counters(self.seeds)

    @property
    def priced(self) -> bool:
        """Whether every configuration of the sweep was timed on its own (anil/analysis/pricing.py)."""
        if self.pace is None:
            return False
        algorithm = algorithm_of(self.jobs)
        return all(
            self.pace.seconds(algorithm, str(g), int(n)) is not None
            for g, n in self.jobs[["geometry", "N"]].drop_duplicates().itertuples(index=False)
        )

    @property
    def timing(self) -> Occupancy:
        """Whether the runs' own clocks can be compared: did the jobs share a machine?"""
        return occupancy(self.seeds)


def read(data_dir: Path, name: str, pace: Pace | None = None) -> Sweep:
    return Sweep(pd.read_csv(data_dir / f"{name}-seeds.csv"), pd.read_csv(data_dir / f"{name}-jobs.csv"), pace)


def completed(sweep: Sweep, fewest: int) -> Sweep:
    """A sweep still running (collected in parts) cut to its finished jobs, at the N (per stepsize
    design) where at least `fewest` seeds finished: a stopped run's curve ends early."""
    done = sweep.jobs[sweep.jobs["status"] == "completed"]
    enough = done.groupby(["alpha_schedule", "N"])["seed"].transform("nunique") >= fewest
    done = done[enough]
    return Sweep(sweep.seeds[sweep.seeds["job"].isin(done["job"])], done, sweep.pace)


def loss_at(curve: pd.DataFrame, column: str, value: float) -> float:
    """The smoothed loss at the last row with `column` <= value; NaN when the curve had not got
    that far at its first row (an iteration of this run takes longer than the whole budget)."""
    reached = curve.loc[curve[column] <= value, "smooth_loss"]
    return float(reached.iloc[-1]) if len(reached) else math.nan


def schedules(sweep: Sweep) -> list[str]:
    """The stepsize designs a sweep ran, in report order."""
    present = set(sweep.jobs["alpha_schedule"])
    return [schedule for schedule in SCHEDULES if schedule in present]


def design(jobs: pd.DataFrame, schedule: str) -> str:
    """How α followed N under `schedule`, from the steps the jobs used."""
    part = jobs[jobs["alpha_schedule"] == schedule]
    if schedule == "inverse_n":
        products = sorted({round(float(a) * int(n), 6) for a, n in zip(part["alpha"], part["N"])})
        return "fixed αN = " + ", ".join(f"{p:g}" for p in products)
    if schedule == "constant":
        return "fixed α = " + ", ".join(f"{a:g}" for a in sorted(part["alpha"].unique()))
    return "authors' α (" + ", ".join(f"N={n}: {a:g}" for n, a in part.groupby("N")["alpha"].first().items()) + ")"


def per_n(sweep: Sweep, schedule: str, checkpoints: tuple[int, ...]) -> pd.DataFrame:
    """One row per N: the smoothed loss after fixed iterations and after a fixed training time,
    the full objective's ‖∇L_meta‖² at its last evaluation, seconds (measured and counted) per
    iteration and divergences; every measured number with its 95% interval over seeds."""
    runs = seed_curves(sweep, schedule)
    budget = min(run["time"].max() for by_seed in runs.values() for run in by_seed.values())
    gradient = gradient_levels(runs)
    jobs = sweep.jobs[sweep.jobs["alpha_schedule"] == schedule]
    diverged = diverged_counts(sweep, schedule)
    rows = []
    for n, by_seed in sorted(runs.items()):
        alpha = float(jobs.loc[jobs["N"] == n, "alpha"].iloc[0])
        row: dict[str, Any] = {"N": n, "α": alpha, "αN": alpha * n}
        for iteration in checkpoints:
            row[f"loss@{iteration}"] = interval([loss_at(run, "iteration", iteration) for run in by_seed.values()])
        row["loss@time"] = interval([loss_at(run, "time", budget) for run in by_seed.values()])
        if gradient is not None:
            row["min ‖∇L_meta‖²"] = interval([10**v for v in gradient.levels[n].values()])
        row["s/iteration"] = interval([run["time"].max() / run["iteration"].max() for run in by_seed.values()])
        first = next(iter(by_seed.values()))  # the counts and the timed seconds are the same for every seed
        if "priced" in first:
            row["timed s/iteration"] = float(first["priced"].iloc[-1] / first["iteration"].iloc[-1])
        if sweep.counted:
            row["evaluations/iteration"] = float(
                (first["gradient_evals"].iloc[-1] + first["second_order_evals"].iloc[-1]) / first["iteration"].iloc[-1]
            )
        row["diverged"] = "{}/{}".format(*diverged[n])
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["budget"] = budget
    return frame


def markdown_table(frame: pd.DataFrame) -> list[str]:
    def cell(value: Any) -> str:
        if isinstance(value, Interval):
            return str(value)
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    return table(list(frame.columns), rows, [True] * len(frame.columns))


def seed_curves(sweep: Sweep, schedule: str) -> dict[int, dict[int, pd.DataFrame]]:
    """N -> seed -> that run's curve (iteration, time, loss smoothed over SMOOTH iterations, and the
    cumulative evaluation counts and priced seconds where the sweep has them: pricing.with_costs)."""
    chosen = sweep.seeds[sweep.seeds["alpha_schedule"] == schedule]
    algorithm = algorithm_of(sweep.jobs)
    curves: dict[int, dict[int, pd.DataFrame]] = {}
    for (n, seed), run in chosen.groupby(["N", "seed"]):
        run = run.sort_values("iteration")
        run = run.assign(smooth_loss=run["loss"].rolling(SMOOTH, min_periods=1).mean())
        run = with_costs(run, sweep.pace, algorithm)
        curves.setdefault(int(str(n)), {})[int(str(seed))] = run
    return curves


def levels_at(curves: dict[int, dict[int, pd.DataFrame]], iteration: int) -> claims.Levels:
    """log10 of each run's smoothed loss at `iteration` (the per-iteration claims' practical quantity)."""
    return {
        n: {s: math.log10(loss_at(run, "iteration", iteration)) for s, run in runs.items()}
        for n, runs in curves.items()
    }


def diverged_counts(sweep: Sweep, schedule: str) -> dict[int, tuple[int, int]]:
    """N -> (diverged runs, runs) for one stepsize schedule."""
    jobs = sweep.jobs[sweep.jobs["alpha_schedule"] == schedule]
    return {int(str(n)): counted for n, counted in tally(jobs, "N", jobs["diverged"]).items()}


Row = tuple[claims.Judgement, str, str]  # a judgement, the stepsize design, the quantity judged
Rules = tuple[Callable[[claims.Levels], claims.Judgement], Callable[[claims.Costs], claims.Judgement]]


CONVEX_RULES: Rules = (claims.convex_per_iteration, claims.convex_complexity)
NONCONVEX_RULES: Rules = (claims.nonconvex_per_iteration, claims.nonconvex_complexity)


def sweep_rows(name: str, sweep: Sweep, rules: Rules) -> list[tuple[str, Row]]:
    """One figure's claims judged under each stepsize design of `sweep`, each with its schedule."""
    per_iteration, complexity = rules
    rows: list[tuple[str, Row]] = []
    for schedule in schedules(sweep):
        curves, label = seed_curves(sweep, schedule), f"`{name}`, {design(sweep.jobs, schedule)}"
        gradient = gradient_levels(curves)
        if gradient is not None:
            quantity = f"log10 min ‖∇L_meta‖² over {gradient.spacing}"
            tasks = gradient_tasks(sweep.jobs[sweep.jobs["alpha_schedule"] == schedule])
            judged = unless_dense(per_iteration(gradient.levels), gradient.points, tasks)
            rows.append((schedule, (unless_unlearned(judged, curves, chance(sweep.jobs)), label, quantity)))
        last = _last(curves)
        judged = unless_unlearned(per_iteration(levels_at(curves, last)), curves, chance(sweep.jobs))
        rows.append((schedule, (judged, label, f"log10 training loss at iteration {last}")))
        rows += [
            (schedule, (judged, label, q)) for judged, q in _complexity(complexity, curves, sweep, chance(sweep.jobs))
        ]
    return rows


def beside(main: Sweep, variant: Sweep, name: str, rules: Rules) -> tuple[list[list[str]], int]:
    """`variant`'s verdicts (the same figure's claims, run another way) beside `main`'s for the same
    claim, stepsize design and quantity: table rows, and how many verdicts change."""
    kind = lambda row: (row[1][0].claim.key, row[0], row[1][2].split(" to ")[0])  # noqa: E731
    before_of = {kind(row): row[1][0] for row in sweep_rows(name, main, rules)}
    rows, changed = [], 0
    for row in sweep_rows(name, variant, rules):
        judged, _, quantity = row[1]
        before = before_of.get(kind(row))
        same = before is not None and before.verdict is judged.verdict
        changed += before is not None and not same
        rows.append([
            judged.claim.statement, design(variant.jobs, row[0]), quantity, judged.evidence,
            f"**{judged.verdict.value}**", before.verdict.value if before else "—",
            "same" if same else ("**changes**" if before else "—"), judged.reason,
        ])  # fmt: skip
    return rows, changed


BESIDE_HEADER = ["claim", "stepsize design", "quantity judged", "evidence"]


def _complexity(
    rule: Callable[[claims.Costs], claims.Judgement], curves: Curves, sweep: Sweep, chance_loss: float
) -> list[tuple[claims.Judgement, str]]:
    """A complexity claim on the paper's quantity first (the evaluation counts to the target: its
    gradient and its second-order evaluations, each judged), then on seconds at the measured time
    per iteration (a view that depends on the machine), then on the runs' own clocks, judged only
    where the jobs did not share the machine."""
    _, target = cost_to(curves, "time")
    judge = lambda costs: unless_stalled(rule(costs), target, chance_loss, curves)  # noqa: E731
    to_target = f"to a training loss of {target:.3g}"
    views = []
    if sweep.counted:
        views += [(judge(costs_at(curves, target, column)), f"{name} {to_target}")
                  for column, (_, name) in COUNT_VIEWS.items()]  # fmt: skip
    if sweep.priced:
        views.append((judge(costs_at(curves, target, "priced")), f"{PRICED} {to_target}"))
    own = unless_alone(judge(costs_at(curves, target, "time")), sweep.timing, "N")
    return views + [(own, f"training seconds as the runs measured them {to_target}")]


PRICED = "seconds at the measured time per iteration"


def _last(curves: dict[int, dict[int, pd.DataFrame]]) -> int:
    """The last iteration every run reached."""
    return min(int(run["iteration"].max()) for runs in curves.values() for run in runs.values())


def final_accuracy(sweep: Sweep) -> str:
    """The mean over jobs of the last validation accuracy each logged."""
    if "val_accuracy" not in sweep.seeds:
        return "not logged"
    last = sweep.seeds.dropna(subset=["val_accuracy"]).sort_values("iteration").groupby("job").tail(1)
    accuracy = 100 * last["val_accuracy"]
    return f"{accuracy.mean():.1f}% (range {accuracy.min():.1f}–{accuracy.max():.1f}%)"


def settings(jobs: pd.DataFrame) -> str:
    first = jobs.iloc[0]
    seeds = jobs["seed"].nunique()
    return (
        f"dataset={first['dataset']}, init={init_of(jobs)}, "
        f"{first['ways']}-way {first['shots']}-shot, {first['query']} query, "
        f"B = {first['B']} tasks, {first['iterations']} meta-iterations, {first['geometry']} head, λ = {first['lam']}, "
        f"{first['optim']} β_w = {first['beta_w']}, β_φ = {first['beta_phi']}, {seeds} seeds per point; "
        + "; ".join(design(jobs, schedule) for schedule in SCHEDULES if schedule in set(jobs["alpha_schedule"]))
    )
