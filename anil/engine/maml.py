"""MAML, the baseline of Table 2: the inner loop adapts every parameter (body phi and head w).

Same N, alpha, inner loss (cross-entropy + (lam/2)||w||^2 on the head) and metrics as ANIL, so the
two differ only in what the inner loop adapts. Each task runs on its own (its body parameters
differ from step to step, so the body cannot be shared across the meta-batch): support images
through the body at every inner step (BatchNorm over the support set), query images once at the
end. Exact second order by backprop through the unrolled loop; `first_order` detaches it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.func import functional_call

from anil.engine.learner import MetaOutput
from anil.engine.losses import support_loss, task_accuracy, task_cross_entropy
from anil.engine.model import AnilNet, head_logits
from anil.engine.opcount import NoCounts, OpCounts, alias
from anil.tasks import InnerLoop, TaskBatch


def task_images(batch: TaskBatch, task: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Support [ways*k, ch, S, S] and query [ways*q, ch, S, S] of one task, class-major, in [0, 1]."""
    images = batch.images[task].to(dtype) / 255.0  # [ways, k+q, ch, S, S]
    k = batch.shots
    return images[:, :k].reshape(-1, *images.shape[2:]), images[:, k:].reshape(-1, *images.shape[2:])


def _features(model: AnilNet, body: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """The body with parameters `body` (adapted ones, not the module's own) over one task: [n, d]."""
    return functional_call(model.body, body, (images,), {"tasks": 1})


def adapt_all(
    model: AnilNet, support: torch.Tensor, labels: torch.Tensor, inner: InnerLoop, counts: OpCounts | None = None
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """N gradient steps on one task's support loss in all parameters.
    Returns the adapted body, the adapted head and the support loss at the start."""
    counts = counts or NoCounts()
    body: dict[str, torch.Tensor] = dict(model.body.named_parameters())
    head: list[torch.Tensor] = list(model.head)
    before = None
    for _ in range(inner.steps):
        body_j = {name: alias(p) for name, p in body.items()}  # private views: see anil/engine/opcount.py
        head_j = [alias(p) for p in head]
        loss = support_loss(head_j, _features(model, body_j, support), labels, inner.lam)
        if before is None:
            before = loss.detach()
        grads = torch.autograd.grad(loss, [*body_j.values(), *head_j], create_graph=not inner.first_order)
        counts.add("grad_evals_w", 1)
        counts.add("grad_evals_phi", 1)
        counts.watch(head_j[0], "second_order_w", 1)
        counts.watch(next(iter(body_j.values())), "second_order_phi", 1)
        body_grads, head_grads = grads[: len(body)], grads[len(body) :]
        body = {name: p - inner.stepsize * g for (name, p), g in zip(body.items(), body_grads)}
        head = [p - inner.stepsize * g for p, g in zip(head, head_grads)]
    assert before is not None, "an inner loop has at least one step"
    return body, head, before


def maml_meta_loss(
    model: AnilNet, batch: TaskBatch, inner: InnerLoop, dtype: torch.dtype, counts: OpCounts | None = None
) -> MetaOutput:
    """The MAML meta-loss over the meta-batch (mean of the tasks' query losses), with its graph."""
    counts = counts or NoCounts()
    labels_s, labels_q = batch.support_labels(), batch.query_labels()
    losses, accuracies, befores, afters = [], [], [], []
    for task in range(batch.tasks):
        support, query = task_images(batch, task, dtype)
        body, head, before = adapt_all(model, support, labels_s, inner, counts)
        body_N, head_N = {name: alias(p) for name, p in body.items()}, [alias(p) for p in head]
        counts.watch(head_N[0], "grad_evals_w", 1)  # the outer gradients at the adapted parameters
        counts.watch(next(iter(body_N.values())), "grad_evals_phi", 1)
        logits = head_logits(head_N, _features(model, body_N, query))  # [ways*q, ways]
        losses.append(task_cross_entropy(logits, labels_q))
        with torch.no_grad():
            accuracies.append(task_accuracy(logits, labels_q, dtype))
            afters.append(support_loss(head, _features(model, body, support), labels_s, inner.lam))
        befores.append(before)
    means = [torch.stack(values).mean() for values in (losses, accuracies, befores, afters)]
    return MetaOutput(*means)


def maml_score_tasks(
    model: AnilNet, batches: Iterable[TaskBatch], inner: InnerLoop, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Meta-test style for MAML: adapt every parameter on each task's support set, score its query
    set. Returns per-task query loss and accuracy, each [tasks]."""
    fast = inner.without_meta_graph()
    losses, accuracies = [], []
    for batch in batches:
        labels_s, labels_q = batch.support_labels(), batch.query_labels()
        for task in range(batch.tasks):
            support, query = task_images(batch, task, dtype)
            with torch.enable_grad():  # the inner loop needs gradients even when scoring
                body, head, _ = adapt_all(model, support, labels_s, fast)
            with torch.no_grad():
                logits = head_logits(head, _features(model, body, query))
                losses.append(task_cross_entropy(logits, labels_q).double())
                accuracies.append(task_accuracy(logits, labels_q, torch.float64))
    return torch.stack(losses), torch.stack(accuracies)


@dataclass(frozen=True)
class Maml:
    """MAML as a meta-learner: every parameter adapts per task, each task runs on its own."""

    inner: InnerLoop
    dtype: torch.dtype

    def loss(self, model: AnilNet, batch: TaskBatch, counts: OpCounts | None = None) -> MetaOutput:
        return maml_meta_loss(model, batch, self.inner, self.dtype, counts)

    def score(self, model: AnilNet, batches: Iterable[TaskBatch]) -> tuple[torch.Tensor, torch.Tensor]:
        return maml_score_tasks(model, batches, self.inner, self.dtype)
