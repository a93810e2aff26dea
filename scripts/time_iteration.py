"""Time one meta-iteration (forward, meta-gradient, outer step) of the batched engine and of the
per-task reference loop, on identical tasks, in one process.

    .venv/bin/python scripts/time_iteration.py                 # B=32, N=1 and 7, both geometries
    .venv/bin/python scripts/time_iteration.py --B 8 --N 1 10 --repeats 5

Prints a table of medians (after one warm-up iteration) and the reference/engine ratio.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from anil.config import DatasetConfig, GeometryConfig, TrainConfig
from anil.meta import meta_forward, reference_meta_loss
from anil.trainer import build, resolve_device


def median_seconds(step, repeats: int, device: torch.device) -> float:
    step()  # warm-up: allocator, kernels, caches
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tick = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def time_config(config: TrainConfig, repeats: int) -> tuple[float, float]:
    device = resolve_device(config.device)
    setup = build(config, device)
    batch = setup.sampler.sample(config.B)  # the same tasks for both implementations

    def engine():
        setup.optimizer.zero_grad(set_to_none=True)
        meta_forward(setup.model, batch, setup.inner, setup.dtype, setup.body).loss.backward()
        setup.optimizer.step()

    def reference():
        setup.optimizer.zero_grad(set_to_none=True)
        reference_meta_loss(setup.model, batch, setup.inner, setup.dtype).backward()
        setup.optimizer.step()

    return median_seconds(engine, repeats, device), median_seconds(reference, repeats, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--B", type=int, default=32)
    parser.add_argument("--N", type=int, nargs="+", default=[1, 7])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dataset", default="embedded", choices=["embedded", "procedural"])
    options = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
          f"dataset={options.dataset}, B={options.B}, 5-way 5+5 per class, median of {options.repeats}")
    print(f"{'geometry':<10} {'N':>3} {'engine s/it':>12} {'reference s/it':>15} {'ref/engine':>10}")
    for geometry in ("convex", "nonconvex"):
        for n in options.N:
            config = TrainConfig(
                N=n, B=options.B, device=options.device, dataset=DatasetConfig(name=options.dataset),
                geometry=GeometryConfig(geometry, hidden=64 if geometry == "nonconvex" else 0),
                lam=0.01 if geometry == "convex" else 0.0,
            )
            engine, reference = time_config(config, options.repeats)
            print(f"{geometry:<10} {n:>3} {engine:>12.3f} {reference:>15.3f} {reference / engine:>10.2f}")


if __name__ == "__main__":
    main()
