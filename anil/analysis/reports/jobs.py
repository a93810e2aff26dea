"""One row per finished job, as the reproduction documents store it: what it ran (from its
.hydra/config.yaml), how it ended and where it ran (summary.json), and its meta-test accuracy
(eval.json, where `anil eval` ran on it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from anil.analysis.overlap import occupancy
from anil.analysis.plot import draw
from anil.analysis.runs import Job, find_jobs, per_seed, summarise_seeds
from anil.config import TrainConfig

SMOOTH = 10  # rolling window (iterations) for the figures and for every number read off a curve
DEFAULT_INIT = TrainConfig.init  # what runs recorded before the option existed used


def job_row(job: Job) -> dict[str, Any]:
    config, summary = job.config, job.summary
    tested = _evaluation(job.path)
    return {
        "job": job.path.name, "dataset": job.dataset, "geometry": job.geometry, "alpha_schedule": job.alpha_schedule,
        "N": job.N, "alpha": job.alpha, "alpha_base": config["alpha"], "seed": job.seed, "diverged": job.diverged,
        "last_iteration": int(job.metrics["iteration"].max()) if len(job.metrics) else 0, "B": config["B"],
        "final_loss": float(job.metrics["loss"].iloc[-1]) if len(job.metrics) else float("nan"),
        "init": config.get("init", DEFAULT_INIT), "algorithm": config.get("algorithm", "anil"),
        "iterations": config["iterations"], "lam": config["lam"], "optim": config["optim"]["name"],
        "beta_w": config["optim"]["beta_w"], "beta_phi": config["optim"]["beta_phi"],
        "beta_schedule": config["optim"].get("beta_schedule", "constant"), "ways": config["ways"],
        "shots": config["shots"], "query": config["query"], "status": summary.get("status"),
        "wall_time_s": summary.get("wall_time_s"), "train_time_s": summary.get("train_time_s"),
        "device": summary.get("device"), "device_name": summary.get("device_name"), "torch": summary.get("torch"),
        "torch_threads": summary.get("torch_threads"), "host": summary.get("host"),
        "cpu_time_s": summary.get("cpu_time_s"), "test_accuracy": tested.get("accuracy"),
        "test_accuracy_ci95": tested.get("accuracy_ci95"), "test_tasks": tested.get("tasks"),
        "test_checkpoint": tested.get("checkpoint"), "grad_eval_every": config.get("grad_eval_every"),
        "grad_eval_tasks": config.get("grad_eval_tasks"),
    }  # fmt: skip


def collect(sweep: Path, name: str, data_dir: Path, figures: Path | None, running: bool = False) -> list[Path]:
    """Read the sweep in `sweep` into data_dir/<name>-seeds.csv and <name>-jobs.csv; draw its
    figures into `figures` (None: no figures, for a variant that would overwrite the main ones).
    `running`: the sweep is still going, and may span sessions: jobs not started yet are left out
    instead of refused, and jobs already collected but absent from `sweep` (run in an earlier
    session, on another checkout) are kept."""
    jobs, skipped = find_jobs([sweep])
    if (skipped and not running) or not jobs:
        raise ValueError(f"{sweep}: {len(jobs)} readable jobs; skipped {'; '.join(skipped) or 'none'}")
    data_dir.mkdir(parents=True, exist_ok=True)
    seeds = per_seed(jobs).assign(job=lambda t: t["job"].map(lambda p: Path(p).name))
    described = pd.DataFrame([job_row(job) for job in jobs])
    paths = [data_dir / f"{name}-seeds.csv", data_dir / f"{name}-jobs.csv"]
    if running and all(path.exists() for path in paths):
        earlier = [pd.read_csv(path) for path in paths]
        seeds, described = (
            pd.concat([old[~old["job"].isin(new["job"])], new], ignore_index=True)
            for old, new in zip(earlier, (seeds, described))
        )
    # Unix seconds: 7 digits would blur them to minutes, and the overlaps read from them.
    clocks = {"clock": seeds["clock"].map(lambda t: f"{t:.3f}")} if "clock" in seeds else {}
    seeds.assign(**clocks).to_csv(paths[0], index=False, float_format="%.7g")
    described.to_csv(paths[1], index=False, float_format="%.7g")
    if figures is None:
        return paths
    figures.mkdir(parents=True, exist_ok=True)
    return paths + draw(summarise_seeds(seeds), figures, SMOOTH, "quartiles", ("png",), occupancy(seeds))


def tally(jobs: pd.DataFrame, key: str, hits: pd.Series) -> dict[Any, tuple[int, int]]:
    """Each value of the `key` column -> (its rows where the boolean `hits` holds, its rows)."""
    return {value: (int(hits[part.index].sum()), len(part)) for value, part in jobs.groupby(key)}


def _evaluation(folder: Path) -> dict[str, Any]:
    """The job's eval.json (`anil eval`), or {} where it was not evaluated."""
    path = folder / "eval.json"
    if not path.exists():
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable ({error}); run anil eval {folder} again") from None
    return found if isinstance(found, dict) else {}


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
