"""What every meta-learner (ANIL, MAML) offers the training loop, validation and `anil eval`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import torch

from anil.engine.model import AnilNet
from anil.engine.opcount import OpCounts
from anil.tasks import TaskBatch


@dataclass(frozen=True)
class MetaOutput:
    loss: torch.Tensor  # scalar: mean query loss at the adapted parameters (carries the meta-graph)
    accuracy: torch.Tensor  # scalar: mean query accuracy
    support_before: torch.Tensor  # scalar: mean inner loss before adaptation
    support_after: torch.Tensor  # scalar: mean inner loss after N steps


class MetaLearner(Protocol):
    def loss(self, model: AnilNet, batch: TaskBatch, counts: OpCounts | None = None) -> MetaOutput:
        """The meta-loss of one meta-batch with its graph: backward() gives the meta-gradient.
        `counts`, when given, records the gradient evaluations and second-order products."""
        ...

    def score(self, model: AnilNet, batches: Iterable[TaskBatch]) -> tuple[torch.Tensor, torch.Tensor]:
        """Adapt on each task's support set, score its query set: per-task query loss and
        accuracy over all tasks of `batches`, [tasks] each (no meta-graph)."""
        ...
