"""ANIL's inner loop, meta-loss and meta-gradient (Algorithm 1), batched over tasks.

The batched engine runs the body once over the whole meta-batch and the head's N-step inner loop
for all B tasks at once: the head parameters get a leading task dimension, and every inner step
is a few batched matmuls. Backprop through the unrolled loop (create_graph=True) gives the exact
meta-gradient of Proposition 1; `first_order` drops its second-order terms.

`anil_reference_meta_loss` is the plain per-task loop that the well-known libraries run; it is
kept as the ground truth the batched engine is tested against, and as the baseline it is
benchmarked against.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from anil.engine.learner import MetaOutput
from anil.engine.losses import support_loss, task_accuracy, task_cross_entropy
from anil.engine.model import AnilNet, head_logits
from anil.engine.opcount import NoCounts, OpCounts, alias
from anil.tasks import InnerLoop, TaskBatch


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


CPU_CHUNK_VALUES = 2 * 50 * 28 * 28  # image values (channels x pixels) per body call on a CPU


@dataclass(frozen=True)
class BodyPass:
    """How ANIL runs the body over a meta-batch (MAML runs it per task and has no such choice)."""

    chunk_tasks: int = 0  # tasks per body call; 0: the whole meta-batch in one call
    bf16: bool = False  # autocast the body to bfloat16 (tensor cores on a GPU; also runs on a CPU)

    @classmethod
    def auto(cls, device: torch.device, images_per_task: int, shape: tuple[int, int], bf16: bool = False) -> BodyPass:
        """All tasks at once on an accelerator. On a CPU, whole tasks (at least one) up to about
        78,000 image values per call: the activations of a whole meta-batch (hundreds of MB) fall
        out of cache and element-wise ops become memory bound. `shape`: (channels, side). With the
        channels-last body, side-by-side timings of 1, 2, 4 and 8 tasks per call (5-way 5+5, 2
        threads) found one task fastest at 3x32x32 (B = 32, N = 7: 0.99, 1.13, 1.57, 1.60 s) and
        two at 1x28x28 (B = 8, N = 5: 0.32, 0.22, 0.28, 0.31 s), which this budget gives."""
        if device.type != "cpu":
            return cls(0, bf16)
        channels, side = shape
        return cls(max(1, CPU_CHUNK_VALUES // (images_per_task * channels * side * side)), bf16)


def encode(
    model: AnilNet, batch: TaskBatch, dtype: torch.dtype, body: BodyPass = BodyPass()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Body features of every task: support [B, ways*k, d], query [B, ways*q, d].

    Chunks hold whole tasks, so per-task BatchNorm statistics are the same for any chunk size.
    """
    step = body.chunk_tasks or batch.tasks
    device_type = batch.images.device.type
    parts = []
    for start in range(0, batch.tasks, step):
        chunk = batch.select(start, start + step)
        # No cast cache: a CUDA graph capturing this (cuda_graphs=true) must recompute the casts on replay.
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=body.bf16, cache_enabled=False):
            features = model.body(task_minor_images(chunk, dtype), tasks=chunk.tasks)
        parts.append(split_features(features.to(dtype), chunk))  # the inner loop stays in `dtype`
    if len(parts) == 1:
        return parts[0]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def adapt(
    head: list[torch.Tensor],
    support: torch.Tensor,
    labels: torch.Tensor,
    inner: InnerLoop,
    counts: OpCounts | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """N steps of gradient descent on each task's support loss, all tasks at once.

    head: shared initialisation w (no task dimension); support: [B, ways*k, d].
    Returns the adapted heads w_N (each with a leading task dimension) and the loss at w_0, [B].
    """
    counts = counts or NoCounts()
    B = support.shape[0]
    params = [p.unsqueeze(0).expand(B, *p.shape) for p in head]  # w_0 = w for every task
    before = None
    for _ in range(inner.steps):
        # Private views of w_j and of the features: only this step's gradient reaches them in the
        # meta-backward pass, so hooks on them count its second-order products (anil/engine/opcount.py).
        w_j, features = [alias(p) for p in params], alias(support)
        losses = support_loss(w_j, features, labels, inner.lam)  # [B]
        if before is None:
            before = losses.detach()
        # Tasks are independent, so the gradient of the summed loss is each task's own gradient.
        grads = torch.autograd.grad(losses.sum(), w_j, create_graph=not inner.first_order)
        counts.add("grad_evals_w", B)
        counts.watch(w_j[0], "second_order_w", B)
        counts.watch(features, "second_order_phi", B)
        params = [p - inner.stepsize * g for p, g in zip(params, grads)]
    assert before is not None, "an inner loop has at least one step"
    return params, before


def anil_meta_loss(
    model: AnilNet,
    batch: TaskBatch,
    inner: InnerLoop,
    dtype: torch.dtype,
    body: BodyPass = BodyPass(),
    counts: OpCounts | None = None,
) -> MetaOutput:
    """Algorithm 1, lines 3-8, for the whole meta-batch: backward() on `.loss` gives the meta-gradient."""
    counts = counts or NoCounts()
    support, query = encode(model, batch, dtype, body)  # [B, ways*k, d], [B, ways*q, d]
    labels_s, labels_q = batch.support_labels(), batch.query_labels()
    # First order treats each inner gradient as a constant: nothing flows from it into phi.
    inner_support = support.detach() if inner.first_order else support
    adapted, before = adapt(list(model.head), inner_support, labels_s, inner, counts)
    w_N, query_features = [alias(p) for p in adapted], alias(query)
    counts.watch(w_N[0], "grad_evals_w", batch.tasks)  # the outer gradients: grad_w L_D and grad_phi L_D at w_N
    counts.watch(query_features, "grad_evals_phi", batch.tasks)
    logits = head_logits(w_N, query_features)  # [B, ways*q, ways]
    loss = task_cross_entropy(logits, labels_q).mean()
    with torch.no_grad():
        accuracy = task_accuracy(logits, labels_q, dtype).mean()
        after = support_loss([p.detach() for p in adapted], support.detach(), labels_s, inner.lam)
    return MetaOutput(loss, accuracy, before.mean(), after.mean())


@torch.no_grad()
def anil_score_tasks(
    model: AnilNet, batches: Iterable[TaskBatch], inner: InnerLoop, dtype: torch.dtype, body: BodyPass = BodyPass()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Meta-test style: adapt the head on each task's support set, score its query set.
    Returns per-task query loss and accuracy, each [tasks] over all tasks of `batches`."""
    losses, accuracies = [], []
    for batch in batches:
        support, query = encode(model, batch, dtype, body)
        head = [p.detach().requires_grad_(True) for p in model.head]
        with torch.enable_grad():
            adapted, _ = adapt(head, support, batch.support_labels(), inner.without_meta_graph())
        logits = head_logits([p.detach() for p in adapted], query)  # [B, ways*q, ways]
        losses.append(task_cross_entropy(logits, batch.query_labels()))
        accuracies.append(task_accuracy(logits, batch.query_labels(), torch.float64))
    return torch.cat(losses), torch.cat(accuracies)


def anil_per_task_meta_loss(
    model: AnilNet, batch: TaskBatch, inner: InnerLoop, dtype: torch.dtype, counts: OpCounts | None = None
) -> MetaOutput:
    """The per-task loop (as learn2learn and the paper's code run it): each task through the body on
    its own, its own inner loop on unbatched parameters, its query loss; the mean over tasks. The
    ground truth the batched engine is tested against, and `engine=per_task`'s meta-loss."""
    counts = counts or NoCounts()
    ways, k = batch.ways, batch.shots
    labels_s, labels_q = batch.support_labels(), batch.query_labels()
    losses, accuracies, befores, afters = [], [], [], []
    for task in range(batch.tasks):
        images = batch.images[task].reshape(-1, *batch.images.shape[3:]).to(dtype) / 255.0  # [ways*(k+q), ...]
        features = model.body(images, tasks=1).reshape(ways, k + batch.query, -1)
        support = features[:, :k].reshape(ways * k, -1)  # [ways*k, d]
        query = features[:, k:].reshape(ways * batch.query, -1)  # [ways*q, d]
        if inner.first_order:
            support = support.detach()
        params = list(model.head)
        for step in range(inner.steps):
            w_j, at = [alias(p) for p in params], alias(support)  # private views, as in adapt()
            loss = support_loss(w_j, at, labels_s, inner.lam)  # scalar: one task, unbatched
            if step == 0:
                befores.append(loss.detach())
            grads = torch.autograd.grad(loss, w_j, create_graph=not inner.first_order)
            counts.add("grad_evals_w", 1)
            counts.watch(w_j[0], "second_order_w", 1)
            counts.watch(at, "second_order_phi", 1)
            params = [p - inner.stepsize * g for p, g in zip(params, grads)]
        w_N, query_features = [alias(p) for p in params], alias(query)
        counts.watch(w_N[0], "grad_evals_w", 1)
        counts.watch(query_features, "grad_evals_phi", 1)
        logits = head_logits(w_N, query_features)  # [ways*q, ways]
        losses.append(task_cross_entropy(logits, labels_q))
        with torch.no_grad():
            accuracies.append(task_accuracy(logits, labels_q, dtype))
            afters.append(support_loss([p.detach() for p in params], support.detach(), labels_s, inner.lam))
    means = [torch.stack(values).mean() for values in (losses, accuracies, befores, afters)]
    return MetaOutput(*means)


def anil_reference_meta_loss(model: AnilNet, batch: TaskBatch, inner: InnerLoop, dtype: torch.dtype) -> torch.Tensor:
    """The per-task loop's meta-loss alone (tests and benchmarks compare against it)."""
    return anil_per_task_meta_loss(model, batch, inner, dtype).loss


@dataclass(frozen=True)
class AnilPerTask:
    """ANIL run task by task (`engine=per_task`): the cost model of learn2learn and the paper's code,
    for timing the figure sweeps against the batched engine. Same meta-loss, same meta-gradient."""

    inner: InnerLoop
    dtype: torch.dtype

    def loss(self, model: AnilNet, batch: TaskBatch, counts: OpCounts | None = None) -> MetaOutput:
        return anil_per_task_meta_loss(model, batch, self.inner, self.dtype, counts)

    def score(self, model: AnilNet, batches: Iterable[TaskBatch]) -> tuple[torch.Tensor, torch.Tensor]:
        return anil_score_tasks(model, batches, self.inner, self.dtype, BodyPass(chunk_tasks=1))


@dataclass(frozen=True)
class Anil:
    """ANIL as a meta-learner: the body is shared across the meta-batch, the head adapts per task."""

    inner: InnerLoop
    dtype: torch.dtype
    body: BodyPass = BodyPass()

    def loss(self, model: AnilNet, batch: TaskBatch, counts: OpCounts | None = None) -> MetaOutput:
        return anil_meta_loss(model, batch, self.inner, self.dtype, self.body, counts)

    def score(self, model: AnilNet, batches: Iterable[TaskBatch]) -> tuple[torch.Tensor, torch.Tensor]:
        return anil_score_tasks(model, batches, self.inner, self.dtype, self.body)
