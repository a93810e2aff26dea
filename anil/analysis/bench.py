"""Benchmark a meta-iteration: the batched engine against the per-task reference and the floor.

    .venv/bin/python scripts/bench.py --out docs/data/performance-cpu.json   # the CPU grid (about 10 minutes, 2 cores)
    .venv/bin/python scripts/bench.py --quick                                 # a one-minute smoke of every measurement
    .venv/bin/python scripts/bench.py --device cuda --mini-B 32 --repeats 20

In one process and on identical inputs (random uint8 tasks of the real shapes, 5-way, 5 support
+ 5 query per class), it times the median of `--repeats` meta-iterations after one warm-up of:
  engine     anil_meta_loss + backward (batched body, batched inner loop; the training path)
  reference  the per-task loop of anil_reference_meta_loss + backward (second order only)
  floor      one forward + backward of body + a linear head over the same images, no inner loop:
             the best of one batch and cache-sized chunks
It also reports the memory autograd keeps for backward (CPU) or the peak allocation (CUDA), the
number of aten operator calls per meta-iteration for B = 4 and B = 32 (PyTorch profiler, body in
one call: the GPU path), a breakdown of one iteration, and how time grows with B. It prints
tables and writes everything as JSON (--out), from which docs/performance.md is generated
(`anil report performance`).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from anil.analysis.baseline import ConventionalNet, body_flops, conventional_step, gemm_peak, operator_time
from anil.analysis.timing import (
    QUERY,
    SHOTS,
    WAYS,
    interleaved,
    kernel_launches,
    make_batch,
    make_model,
    median_seconds,
    operator_calls,
    peak_bytes,
)
from anil.data.sampler import TaskSampler
from anil.data.split import Split
from anil.engine.anil import BodyPass, adapt, anil_meta_loss, anil_reference_meta_loss, encode
from anil.engine.losses import query_loss
from anil.engine.model import AnilNet
from anil.engine.opcount import OpCounts
from anil.run.graphs import WARMUP_CALLS, GraphedGradients
from anil.tasks import InnerLoop, TaskBatch, class_labels

SHAPES = {"fc100": 32, "miniimagenet": 84}  # 3-channel images of this side
PARTS = ("fc100-convex", "fc100-nonconvex", "miniimagenet-convex")
Step = Callable[[], None]


def engine_step(model: AnilNet, batch: TaskBatch, inner: InnerLoop, body: BodyPass) -> Step:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        anil_meta_loss(model, batch, inner, torch.float32, body).loss.backward()

    return step


def graphed_engine_step(model: AnilNet, batch: TaskBatch, inner: InnerLoop, body: BodyPass) -> Step:
    """engine_step replayed from a CUDA graph after its warm-up calls (eager on a CPU)."""

    def compute(batch: TaskBatch, counts: OpCounts) -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        loss = anil_meta_loss(model, batch, inner, torch.float32, body).loss
        loss.backward()
        return loss.detach()

    graphed = GraphedGradients(compute, list(model.parameters()), batch.images.device)

    def step() -> None:
        graphed(batch, OpCounts())

    for _ in range(WARMUP_CALLS + 1):  # warm up and capture before anything is timed
        step()
    return step


def engine_loss(model: AnilNet, batch: TaskBatch, inner: InnerLoop, body: BodyPass) -> Callable[[], torch.Tensor]:
    """The engine's meta-loss as a function of nothing (what peak_bytes records the graph of)."""
    return lambda: anil_meta_loss(model, batch, inner, torch.float32, body).loss


def reference_step(model: AnilNet, batch: TaskBatch, inner: InnerLoop) -> Step:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        anil_reference_meta_loss(model, batch, inner, torch.float32).backward()

    return step


def floor_step(model: AnilNet, batch: TaskBatch, body: BodyPass) -> Step:
    """Body + linear head over all the images, one backward: the least any ANIL iteration can cost."""
    labels = class_labels(WAYS, SHOTS + QUERY, batch.images.device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        support, query = encode(model, batch, torch.float32, body)
        features = torch.cat([support, query], dim=1)  # [B, ways*(k+q), d]
        logits = F.linear(features, model.head[0], model.head[1])
        F.cross_entropy(logits.flatten(0, 1), labels.repeat(batch.tasks)).backward()

    return step


def breakdown(
    model: AnilNet, batch: TaskBatch, inner: InnerLoop, body: BodyPass, repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds of each part of one meta-iteration."""
    split = Split(
        np.random.default_rng(0).integers(0, 256, (64 * 600, *batch.images.shape[3:]), dtype=np.uint8),
        np.full(64, 600),
        [str(i) for i in range(64)],
        "random",
    )
    sampler = TaskSampler(split, WAYS, SHOTS, QUERY, torch.Generator(device=device).manual_seed(0))
    labels_s, labels_q = class_labels(WAYS, SHOTS, device), class_labels(WAYS, QUERY, device)
    state: dict[str, Any] = {}

    def body_forward() -> None:
        state["features"] = encode(model, batch, torch.float32, body)

    def inner_loop() -> None:
        support, query = state["features"]
        adapted, _ = adapt(list(model.head), support, labels_s, inner)
        state["loss"] = query_loss(adapted, query, labels_q).mean()

    def backward() -> None:
        model.zero_grad(set_to_none=True)
        body_forward()
        inner_loop()
        state["loss"].backward()

    timed = interleaved(
        {
            "sampling": lambda: sampler.sample(batch.tasks),
            "body forward": body_forward,
            "inner loop (forward)": inner_loop,
            "whole": backward,
        },
        repeats,
        device,
    )
    whole = timed.pop("whole")
    timed["backward (body + inner loop)"] = whole - timed["body forward"] - timed["inner loop (forward)"]
    return timed


def run_grid(options: argparse.Namespace, part: str, device: torch.device) -> list[dict[str, Any]]:
    """One dataset and geometry's rows. The floor runs interleaved with the engine and the
    reference on the second-order rows; first-order rows use the floor of the row with the same N."""
    dataset, geometry = part.split("-")
    side = SHAPES[dataset]
    tasks = options.B if dataset == "fc100" else options.mini_B
    batch = make_batch(side, tasks, device)
    auto = BodyPass.auto(device, WAYS * (SHOTS + QUERY), (3, side), options.bf16)
    floor_model = make_model("convex", side, device, options.compile)
    floors = interleaved(
        {str(c): floor_step(floor_model, batch, BodyPass(c, options.bf16)) for c in sorted({0, auto.chunk_tasks})},
        max(2, options.repeats // 2),
        device,
    )
    best_floor = BodyPass(int(min(floors, key=lambda chunk: floors[chunk])), options.bf16)
    rows: list[dict[str, Any]] = []
    floor_at: dict[int, float] = {}
    grid_n = options.N if dataset == "fc100" else [7]
    model = make_model(geometry, side, device, options.compile)
    conventional = ConventionalNet(3, side, WAYS).to(device)
    limit = body_flops(tasks * WAYS * (SHOTS + QUERY), 3, side) / options.gemm_peak  # seconds at the GEMM peak
    for first_order in (False, True) if dataset == "fc100" else (False,):
        for n in grid_n:
            inner = InnerLoop(n, 0.1, 0.01 if geometry == "convex" else 0.0, first_order)
            make_engine = graphed_engine_step if options.cuda_graphs else engine_step
            steps = {"engine": make_engine(model, batch, inner, auto)}
            if not first_order:
                steps["reference"] = reference_step(model, batch, inner)
                steps["floor"] = floor_step(floor_model, batch, best_floor)
                if dataset == "fc100" and geometry == "convex":  # the external baseline, where its target is
                    steps["l2l_style"] = conventional_step(conventional, batch, inner)
            timed = interleaved(steps, options.repeats if not first_order else max(2, options.repeats * 2 // 5), device)
            floor = timed.get("floor") or floor_at[n]
            floor_at.setdefault(n, floor)
            memory = peak_bytes(steps["engine"], engine_loss(model, batch, inner, auto), device)
            row = dict(
                dataset=dataset,
                B=tasks,
                geometry=geometry,
                N=n,
                order="first" if first_order else "second",
                engine_s=timed["engine"],
                reference_s=timed.get("reference"),
                floor_s=floor,
                floor_chunks_s=floors,
                body_chunk_tasks=auto.chunk_tasks,
                engine_over_floor=timed["engine"] / floor,
                reference_over_engine=timed["reference"] / timed["engine"] if "reference" in timed else None,
                memory_bytes=memory,
                flop_limit_s=limit,
                engine_over_flop_limit=timed["engine"] / limit,
                l2l_style_s=timed.get("l2l_style"),
                l2l_style_over_engine=timed["l2l_style"] / timed["engine"] if "l2l_style" in timed else None,
            )
            rows.append(row)
            print(_row_line(row), flush=True)
    return rows


def extras(options: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Operator calls for B = 4 and 32, a breakdown of one iteration, and time against B."""
    side = SHAPES["fc100"]
    model = make_model("convex", side, device, options.compile)
    inner = InnerLoop(7, 0.1, 0.01, False)
    calls = {
        b: operator_calls(engine_step(model, make_batch(side, b, device), inner, BodyPass(0)), device)
        for b in (4, 8 if options.quick else 32)
    }
    auto = BodyPass.auto(device, WAYS * (SHOTS + QUERY), (3, side), options.bf16)
    repeats = max(2, options.repeats * 2 // 5)
    parts = breakdown(model, make_batch(side, options.B, device), inner, auto, repeats, device)
    scaling = {
        b: median_seconds(engine_step(model, make_batch(side, b, device), inner, auto), repeats, device)
        for b in sorted(({8} if options.quick else {4, 8, 16}) - {options.B})
    }
    launches = launch_counts(model, side, device, options)
    profiled = operator_time(engine_step(model, make_batch(side, options.B, device), inner, auto), device)
    conv_flops = body_flops(options.B * WAYS * (SHOTS + QUERY), 3, side)
    print(
        "operator time of one iteration (profiler, self time): "
        + ", ".join(f"{k} {v:.3f} s" for k, v in profiled.items())
    )
    print(
        "\naten operator calls per meta-iteration (FC100 shape, convex, N=7, body in one call): "
        + ", ".join(f"B={b}: {n}" for b, n in calls.items())
        + f" (ratio {max(calls.values()) / calls[4]:.3f})"
    )
    total = sum(parts.values())
    print(f"breakdown of one iteration (FC100 shape, convex, N=7, B={options.B}):")
    for name, seconds in parts.items():
        print(f"  {name:<30} {seconds:.3f} s  ({100 * seconds / total:.0f}%)")
    print(
        "engine time against B (FC100 shape, convex, N=7): "
        + ", ".join(f"B={b}: {s:.3f} s ({1000 * s / b:.1f} ms/task)" for b, s in scaling.items()),
        flush=True,
    )
    return {
        "operator_calls": calls,
        "breakdown_s": parts,
        "engine_s_by_B": scaling,
        "launches": launches,
        "operator_time_s": profiled,
        "conv_flops": conv_flops,
    }


def launch_counts(model: AnilNet, side: int, device: torch.device, options: argparse.Namespace) -> list[dict[str, Any]]:
    """aten operator calls and CUDA kernel launches (None on a CPU) of one engine iteration
    against N and B, eager and, with --cuda-graphs, replayed from a graph."""
    rows = []
    for n in options.N:
        inner = InnerLoop(n, 0.1, 0.01, False)
        for b in sorted({4, options.B}):
            batch = make_batch(side, b, device)
            eager = engine_step(model, batch, inner, BodyPass(0))
            row: dict[str, Any] = dict(N=n, B=b, aten_calls=operator_calls(eager, device))
            row["kernel_launches"] = kernel_launches(eager, device)
            if options.cuda_graphs:
                row["graphed_kernel_launches"] = kernel_launches(
                    graphed_engine_step(model, batch, inner, BodyPass(0)), device
                )
            rows.append(row)
            print(f"launches N={n} B={b}: {row}", flush=True)
    return rows


def _row_line(row: dict[str, Any]) -> str:
    reference = "—" if row["reference_s"] is None else f"{row['reference_s']:.3f}"
    ratio = "—" if row["reference_over_engine"] is None else f"{row['reference_over_engine']:.2f}"
    return (
        f"| {row['dataset']} | {row['B']} | {row['geometry']} | {row['N']} | {row['order']} | "
        f"{row['engine_s']:.3f} | {reference} | {row['floor_s']:.3f} | {row['engine_over_floor']:.3f} | {ratio} | "
        f"{row['memory_bytes'] / 2**20:.1f} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=10, help="timed iterations per measurement (median)")
    parser.add_argument("--B", type=int, default=32, help="tasks per meta-batch at the FC100 shape")
    parser.add_argument("--mini-B", type=int, default=4, help="tasks per meta-batch at the miniImageNet shape")
    parser.add_argument("--N", type=int, nargs="+", default=[1, 7, 30])
    parser.add_argument("--bf16", action="store_true", help="autocast the body to bfloat16 (engine and floor)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the body")
    parser.add_argument("--cuda-graphs", action="store_true", help="replay the engine's iteration from a CUDA graph")
    parser.add_argument("--quick", action="store_true", help="B=4, 1 repeat, N=1 7: checks that everything runs")
    parser.add_argument("--parts", nargs="+", choices=PARTS, help="measure only these (default: all)")
    parser.add_argument(
        "--no-extras",
        dest="extras",
        action="store_false",
        help="only the grid rows: no operator calls, launches, profile, breakdown or B scaling",
    )
    parser.add_argument("--gemm-peak", type=float, help=argparse.SUPPRESS)  # FLOP/s, measured once by the parent
    parser.add_argument("--part", choices=[*PARTS, "extras"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/bench.json"))
    options = parser.parse_args(argv)
    if options.quick:
        options.B, options.mini_B, options.repeats, options.N = 4, 2, 1, [1, 7]
    device = torch.device(
        "cuda"
        if options.device == "auto" and torch.cuda.is_available()
        else ("cpu" if options.device == "auto" else options.device)
    )
    if options.gemm_peak is None:
        options.gemm_peak = gemm_peak(device)
    if options.part:  # one part, in its own process: memory of one part never weighs on the next
        result = run_grid(options, options.part, device) if options.part != "extras" else extras(options, device)
        options.out.write_text(json.dumps(result))
        return
    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"torch {torch.__version__} on {machine}; 5-way, 5+5 per class; median of {options.repeats}"
        + ("; body in bf16" if options.bf16 else "")
        + ("; body compiled" if options.compile else "")
        + ("; CUDA graphs" if options.cuda_graphs else "")
    )
    print(
        "| dataset | B | geometry | N | order | engine s | reference s | floor s | engine/floor "
        "| reference/engine | graph MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    # Each part in a fresh process: measured in one long process, later rows ran up to 25% slower
    # (allocator state), which skews comparisons between rows.
    given = sys.argv[1:] if argv is None else argv
    args = [*given, "--gemm-peak", repr(options.gemm_peak)]  # every part uses this one measurement
    print(f"fp32 GEMM peak: {options.gemm_peak / 1e9:.0f} GFLOP/s (2048^3, the fastest of 10)", flush=True)
    parts = options.parts or list(PARTS)
    measured = (*parts, "extras") if options.extras else tuple(parts)
    results = {part: _run_part(part, args) for part in measured}
    results.setdefault("extras", {"engine_s_by_B": {}, "operator_calls": {}})
    rows = [row for part in parts for row in results[part]]
    engine_n7 = next(
        (
            r["engine_s"]
            for r in rows
            if r["dataset"] == "fc100" and r["geometry"] == "convex" and r["N"] == 7 and r["order"] == "second"
        ),
        None,
    )
    if engine_n7 is not None:
        results["extras"]["engine_s_by_B"][str(options.B)] = engine_n7
        print(f"engine at B={options.B}: {engine_n7:.3f} s ({1000 * engine_n7 / options.B:.1f} ms/task; the grid row)")
    calls = {int(b): n for b, n in results["extras"]["operator_calls"].items()}
    _print_targets(rows, calls)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(
        json.dumps(
            {
                "machine": machine,
                "torch": torch.__version__,
                "device": str(device),
                "repeats": options.repeats,
                "threads": torch.get_num_threads(),
                "gemm_peak_flops": options.gemm_peak,
                "date": time.strftime("%Y-%m-%d"),
                "variant": {"bf16": options.bf16, "compile": options.compile, "cuda_graphs": options.cuda_graphs},
                "command": _command(given),
                "rows": rows,
                **results["extras"],
            },
            indent=2,
        )
    )
    print(f"wrote {options.out}")


def _command(args: list[str]) -> str:
    return " ".join([".venv/bin/python scripts/bench.py", *args])


def _run_part(part: str, args: list[str]) -> Any:
    """Run the benchmark for one part in a child process (same arguments) and read back its JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{part}.json"
        args = list(args)
        if "--out" in args:
            del args[args.index("--out") : args.index("--out") + 2]
        subprocess.run(
            [sys.executable, "-m", "anil.analysis.bench", *args, "--part", part, "--out", str(out)], check=True
        )
        return json.loads(out.read_text())


Target = tuple[str, float, bool]  # what is checked, the measured value, whether it is met


def targets(rows: list[dict[str, Any]], calls: dict[int, int]) -> list[Target]:
    """The benchmark's targets, each with its measured value (ratios from one run)."""

    def find(**keys: Any) -> dict[str, Any] | None:
        return next((r for r in rows if all(r[k] == v for k, v in keys.items())), None)

    checks: list[Target] = []
    for n, limit in ((7, 1.10), (30, 1.25)):
        row = find(dataset="fc100", geometry="convex", N=n, order="second")
        if row:
            name = f"engine/floor at N={n} (convex, FC100) <= {limit}"
            checks.append((name, row["engine_over_floor"], row["engine_over_floor"] <= limit))
    ratios = [r["reference_over_engine"] for r in rows if r["reference_over_engine"] is not None]
    checks.append(("engine never slower than the reference (min reference/engine >= 1)", min(ratios), min(ratios) >= 1))
    if 4 in calls and 32 in calls:  # not in a --quick run
        checks.append(("operator calls B=32 within 10% of B=4", calls[32] / calls[4], calls[32] <= 1.1 * calls[4]))
    for n in (1, 7):
        row = find(dataset="fc100", geometry="convex", N=n, order="second")
        if row and row.get("l2l_style_over_engine") is not None:
            name = f"learn2learn-style / engine at N={n} (convex, FC100) >= 1.3"
            checks.append((name, row["l2l_style_over_engine"], row["l2l_style_over_engine"] >= 1.3))
    row = find(dataset="fc100", geometry="convex", N=7, order="second")
    if row and row.get("engine_over_flop_limit") is not None:
        name = "engine / FLOP limit at N=7 (convex, FC100) <= 2.0"
        checks.append((name, row["engine_over_flop_limit"], row["engine_over_flop_limit"] <= 2.0))
    low = find(dataset="fc100", geometry="convex", N=1, order="second")
    high = find(dataset="fc100", geometry="convex", N=30, order="second")
    if low and high:
        ratio = high["memory_bytes"] / low["memory_bytes"]
        checks.append(("memory at N=30 within 10% of N=1 (convex)", ratio, ratio <= 1.1))
    return checks


def _print_targets(rows: list[dict[str, Any]], calls: dict[int, int]) -> None:
    print("\ntargets:")
    for name, value, ok in targets(rows, calls):
        print(f"  {'met' if ok else 'NOT MET':<8} {name}: {value:.3f}")


if __name__ == "__main__":
    main()
