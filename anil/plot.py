"""`anil plot SWEEP_DIR [...]`: the paper's convergence panels from a sweep's runs.

Each job is read back from its own files: `metrics.csv` for the curve and `.hydra/config.yaml`
for what it ran (never the folder name). Per (dataset, geometry): training loss against
meta-iterations (left) and against training time (right), one curve per N, the mean over seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    path: Path
    dataset: str
    geometry: str
    N: int
    seed: int
    alpha_schedule: str
    metrics: pd.DataFrame
    diverged: bool  # summary.json says so (the run stopped on a non-finite or blown-up loss)


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


def _read_job(folder: Path, config_path: Path) -> tuple[Job | None, str]:
    metrics_path = folder / "metrics.csv"
    if not metrics_path.exists():
        return None, "no metrics.csv (not started or failed before training)"
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        metrics = pd.read_csv(metrics_path)
    except (OSError, yaml.YAMLError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        return None, f"unreadable ({error})"
    if metrics.empty:
        return None, "metrics.csv has no rows yet"
    summary_path = folder / "summary.json"
    status = json.loads(summary_path.read_text(encoding="utf-8")).get("status") if summary_path.exists() else None
    job = Job(
        folder, config["dataset"]["name"], config["geometry"]["name"], int(config["N"]), int(config["seed"]),
        config.get("alpha_schedule", "constant"), metrics, status == "diverged",
    )
    return job, ""


def curves(jobs: list[Job]) -> pd.DataFrame:
    """Tidy table: one row per (dataset, geometry, schedule, N, iteration), mean over seeds."""
    frames = []
    for job in jobs:
        frame = job.metrics[["iteration", "time", "loss"]].copy()
        frame["dataset"], frame["geometry"], frame["N"] = job.dataset, job.geometry, job.N
        frame["alpha_schedule"], frame["seed"], frame["diverged"] = job.alpha_schedule, job.seed, job.diverged
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    keys = ["dataset", "geometry", "alpha_schedule", "N", "iteration"]
    grouped = table.groupby(keys, as_index=False).agg(
        loss=("loss", "mean"), time=("time", "mean"), seeds=("seed", "nunique"), diverged=("diverged", "any")
    )
    return grouped.sort_values(keys, ignore_index=True)


def draw(table: pd.DataFrame, out_dir: Path, smooth: int) -> list[Path]:
    """One PNG per (dataset, geometry): loss vs iteration (left), loss vs time (right)."""
    written = []
    for (dataset, geometry), panel in table.groupby(["dataset", "geometry"]):
        figure, (by_iteration, by_time) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        for (schedule, n), curve in panel.groupby(["alpha_schedule", "N"]):
            loss = curve["loss"].rolling(smooth, min_periods=1).mean() if smooth > 1 else curve["loss"]
            label = f"N={n}" + (" (α/N)" if schedule == "inverse_n" else "") + (" (diverged)" if curve["diverged"].any() else "")
            by_iteration.plot(curve["iteration"], loss, label=label)
            by_time.plot(curve["time"], loss, label=label)
        for axis, xlabel in ((by_iteration, "meta-iteration"), (by_time, "training time (s)")):
            axis.set_xlabel(xlabel)
            axis.set_ylabel("training loss")
            axis.set_yscale("log")
            axis.grid(True, which="both", alpha=0.3)
        by_iteration.legend(title=f"{geometry} inner loop")
        figure.suptitle(f"ANIL, {geometry} inner loop, {dataset}")
        path = out_dir / f"{dataset}_{geometry}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="anil plot", description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (outputs/sweeps/<stamp>) or run folders")
    parser.add_argument("--out", type=Path, default=None, help="where figures go (default: the first sweep folder)")
    parser.add_argument("--smooth", type=int, default=1, help="rolling-mean window over iterations (default 1: none)")
    options = parser.parse_args(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    missing = [str(p) for p in options.sweeps if not p.is_dir()]
    if missing:
        parser.error(f"not a folder: {', '.join(missing)}")
    jobs, skipped = find_jobs(options.sweeps)
    for reason in skipped:
        log.warning("skipped %s", reason)
    if not jobs:
        log.error("anil plot: no job with metrics under %s", ", ".join(map(str, options.sweeps)))
        return 1
    out_dir = options.out or options.sweeps[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    table = curves(jobs)
    table.to_csv(out_dir / "curves.csv", index=False)
    for path in draw(table, out_dir, options.smooth):
        log.info("wrote %s", path)
    log.info("wrote %s (%d jobs)", out_dir / "curves.csv", len(jobs))
    return 0
