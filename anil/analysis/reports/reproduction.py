"""docs/reproduction.md from the Figure 1 and Figure 2 sweeps.

`collect` reads a finished sweep into two CSV files under docs/data/reproduction/ (every job's
per-iteration numbers, and one row per job with its settings and environment) and draws its
figures into docs/figures/; `render` turns those files into Markdown: the numbers behind each of
the paper's claims and a computed verdict per claim. Nothing in the document is typed by hand:
settings, device, timings and verdicts all come from the CSV files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from anil.analysis.plot import KEYS, draw, find_jobs, per_seed, summarise_seeds
from anil.analysis.reports.markdown import generated_by, source_name, table

COMMAND = "anil report reproduction"
SMOOTH = 10  # rolling window (iterations) for the figures and for every number read off a curve
FIGURES = ("fig1", "fig2")
MONOTONE_SLACK = 1.02  # (a): a loss may rise by 2% from one N to the next and still count as falling
SATURATION = 0.25  # (a): the gain beyond N = 7 is "saturated" when below this share of the gain up to 7


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
    return paths + draw(summarise_seeds(seeds), figures, SMOOTH, "std", formats=("png",))


def _job_row(job: Any) -> dict[str, Any]:
    config, summary = job.config, job.summary
    return {
        "job": job.path.name, "dataset": job.dataset, "geometry": job.geometry, "alpha_schedule": job.alpha_schedule,
        "N": job.N, "alpha": job.alpha, "seed": job.seed, "diverged": job.diverged, "B": config["B"],
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

    def curves(self) -> pd.DataFrame:
        """Mean over seeds per curve and iteration, with the loss smoothed over SMOOTH iterations."""
        table = summarise_seeds(self.seeds)
        parts = []
        for _, curve in table.groupby(KEYS):
            curve = curve.sort_values("iteration").copy()
            curve["smooth_loss"] = curve["loss"].rolling(SMOOTH, min_periods=1).mean()
            parts.append(curve)
        return pd.concat(parts, ignore_index=True)


def read(data_dir: Path, name: str) -> Sweep:
    return Sweep(pd.read_csv(data_dir / f"{name}-seeds.csv"), pd.read_csv(data_dir / f"{name}-jobs.csv"))


def loss_at(curve: pd.DataFrame, column: str, value: float) -> float:
    return float(curve.loc[curve[column] <= value, "smooth_loss"].iloc[-1])


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
        row["diverged"] = f"{int(curve['diverged_runs'].iloc[0])}/{int(curve['runs'].iloc[0])}"
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["budget"] = budget
    return frame


def markdown_table(frame: pd.DataFrame) -> list[str]:
    rows = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    return table(list(frame.columns), rows, [True] * len(frame.columns))


Verdict = tuple[str, str]  # the verdict, the evidence it rests on


def claim_a(convex: pd.DataFrame, at: int) -> Verdict:
    losses = dict(zip(convex["N"], convex[f"loss@{at}"]))
    up_to_7 = [losses[n] for n in sorted(losses) if n <= 7]
    monotone = all(b <= a * MONOTONE_SLACK for a, b in zip(up_to_7, up_to_7[1:]))
    beyond = min(losses[n] for n in losses if n > 7)
    gain_to_7 = losses[min(losses)] - losses[7]
    gain_after_7 = losses[7] - beyond
    saturates = gain_after_7 < SATURATION * max(gain_to_7, 1e-12)
    evidence = (
        f"loss after {at} iterations: " + ", ".join(f"N={n}: {v:.3f}" for n, v in losses.items())
        + f"; gain N=1→7 {gain_to_7:.3f}, further gain beyond 7 {gain_after_7:.3f}"
    )  # fmt: skip
    if monotone and saturates and gain_to_7 > 0:
        return "agrees", evidence
    if gain_to_7 > 0:
        return "partly (" + ("not monotone up to 7" if not monotone else "no saturation at 7") + ")", evidence
    return "disagrees", evidence


def claim_b(convex: pd.DataFrame) -> Verdict:
    losses = dict(zip(convex["N"], convex["loss@time"]))
    best = min(losses, key=lambda n: losses[n])
    grid = sorted(losses)
    moderate = grid[0] < best < grid[-1]
    by_cost = convex.sort_values("s/iteration")
    cheapest, dearest = by_cost.iloc[0], by_cost.iloc[-1]
    evidence = (
        f"loss after {convex.attrs['budget']:.0f} s of training: "
        + ", ".join(f"N={n}: {v:.3f}" for n, v in losses.items())
        + f"; fastest N={best}; s/iteration from {cheapest['s/iteration']:.3f} (N={cheapest['N']}) "
        f"to {dearest['s/iteration']:.3f} (N={dearest['N']})"
    )  # fmt: skip
    return ("agrees" if moderate else "disagrees"), evidence


def claim_c(nonconvex: pd.DataFrame) -> Verdict:
    losses = dict(zip(nonconvex["N"], nonconvex["loss@time"]))
    best = min(losses, key=lambda n: losses[n])
    cost = dict(zip(nonconvex["N"], nonconvex["s/iteration"]))
    slower = cost[max(cost)] / cost[min(cost)]
    evidence = (
        f"loss after {nonconvex.attrs['budget']:.0f} s: " + ", ".join(f"N={n}: {v:.3f}" for n, v in losses.items())
        + f"; fastest N={best}; an iteration at N={max(cost)} costs {slower:.2f}× one at N={min(cost)}"
    )  # fmt: skip
    return ("agrees" if best == min(losses) else "disagrees"), evidence


def claim_d(constant: pd.DataFrame, dataset: str) -> Verdict:
    """N = 30 with constant alpha diverges on FC100."""
    largest = int(constant["N"].max())
    diverged = constant.loc[constant["N"] == largest, "diverged"].iloc[0]
    evidence = "diverged runs, constant α: " + ", ".join(
        f"N={n}: {d}" for n, d in zip(constant["N"], constant["diverged"])
    )
    if dataset != "fc100":
        seen = "diverged too" if not diverged.startswith("0/") else "did not diverge"
        return f"not testable with these sweeps (dataset={dataset}, not fc100); here N={largest} {seen}", evidence
    return ("agrees" if not diverged.startswith("0/") else "disagrees"), evidence


def claim_e(constant: pd.DataFrame, inverse: pd.DataFrame) -> Verdict:
    """alpha proportional to 1/N restores stability."""
    any_constant = ", ".join(f"N={n}: {d}" for n, d in zip(constant["N"], constant["diverged"]))
    any_inverse = ", ".join(f"N={n}: {d}" for n, d in zip(inverse["N"], inverse["diverged"]))
    evidence = f"constant α: {any_constant}; α/N: {any_inverse}"
    if all(d.startswith("0/") for d in constant["diverged"]):
        return "cannot be confirmed: constant α did not diverge either, so there was nothing to restore", evidence
    return ("agrees" if all(d.startswith("0/") for d in inverse["diverged"]) else "disagrees"), evidence


def environment(jobs: pd.DataFrame) -> str:
    """Where the jobs ran, as their summaries recorded it."""
    columns = ["device", "device_name", "torch", "torch_threads"]
    places = jobs.groupby(columns, dropna=False).size().reset_index(name="jobs")
    return "; ".join(
        f"{p.jobs} jobs on {p.device} ({p.device_name}, torch {p.torch}, {p.torch_threads} threads)"
        for p in places.itertuples()
    )


def settings(jobs: pd.DataFrame) -> str:
    first = jobs.iloc[0]
    seeds = jobs["seed"].nunique()
    return (
        f"dataset={first['dataset']}, {first['ways']}-way {first['shots']}-shot, {first['query']} query, "
        f"B = {first['B']} tasks, {first['iterations']} meta-iterations, λ = {first['lam']} (convex), "
        f"{first['optim']} β_w = {first['beta_w']}, β_φ = {first['beta_phi']}, {seeds} seeds per point"
    )


def why(convex: pd.DataFrame, constant: pd.DataFrame, jobs: pd.DataFrame, verdicts: list[Verdict]) -> list[str]:
    """The measured reasons behind the wall-clock disagreements, from the same runs."""
    if all(v[0].startswith("agrees") for v in verdicts[1:]):
        return []
    spread_convex = convex["s/iteration"].max() / convex["s/iteration"].min()
    spread_nonconvex = constant["s/iteration"].max() / constant["s/iteration"].min()
    on_gpu = (jobs["device"].astype(str).str.startswith("cuda")).any()
    return [
        f"**Why the wall-clock claims come out as they do here.** On the machine these jobs ran on an iteration at the "
        f"largest N costs {spread_convex:.2f}× one at the smallest (convex) and {spread_nonconvex:.2f}× (nonconvex). "
        "The paper's claims (b) and (c) rest on the cost of an iteration growing linearly in N (Theorems 1 and 2 count "
        "gradient and second-order evaluations); when that growth is small, the per-iteration ordering carries over "
        "to wall-clock time almost unchanged."
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
    a, b, c = claim_a(convex, 100), claim_b(convex), claim_c(constant)
    d, e = claim_d(constant, str(fig2.jobs["dataset"].iloc[0])), claim_e(constant, inverse)
    dataset = fig1.jobs["dataset"].iloc[0]
    lines = [
        f"# Reproducing Figures 1 and 2 on the {dataset} dataset",
        "",
        generated_by(COMMAND, sources) + f" The figures are `anil plot --smooth {SMOOTH}` drawings of the same data.",
        "",
        "## Commands",
        "",
        "```",
        f"anil train -m experiment=fig1_{dataset} hydra.sweep.dir=outputs/sweeps/fig1_{dataset}",
        f"anil train -m experiment=fig2_{dataset} hydra.sweep.dir=outputs/sweeps/fig2_{dataset}",
        f"anil report reproduction --fig1 outputs/sweeps/fig1_{dataset} --fig2 outputs/sweeps/fig2_{dataset}",
        "```",
        "",
        f"Figure 1 settings: {settings(fig1.jobs)}; "
        f"inner stepsize by `alpha_schedule={fig1.jobs['alpha_schedule'].iloc[0]}`. "
        f"Figure 2 settings: {settings(fig2.jobs)}; constant α and α/N. Curves are the mean over seeds with a ±1 std "
        "band; time is training time (evaluation excluded), jobs run one after another.",
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
        *table(
            ["claim (paper, Section 4)", "verdict here", "evidence"],
            [
                ["(a) convex: more inner steps converge faster per iteration, saturating around N = 7", *a],
                ["(b) convex: in wall-clock time a moderate N is fastest", *b],
                ["(c) nonconvex: larger N is slower in wall-clock, N = 1 fastest", *c],
                ["(d) nonconvex: N = 30 with constant α diverges on FC100", *d],
                ["(e) α ∝ 1/N restores stability", *e],
            ],
            [False, False, False],
        ),
        "",
        *why(convex, constant, pd.concat([fig1.jobs, fig2.jobs]), [a, b, c]),
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
    fig1, fig2 = (read(data_dir, name) for name in FIGURES)
    sources = [source_name(data_dir / f"{name}-{kind}.csv", doc_path) for name in FIGURES for kind in ("seeds", "jobs")]
    doc_path.write_text(render(fig1, fig2, sources), encoding="utf-8")
    return doc_path
