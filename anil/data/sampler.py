"""Vectorised few-shot task sampling on the training device.

A split lives on the device as uint8 [C, I, ch, S, S] (C classes, I images each). One call draws B
tasks at once with a handful of tensor ops: no per-task Python work, no host round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class TaskSampler:
    def __init__(self, images: torch.Tensor, ways: int, shots: int, query: int, generator: torch.Generator):
        classes, instances = images.shape[:2]
        if classes < ways:
            raise ValueError(f"the split has {classes} classes, fewer than ways={ways}; lower ways")
        if instances < shots + query:
            raise ValueError(
                f"the split has {instances} images per class, fewer than shots + query = {shots + query}; lower shots or query"
            )
        self.images, self.ways, self.shots, self.query = images, ways, shots, query
        self.generator = generator

    def sample(self, tasks: int) -> TaskBatch:
        classes, instances = self.images.shape[:2]
        device = self.images.device
        # argsort of uniform noise = a uniform random permutation per row; keep the first few
        noise = torch.rand(tasks, classes, generator=self.generator, device=device)
        class_ids = noise.argsort(dim=1)[:, : self.ways]  # [B, ways]
        noise = torch.rand(tasks, self.ways, instances, generator=self.generator, device=device)
        image_ids = noise.argsort(dim=2)[..., : self.shots + self.query]  # [B, ways, shots+query]
        images = self.images[class_ids[..., None], image_ids]  # [B, ways, shots+query, ch, S, S]
        return TaskBatch(images=images, shots=self.shots)
