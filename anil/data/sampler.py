"""Vectorised few-shot task sampling on the training device.

A split lives on the device as uint8 [M, ch, S, S], grouped by class (counts per class may differ).
One call draws B tasks at once with a handful of tensor ops: no per-task Python work, no host
round trip.
"""

from __future__ import annotations

import torch

from anil.data.split import Split
from anil.tasks import TaskBatch


class TaskSampler:
    def __init__(
        self, split: Split, ways: int, shots: int, query: int, generator: torch.Generator, name: str = "train"
    ):
        split.check_tasks(name, ways, shots, query)
        device = generator.device
        self.images = torch.from_numpy(split.images).to(device)  # uint8 [M, ch, S, S]
        self.counts = torch.from_numpy(split.counts).to(device)  # [C]
        self.offsets = torch.from_numpy(split.offsets).to(device)  # [C]
        self.largest = int(split.counts.max())
        self.ways, self.shots, self.query = ways, shots, query
        self.generator = generator

    def sample(self, tasks: int) -> TaskBatch:
        device, classes = self.images.device, len(self.counts)
        # argsort of uniform noise = a uniform random permutation per row; keep the first few
        noise = torch.rand(tasks, classes, generator=self.generator, device=device)
        class_ids = noise.argsort(dim=1)[:, : self.ways]  # [B, ways]
        noise = torch.rand(tasks, self.ways, self.largest, generator=self.generator, device=device)
        beyond = torch.arange(self.largest, device=device) >= self.counts[class_ids][..., None]
        noise = noise.masked_fill(beyond, 2.0)  # positions past a class's last image sort last
        image_ids = noise.argsort(dim=2)[..., : self.shots + self.query]  # [B, ways, k+q]
        index = self.offsets[class_ids][..., None] + image_ids
        return TaskBatch(images=self.images[index], shots=self.shots)  # [B, ways, k+q, ch, S, S]
