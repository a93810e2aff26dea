"""`anil smoothness`: the meta-Hessian's block norms and the inner loss's curvature against N
(Propositions 2-3).

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

import torch

from anil.analysis.probe_log import ProbeLog, ProbeRefused
from anil.analysis.smoothness import DivergedTrajectory, Probe, measure
from anil.analysis.smoothness_summary import BLOCKS, draw, summarise
from anil.analysis.spectra import MAX_ITERATIONS, TOLERANCE
from anil.atomic import write_json_atomic
from anil.cli.arguments import OneLineParser
from anil.cli.compose import compose_typed, config_groups
from anil.config import ConfigError, TrainConfig
from anil.data import DatasetError
from anil.geometry import Geometry

log = logging.getLogger("anil.smoothness")


def parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="anil smoothness", description="Lipschitz estimates of the meta-gradient against N")
    datasets = config_groups()["dataset"]
    parser.add_argument("--dataset", default="embedded", choices=datasets, help="a conf/dataset option")
    parser.add_argument("--dataset-root", default=None, help="dataset.root for fc100 / miniimagenet")
    parser.add_argument(
        "--geometry", nargs="+", default=[g.value for g in Geometry], choices=[g.value for g in Geometry]
    )
    parser.add_argument("--N", nargs="+", type=int, default=[1, 2, 5, 10, 20], help="the grid of inner steps")
    parser.add_argument("--points", type=int, default=2, help="trajectory points probed (default 2: start and end)")
    parser.add_argument("--train-iterations", type=int, default=100, help="trajectory length (default 100)")
    parser.add_argument("--trajectory-N", type=int, default=5, help="N of the trajectory's training (default 5)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=TOLERANCE,
        help=f"Lanczos stops once its residual is at most this fraction of its value (default {TOLERANCE:g})",
    )
    parser.add_argument("--batches", type=int, default=3, help="meta-batches probed at every point (default 3)")
    parser.add_argument("--starts", type=int, default=2, help="Lanczos starts per block norm (default 2)")
    parser.add_argument("--max-iterations", type=int, default=MAX_ITERATIONS,
                        help=f"Lanczos steps at most per block (default {MAX_ITERATIONS})")  # fmt: skip
    parser.add_argument(
        "--directions",
        type=int,
        default=0,
        help="also difference quotients along this many random directions (default 0: none)",
    )
    parser.add_argument(
        "--radius", type=float, default=1e-3, help="their displacement norm / block norm (default 1e-3)"
    )
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--lam", type=float, default=0.01, help="convex geometry's lam (default 0.01)")
    parser.add_argument("--hidden", type=int, default=64, help="nonconvex head's hidden width (default 64)")
    parser.add_argument("--B", type=int, default=4, help="tasks in the probed meta-batch (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", default="pytorch", choices=["pytorch", "authors"], help="the model's initialisation")
    parser.add_argument(
        "--curvature-only",
        action="store_true",
        help="only the inner loss's curvature (mu, L, alpha*L) at each point: seconds, not the block norms",
    )
    parser.add_argument(
        "--dtype",
        default="float64",
        choices=["float64", "float32"],
        help="the trajectory's and the probe's precision (default float64; float32 is faster on a CPU, and its "
        "rounding stays far below Lanczos's tolerance: tests/test_spectra.py)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default outputs/smoothness/<stamp>); a stopped probe resumes when run again into it",
    )
    return parser


def _check(cli: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    for name in ("points", "B", "trajectory_N", "max_iterations", "batches", "starts"):
        if getattr(options, name) < 1:
            cli.error(f"--{name.replace('_', '-')} must be >= 1")
    if options.directions < 0 or not 0 < options.tolerance < 1:
        cli.error("--directions must be >= 0 and --tolerance in (0, 1)")
    if options.train_iterations < 0 or min(options.N) < 1:
        cli.error("--train-iterations must be >= 0 and every --N >= 1")
    if not 0 < options.radius < 1:
        cli.error("--radius must be in (0, 1), a fraction of each block's norm")


def trajectory_overrides(geometry: str, options: argparse.Namespace) -> list[str]:
    """The `anil train` overrides of the trajectory (float64 by default, so that the difference
    quotients' small gradient differences are exact)."""
    overrides = [
        f"dataset={options.dataset}", f"geometry={geometry}", f"dtype={options.dtype}", f"N={options.trajectory_N}",
        f"alpha={options.alpha}", f"B={options.B}", "eval_tasks=1", f"seed={options.seed}", f"device={options.device}",
        f"init={options.init}",
    ]  # fmt: skip
    if options.dataset_root:
        overrides.append(f"dataset.root={options.dataset_root}")
    if geometry == Geometry.convex:
        overrides.append(f"lam={options.lam}")
    else:
        overrides.append(f"geometry.hidden={options.hidden}")
    return overrides


def trajectory_config(geometry: str, options: argparse.Namespace) -> TrainConfig:
    return compose_typed(trajectory_overrides(geometry, options))


def settings(options: argparse.Namespace) -> dict[str, object]:
    """The options that define what is measured: a stopped probe resumes only under the same ones."""
    return {k: v for k, v in vars(options).items() if k != "out"}


def main(args: list[str]) -> int:
    cli = parser()
    options = cli.parse_args(args)
    _check(cli, options)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = options.out or Path("outputs/smoothness") / time.strftime("%Y-%m-%d_%H-%M-%S")
    grid = tuple(sorted(set(options.N)))
    probe = Probe(grid, options.points, options.train_iterations, options.tolerance, options.max_iterations,
                  options.batches, options.starts, options.directions, options.radius,
                  blocks=not options.curvature_only)  # fmt: skip
    started = time.perf_counter()
    try:
        with ProbeLog(out, settings(options)) as record:  # the folder's lock is released on the way out
            for geometry in options.geometry:
                measure(trajectory_config(geometry, options), probe, record)
            write_outputs(out, options, record, time.perf_counter() - started)
    except (ConfigError, DatasetError, DivergedTrajectory, ProbeRefused) as error:
        print(f"anil smoothness: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a full disk, a folder that cannot be written: what is measured stays on disk
        print(f"anil smoothness: cannot write to {out}: {error.strerror}; free space or choose another --out "
              "and run again (measured rows are kept)", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def write_outputs(out: Path, options: argparse.Namespace, record: ProbeLog, wall_s: float) -> None:
    """config.json, and (unless --curvature-only) summary.csv and the figure, from every row measured."""
    norms = record.frame("norms")
    config = {**vars(options), "stop": "residual",  # the Lanczos stop this version uses (lanczos_norm)
              "out": str(out), "wall_s": wall_s, "torch": torch.__version__,
              "probe_s": float(norms["seconds"].sum()) if len(norms) else 0.0,  # every invocation's Lanczos time
              "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    write_json_atomic(out / "config.json", config)
    if options.curvature_only:
        log.info("wrote %s", out / "curvature.csv")
        return
    summary = summarise(norms)
    summary.to_csv(out / "summary.csv", index=False)
    for path in draw(summary, out, options.alpha, options.lam):
        log.info("wrote %s", path)
    log.info("wrote %s, %s and %s", out / "norms.csv", out / "curvature.csv", out / "summary.csv")
    if any(not math.isfinite(v) for v in norms[list(BLOCKS)].to_numpy().ravel()):
        log.warning("some norms are not finite: the meta-gradient blew up at some N (see norms.csv)")
