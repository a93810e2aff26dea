"""`anil plot SWEEP_DIR [...]`: the paper's convergence figures from one or more sweeps.

Each job is read back from its own files: `metrics.csv` for the curve and `.hydra/config.yaml`
for what it ran (never the folder name). Per (dataset, geometry), two figures, PNG and PDF:
- `<dataset>_<geometry>`: training loss against meta-iterations (left) and against training
  time (right), one curve per N (and stepsize schedule), the mean over seeds with a band of
  +-1 standard deviation across seeds (`--band minmax`: the min-max range; `none`: no band);
- `<dataset>_<geometry>_gradnorms`: the squared norms ||dL/dw||^2 (left) and ||dL/dphi||^2
  (right) of each iteration's mini-batch meta-gradient, against meta-iterations.
`curves.csv` holds every plotted number. Jobs still running are plotted up to their last
complete row; jobs without metrics are skipped with the reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from anil.config import inner_stepsize, resolve_references  # noqa: E402
from anil.engine.counters import COUNTERS  # noqa: E402
from anil.run.metrics import OBJECTIVE_METRICS, RENAMED  # noqa: E402
from anil.run.outcome import Status, read_summary  # noqa: E402

log = logging.getLogger(__name__)

BANDS = ("quartiles", "minmax", "none")
FORMATS = ("png", "pdf")
KEYS = ["dataset", "geometry", "alpha_schedule", "N", "alpha"]  # one curve per KEYS (alpha: the step used)
SERIES = ("loss", "sq_grad_norm_w", "sq_grad_norm_phi")  # the per-iteration numbers that are plotted
# Kept beside them in per_seed's table when logged; the operation counters price the counted-cost axis.
KEPT = ("val_loss", "val_accuracy", *OBJECTIVE_METRICS, *COUNTERS)


@dataclass(frozen=True)
class Job:
    path: Path
    dataset: str
    geometry: str
    N: int
    seed: int
    alpha_schedule: str
    alpha: float  # the inner stepsize actually used (after the schedule)
    metrics: pd.DataFrame
    diverged: bool  # the run stopped on a non-finite or blown-up loss (or its loss is already non-finite)
    config: dict[str, Any]  # the job's .hydra/config.yaml
    summary: dict[str, Any]  # its summary.json ({} while it runs)


def find_jobs(roots: list[Path]) -> tuple[list[Job], list[str]]:
    """Every job folder under `roots` with a readable config and metrics; and why others were skipped."""
    jobs, skipped = [], []
    for root in roots:
        for config_path in sorted(root.rglob(".hydra/config.yaml")):
            folder = config_path.parent.parent
            job, reason = _read_job(folder, config_path)
            if job is None:
                skipped.append(f"{folder}: {reason}")
            else:
                jobs.append(job)
    return jobs, skipped


def read_complete_rows(path: Path) -> pd.DataFrame:
    """metrics.csv without a last line that a running job has not finished writing; columns of
    runs written by an older anil get today's names."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    return pd.read_csv(StringIO("".join(lines))).rename(columns=RENAMED)


def _read_job(folder: Path, config_path: Path) -> tuple[Job | None, str]:
    metrics_path = folder / "metrics.csv"
    try:
        failed = read_summary(folder).get("status") == Status.FAILED.value
    except (OSError, ValueError) as error:
        return None, f"unreadable summary.json ({error})"
    if failed:
        return None, f"failed: {read_summary(folder).get('reason', 'see its train.log')}"
    if not metrics_path.exists():
        return None, "no metrics.csv (not started, or failed before training; see its log)"
    try:
        config = resolve_references(yaml.safe_load(config_path.read_text(encoding="utf-8")))
        metrics = read_complete_rows(metrics_path)
        summary = read_summary(folder)
    except (OSError, ValueError, yaml.YAMLError, pd.errors.ParserError) as error:  # ValueError: bad JSON or status
        return None, f"unreadable ({error})"
    if metrics.empty:
        return None, "metrics.csv has no rows yet"
    problem = _metrics_problem(metrics)
    if problem:
        return None, f"metrics.csv {problem}"
    non_finite = not metrics["loss"].map(math.isfinite).all()
    schedule = config.get("alpha_schedule", "constant")
    n = int(config["N"])
    job = Job(
        folder, config["dataset"]["name"], config["geometry"]["name"], n, int(config["seed"]),
        schedule, inner_stepsize(float(config["alpha"]), schedule, n), metrics,
        summary.get("status") == Status.DIVERGED.value or non_finite, config, summary,
    )  # fmt: skip
    return job, ""


def per_seed(jobs: list[Job]) -> pd.DataFrame:
    """One row per (job, iteration): the curve keys, the seed, the job's folder, whether it diverged, the series."""
    frames = []
    for job in jobs:
        frame = job.metrics[["iteration", "time", *SERIES, *(c for c in KEPT if c in job.metrics)]]
        frames.append(
            frame.assign(**dict(zip(KEYS, _key(job))), seed=job.seed, diverged=job.diverged, job=str(job.path))
        )
    return pd.concat(frames, ignore_index=True)


def _metrics_problem(metrics: pd.DataFrame) -> str:
    """What makes a metrics table unplottable ("" when nothing does)."""
    missing = [c for c in ("iteration", "time", *SERIES) if c not in metrics]
    if missing:
        return f"has no {', '.join(missing)} column (not written by anil train?)"
    for column in ("iteration", "time", *SERIES):
        if not pd.api.types.is_numeric_dtype(metrics[column]):
            bad = (pd.to_numeric(metrics[column], errors="coerce").isna() & metrics[column].notna()).to_numpy()
            return f"has a row that is not numbers (column {column}, line {int(bad.argmax()) + 2})"
    return ""


def curves(jobs: list[Job]) -> pd.DataFrame:
    """Tidy table: one row per (dataset, geometry, schedule, N, iteration), statistics over seeds."""
    return summarise_seeds(per_seed(jobs))


def summarise_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """per_seed's table -> one row per curve and iteration: mean, spread and seed counts."""
    runs = table.drop_duplicates("job")
    per_curve = runs.groupby(KEYS, as_index=False).agg(runs=("diverged", "size"), diverged_runs=("diverged", "sum"))
    grouped = table.groupby([*KEYS, "iteration"], as_index=False).agg(
        time=("time", "mean"),
        loss=("loss", "mean"),
        loss_std=("loss", "std"),
        loss_min=("loss", "min"),
        loss_max=("loss", "max"),
        loss_q25=("loss", lambda x: x.quantile(0.25)),
        loss_q75=("loss", lambda x: x.quantile(0.75)),
        sq_grad_norm_w=("sq_grad_norm_w", "mean"),
        sq_grad_norm_phi=("sq_grad_norm_phi", "mean"),
        seeds=("seed", "nunique"),  # seeds that reached this iteration
    )
    for column in OBJECTIVE_METRICS:  # evaluated every grad_eval_every iterations: empty elsewhere
        if column in table:
            grouped = grouped.merge(
                table.groupby([*KEYS, "iteration"], as_index=False)[column].mean(), on=[*KEYS, "iteration"]
            )
    grouped["loss_std"] = grouped["loss_std"].fillna(0.0)  # one seed: no spread
    return grouped.merge(per_curve, on=KEYS).sort_values([*KEYS, "iteration"], ignore_index=True)


def _key(job: Job) -> tuple:
    return job.dataset, job.geometry, job.alpha_schedule, job.N, job.alpha


def draw(table: pd.DataFrame, out_dir: Path, smooth: int, band: str, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Per (dataset, geometry): the loss figure and the gradient-norm figure, in each of `formats`."""
    written = []
    for (dataset, geometry), panel in table.groupby(["dataset", "geometry"]):
        stem = out_dir / f"{dataset}_{geometry}"
        title = f"ANIL, {geometry} inner loop, {dataset}"
        written += _save(_loss_figure(panel, smooth, band, title), stem, formats)
        written += _save(_grad_norm_figure(panel, smooth, title), stem.with_name(stem.name + "_gradnorms"), formats)
    return written


def _loss_figure(panel: pd.DataFrame, smooth: int, band: str, title: str) -> Figure:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for curve, style in _curves(panel):
        mean = _smoothed(curve["loss"], smooth)
        low, high = _band(curve, band, smooth, mean)
        for axis, x in zip(axes, (curve["iteration"], curve["time"])):
            axis.plot(x, mean, **style)
            if low is not None:
                axis.fill_between(x, low, high, color=style["color"], alpha=0.15, linewidth=0)
    _label(axes, ("meta-iteration", "training time (s, evaluation excluded)"), "training loss", title)
    spread = {"quartiles": "quartiles over seeds", "minmax": "min–max over seeds", "none": "no band"}[band]
    axes[0].legend(title=f"mean, {spread}", fontsize="small")
    return figure


def _grad_norm_figure(panel: pd.DataFrame, smooth: int, title: str) -> Figure:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    full = False
    for curve, style in _curves(panel):
        for axis, column, objective in zip(axes, ("sq_grad_norm_w", "sq_grad_norm_phi"), OBJECTIVE_METRICS):
            axis.plot(curve["iteration"], _smoothed(curve[column], smooth), alpha=0.5, **style)
            if objective in curve and curve[objective].notna().any():  # the theorems' quantity, where measured
                points = curve.dropna(subset=[objective])
                axis.plot(points["iteration"], points[objective], "o", markersize=4, color=style["color"])
                full = True
    _label(axes, ("meta-iteration", "meta-iteration"), None, title)
    axes[0].set_ylabel("‖∂L/∂w‖² (head)")
    axes[1].set_ylabel("‖∂L/∂φ‖² (body)")
    legend = "lines: the iteration's mini-batch; dots: the full objective" if full else "the iteration's mini-batch"
    axes[0].legend(title=f"mean over seeds; {legend}", fontsize="small", title_fontsize="small")
    return figure


def _curves(panel: pd.DataFrame) -> Iterator[tuple[pd.DataFrame, dict[str, Any]]]:
    """Each curve of a panel with its line style: colour by N, dashed for alpha / N."""
    colours = plt.get_cmap("viridis")
    sizes = sorted(panel["N"].unique())
    several_steps = panel[panel["alpha_schedule"] != "inverse_n"]["alpha"].nunique() > 1
    for (schedule, n, alpha), curve in panel.groupby(["alpha_schedule", "N", "alpha"]):
        diverged, runs = int(curve["diverged_runs"].iloc[0]), int(curve["runs"].iloc[0])
        label = f"N={n}" + (" α/N" if schedule == "inverse_n" else f" α={alpha:g}" if several_steps else "")
        label += f" (diverged {diverged}/{runs})" if diverged else ""
        colour = colours(sizes.index(n) / max(len(sizes) - 1, 1) * 0.9)
        yield curve, {"label": label, "color": colour, "linestyle": "--" if schedule == "inverse_n" else "-"}


def _smoothed(series: pd.Series, window: int) -> pd.Series:
    return series.rolling(window, min_periods=1).mean() if window > 1 else series


def _band(curve: pd.DataFrame, band: str, smooth: int, mean: pd.Series) -> tuple[pd.Series | None, pd.Series | None]:
    if band == "none":
        return None, None
    if band == "quartiles":  # quantiles over seeds: on a log axis a band can never leave the data
        return _smoothed(curve["loss_q25"], smooth), _smoothed(curve["loss_q75"], smooth)
    return _smoothed(curve["loss_min"], smooth), _smoothed(curve["loss_max"], smooth)


def _label(axes: Sequence[Axes], xlabels: Sequence[str], ylabel: str | None, title: str) -> None:
    for axis, xlabel in zip(axes, xlabels):
        axis.set_xlabel(xlabel)
        if ylabel:
            axis.set_ylabel(ylabel)
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].figure.suptitle(title)


def _save(figure: Figure, stem: Path, formats: tuple[str, ...]) -> list[Path]:
    paths = [stem.with_suffix(f".{fmt}") for fmt in formats]
    for path in paths:
        figure.savefig(path, dpi=150)
    plt.close(figure)
    return paths
