"""The meta-gradient by the paper's formulas, independent of the engine's unrolled backprop.

Proposition 1: with w_0 = w and w_{j+1} = w_j - alpha * grad_w L_S(w_j, phi), for one task

    dL/dw   = prod_{j=0}^{N-1} (I - alpha * H_j) grad_w L_D(w_N, phi)
    dL/dphi = grad_phi L_D(w_N, phi)
              - alpha * sum_{j=0}^{N-1} M_j prod_{k=j+1}^{N-1} (I - alpha * H_k) grad_w L_D(w_N, phi)

where H_j = grad^2_w L_S(w_j, phi) (Hessian in w) and M_j = grad_phi grad_w L_S(w_j, phi) (mixed
second derivative). `explicit_meta_gradient` evaluates the products right to left: starting from
v = grad_w L_D(w_N), each step j = N-1 .. 0 takes one Hessian-vector product H_j v and one mixed
product M_j v at the stored iterate w_j. Nothing is differentiated through the unrolled loop.

`implicit_meta_gradient` is the N -> infinity limit under the strongly convex geometry: w_N
reaches the task optimum w*(phi), which does not depend on the initialisation, so dL/dw = 0 and
dL/dphi = grad_phi L_D(w*) - M(w*) H(w*)^{-1} grad_w L_D(w*) (implicit function theorem).

Both work on a whole meta-batch at once (heads with a leading task dimension, per-task BatchNorm)
and return gradients of the engine's meta-loss: the mean of the B tasks' query losses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from anil.data.sampler import TaskSampler
from anil.data.split import Split
from anil.engine.batched import anil_meta_loss, encode
from anil.engine.losses import query_loss, support_loss
from anil.engine.model import AnilNet
from anil.geometry import Geometry
from anil.tasks import InnerLoop, TaskBatch


@dataclass(frozen=True)
class MetaGradient:
    head: list[torch.Tensor]  # dL/dw, shaped like model.head
    body: list[torch.Tensor]  # dL/dphi, shaped like model.body's parameters
    sigma: list[torch.Tensor]  # the Sigma term of dL/dphi: -alpha * sum_j M_j prod(...) v (zero at first order)


@dataclass(frozen=True)
class _Task:
    support: torch.Tensor  # [B, ways*k, d], carries the graph to phi
    query: torch.Tensor  # [B, ways*q, d]
    labels_s: torch.Tensor  # [ways*k]
    labels_q: torch.Tensor  # [ways*q]


def _features(model: AnilNet, batch: TaskBatch, dtype: torch.dtype) -> _Task:
    support, query = encode(model, batch, dtype)
    return _Task(support, query, batch.support_labels(), batch.query_labels())


def meta_objective(head: list[torch.Tensor], query: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The meta-loss at batched heads [B, ...]: the mean over tasks of each task's query loss."""
    return query_loss(head, query, labels).mean()


def _leaf(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().requires_grad_(True) for p in params]


def inner_iterates(
    head: list[torch.Tensor], support: torch.Tensor, labels: torch.Tensor, inner: InnerLoop
) -> list[list[torch.Tensor]]:
    """w_0 .. w_N for every task (values only, no graph): [[B, ...] per head parameter] per step."""
    support = support.detach()
    w = [p.detach().unsqueeze(0).expand(support.shape[0], *p.shape).clone() for p in head]
    iterates = [w]
    for _ in range(inner.steps):
        w = _leaf(w)
        grads = torch.autograd.grad(support_loss(w, support, labels, inner.lam).sum(), w)
        w = [p.detach() - inner.stepsize * g for p, g in zip(w, grads)]
        iterates.append(w)
    return iterates


def dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """sum_i <a_i, b_i> over two lists of same-shaped tensors: a scalar tensor."""
    return torch.stack([(x * y).sum() for x, y in zip(a, b)]).sum()


def _outer_gradients(
    task: _Task, w_last: list[torch.Tensor], body: Sequence[torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """grad_w L_D(w_N, phi) per task [B, ...] and grad_phi L_D(w_N, phi) with w_N held fixed."""
    w_last = _leaf(w_last)
    grads = torch.autograd.grad(meta_objective(w_last, task.query, task.labels_q), [*w_last, *body], retain_graph=True)
    return list(grads[: len(w_last)]), list(grads[len(w_last) :])


def _second_order_products(
    task: _Task, w_j: list[torch.Tensor], v: list[torch.Tensor], body: Sequence[torch.Tensor], lam: float
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """H_j v per task ([B, ...] per head parameter) and M_j v summed over tasks (per body parameter)."""
    w_j = _leaf(w_j)
    grads = torch.autograd.grad(support_loss(w_j, task.support, task.labels_s, lam).sum(), w_j, create_graph=True)
    along_v = dot(grads, v)  # sum_b <grad_w L_S^b(w_j), v_b>
    products = torch.autograd.grad(along_v, [*w_j, *body], retain_graph=True, allow_unused=True)
    hessian_v = list(products[: len(w_j)])
    mixed_v = [torch.zeros_like(p) if m is None else m for p, m in zip(body, products[len(w_j) :])]
    return hessian_v, mixed_v


def explicit_meta_gradient(model: AnilNet, batch: TaskBatch, inner: InnerLoop, dtype: torch.dtype) -> MetaGradient:
    """Proposition 1 (exact) or, with inner.first_order, the first-order approximation (products
    replaced by I, Sigma term dropped). Body in train mode, as in training."""
    body = list(model.body.parameters())
    task = _features(model, batch, dtype)
    iterates = inner_iterates(list(model.head), task.support, task.labels_s, inner)
    v, outer_phi = _outer_gradients(task, iterates[-1], body)
    sigma = [torch.zeros_like(p) for p in body]
    if not inner.first_order:
        for w_j in reversed(iterates[:-1]):  # j = N-1 .. 0
            hessian_v, mixed_v = _second_order_products(task, w_j, v, body, inner.lam)
            sigma = [s - inner.stepsize * m for s, m in zip(sigma, mixed_v)]
            v = [u - inner.stepsize * h for u, h in zip(v, hessian_v)]  # v <- (I - alpha H_j) v
    head = [u.sum(0) for u in v]  # w_0 = w for every task: the shared head collects all B tasks
    return MetaGradient(head, [o + s for o, s in zip(outer_phi, sigma)], sigma)


def conjugate_gradient(
    apply: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    rhs: list[torch.Tensor],
    iterations: int,
    tolerance: float,
) -> list[torch.Tensor]:
    """Solve A x = rhs for a symmetric positive definite A given as x -> A x (lists of tensors)."""
    x = [torch.zeros_like(r) for r in rhs]
    r = [t.clone() for t in rhs]
    p = [t.clone() for t in r]
    rr = dot(r, r)
    for _ in range(iterations):
        Ap = apply(p)
        step = rr / dot(p, Ap)
        x = [xi + step * pi for xi, pi in zip(x, p)]
        r = [ri - step * ai for ri, ai in zip(r, Ap)]
        rr_next = dot(r, r)
        if rr_next.sqrt() <= tolerance:
            break
        p = [ri + (rr_next / rr) * pi for ri, pi in zip(r, p)]
        rr = rr_next
    return x


def implicit_meta_gradient(
    model: AnilNet, batch: TaskBatch, inner: InnerLoop, dtype: torch.dtype, optimum_steps: int = 20000
) -> MetaGradient:
    """The N -> infinity meta-gradient of the strongly convex geometry (lam > 0) at w*(phi), found by
    `optimum_steps` inner steps; H(w*)^{-1} is applied by conjugate gradients (H is positive definite)."""
    if inner.lam <= 0:
        raise ValueError("the implicit meta-gradient needs a strongly convex inner loss (lam > 0)")
    body = list(model.body.parameters())
    task = _features(model, batch, dtype)
    long_run = InnerLoop(optimum_steps, inner.stepsize, inner.lam, first_order=True)  # values only
    w_star = inner_iterates(list(model.head), task.support, task.labels_s, long_run)[-1]
    v, outer_phi = _outer_gradients(task, w_star, body)

    def hessian(u: list[torch.Tensor]) -> list[torch.Tensor]:
        return _second_order_products(task, w_star, u, body, inner.lam)[0]

    solved = conjugate_gradient(hessian, v, iterations=10 * sum(u[0].numel() for u in v), tolerance=1e-14)
    mixed = _second_order_products(task, w_star, solved, body, inner.lam)[1]
    sigma = [-m for m in mixed]
    return MetaGradient([torch.zeros_like(p) for p in model.head], [o + s for o, s in zip(outer_phi, sigma)], sigma)


# --- checks of the engine against the formulas, as docs/theory.md reports them -------------------

CHECK_DTYPE = torch.float64


def tiny_problem(geometry: str, seed: int, tasks: int) -> tuple[AnilNet, TaskBatch]:
    """A float64 Conv-4 on 16x16 random images, 3-way 2-shot 3-query: small enough for exact checks."""
    torch.manual_seed(seed)
    model = AnilNet(geometry, 16, 1, ways=3, hidden=8).to(CHECK_DTYPE)
    images = torch.randint(0, 256, (12, 6, 1, 16, 16), dtype=torch.uint8).numpy()
    split = Split.from_grouped(images, [str(c) for c in range(12)], "random")
    sampler = TaskSampler(split, ways=3, shots=2, query=3, generator=torch.Generator().manual_seed(seed))
    return model, sampler.sample(tasks)


def engine_gradient(model: AnilNet, batch: TaskBatch, inner: InnerLoop) -> torch.Tensor:
    """The engine's meta-gradient (backprop through the unrolled loop), head then body, flattened."""
    model.zero_grad(set_to_none=True)
    anil_meta_loss(model, batch, inner, CHECK_DTYPE).loss.backward()
    return torch.cat([p.grad.flatten() for p in [*model.head, *model.body.parameters()] if p.grad is not None])


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.flatten() for t in tensors])


PROPOSITION_1_GRID = (1, 3, 7, 15)
CHECK_ALPHA, CHECK_LAM = 0.3, 0.05


def proposition_1_rows() -> list[dict[str, Any]]:
    """Engine against Proposition 1's formula, both geometries, exact and first order."""
    rows = []
    for geometry in Geometry:
        for n in PROPOSITION_1_GRID:
            model, batch = tiny_problem(geometry, seed=n, tasks=3)
            for first_order in (False, True):
                inner = InnerLoop(n, CHECK_ALPHA, CHECK_LAM, first_order)
                formula = explicit_meta_gradient(model, batch, inner, CHECK_DTYPE)
                expected = _flat(formula.head + formula.body)
                got = engine_gradient(model, batch, inner)
                rows.append({
                    "geometry": geometry, "N": n, "first_order": first_order,
                    "relative_error": ((got - expected).norm() / expected.norm()).item(),
                    "sigma_share": (_flat(formula.sigma).norm() / _flat(formula.body).norm()).item(),
                })  # fmt: skip
    return rows


LIMIT_GRID = (1, 4, 16, 64, 128, 256)
LIMIT_ALPHA, LIMIT_LAM = 0.02, 2.0  # a strongly convex inner loss with a fast, known contraction 1 - alpha*lam


def convex_limit_rows() -> list[dict[str, Any]]:
    """Gap between the engine's meta-gradient at N and the implicit (N -> infinity) one."""
    model, batch = tiny_problem(Geometry.convex, seed=2, tasks=2)
    limit = implicit_meta_gradient(
        model, batch, InnerLoop(1, LIMIT_ALPHA, LIMIT_LAM, False), CHECK_DTYPE, optimum_steps=3000
    )
    target = _flat(limit.head + limit.body)
    rows = []
    for n in LIMIT_GRID:
        gap = (engine_gradient(model, batch, InnerLoop(n, LIMIT_ALPHA, LIMIT_LAM, False)) - target).norm().item()
        rows.append({"N": n, "gap": gap, "bound_shape": (1 - LIMIT_ALPHA * LIMIT_LAM) ** n})
    return rows


def formula_checks() -> dict[str, Any]:
    """Everything docs/theory.md reports about Proposition 1 and the strongly convex limit."""
    started = time.perf_counter()
    return {
        "proposition_1": {"alpha": CHECK_ALPHA, "lam": CHECK_LAM, "rows": proposition_1_rows()},
        "convex_limit": {"alpha": LIMIT_ALPHA, "lam": LIMIT_LAM, "rows": convex_limit_rows()},
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "wall_s": time.perf_counter() - started,
    }
