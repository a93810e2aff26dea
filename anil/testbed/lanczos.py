"""Lanczos with a residual bound: the extreme eigenvalues of a batch of symmetric operators,
stopped when each is certified rather than when it stops moving.

For a Ritz pair (θ, Qy) of the k-step tridiagonal matrix T_k, the residual of the operator A is
‖A Qy − θ Qy‖ = β_k |y_k| (the last entry of y times the next off-diagonal), so it costs nothing
to read; a symmetric A then has an eigenvalue within that residual of θ. The iteration stops once
the residuals of both extreme Ritz values are at most `tolerance` × |θ| for every operator of the
batch. Full reorthogonalisation keeps the Ritz values inside the spectrum. Several starts (seeds)
guard against a start nearly orthogonal to the extreme eigenvectors; the caller takes the
extremes over them and reports their spread.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import torch

TOLERANCE = 1e-3  # residual at most this fraction of |θ|: θ is then within 0.1% of an eigenvalue
STEPS = 200


class End(enum.Enum):
    """Which extreme Ritz values must be certified: both (μ and L), the highest (a Gram operator
    MᵀM, whose norm is its top), or the largest in magnitude (a symmetric block's norm)."""

    both = "both"
    high = "high"
    largest = "largest"


@dataclass(frozen=True)
class Extremes:
    """Per operator [batch]: the smallest and largest Ritz values and their residuals."""

    low: torch.Tensor
    high: torch.Tensor
    low_residual: torch.Tensor
    high_residual: torch.Tensor
    steps: int
    certified: bool  # every residual met the tolerance


def extremes(
    apply: Callable[[torch.Tensor], torch.Tensor],
    batch: int,
    n: int,
    like: torch.Tensor,
    seed: int = 0,
    ends: End = End.both,
    tolerance: float = TOLERANCE,
    steps: int = STEPS,
) -> Extremes:
    """`apply` maps [batch, n] to [batch, n], one symmetric operator per row; `ends` says which
    Ritz values must meet the residual bound before it stops."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, n, generator=generator, dtype=torch.float64).to(like)
    q = q / q.norm(dim=1, keepdim=True)
    basis: list[torch.Tensor] = [q]
    alphas: list[torch.Tensor] = []
    betas: list[torch.Tensor] = []
    previous = torch.zeros_like(q)
    beta = torch.zeros(batch, dtype=like.dtype, device=like.device)
    for step in range(min(steps, n)):
        w = apply(q)
        alpha = (w * q).sum(1)
        w = w - alpha[:, None] * q - beta[:, None] * previous
        stacked = torch.stack(basis, 1)  # [batch, k, n]
        for _ in range(2):  # full reorthogonalisation, twice for rounding
            w = w - torch.einsum("bkn,bk->bn", stacked, torch.einsum("bkn,bn->bk", stacked, w))
        alphas.append(alpha)
        beta = w.norm(dim=1)
        result = _ritz(alphas, betas, beta, step + 1)
        if bool(result.certified(tolerance, ends)) or step + 1 == min(steps, n):
            return result.extremes(tolerance, ends)
        betas.append(beta)
        previous, q = q, w / beta.clamp_min(1e-300)[:, None]
        basis.append(q)
    raise AssertionError("unreachable: the loop returns at its last step")


@dataclass(frozen=True)
class _Ritz:
    values: torch.Tensor  # [batch, k]
    residuals: torch.Tensor  # [batch, k]
    steps: int

    def certified(self, tolerance: float, ends: End) -> torch.Tensor:
        values, residuals = self.values[:, [0, -1]], self.residuals[:, [0, -1]]
        met = residuals <= tolerance * values.abs().clamp_min(1e-300)  # [batch, 2]: low, high
        if ends == End.both:
            return met.all()
        if ends == End.high:
            return met[:, 1].all()
        return torch.where(values[:, 1].abs() >= values[:, 0].abs(), met[:, 1], met[:, 0]).all()

    def extremes(self, tolerance: float, ends: End) -> Extremes:
        return Extremes(
            self.values[:, 0], self.values[:, -1], self.residuals[:, 0], self.residuals[:, -1],
            self.steps, bool(self.certified(tolerance, ends)),
        )  # fmt: skip


def _ritz(alphas: list[torch.Tensor], betas: list[torch.Tensor], next_beta: torch.Tensor, k: int) -> _Ritz:
    """The Ritz values of T_k and their residuals β_k |y_k|."""
    tridiagonal = torch.diag_embed(torch.stack(alphas, 1))
    if k > 1:
        off = torch.stack(betas, 1)
        tridiagonal = tridiagonal + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    values, vectors = torch.linalg.eigh(tridiagonal.detach())
    residuals = next_beta.detach()[:, None] * vectors[:, -1, :].abs()  # [batch, k]
    return _Ritz(values, residuals, k)
