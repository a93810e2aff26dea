"""ANIL against MAML the way Table 2 compares them: what each spends to reach the same accuracy,
not what one iteration costs (docs/complexity.md measures that).

The MAML sweep (conf/experiment/maml_<dataset>.yaml) repeats Figure 1's fixed-α runs with every
parameter adapted in the inner loop, at the N it can afford, with the same seeds, so each MAML run
pairs with the ANIL run that saw the same tasks. Both are read to several loss targets, each below
where either algorithm started (a target above a start is reached by the first adaptation, not by
meta-training), and each run's spend to a target is compared seed by seed (claims.anil_vs_maml):
in Table 2's entry counts, in seconds at each algorithm's own measured time per iteration, and on
the runs' own clocks where the jobs did not share the machine.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from anil.analysis import claims
from anil.analysis.overlap import occupancy
from anil.analysis.pricing import entries
from anil.analysis.reports import tuning
from anil.analysis.reports.jobs import environment
from anil.analysis.reports.markdown import table
from anil.analysis.reports.sweeps import PRICED, Row, Sweep, design, seed_curves, settings
from anil.analysis.reports.targets import (
    LEARNED,
    Curves,
    chance,
    common_target,
    costs_at,
    reached,
    start_level,
    unless_alone,
    unless_stalled,
)
from anil.analysis.statistics import interval

NAME = "maml"  # docs/data/reproduction/maml-{seeds,jobs}.csv
TARGETS = 3  # loss targets: the common one and others evenly up to just below the lower start


@dataclasses.dataclass(frozen=True)
class Compared:
    schedule: str
    anil: Curves
    maml: Curves
    targets: list[float]  # from the lowest (the common target) up


def _compared(anil: Sweep, maml: Sweep) -> Compared:
    """The stepsize design the MAML sweep ran, both algorithms' curves at the N they share (with
    Table 2's entry counts where the network's dimensions were recorded), and the targets."""
    schedule = str(maml.jobs["alpha_schedule"].iloc[0])
    maml_curves = _with_entries(maml, seed_curves(maml, schedule), "maml")
    anil_curves = {n: runs for n, runs in seed_curves(anil, schedule).items() if n in maml_curves}
    if not anil_curves:
        raise ValueError(f"the MAML sweep's N ({sorted(maml_curves)}) share none with the ANIL sweep's ({schedule})")
    anil_curves = _with_entries(anil, anil_curves, "anil")
    common = common_target(anil_curves, maml_curves)
    ceiling = (1 - LEARNED) * min(start_level(anil_curves), start_level(maml_curves))
    steps = TARGETS if common < ceiling else 1
    targets = [common + (ceiling - common) * k / steps for k in range(steps)]
    return Compared(schedule, anil_curves, maml_curves, targets)


def _with_entries(sweep: Sweep, curves: Curves, algorithm: str) -> Curves:
    geometry = str(sweep.jobs["geometry"].iloc[0])
    dimensions = sweep.pace.dimensions(geometry) if sweep.pace is not None else None
    if dimensions is None or not sweep.counted:
        return curves
    return {n: {s: run.assign(**entries(run, dimensions, algorithm)) for s, run in runs.items()}
            for n, runs in curves.items()}  # fmt: skip


def views(compared: Compared) -> list[tuple[str, str]]:
    """(column, name) of each quantity to a target that both algorithms' curves have."""
    first = lambda curves: next(iter(next(iter(curves.values())).values()))  # noqa: E731
    have = set(first(compared.anil).columns) & set(first(compared.maml).columns)
    chosen = [
        ("gradient_entries", "gradient entry evaluations (Table 2's count)"),
        ("second_order_entries", "second-order entry evaluations (Table 2's count)"),
        ("priced", PRICED),
    ]
    return [(c, name) for c, name in chosen if c in have] + [("time", "training seconds as the runs measured them")]


def judgements(anil: Sweep, maml: Sweep, name: str, anil_label: str | None = None) -> list[Row]:
    return _judge(anil, maml, name, _compared(anil, maml), anil_label or anil_name(anil))


def _judge(anil: Sweep, maml: Sweep, name: str, compared: Compared, anil_label: str) -> list[Row]:
    """Table 2's claim on each view at each target (the runs' own clocks only where the jobs ran
    one at a time; the iteration count is reported, not judged: the claim is about computation)."""
    label = f"`{name}` beside `{anil_label}`, {_designs(anil, maml, compared.schedule)}"
    timing = occupancy(pd.concat([anil.seeds, maml.seeds], ignore_index=True))
    rows: list[Row] = []
    for target in compared.targets:
        for column, quantity in views(compared):
            judged = claims.anil_vs_maml(
                costs_at(compared.anil, target, column), costs_at(compared.maml, target, column)
            )
            judged = unless_stalled(judged, target, chance(maml.jobs), compared.anil, compared.maml)
            if column == "time":
                judged = unless_alone(judged, timing, "them")
            rows.append((judged, label, f"{quantity} to a training loss of {target:.3g}"))
    return rows


def _designs(anil: Sweep, maml: Sweep, schedule: str) -> str:
    """The stepsize design both algorithms ran, or each one's where their steps differ (each tuned)."""
    theirs, ours = design(maml.jobs, schedule), design(anil.jobs, schedule)
    return theirs if theirs == ours else f"MAML {theirs}, ANIL {ours}"


def anil_name(anil: Sweep) -> str:
    return f"fig1_{anil.jobs['dataset'].iloc[0]}"


def _tuning(anil: Sweep, maml: Sweep) -> str:
    """Whether each algorithm's stepsizes were chosen for it, from the jobs' own settings."""
    keys = ["alpha", "beta_w", "beta_phi"]
    same = all(set(maml.jobs[k]) <= set(anil.jobs[k]) for k in keys)
    if same:
        return (
            "MAML ran with ANIL's stepsizes (α, β_w, β_φ as above), tuned for neither: a MAML that a tuned α "
            "or β would speed up is compared at a disadvantage."
        )
    return "The two algorithms ran with different stepsizes (see their settings)."


def section(
    anil: Sweep, maml: Sweep, name: str, tuned: Sweep | None = None, anil_label: str | None = None
) -> list[str]:
    """docs/reproduction.md's ANIL-against-MAML section: the stepsize tuning (`tuned`, where run),
    then per target, N and algorithm, the runs that reached the target and what they spent on the
    way, then the verdicts. `anil_label`: what the ANIL runs are called (default Figure 1's sweep)."""
    anil_label = anil_label or anil_name(anil)
    compared = _compared(anil, maml)
    chosen = [("iteration", "meta-iterations"), *views(compared)]
    rows = []
    for target in compared.targets:
        for n in sorted(compared.maml):
            for algorithm, curves in (("ANIL", compared.anil), ("MAML", compared.maml)):
                got, runs = reached(curves, target)[n]
                spent = [str(interval(list(costs_at(curves, target, column)[n].values()))) for column, _ in chosen]
                rows.append([f"{target:.3g}", str(n), algorithm, f"{got}/{runs}", *spent])
    header = ["target", "N", "algorithm", "reached", *(f"{quantity} to the target" for _, quantity in chosen)]
    verdicts = [
        [j.claim.statement, label, quantity, j.evidence, f"**{j.verdict.value}**", j.reason]
        for j, label, quantity in _judge(anil, maml, name, compared, anil_label)
    ]
    starts = ", ".join(f"{who} {start_level(c):.3g}" for who, c in (("ANIL", compared.anil), ("MAML", compared.maml)))
    return [
        f"MAML runs (`{name}`: {settings(maml.jobs)}; {environment(maml.jobs)}; "
        f"{maml.jobs['wall_time_s'].sum() / 60:.1f} min of job time) beside the ANIL runs of `{anil_label}` "
        f"at the same N and seeds ({_designs(anil, maml, compared.schedule)}). "
        f"{_tuning(anil, maml) if tuned is None else 'Their stepsizes against each one tuned on its own: below.'} "
        f"Targets: smoothed training losses of {', '.join(f'{t:.3g}' for t in compared.targets)}, from the worst "
        f"median final loss over both algorithms and every N up to just below the lowest starting loss of either "
        f"algorithm at any N (the median run's first logged loss; lowest over N: {starts}). Each cell: mean [95% "
        "interval over seeds] of what a run spent until its smoothed loss first reached the target; a run that "
        "never did is counted at its whole budget (a lower bound). Table 2 counts entries: ANIL's gradients fill "
        "n_w or n_φ, its second-order products n_w² or n_w·n_φ; MAML's fill n_w + n_φ and (n_w + n_φ)² "
        "(anil/analysis/pricing.py). The claim is judged at each target on how MAML's cost over ANIL's moves with "
        "N, as Table 2 predicts a factor that grows with N and is exactly 1 for gradients at N = 1.",
        "",
        *([] if tuned is None else tuning.section(tuned, anil, maml, (anil_label, name))),
        *table(header, rows, [True, True, False, True, *([True] * len(chosen))]),
        "",
        *table(["claim", "experiment", "quantity judged", "evidence", "verdict", "why"], verdicts, [False] * 6),
        "",
    ]
