"""Result tables from sweeps: one row per configuration, a metric's mean over seeds with its 95%
interval and the seed count, as Markdown, CSV and LaTeX (booktabs).

The metric is read from each job's metrics.csv (its final value, its best validation value, or its
value at an iteration), or from the job's eval.json (`test_accuracy`, `test_loss`) when `anil eval`
has been run on it. Configurations are told apart by config keys (`--by geometry,N`), read from the
job's own .hydra/config.yaml.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from anil.analysis.runs import Job
from anil.analysis.statistics import interval
from anil.config import flatten

GROUP_ALIASES = {"dataset": "dataset.name", "geometry": "geometry.name", "optim": "optim.name"}
EVAL_METRICS = {"test_accuracy": "accuracy", "test_loss": "loss"}  # metric -> key of eval.json


def value(job: Job, metric: str, at: str) -> float:
    """One job's `metric`: `final` (its last logged value), `best` (the highest accuracy or lowest
    loss logged), or `at` an iteration number (the last value logged at or before it)."""
    if metric in EVAL_METRICS:
        path = job.path / "eval.json"
        return float(json.loads(path.read_text(encoding="utf-8"))[EVAL_METRICS[metric]]) if path.exists() else math.nan
    if metric not in job.metrics:
        raise KeyError(f"{job.path}: metrics.csv has no column {metric}")
    logged = job.metrics[["iteration", metric]].dropna()
    if at == "best":
        values = logged[metric]
        return float(values.max() if "accuracy" in metric else values.min()) if len(values) else math.nan
    if at != "final":
        last = int(job.metrics["iteration"].max())
        if int(at) > last:
            raise ValueError(f"--at {at}: {job.path} logged up to iteration {last}; choose an iteration it reached")
        logged = logged[logged["iteration"] <= int(at)]
    return float(logged[metric].iloc[-1]) if len(logged) else math.nan


def config_value(job: Job, key: str) -> Any:
    flat = flatten(job.config)
    return flat.get(GROUP_ALIASES.get(key, key))


def per_job(jobs: list[Job], metric: str, at: str, by: list[str]) -> pd.DataFrame:
    """One row per job: its `by` keys, seed and metric value. ValueError (one line) for a `by` key
    no job's config has, or a metric no job has a value of."""
    for key in by:
        if all(config_value(job, key) is None for job in jobs):
            known = sorted({*GROUP_ALIASES, *flatten(jobs[0].config)})
            raise ValueError(f"--by {key}: no job's config has that key; keys look like {', '.join(known[:8])}, ...")
    rows = [{**{k: config_value(job, k) for k in by}, "seed": job.seed, metric: value(job, metric, at)} for job in jobs]
    table = pd.DataFrame(rows)
    if not table[metric].map(lambda v: math.isfinite(v)).any():
        fix = "run anil eval on the jobs first" if metric in EVAL_METRICS else "choose a metric the runs logged"
        raise ValueError(f"--metric {metric}: no job has a value of it; {fix}")
    return table


def summarise(table: pd.DataFrame, metric: str, by: list[str]) -> pd.DataFrame:
    """Mean over seeds with a Student t 95% interval and the number of seeds, per configuration."""
    rows = []
    for key, part in table.groupby(by, sort=True):
        values = part[metric].dropna().tolist()
        spread = interval(values)
        keys = key if isinstance(key, tuple) else (key,)
        bounded = math.isfinite(spread.low) and math.isfinite(spread.high)
        rows.append({**dict(zip(by, keys)), "mean": spread.estimate, "low": spread.low if bounded else math.nan,
                     "high": spread.high if bounded else math.nan, "seeds": spread.n,
                     "note": "" if bounded else "interval needs 3 seeds"})  # fmt: skip
    return pd.DataFrame(rows)


def _cell(row: pd.Series, scale: float, digits: int) -> str:
    if not math.isfinite(row["mean"]):
        return "—"
    mean = f"{scale * row['mean']:.{digits}f}"
    if not (math.isfinite(row["low"]) and math.isfinite(row["high"])):
        return f"{mean} (interval needs 3 seeds)"
    return f"{mean} [{scale * row['low']:.{digits}f}, {scale * row['high']:.{digits}f}]"


def markdown(summary: pd.DataFrame, metric: str, by: list[str], scale: float, digits: int) -> str:
    header = [*by, f"{metric} mean [95% interval]", "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(by) + ["---:", "---:"]) + "|"]
    for _, row in summary.iterrows():
        lines.append(
            "| " + " | ".join([*(str(row[k]) for k in by), _cell(row, scale, digits), str(row["seeds"])]) + " |"
        )
    return "\n".join(lines) + "\n"


def latex(summary: pd.DataFrame, metric: str, by: list[str], scale: float, digits: int) -> str:
    """A booktabs tabular: `\\usepackage{booktabs}` in the preamble."""

    def escape(text: object) -> str:
        return str(text).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

    lines = [rf"\begin{{tabular}}{{{'l' * len(by)}rr}}", r"\toprule"]
    lines.append(" & ".join([*(escape(k) for k in by), escape(metric) + r" (95\% interval)", "seeds"]) + r" \\")
    lines.append(r"\midrule")
    for _, row in summary.iterrows():
        cell = _cell(row, scale, digits).replace(" (interval needs 3 seeds)", "")
        lines.append(" & ".join([*(escape(row[k]) for k in by), escape(cell.strip()), str(row["seeds"])]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write(summary: pd.DataFrame, metric: str, by: list[str], out: Path, scale: float, digits: int) -> list[Path]:
    """table.md, table.csv and table.tex in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "table.md", out / "table.csv", out / "table.tex"]
    paths[0].write_text(markdown(summary, metric, by, scale, digits), encoding="utf-8")
    summary.to_csv(paths[1], index=False)
    paths[2].write_text(latex(summary, metric, by, scale, digits), encoding="utf-8")
    return paths
