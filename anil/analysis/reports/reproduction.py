"""docs/reproduction.md from the Figure 1 and Figure 2 sweeps (and the N = 30 divergence search).

`collect` reads a finished sweep into two CSV files under docs/data/reproduction/ (every job's
per-iteration numbers, and one row per job with its settings, environment and, where `anil eval`
ran, its meta-test accuracy) and draws its figures into docs/figures/; `render` turns those files
into Markdown: the numbers behind each of the paper's claims, with 95% intervals over seeds, and
a computed verdict per claim, stepsize design and quantity. Nothing in the document is typed by
hand: settings, device, timings and verdicts all come from the CSV files.

A sweep may run N under several stepsize designs (`alpha_schedule`): a fixed α (`constant`: the
adaptation length αN grows with N), a fixed αN (`inverse_n`) and the authors' schedule. Each
claim is judged under each design the sweep has, on the theorems' quantity (the full objective's
‖∇L_meta‖², where the runs logged it) and on the training loss beside it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from anil.analysis import claims
from anil.analysis.reports import divergence, maml, regimes
from anil.analysis.reports.markdown import generated_by, source_name, table
from anil.analysis.reports.sweeps import (
    BESIDE_HEADER,
    CONVEX_RULES,
    NONCONVEX_RULES,
    SMOOTH,
    Row,
    Sweep,
    beside,
    design,
    diverged_counts,
    environment,
    final_accuracy,
    init_of,
    markdown_table,
    per_n,
    read,
    schedules,
    settings,
    sweep_rows,
)
from anil.analysis.statistics import interval

COMMAND = "anil report reproduction"
FIGURES = ("fig1", "fig2")
INIT_VARIANTS = {"fig1": "fig1-init", "fig2": "fig2-init"}  # a figure's sweep rerun under the other init


@dataclass(frozen=True)
class Others:
    """What the document reads beside the two figure sweeps; each part is optional."""

    search: divergence.Search | None = None  # the N = 30 divergence search and its curvature
    inits: dict[str, Sweep] = field(default_factory=dict)  # "fig1"/"fig2" -> that sweep under the other init
    theory: Sweep | None = None  # the theorems' regime, both geometries
    maml: Sweep | None = None  # MAML beside Figure 1's fixed-α runs


def judgements(fig1: Sweep, fig2: Sweep, others: Others = Others()) -> list[Row]:
    """Every claim, judged on these sweeps under each stepsize design, with the quantity it was
    judged on. The per-iteration claims are judged on ‖∇L_meta‖² (where logged) and on the
    training loss; the complexity claims on the counted cost (deterministic, where the runs have
    counters) and on training seconds as a second, noisy view. The stability claims are judged on
    the divergence search when there is one, else on Figure 2's own runs; Table 2's claim on the
    MAML sweep, when there is one."""
    rows: list[Row] = []
    for (name, sweep), rules in zip(experiments(fig1, fig2), (CONVEX_RULES, NONCONVEX_RULES)):
        rows += [row for _, row in sweep_rows(name, sweep, rules)]
    rows += _stability(fig2, others.search)
    if others.maml is not None:
        rows += maml.judgements(fig1, others.maml, maml_experiment(others.maml))
    return rows


def maml_experiment(sweep: Sweep) -> str:
    return f"maml_{sweep.jobs['dataset'].iloc[0]}"


def init_section(fig: str, main: Sweep, variant: Sweep) -> list[str]:
    """A figure's claims judged on `variant` (its sweep rerun, or part of it, under the other
    initialisation) beside the main sweep's verdicts for the same design and quantity."""
    init, other = init_of(variant.jobs), init_of(main.jobs)
    rules = CONVEX_RULES if fig == "fig1" else NONCONVEX_RULES
    rows, changed = beside(main, variant, experiment(fig, main), rules)
    header = [*BESIDE_HEADER, f"verdict, init={init}", f"init={other}", "", "why"]
    figure = f"Figure {fig[-1]}"
    return [
        f"## {figure} under the other initialisation (init={init})",
        "",
        f"The {figure} sweep rerun with `init={init}` ({settings(variant.jobs)}; {environment(variant.jobs)}; "
        f"{variant.jobs['wall_time_s'].sum() / 60:.1f} min of job time; final validation accuracy "
        f"{final_accuracy(variant)}), judged by the same rules. {changed} of {len(rows)} verdicts change.",
        "",
        *table(header, rows, [False] * len(header)),
        "",
    ]


def _stability(fig2: Sweep, search: divergence.Search | None) -> list[Row]:
    if search is not None:
        label = f"`divergence_{search.dataset}`, base α searched, as α and α/N"
        return [(judged, label, quantity) for judged, quantity in search.judgements()]
    dataset = str(fig2.jobs["dataset"].iloc[0])
    constant = diverged_counts(fig2, "constant") if "constant" in schedules(fig2) else {}
    if not constant:
        return []
    largest = max(constant)
    label = f"`fig2_{dataset}`, {design(fig2.jobs, 'constant')}"
    rows: list[Row] = [(claims.divergence_at_30(dataset, *constant[largest], n=largest), label, "diverged runs")]
    if "inverse_n" in schedules(fig2):
        inverse = diverged_counts(fig2, "inverse_n")
        rows.append((claims.inverse_n(constant, inverse), f"`fig2_{dataset}`, constant α and α/N", "diverged runs"))
    return rows


def claims_table(fig1: Sweep, fig2: Sweep, others: Others = Others()) -> list[str]:
    rows = [
        [
            judged.claim.statement,
            judged.claim.source,
            label,
            quantity,
            judged.evidence,
            f"**{judged.verdict.value}**",
            judged.reason,
        ]
        for judged, label, quantity in judgements(fig1, fig2, others)
    ]
    header = ["claim", "where the paper says it", "experiment", "quantity judged", "evidence", "verdict", "why"]
    return table(header, rows, [False] * 7)


def accuracy_table(fig1: Sweep, fig2: Sweep) -> list[str]:
    """Meta-test accuracy per geometry, stepsize design and N: the mean over seeds with its 95%
    interval over seeds, and each job's own 95% interval over test tasks (their mean half-width)."""
    rows = []
    for sweep in (fig1, fig2):
        jobs = sweep.jobs
        if "test_accuracy" not in jobs or jobs["test_accuracy"].isna().all():
            continue
        for schedule in schedules(sweep):
            for n, part in jobs[jobs["alpha_schedule"] == schedule].groupby("N"):
                tested = part.dropna(subset=["test_accuracy"])
                if tested.empty:
                    continue
                spread = interval(100 * tested["test_accuracy"].to_numpy())
                per_job = f"±{100 * tested['test_accuracy_ci95'].mean():.2f}"
                size = f"{len(tested)} × {int(tested['test_tasks'].iloc[0])}"
                rows.append([str(part["geometry"].iloc[0]), design(jobs, schedule), str(n), str(spread), per_job, size])
    if not rows:
        return ["No job was evaluated on the test classes (`anil eval`)."]
    header = ["geometry", "stepsize design", "N", "test accuracy % (seeds, 95%)", "per job (tasks, 95%)"]
    header.append("jobs × tasks")
    return table(header, rows, [False, False, True, True, True, True])


def why(tables: dict[str, pd.DataFrame], jobs: pd.DataFrame) -> list[str]:
    """How much an iteration's cost grows with N on the machine these jobs ran on: what the
    wall-clock claims rest on."""

    def growth(frame: pd.DataFrame) -> str:  # s/iteration at the largest N over that at the smallest
        ordered = frame.sort_values("N")
        measured = ordered["s/iteration"].iloc[-1].estimate / ordered["s/iteration"].iloc[0].estimate
        counted = ""
        if "counted s/iteration" in frame:
            priced = ordered["counted s/iteration"]
            counted = f" (counted: {priced.iloc[-1] / priced.iloc[0]:.2f}×)"
        return f"{measured:.2f}×{counted}"

    on_gpu = (jobs["device"].astype(str).str.startswith("cuda")).any()
    grown = "; ".join(f"{name}: {growth(frame)}" for name, frame in tables.items())
    return [
        "**What the wall-clock claims rest on.** On the machine these jobs ran on, an iteration at the largest N "
        f"costs, against one at the smallest: {grown}. The paper's running-time claims rest on the cost of an "
        "iteration growing linearly in N (Theorems 1 and 2 count gradient and second-order evaluations); when that "
        "growth is small, the per-iteration ordering carries over to wall-clock time almost unchanged."
        + ("" if on_gpu else " No job ran on a GPU, where each inner step is a separate round of small kernels."),
        "",
    ]


def noise(tables: dict[str, pd.DataFrame]) -> list[str]:
    """The spread of seconds per iteration between seeds of one configuration: the machine's noise."""
    widths = [
        (value.high - value.low) / value.estimate
        for frame in tables.values()
        for value in frame["s/iteration"]
        if math.isfinite(value.high - value.low) and value.estimate > 0
    ]
    if not widths:
        return []
    return [
        "**Timing noise.** The seeds of one configuration do the same work; their seconds per iteration have a 95% "
        f"interval {100 * float(np.median(widths)):.0f}% of the mean wide (median over configurations, widest "
        f"{100 * max(widths):.0f}%). Wall-clock verdicts are only as strong as the differences between N are large "
        "against this; the counted cost has no such noise.",
        "",
    ]


def experiment(fig: str, sweep: Sweep) -> str:
    """The experiment config that runs this figure's sweep (conf/experiment/<name>.yaml)."""
    return f"{fig}_{sweep.jobs['dataset'].iloc[0]}"


def experiments(fig1: Sweep, fig2: Sweep) -> list[tuple[str, Sweep]]:
    """Each figure's sweep with its experiment config."""
    return [(experiment(fig, sweep), sweep) for fig, sweep in (("fig1", fig1), ("fig2", fig2))]


def commands(fig1: Sweep, fig2: Sweep, others: Others = Others()) -> list[str]:
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
    return [*lines, report]


def render(
    fig1: Sweep,
    fig2: Sweep,
    sources: list[str],
    others: Others = Others(),
) -> str:
    last = int(fig1.seeds["iteration"].max())
    checkpoints = tuple(sorted({last // 3, 2 * last // 3, last}))
    tables = {
        f"{sweep.jobs['geometry'].iloc[0]}, {design(sweep.jobs, schedule)}": per_n(sweep, schedule, checkpoints)
        for sweep in (fig1, fig2)
        for schedule in schedules(sweep)
    }
    dataset = fig1.jobs["dataset"].iloc[0]
    wall = {fig: sweep.jobs["wall_time_s"].sum() / 60 for fig, sweep in (("Figure 1", fig1), ("Figure 2", fig2))}
    lines = [
        f"# Reproducing Figures 1 and 2 on the {dataset} dataset",
        "",
        generated_by(COMMAND, sources) + f" The figures are `anil plot --smooth {SMOOTH}` drawings of the same data.",
        "",
        "## Commands",
        "",
        "```",
        *commands(fig1, fig2, others),
        "```",
        "",
        f"Figure 1 settings: {settings(fig1.jobs)}. Figure 2 settings: {settings(fig2.jobs)}. Curves are the mean "
        "over seeds with the quartiles over seeds as a band; time is training time (evaluation excluded), jobs run "
        "one after another.",
        "",
        f"Where they ran: Figure 1: {environment(fig1.jobs)}; Figure 2: {environment(fig2.jobs)}. Sweep wall time "
        "(sum of the jobs' own): "
        + ", ".join(f"{fig} {minutes:.1f} min" for fig, minutes in wall.items())
        + (f", divergence search {others.search.wall_minutes():.1f} min" if others.search is not None else "")
        + f". Final validation accuracy: Figure 1 {final_accuracy(fig1)}, Figure 2 {final_accuracy(fig2)}.",
        "",
        "## Figures",
        "",
        *(f"![{stem}](figures/{stem}.png)" for stem in _figure_stems(fig1, fig2)),
        "",
        f"## Numbers read off the curves (losses smoothed over {SMOOTH} iterations)",
        "",
        "Each cell is the mean over seeds with its bootstrap 95% interval over seeds. `loss@time` is the smoothed "
        "loss when each run had trained for the shortest run's total training time; `‖∇L_meta‖²` is the full "
        "objective's squared meta-gradient norm on the runs' fixed evaluation tasks.",
        "",
    ]
    for name, frame in tables.items():
        lines += [f"{name}:", "", *markdown_table(frame), ""]
    lines += [
        "## Meta-test accuracy",
        "",
        *accuracy_table(fig1, fig2),
        "",
        "## The paper's claims against these runs",
        "",
        "Each claim is judged by a rule that can also say *disagrees* and *inconclusive* (anil/analysis/claims.py): "
        "comparisons between N are paired by seed (a seed sees the same tasks at every N) and carry bootstrap 95% "
        "intervals; an interval that straddles the decision makes the verdict inconclusive. Each claim is judged "
        "under every stepsize design the sweeps ran, on the theorems' quantity and on the training loss.",
        "",
        *claims_table(fig1, fig2, others),
        "",
    ]
    if others.search is not None:
        lines += others.search.section()
    if others.theory is not None:
        lines += regimes.section(fig1, fig2, others.theory, others.search)
    if others.maml is not None:
        lines += maml.section(fig1, others.maml, maml_experiment(others.maml))
    for fig, main in zip(FIGURES, (fig1, fig2)):
        if fig in others.inits:
            lines += init_section(fig, main, others.inits[fig])
    lines += [*why(tables, pd.concat([fig1.jobs, fig2.jobs])), *noise(tables)]
    return "\n".join(lines).rstrip() + "\n"


def _figure_stems(*sweeps: Sweep) -> list[str]:
    stems = []
    for sweep in sweeps:
        first = sweep.jobs.iloc[0]
        stem = f"{first['dataset']}_{first['geometry']}"
        stems += [stem, f"{stem}_gradnorms"]
    return stems


def write(data_dir: Path, doc_path: Path) -> Path:
    """`data_dir`: docs/data/reproduction; the unit costs come from complexity.json beside it."""
    units_path = data_dir.parent / "complexity.json"
    units = json.loads(units_path.read_text(encoding="utf-8")).get("unit_costs") if units_path.exists() else None
    fig1, fig2 = (read(data_dir, name, units) for name in FIGURES)
    present = lambda name: (data_dir / f"{name}-jobs.csv").exists()  # noqa: E731
    inits = {fig: read(data_dir, name, units) for fig, name in INIT_VARIANTS.items() if present(name)}
    theory, against_maml = (
        read(data_dir, name, units) if present(name) else None for name in (regimes.NAME, maml.NAME)
    )
    search = divergence.read(data_dir)
    names = [*FIGURES, *(INIT_VARIANTS[fig] for fig in inits)] + [
        name for name, sweep in ((regimes.NAME, theory), (maml.NAME, against_maml)) if sweep
    ]
    sources = [source_name(data_dir / f"{name}-{kind}.csv", doc_path) for name in names for kind in ("seeds", "jobs")]
    if search is not None:
        sources += [source_name(path, doc_path) for path in search.paths]
    if fig1.counted or fig2.counted:
        sources.append(source_name(units_path, doc_path))
    others = Others(search, inits, theory, against_maml)
    doc_path.write_text(render(fig1, fig2, sources, others), encoding="utf-8")
    return doc_path
