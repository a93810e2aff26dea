"""MAML, the baseline of Table 2: the inner loop adapts every parameter (body phi and head w).

Same N, alpha, inner loss (cross-entropy + (lam/2)||w||^2 on the head) and metrics as ANIL, so the
two differ only in what the inner loop adapts. Each task runs on its own (its body parameters
differ from step to step, so the body cannot be shared across the meta-batch): support images
through the body at every inner step (BatchNorm over the support set), query images once at the
end. Exact second order by backprop through the unrolled loop; `first_order` detaches it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from anil.data.sampler import TaskBatch
from anil.meta import InnerLoop, MetaOutput, class_labels
from anil.model import AnilNet, head_logits
from anil.opcount import NoCounts, OpCounts, alias


def task_images(batch: TaskBatch, task: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Support [ways*k, ch, S, S] and query [ways*q, ch, S, S] of one task, class-major, in [0, 1]."""
    images = batch.images[task].to(dtype) / 255.0  # [ways, k+q, ch, S, S]
    k = batch.shots
    return images[:, :k].reshape(-1, *images.shape[2:]), images[:, k:].reshape(-1, *images.shape[2:])


def _logits(model: AnilNet, body: dict[str, torch.Tensor], head: list[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    features = functional_call(model.body, body, (images,), {"tasks": 1})  # [n, d]
    return head_logits(head, features)  # [n, ways]


def _support_loss(
    model: AnilNet, body: dict[str, torch.Tensor], head: list[torch.Tensor], support: torch.Tensor, labels: torch.Tensor, lam: float
) -> torch.Tensor:
    """One task's inner loss: cross-entropy on the support set + (lam/2)||w||^2 on the head."""
    return F.cross_entropy(_logits(model, body, head, support), labels) + 0.5 * lam * sum(p.pow(2).sum() for p in head)


def adapt_all(
    model: AnilNet, support: torch.Tensor, labels: torch.Tensor, inner: InnerLoop, counts: OpCounts = NoCounts()
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """N gradient steps on one task's support loss in all parameters.
    Returns the adapted body, the adapted head and the support loss at the start."""
    body = dict(model.body.named_parameters())
    head = list(model.head)
    before = None
    for _ in range(inner.steps):
        body_j = {name: alias(p) for name, p in body.items()}  # private views: see anil/opcount.py
        head_j = [alias(p) for p in head]
        loss = _support_loss(model, body_j, head_j, support, labels, inner.lam)
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
    return body, head, before


def maml_forward(
    model: AnilNet, batch: TaskBatch, inner: InnerLoop, dtype: torch.dtype, counts: OpCounts = NoCounts()
) -> MetaOutput:
    """The MAML meta-loss over the meta-batch (mean of the tasks' query losses), with its graph."""
    device = batch.images.device
    labels_s = class_labels(batch.ways, batch.shots, device)
    labels_q = class_labels(batch.ways, batch.query, device)
    losses, accuracies, befores, afters = [], [], [], []
    for task in range(batch.tasks):
        support, query = task_images(batch, task, dtype)
        body, head, before = adapt_all(model, support, labels_s, inner, counts)
        body_N, head_N = {name: alias(p) for name, p in body.items()}, [alias(p) for p in head]
        counts.watch(head_N[0], "grad_evals_w", 1)  # the outer gradients at the adapted parameters
        counts.watch(next(iter(body_N.values())), "grad_evals_phi", 1)
        logits = _logits(model, body_N, head_N, query)
        losses.append(F.cross_entropy(logits, labels_q))
        with torch.no_grad():
            accuracies.append((logits.argmax(-1) == labels_q).to(dtype).mean())
            afters.append(_support_loss(model, body, head, support, labels_s, inner.lam))
        befores.append(before)
    means = [torch.stack(values).mean() for values in (losses, accuracies, befores, afters)]
    return MetaOutput(*means)


def maml_evaluate_tasks(
    model: AnilNet, batches: list[TaskBatch], inner: InnerLoop, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Meta-test style for MAML: adapt every parameter on each task's support set, score its query
    set. Returns per-task query loss and accuracy, each [tasks]."""
    fast = InnerLoop(inner.steps, inner.stepsize, inner.lam, first_order=True)  # no meta-graph needed
    losses, accuracies = [], []
    for batch in batches:
        device = batch.images.device
        labels_s = class_labels(batch.ways, batch.shots, device)
        labels_q = class_labels(batch.ways, batch.query, device)
        for task in range(batch.tasks):
            support, query = task_images(batch, task, dtype)
            with torch.enable_grad():  # the inner loop needs gradients even when scoring
                body, head, _ = adapt_all(model, support, labels_s, fast)
            with torch.no_grad():
                logits = _logits(model, body, head, query)
                losses.append(F.cross_entropy(logits, labels_q).double())
                accuracies.append((logits.argmax(-1) == labels_q).double().mean())
    return torch.stack(losses), torch.stack(accuracies)
