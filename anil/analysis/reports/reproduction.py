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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anil.analysis import claims
from anil.analysis.cost import UnitCosts, counted_cost, has_counters, prices_for
from anil.analysis.plot import draw, find_jobs, per_seed, summarise_seeds
from anil.analysis.reports import divergence
from anil.analysis.reports.jobs import DEFAULT_INIT, job_row, tally
from anil.analysis.reports.markdown import generated_by, source_name, table
from anil.analysis.statistics import Interval, interval
from anil.run.metrics import OBJECTIVE_METRICS

COMMAND = "anil report reproduction"
SMOOTH = 10  # rolling window (iterations) for the figures and for every number read off a curve
FIGURES = ("fig1", "fig2")
VARIANT = "fig1-init"  # the Figure 1 sweep rerun under the other initialisation (optional)
SCHEDULES = ("constant", "inverse_n", "authors")  # the order designs are reported in
# The cost claims need a common target: the loss level that the median run of every N reaches,
# i.e. the worst N's median final (smoothed) loss. A run that never reaches it is given its whole
# training time, a lower bound on its cost.


def collect(sweep: Path, name: str, data_dir: Path, figures: Path | None) -> list[Path]:
    """Read the sweep in `sweep` into data_dir/<name>-seeds.csv and <name>-jobs.csv; draw its
    figures into `figures` (None: no figures, for a variant that would overwrite the main ones)."""
    jobs, skipped = find_jobs([sweep])
    if skipped or not jobs:
        raise ValueError(f"{sweep}: {len(jobs)} readable jobs; skipped {'; '.join(skipped) or 'none'}")
    data_dir.mkdir(parents=True, exist_ok=True)
    seeds = per_seed(jobs).assign(job=lambda t: t["job"].map(lambda p: Path(p).name))
    described = pd.DataFrame([job_row(job) for job in jobs])
    paths = [data_dir / f"{name}-seeds.csv", data_dir / f"{name}-jobs.csv"]
    seeds.to_csv(paths[0], index=False, float_format="%.7g")
    described.to_csv(paths[1], index=False, float_format="%.7g")
    if figures is None:
        return paths
    figures.mkdir(parents=True, exist_ok=True)
    return paths + draw(summarise_seeds(seeds), figures, SMOOTH, "quartiles", formats=("png",))


@dataclass(frozen=True)
class Sweep:
    seeds: pd.DataFrame  # <name>-seeds.csv
    jobs: pd.DataFrame  # <name>-jobs.csv
    units: UnitCosts | None = None  # complexity.json's unit costs: the counted-cost axis, when the runs have counters

    @property
    def counted(self) -> bool:
        """Whether a counted cost can be computed: counters in the runs and prices for their shape."""
        if self.units is None or not has_counters(self.seeds):
            return False
        first = self.jobs.iloc[0]
        return prices_for(self.units, str(first["dataset"]), str(first["geometry"])) is not None


def read(data_dir: Path, name: str, units: UnitCosts | None = None) -> Sweep:
    return Sweep(pd.read_csv(data_dir / f"{name}-seeds.csv"), pd.read_csv(data_dir / f"{name}-jobs.csv"), units)


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
            levels, at = gradient
            row[f"‖∇L_meta‖²@{at}"] = interval([10**v for v in levels[n].values()])
        row["s/iteration"] = interval([run["time"].max() / run["iteration"].max() for run in by_seed.values()])
        if sweep.counted:  # the same counts for every seed
            first = next(iter(by_seed.values()))
            row["counted s/iteration"] = float(first["cost"].max() / first["iteration"].max())
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
    """N -> seed -> that run's curve (iteration, time, loss smoothed over SMOOTH iterations, and
    the cumulative counted cost where the sweep has one)."""
    chosen = sweep.seeds[sweep.seeds["alpha_schedule"] == schedule]
    algorithm = algorithm_of(sweep.jobs)
    curves: dict[int, dict[int, pd.DataFrame]] = {}
    for (n, seed), run in chosen.groupby(["N", "seed"]):
        run = run.sort_values("iteration")
        run = run.assign(smooth_loss=run["loss"].rolling(SMOOTH, min_periods=1).mean())
        if sweep.counted:
            assert sweep.units is not None
            run = run.assign(
                cost=counted_cost(
                    run, sweep.units, str(run["dataset"].iloc[0]), str(run["geometry"].iloc[0]), algorithm
                )
            )
        curves.setdefault(int(str(n)), {})[int(str(seed))] = run
    return curves


def levels_at(curves: dict[int, dict[int, pd.DataFrame]], iteration: int) -> claims.Levels:
    """log10 of each run's smoothed loss at `iteration` (the per-iteration claims' practical quantity)."""
    return {
        n: {s: math.log10(loss_at(run, "iteration", iteration)) for s, run in runs.items()}
        for n, runs in curves.items()
    }


def gradient_levels(curves: dict[int, dict[int, pd.DataFrame]]) -> tuple[claims.Levels, int] | None:
    """log10 of the full objective's ‖∇L_meta‖² (both blocks, on the runs' fixed task set) at the
    last iteration where every run evaluated it: the quantity Theorems 1 and 2 bound. None when
    the runs did not log it."""
    evaluated: set[int] | None = None
    for runs in curves.values():
        for run in runs.values():
            if not all(column in run for column in OBJECTIVE_METRICS):
                return None
            done = set(run.dropna(subset=list(OBJECTIVE_METRICS))["iteration"].astype(int))
            evaluated = done if evaluated is None else evaluated & done
    if not evaluated:
        return None
    at = max(evaluated)

    def level(run: pd.DataFrame) -> float:
        row = run[run["iteration"] == at].iloc[0]
        return math.log10(sum(float(row[column]) for column in OBJECTIVE_METRICS))

    return {n: {s: level(run) for s, run in runs.items()} for n, runs in curves.items()}, at


Curves = dict[int, dict[int, pd.DataFrame]]  # N -> seed -> one run's curve (seed_curves)


def common_target(*groups: Curves) -> float:
    """The loss level the median run of every N (of every group of curves) reaches: the worst
    median final smoothed loss."""
    return max(
        float(np.median([run["smooth_loss"].iloc[-1] for run in runs.values()]))
        for curves in groups
        for runs in curves.values()
    )


def cost_to(curves: Curves, column: str = "time") -> tuple[claims.Costs, float]:
    """Each run's `column` (training seconds, or counted cost) when its smoothed loss first reaches
    the common target (see above)."""
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


def diverged_counts(sweep: Sweep, schedule: str) -> dict[int, tuple[int, int]]:
    """N -> (diverged runs, runs) for one stepsize schedule."""
    jobs = sweep.jobs[sweep.jobs["alpha_schedule"] == schedule]
    return {int(str(n)): counted for n, counted in tally(jobs, "N", jobs["diverged"]).items()}


Row = tuple[claims.Judgement, str, str]  # a judgement, the stepsize design, the quantity judged
Rules = tuple[Callable[[claims.Levels], claims.Judgement], Callable[[claims.Costs], claims.Judgement]]


def judgements(fig1: Sweep, fig2: Sweep, search: divergence.Search | None = None) -> list[Row]:
    """Every claim, judged on these sweeps under each stepsize design, with the quantity it was
    judged on. The per-iteration claims are judged on ‖∇L_meta‖² (where logged) and on the
    training loss; the complexity claims on the counted cost (deterministic, where the runs have
    counters) and on training seconds as a second, noisy view. The stability claims are judged on
    the divergence search when there is one, else on Figure 2's own runs."""
    rows: list[Row] = []
    for (name, sweep), rules in zip(experiments(fig1, fig2), (CONVEX_RULES, NONCONVEX_RULES)):
        rows += [row for _, row in sweep_rows(name, sweep, rules)]
    return rows + _stability(fig2, search)


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
            quantity = f"log10 ‖∇L_meta‖² at iteration {gradient[1]}"
            rows.append((schedule, (per_iteration(gradient[0]), label, quantity)))
        last = _last(curves)
        rows.append(
            (schedule, (per_iteration(levels_at(curves, last)), label, f"log10 training loss at iteration {last}"))
        )
        rows += [(schedule, (judged, label, q)) for judged, q in _complexity(complexity, curves, sweep.counted)]
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
            "same" if same else ("**changes**" if before else "—"),
        ])  # fmt: skip
    return rows, changed


BESIDE_HEADER = ["claim", "stepsize design", "quantity judged", "evidence"]


def init_section(fig1: Sweep, variant: Sweep) -> list[str]:
    """Figure 1's claims judged on `variant` (the Figure 1 sweep rerun, or part of it, under the
    other initialisation) beside the main sweep's verdicts for the same design and quantity."""
    init, other = init_of(variant.jobs), init_of(fig1.jobs)
    rows, changed = beside(fig1, variant, experiment("fig1", fig1), CONVEX_RULES)
    header = [*BESIDE_HEADER, f"verdict, init={init}", f"init={other}", ""]
    return [
        f"## Under the other initialisation (init={init})",
        "",
        f"The Figure 1 sweep rerun with `init={init}` ({settings(variant.jobs)}; {environment(variant.jobs)}; "
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


def _complexity(
    rule: Callable[[claims.Costs], claims.Judgement], curves: dict[int, dict[int, pd.DataFrame]], counted: bool
) -> list[tuple[claims.Judgement, str]]:
    """A complexity claim on the counted cost (when there is one) and on wall-clock seconds."""
    seconds, target = cost_to(curves, "time")
    views = []
    if counted:
        cost, _ = cost_to(curves, "cost")
        views.append((rule(cost), f"counted cost (seconds at the unit costs) to a training loss of {target:.3g}"))
    label = "training seconds (wall-clock, noisy)" if counted else "training seconds"
    return views + [(rule(seconds), f"{label} to a training loss of {target:.3g}")]


def _last(curves: dict[int, dict[int, pd.DataFrame]]) -> int:
    """The last iteration every run reached."""
    return min(int(run["iteration"].max()) for runs in curves.values() for run in runs.values())


def claims_table(fig1: Sweep, fig2: Sweep, search: divergence.Search | None = None) -> list[str]:
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
        for judged, label, quantity in judgements(fig1, fig2, search)
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


def environment(jobs: pd.DataFrame) -> str:
    """Where the jobs ran, as their summaries recorded it."""
    columns = ["device", "device_name", "torch", "torch_threads"]
    places = jobs.groupby(columns, dropna=False).size().reset_index(name="jobs")
    return "; ".join(
        f"{p.jobs} jobs on {p.device} ({p.device_name}, torch {p.torch}, " + f"{_threads(p.torch_threads)})"
        for p in places.itertuples()
    )


def _threads(value: Any) -> str:
    """A job's torch thread count as its summary recorded it (older summaries did not)."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return f"{int(value)} thread{'' if int(value) == 1 else 's'}"
    return "threads not recorded"


def algorithm_of(jobs: pd.DataFrame) -> str:
    """The jobs' algorithm (anil or maml); jobs recorded before the column existed ran ANIL."""
    return str(jobs["algorithm"].iloc[0]) if "algorithm" in jobs else "anil"


def init_of(jobs: pd.DataFrame) -> str:
    """The jobs' initialisation; jobs recorded before the option existed used PyTorch's defaults."""
    return str(jobs["init"].iloc[0]) if "init" in jobs else DEFAULT_INIT


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


def final_accuracy(sweep: Sweep) -> str:
    """The mean over jobs of the last validation accuracy each logged."""
    if "val_accuracy" not in sweep.seeds:
        return "not logged"
    last = sweep.seeds.dropna(subset=["val_accuracy"]).sort_values("iteration").groupby("job").tail(1)
    accuracy = 100 * last["val_accuracy"]
    return f"{accuracy.mean():.1f}% (range {accuracy.min():.1f}–{accuracy.max():.1f}%)"


def experiment(fig: str, sweep: Sweep) -> str:
    """The experiment config that runs this figure's sweep (conf/experiment/<name>.yaml)."""
    return f"{fig}_{sweep.jobs['dataset'].iloc[0]}"


def experiments(fig1: Sweep, fig2: Sweep) -> list[tuple[str, Sweep]]:
    """Each figure's sweep with its experiment config."""
    return [(experiment(fig, sweep), sweep) for fig, sweep in (("fig1", fig1), ("fig2", fig2))]


def commands(fig1: Sweep, fig2: Sweep, search: divergence.Search | None, variant: Sweep | None = None) -> list[str]:
    """The commands that produce this document's data, from the jobs' own settings."""
    sweeps = experiments(fig1, fig2)
    lines = [
        f"anil train -m experiment={name} init={init_of(sweep.jobs)} hydra.sweep.dir=outputs/sweeps/{name}"
        for name, sweep in sweeps
    ]
    if variant is not None:
        designs = {"constant": "fixed_alpha", "inverse_n": "fixed_alpha_n"}
        chosen = ",".join(designs[s] for s in schedules(variant) if s in designs)
        init = init_of(variant.jobs)
        lines.append(
            f"anil train -m experiment={sweeps[0][0]} alpha_design={chosen} init={init} "
            f"hydra.sweep.dir=outputs/sweeps/{sweeps[0][0]}_init_{init}"
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
    if variant is not None:
        report += f" --fig1-init outputs/sweeps/{sweeps[0][0]}_init_{init_of(variant.jobs)}"
    return [*lines, report]


def render(
    fig1: Sweep,
    fig2: Sweep,
    sources: list[str],
    search: divergence.Search | None = None,
    variant: Sweep | None = None,
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
        *commands(fig1, fig2, search, variant),
        "```",
        "",
        f"Figure 1 settings: {settings(fig1.jobs)}. Figure 2 settings: {settings(fig2.jobs)}. Curves are the mean "
        "over seeds with the quartiles over seeds as a band; time is training time (evaluation excluded), jobs run "
        "one after another.",
        "",
        f"Where they ran: Figure 1: {environment(fig1.jobs)}; Figure 2: {environment(fig2.jobs)}. Sweep wall time "
        "(sum of the jobs' own): "
        + ", ".join(f"{fig} {minutes:.1f} min" for fig, minutes in wall.items())
        + (f", divergence search {search.wall_minutes():.1f} min" if search is not None else "")
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
        *claims_table(fig1, fig2, search),
        "",
    ]
    if search is not None:
        lines += search.section()
    if variant is not None:
        lines += init_section(fig1, variant)
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
    search = divergence.read(data_dir)
    variant = read(data_dir, VARIANT, units) if (data_dir / f"{VARIANT}-jobs.csv").exists() else None
    names = [*FIGURES, VARIANT] if variant is not None else list(FIGURES)
    sources = [source_name(data_dir / f"{name}-{kind}.csv", doc_path) for name in names for kind in ("seeds", "jobs")]
    if search is not None:
        sources += [source_name(path, doc_path) for path in search.paths]
    if fig1.counted or fig2.counted:
        sources.append(source_name(units_path, doc_path))
    doc_path.write_text(render(fig1, fig2, sources, search, variant), encoding="utf-8")
    return doc_path
