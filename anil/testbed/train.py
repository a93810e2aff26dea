"""Outer-loop SGD for R runs at once (Algorithm 1 with plain SGD, as the theorems assume), with
Definition 1's quantities of the full objective measured every `every` iterations.

A run diverges when its meta-loss or meta-gradient stops being finite or its loss passes
`blowup`; it is then frozen at its last finite point (its stepsize set to 0), so the other runs
go on untouched and its curve ends where it diverged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from anil.testbed.family import Family, Tasks, draw_runs
from anil.testbed.net import Nets, Setting, Stationarity, meta_loss, per_run, stationarity

log = logging.getLogger(__name__)
BLOWUP = 1e3  # a meta-loss this far above chance (ln 5 = 1.6) has left the region training reaches


@dataclass(frozen=True)
class Schedule:
    iterations: int
    tasks: int = 16  # B, tasks per meta-batch
    every: int = 10  # Definition 1's quantities every this many iterations (0: never)


@dataclass
class Curves:
    """Per run: the training meta-loss per iteration, and the full objective's gradient norms at
    `at` (iterations)."""

    loss: list[list[float]]  # [R][iterations]
    at: list[int] = field(default_factory=list)
    grad_w: list[list[float]] = field(default_factory=list)  # [R][len(at)]
    grad_phi: list[list[float]] = field(default_factory=list)
    objective: list[list[float]] = field(default_factory=list)
    diverged_at: list[int | None] = field(default_factory=list)  # iteration, or None


def generators(seeds: list[int]) -> list[torch.Generator]:
    """Each run's task stream, from its seed alone."""
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def train(
    nets: Nets,
    setting: Setting,
    beta: torch.Tensor,
    seeds: list[int],
    family: Family,
    schedule: Schedule,
    evaluation: Tasks | None = None,
) -> Curves:
    """Meta-train every run of `nets` in place: β [R] its outer stepsize (both w and φ)."""
    runs = nets.runs
    streams, basis = generators(seeds), family.subspace(nets.body[0].dtype)
    beta = beta.clone()
    curves = Curves(loss=[[] for _ in range(runs)], diverged_at=[None] * runs)
    if evaluation is not None:
        curves.grad_w, curves.grad_phi, curves.objective = (_empty(runs), _empty(runs), _empty(runs))
    params = nets.parameters()
    for iteration in range(schedule.iterations + 1):
        if evaluation is not None and schedule.every and iteration % schedule.every == 0:
            _record(curves, iteration, stationarity(nets, evaluation, setting))
        if iteration == schedule.iterations:
            break
        losses = meta_loss(nets, draw_runs(family, schedule.tasks, streams, basis), setting)  # [R]
        grads = torch.autograd.grad(losses.sum(), params)
        with torch.no_grad():
            finite = torch.isfinite(losses) & (losses < BLOWUP)
            for g in grads:
                finite &= torch.isfinite(g).flatten(1).all(1)
            for run in torch.nonzero(~finite & (beta > 0)).flatten().tolist():
                curves.diverged_at[run] = iteration
                beta[run] = 0.0
            for p, g in zip(params, grads):
                p -= per_run(beta, p) * torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        for run, value in enumerate(losses.detach().tolist()):
            curves.loss[run].append(value)
    return curves


def _empty(runs: int) -> list[list[float]]:
    return [[] for _ in range(runs)]


def _record(curves: Curves, iteration: int, measured: Stationarity) -> None:
    curves.at.append(iteration)
    for series, values in (
        (curves.grad_w, measured.grad_w),
        (curves.grad_phi, measured.grad_phi),
        (curves.objective, measured.loss),
    ):
        for run, value in enumerate(values.tolist()):
            series[run].append(value)
