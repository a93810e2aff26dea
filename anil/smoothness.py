"""`anil smoothness`: measure how smooth the meta-objective is, against N (Propositions 2 and 3).

For each geometry, a short training run (N = --trajectory-N) gives points of a trajectory. At each
point, for each N of the grid, the exact meta-gradient g = (dL/dw, dL/dphi) is taken on one fixed
meta-batch, then again after a random displacement of w alone and of phi alone (norm: --radius
times that block's norm). Four Lipschitz estimates per displacement pair:

    L_ww   = ||dL/dw(w + d, phi) - dL/dw(w, phi)|| / ||d||     (Prop. 2: ~ (1 - alpha mu)^N; Prop. 3: ~ N)
    L_wphi = ||dL/dw(w, phi + e) - dL/dw(w, phi)|| / ||e||     (Prop. 2: ~ N (1 - alpha mu)^N; Prop. 3: ~ N)
    L_phiw = ||dL/dphi(w + d, phi) - dL/dphi(w, phi)|| / ||d|| (Prop. 2: ~ (1 - alpha mu)^(N/2); Prop. 3: ~ N)
    L_phiphi = ||dL/dphi(w, phi + e) - dL/dphi(w, phi)|| / ||e|| (Prop. 2: bounded; Prop. 3: ~ N)

The spread comes from the directions and the points. Writes samples.csv, summary.csv (median and
quartiles per geometry, N, block), smoothness.png/.pdf and config.json to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt
import pandas as pd
import torch
import yaml

from anil.config import CONF_DIR, ConfigError, TrainConfig, from_dict
from anil.data.split import DatasetError
from anil.meta import InnerLoop, meta_forward
from anil.metrics import write_json_atomic
from anil.trainer import Setup, build, meta_step, resolve_device

log = logging.getLogger(__name__)

BLOCKS = ("L_ww", "L_wphi", "L_phiw", "L_phiphi")


@dataclasses.dataclass(frozen=True)
class Probe:
    """What to measure: the grid, the sampling and where the trajectory comes from."""

    grid: tuple[int, ...]  # the N values
    points: int  # trajectory points (parameters after 0, T/(points-1), ..., T meta-iterations)
    train_iterations: int  # T
    directions: int  # random displacements per point, N and block
    radius: float  # displacement norm relative to the displaced block's norm


def trajectory_config(geometry: str, options: argparse.Namespace) -> TrainConfig:
    """The training config the trajectory runs with (float64 so that small gradient differences are exact)."""
    dataset = yaml.safe_load((CONF_DIR / "dataset" / f"{options.dataset}.yaml").read_text(encoding="utf-8"))
    if options.dataset_root:
        dataset["root"] = options.dataset_root
    values = {
        **TrainConfig().to_dict(), "dataset": dataset, "seed": options.seed, "device": options.device,
        "dtype": "float64", "N": options.trajectory_N, "alpha": options.alpha, "lam": options.lam if geometry == "convex" else 0.0,
        "B": options.B, "eval_tasks": 1, "geometry": {"name": geometry, "hidden": options.hidden if geometry == "nonconvex" else 0},
    }
    return from_dict(values)


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def meta_gradient(setup: Setup, batch, inner: InnerLoop) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL/dw, dL/dphi) flattened, exact second order."""
    model = setup.model
    model.zero_grad(set_to_none=True)
    meta_forward(model, batch, inner, setup.dtype, setup.body).loss.backward()
    return flat(p.grad for p in model.head), flat(p.grad for p in model.body.parameters())


@torch.no_grad()
def _displace(params: list[torch.Tensor], radius: float, generator: torch.Generator) -> tuple[list, list]:
    """Add a random direction of norm radius * ||params||. Returns the displacement actually made
    (after rounding) and the original values, to restore them bit for bit."""
    originals = [p.detach().clone() for p in params]
    steps = [torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p) for p in params]
    scale = radius * flat(params).norm() / flat(steps).norm()
    for p, s in zip(params, steps):
        p.add_(s.mul_(scale))
    return [p.detach() - o for p, o in zip(params, originals)], originals


def probe_point(setup: Setup, batch, geometry: str, probe: Probe, alpha: float, lam: float, seed: int) -> list[dict]:
    """Every (N, direction) sample at the model's current parameters."""
    rows = []
    blocks = {"w": list(setup.model.head), "phi": list(setup.model.body.parameters())}
    for n in probe.grid:
        inner = InnerLoop(n, alpha, lam, first_order=False)
        g_w, g_phi = meta_gradient(setup, batch, inner)
        generator = torch.Generator().manual_seed(seed * 7919 + n)  # the same directions for every point
        for direction in range(probe.directions):
            row = {"geometry": geometry, "N": n, "direction": direction}
            for moved, params in blocks.items():
                steps, originals = _displace(params, probe.radius, generator)
                d_w, d_phi = meta_gradient(setup, batch, inner)
                with torch.no_grad():
                    for p, o in zip(params, originals):
                        p.copy_(o)
                size = flat(steps).norm().item()
                row[f"L_w{moved}"] = (d_w - g_w).norm().item() / size
                row[f"L_phi{moved}"] = (d_phi - g_phi).norm().item() / size
            rows.append(row)
    return rows


def measure(geometry: str, options: argparse.Namespace, probe: Probe) -> list[dict]:
    """Train the trajectory and probe it at `probe.points` evenly spaced iterations."""
    config = trajectory_config(geometry, options)
    setup = build(config, resolve_device(config.device))
    batch = setup.sampler.sample(config.B)  # one fixed meta-batch for every point, N and direction
    marks = sorted({round(i * probe.train_iterations / max(probe.points - 1, 1)) for i in range(probe.points)})
    rows, done = [], 0
    for mark in marks:
        for _ in range(mark - done):
            meta_step(setup, config.B)
        done = mark
        started = time.perf_counter()
        for row in probe_point(setup, batch, geometry, probe, config.inner_stepsize, config.lam, options.seed):
            rows.append({**row, "iteration": mark})
        log.info("%s: point at iteration %d probed in %.1f s", geometry, mark, time.perf_counter() - started)
    return rows


def summarise(samples: pd.DataFrame) -> pd.DataFrame:
    """Median and quartiles of each block per (geometry, N) over points and directions."""
    long = samples.melt(id_vars=["geometry", "N", "iteration", "direction"], value_vars=list(BLOCKS), var_name="block")
    grouped = long.groupby(["geometry", "block", "N"])["value"]
    return pd.DataFrame({
        "median": grouped.median(), "q25": grouped.quantile(0.25), "q75": grouped.quantile(0.75),
        "min": grouped.min(), "max": grouped.max(), "samples": grouped.size(),
    }).reset_index()


def predicted(geometry: str, block: str, grid: list[int], alpha: float, lam: float) -> list[float] | None:
    """The N-dependence Propositions 2 (convex, mu = lam: the guaranteed strong convexity) and 3 predict,
    up to a constant; None where the bound does not depend on N."""
    decay = 1 - alpha * lam
    shapes = {
        "convex": {"L_ww": lambda n: decay**n, "L_wphi": lambda n: n * decay**n, "L_phiw": lambda n: decay ** (n / 2)},
        "nonconvex": {b: (lambda n: float(n)) for b in BLOCKS},
    }
    shape = shapes[geometry].get(block)
    return None if shape is None else [shape(n) for n in grid]


def draw(summary: pd.DataFrame, out: Path, alpha: float, lam: float) -> list[Path]:
    geometries = list(summary["geometry"].unique())
    figure, axes = plt.subplots(1, len(geometries), figsize=(5.5 * len(geometries), 4.2), constrained_layout=True, squeeze=False)
    colours = dict(zip(BLOCKS, plt.get_cmap("tab10").colors))
    for axis, geometry in zip(axes[0], geometries):
        for block, part in summary[summary["geometry"] == geometry].groupby("block"):
            part = part.sort_values("N")
            grid = part["N"].tolist()
            axis.plot(grid, part["median"], "o-", color=colours[block], label=f"{block} (median)")
            axis.fill_between(grid, part["q25"], part["q75"], color=colours[block], alpha=0.2, linewidth=0)
            shape = predicted(geometry, block, grid, alpha, lam if geometry == "convex" else 0.0)
            if shape is not None:  # anchored at the smallest N: only the shape is predicted
                scale = part["median"].iloc[0] / shape[0]
                axis.plot(grid, [scale * s for s in shape], ":", color=colours[block])
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("inner steps N")
        axis.set_ylabel("Lipschitz estimate of the meta-gradient")
        axis.set_title(f"{geometry} inner loop (dotted: predicted shape)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    paths = [out / "smoothness.png", out / "smoothness.pdf"]
    for path in paths:
        figure.savefig(path, dpi=150)
    plt.close(figure)
    return paths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anil smoothness", description=__doc__.splitlines()[0])
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


def _check(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    for name in ("points", "directions", "B", "trajectory_N"):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if options.train_iterations < 0 or min(options.N) < 1:
        parser.error("--train-iterations must be >= 0 and every --N >= 1")
    if not 0 < options.radius < 1:
        parser.error("--radius must be in (0, 1), a fraction of each block's norm")


def main(args: list[str]) -> int:
    parser = _parser()
    options = parser.parse_args(args)
    _check(parser, options)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = options.out or Path("outputs/smoothness") / time.strftime("%Y-%m-%d_%H-%M-%S")
    probe = Probe(tuple(sorted(set(options.N))), options.points, options.train_iterations, options.directions, options.radius)
    try:
        samples = pd.DataFrame([row for geometry in options.geometry for row in measure(geometry, options, probe)])
    except (ConfigError, DatasetError) as error:
        print(f"anil smoothness: {error}", file=sys.stderr)
        return 1
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
