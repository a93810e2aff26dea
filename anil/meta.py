"""ANIL's inner loop, meta-loss and meta-gradient (Algorithm 1), batched over tasks.

The batched engine runs the body once over the whole meta-batch and the head's N-step inner loop
for all B tasks at once: the head parameters get a leading task dimension, and every inner step
is a few batched matmuls. Backprop through the unrolled loop (create_graph=True) gives the exact
meta-gradient of Proposition 1; `first_order` drops its second-order terms.

`reference_meta_loss` is the plain per-task loop that the well-known libraries run; it is kept as
the ground truth the batched engine is tested against, and as the baseline it is benchmarked
against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from anil.data.sampler import TaskBatch
from anil.model import AnilNet, head_logits
from anil.opcount import NoCounts, OpCounts, alias


@dataclass(frozen=True)
class InnerLoop:
    steps: int  # N
    stepsize: float  # alpha (already divided by N under alpha_schedule=inverse_n)
    lam: float  # (lam/2)||w||^2 added to the support loss
    first_order: bool


@dataclass(frozen=True)
class MetaOutput:
    loss: torch.Tensor  # scalar: mean query loss at the adapted heads (carries the meta-graph)
    accuracy: torch.Tensor  # scalar: mean query accuracy
    support_before: torch.Tensor  # scalar: mean inner loss at w_0
    support_after: torch.Tensor  # scalar: mean inner loss at w_N


def task_minor_images(batch: TaskBatch, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [B, ways, k+q, ch, S, S] -> float [ways*(k+q)*B, ch, S, S] in task-minor order, in [0, 1]."""
    images = batch.images.permute(1, 2, 0, 3, 4, 5)  # [ways, k+q, B, ch, S, S]
    return images.reshape(-1, *images.shape[3:]).to(dtype) / 255.0


def split_features(features: torch.Tensor, batch: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """[ways*(k+q)*B, d] (task-minor) -> support [B, ways*k, d], query [B, ways*q, d], class-major."""
    B, ways, k = batch.tasks, batch.ways, batch.shots
    features = features.reshape(ways, -1, B, features.shape[-1]).permute(2, 0, 1, 3)  # [B, ways, k+q, d]
    support = features[:, :, :k].reshape(B, ways * k, -1)
    query = features[:, :, k:].reshape(B, ways * batch.query, -1)
    return support, query


CPU_CHUNK_PIXELS = 100 * 32 * 32  # image pixels per body call on a CPU


@dataclass(frozen=True)
class BodyPass:
    """How the body runs over a meta-batch."""

    chunk_tasks: int = 0  # tasks per body call; 0: the whole meta-batch in one call
    bf16: bool = False  # autocast the body to bfloat16 (tensor cores on a GPU; also runs on a CPU)

    @classmethod
    def auto(cls, device: torch.device, images_per_task: int, side: int, bf16: bool = False) -> "BodyPass":
        """All tasks at once on an accelerator. On a CPU, about 100 images of 32x32 per call (whole
        tasks, at least one): the activations of a whole meta-batch (hundreds of MB) fall out of
        cache and element-wise ops become memory bound; cache-sized chunks measured about 2x faster
        (docs/performance.md)."""
        if device.type != "cpu":
            return cls(0, bf16)
        return cls(max(1, CPU_CHUNK_PIXELS // (images_per_task * side * side)), bf16)


def encode(model: AnilNet, batch: TaskBatch, dtype: torch.dtype, body: BodyPass = BodyPass()) -> tuple[torch.Tensor, torch.Tensor]:
    """Body features of every task: support [B, ways*k, d], query [B, ways*q, d].

    Chunks hold whole tasks, so per-task BatchNorm statistics are the same for any chunk size.
    """
    step = body.chunk_tasks or batch.tasks
    device_type = batch.images.device.type
    parts = []
    for start in range(0, batch.tasks, step):
        chunk = TaskBatch(batch.images[start : start + step], batch.shots)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=body.bf16):
            features = model.body(task_minor_images(chunk, dtype), tasks=chunk.tasks)
        parts.append(split_features(features.to(dtype), chunk))  # the inner loop stays in `dtype`
    if len(parts) == 1:
        return parts[0]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def class_labels(ways: int, per_class: int, device: torch.device) -> torch.Tensor:
    """[ways*per_class]: the label of each position in a class-major task."""
    return torch.arange(ways, device=device).repeat_interleave(per_class)


def inner_loss(params: list[torch.Tensor], support: torch.Tensor, labels: torch.Tensor, lam: float) -> torch.Tensor:
    """Support loss per task, [B]: cross-entropy + (lam/2)||w||^2 over every head parameter."""
    logits = head_logits(params, support)  # [B, ways*k, ways]
    ce = F.cross_entropy(logits.transpose(1, 2), labels.expand(logits.shape[:2]), reduction="none").mean(1)
    if lam == 0:
        return ce
    return ce + 0.5 * lam * sum(p.pow(2).flatten(1).sum(1) for p in params)


def adapt(
    head: list[torch.Tensor], support: torch.Tensor, labels: torch.Tensor, inner: InnerLoop, counts: OpCounts = NoCounts()
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """N steps of gradient descent on each task's support loss, all tasks at once.

    head: shared initialisation w (no task dimension); support: [B, ways*k, d].
    Returns the adapted heads w_N (each with a leading task dimension) and the loss at w_0, [B].
    """
    B = support.shape[0]
    params = [p.unsqueeze(0).expand(B, *p.shape) for p in head]  # w_0 = w for every task
    before = None
    for _ in range(inner.steps):
        # Private views of w_j and of the features: only this step's gradient reaches them in the
        # meta-backward pass, so hooks on them count its second-order products (anil/opcount.py).
        w_j, features = [alias(p) for p in params], alias(support)
        losses = inner_loss(w_j, features, labels, inner.lam)  # [B]
        if before is None:
            before = losses.detach()
        # Tasks are independent, so the gradient of the summed loss is each task's own gradient.
        grads = torch.autograd.grad(losses.sum(), w_j, create_graph=not inner.first_order)
        counts.add("grad_evals_w", B)
        counts.watch(w_j[0], "second_order_w", B)
        counts.watch(features, "second_order_phi", B)
        params = [p - inner.stepsize * g for p, g in zip(params, grads)]
    return params, before


def meta_forward(
    model: AnilNet, batch: TaskBatch, inner: InnerLoop, dtype: torch.dtype, body: BodyPass = BodyPass(),
    counts: OpCounts = NoCounts(),
) -> MetaOutput:
    """Algorithm 1, lines 3-8, for the whole meta-batch: backward() on `.loss` gives the meta-gradient."""
    support, query = encode(model, batch, dtype, body)  # [B, ways*k, d], [B, ways*q, d]
    device, B = support.device, batch.tasks
    labels_s = class_labels(batch.ways, batch.shots, device)
    labels_q = class_labels(batch.ways, batch.query, device)
    # First order treats each inner gradient as a constant: nothing flows from it into phi.
    inner_support = support.detach() if inner.first_order else support
    adapted, before = adapt(list(model.head), inner_support, labels_s, inner, counts)
    w_N, query_features = [alias(p) for p in adapted], alias(query)
    counts.watch(w_N[0], "grad_evals_w", B)  # the outer gradients: grad_w L_D and grad_phi L_D at w_N
    counts.watch(query_features, "grad_evals_phi", B)
    logits = head_logits(w_N, query_features)  # [B, ways*q, ways]
    loss = F.cross_entropy(logits.transpose(1, 2), labels_q.expand(logits.shape[:2]))
    with torch.no_grad():
        accuracy = (logits.argmax(-1) == labels_q).to(dtype).mean()
        after = inner_loss([p.detach() for p in adapted], support.detach(), labels_s, inner.lam)
    return MetaOutput(loss, accuracy, before.mean(), after.mean())


@torch.no_grad()
def evaluate_tasks(
    model: AnilNet, batches: list[TaskBatch], inner: InnerLoop, dtype: torch.dtype, body: BodyPass = BodyPass()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Meta-test style: adapt the head on each task's support set, score its query set.
    Returns per-task query loss and accuracy, each [tasks] over all tasks of `batches`."""
    losses, accuracies = [], []
    fast = InnerLoop(inner.steps, inner.stepsize, inner.lam, first_order=True)  # no meta-graph needed
    for batch in batches:
        support, query = encode(model, batch, dtype, body)
        labels_s = class_labels(batch.ways, batch.shots, support.device)
        labels_q = class_labels(batch.ways, batch.query, support.device)
        head = [p.detach().requires_grad_(True) for p in model.head]
        with torch.enable_grad():
            adapted, _ = adapt(head, support, labels_s, fast)
        logits = head_logits([p.detach() for p in adapted], query)  # [B, ways*q, ways]
        per_sample = F.cross_entropy(logits.transpose(1, 2), labels_q.expand(logits.shape[:2]), reduction="none")
        losses.append(per_sample.mean(1))
        accuracies.append((logits.argmax(-1) == labels_q).double().mean(1))
    return torch.cat(losses), torch.cat(accuracies)


def reference_meta_loss(model: AnilNet, batch: TaskBatch, inner: InnerLoop, dtype: torch.dtype) -> torch.Tensor:
    """The per-task loop (as learn2learn runs it): each task through the body on its own, its own
    inner loop on unbatched parameters, its query loss; the mean over tasks. Ground truth for tests."""
    ways, k = batch.ways, batch.shots
    labels_s = torch.arange(ways, device=batch.images.device).repeat_interleave(k)
    labels_q = torch.arange(ways, device=batch.images.device).repeat_interleave(batch.query)
    total = 0.0
    for task in range(batch.tasks):
        images = batch.images[task].reshape(-1, *batch.images.shape[3:]).to(dtype) / 255.0  # [ways*(k+q), ...]
        features = model.body(images, tasks=1).reshape(ways, k + batch.query, -1)
        support = features[:, :k].reshape(ways * k, -1)
        query = features[:, k:].reshape(ways * batch.query, -1)
        if inner.first_order:
            support = support.detach()
        params = list(model.head)
        for _ in range(inner.steps):
            loss = F.cross_entropy(_reference_head(params, support), labels_s)
            loss = loss + 0.5 * inner.lam * sum(p.pow(2).sum() for p in params)
            grads = torch.autograd.grad(loss, params, create_graph=not inner.first_order)
            params = [p - inner.stepsize * g for p, g in zip(params, grads)]
        total = total + F.cross_entropy(_reference_head(params, query), labels_q)
    return total / batch.tasks


def _reference_head(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    for i in range(0, len(params), 2):
        x = F.linear(F.relu(x) if i else x, params[i], params[i + 1])
    return x
