"""`anil smoothness`: the meta-objective's smoothness against N (Propositions 2 and 3), measured.

For each geometry, a short training run (N = --trajectory-N) gives points of a trajectory. At each
point and for each N of the grid, on one fixed meta-batch:
- the operator norms of the meta-Hessian's blocks, the Lipschitz constants the propositions bound
  (anil/analysis/spectra.py: Lanczos on Hessian-vector products, tolerance and step
  counts recorded):
      L_ww = ‖∂²L/∂w²‖        Prop. 2: ~ (1 - alpha mu)^N          Prop. 3: ~ N
      L_wphi = L_phiw = ‖∂²L/∂φ∂w‖ (one block, measured from both sides as a check)
                              Prop. 2: ~ N (1 - alpha mu)^N, (1 - alpha mu)^(N/2)   Prop. 3: ~ N
      L_phiphi = ‖∂²L/∂φ²‖     Prop. 2: bounded                       Prop. 3: ~ N
- at each point, once: the inner loss's curvature per task, mu and L (smallest and largest
  eigenvalue of its Hessian in w), with alpha*mu and alpha*L.
Optionally (--directions K) a second, different estimate: difference quotients
||Δ gradient block|| / ||displacement|| along K random directions, an average curvature rather
than the worst direction. Rows go to a ProbeLog (anil/analysis/probe_log.py) as they are measured:
norms.csv, curvature.csv, points.csv and, with --directions, quotients.csv in --out, so that a
stopped probe resumes; the command (anil/cli/smoothness.py) then writes summary.csv,
smoothness.png/.pdf and config.json.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from anil.analysis.probe_log import ProbeLog
from anil.analysis.spectra import (
    MAX_ITERATIONS,
    TOLERANCE,
    MetaHessian,
    block_norms,
    inner_curvature,
)
from anil.config import TrainConfig
from anil.engine.learner import MetaLearner
from anil.run.setup import Setup, build, dtype_of, image_shape, inner_loop, make_learner, resolve_device
from anil.run.trainer import meta_step
from anil.tasks import TaskBatch

log = logging.getLogger(__name__)


class DivergedTrajectory(RuntimeError):
    """The training trajectory to be probed blew up; the message is one line with the fix."""


@dataclasses.dataclass(frozen=True)
class Probe:
    """What to measure: the grid, the sampling and where the trajectory comes from."""

    grid: tuple[int, ...]  # the N values
    points: int  # trajectory points (parameters after 0, T/(points-1), ..., T meta-iterations)
    train_iterations: int  # T
    tolerance: float = TOLERANCE  # Lanczos stops on a residual at most this fraction of its value
    max_iterations: int = MAX_ITERATIONS
    batches: int = 1  # meta-batches probed at every point (their spread is the probe's noise)
    starts: int = 1  # Lanczos starts per block norm (the largest is kept)
    directions: int = 0  # difference quotients: random displacements per point, N and block (0: none)
    radius: float = 1e-3  # their norm relative to the displaced block's norm
    blocks: bool = True  # the meta-Hessian's block norms (False: the inner curvature only, in seconds)


def flat(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def meta_gradient(setup: Setup, batch: TaskBatch, learner: MetaLearner) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL/dw, dL/dphi) flattened, exact second order."""
    model = setup.model
    model.zero_grad(set_to_none=True)
    learner.loss(model, batch).loss.backward()
    return flat(_grads(model.head.parameters())), flat(_grads(model.body.parameters()))


def _grads(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Each parameter's gradient (zeros where backward did not reach it)."""
    return [torch.zeros_like(p) if p.grad is None else p.grad for p in params]


@torch.no_grad()
def _displace(
    params: list[torch.Tensor], radius: float, generator: torch.Generator
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Add a random direction of norm radius * ||params||. Returns the displacement actually made
    (after rounding) and the original values, to restore them bit for bit."""
    originals = [p.detach().clone() for p in params]
    steps = [torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p) for p in params]
    scale = radius * flat(params).norm() / flat(steps).norm()
    for p, s in zip(params, steps):
        p.add_(s.mul_(scale))
    return [p.detach() - o for p, o in zip(params, originals)], originals


def probe_point(
    setup: Setup, batch: TaskBatch, geometry: str, probe: Probe, learner_for: Callable[[int], MetaLearner], seed: int
) -> list[dict[str, Any]]:
    """Difference quotients: every (N, direction) sample at the model's current parameters;
    `learner_for(N)` gives the exact (second-order) meta-learner with N inner steps."""
    rows = []
    blocks = {"w": list(setup.model.head), "phi": list(setup.model.body.parameters())}
    for n in probe.grid:
        learner = learner_for(n)
        g_w, g_phi = meta_gradient(setup, batch, learner)
        generator = torch.Generator().manual_seed(seed * 7919 + n)  # the same directions for every point
        for direction in range(probe.directions):
            row: dict[str, Any] = {"geometry": geometry, "N": n, "direction": direction}
            for moved, params in blocks.items():
                steps, originals = _displace(params, probe.radius, generator)
                d_w, d_phi = meta_gradient(setup, batch, learner)
                with torch.no_grad():
                    for p, o in zip(params, originals):
                        p.copy_(o)
                size = flat(steps).norm().item()
                row[f"L_w{moved}"] = (d_w - g_w).norm().item() / size
                row[f"L_phi{moved}"] = (d_phi - g_phi).norm().item() / size
            rows.append(row)
    return rows


def operator_norms(
    setup: Setup, batch: TaskBatch, probe: Probe, learner_for: Callable[[int], MetaLearner]
) -> list[dict[str, Any]]:
    """The four block norms for every N of the grid at the model's current parameters."""
    rows = []
    for n in probe.grid:
        started = time.perf_counter()
        hessian = MetaHessian(setup.model, batch, learner_for(n))
        norms = block_norms(hessian, probe.tolerance, probe.max_iterations, probe.starts)
        rows.append({"N": n, **norms.as_dict(), "seconds": time.perf_counter() - started})
        log.info(
            "N=%d: L_ww %.4g, L_wphi %.4g, L_phiw %.4g, L_phiphi %.4g (%.0f s)",
            n, norms.ww.value, norms.wphi.value, norms.phiw.value, norms.phiphi.value, rows[-1]["seconds"],
        )  # fmt: skip
    return rows


def curvature_rows(setup: Setup, batch: TaskBatch, config: TrainConfig, alpha: float) -> list[dict[str, Any]]:
    """mu and L of each task's inner loss at the current head, with alpha*mu and alpha*L."""
    curvature = inner_curvature(setup.model, batch, config.lam, dtype_of(config))
    return [
        {
            "task": t,
            "mu": mu,
            "L": big,
            "alpha_mu": alpha * mu,
            "alpha_L": alpha * big,
            "lanczos_steps": curvature.steps,
        }
        for t, (mu, big) in enumerate(zip(curvature.mu.tolist(), curvature.L.tolist()))
    ]


def measure(config: TrainConfig, probe: Probe, record: ProbeLog | None = None) -> ProbeLog:
    """Train the trajectory `config` describes and probe it at `probe.points` evenly spaced iterations.
    Every (point, meta-batch) goes to `record` as soon as it is measured; what `record` already holds (a
    stopped probe of the same options) is skipped, once the retrained point is checked to be the same."""
    record = record if record is not None else ProbeLog()
    device = resolve_device(config.device)
    setup = build(config, device)
    batches = [setup.sampler.sample(config.B) for _ in range(probe.batches)]  # fixed for every point and N
    shape = image_shape(setup.sampler.images.shape)  # the body pass is sized to the images
    exact = dataclasses.replace(config, first_order=False)

    def learner_for(n: int) -> MetaLearner:
        return make_learner(exact, shape, device, inner_loop(exact, steps=n))

    marks = sorted({round(i * probe.train_iterations / max(probe.points - 1, 1)) for i in range(probe.points)})
    done = 0
    for mark in marks:
        for iteration in range(done + 1, mark + 1):
            _, healthy = meta_step(setup, config.B, config.blowup_loss)
            if not healthy:  # probing a blown-up model would measure nothing meaningful
                raise DivergedTrajectory(
                    f"the {config.geometry.name} trajectory diverged at iteration {iteration} "
                    f"(alpha={config.alpha:g}); lower --alpha or --train-iterations"
                )
        done = mark
        started = time.perf_counter()
        probe_at(setup, batches, config, probe, learner_for, record, mark)
        seconds = time.perf_counter() - started
        log.info("%s: point at iteration %d probed in %.1f s", config.geometry.name, mark, seconds)
    return record


def probe_at(
    setup: Setup, batches: list[TaskBatch], config: TrainConfig, probe: Probe,
    learner_for: Callable[[int], MetaLearner], record: ProbeLog, mark: int,
) -> None:  # fmt: skip
    """Every measurement at one trajectory point that `record` does not hold yet."""
    geometry = config.geometry.name
    point = {"geometry": geometry, "iteration": mark}
    with torch.no_grad():
        size = float(flat(p.detach().double() for p in setup.model.parameters()).norm())
    record.check_point(geometry, mark, size, config.dtype)
    if probe.blocks:
        for index, probed in enumerate(batches):
            if not record.has("norms", **point, batch=index):
                rows = operator_norms(setup, probed, probe, learner_for)
                record.add("norms", [{**point, "batch": index, **row} for row in rows])
    batch = batches[0]  # the curvature and the difference quotients read the first
    if not record.has("curvature", **point):
        record.add("curvature", [{**point, **row} for row in curvature_rows(setup, batch, config, config.alpha)])
    if probe.directions and not record.has("quotients", geometry=geometry, iteration=mark):
        rows = probe_point(setup, batch, geometry, probe, learner_for, config.seed)
        record.add("quotients", [{**row, "iteration": mark} for row in rows])
