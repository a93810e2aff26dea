"""Few-shot task types shared by the data layer (which draws tasks) and the engine (which learns
from them). Neither layer imports the other; both import this module.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class TaskBatch:
    """B tasks; images grouped by class: the first `shots` of each class are the support set."""

    images: torch.Tensor  # uint8 [B, ways, shots + query, ch, S, S]
    shots: int

    @property
    def tasks(self) -> int:
        return self.images.shape[0]

    @property
    def ways(self) -> int:
        return self.images.shape[1]

    @property
    def query(self) -> int:
        return self.images.shape[2] - self.shots

    def support_labels(self) -> torch.Tensor:
        """[ways*shots]: the label of each support position (class-major)."""
        return class_labels(self.ways, self.shots, self.images.device)

    def query_labels(self) -> torch.Tensor:
        """[ways*query]: the label of each query position (class-major)."""
        return class_labels(self.ways, self.query, self.images.device)

    def select(self, start: int, stop: int) -> TaskBatch:
        """Tasks [start, stop) of this batch (a view, no copy)."""
        return TaskBatch(self.images[start:stop], self.shots)

    def to(self, device: torch.device) -> TaskBatch:
        return TaskBatch(self.images.to(device), self.shots)


@dataclass(frozen=True)
class InnerLoop:
    """The task-specific adaptation: N gradient steps of size alpha on the support loss."""

    steps: int  # N
    stepsize: float  # alpha (already divided by N under alpha_schedule=inverse_n)
    lam: float  # (lam/2)||w||^2 added to the support loss
    first_order: bool  # drop the second-order terms of Proposition 1

    def without_meta_graph(self) -> InnerLoop:
        """The same adaptation with nothing kept for a meta-gradient (scoring, evaluation)."""
        return replace(self, first_order=True)


def class_labels(ways: int, per_class: int, device: torch.device | str) -> torch.Tensor:
    """[ways*per_class]: the label of each position in a class-major task."""
    return torch.arange(ways, device=device).repeat_interleave(per_class)
