"""Data parallel meta-training over K processes (torchrun), with torch.distributed.

Every process draws the same B tasks (the sampler's generator is seeded alike), keeps its own
B/K of them, and computes the meta-gradient of their mean query loss; the gradients are averaged
with one all-reduce, so each step equals the single-process step on all B tasks. Metrics are
averaged the same way. Only rank 0 writes metrics, checkpoints and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from anil.config import ConfigError
from anil.tasks import TaskBatch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: TaskBatch) -> TaskBatch:
        """This process's share of the meta-batch: tasks [rank*B/K, (rank+1)*B/K)."""
        if self.size == 1:
            return batch
        per_rank = batch.tasks // self.size
        return batch.select(self.rank * per_rank, (self.rank + 1) * per_rank)

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """One all-reduce over all gradients, flattened into a single buffer."""
        if self.size == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def average(self, values: torch.Tensor) -> torch.Tensor:
        if self.size == 1:
            return values
        values = values.clone()
        dist.all_reduce(values)
        return values / self.size

    def main_path(self, path: Path) -> Path:
        """Rank 0's `path` on every process."""
        if self.size == 1:
            return path
        shared = [str(path)]
        dist.broadcast_object_list(shared, src=0)
        return Path(shared[0])

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when it is true on one (e.g. a stop request), so all stop together."""
        if self.size == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def launched_ranks() -> tuple[int, int]:
    """(rank, world size) as torchrun sets them in the environment; (0, 1) for a plain run."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def init(device: torch.device, tasks: int) -> World:
    rank, size = launched_ranks()
    if size == 1:
        return World()
    if tasks % size:
        raise ConfigError(
            f"B={tasks} tasks cannot be split evenly over {size} processes; choose B a multiple of {size}"
        )
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each process takes the GPU of its LOCAL_RANK."""
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
