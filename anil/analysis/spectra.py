"""The quantities Propositions 2 and 3 bound, measured: operator norms of the meta-Hessian's blocks,
and the curvature (μ, L) of the inner loss.

Meta-objective smoothness. With L(w, φ) the meta-loss of a fixed meta-batch, the four Lipschitz
constants of the propositions are the spectral norms of the blocks of its Hessian:

    L_ww = ‖∂²L/∂w²‖,   L_wφ = ‖∂²L/∂φ∂w‖ = L_φw (the same block, transposed),   L_φφ = ‖∂²L/∂φ²‖

Each is found from Hessian-vector products (a double backward through the unrolled inner loop),
without forming the matrix, by Lanczos iteration (power iteration's Krylov space, used fully):
for a symmetric block the largest |Ritz value| → ‖A‖; for the mixed block M, Lanczos on MᵀM gives
‖M‖² (and on MMᵀ from the φ side, the same value: the two estimates are reported separately as a
check).

Inner-loop curvature. μ and L of the inner loss L_S(·, φ) in w, per task, are the smallest and
largest eigenvalues of ∇²_w L_S: the extreme Ritz values of Lanczos with full reorthogonalisation
(exact once the steps reach the dimension). Batched over tasks: the tasks' losses are independent,
so one Hessian-vector product of their sum applies every task's Hessian to its own vector.
`power_norm` (plain power iteration) stays as the simple estimate the tests compare Lanczos with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from anil.engine.batched import encode
from anil.engine.learner import MetaLearner
from anil.engine.losses import support_loss
from anil.engine.model import AnilNet
from anil.tasks import TaskBatch
from anil.testbed.lanczos import End, extremes

Vectors = list[torch.Tensor]  # one tensor per parameter
Operator = Callable[[Vectors], Vectors]

TOLERANCE = 1e-3  # Lanczos stops on a residual at most this fraction of its value (power iteration: on a change)
MAX_ITERATIONS = 100


@dataclass(frozen=True)
class Norm:
    value: float  # the operator norm estimate
    iterations: int  # iterations (products) taken
    converged: bool  # the stopping rule was met (Lanczos: the residual bound; power: the change)
    residual: float = math.nan  # Lanczos: ‖Av − θv‖ / |θ| of the reported value
    spread: float = 0.0  # over several starts: (largest - smallest) / largest


def _norm(vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum((v * v).sum() for v in vectors))  # type: ignore[arg-type]


def _random_like(shapes: Sequence[torch.Tensor], generator: torch.Generator) -> Vectors:
    vectors = [torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t) for t in shapes]
    size = _norm(vectors)
    return [v / size for v in vectors]


def power_norm(
    apply: Operator, like: Sequence[torch.Tensor], tolerance: float = TOLERANCE, max_iterations: int = MAX_ITERATIONS,
    seed: int = 0,
) -> Norm:  # fmt: skip
    """‖A‖ for a symmetric operator A on vectors shaped like `like`, by power iteration."""
    v = _random_like(like, torch.Generator().manual_seed(seed))
    estimate = 0.0
    for iteration in range(1, max_iterations + 1):
        u = apply(v)
        size = float(_norm(u))
        if size == 0.0:
            return Norm(0.0, iteration, True)
        v = [x / size for x in u]
        if iteration > 1 and abs(size - estimate) <= tolerance * size:
            return Norm(size, iteration, True)
        estimate = size
    return Norm(estimate, max_iterations, False)


def lanczos_norm(
    apply: Operator, like: Sequence[torch.Tensor], tolerance: float = TOLERANCE, max_iterations: int = MAX_ITERATIONS,
    seed: int = 0,
) -> Norm:  # fmt: skip
    """‖A‖ = max |eigenvalue| of a symmetric operator A on vectors shaped like `like`, by Lanczos with
    full reorthogonalisation (anil/testbed/lanczos.py), stopped once the residual ‖Av − θv‖ of the
    largest-magnitude Ritz value is at most `tolerance` × |θ|: then an eigenvalue of A lies that
    close to θ, whatever the iteration's step-to-step progress."""
    shapes, sizes = [t.shape for t in like], [t.numel() for t in like]

    def flat_apply(q: torch.Tensor) -> torch.Tensor:  # [1, n] -> [1, n]
        vectors = [part.view(shape) for part, shape in zip(torch.split(q[0], sizes), shapes)]
        return torch.cat([v.flatten() for v in apply(vectors)])[None]

    found = extremes(flat_apply, 1, sum(sizes), like[0], seed, End.largest, tolerance, max_iterations)
    high = bool(found.high.abs() >= found.low.abs())
    value = float((found.high if high else found.low).abs())
    residual = float(found.high_residual if high else found.low_residual)
    return Norm(value, found.steps, found.certified, residual / max(value, 1e-300))


class MetaHessian:
    """Hessian-vector products of the meta-loss of one meta-batch in (w, φ), by double backward."""

    def __init__(self, model: AnilNet, batch: TaskBatch, learner: MetaLearner):
        self.head = list(model.head)
        self.body = list(model.body.parameters())
        loss = learner.loss(model, batch).loss
        self.gradient = torch.autograd.grad(loss, [*self.head, *self.body], create_graph=True)

    def apply(self, v_head: Vectors | None, v_body: Vectors | None) -> tuple[Vectors, Vectors]:
        """H [v_w; v_φ] split into its w and φ parts (None: that part of the vector is zero)."""
        head = self.gradient[: len(self.head)] if v_head is not None else []
        body = self.gradient[len(self.head) :] if v_body is not None else []
        along = torch.stack([(g * v).sum() for g, v in zip([*head, *body], [*(v_head or []), *(v_body or [])])]).sum()
        parts = torch.autograd.grad(along, [*self.head, *self.body], retain_graph=True, allow_unused=True)
        full = [torch.zeros_like(p) if d is None else d for p, d in zip([*self.head, *self.body], parts)]
        return full[: len(self.head)], full[len(self.head) :]


@dataclass(frozen=True)
class BlockNorms:
    ww: Norm  # ‖∂²L/∂w²‖
    wphi: Norm  # ‖∂²L/∂φ∂w‖ from the w side (power iteration on MᵀM)
    phiw: Norm  # the same block from the φ side (on MMᵀ)
    phiphi: Norm  # ‖∂²L/∂φ²‖

    def as_dict(self) -> dict[str, float | int | bool]:
        out: dict[str, float | int | bool] = {}
        for name in ("ww", "wphi", "phiw", "phiphi"):
            norm: Norm = getattr(self, name)
            out[f"L_{name}"], out[f"iterations_{name}"], out[f"converged_{name}"] = (
                norm.value, norm.iterations, norm.converged
            )  # fmt: skip
            out[f"residual_{name}"], out[f"spread_{name}"] = norm.residual, norm.spread
        return out


def _sqrt(norm: Norm) -> Norm:
    return Norm(norm.value**0.5, norm.iterations, norm.converged, norm.residual, norm.spread)


def _over_starts(
    apply: Operator, like: Sequence[torch.Tensor], tolerance: float, max_iterations: int, starts: int
) -> Norm:
    """The largest estimate over `starts` Lanczos starts (a start nearly orthogonal to the top
    eigenvector underestimates), with their spread."""
    found = [lanczos_norm(apply, like, tolerance, max_iterations, seed) for seed in range(starts)]
    best = max(found, key=lambda norm: norm.value)
    spread = (best.value - min(n.value for n in found)) / max(best.value, 1e-300)
    return Norm(best.value, max(n.iterations for n in found), all(n.converged for n in found), best.residual, spread)


def block_norms(
    hessian: MetaHessian, tolerance: float = TOLERANCE, max_iterations: int = MAX_ITERATIONS, starts: int = 1
) -> BlockNorms:
    """The four operator norms of Propositions 2-3 at the model's current parameters."""
    head, body = hessian.head, hessian.body

    def ww(v: Vectors) -> Vectors:
        return hessian.apply(v, None)[0]

    def phiphi(v: Vectors) -> Vectors:
        return hessian.apply(None, v)[1]

    def mtm(v: Vectors) -> Vectors:  # Mᵀ M v_w, with M v_w the φ part of H [v_w; 0]
        return hessian.apply(None, hessian.apply(v, None)[1])[0]

    def mmt(v: Vectors) -> Vectors:  # M Mᵀ v_φ
        return hessian.apply(hessian.apply(None, v)[0], None)[1]

    # For the mixed block the tolerance applies to ‖M‖², so ‖M‖ itself meets half of it.
    return BlockNorms(
        ww=_over_starts(ww, head, tolerance, max_iterations, starts),
        wphi=_sqrt(_over_starts(mtm, head, tolerance, max_iterations, starts)),
        phiw=_sqrt(_over_starts(mmt, body, tolerance, max_iterations, starts)),
        phiphi=_over_starts(phiphi, body, tolerance, max_iterations, starts),
    )


@dataclass(frozen=True)
class InnerCurvature:
    mu: torch.Tensor  # [B] smallest eigenvalue of ∇²_w L_S per task
    L: torch.Tensor  # [B] largest eigenvalue per task
    steps: int  # Lanczos steps taken (= n_w: the values are exact up to rounding)


LANCZOS_STEPS = 200  # Krylov dimension: the extreme eigenvalues converge long before n_w steps


def inner_curvature(
    model: AnilNet, batch: TaskBatch, lam: float, dtype: torch.dtype, steps: int = LANCZOS_STEPS, seed: int = 0
) -> InnerCurvature:
    """μ and L of each task's inner loss at the current head w (the meta-initialisation), by Lanczos
    with full reorthogonalisation on the tasks' Hessian-vector products, all tasks at once."""
    with torch.no_grad():
        support, _ = encode(model, batch, dtype)  # [B, ways*k, d]: the features stay fixed in w
    labels = batch.support_labels()
    heads = [p.detach().unsqueeze(0).expand(batch.tasks, *p.shape).clone().requires_grad_(True) for p in model.head]
    gradient = torch.autograd.grad(support_loss(heads, support, labels, lam).sum(), heads, create_graph=True)
    sizes = [h[0].numel() for h in heads]

    def hessian(v: torch.Tensor) -> torch.Tensor:  # [B, n_w] -> [B, n_w], each task's own Hessian
        parts = [x.view_as(h) for x, h in zip(torch.split(v, sizes, dim=1), heads)]
        along = torch.stack([(g * u).sum() for g, u in zip(gradient, parts)]).sum()
        return torch.cat([d.flatten(1) for d in torch.autograd.grad(along, heads, retain_graph=True)], dim=1)

    n = sum(sizes)
    eigenvalues, taken = lanczos(hessian, batch.tasks, n, min(steps, n), heads[0], seed)
    return InnerCurvature(mu=eigenvalues.min(1).values, L=eigenvalues.max(1).values, steps=taken)


def lanczos(
    apply: Callable[[torch.Tensor], torch.Tensor], tasks: int, n: int, steps: int, like: torch.Tensor, seed: int
) -> tuple[torch.Tensor, int]:
    """Ritz values [tasks, steps] of a batch of symmetric operators on R^n (Lanczos, full
    reorthogonalisation, so that they stay within each operator's spectrum and the extreme ones
    converge fast; with steps = n they are the eigenvalues)."""
    generator = torch.Generator().manual_seed(seed)

    def fresh(basis: list[torch.Tensor]) -> torch.Tensor:
        q = torch.randn(tasks, n, generator=generator, dtype=torch.float64).to(like)
        q = _orthogonalise(q, basis)
        return q / q.norm(dim=1, keepdim=True)

    basis: list[torch.Tensor] = []
    alphas: list[torch.Tensor] = []
    betas: list[torch.Tensor] = []
    q, previous = fresh([]), torch.zeros(tasks, n, dtype=like.dtype, device=like.device)
    beta = torch.zeros(tasks, dtype=like.dtype, device=like.device)
    scale = torch.zeros(tasks, dtype=like.dtype, device=like.device)  # the largest |entry| of T so far
    for step in range(steps):
        basis.append(q)
        w = apply(q)
        alpha = (w * q).sum(1)
        w = _orthogonalise(w - alpha[:, None] * q - beta[:, None] * previous, basis)
        alphas.append(alpha)
        if step == steps - 1 or len(basis) == n:  # the Krylov space is the whole space
            break
        beta = w.norm(dim=1)
        scale = torch.maximum(scale, torch.maximum(alpha.abs(), beta))
        # A task whose Krylov space closed (beta ~ 0 against the operator's scale) restarts from a
        # fresh orthogonal vector; its tridiagonal matrix then splits into blocks, each still a
        # projection of its operator.
        closed = beta <= 1e-10 * scale
        next_q = w / beta.clamp_min(1e-300)[:, None]
        if bool(closed.any()):
            next_q = torch.where(closed[:, None], fresh(basis), next_q)
            beta = torch.where(closed, torch.zeros_like(beta), beta)
        betas.append(beta)
        previous, q = q, next_q
    k = len(alphas)
    tridiagonal = torch.diag_embed(torch.stack(alphas, 1))
    if k > 1:
        off = torch.stack(betas[: k - 1], 1)
        tridiagonal = tridiagonal + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    if not bool(torch.isfinite(tridiagonal).all()):
        raise FloatingPointError("the inner loss's Hessian has non-finite entries: the model has blown up")
    return torch.linalg.eigvalsh(tridiagonal.detach()), k


def _orthogonalise(w: torch.Tensor, basis: list[torch.Tensor]) -> torch.Tensor:
    """w minus its components along the (orthonormal) basis vectors, per task; twice, for rounding."""
    if not basis:
        return w
    stacked = torch.stack(basis, 1)  # [tasks, k, n]
    for _ in range(2):
        w = w - torch.einsum("bkn,bk->bn", stacked, torch.einsum("bkn,bn->bk", stacked, w))
    return w
