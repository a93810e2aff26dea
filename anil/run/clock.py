"""Timing one meta-iteration so the time axis means what it says, and a run's peak memory.

Each step records three clocks: wall seconds (what a user waits), process CPU seconds (what the
step itself used: jobs that share a machine inflate wall time but barely their CPU time), and the
Unix time it ended (so readers can tell afterwards whether jobs ran at the same time on one host,
anil/analysis/overlap.py). On CUDA the device is synchronised before the wall clock is read:
kernels are queued asynchronously, and a host timer on queued work would charge one iteration's
GPU time to the next.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass
class Lap:
    wall: float = 0.0  # seconds
    cpu: float = 0.0  # process CPU seconds (every thread of this process)
    ended: float = 0.0  # Unix time at the end


@contextmanager
def lap(device: torch.device) -> Iterator[Lap]:
    """Time the body of the `with` block on `device`; the Lap is filled in when the block ends."""
    measured = Lap()
    wall, cpu = time.perf_counter(), time.process_time()
    yield measured
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    measured.wall, measured.cpu = time.perf_counter() - wall, time.process_time() - cpu
    measured.ended = time.time()


def peak_memory_bytes(device: torch.device) -> int | None:
    """This process's peak memory: on CUDA the most the device allocator held; on a CPU the high-water
    mark of the resident set of this program's own address space (VmHWM, Linux: unlike
    getrusage's ru_maxrss it does not count what the parent held when it forked this process).
    None where neither can be read."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return None
