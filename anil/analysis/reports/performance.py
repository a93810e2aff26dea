"""docs/performance.md from the benchmark's JSON files (scripts/bench.py --out docs/data/performance-*.json).

Every number, the machine and the command come from the JSON; a device without a JSON file is
reported as not measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from anil.analysis.reports import gpu as gpu_report
from anil.analysis.reports import gpu_log, rehearsal
from anil.analysis.reports.markdown import generated_by, source_name, table
from anil.analysis.targets import setting, targets

COMMAND = "anil report performance"
CPU_DATA = "performance-cpu.json"  # scripts/bench.py --out docs/data/performance-cpu.json
# scripts/bench.py --bf16 --parts fc100-convex --N 1 7 --no-extras --out docs/data/performance-cpu-bf16.json
CPU_BF16_DATA = "performance-cpu-bf16.json"
GPU_DATA = "gpu-check.json"  # OUT/gpu_check.json of bash scripts/gpu_check.sh OUT, copied
REHEARSAL = "dress-rehearsal.json"  # scripts/dress_rehearsal.py
GPU_LOG = "gpu-check.log"  # OUT/gpu_check.log beside it: rows of parts cut short (anil/analysis/reports/gpu_log.py)


def intro(data: dict[str, Any] | None) -> list[str]:
    s = (data or {}).get("extras_setting")
    tasks = f"; {s['ways']}-way, {s['shots']} support and {s['query']} query images per class" if s else ""
    return [
        "How fast a meta-iteration is, against what, and where the time goes. What is compared, on identical "
        f"inputs (random uint8 tasks of the real shapes{tasks}), as medians "
        "of interleaved iterations (engine, reference and floor take turns, so drift of the machine hits them alike):",
        "",
        "- **engine**: `anil_meta_loss` + backward, the training path: the body over the whole meta-batch (in "
        "cache-sized chunks on a CPU, one call on a GPU), the inner loop for all tasks at once.",
        "- **reference**: the per-task Python loop (`anil_reference_meta_loss`), as learn2learn-style code runs it; "
        "second order only.",
        "- **floor**: one forward and backward of the body and a linear head over the same images, no inner loop: "
        "what a meta-iteration cannot beat. The best of one batch and cache-sized chunks.",
        "- **graph MiB**: on a CPU, the bytes autograd keeps for backward (each storage once); on CUDA, the peak "
        "allocation of one iteration.",
        "",
        "First-order rows are not interleaved with the floor (they reuse the floor of the second-order row with the "
        "same N) and ran later in their process.",
    ]


def device_section(data: dict[str, Any], title: str, source: str) -> list[str]:
    """One benchmark JSON as a section headed by `title` (a Markdown heading)."""
    lines = [
        title,
        "",
        f"From `{source}`, measured on {data.get('date', 'an unrecorded date')} by "
        f"`{data.get('command', 'scripts/bench.py')}`: torch {data['torch']} on {data['machine']}, "
        f"median of {data['repeats']} iterations.",
        "",
    ]
    header = ["dataset", "B", "geometry", "N", "order", "engine s", "reference s", "floor s", "engine/floor",
              "reference/engine", "graph MiB"]  # fmt: skip
    rows = [_row(r) for r in data["rows"]]
    lines += table(header, rows, [False, True, False, True, False, *[True] * 6])
    lines += limit_lines(data)
    calls = {int(b): n for b, n in data.get("operator_calls", {}).items()}
    if calls:
        lines += ["", f"aten operator calls per meta-iteration ({setting(data)}, body in one call): "
                  + ", ".join(f"B = {b}: {n}" for b, n in sorted(calls.items())) + "."]  # fmt: skip
    parts = data.get("breakdown_s") or {}
    if parts:
        total = sum(parts.values())
        lines += ["", f"Breakdown of one iteration ({setting(data)}):", ""]
        lines += table(["part", "seconds", "share"],
                       [[k, f"{v:.3f}", f"{100 * v / total:.0f}%"] for k, v in parts.items()])  # fmt: skip
    lines += profile_lines(data)
    lines += batch_norm_lines(data)
    scaling = sorted((int(b), s) for b, s in (data.get("engine_s_by_B") or {}).items())
    if scaling:
        per_b = ", ".join(f"B = {b}: {s:.3f} s ({1000 * s / b:.1f} ms/task)" for b, s in scaling)
        lines += ["", f"Engine time against B ({setting(data)}): {per_b}."]
    lines += ["", "Targets (ratios from this one run):", ""]
    lines += table(
        ["target", "measured", "met"],
        [[n, f"{v:.3f}", "yes" if ok else "**no**"] for n, v, ok in targets(data["rows"], calls)],
    )
    return lines


def bf16_section(data: dict[str, Any], source: str) -> list[str]:
    """The CPU benchmark rerun with the body autocast to bfloat16 (engine and floor; the reference
    and the learn2learn-style row stay in float32), so its ratios compare bf16 against fp32 code
    measured in the same run."""
    header = ["dataset", "B", "geometry", "N", "order", "engine s", "reference s", "floor s", "engine/floor",
              "reference/engine", "graph MiB"]  # fmt: skip
    lines = [
        "## CPU, body in bfloat16 (`bf16=true`)",
        "",
        f"From `{source}`, measured on {data.get('date', 'an unrecorded date')} by `{data.get('command')}`: torch "
        f"{data['torch']} on {data['machine']}, median of {data['repeats']} iterations. The body's convolutions, "
        "BatchNorm and pooling run in bfloat16 (oneDNN's bf16 kernels on CPUs with AVX-512 BF16 or AMX), the inner "
        "loop and the head stay in float32; the reference and the learn2learn-style row are float32 code, so "
        "their ratios to the engine are what `bf16=true` buys on this CPU. The FLOP limit is still the fp32 "
        "peak.",
        "",
        *table(header, [_row(r) for r in data["rows"]], [False, True, False, True, False, *[True] * 6]),
        *limit_lines(data),
        "",
        "Targets (ratios from this one run):",
        "",
    ]
    checks = [[n, f"{v:.3f}", "yes" if ok else "**no**"] for n, v, ok in targets(data["rows"], {})]
    return lines + table(["target", "measured", "met"], checks)


def limit_lines(data: dict[str, Any]) -> list[str]:
    """The machine's compute limit and the learn2learn-style baseline (benchmarks from before they
    were measured have neither)."""
    if "peak_flops" not in data:
        return []
    peak = data["peak_flops"]
    rows = [
        [r["dataset"], r["geometry"], r["N"], f"{r['engine_s']:.3f}", f"{r['flop_limit_s']:.3f}",
         f"{r['engine_over_flop_limit']:.2f}", _or_dash(r.get("l2l_style_s"), "{:.3f}"),
         _or_dash(r.get("l2l_style_over_engine"), "{:.2f}")]
        for r in data["rows"] if r["order"] == "second" and r["dataset"] == "fc100"
    ]  # fmt: skip
    return [
        "",
        f"Against the machine's limit: the peak is {peak / 1e9:.0f} GFLOP/s, reached by {data['peak_kernel']} "
        f"in this run: {data['peak_method']}. The body's convolutions forward and backward over the meta-batch's "
        "images, at that rate, take the FLOP-limit time (anil/analysis/baseline.py counts the FLOPs from the "
        "layer shapes); since no kernel of the body ran faster than the peak, engine/limit cannot fall below 1. "
        "The learn2learn-style row is ANIL "
        "as usually written (conv with bias → BatchNorm2d → ReLU → max-pool, a Python loop over tasks, the "
        "head adapted with create_graph=True): the external baseline, computing the same meta-gradient "
        "(tests/test_baseline.py).",
        "",
        *table(
            [
                "dataset",
                "geometry",
                "N",
                "engine s",
                "FLOP-limit s",
                "engine/limit",
                "learn2learn-style s",
                "learn2learn-style/engine",
            ],
            rows,
            [False, False, True, True, True, True, True, True],
        ),  # fmt: skip
    ]


def batch_norm_lines(data: dict[str, Any]) -> list[str]:
    """What the accurate channels-last BatchNorm (anil/engine/batchnorm.py) costs against PyTorch's
    kernel, timed side by side in the same run (benchmarks from before it have no such entry)."""
    cost = data.get("batch_norm_cost_s")
    if not cost:
        return []
    accurate, pytorch = cost["accurate"], cost["pytorch"]
    return [
        "",
        f"The body's BatchNorm ({setting(data)}, interleaved): {accurate:.3f} s per iteration with the "
        f"accurate statistics the engine uses, {pytorch:.3f} s with PyTorch's channels-last kernel "
        f"(×{accurate / pytorch:.3f}), which sums the statistics in float32 and loses accuracy "
        "(tests/test_numerics.py measures both against float64).",
    ]


def profile_lines(data: dict[str, Any]) -> list[str]:
    """Operator time by category from the profiler, with the convolutions' efficiency against the
    GEMM peak (benchmarks from before it was measured have no profile)."""
    if "operator_time_s" not in data:
        return []
    seconds = data["operator_time_s"]
    total = sum(seconds.values())
    rows = [[name, f"{value:.3f}", f"{100 * value / total:.0f}%"] for name, value in seconds.items()]
    lines = ["", "Operator time of one iteration by category (PyTorch profiler, self time of aten operators; "
             f"{setting(data)}, profiled, so slower than the timed rows):", ""]  # fmt: skip
    lines += table(["category", "seconds", "share"], rows, [False, True, True])
    conv = seconds.get("convolution", 0.0)
    if conv > 0 and "peak_flops" in data:
        rate = data["conv_flops"] / conv
        share = 100 * rate / data["peak_flops"]
        lines += ["", f"The convolutions ran at {rate / 1e9:.0f} GFLOP/s, {share:.0f}% of the peak (profiled)."]
    return lines


def _or_dash(value: float | None, form: str) -> str:
    return "—" if value is None else form.format(value)


def _row(r: dict[str, Any]) -> list[Any]:
    reference = "—" if r["reference_s"] is None else f"{r['reference_s']:.3f}"
    ratio = "—" if r["reference_over_engine"] is None else f"{r['reference_over_engine']:.2f}"
    return [
        r["dataset"], r["B"], r["geometry"], r["N"], r["order"], f"{r['engine_s']:.3f}", reference,
        f"{r['floor_s']:.3f}", f"{r['engine_over_floor']:.3f}", ratio, f"{r['memory_bytes'] / 2**20:.1f}",
    ]  # fmt: skip


Measured = tuple[dict[str, Any], str]  # a benchmark's JSON and how the document names its file


def render(cpu: Measured | None, gpu: Measured | None, cpu_bf16: Measured | None = None) -> str:
    """Each device's (data, how the document names its file), or None where it was not measured."""
    sources = [source for _, source in filter(None, (cpu, cpu_bf16, gpu))]
    lines = ["# Performance", "", generated_by(COMMAND, sources or ["docs/data"]), ""]
    lines += intro(cpu[0] if cpu else None)
    lines.append("")
    if cpu:
        lines += device_section(cpu[0], "## CPU", cpu[1])
    else:
        lines += ["## CPU", "", f"Not measured: `scripts/bench.py --out docs/data/{CPU_DATA}` measures it."]
    lines.append("")
    if cpu_bf16:
        lines += [*bf16_section(*cpu_bf16), ""]
    if gpu:
        lines += gpu_report.section(gpu[0], gpu[1], device_section)
    else:
        lines += [
            "## GPU (CUDA)",
            "",
            f"Not measured: there is no `docs/data/{GPU_DATA}`. On a CUDA machine, `bash scripts/gpu_check.sh OUT` "
            f"(about 8 minutes) measures everything this section shows; copy `OUT/gpu_check.json` to "
            f"`docs/data/{GPU_DATA}` and run `{COMMAND}`.",
        ]
    return "\n".join(lines) + "\n"


def write(data_dir: Path, doc_path: Path) -> Path:
    found = []
    for name in (CPU_DATA, GPU_DATA, CPU_BF16_DATA):
        path = data_dir / name
        found.append(
            (json.loads(path.read_text(encoding="utf-8")), source_name(path, doc_path)) if path.exists() else None
        )
    rehearsed = data_dir / REHEARSAL
    rehearsal_section = (
        rehearsal.section(json.loads(rehearsed.read_text(encoding="utf-8")), source_name(rehearsed, doc_path))
        if rehearsed.exists()
        else []
    )
    log = data_dir / GPU_LOG
    if found[1] is not None and log.exists():  # parts cut short before the benchmark wrote rows as it went
        found[1][0]["recovered"] = gpu_log.fill(found[1][0], log.read_text(encoding="utf-8"))
    text = render(*found)
    if rehearsal_section:
        text += "\n" + "\n".join(rehearsal_section) + "\n"
    doc_path.write_text(text, encoding="utf-8")
    return doc_path
