"""The two losses of the paper, for one task or for a batch of tasks at once.

Shapes: a batch of tasks carries a leading task dimension B (logits [B, n, ways], head
parameters [B, ...]); a single task has none (logits [n, ways]). Each function returns one value
per task: [B], or a scalar for a single task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from anil.engine.model import head_logits


def task_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over each task's samples: logits [..., n, ways], labels [n] -> [...]."""
    per_sample = F.cross_entropy(logits.flatten(0, -2), labels.expand(logits.shape[:-1]).flatten(), reduction="none")
    return per_sample.view(logits.shape[:-1]).mean(-1)


def task_accuracy(logits: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Fraction of each task's samples classified right: logits [..., n, ways] -> [...]."""
    return (logits.argmax(-1) == labels).to(dtype).mean(-1)


def support_loss(head: list[torch.Tensor], features: torch.Tensor, labels: torch.Tensor, lam: float) -> torch.Tensor:
    """The inner loss L_S of each task: cross-entropy + (lam/2)||w||^2 over every head parameter.
    features [..., n, d] with head parameters carrying the same leading dimensions -> [...]."""
    loss = task_cross_entropy(head_logits(head, features), labels)
    if lam == 0:
        return loss
    lead = features.dim() - 2  # 1 for a batch of tasks, 0 for one task
    return loss + 0.5 * lam * sum(p.pow(2).flatten(lead).sum(-1) for p in head)


def query_loss(head: list[torch.Tensor], features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The outer loss L_D of each task at (adapted) head parameters: features [..., n, d] -> [...]."""
    return task_cross_entropy(head_logits(head, features), labels)
