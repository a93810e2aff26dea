"""Reading run and sweep folders: each job's config, metrics and summary (skipping, with a reason,
what cannot be read), one row per seed and iteration, and the statistics over seeds per curve.
Torch-free, as every reader of run folders."""

from __future__ import annotations

import math
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from anil.atomic import whole_lines  # noqa: E402
from anil.config import inner_stepsize, resolve_references  # noqa: E402
from anil.engine.counters import COUNTERS  # noqa: E402
from anil.run.metrics import OBJECTIVE_METRICS, RENAMED  # noqa: E402
from anil.run.outcome import Status, read_summary  # noqa: E402

KEYS = ["dataset", "geometry", "alpha_schedule", "N", "alpha"]  # one curve per KEYS (alpha: the step used)


SERIES = ("loss", "sq_grad_norm_w", "sq_grad_norm_phi")  # the per-iteration numbers that are plotted


# Kept beside them in per_seed's table when logged; the operation counters are the paper's cost
# (anil/analysis/pricing.py).
# cpu_time and clock say what the time axis can be trusted for (anil/analysis/overlap.py).
KEPT = ("val_loss", "val_accuracy", *OBJECTIVE_METRICS, *COUNTERS, "cpu_time", "clock")


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
    jumped: bool  # its loss spiked (loss_jumped) and then went on: a mean curve would hide it
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
    return pd.read_csv(StringIO("".join(whole_lines(path)))).rename(columns=RENAMED)


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
        summary.get("status") == Status.DIVERGED.value or non_finite, loss_jumped(metrics["loss"]), config, summary,
    )  # fmt: skip
    return job, ""


JUMP = 10.0  # a loss this many times its running minimum (and above where it started) marks the run


def loss_jumped(loss: pd.Series) -> bool:
    """Whether the training loss ever rose above JUMP times its lowest value so far and above its
    starting value: a spike (a step that overshot) that the mean over seeds would smooth away."""
    finite = loss[loss.map(math.isfinite)]
    if finite.empty:
        return False
    return bool(((finite > JUMP * finite.cummin()) & (finite > finite.iloc[0])).any())


def per_seed(jobs: list[Job]) -> pd.DataFrame:
    """One row per (job, iteration): the curve keys, the seed, the job's folder, whether it diverged, the series."""
    frames = []
    for job in jobs:
        frame = job.metrics[["iteration", "time", *SERIES, *(c for c in KEPT if c in job.metrics)]]
        frames.append(
            frame.assign(
                **dict(zip(KEYS, _key(job))),
                seed=job.seed,
                diverged=job.diverged,
                jumped=job.jumped,
                job=str(job.path),
                host=str(job.summary.get("host", "")),
            )  # fmt: skip
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
    per_curve = runs.groupby(KEYS, as_index=False).agg(
        runs=("diverged", "size"), diverged_runs=("diverged", "sum"), jumped_runs=("jumped", "sum")
    )
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
