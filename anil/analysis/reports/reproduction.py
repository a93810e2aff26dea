"""docs/reproduction.md from the Figure 1 and Figure 2 sweeps.

`collect` reads a finished sweep into two CSV files under docs/data/reproduction/ (every job's
per-iteration numbers, and one row per job with its settings and environment) and draws its
figures into docs/figures/; `render` turns those files into Markdown: the numbers behind each of
the paper's claims and a computed verdict per claim. Nothing in the document is typed by hand:
settings, device, timings and verdicts all come from the CSV files.
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
from anil.analysis.cost import UnitCosts, counted_cost, has_counters, iteration_cost
from anil.analysis.plot import KEYS, draw, find_jobs, per_seed, summarise_seeds
from anil.analysis.reports.markdown import generated_by, source_name, table
from anil.config import TrainConfig

DEFAULT_INIT = TrainConfig.init  # what runs recorded before the option existed used
COMMAND = "anil report reproduction"
SMOOTH = 10  # rolling window (iterations) for the figures and for every number read off a curve
FIGURES = ("fig1", "fig2")
# The cost claims need a common target: the loss level that the median run of every N reaches,
# i.e. the worst N's median final (smoothed) loss. A run that never reaches it is given its whole
# training time, a lower bound on its cost.


def collect(sweep: Path, name: str, data_dir: Path, figures: Path) -> list[Path]:
    """Read the sweep in `sweep` into data_dir/<name>-seeds.csv and <name>-jobs.csv; draw its figures."""
    jobs, skipped = find_jobs([sweep])
    if skipped or not jobs:
        raise ValueError(f"{sweep}: {len(jobs)} readable jobs; skipped {'; '.join(skipped) or 'none'}")
    data_dir.mkdir(parents=True, exist_ok=True)
    seeds = per_seed(jobs).assign(job=lambda t: t["job"].map(lambda p: Path(p).name))
    described = pd.DataFrame([_job_row(job) for job in jobs])
    paths = [data_dir / f"{name}-seeds.csv", data_dir / f"{name}-jobs.csv"]
    seeds.to_csv(paths[0], index=False, float_format="%.7g")
    described.to_csv(paths[1], index=False, float_format="%.7g")
    figures.mkdir(parents=True, exist_ok=True)
    return paths + draw(summarise_seeds(seeds), figures, SMOOTH, "quartiles", formats=("png",))


def _job_row(job: Any) -> dict[str, Any]:
    config, summary = job.config, job.summary
    return {
        "job": job.path.name, "dataset": job.dataset, "geometry": job.geometry, "alpha_schedule": job.alpha_schedule,
        "N": job.N, "alpha": job.alpha, "seed": job.seed, "diverged": job.diverged, "B": config["B"],
        "init": config.get("init", DEFAULT_INIT),
        "iterations": config["iterations"], "lam": config["lam"], "optim": config["optim"]["name"],
        "beta_w": config["optim"]["beta_w"], "beta_phi": config["optim"]["beta_phi"], "ways": config["ways"],
        "shots": config["shots"], "query": config["query"], "status": summary.get("status"),
        "wall_time_s": summary.get("wall_time_s"), "train_time_s": summary.get("train_time_s"),
        "device": summary.get("device"), "device_name": summary.get("device_name"), "torch": summary.get("torch"),
        "torch_threads": summary.get("torch_threads"),
    }  # fmt: skip


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
        return first["geometry"] in self.units.get(str(first["dataset"]), {})

    def curves(self) -> pd.DataFrame:
        """Mean over seeds per curve and iteration, with the loss smoothed over SMOOTH iterations."""
        table = summarise_seeds(self.seeds)
        if self.counted:  # the counts of an iteration are the same for every seed: their mean is them
            assert self.units is not None
            first = self.jobs.iloc[0]
            prices = self.units[str(first["dataset"])][str(first["geometry"])]
            priced = self.seeds.assign(iteration_cost=iteration_cost(self.seeds, prices))
            means = priced.groupby([*KEYS, "iteration"], as_index=False)["iteration_cost"].mean()
            table = table.merge(means, on=[*KEYS, "iteration"])
        parts = []
        for _, curve in table.groupby(KEYS):
            curve = curve.sort_values("iteration").copy()
            curve["smooth_loss"] = curve["loss"].rolling(SMOOTH, min_periods=1).mean()
            if "iteration_cost" in curve:
                curve["cost"] = curve.pop("iteration_cost").cumsum()
            parts.append(curve)
        return pd.concat(parts, ignore_index=True)


def read(data_dir: Path, name: str, units: UnitCosts | None = None) -> Sweep:
    return Sweep(pd.read_csv(data_dir / f"{name}-seeds.csv"), pd.read_csv(data_dir / f"{name}-jobs.csv"), units)


def loss_at(curve: pd.DataFrame, column: str, value: float) -> float:
    """The smoothed loss at the last row with `column` <= value; NaN when the curve had not got
    that far at its first row (an iteration of this run takes longer than the whole budget)."""
    reached = curve.loc[curve[column] <= value, "smooth_loss"]
    return float(reached.iloc[-1]) if len(reached) else math.nan


def per_n(curves: pd.DataFrame, schedule: str, checkpoints: tuple[int, ...]) -> pd.DataFrame:
    """One row per N: loss after fixed iterations, loss after a fixed training time, s/iteration."""
    chosen = {n: c for (s, n), c in curves.groupby(["alpha_schedule", "N"]) if s == schedule}
    budget = min(c["time"].max() for c in chosen.values())  # every run got this far in training time
    rows = []
    for n, curve in sorted(chosen.items()):
        row: dict[str, Any] = {"N": n, "α": float(curve["alpha"].iloc[0])}
        for iteration in checkpoints:
            row[f"loss@{iteration}"] = loss_at(curve, "iteration", iteration)
        row["loss@time"] = loss_at(curve, "time", budget)
        row["s/iteration"] = curve["time"].max() / curve["iteration"].max()
        if "cost" in curve:
            row["counted s/iteration"] = curve["cost"].max() / curve["iteration"].max()
        row["diverged"] = f"{int(curve['diverged_runs'].iloc[0])}/{int(curve['runs'].iloc[0])}"
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["budget"] = budget
    return frame


def markdown_table(frame: pd.DataFrame) -> list[str]:
    rows = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    return table(list(frame.columns), rows, [True] * len(frame.columns))


def seed_curves(sweep: Sweep, schedule: str) -> dict[int, dict[int, pd.DataFrame]]:
    """N -> seed -> that run's curve (iteration, time, loss smoothed over SMOOTH iterations, and
    the cumulative counted cost where the sweep has one)."""
    chosen = sweep.seeds[sweep.seeds["alpha_schedule"] == schedule]
    curves: dict[int, dict[int, pd.DataFrame]] = {}
    for (n, seed), run in chosen.groupby(["N", "seed"]):
        run = run.sort_values("iteration")
        run = run.assign(smooth_loss=run["loss"].rolling(SMOOTH, min_periods=1).mean())
        if sweep.counted:
            assert sweep.units is not None
            run = run.assign(
                cost=counted_cost(run, sweep.units, str(run["dataset"].iloc[0]), str(run["geometry"].iloc[0]))
            )
        curves.setdefault(int(str(n)), {})[int(str(seed))] = run
    return curves


def levels_at(curves: dict[int, dict[int, pd.DataFrame]], iteration: int) -> claims.Levels:
    """log10 of each run's smoothed loss at `iteration` (the per-iteration claims' quantity)."""
    return {
        n: {s: math.log10(loss_at(run, "iteration", iteration)) for s, run in runs.items()}
        for n, runs in curves.items()
    }


def cost_to(curves: dict[int, dict[int, pd.DataFrame]], column: str = "time") -> tuple[claims.Costs, float]:
    """Each run's `column` (training seconds, or counted cost) when its smoothed loss first reaches
    the common target (see above)."""
    target = max(float(np.median([run["smooth_loss"].iloc[-1] for run in runs.values()])) for runs in curves.values())
    costs: claims.Costs = {}
    for n, runs in curves.items():
        for seed, run in runs.items():
            reached = run[run["smooth_loss"] <= target]
            costs.setdefault(n, {})[seed] = float(
                (reached if len(reached) else run)[column].iloc[0 if len(reached) else -1]
            )
    return costs, target


def diverged_counts(sweep: Sweep, schedule: str) -> dict[int, tuple[int, int]]:
    """N -> (diverged runs, runs) for one stepsize schedule."""
    jobs = sweep.jobs[sweep.jobs["alpha_schedule"] == schedule]
    return {int(str(n)): (int(part["diverged"].sum()), len(part)) for n, part in jobs.groupby("N")}


def judgements(fig1: Sweep, fig2: Sweep) -> list[tuple[claims.Judgement, str]]:
    """Every claim, judged on these sweeps, with the quantity it was judged on. The complexity
    claims are judged on the counted cost where the sweeps have one (deterministic), and on
    training seconds as a second, noisy view."""
    convex = seed_curves(fig1, str(fig1.jobs["alpha_schedule"].iloc[0]))
    constant = seed_curves(fig2, "constant")
    last1, last2 = _last(convex), _last(constant)
    divergence = diverged_counts(fig2, "constant")
    largest = max(divergence)
    judged = [(claims.convex_per_iteration(levels_at(convex, last1)), f"log10 training loss at iteration {last1}")]
    judged += _complexity(claims.convex_complexity, convex, fig1.counted)
    judged += [
        (claims.nonconvex_per_iteration(levels_at(constant, last2)), f"log10 training loss at iteration {last2}")
    ]
    judged += _complexity(claims.nonconvex_complexity, constant, fig2.counted)
    return judged + [
        (claims.divergence_at_30(str(fig2.jobs["dataset"].iloc[0]), *divergence[largest], n=largest), "diverged runs"),
        (claims.inverse_n(divergence, diverged_counts(fig2, "inverse_n")), "diverged runs, constant α and α/N"),
    ]


def _complexity(
    rule: Callable[[claims.Costs], claims.Judgement], curves: dict[int, dict[int, pd.DataFrame]], counted: bool
) -> list[tuple[claims.Judgement, str]]:
    """A complexity claim on the counted cost (when there is one) and on wall-clock seconds."""
    seconds, target = cost_to(curves, "time")
    views = []
    if counted:
        cost, _ = cost_to(curves, "cost")
        views.append((rule(cost), f"counted cost (seconds at the unit costs) to a loss of {target:.3g}"))
    label = "training seconds (wall-clock, noisy)" if counted else "training seconds"
    return views + [(rule(seconds), f"{label} to a loss of {target:.3g}")]


def _last(curves: dict[int, dict[int, pd.DataFrame]]) -> int:
    """The last iteration every run reached."""
    return min(int(run["iteration"].max()) for runs in curves.values() for run in runs.values())


def claims_table(fig1: Sweep, fig2: Sweep) -> list[str]:
    rows = [
        [
            judged.claim.statement,
            judged.claim.source,
            quantity,
            judged.evidence,
            f"**{judged.verdict.value}**",
            judged.reason,
        ]
        for judged, quantity in judgements(fig1, fig2)
    ]
    return table(
        ["claim", "where the paper says it", "quantity judged", "evidence", "verdict", "why"], rows, [False] * 6
    )


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
        return f"{int(value)} threads"
    return "threads not recorded"


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
        f"{first['optim']} β_w = {first['beta_w']}, β_φ = {first['beta_phi']}, {seeds} seeds per point"
    )


def why(convex: pd.DataFrame, constant: pd.DataFrame, jobs: pd.DataFrame) -> list[str]:
    """How much an iteration's cost grows with N on the machine these jobs ran on: what the
    wall-clock claims rest on."""

    def growth(table: pd.DataFrame) -> float:  # s/iteration at the largest N over that at the smallest
        ordered = table.sort_values("N")["s/iteration"]
        return float(ordered.iloc[-1] / ordered.iloc[0])

    spread_convex, spread_nonconvex = growth(convex), growth(constant)
    on_gpu = (jobs["device"].astype(str).str.startswith("cuda")).any()
    return [
        f"**What the wall-clock claims rest on.** On the machine these jobs ran on an iteration at the "
        f"largest N costs {spread_convex:.2f}× one at the smallest (convex) and {spread_nonconvex:.2f}× (nonconvex). "
        "The paper's running-time claims rest on the cost of an iteration growing linearly in N (Theorems 1 and 2 "
        "count gradient and second-order evaluations); when that growth is small, the per-iteration ordering carries "
        "over to wall-clock time almost unchanged."
        + ("" if on_gpu else " No job ran on a GPU, where each inner step is a separate round of small kernels."),
        "",
    ]


def noise(constant: pd.DataFrame, inverse: pd.DataFrame) -> list[str]:
    """N = 1 with constant alpha and with alpha / N is the same computation: its two timings show the noise."""
    a = constant.loc[constant["N"] == 1, "s/iteration"]
    b = inverse.loc[inverse["N"] == 1, "s/iteration"]
    if a.empty or b.empty:
        return []
    x, y = float(a.iloc[0]), float(b.iloc[0])
    return [
        "**Timing noise.** N = 1 with constant α and with α/N is the same computation (same seeds, same losses); "
        f"its two sets of jobs measured {x:.3f} and {y:.3f} s/iteration, a {abs(x - y) / min(x, y):.0%} difference "
        "from the machine alone. Wall-clock verdicts are only as strong as the differences between N are large "
        "against this.",
        "",
    ]


def final_accuracy(sweep: Sweep) -> str:
    """The mean over jobs of the last validation accuracy each logged."""
    if "val_accuracy" not in sweep.seeds:
        return "not logged"
    last = sweep.seeds.dropna(subset=["val_accuracy"]).sort_values("iteration").groupby("job").tail(1)
    accuracy = 100 * last["val_accuracy"]
    return f"{accuracy.mean():.1f}% (range {accuracy.min():.1f}–{accuracy.max():.1f}%)"


def render(fig1: Sweep, fig2: Sweep, sources: list[str]) -> str:
    curves1, curves2 = fig1.curves(), fig2.curves()
    last = int(curves1["iteration"].max())
    checkpoints = (50, 100, last)
    convex = per_n(curves1, str(fig1.jobs["alpha_schedule"].iloc[0]), checkpoints)
    constant, inverse = per_n(curves2, "constant", checkpoints), per_n(curves2, "inverse_n", checkpoints)
    dataset = fig1.jobs["dataset"].iloc[0]
    lines = [
        f"# Reproducing Figures 1 and 2 on the {dataset} dataset",
        "",
        generated_by(COMMAND, sources) + f" The figures are `anil plot --smooth {SMOOTH}` drawings of the same data.",
        "",
        "## Commands",
        "",
        "```",
        *(
            f"anil train -m experiment={fig}_{dataset} init={init_of(sweep.jobs)} "
            f"hydra.sweep.dir=outputs/sweeps/{fig}_{dataset}"
            for fig, sweep in (("fig1", fig1), ("fig2", fig2))
        ),
        f"anil report reproduction --fig1 outputs/sweeps/fig1_{dataset} --fig2 outputs/sweeps/fig2_{dataset}",
        "```",
        "",
        f"Figure 1 settings: {settings(fig1.jobs)}; "
        f"inner stepsize by `alpha_schedule={fig1.jobs['alpha_schedule'].iloc[0]}`. "
        f"Figure 2 settings: {settings(fig2.jobs)}; constant α and α/N. Curves are the mean over seeds with the "
        "quartiles over seeds as a band; time is training time (evaluation excluded), jobs run one after another.",
        "",
        f"Where they ran: Figure 1: {environment(fig1.jobs)}; Figure 2: {environment(fig2.jobs)}. Sweep wall time "
        f"(sum of the jobs' own): Figure 1 {fig1.jobs['wall_time_s'].sum() / 60:.1f} min, Figure 2 "
        f"{fig2.jobs['wall_time_s'].sum() / 60:.1f} min. Final validation accuracy: Figure 1 {final_accuracy(fig1)}, "
        f"Figure 2 {final_accuracy(fig2)}.",
        "",
        "## Figures",
        "",
        *(f"![{stem}](figures/{stem}.png)" for stem in _figure_stems(fig1, fig2)),
        "",
        f"## Numbers read off the curves (smoothed over {SMOOTH} iterations)",
        "",
        "Convex (Figure 1):",
        "",
        *markdown_table(convex),
        "",
        "Nonconvex, constant α (Figure 2):",
        "",
        *markdown_table(constant),
        "",
        "Nonconvex, α/N:",
        "",
        *markdown_table(inverse),
        "",
        "`loss@time` is the smoothed loss when each run had trained for the shortest run's total training time "
        f"({convex.attrs['budget']:.0f} s for Figure 1, {constant.attrs['budget']:.0f} s for Figure 2 constant α).",
        "",
        "## The paper's claims against these runs",
        "",
        "Each claim is judged by a rule that can also say *disagrees* and *inconclusive* (anil/analysis/claims.py): "
        "comparisons between N are paired by seed (a seed sees the same tasks at every N) and carry bootstrap 95% "
        "intervals; an interval that straddles the decision makes the verdict inconclusive. With as few seeds as "
        "these sweeps have, the intervals are wide.",
        "",
        *claims_table(fig1, fig2),
        "",
        *why(convex, constant, pd.concat([fig1.jobs, fig2.jobs])),
        *noise(constant, inverse),
    ]
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
    sources = [source_name(data_dir / f"{name}-{kind}.csv", doc_path) for name in FIGURES for kind in ("seeds", "jobs")]
    if fig1.counted or fig2.counted:
        sources.append(source_name(units_path, doc_path))
    doc_path.write_text(render(fig1, fig2, sources), encoding="utf-8")
    return doc_path
