"""The testbed's network, batched over runs R and tasks T: every parameter carries a leading run
dimension, so one backward pass gives every run its own meta-gradient (runs share nothing; the
sum of their losses has each run's gradient in that run's slice).

Body φ: one tanh layer, its output normalised to norm s (the feature scale, the conditioning
knob: family.py). Head w: convex, linear (logits = V f + c); nonconvex, Linear -> ReLU -> Linear.
Both inner losses add (λ/2)‖w‖², as the engine's do (anil/engine/losses.py, reused here).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from anil.engine.losses import query_loss, support_loss
from anil.geometry import Geometry
from anil.testbed.family import Tasks

Params = list[torch.Tensor]
FEATURE_FLOOR = 1e-12  # keeps the normalisation smooth where a feature vector vanishes


@dataclass(frozen=True)
class Shape:
    geometry: Geometry
    dim: int  # input dimension
    width: int = 32  # the body's output dimension d
    hidden: int = 32  # the nonconvex head's hidden width
    ways: int = 5


@dataclass
class Nets:
    """R runs' parameters: body [W [R, d, dim], b [R, d]], head [V [R, out, in], c [R, out], ...]."""

    body: Params
    head: Params

    def parameters(self) -> Params:
        return [*self.head, *self.body]

    @property
    def runs(self) -> int:
        return self.body[0].shape[0]


def init(shape: Shape, seeds: list[int], dtype: torch.dtype = torch.float64) -> Nets:
    """Each run's parameters from its own seed (runs with one seed start from one point)."""
    widths = [shape.width, shape.ways] if shape.geometry == Geometry.convex else [shape.width, shape.hidden, shape.ways]
    per_run = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(10_000 + seed)  # apart from the task streams' seeds
        layers = [(shape.dim, shape.width), *zip(widths[:-1], widths[1:])]
        params = []
        for fan_in, fan_out in layers:  # PyTorch's Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = fan_in**-0.5
            params.append((torch.rand(fan_out, fan_in, generator=generator, dtype=dtype) * 2 - 1) * bound)
            params.append((torch.rand(fan_out, generator=generator, dtype=dtype) * 2 - 1) * bound)
        per_run.append(params)
    stacked = [torch.stack(group).requires_grad_(True) for group in zip(*per_run)]
    return Nets(body=stacked[:2], head=stacked[2:])


def features(body: Params, inputs: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """inputs [R, T, n, dim], scale [R] -> features [R, T, n, d], each of norm `scale`."""
    weight, bias = body  # [R, d, dim], [R, d]
    hidden = torch.tanh(inputs @ weight.transpose(-1, -2)[:, None] + bias[:, None, None])
    norm = torch.sqrt(hidden.pow(2).sum(-1, keepdim=True) + FEATURE_FLOOR)
    return hidden * (scale[:, None, None, None] / norm)


def per_run(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values [R] shaped to broadcast against a tensor [R, ...] like `like`."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def adapt(
    head: Params, support: torch.Tensor, labels: torch.Tensor, alpha: torch.Tensor, lam: float, N: int, graph: bool
) -> Params:
    """N gradient steps of each run's α on each task's support loss: support [R, T, n, d] ->
    adapted heads, each [R, T, ...]. `graph`: keep what the meta-gradient differentiates through."""
    runs, tasks = support.shape[:2]
    params = [p[:, None].expand(runs, tasks, *p.shape[1:]) for p in head]  # w_0 = w for every task
    for _ in range(N):
        losses = support_loss(params, support, labels, lam)  # [R, T]
        grads = torch.autograd.grad(losses.sum(), params, create_graph=graph)
        params = [p - per_run(alpha, p) * g for p, g in zip(params, grads)]
    return params


@dataclass(frozen=True)
class Setting:
    """What the runs' meta-losses depend on besides their parameters: per run α and s ([R])."""

    alpha: torch.Tensor  # inner stepsize
    scale: torch.Tensor  # feature norm s
    lam: float
    N: int


def meta_loss(nets: Nets, tasks: Tasks, setting: Setting, graph: bool = True) -> torch.Tensor:
    """Each run's meta-loss, the mean query loss at its adapted heads: tasks [R, T, ...] -> [R]."""
    support = features(nets.body, tasks.support, setting.scale)
    query = features(nets.body, tasks.query, setting.scale)
    adapted = adapt(nets.head, support, tasks.support_labels, setting.alpha, setting.lam, setting.N, graph)
    return query_loss(adapted, query, tasks.query_labels).mean(-1)


def expand_runs(tasks: Tasks, runs: int) -> Tasks:
    """Tasks shared by every run ([T, ...]) seen as [R, T, ...], without a copy."""
    support = tasks.support.expand(runs, *tasks.support.shape)
    query = tasks.query.expand(runs, *tasks.query.shape)
    return Tasks(support, query, tasks.support_labels, tasks.query_labels)


@dataclass(frozen=True)
class Stationarity:
    """Definition 1's two quantities of the full objective, per run, and its value."""

    grad_w: torch.Tensor  # ‖∂L_meta/∂w‖² [R]
    grad_phi: torch.Tensor  # ‖∂L_meta/∂φ‖² [R]
    loss: torch.Tensor  # L_meta [R]


def stationarity(nets: Nets, tasks: Tasks, setting: Setting, chunk: int = 128) -> Stationarity:
    """The meta-gradient of the objective over the fixed tasks ([T, ...], shared by all runs), in
    chunks of tasks so memory stays bounded; exact (the chunks' gradients add up)."""
    total = tasks.support.shape[0]
    params = nets.parameters()
    sums = [torch.zeros_like(p) for p in params]
    loss = torch.zeros(nets.runs, dtype=params[0].dtype)
    for start in range(0, total, chunk):
        part = expand_runs(tasks.select(start, min(start + chunk, total)), nets.runs)
        weight = part.support.shape[1] / total
        losses = meta_loss(nets, part, setting) * weight
        grads = torch.autograd.grad(losses.sum(), params)
        sums = [s + g for s, g in zip(sums, grads)]
        loss += losses.detach()
    squares = [g.pow(2).flatten(1).sum(1) for g in sums]
    heads = len(nets.head)
    return Stationarity(sum(squares[:heads]), sum(squares[heads:]), loss)  # type: ignore[arg-type]
