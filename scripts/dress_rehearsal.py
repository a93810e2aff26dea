"""The paper's FC100 and miniImageNet experiments at full size, on synthetic data in the real
formats: does everything hold at 60,000 images, and how long would the figure sweeps take here?

    .venv/bin/python -m scripts.dress_rehearsal                       # full size: ~4 GB of disk, about 30 min
    .venv/bin/python -m scripts.dress_rehearsal --scale 0.02 --out /tmp/rehearsal.json   # a quick look

Writes, in a temporary folder that is removed afterwards, the CIFAR-100 python archive (50,000 +
10,000 images of 3x32x32) and miniImageNet (100 classes x 600 images of 84x84) as the learn2learn
pickles and as CSV + JPEG (noise JPEGs: slower to decode than photographs, an upper bound). It
times the first decode of each into the cache and the cache's size, measures α·L at initialisation
(the inner loss's largest curvature at the paper's α = 0.1, both geometries), then runs every N of each paper
figure sweep (fig1_fc100, fig2_fc100, fig1_miniimagenet, fig2_miniimagenet; seed 0, one stepsize
design) for a few iterations through the normal command line, one job at a time, and records each
job's seconds per iteration (the median after the first), its peak memory (the process's maximum
resident set) and its training loss, and projects each sweep's training time on this machine
(seconds per iteration x iterations x the sweep's jobs at that N; validation not counted), with
the peak memory each run recorded in its summary.json. Pixels
are random: features, and so α·L and the first losses, may be larger than on photographs.
Run from the repository root, as a module: the format writers live with the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from anil.atomic import write_json_atomic
from anil.cli.compose import sweep_grid, sweep_jobs
from scripts.time_decode import timed_loads
from tests.helpers import formats as fixtures

EXPERIMENTS = {"fig1_fc100": "fc100", "fig2_fc100": "fc100", "fig1_miniimagenet": "miniimagenet",
               "fig2_miniimagenet": "miniimagenet"}  # fmt: skip


def write_datasets(base: Path, per_class: int) -> dict[tuple[str, str], Path]:
    """Every format at `per_class` images per class (600: the real sizes)."""
    wnids = fixtures.mini_wnids(64, 16, 20)
    roots = {key: base / f"{key[0]}-{key[1]}" for key in (("fc100", "cifar"), ("miniimagenet", "pickles"),
                                                          ("miniimagenet", "csv"))}  # fmt: skip
    fixtures.write_cifar(roots[("fc100", "cifar")], per_class * 5 // 6, per_class - per_class * 5 // 6)
    fixtures.write_mini_pickles(roots[("miniimagenet", "pickles")], per_class, splits=wnids)
    fixtures.write_mini_csv(roots[("miniimagenet", "csv")], per_class, wnids, noise=True)
    return roots


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def decode_rows(roots: dict[tuple[str, str], Path], cache: Path) -> list[dict[str, Any]]:
    from anil.config import DatasetConfig

    rows = []
    for (name, fmt), root in roots.items():
        before = folder_bytes(cache) if cache.exists() else 0
        config = DatasetConfig(name=name, root=str(root), format=fmt, image_size=32 if name == "fc100" else 84,
                               cache_dir=str(cache))  # fmt: skip
        decode, start, images = timed_loads(config)
        sizes = dict(source_bytes=folder_bytes(root), cache_bytes=folder_bytes(cache) - before)
        rows.append(dict(dataset=name, format=fmt, images=images, first_decode_s=decode, later_start_s=start, **sizes))
        print(f"{name} {fmt}: {images} images, first decode {decode:.1f} s, later start {start:.2f} s", flush=True)
    return rows


def curvature(dataset: str, root: Path, cache: Path, work: Path) -> list[dict[str, Any]]:
    """μ and L of the inner loss at the authors' initialisation on this data (anil smoothness
    --curvature-only, 4 tasks, at most 40 Lanczos steps: the largest eigenvalue converges first, the
    smallest may be overestimated), per geometry: the median and α·L at the paper's α = 0.1."""
    out = work / f"curvature-{dataset}"
    command = [sys.executable, "-m", "anil", "smoothness", "--dataset", dataset, "--dataset-root", str(root),
               "--curvature-only", "--init", "authors", "--points", "1", "--train-iterations", "0", "--B", "4",
               "--max-iterations", "40", "--N", "1", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "ANIL_CACHE": str(cache)})
    if done.returncode != 0:
        return [{"dataset": dataset, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"}]
    table = pd.read_csv(out / "curvature.csv")
    return [
        {"dataset": dataset, "geometry": g, "mu": float(part["mu"].median()), "L": float(part["L"].median()),
         "alpha_L": float(part["alpha_L"].median()), "tasks": len(part)}
        for g, part in table.groupby("geometry")
    ]  # fmt: skip


def run_job(overrides: list[str], folder: Path) -> dict[str, Any]:
    """One `anil train` in its own process: its exit code, peak resident memory and metrics."""
    command = [sys.executable, "-m", "anil", "train", *overrides, f"hydra.run.dir={folder}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    status = process.wait()
    stderr = process.stderr.read() if process.stderr else ""
    row: dict[str, Any] = {"exit": status}
    summary = folder / "summary.json"
    if summary.exists():  # the run's own high-water mark (ru_maxrss would count this parent's memory at fork)
        row["peak_bytes"] = json.loads(summary.read_text()).get("peak_memory_bytes")
    if (folder / "metrics.csv").exists():
        metrics = pd.read_csv(folder / "metrics.csv")
        steps = metrics["time"].diff().dropna().tolist() or metrics["time"].tolist()
        row.update(seconds_per_iteration=statistics.median(steps), loss=float(metrics["loss"].iloc[-1]),
                   iterations_run=int(metrics["iteration"].max()))  # fmt: skip
    if row["exit"] != 0:
        row["error"] = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    return row


def rehearse(
    experiment: str, root: Path, cache: Path, work: Path, iterations: int, max_jobs: int | None
) -> dict[str, Any]:
    """Each N of the experiment's sweep (the first `max_jobs` of them), as a user would run it: a
    job refused for memory is run again with the task_chunk its message suggests."""
    data = (f"dataset.root={root}", f"dataset.cache_dir={cache}")
    grid = sweep_grid(experiment, extra=data)
    jobs = sweep_jobs(experiment)
    rows = []
    for config in grid[:max_jobs]:
        short = [f"N={config.N}", "seed=0", f"iterations={iterations}", "eval_every=0", f"eval_tasks={config.B}"]
        overrides = [f"experiment={experiment}", *short, *data]
        row = {"N": config.N, **run_job(overrides, work / f"{experiment}-N{config.N}")}
        advice = re.search(r"task_chunk=(\d+)", row.get("error", ""))
        if advice:  # the paper's B in pieces that fit, as the refusal says
            chunked = run_job([*overrides, f"task_chunk={advice.group(1)}"], work / f"{experiment}-N{config.N}-chunked")
            row = {"N": config.N, "refused": row["error"], "task_chunk": int(advice.group(1)), **chunked}
        rows.append(row)
        print(f"{experiment} N={config.N}: {row}", flush=True)
    measured = [r for r in rows if "seconds_per_iteration" in r and r["exit"] == 0]
    per_n = jobs / len(grid)
    projected = sum(r["seconds_per_iteration"] for r in measured) * grid[0].iterations * per_n
    return {"experiment": experiment, "B": grid[0].B, "iterations": grid[0].iterations, "jobs": jobs, "rows": rows,
            "projected_training_s": projected if len(measured) == len(grid) else None}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real images per class")
    parser.add_argument("--iterations", type=int, default=3, help="meta-iterations per job (default 3)")
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    parser.add_argument("--max-jobs", type=int, help="run only the first N values of each sweep (no projection)")
    parser.add_argument("--out", type=Path, default=Path("docs/data/dress-rehearsal.json"))
    options = parser.parse_args()
    per_class = max(24, round(600 * options.scale))  # at least shots + query in every split's classes
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anil-rehearsal-") as tmp:
        base = Path(tmp)
        roots = write_datasets(base, per_class)
        print(f"wrote the datasets ({per_class} images per class) in {time.perf_counter() - started:.0f} s", flush=True)
        cache = base / "cache"
        data: dict[str, Any] = {"meta": {"per_class": per_class, "scale": options.scale, "cpus": os.cpu_count(),
                                         "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"),
                                         "command": " ".join(["python -m scripts.dress_rehearsal", *sys.argv[1:]])},
                                "decode": decode_rows(roots, cache), "experiments": []}  # fmt: skip
        sources = {"fc100": roots[("fc100", "cifar")], "miniimagenet": roots[("miniimagenet", "pickles")]}
        data["curvature"] = [row for name, root in sources.items() for row in curvature(name, root, cache, base)]
        write_json_atomic(options.out, data)
        for experiment in options.experiments:
            data["experiments"].append(
                rehearse(
                    experiment,
                    sources[EXPERIMENTS[experiment]],
                    cache,
                    base / "runs",
                    options.iterations,
                    options.max_jobs,
                )  # fmt: skip
            )
            write_json_atomic(options.out, data)  # what is measured so far, should the rest be cut short
    data["meta"]["wall_s"] = time.perf_counter() - started
    write_json_atomic(options.out, data)
    print(json.dumps(data["meta"]), f"wrote {options.out}")


if __name__ == "__main__":
    main()
