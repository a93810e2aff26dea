"""Timing and memory measurement shared by the benchmarks (anil/analysis/bench.py, complexity.py):
median seconds of steps run round-robin, the bytes a meta-graph keeps, operator counts, and
synthetic inputs of the real shapes (random uint8 tasks, 5-way, 5 support + 5 query per class)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from anil.engine.model import AnilNet
from anil.tasks import TaskBatch

WAYS, SHOTS, QUERY = 5, 5, 5


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(step: Callable[[], Any], repeats: int, device: torch.device) -> float:
    return interleaved({"step": step}, repeats, device)["step"]


def fastest_seconds(step: Callable[[], Any], repeats: int, device: torch.device) -> float:
    return min(round_robin({"step": step}, repeats, device)["step"])


def interleaved(steps: dict[str, Callable[[], Any]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each step, run round-robin after one warm-up each, so that drift of the
    machine (frequency, allocator state, other load) hits all of them alike and ratios stay fair."""
    return {name: statistics.median(values) for name, values in round_robin(steps, repeats, device).items()}


def round_robin(steps: dict[str, Callable[[], Any]], repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of every call of each step, `repeats` rounds of one call each, after one warm-up each."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            tick = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - tick)
    return times


def make_batch(side: int, tasks: int, device: torch.device, seed: int = 0, channels: int = 3) -> TaskBatch:
    """B random tasks of channels x side x side images, drawn on the CPU (the same on every device)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (tasks, WAYS, SHOTS + QUERY, channels, side, side)
    images = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    return TaskBatch(images.to(device), SHOTS)


def graph_bytes(forward: Callable[[], torch.Tensor]) -> int:
    """Bytes autograd saves for backward during `forward` (each storage counted once): the memory
    that grows with the inner loop, measured the same way on any device."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward()
    del loss
    return sum(storages.values())


def peak_bytes(step: Callable[[], Any], forward: Callable[[], torch.Tensor], device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    return graph_bytes(forward)


def profiled(step: Callable[[], Any], device: torch.device) -> Any:
    """The PyTorch profiler's events of one call of `step` (after one unprofiled warm-up call),
    averaged by operator name: CPU activity, and CUDA activity on a GPU."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    step()
    with profile(activities=activities) as prof:
        step()
        sync(device)
    return prof.key_averages()


def operator_calls(step: Callable[[], Any], device: torch.device) -> int:
    return sum(e.count for e in profiled(step, device) if e.key.startswith("aten::"))


def kernel_launches(step: Callable[[], Any], device: torch.device) -> int | None:
    """CUDA kernel launches (runtime launch calls, a graph replay counted as one) of one call of
    `step`; None on a CPU, where there are none to count."""
    if device.type != "cuda":
        return None
    launches = ("LaunchKernel", "GraphLaunch")
    return sum(e.count for e in profiled(step, device) if any(name in e.key for name in launches))


def make_model(
    geometry: str, side: int, device: torch.device, compile_body: bool = False, channels: int = 3
) -> AnilNet:
    """A float32 Conv-4 for `channels`-channel images of `side` pixels, seeded, optionally with a compiled body."""
    torch.manual_seed(0)
    model = AnilNet(geometry, side, channels, WAYS, hidden=64).to(device)
    if compile_body:
        model.body.compile()
    return model
