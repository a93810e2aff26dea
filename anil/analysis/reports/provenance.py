"""How the reproduction document's numbers were made: the sweeps it reads (`Others`), the
commands that regenerate each one, what the timing noise is, and why the verdicts come out as
they do."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from anil.analysis.pricing import Pace
from anil.analysis.reports import divergence
from anil.analysis.reports.jobs import init_of
from anil.analysis.reports.markdown import table
from anil.analysis.reports.sweeps import (
    Row,
    Sweep,
    schedules,
)
from anil.analysis.statistics import Verdict
from anil.analysis.thresholds import CONFIDENCE, THRESHOLDS

FIGURES = ("fig1", "fig2")


@dataclass(frozen=True)
class Others:
    """What the document reads beside the two figure sweeps; each part is optional."""

    search: divergence.Search | None = None  # the N = 30 divergence search and its curvature
    inits: dict[str, Sweep] = field(default_factory=dict)  # "fig1"/"fig2" -> that sweep under the other init
    theory: Sweep | None = None  # the theorems' regime, both geometries
    maml: Sweep | None = None  # MAML beside Figure 1's fixed-α runs
    long: dict[str, Sweep] = field(default_factory=dict)  # "fig1"/"fig2" -> its fixed-α half run longer
    tuning: Sweep | None = None  # ANIL's and MAML's stepsizes tuned on their own (before the MAML comparison)
    table2: tuple[Sweep, Sweep] | None = None  # ANIL's and MAML's runs, each at its tuned stepsizes


NO_OTHERS = Others()


def maml_experiment(sweep: Sweep) -> str:
    return f"maml_{sweep.jobs['dataset'].iloc[0]}"


def why(tables: dict[str, pd.DataFrame], pace: Pace | None) -> list[str]:
    """What the priced verdicts rest on: how an iteration's seconds grow with N when each
    configuration is timed alone, and an inner step's price against the rest of an iteration."""
    if pace is None:
        return []

    def growth(frame: pd.DataFrame) -> str:  # timed s/iteration at the largest N over that at the smallest
        if "timed s/iteration" not in frame:
            return "not timed"
        timed = frame.sort_values("N")["timed s/iteration"]
        return f"{timed.iloc[-1] / timed.iloc[0]:.2f}×"

    grown = "; ".join(f"{name}: {growth(frame)}" for name, frame in tables.items())
    ratios = []
    for geometry in sorted({str(r["geometry"]) for r in pace.rows}):
        fitted = pace.inner_step_ratio(geometry)
        if fitted is not None:
            step, rest = fitted
            ratios.append(f"{geometry}: an inner step {step * 1e3:.3g} ms against {rest:.3g} s for the rest "
                          f"(ratio {step / rest:.3g})")  # fmt: skip
    return [
        f"**What the priced verdicts rest on.** Each configuration timed alone ({pace.describe()}): an iteration "
        f"at the largest N costs, against one at the smallest, {grown}. A least-squares line through the timed "
        f"seconds against N prices, per geometry, {'; '.join(ratios)}. The paper counts evaluations, and an inner "
        "step is one of them like a body pass; on a machine where it costs a small fraction of the rest, the "
        "priced verdicts follow the iterations to the target rather than the evaluation counts, and another "
        "machine (a GPU, where each inner step costs kernel launches) can order the N differently.",
        "",
    ]


def noise(tables: dict[str, pd.DataFrame]) -> list[str]:
    """The spread of the runs' own seconds per iteration between seeds of one configuration."""
    widths = [
        (value.high - value.low) / value.estimate
        for frame in tables.values()
        for value in frame["s/iteration"]
        if math.isfinite(value.high - value.low) and value.estimate > 0
    ]
    if not widths:
        return []
    return [
        "**Timing noise.** The seeds of one configuration do the same work; the runs' own seconds per iteration "
        f"have a 95% interval {100 * float(np.median(widths)):.0f}% of the mean wide (median over configurations, "
        f"widest {100 * max(widths):.0f}%). This spread does not show a bias shared by a configuration's seeds "
        "(jobs that ran beside others): the runs' own clocks are judged only where the jobs ran one at a time.",
        "",
    ]


def experiment(fig: str, sweep: Sweep) -> str:
    """The experiment config that runs this figure's sweep (conf/experiment/<name>.yaml)."""
    return f"{fig}_{sweep.jobs['dataset'].iloc[0]}"


def experiments(fig1: Sweep, fig2: Sweep) -> list[tuple[str, Sweep]]:
    """Each figure's sweep with its experiment config."""
    return [(experiment(fig, sweep), sweep) for fig, sweep in (("fig1", fig1), ("fig2", fig2))]


def commands(fig1: Sweep, fig2: Sweep, others: Others = NO_OTHERS) -> list[str]:
    """The commands that produce this document's data, from the jobs' own settings."""
    sweeps = experiments(fig1, fig2)
    search, theory = others.search, others.theory
    lines = [
        f"anil train -m experiment={name} init={init_of(sweep.jobs)} hydra.sweep.dir=outputs/sweeps/{name}"
        for name, sweep in sweeps
    ]
    designs = {"constant": "fixed_alpha", "inverse_n": "fixed_alpha_n"}
    variants = {fig: (name, others.inits[fig]) for fig, (name, _) in zip(FIGURES, sweeps) if fig in others.inits}
    for name, variant in variants.values():
        chosen = ",".join(designs[s] for s in schedules(variant) if s in designs)
        init = init_of(variant.jobs)
        lines.append(
            f"anil train -m experiment={name} alpha_design={chosen} init={init} "
            f"hydra.sweep.dir=outputs/sweeps/{name}_init_{init}"
        )
    for name, sweep in sweeps:
        if "test_accuracy" in sweep.jobs and sweep.jobs["test_accuracy"].notna().any():
            tested = sweep.jobs.dropna(subset=["test_accuracy"]).iloc[0]
            lines.append(
                f"for job in outputs/sweeps/{name}/geometry=*; do anil eval $job --tasks {int(tested['test_tasks'])} "
                f"--checkpoint {'last' if tested['test_checkpoint'] == 'checkpoint.pt' else 'best'}; done"
            )
    report = f"anil report reproduction --fig1 outputs/sweeps/{sweeps[0][0]} --fig2 outputs/sweeps/{sweeps[1][0]}"
    if search is not None:
        lines += search.commands()
        report += f" --divergence {search.sweep_dir} --curvature {search.curvature_dir}"
    for fig, (name, variant) in variants.items():
        report += f" --{fig}-init outputs/sweeps/{name}_init_{init_of(variant.jobs)}"
    if theory is not None:
        folder = f"outputs/sweeps/theory_{theory.jobs['dataset'].iloc[0]}"
        lines += [
            f"anil train -m experiment=theory_{g}_{theory.jobs['dataset'].iloc[0]} hydra.sweep.dir={folder}/{g}"
            for g in sorted(set(theory.jobs["geometry"]))
        ]
        report += f" --theory {folder}"
    if others.maml is not None:
        name = maml_experiment(others.maml)
        lines.append(f"anil train -m experiment={name} hydra.sweep.dir=outputs/sweeps/{name}")
        report += f" --maml outputs/sweeps/{name}"
    if others.tuning is not None:
        lines.append("bash scripts/tuning_runs.sh .venv/bin outputs/tuning")
        report += " --maml-tuning outputs/tuning"
    if others.table2 is not None:
        lines.append("bash scripts/table2_runs.sh .venv/bin outputs/table2")
        report += " --table2 outputs/table2"
    if others.long:
        lines += [f"bash scripts/long_runs.sh .venv/bin outputs/long {fig}" for fig in others.long]
        report += " --long outputs/long"
    return [*lines, report]


# The parts scripts/reproduce.sh runs in its second stream of jobs (the first runs the rest); the
# untuned MAML sweep's place is taken there by Table 2's runs.
SECOND_STREAM = ("MAML", "stepsize tuning", "Table 2, ANIL", "Table 2, MAML")


def _job_frames(fig1: Sweep, fig2: Sweep, others: Others) -> dict[str, pd.DataFrame]:
    """Each part's jobs table, in document order."""
    parts: dict[str, Sweep | None] = {"Figure 1": fig1, "Figure 2": fig2}
    parts.update({f"{fig} init": s for fig, s in others.inits.items()})
    parts.update({"theorems' regime": others.theory, "MAML": others.maml, "stepsize tuning": others.tuning})
    if others.table2 is not None:
        parts.update({"Table 2, ANIL": others.table2[0], "Table 2, MAML": others.table2[1]})
    parts.update({f"{fig} to 1,000 iterations": s for fig, s in others.long.items()})
    frames = {name: s.jobs for name, s in parts.items() if s is not None}
    if others.search is not None:
        frames["divergence search"] = others.search.jobs
    return frames


def job_minutes(fig1: Sweep, fig2: Sweep, others: Others, alone: bool = False) -> dict[str, float]:
    """Each part's job time in minutes (the sum of its jobs' own wall time), in document order;
    `alone`: each job's wall time scaled to what it would take alone on a core (_alone_share)."""
    minutes = {}
    for name, frame in _job_frames(fig1, fig2, others).items():
        wall = frame["wall_time_s"].astype(float)
        minutes[name] = float((wall * _alone_share(frame, fig1.pace)[0] if alone else wall).sum()) / 60
    return minutes


def _alone_share(jobs: pd.DataFrame, pace: Pace | None) -> tuple[pd.Series, pd.Series]:
    """The share of a core each job's training steps got, which scales its wall time to what it
    would take alone on one: its CPU time over its training time where it recorded CPU time; else
    its configuration's seconds per iteration timed alone (`pace`) over its own (an estimate, for
    jobs run before CPU time was recorded); else 1 (its wall time counts, as where no training
    time was recorded). Also which jobs have the estimate."""
    if "train_time_s" not in jobs:
        return pd.Series(1.0, jobs.index), pd.Series(False, jobs.index)
    train = jobs["train_time_s"].astype(float)
    share = jobs["cpu_time_s"].astype(float) / train if "cpu_time_s" in jobs else pd.Series(np.nan, jobs.index)
    paced = pd.Series(False, jobs.index)
    if pace is not None:
        estimate = _paced_share(jobs, pace)
        paced = share.isna() & estimate.notna()
        share = share.fillna(estimate)
    return share.clip(upper=1.0).where(share.notna() & (share > 0), 1.0), paced


def _paced_share(jobs: pd.DataFrame, pace: Pace) -> pd.Series:
    """Alone-timed seconds per iteration of each job's configuration over the job's own."""
    columns = (jobs[c].tolist() for c in ("algorithm", "geometry", "N", "dataset", "B"))
    expected = [pace.expected(str(a), str(g), int(n), str(d), int(b)) for a, g, n, d, b in zip(*columns, strict=True)]
    own = jobs["train_time_s"].astype(float) / jobs["last_iteration"].astype(float)
    return pd.Series([np.nan if e is None else e for e in expected], jobs.index, dtype=float) / own


def _paced_jobs(fig1: Sweep, fig2: Sweep, others: Others, parts: list[str]) -> int:
    """How many of these parts' jobs have the pace estimate as their alone time (_alone_share)."""
    frames = [frame for name, frame in _job_frames(fig1, fig2, others).items() if name in parts]
    return sum(int(np.count_nonzero(_alone_share(frame, fig1.pace)[1])) for frame in frames)


def streams(fig1: Sweep, fig2: Sweep, others: Others) -> str:
    """What `make reproduce`'s two streams of jobs take, each job as if alone on its core."""
    minutes = job_minutes(fig1, fig2, others, alone=True)
    if "Table 2, MAML" in minutes:  # make reproduce runs Table 2's runs instead of the untuned MAML sweep
        minutes.pop("MAML", None)
    parts = [part for part in minutes if part in SECOND_STREAM]
    second = sum(minutes[part] for part in parts) / 60
    first = sum(minutes.values()) / 60 - second
    paced = _paced_jobs(fig1, fig2, others, list(minutes))
    estimate = (
        f"; for the {paced} jobs that ran before runs recorded it, an estimate: the seconds per iteration "
        "their configuration takes timed alone (the timing below) over their own"
        if paced
        else ""
    )
    timing = "the seconds per iteration are timed alone"
    if fig1.pace is not None and "wall_s" in fig1.pace.meta:
        timing += f" ({float(fig1.pace.meta['wall_s']) / 60:.1f} min)"
    return (
        f"`make reproduce` runs them as two streams of jobs, one per core: {'; '.join(parts)} in one "
        f"({second:.1f} h), the rest in the other ({first:.1f} h): about {max(first, second):.1f} h on 2 cores. "
        "Each job counts as if alone on its core: its wall time scaled by the share of a core its training steps "
        "got (a job that shared a core waited for it), their process CPU time over their training time where it "
        f"recorded its CPU time{estimate}. After both, {timing}; the test-set evaluations of the figure jobs and "
        "the curvature estimate record no time and are not counted."
    )


def family(rows: list[Row]) -> list[str]:
    """How many verdicts the document states, and what chance alone would decide among them."""
    counts = {verdict: sum(j.verdict is verdict for j, _, _ in rows) for verdict in Verdict}
    decided = counts[Verdict.AGREES] + counts[Verdict.DISAGREES]
    return [
        f"**How many verdicts.** The table states {len(rows)} verdicts: {counts[Verdict.AGREES]} agree, "
        f"{counts[Verdict.DISAGREES]} disagree, {counts[Verdict.INCONCLUSIVE]} are inconclusive. Each stands "
        f"alone at {CONFIDENCE:.0%} (no correction for the family): where a difference were truly zero, each "
        f"decision would come out decided by chance with probability {1 - CONFIDENCE:.2g}, so among the "
        f"{decided} decided verdicts about {decided * (1 - CONFIDENCE):.1f} could be such errors. Many share runs "
        "(one sweep is read on several quantities), so they are not independent.",
        "",
        "The thresholds the rules use (anil/analysis/thresholds.py):",
        "",
        *table(
            ["threshold", "value", "what it decides"],
            [[f"`{name}`", f"{value:g}", why] for name, (value, why) in THRESHOLDS.items()],
            [False, True, False],
        ),
        "",
    ]
