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

from pathlib import Path

from anil.analysis import claims
from anil.analysis.pricing import read_pace
from anil.analysis.reports import divergence, long, maml, regimes, table2, tuning
from anil.analysis.reports.jobs import environment, init_of
from anil.analysis.reports.markdown import generated_by, source_name, table
from anil.analysis.reports.provenance import (
    FIGURES,
    NO_OTHERS,
    Others,
    commands,
    experiment,
    experiments,
    family,
    job_minutes,
    maml_experiment,
    noise,
    streams,
    why,
)
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
    final_accuracy,
    markdown_table,
    per_n,
    read,
    schedules,
    settings,
    sweep_rows,
)
from anil.analysis.statistics import interval
from anil.analysis.thresholds import GRADIENT_EVERY, GRADIENT_TASKS

COMMAND = "anil report reproduction"
TIMING = "iteration-timing.json"  # in docs/data: scripts/time_iterations.py
INIT_VARIANTS = {"fig1": "fig1-init", "fig2": "fig2-init"}  # a figure's sweep rerun under the other init


def judgements(fig1: Sweep, fig2: Sweep, others: Others = NO_OTHERS) -> list[Row]:
    """Every claim, judged on these sweeps under each stepsize design, with the quantity it was
    judged on. The per-iteration claims are judged on ‖∇L_meta‖² (where logged) and on the
    training loss; the complexity claims on the evaluation counts (the paper's quantity), then on
    seconds at the measured time per iteration, then on the runs' own clocks (sweeps._complexity).
    The stability claims are judged on the divergence search when there is one, else on Figure 2's
    own runs; Table 2's claim on the MAML sweep, when there is one."""
    rows: list[Row] = []
    for (name, sweep), rules in zip(experiments(fig1, fig2), (CONVEX_RULES, NONCONVEX_RULES)):
        rows += [row for _, row in sweep_rows(name, sweep, rules)]
    rows += _stability(fig2, others.search)
    if others.maml is not None:
        rows += maml.judgements(fig1, others.maml, maml_experiment(others.maml))
    if others.table2 is not None:
        rows += table2.judgements(*others.table2)
    return rows


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


def claims_table(fig1: Sweep, fig2: Sweep, others: Others = NO_OTHERS) -> list[str]:
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


def render(
    fig1: Sweep,
    fig2: Sweep,
    sources: list[str],
    others: Others = NO_OTHERS,
) -> str:
    last = int(fig1.seeds["iteration"].max())
    checkpoints = tuple(sorted({last // 3, 2 * last // 3, last}))
    tables = {
        f"{sweep.jobs['geometry'].iloc[0]}, {design(sweep.jobs, schedule)}": per_n(sweep, schedule, checkpoints)
        for sweep in (fig1, fig2)
        for schedule in schedules(sweep)
    }
    dataset = fig1.jobs["dataset"].iloc[0]
    wall = job_minutes(fig1, fig2, others)
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
        "over seeds with the quartiles over seeds as a band; time is training time (evaluation excluded). Whether "
        f"the runs' own clocks can compare N: Figure 1: {fig1.timing.describe()}; Figure 2: "
        f"{fig2.timing.describe()}.",
        "",
        f"Where they ran: Figure 1: {environment(fig1.jobs)}; Figure 2: {environment(fig2.jobs)}. Job time of "
        f"the data behind this document (the sum of the jobs' own wall time): {sum(wall.values()) / 60:.1f} h; "
        + ", ".join(f"{part} {minutes:.1f} min" for part, minutes in wall.items())
        + f". {streams(fig1, fig2, others)} "
        f"Final validation accuracy: Figure 1 {final_accuracy(fig1)}, Figure 2 {final_accuracy(fig2)}.",
        "",
        "## Figures",
        "",
        *(f"![{stem}](figures/{stem}.png)" for stem in _figure_stems(fig1, fig2)),
        "",
        f"## Numbers read off the curves (losses smoothed over {SMOOTH} iterations)",
        "",
        "Each cell is the mean over seeds with its Student t 95% interval over seeds. `loss@time` is the smoothed "
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
        "comparisons between N are paired by seed (a seed sees the same tasks at every N) and carry Student t "
        "95% intervals on the paired differences; an interval that straddles the decision makes the verdict "
        "inconclusive. Each claim is judged under every stepsize design the sweeps ran, on the theorems' quantity "
        "and on the training loss; a cost claim first on the paper's own quantity, the gradient and the "
        "second-order evaluations to a common loss target (counted by the runs), then on seconds at each "
        "configuration's measured time per iteration (timed alone; a view that depends on the machine, see the "
        "note at the end), then on the runs' own clocks, which only count where the jobs ran one at a time. "
        "The theorems' quantity, the least ‖∇L_meta‖² over the iterations, is judged only where the runs "
        f"evaluated it at least every {GRADIENT_EVERY} iterations on at least {GRADIENT_TASKS} fixed tasks; "
        "sparser samples are shown, with their verdict inconclusive (the theory testbed in docs/theory.md "
        "evaluates it so).",
        "",
        *regimes.conditioning(fig1, fig2, others.search),
        *claims_table(fig1, fig2, others),
        "",
        *family(judgements(fig1, fig2, others)),
    ]
    if others.search is not None:
        lines += others.search.section()
    if others.theory is not None:
        lines += regimes.section(fig1, fig2, others.theory, others.search)
    if others.maml is not None:
        tuned = None if others.table2 is not None else others.tuning  # the grid goes with the runs that use it
        lines += ["## ANIL against MAML to the same loss (Table 2)", ""]
        lines += maml.section(fig1, others.maml, maml_experiment(others.maml), tuned)
    if others.table2 is not None:
        lines += table2.section(*others.table2, others.tuning)
    if others.long:
        lines += long.section(others.long, last)
    for fig, main in zip(FIGURES, (fig1, fig2)):
        if fig in others.inits:
            lines += init_section(fig, main, others.inits[fig])
    lines += [*why(tables, fig1.pace), *noise(tables)]
    return "\n".join(lines).rstrip() + "\n"


def _figure_stems(*sweeps: Sweep) -> list[str]:
    stems = []
    for sweep in sweeps:
        first = sweep.jobs.iloc[0]
        stem = f"{first['dataset']}_{first['geometry']}"
        stems += [stem, f"{stem}_gradnorms"]
    return stems


def write(data_dir: Path, doc_path: Path) -> Path:
    """`data_dir`: docs/data/reproduction; the seconds per iteration come from iteration-timing.json beside it."""
    pace = read_pace(data_dir.parent / TIMING)
    fig1, fig2 = (read(data_dir, name, pace) for name in FIGURES)
    present = lambda name: (data_dir / f"{name}-jobs.csv").exists()  # noqa: E731
    inits = {fig: read(data_dir, name, pace) for fig, name in INIT_VARIANTS.items() if present(name)}
    theory, against_maml, tuned = (
        read(data_dir, name, pace) if present(name) else None for name in (regimes.NAME, maml.NAME, tuning.NAME)
    )
    search = divergence.read(data_dir)
    longer = {fig: read(data_dir, name, pace) for fig, name in long.NAMES.items() if present(name)}
    paired = list(table2.NAMES.values()) if all(present(name) for name in table2.NAMES.values()) else []
    names = (
        [*FIGURES, *(INIT_VARIANTS[fig] for fig in inits)]
        + [name for name, sweep in ((regimes.NAME, theory), (maml.NAME, against_maml), (tuning.NAME, tuned)) if sweep]
        + [long.NAMES[fig] for fig in longer]
        + paired
    )
    sources = [source_name(data_dir / f"{name}-{kind}.csv", doc_path) for name in names for kind in ("seeds", "jobs")]
    if search is not None:
        sources += [source_name(path, doc_path) for path in search.paths]
    if pace is not None:
        sources.append(source_name(pace.source, doc_path))
    pair = (read(data_dir, paired[0], pace), read(data_dir, paired[1], pace)) if paired else None
    others = Others(search, inits, theory, against_maml, longer, tuned, pair)
    doc_path.write_text(render(fig1, fig2, sources, others), encoding="utf-8")
    return doc_path
