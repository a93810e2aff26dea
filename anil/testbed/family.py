"""Gaussian class clusters: the testbed's task family, drawn from a seed, no files.

A family fixes a random `signal`-dimensional subspace U of R^dim (orthonormal columns, from the
family seed). A task draws `ways` class means m_c = U z_c, z_c ~ N(0, separation^2 I), and each
sample is x = m_c + noise * e, e ~ N(0, I_dim). What the tasks share is U: a body that learns to
project onto it removes the noise of the other dim - signal directions, which is what the outer
loop can learn; what a task owns is its means, which only the adapted head can know.

The conditioning knob is the feature scale s (the body's output is normalised to norm s, see
net.py) together with λ: with the bias input 1, the convex head's inner Hessian satisfies
λ ≤ μ and L ≤ λ + (s² + 1)/2 at every w and every body, so s and λ bound κ = L/μ whatever the
outer loop does to the body; the suite measures μ and L anyway (lanczos.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FAMILY_SEED = 2020  # fixes U and the evaluation tasks, independently of the run seeds


@dataclass(frozen=True)
class Family:
    dim: int = 32  # input dimension
    signal: int = 4  # dimension of the shared subspace the class means live in
    separation: float = 1.5  # std of the class means' coordinates in the subspace
    noise: float = 1.0  # std of the per-sample noise, in every input direction
    ways: int = 5
    shots: int = 5  # support samples per class
    query: int = 10  # query samples per class

    def subspace(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """U [dim, signal], orthonormal columns, the same for every run."""
        generator = torch.Generator().manual_seed(FAMILY_SEED)
        gaussian = torch.randn(self.dim, self.signal, generator=generator, dtype=torch.float64)
        return torch.linalg.qr(gaussian).Q.to(dtype)


@dataclass(frozen=True)
class Tasks:
    """Tasks with leading dimensions [...] (runs, tasks): inputs class-major, as in anil.tasks."""

    support: torch.Tensor  # [..., ways*shots, dim]
    query: torch.Tensor  # [..., ways*query, dim]
    support_labels: torch.Tensor  # [ways*shots]
    query_labels: torch.Tensor  # [ways*query]

    def select(self, start: int, stop: int) -> Tasks:
        """Tasks [start, stop) along the last leading dimension."""
        return Tasks(self.support[..., start:stop, :, :], self.query[..., start:stop, :, :], *self._labels())

    def _labels(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.support_labels, self.query_labels


def draw(family: Family, tasks: int, generator: torch.Generator, basis: torch.Tensor) -> Tasks:
    """`tasks` fresh tasks: support [tasks, ways*shots, dim], query [tasks, ways*query, dim]."""
    dtype = basis.dtype
    means = torch.randn(tasks, family.ways, family.signal, generator=generator, dtype=dtype) * family.separation
    centres = means @ basis.T  # [tasks, ways, dim]
    per_class = family.shots + family.query
    noise = torch.randn(tasks, family.ways, per_class, family.dim, generator=generator, dtype=dtype) * family.noise
    samples = centres[:, :, None, :] + noise  # [tasks, ways, shots + query, dim]
    support = samples[:, :, : family.shots].reshape(tasks, -1, family.dim)
    query = samples[:, :, family.shots :].reshape(tasks, -1, family.dim)
    return Tasks(support, query, *labels(family))


def labels(family: Family) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-major labels: support [ways*shots], query [ways*query]."""
    classes = torch.arange(family.ways)
    return classes.repeat_interleave(family.shots), classes.repeat_interleave(family.query)


def draw_runs(family: Family, tasks: int, generators: list[torch.Generator], basis: torch.Tensor) -> Tasks:
    """One meta-batch per run, each from its run's own generator: [runs, tasks, ...]. Runs with the
    same seed draw the same tasks, whatever else differs between them (N, α, β, κ)."""
    drawn = [draw(family, tasks, g, basis) for g in generators]
    return Tasks(torch.stack([t.support for t in drawn]), torch.stack([t.query for t in drawn]), *labels(family))


def fixed_tasks(family: Family, tasks: int, dtype: torch.dtype = torch.float64) -> Tasks:
    """The evaluation set of the full objective: the same `tasks` tasks for every run, N and seed."""
    generator = torch.Generator().manual_seed(FAMILY_SEED + 1)
    return draw(family, tasks, generator, family.subspace(dtype))
