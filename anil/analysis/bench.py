"""What the benchmark measures for a meta-iteration: the batched engine against the per-task
reference, the floor, the learn2learn-style baseline and the machine's limit (scripts/bench.py
runs it and writes the JSON).

In one process and on identical inputs (random uint8 tasks of the real shapes, 5-way, 5 support
+ 5 query per class), it times the median of `--repeats` meta-iterations after one warm-up of:
  engine     anil_meta_loss + backward (batched body, batched inner loop; the training path)
  reference  the per-task loop of anil_reference_meta_loss + backward (second order only)
  floor      one forward + backward of body + a linear head over the same images, no inner loop:
             the best of one batch and cache-sized chunks
On the FC100 rows it also times the learn2learn-style loop (anil/analysis/baseline.py) and puts
the engine against the FLOP limit at the machine's measured peak. It reports the memory
autograd keeps for backward (CPU) or the peak allocation (CUDA), the
number of aten operator calls per meta-iteration for B = 4 and B = 32 (PyTorch profiler, body in
one call: the GPU path), a breakdown of one iteration, and how time grows with B. It prints
tables and writes everything as JSON (--out), from which docs/performance.md is generated
(`anil report performance`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch

from anil.analysis.baseline import ConventionalNet, body_flops, conventional_step, operator_time
from anil.analysis.benchsteps import (
    breakdown,
    engine_loss,
    engine_step,
    floor_step,
    graphed_engine_step,
    reference_step,
    with_pytorch_batch_norm,
)
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
from anil.engine.batched import BodyPass
from anil.engine.model import AnilNet
from anil.geometry import Geometry
from anil.tasks import InnerLoop, TaskBatch

SHAPES = {"fc100": 32, "miniimagenet": 84}  # 3-channel images of this side
EXTRAS = ("fc100", Geometry.convex, 7)  # where the extras (calls, breakdown, B scaling, profile) are measured


def extras_setting() -> dict[str, Any]:
    """What the extras were measured on, for the report to state (not to retype)."""
    dataset, geometry, n = EXTRAS
    return dict(dataset=dataset, channels=3, side=SHAPES[dataset], geometry=str(geometry), N=n, ways=WAYS,
                shots=SHOTS, query=QUERY)  # fmt: skip


PARTS = ("fc100-convex", "fc100-nonconvex", "miniimagenet-convex")


def images_per_call(device: torch.device, side: int, tasks: int) -> int:
    """Images in one body call of the engine (its chunking on a CPU, the whole meta-batch elsewhere)."""
    chunk = BodyPass.auto(device, WAYS * (SHOTS + QUERY), (3, side)).chunk_tasks or tasks
    return min(chunk, tasks) * WAYS * (SHOTS + QUERY)


def run_grid(
    options: argparse.Namespace,
    part: str,
    device: torch.device,
    on_row: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """One dataset and geometry's rows. The floor runs interleaved with the engine and the
    reference on the second-order rows; first-order rows use the floor of the row with the same N.
    `on_row` gets the rows so far after each one (the driver writes them out, so a run cut short
    keeps what it measured)."""
    dataset, geometry = part.split("-")
    side = SHAPES[dataset]
    tasks = options.B if dataset == "fc100" else options.mini_B
    batch = make_batch(side, tasks, device)
    auto = BodyPass.auto(device, WAYS * (SHOTS + QUERY), (3, side), options.bf16)
    floor_model = make_model(Geometry.convex, side, device, options.compile)
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
    hidden = model.head[0].shape[0] if geometry == Geometry.nonconvex else 0  # the same head as the engine's
    conventional = ConventionalNet(3, side, WAYS, hidden).to(device)
    limit = body_flops(tasks * WAYS * (SHOTS + QUERY), 3, side) / options.peak  # seconds at the machine's peak
    for first_order in (False, True) if dataset == "fc100" else (False,):
        for n in grid_n:
            inner = InnerLoop(n, 0.1, 0.01 if geometry == Geometry.convex else 0.0, first_order)
            make_engine = graphed_engine_step if options.cuda_graphs else engine_step
            steps = {"engine": make_engine(model, batch, inner, auto)}
            if not first_order:
                steps["reference"] = reference_step(model, batch, inner)
                steps["floor"] = floor_step(floor_model, batch, best_floor)
                if dataset == "fc100":  # the external baseline, where its targets are
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
            if on_row:  # written before it is shown: a row on the screen is a row on disk
                on_row(rows)
            print(_row_line(row), flush=True)
    return rows


def extras(options: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Operator calls for B = 4 and 32, a breakdown of one iteration, and time against B."""
    dataset, geometry, n = EXTRAS
    side = SHAPES[dataset]
    model = make_model(geometry, side, device, options.compile)
    inner = InnerLoop(n, 0.1, 0.01, False)
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
    batch_norm_cost = batch_norm_costs(model, make_batch(side, options.B, device), inner, auto, options.repeats, device)
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
        "extras_setting": extras_setting(),
        "operator_calls": calls,
        "breakdown_s": parts,
        "engine_s_by_B": scaling,
        "launches": launches,
        "operator_time_s": profiled,
        "conv_flops": conv_flops,
        "batch_norm_cost_s": batch_norm_cost,
    }


def batch_norm_costs(
    model: AnilNet, batch: TaskBatch, inner: InnerLoop, body: BodyPass, repeats: int, device: torch.device
) -> dict[str, float] | None:
    """The engine with the accurate BatchNorm and with PyTorch's kernel, interleaved: what the
    accuracy costs. Only on a CPU: elsewhere the body runs PyTorch's kernel either way."""
    if device.type != "cpu":
        return None
    steps = {
        "accurate": engine_step(model, batch, inner, body),
        "pytorch": with_pytorch_batch_norm(engine_step(model, batch, inner, body)),
    }
    timed = interleaved(steps, repeats, device)
    print(
        "engine with the accurate BatchNorm / with PyTorch's kernel (FC100 shape, convex, N=7): "
        f"{timed['accurate']:.3f} / {timed['pytorch']:.3f} s",
        flush=True,
    )
    return timed


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
