"""The constants the theorems are stated in, measured on the testbed by Lanczos (lanczos.py):
μ and L of each task's inner loss in w, and the operator norms of the meta-Hessian's blocks
(L_ww, L_wφ, L_φφ: the Lipschitz constants Propositions 2 and 3 bound).

Runs share nothing, so the Hessian of the sum of their losses is block diagonal by run, and one
Hessian-vector product applies every run's Hessian to its own vector; the inner Hessians are
likewise block diagonal by task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from anil.engine.losses import support_loss
from anil.testbed.family import Tasks
from anil.testbed.lanczos import End, Extremes, extremes
from anil.testbed.net import Nets, Params, Setting, features, meta_loss

STARTS = 3  # Lanczos starts per measurement: a start nearly orthogonal to the top eigenvector is caught


def _flat(tensors: list[torch.Tensor], lead: int) -> torch.Tensor:
    return torch.cat([t.flatten(lead) for t in tensors], dim=lead)


def _split(flat: torch.Tensor, like: Params, lead: int) -> Params:
    sizes = [p[(0,) * lead].numel() for p in like]
    return [part.reshape(p.shape) for part, p in zip(torch.split(flat, sizes, dim=lead), like)]


@dataclass(frozen=True)
class Inner:
    mu: torch.Tensor  # [R, T]: each task's smallest eigenvalue of ∇²_w L_S at the head w
    L: torch.Tensor  # [R, T]: its largest
    certified: bool


def inner_curvature(nets: Nets, tasks: Tasks, setting: Setting) -> Inner:
    """μ and L of every (run, task) inner loss at the meta-initialisation w: tasks [R, T, ...]."""
    with torch.no_grad():
        support = features(nets.body, tasks.support, setting.scale)  # [R, T, n, d], fixed in w
    runs, count = support.shape[:2]
    heads = [p.detach()[:, None].expand(runs, count, *p.shape[1:]).clone().requires_grad_(True) for p in nets.head]
    loss = support_loss(heads, support, tasks.support_labels, setting.lam).sum()
    gradient = torch.autograd.grad(loss, heads, create_graph=True)

    def hessian(v: torch.Tensor) -> torch.Tensor:  # [R*T, n_w]
        parts = _split(v.reshape(runs, count, -1), heads, 2)
        along = sum((g * u).sum() for g, u in zip(gradient, parts))
        product = torch.autograd.grad(along, heads, retain_graph=True)  # type: ignore[arg-type]
        return _flat(list(product), 2).reshape(runs * count, -1)

    n = sum(h[0, 0].numel() for h in heads)
    found = [extremes(hessian, runs * count, n, heads[0], seed) for seed in range(STARTS)]
    low = torch.stack([f.low for f in found]).min(0).values.reshape(runs, count)
    high = torch.stack([f.high for f in found]).max(0).values.reshape(runs, count)
    return Inner(low, high, all(f.certified for f in found))


@dataclass(frozen=True)
class Block:
    norm: torch.Tensor  # [R], the largest over the starts
    spread: torch.Tensor  # [R], (largest - smallest) / largest over the starts
    residual: torch.Tensor  # [R], the largest relative residual of the chosen Ritz values
    certified: bool


def block_norms(nets: Nets, tasks: Tasks, setting: Setting) -> dict[str, Block]:
    """‖∂²L/∂w²‖, ‖∂²L/∂φ∂w‖ and ‖∂²L/∂φ²‖ of each run's meta-loss on its tasks [R, T, ...]."""
    leaves = Nets(
        [p.detach().clone().requires_grad_(True) for p in nets.body],
        [p.detach().clone().requires_grad_(True) for p in nets.head],
    )
    head, body = leaves.head, leaves.body
    loss = meta_loss(leaves, tasks, setting).sum()
    g_head, g_body = _halves(torch.autograd.grad(loss, [*head, *body], create_graph=True), len(head))

    def product(gradient: Params, v: torch.Tensor, target: Params, v_like: Params) -> torch.Tensor:
        along = sum((g * u).sum() for g, u in zip(gradient, _split(v, v_like, 1)))
        out = torch.autograd.grad(along, target, retain_graph=True, allow_unused=True)  # type: ignore[arg-type]
        return _flat([torch.zeros_like(t) if o is None else o for o, t in zip(out, target)], 1)

    operators = {
        "L_ww": (lambda v: product(g_head, v, head, head), head, False),
        "L_phiphi": (lambda v: product(g_body, v, body, body), body, False),
        "L_wphi": (lambda v: product(g_body, product(g_head, v, body, head), head, body), head, True),
    }
    return {name: _norm(op, like, gram) for name, (op, like, gram) in operators.items()}


def _halves(grads: tuple[torch.Tensor, ...], heads: int) -> tuple[Params, Params]:
    return list(grads[:heads]), list(grads[heads:])


def _norm(apply: object, like: Params, gram: bool) -> Block:
    """A symmetric block's norm max(|low|, |high|); for a Gram operator MᵀM, sqrt(high) = ‖M‖."""
    runs, n = like[0].shape[0], sum(p[0].numel() for p in like)
    ends = End.high if gram else End.largest
    found: list[Extremes] = [extremes(apply, runs, n, like[0], seed, ends) for seed in range(STARTS)]  # type: ignore[arg-type]
    values, residuals = [], []
    for f in found:
        if gram:
            values.append(f.high.clamp_min(0).sqrt())
            residuals.append(f.high_residual / f.high.abs().clamp_min(1e-300))
        else:
            top = torch.where(f.high.abs() >= f.low.abs(), f.high, f.low)
            residual = torch.where(f.high.abs() >= f.low.abs(), f.high_residual, f.low_residual)
            values.append(top.abs())
            residuals.append(residual / top.abs().clamp_min(1e-300))
    stacked = torch.stack(values)
    best = stacked.max(0).values
    spread = (best - stacked.min(0).values) / best.clamp_min(1e-300)
    return Block(best, spread, torch.stack(residuals).max(0).values, all(f.certified for f in found))
