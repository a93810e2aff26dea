"""Benchmark a meta-iteration: the batched engine against the per-task reference, the floor, the
learn2learn-style loop and the machine's limit (what is measured: anil/analysis/bench.py).

    .venv/bin/python scripts/bench.py --out docs/data/performance-cpu.json   # the CPU grid (about 12 minutes, 2 cores)
    .venv/bin/python scripts/bench.py --quick                                 # a one-minute smoke of every measurement
    .venv/bin/python scripts/bench.py --device cuda --mini-B 32 --repeats 20

Each part (a dataset and geometry, then the extras) runs in its own process; the JSON is written
after every part, and a part writes its rows as each is measured, so a run cut short keeps them.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from anil.analysis.baseline import peak_method, peak_rates
from anil.analysis.bench import PARTS, SHAPES, extras, images_per_call, run_grid
from anil.analysis.targets import targets
from anil.atomic import write_json_atomic


def parse(argv: list[str] | None) -> argparse.Namespace:
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
    parser.add_argument("--peak", type=float, help=argparse.SUPPRESS)  # FLOP/s, measured once by the parent
    parser.add_argument("--part", choices=[*PARTS, "extras"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/bench.json"))
    options = parser.parse_args(argv)
    if options.quick:
        options.B, options.mini_B, options.repeats, options.N = 4, 2, 1, [1, 7]
    return options


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    device = torch.device(
        "cuda"
        if options.device == "auto" and torch.cuda.is_available()
        else ("cpu" if options.device == "auto" else options.device)
    )
    if options.part:  # one part, in its own process: memory of one part never weighs on the next
        if options.part == "extras":
            write_json_atomic(options.out, extras(options, device))
        else:
            run_grid(options, options.part, device, on_row=lambda rows: write_json_atomic(options.out, {"rows": rows}))
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
    # The peak at the engine's own thread count and images per call: the fastest GEMM or body kernel.
    images = images_per_call(device, SHAPES["fc100"], options.B)
    rates = peak_rates(device, images, 3, SHAPES["fc100"])
    options.peak = max(rates.values())
    fastest = max(rates, key=lambda name: rates[name])
    print(f"fp32 peak: {options.peak / 1e9:.0f} GFLOP/s ({fastest}; {peak_method(device, images)})", flush=True)
    print(
        "| dataset | B | geometry | N | order | engine s | reference s | floor s | engine/floor "
        "| reference/engine | graph MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    given = sys.argv[1:] if argv is None else argv
    data: dict[str, Any] = {
        "machine": machine,
        "torch": torch.__version__,
        "device": str(device),
        "repeats": options.repeats,
        "threads": torch.get_num_threads(),
        "peak_flops": options.peak,
        "peak_kernel": fastest,
        "peak_rates": rates,
        "peak_method": peak_method(device, images),
        "date": time.strftime("%Y-%m-%d"),
        "variant": {"bf16": options.bf16, "compile": options.compile, "cuda_graphs": options.cuda_graphs},
        "command": " ".join([".venv/bin/python scripts/bench.py", *given]),
        "rows": [],
        "engine_s_by_B": {},
        "operator_calls": {},
        "complete": False,
    }
    args = [*given, "--peak", repr(options.peak)]  # every part uses this one measurement
    parts = options.parts or list(PARTS)
    signal.signal(signal.SIGTERM, _stopped)  # a time box ran out: keep the rows the current part measured
    for part in (*parts, "extras") if options.extras else parts:
        # Each part in a fresh process: measured in one long process, later rows ran up to 25% slower
        # (allocator state), which skews comparisons between rows.
        try:
            result = run_part(part, args)
        except Stopped as stop:
            data["rows"] += stop.partial.get("rows", [])
            write_json_atomic(options.out, data)
            print(f"stopped during part {part}; {options.out} keeps the {len(data['rows'])} rows measured", flush=True)
            sys.exit(128 + signal.SIGTERM)
        if part == "extras":
            data.update(result)
        else:
            data["rows"] += result.get("rows", [])
        write_json_atomic(options.out, data)  # what is measured so far, should a later part be cut short
    finish(data, options)
    data["complete"] = True
    write_json_atomic(options.out, data)
    print(f"wrote {options.out}")


def finish(data: dict[str, Any], options: argparse.Namespace) -> None:
    """The B = options.B point of the scaling from the grid row, and the targets, printed."""
    rows = data["rows"]
    at_n7 = [r for r in rows if (r["dataset"], r["geometry"], r["N"], r["order"]) == ("fc100", "convex", 7, "second")]
    if at_n7:
        engine = at_n7[0]["engine_s"]
        data["engine_s_by_B"][str(options.B)] = engine
        print(f"engine at B={options.B}: {engine:.3f} s ({1000 * engine / options.B:.1f} ms/task; the grid row)")
    print("\ntargets:")
    for name, value, ok in targets(rows, {int(b): n for b, n in data["operator_calls"].items()}):
        print(f"  {'met' if ok else 'NOT MET':<8} {name}: {value:.3f}")


class Stopped(Exception):
    """SIGTERM reached the benchmark (a time box ran out) while a part was measuring."""

    def __init__(self, partial: dict[str, Any] | None = None) -> None:
        super().__init__("stopped")
        self.partial = partial or {}


def _stopped(signum: int, frame: Any) -> None:
    raise Stopped()


def run_part(part: str, args: list[str]) -> Any:
    """Run the benchmark for one part in a child process (same arguments) and read back its JSON;
    a child that failed, or was stopped, after writing some rows gives those rows (it writes each
    row as it is measured)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{part}.json"
        args = list(args)
        if "--out" in args:
            del args[args.index("--out") : args.index("--out") + 2]
        read = lambda: json.loads(out.read_text()) if out.exists() else {}  # noqa: E731
        try:
            done = subprocess.run([sys.executable, __file__, *args, "--part", part, "--out", str(out)])
        except Stopped:
            raise Stopped(read()) from None
        if done.returncode != 0:
            print(f"part {part} failed (exit {done.returncode}); keeping what it measured", flush=True)
        return read()


if __name__ == "__main__":
    main()
