"""The testbed's stages (suite.py runs them in order): calibration, stepsize searches, the judged
runs and the smoothness probe. Each returns plain JSON values.

Rules stated once here:
- a search run's score is its mean training meta-loss over the last fifth of its iterations
  (a diverged run scores +inf); β* is the grid value of the lowest score, per search seed;
- α is stable (nonconvex search) when a short run at it does not diverge and its last fifth's
  mean meta-loss lies below its first five iterations' mean: it trains rather than blows up;
- the configuration a judged run uses is the median over the search seeds (α*/2 for α: the
  threshold itself is the edge of stability, not a place to train).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import torch

from anil.geometry import Geometry
from anil.testbed.curvature import block_norms, inner_curvature
from anil.testbed.family import Family, Tasks, fixed_tasks
from anil.testbed.net import Nets, Setting, Shape, expand_runs, init
from anil.testbed.search import best_on_grid, bisect
from anil.testbed.train import Curves, Schedule, draw_runs, generators, train

if TYPE_CHECKING:
    from anil.testbed.suite import Plan

CURVATURE_TASKS = 32  # tasks of the fixed set on which μ and L are measured
CALIBRATION_STEPS = 16  # bisection halvings of log s over [1e-3, 1e2]: s to within 0.02%


@dataclass
class Context:
    family: Family
    plan: Plan
    dtype: torch.dtype
    evaluation: Tasks = field(init=False)

    def __post_init__(self) -> None:
        self.evaluation = fixed_tasks(self.family, self.plan.evaluation_tasks, self.dtype)

    def shape(self, geometry: Geometry) -> Shape:
        return Shape(geometry, self.family.dim, self.plan.width, self.plan.hidden, self.family.ways)

    def nets(self, geometry: Geometry, seeds: list[int]) -> Nets:
        return init(self.shape(geometry), seeds, self.dtype)

    def setting(self, alpha: list[float], scale: list[float], n: int) -> Setting:
        return Setting(torch.tensor(alpha, dtype=self.dtype), torch.tensor(scale, dtype=self.dtype), self.plan.lam, n)

    def curvature(self, nets: Nets, setting: Setting) -> tuple[list[float], list[float], bool]:
        """Per run: the median over the curvature tasks of μ and of L."""
        tasks = expand_runs(self.evaluation.select(0, CURVATURE_TASKS), nets.runs)
        found = inner_curvature(nets, tasks, setting)
        return found.mu.median(1).values.tolist(), found.L.median(1).values.tolist(), found.certified


def calibrate(context: Context) -> dict[str, Any]:
    """For each target κ, the feature scale s whose L (seed 0's initialisation) is κλ, found by
    bisection on log s; then μ, L over the search seeds' initialisations and α = 1/L."""
    plan, convex = context.plan, []
    seeds = list(plan.search_seeds)
    for kappa in plan.kappas:

        def too_flat(scale: torch.Tensor, kappa: float = kappa) -> torch.Tensor:
            nets = context.nets(Geometry.convex, [0] * len(scale))
            _, big_l, _ = context.curvature(nets, Setting(scale * 0, scale, plan.lam, 1))
            return torch.tensor(big_l) < kappa * plan.lam

        low, high = bisect(
            too_flat, torch.tensor([1e-3], dtype=context.dtype), torch.tensor([1e2], dtype=context.dtype), 30
        )
        scale = float(low[0])
        mu, big_l, certified = context.curvature(
            context.nets(Geometry.convex, seeds), context.setting([0.0] * len(seeds), [scale] * len(seeds), 1)
        )
        L = statistics.median(big_l)
        convex.append({"kappa_target": kappa, "scale": scale, "reached": bool(torch.isfinite(high[0])),
                       "mu": statistics.median(mu), "L": L, "alpha": 1 / L, "certified": certified})  # fmt: skip
    middle = convex[len(convex) // 2]["scale"]
    mu, big_l, certified = context.curvature(
        context.nets(Geometry.nonconvex, seeds), context.setting([0.0] * len(seeds), [middle] * len(seeds), 1)
    )
    nonconvex = {"scale": middle, "mu": statistics.median(mu), "L": statistics.median(big_l), "certified": certified}
    return {"convex": convex, "nonconvex": nonconvex}


def _score(curves: Curves) -> list[float]:
    """Mean training meta-loss over the last fifth of each run; +inf for a diverged run."""
    scores = []
    for loss, diverged in zip(curves.loss, curves.diverged_at):
        tail = loss[-max(1, len(loss) // 5) :]
        scores.append(float("inf") if diverged is not None else sum(tail) / len(tail))
    return scores


def _short(
    context: Context,
    geometry: Geometry,
    seeds: list[int],
    alpha: list[float],
    scale: list[float],
    beta: list[float],
    n: int,
) -> Curves:
    nets = context.nets(geometry, seeds)
    schedule = Schedule(context.plan.search_iterations, context.plan.tasks, every=0)
    return train(
        nets, context.setting(alpha, scale, n), torch.tensor(beta, dtype=context.dtype), seeds, context.family, schedule
    )


def _beta_grid(context: Context, geometry: Geometry, n: int, alpha: list[float], scale: list[float]) -> dict[str, Any]:
    """β* per search seed (α, s given per search seed) and the median choice."""
    seeds, betas = list(context.plan.search_seeds), context.plan.betas
    runs = [(b, i) for b in betas for i in range(len(seeds))]
    curves = _short(context, geometry, [seeds[i] for _, i in runs], [alpha[i] for _, i in runs],
                    [scale[i] for _, i in runs], [b for b, _ in runs], n)  # fmt: skip
    scores = torch.tensor(_score(curves)).reshape(len(betas), len(seeds))
    best = best_on_grid(scores).tolist()
    chosen = betas[sorted(best)[(len(best) - 1) // 2]]
    return {"beta_star": {str(s): betas[b] for s, b in zip(seeds, best)}, "beta": chosen, "scores": scores.tolist()}


def search(context: Context, geometry: Geometry, n: int, calibration: dict[str, Any]) -> dict[str, Any]:
    seeds = list(context.plan.search_seeds)
    if geometry == Geometry.convex:
        return {"configs": [_beta_grid(context, geometry, n, [c["alpha"]] * len(seeds), [c["scale"]] * len(seeds))
                            for c in calibration["convex"]]}  # fmt: skip
    scale = [calibration["nonconvex"]["scale"]] * len(seeds)

    def stable(alpha: torch.Tensor) -> torch.Tensor:
        curves = _short(context, geometry, seeds, alpha.tolist(), scale, [context.plan.probe_beta] * len(seeds), n)
        start = [sum(loss[:5]) / len(loss[:5]) for loss in curves.loss]
        return torch.tensor([s < begun for s, begun in zip(_score(curves), start)])

    low, high = (torch.full((len(seeds),), v, dtype=context.dtype) for v in context.plan.alpha_bracket)
    low, high = bisect(stable, low, high, context.plan.bisection_steps)
    alpha_star = low.tolist()
    grid = _beta_grid(context, geometry, n, [a / 2 for a in alpha_star], scale)
    return {"alpha_star": {str(s): a for s, a in zip(seeds, alpha_star)},
            "alpha_high": {str(s): h for s, h in zip(seeds, high.tolist())},
            "alpha": statistics.median(alpha_star) / 2, **grid}  # fmt: skip


def _configs(geometry: Geometry, calibration: dict[str, Any], stepsizes: dict[str, Any]) -> list[dict[str, Any]]:
    """(α, s, β) of each judged configuration: one per κ (convex), one (nonconvex)."""
    if geometry == Geometry.convex:
        return [{"kappa_target": c["kappa_target"], "alpha": c["alpha"], "scale": c["scale"], "beta": s["beta"]}
                for c, s in zip(calibration["convex"], stepsizes["configs"])]  # fmt: skip
    return [{"alpha": stepsizes["alpha"], "scale": calibration["nonconvex"]["scale"], "beta": stepsizes["beta"]}]


def judged(
    context: Context, geometry: Geometry, n: int, calibration: dict[str, Any], stepsizes: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every seed of every configuration, trained together; per configuration its curves."""
    plan, configs = context.plan, _configs(geometry, calibration, stepsizes)
    seeds = list(range(plan.seeds)) * len(configs)
    which = [i for i in range(len(configs)) for _ in range(plan.seeds)]
    nets = context.nets(geometry, seeds)
    setting = context.setting([configs[i]["alpha"] for i in which], [configs[i]["scale"] for i in which], n)
    beta = torch.tensor([configs[i]["beta"] for i in which], dtype=context.dtype)
    curves = train(
        nets,
        setting,
        beta,
        seeds,
        context.family,
        Schedule(plan.iterations, plan.tasks, plan.every),
        context.evaluation,
    )
    mu, big_l, certified = context.curvature(nets, setting)
    results = []
    for i, config in enumerate(configs):
        pick = partial(_pick, [r for r, w in enumerate(which) if w == i])
        results.append({**config, "seeds": pick(seeds), "at": curves.at, "grad_w": pick(curves.grad_w),
                        "grad_phi": pick(curves.grad_phi), "objective": pick(curves.objective),
                        "diverged_at": pick(curves.diverged_at), "mu_end": pick(mu), "L_end": pick(big_l),
                        "certified": certified})  # fmt: skip
    return results


def _pick(rows: list[int], values: list[Any]) -> list[Any]:
    return [values[r] for r in rows]


def smoothness(
    context: Context, geometry: Geometry, n: int, calibration: dict[str, Any], stepsizes: dict[str, Any]
) -> dict[str, Any]:
    """Block norms of the meta-Hessian at seed 0's initialisation, one meta-batch per run."""
    batches = context.plan.smoothness_batches
    configs = _configs(geometry, calibration, stepsizes)
    config = configs[len(configs) // 2]  # convex: the middle κ
    nets = context.nets(geometry, [0] * batches)
    tasks = draw_runs(
        context.family, context.plan.tasks, generators(list(range(batches))), context.family.subspace(context.dtype)
    )
    blocks = block_norms(nets, tasks, context.setting([config["alpha"]] * batches, [config["scale"]] * batches, n))
    return {name: {"norms": b.norm.tolist(), "spread": float(b.spread.max()), "residual": float(b.residual.max()),
                   "certified": b.certified} for name, b in blocks.items()} | {"alpha": config["alpha"]}  # fmt: skip
