"""One meta-iteration's gradient computation, apart from the loop that runs it: the part a CUDA
graph may capture (anil/run/graphs.py) and the loop's meta_step calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from anil.engine.opcount import OpCounts
from anil.tasks import TaskBatch

if TYPE_CHECKING:
    from anil.run.setup import Setup


def squared_norm(params: Any) -> torch.Tensor:
    return torch.stack([p.grad.pow(2).sum() for p in params if p.grad is not None]).sum()


def meta_gradients(setup: Setup, batch: TaskBatch, counts: OpCounts) -> torch.Tensor:
    """The meta-gradient of one meta-batch into the parameters' .grad (Algorithm 1, lines 3-9),
    and its metrics as one tensor, [6] in STEP_METRICS order: loss, accuracy, squared gradient
    norms of w and phi, support loss before and after adaptation. No host sync: a CUDA graph can
    capture it (anil/run/graphs.py)."""
    model, world = setup.model, setup.world
    setup.optimizer.zero_grad(set_to_none=True)
    # In pieces of task_chunk tasks, each backward freeing its graph before the next is built: the
    # meta-loss is a mean over tasks, so the weighted pieces sum to the same meta-gradient, with the
    # memory of a piece instead of the whole meta-batch (the paper's miniImageNet B = 32 on 16 GB).
    chunk = setup.task_chunk or batch.tasks
    parts = []
    for start in range(0, batch.tasks, chunk):
        piece = batch.select(start, min(start + chunk, batch.tasks))
        out = setup.learner.loss(model, piece, counts)
        weight = piece.tasks / batch.tasks
        (out.loss * weight).backward()
        parts.append(weight * torch.stack([out.loss.detach(), out.accuracy, out.support_before, out.support_after]))
    world.average_gradients(list(model.parameters()))
    norms = [squared_norm(model.head.parameters()), squared_norm(model.body.parameters())]
    scalars = world.average(torch.stack(parts).sum(0))
    loss, accuracy, before, after = scalars
    return torch.stack([loss, accuracy, *norms, before, after])
