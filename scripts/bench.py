"""Benchmark a meta-iteration: the batched engine against the per-task reference and the floor.

    .venv/bin/python scripts/bench.py                        # the CPU grid (about 8 minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick                # a one-minute smoke of every measurement
    .venv/bin/python scripts/bench.py --device cuda --mini-B 32 --repeats 20

In one process and on identical inputs (random uint8 tasks of the real shapes, 5-way, 5 support
+ 5 query per class), it times the median of `--repeats` meta-iterations after one warm-up of:
  engine     meta_forward + backward (batched body, batched inner loop; the training path)
  reference  the per-task loop of meta.reference_meta_loss + backward (second order only)
  floor      one forward + backward of body + a linear head over the same images, no inner loop:
             the best of one batch and cache-sized chunks
It also reports the memory autograd keeps for backward (CPU) or the peak allocation (CUDA), the
number of aten operator calls per meta-iteration for B = 4 and B = 32 (PyTorch profiler, body in
one call: the GPU path), a breakdown of one iteration, and how time grows with B. It prints
tables and writes everything as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from anil.data.sampler import TaskBatch, TaskSampler
from anil.data.split import Split
from anil.meta import BodyPass, InnerLoop, adapt, class_labels, encode, meta_forward, reference_meta_loss
from anil.model import AnilNet, head_logits

SHAPES = {"fc100": 32, "miniimagenet": 84}  # 3-channel images of this side
WAYS, SHOTS, QUERY = 5, 5, 5


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(step: Callable[[], Any], repeats: int, device: torch.device) -> float:
    step()  # warm-up: allocator, kernels, caches
    times = []
    for _ in range(repeats):
        sync(device)
        tick = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def make_batch(side: int, tasks: int, device: torch.device, seed: int = 0) -> TaskBatch:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (tasks, WAYS, SHOTS + QUERY, 3, side, side), generator=generator, dtype=torch.uint8)
    return TaskBatch(images.to(device), SHOTS)


def make_model(geometry: str, side: int, device: torch.device) -> AnilNet:
    torch.manual_seed(0)
    return AnilNet(geometry, side, 3, WAYS, hidden=64).to(device)


def engine_step(model, batch, inner, body):
    def step():
        model.zero_grad(set_to_none=True)
        meta_forward(model, batch, inner, torch.float32, body).loss.backward()
    return step


def reference_step(model, batch, inner):
    def step():
        model.zero_grad(set_to_none=True)
        reference_meta_loss(model, batch, inner, torch.float32).backward()
    return step


def floor_step(model, batch, body):
    """Body + linear head over all the images, one backward: the least any ANIL iteration can cost."""
    labels = class_labels(WAYS, SHOTS + QUERY, batch.images.device)

    def step():
        model.zero_grad(set_to_none=True)
        support, query = encode(model, batch, torch.float32, body)
        features = torch.cat([support, query], dim=1)  # [B, ways*(k+q), d]
        logits = F.linear(features, model.head[0], model.head[1])
        F.cross_entropy(logits.flatten(0, 1), labels.repeat(batch.tasks)).backward()
    return step


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


def operator_calls(step: Callable[[], Any], device: torch.device) -> int:
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    step()
    with profile(activities=activities) as prof:
        step()
        sync(device)
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def breakdown(model: AnilNet, batch: TaskBatch, inner: InnerLoop, body: BodyPass, repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each part of one meta-iteration."""
    split = Split(np.random.default_rng(0).integers(0, 256, (64 * 600, *batch.images.shape[3:]), dtype=np.uint8),
                  np.full(64, 600), [str(i) for i in range(64)], "random")
    sampler = TaskSampler(split, WAYS, SHOTS, QUERY, torch.Generator(device=device).manual_seed(0))
    labels_s, labels_q = class_labels(WAYS, SHOTS, device), class_labels(WAYS, QUERY, device)
    state: dict[str, Any] = {}

    def body_forward():
        state["features"] = encode(model, batch, torch.float32, body)

    def inner_loop():
        support, query = state["features"]
        adapted, _ = adapt(list(model.head), support, labels_s, inner)
        logits = head_logits(adapted, query)
        state["loss"] = F.cross_entropy(logits.transpose(1, 2), labels_q.expand(logits.shape[:2]))

    def backward():
        model.zero_grad(set_to_none=True)
        body_forward()
        inner_loop()
        state["loss"].backward()

    parts = {
        "sampling": median_seconds(lambda: sampler.sample(batch.tasks), repeats, device),
        "body forward": median_seconds(body_forward, repeats, device),
        "inner loop (forward)": median_seconds(inner_loop, repeats, device),
    }
    whole = median_seconds(backward, repeats, device)
    parts["backward (body + inner loop)"] = whole - parts["body forward"] - parts["inner loop (forward)"]
    return parts


def run_grid(options: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    rows = []
    for dataset, side in SHAPES.items():
        tasks = options.B if dataset == "fc100" else options.mini_B
        batch = make_batch(side, tasks, device)
        auto = BodyPass.auto(device, WAYS * (SHOTS + QUERY))
        floor_model = make_model("convex", side, device)
        floors = {chunk: median_seconds(floor_step(floor_model, batch, BodyPass(chunk)), options.repeats, device)
                  for chunk in sorted({0, auto.chunk_tasks})}
        floor = min(floors.values())
        grid_n = options.N if dataset == "fc100" else [7]
        for geometry in ("convex", "nonconvex"):
            if dataset != "fc100" and geometry != "convex":
                continue
            model = make_model(geometry, side, device)
            for n in grid_n:
                for first_order in (False, True):
                    inner = InnerLoop(n, 0.1, 0.01 if geometry == "convex" else 0.0, first_order)
                    engine = median_seconds(engine_step(model, batch, inner, auto), options.repeats, device)
                    reference = None
                    if not first_order:
                        reference = median_seconds(reference_step(model, batch, inner), options.repeats, device)
                    memory = peak_bytes(engine_step(model, batch, inner, auto),
                                        lambda: meta_forward(model, batch, inner, torch.float32, auto).loss, device)
                    row = dict(dataset=dataset, B=tasks, geometry=geometry, N=n, order="first" if first_order else "second",
                               engine_s=engine, reference_s=reference, floor_s=floor, floors_s=floors,
                               engine_over_floor=engine / floor,
                               reference_over_engine=None if reference is None else reference / engine,
                               memory_bytes=memory)
                    rows.append(row)
                    print(_row_line(row), flush=True)
    return rows


def _row_line(row: dict[str, Any]) -> str:
    reference = "—" if row["reference_s"] is None else f"{row['reference_s']:.3f}"
    ratio = "—" if row["reference_over_engine"] is None else f"{row['reference_over_engine']:.2f}"
    return (f"| {row['dataset']} | {row['B']} | {row['geometry']} | {row['N']} | {row['order']} | {row['engine_s']:.3f} | "
            f"{reference} | {row['floor_s']:.3f} | {row['engine_over_floor']:.3f} | {ratio} | {row['memory_bytes'] / 2**20:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=10, help="timed iterations per measurement (median)")
    parser.add_argument("--B", type=int, default=32, help="tasks per meta-batch at the FC100 shape")
    parser.add_argument("--mini-B", type=int, default=8, help="tasks per meta-batch at the miniImageNet shape")
    parser.add_argument("--N", type=int, nargs="+", default=[1, 7, 30])
    parser.add_argument("--quick", action="store_true", help="B=4, 2 repeats, N=1 7: checks that everything runs")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/bench.json"))
    options = parser.parse_args()
    if options.quick:
        options.B, options.mini_B, options.repeats, options.N = 4, 2, 2, [1, 7]
    device = torch.device("cuda" if options.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if options.device == "auto" else options.device))
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda" else
               f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    print(f"torch {torch.__version__} on {machine}; 5-way, 5+5 per class; median of {options.repeats}")
    print("| dataset | B | geometry | N | order | engine s | reference s | floor s | engine/floor | reference/engine | graph MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = run_grid(options, device)

    side = SHAPES["fc100"]
    model = make_model("convex", side, device)
    inner = InnerLoop(7, 0.1, 0.01, False)
    calls = {b: operator_calls(engine_step(model, make_batch(side, b, device), inner, BodyPass(0)), device) for b in (4, 32)}
    auto = BodyPass.auto(device, WAYS * (SHOTS + QUERY))
    parts = breakdown(model, make_batch(side, options.B, device), inner, auto, options.repeats, device)
    scaling = {b: median_seconds(engine_step(model, make_batch(side, b, device), inner, auto), options.repeats, device)
               for b in (8, 16, 32)}

    print(f"\naten operator calls per meta-iteration (FC100 shape, convex, N=7, body in one call): "
          f"B=4: {calls[4]}, B=32: {calls[32]} (ratio {calls[32] / calls[4]:.3f})")
    total = sum(parts.values())
    print("breakdown of one iteration (FC100 shape, convex, N=7, B=%d):" % options.B)
    for name, seconds in parts.items():
        print(f"  {name:<30} {seconds:.3f} s  ({100 * seconds / total:.0f}%)")
    print("engine time against B (FC100 shape, convex, N=7): " +
          ", ".join(f"B={b}: {s:.3f} s ({1000 * s / b:.1f} ms/task)" for b, s in scaling.items()))
    _print_targets(rows, calls)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps({
        "machine": machine, "torch": torch.__version__, "device": str(device), "repeats": options.repeats,
        "rows": rows, "operator_calls": calls, "breakdown_s": parts, "engine_s_by_B": scaling,
    }, indent=2))
    print(f"wrote {options.out}")


def _print_targets(rows: list[dict[str, Any]], calls: dict[int, int]) -> None:
    def find(**keys):
        return next((r for r in rows if all(r[k] == v for k, v in keys.items())), None)

    checks = []
    for n, limit in ((7, 1.10), (30, 1.25)):
        row = find(dataset="fc100", geometry="convex", N=n, order="second")
        if row:
            checks.append((f"engine/floor at N={n} (convex, FC100) <= {limit}", row["engine_over_floor"], row["engine_over_floor"] <= limit))
    ratios = [r["reference_over_engine"] for r in rows if r["reference_over_engine"] is not None]
    checks.append(("engine never slower than the reference (min reference/engine >= 1)", min(ratios), min(ratios) >= 1))
    checks.append(("operator calls B=32 within 10% of B=4", calls[32] / calls[4], calls[32] <= 1.1 * calls[4]))
    low, high = find(dataset="fc100", geometry="convex", N=1, order="second"), find(dataset="fc100", geometry="convex", N=30, order="second")
    if low and high:
        ratio = high["memory_bytes"] / low["memory_bytes"]
        checks.append(("memory at N=30 within 10% of N=1 (convex)", ratio, ratio <= 1.1))
    print("\ntargets:")
    for name, value, ok in checks:
        print(f"  {'met' if ok else 'NOT MET':<8} {name}: {value:.3f}")


if __name__ == "__main__":
    main()
