"""The figure sweeps' fixed-α half run to 1,000 iterations (scripts/long_runs.sh): do the
per-iteration verdicts read at the figure sweeps' last iteration still hold where the curves
flatten?

The long runs are judged by the same rules (anil/analysis/claims.py) twice: on their own first
iterations, up to where the figure sweeps stop, and on all of them; a verdict that changes was set
by where the figure sweeps stopped. They are collected while they run (`anil report reproduction
--long DIR`), so the section says which N and seeds have finished; a claim is judged once every N
it needs has MIN_SEEDS finished runs.
"""

from __future__ import annotations

import numpy as np

from anil.analysis.claims import Judgement
from anil.analysis.reports.markdown import table
from anil.analysis.reports.stationarity import gradient_levels, gradient_tasks, unless_dense
from anil.analysis.reports.sweeps import (
    CONVEX_RULES,
    NONCONVEX_RULES,
    Sweep,
    completed,
    design,
    levels_at,
    schedules,
    seed_curves,
    settings,
)
from anil.analysis.reports.targets import Curves, chance, unless_unlearned
from anil.analysis.statistics import Verdict
from anil.analysis.thresholds import FLAT, MIN_SEEDS

NAMES = {"fig1": "long-fig1", "fig2": "long-fig2"}  # docs/data/reproduction/<name>-{seeds,jobs}.csv
NEEDED = {"fig1": 3, "fig2": 2}  # the N a rule compares: low, ~7 and high (convex); low and high (nonconvex)


def finished(sweep: Sweep, schedule: str) -> Curves:
    """The curves of the runs that completed, N -> seed -> curve; N with fewer than MIN_SEEDS dropped."""
    return seed_curves(completed(sweep, MIN_SEEDS), schedule)


def up_to(curves: Curves, iteration: int) -> Curves:
    return {n: {s: run[run["iteration"] <= iteration] for s, run in runs.items()} for n, runs in curves.items()}


def flatness(curves: Curves) -> list[list[str]]:
    """Per N: the median over seeds of the final smoothed loss and of its fall over the last fifth."""
    rows = []
    for n, runs in sorted(curves.items()):
        finals, falls = [], []
        for run in runs.values():
            loss = run["smooth_loss"].to_numpy()
            start = loss[int(0.8 * (len(loss) - 1))]
            finals.append(loss[-1])
            falls.append((start - loss[-1]) / start)
        fall = float(np.median(falls))
        final = float(np.median(finals))
        rows.append([str(n), str(len(runs)), f"{final:.3g}", f"{100 * fall:.1f}%", "yes" if fall < FLAT else "no"])
    return rows


def judged(fig: str, curves: Curves, at: int, chance_loss: float, tasks: int | None) -> list[tuple[str, str, str]]:
    """(quantity, verdict, evidence) of the per-iteration claim on `curves` cut at iteration `at`;
    `tasks`: how many fixed tasks ‖∇L_meta‖² was evaluated on (None: not recorded)."""
    rule = (CONVEX_RULES if fig == "fig1" else NONCONVEX_RULES)[0]
    cut = up_to(curves, at)
    out = []
    gradient = gradient_levels(cut)
    if gradient is not None:
        verdict = unless_unlearned(unless_dense(rule(gradient.levels), gradient.points, tasks), cut, chance_loss)
        out.append((f"log10 min ‖∇L_meta‖² over {gradient.spacing}", verdict.verdict.value, _said(verdict)))
    verdict = unless_unlearned(rule(levels_at(cut, at)), cut, chance_loss)
    out.append((f"log10 training loss at iteration {at}", verdict.verdict.value, _said(verdict)))
    return out


def _said(verdict: Judgement) -> str:
    """The evidence, and why the verdict is inconclusive where a guard made it so."""
    if verdict.verdict is Verdict.INCONCLUSIVE and verdict.reason:
        return f"{verdict.evidence} ({verdict.reason})"
    return verdict.evidence


def section(long: dict[str, Sweep], short_iterations: int) -> list[str]:
    """docs/reproduction.md's section on the long runs (`long`: "fig1"/"fig2" -> its runs)."""
    lines = [
        "## Where the curves flatten: the fixed-α half to 1,000 iterations",
        "",
        f"The figure sweeps stop at {short_iterations} iterations while their curves still fall. Their fixed-α half "
        f"runs again for longer (`bash scripts/long_runs.sh .venv/bin outputs/long fig1` and `fig2`, resumable), "
        f"and each per-iteration claim is judged on the same runs at iteration {short_iterations} and at their "
        f"end. A curve counts as flat when its smoothed loss fell by less than {FLAT:.0%} over the last fifth of "
        "its run. Only finished runs are read; a claim waits until every N it compares has "
        f"{MIN_SEEDS} of them.",
        "",
    ]
    for fig, sweep in long.items():
        for schedule in schedules(sweep):
            curves = finished(sweep, schedule)
            planned = sorted(int(n) for n in sweep.jobs["N"].unique())
            lines += [f"### {fig}, {design(sweep.jobs, schedule)} ({settings(sweep.jobs)})", ""]
            if len(curves) < NEEDED[fig]:
                jobs = sweep.jobs[(sweep.jobs["alpha_schedule"] == schedule) & (sweep.jobs["status"] == "completed")]
                done = {int(n): int(count) for n, count in jobs.groupby("N").size().items()}
                lines += [f"Pending: finished runs per N {done or 'none'}, of N = {planned} so far.", ""]
                continue
            last = min(int(run["iteration"].max()) for runs in curves.values() for run in runs.values())
            lines += table(["N", "runs", "final smoothed loss (median)", "fall over the last fifth", "flat"],
                           flatness(curves), [True, True, True, True, False])  # fmt: skip
            rows = []
            chance_loss, tasks = chance(sweep.jobs), gradient_tasks(sweep.jobs)
            for (quantity, early, _), (late_quantity, late, evidence) in zip(
                judged(fig, curves, short_iterations, chance_loss, tasks), judged(fig, curves, last, chance_loss, tasks)
            ):
                rows.append([quantity, f"**{early}**", late_quantity, f"**{late}**",
                             "holds" if early == late else "**changes**", evidence])  # fmt: skip
            header = ["quantity (short)", "verdict", "quantity (long)", "verdict", "", "evidence at the end"]
            lines += ["", *table(header, rows, [False] * len(header)), ""]
    return lines
