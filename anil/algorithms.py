"""The two meta-learners behind `algorithm=`: ANIL (batched engine, anil/meta.py) and MAML
(anil/maml.py). Training, validation and `anil eval` go through these two functions."""

from __future__ import annotations

import torch

from anil.data.sampler import TaskBatch
from anil.maml import maml_evaluate_tasks, maml_forward
from anil.meta import BodyPass, InnerLoop, MetaOutput, evaluate_tasks, meta_forward
from anil.model import AnilNet
from anil.opcount import NoCounts, OpCounts


def meta_loss(
    algorithm: str, model: AnilNet, batch: TaskBatch, inner: InnerLoop, dtype: torch.dtype, body: BodyPass,
    counts: OpCounts = NoCounts(),
) -> MetaOutput:
    """The meta-loss of one meta-batch with its graph: backward() gives the meta-gradient."""
    if algorithm == "maml":
        return maml_forward(model, batch, inner, dtype, counts)
    return meta_forward(model, batch, inner, dtype, body, counts)


def score_tasks(
    algorithm: str, model: AnilNet, batches: list[TaskBatch], inner: InnerLoop, dtype: torch.dtype, body: BodyPass
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task query loss and accuracy after adapting on each task's support set, [tasks] each."""
    if algorithm == "maml":
        return maml_evaluate_tasks(model, batches, inner, dtype)
    return evaluate_tasks(model, batches, inner, dtype, body)


def score(
    algorithm: str, model: AnilNet, batches: list[TaskBatch], inner: InnerLoop, dtype: torch.dtype, body: BodyPass
) -> tuple[float, float]:
    """Mean query loss and accuracy over the tasks of `batches`."""
    losses, accuracies = score_tasks(algorithm, model, batches, inner, dtype, body)
    return losses.double().mean().item(), accuracies.mean().item()
