"""`anil smoothness`: measure the meta-gradient's Lipschitz constants against N (Propositions 2-3).

The trajectory's config is composed by Hydra from conf/ exactly as `anil train` composes it, with
the overrides this command derives from its options (float64, the trajectory's N, alpha, B, ...).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import pandas as pd

from anil.analysis.smoothness import BLOCKS, DivergedTrajectory, Probe, draw, measure, summarise
from anil.atomic import write_json_atomic
from anil.cli.compose import compose_typed
from anil.config import ConfigError, TrainConfig
from anil.data import DatasetError

log = logging.getLogger("anil.smoothness")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anil smoothness", description="Lipschitz estimates of the meta-gradient against N"
    )
    parser.add_argument("--dataset", default="embedded", choices=["embedded", "procedural", "fc100", "miniimagenet"])
    parser.add_argument("--dataset-root", default=None, help="dataset.root for fc100 / miniimagenet")
    parser.add_argument("--geometry", nargs="+", default=["convex", "nonconvex"], choices=["convex", "nonconvex"])
    parser.add_argument("--N", nargs="+", type=int, default=[1, 2, 5, 10, 20], help="the grid of inner steps")
    parser.add_argument("--points", type=int, default=3, help="trajectory points probed (default 3)")
    parser.add_argument("--train-iterations", type=int, default=100, help="trajectory length (default 100)")
    parser.add_argument("--trajectory-N", type=int, default=5, help="N of the trajectory's training (default 5)")
    parser.add_argument("--directions", type=int, default=6, help="random displacements per point and N (default 6)")
    parser.add_argument("--radius", type=float, default=1e-3, help="displacement norm / block norm (default 1e-3)")
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--lam", type=float, default=0.01, help="convex geometry's lam (default 0.01)")
    parser.add_argument("--hidden", type=int, default=64, help="nonconvex head's hidden width (default 64)")
    parser.add_argument("--B", type=int, default=8, help="tasks in the probed meta-batch (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default outputs/smoothness/<stamp>)")
    return parser


def _check(cli: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    for name in ("points", "directions", "B", "trajectory_N"):
        if getattr(options, name) < 1:
            cli.error(f"--{name.replace('_', '-')} must be >= 1")
    if options.train_iterations < 0 or min(options.N) < 1:
        cli.error("--train-iterations must be >= 0 and every --N >= 1")
    if not 0 < options.radius < 1:
        cli.error("--radius must be in (0, 1), a fraction of each block's norm")


def trajectory_overrides(geometry: str, options: argparse.Namespace) -> list[str]:
    """The `anil train` overrides of the trajectory (float64 so that small gradient differences are exact)."""
    overrides = [
        f"dataset={options.dataset}", f"geometry={geometry}", "dtype=float64", f"N={options.trajectory_N}",
        f"alpha={options.alpha}", f"B={options.B}", "eval_tasks=1", f"seed={options.seed}", f"device={options.device}",
    ]  # fmt: skip
    if options.dataset_root:
        overrides.append(f"dataset.root={options.dataset_root}")
    if geometry == "convex":
        overrides.append(f"lam={options.lam}")
    else:
        overrides.append(f"geometry.hidden={options.hidden}")
    return overrides


def trajectory_config(geometry: str, options: argparse.Namespace) -> TrainConfig:
    return compose_typed(trajectory_overrides(geometry, options))


def main(args: list[str]) -> int:
    cli = parser()
    options = cli.parse_args(args)
    _check(cli, options)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = options.out or Path("outputs/smoothness") / time.strftime("%Y-%m-%d_%H-%M-%S")
    probe = Probe(
        tuple(sorted(set(options.N))), options.points, options.train_iterations, options.directions, options.radius
    )
    try:
        rows = [row for geometry in options.geometry for row in measure(trajectory_config(geometry, options), probe)]
    except (ConfigError, DatasetError, DivergedTrajectory) as error:
        print(f"anil smoothness: {error}", file=sys.stderr)
        return 1
    samples = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    samples.to_csv(out / "samples.csv", index=False)
    summary = summarise(samples)
    summary.to_csv(out / "summary.csv", index=False)
    write_json_atomic(out / "config.json", {**vars(options), "out": str(out), "dataset_root": options.dataset_root})
    for path in draw(summary, out, options.alpha, options.lam):
        log.info("wrote %s", path)
    log.info("wrote %s and %s", out / "samples.csv", out / "summary.csv")
    if any(not math.isfinite(v) for v in samples[list(BLOCKS)].to_numpy().ravel()):
        log.warning("some estimates are not finite: the meta-gradient blew up at some N (see samples.csv)")
    return 0
