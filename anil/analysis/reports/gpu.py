"""The GPU section of docs/performance.md, from the device check's JSON (scripts/gpu_check.sh
writes OUT/gpu_check.json; committed as docs/data/gpu-check.json).

Everything shown comes from that file: the device, torch and date, each part's status, the
benchmark grid, the engine's variants (bf16, CUDA graphs, compiled body), kernel launches against
N and B, and the per-iteration cost of the figure sweeps under each engine. A rehearsal on a CPU
(`--dry-run`) renders too, labelled as such, so the generator is tested without a GPU."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from anil.analysis.reports.markdown import table
from anil.analysis.targets import shape_of

VARIANTS = {"bench_bf16": "bf16 body", "bench_graphs": "CUDA graphs", "bench_compile": "compiled body"}


def section(
    check: dict[str, Any], source: str, bench_section: Callable[[dict[str, Any], str, str], list[str]]
) -> list[str]:
    """`bench_section` renders one benchmark JSON (the CPU section's renderer, reused)."""
    env = check["environment"]
    title = "## GPU (CUDA)" if not env.get("dry_run") else "## GPU (CUDA): rehearsal only"
    lines = [title, ""]
    if env.get("dry_run"):
        lines += [
            "The device check has only been rehearsed (`--dry-run`, every size shrunk, on "
            f"{env.get('device')}): the numbers below test the pipeline, not a GPU.",
            "",
        ]
    lines += [
        f"From `{source}` (`bash scripts/gpu_check.sh`), run on {env.get('date')}: {env.get('device')}, "
        f"torch {env.get('torch')} (CUDA {env.get('cuda')}), Python {env.get('python')}, {env.get('machine')}.",
        "",
        "Each part ran in its own process under its own time limit:",
        "",
    ]
    parts = check["parts"]
    lines += table(
        ["part", "status", "seconds", "limit"],
        [[name, p["status"], f"{p['wall_s']:.0f}", p["box_s"]] for name, p in parts.items()],
        [False, False, True, True],
    )
    recovered = check.get("recovered") or []
    if recovered:
        lines += ["", f"The parts {', '.join(recovered)} ran past their time limits before the benchmark wrote rows "
                  "as it measured them: their rows below are those the check's log kept (a row's numbers as "
                  "printed, three significant digits); the rest of each of those parts was cut short and is "
                  "missing."]  # fmt: skip
    tests = [
        (name, parts[name]["result"]) for name in ("gpu_tests", "test_suite") if (parts.get(name) or {}).get("result")
    ]
    for name, result in tests:
        failed = ", ".join(f"`{f}`" for f in result["failed"]) or "none"
        lines += ["", f"{name}: {result['tests']} tests, {result['failures'] + result['errors']} failed "
                  f"({failed}), {result['skipped']} skipped."]  # fmt: skip
    bench = (parts.get("bench") or {}).get("result")
    if bench:
        lines += ["", *bench_section(bench, "### Benchmark", source)]
        lines += variant_lines(bench, parts)
        lines += launch_lines(bench, (parts.get("bench_graphs") or {}).get("result"))
    sweep = (parts.get("sweeps") or {}).get("result")
    if sweep:
        lines += sweep_lines(sweep)
    units = ((parts.get("unit_prices") or {}).get("result") or {}).get("unit_costs")
    if units:
        lines += unit_lines(units)
    return lines


def unit_lines(units: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """What one counted operation costs on the device, per task (scripts/complexity.py --units-only)."""
    rows = [[dataset, geometry, name, f"{1e6 * seconds:.1f}"]
            for dataset, by_geometry in units.items() for geometry, ops in by_geometry.items()
            for name, seconds in ops.items()]  # fmt: skip
    header = ["dataset shape", "geometry", "operation", "µs per task"]
    return ["", "### Unit prices", "", "Microseconds per task of each counted operation, timed on its own "
            "(the ratio of an inner step's price to a body pass decides the priced verdicts on this device):", "",
            *table(header, rows, [False, False, False, True])]  # fmt: skip


def variant_lines(bench: dict[str, Any], parts: dict[str, Any]) -> list[str]:
    """Each variant's engine time beside the plain engine's on the same rows (separate processes)."""
    plain = {_key(r): r["engine_s"] for r in bench["rows"]}
    rows = []
    for name, label in VARIANTS.items():
        result = (parts.get(name) or {}).get("result")
        for r in (result or {}).get("rows", []):
            if _key(r) in plain:
                ratio = plain[_key(r)] / r["engine_s"]
                rows.append([label, r["dataset"], r["geometry"], r["N"], r["order"], f"{plain[_key(r)]:.4f}",
                             f"{r['engine_s']:.4f}", f"{ratio:.2f}", f"{r['memory_bytes'] / 2**20:.1f}"])  # fmt: skip
    if not rows:
        return []
    header = ["variant", "dataset", "geometry", "N", "order", "engine s", "variant s", "speed-up", "variant MiB"]
    return ["", "### The engine's variants", "", "Same shapes as the benchmark; each variant measured in its own run "
            "(speed-up = engine s / variant s, across two runs):", "",
            *table(header, rows, [False, False, False, True, False, True, True, True, True])]  # fmt: skip


def launch_lines(bench: dict[str, Any], graphed: dict[str, Any] | None) -> list[str]:
    """aten operator calls and CUDA kernel launches of one engine iteration against N and B."""
    launches = bench.get("launches") or []
    if not launches:
        return []
    replayed = {(r["N"], r["B"]): r.get("graphed_kernel_launches") for r in (graphed or {}).get("launches", [])}
    rows = [
        [r["N"], r["B"], r["aten_calls"], _count(r["kernel_launches"]), _count(replayed.get((r["N"], r["B"])))]
        for r in launches
    ]
    header = ["N", "B", "aten calls", "kernel launches", "launches, CUDA graph"]
    intro = f"One engine iteration, {shape_of(bench)} (body in one call):"
    return ["", "### Launches against N and B", "", intro, "", *table(header, rows, [True] * 5)]


def sweep_lines(jobs: list[dict[str, Any]]) -> list[str]:
    """Seconds per iteration against N for the batched engine and the per-task loop."""
    cost: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for job in jobs:
        if job["status"] == "completed" and job["seconds_per_iteration"]:
            cost[(job["geometry"], job["N"])][job["engine"]].append(job["seconds_per_iteration"])
    rows = []
    for (geometry, n), by_engine in sorted(cost.items()):
        batched, per_task = (statistics.median(by_engine[e]) if by_engine[e] else None for e in ("batched", "per_task"))
        ratio = f"{per_task / batched:.2f}" if batched and per_task else "—"
        rows.append([geometry, n, _seconds(batched), _seconds(per_task), ratio])
    return ["", "### Figure sweeps: cost per iteration against N", "",
            f"{len(jobs)} jobs of a short fig2_embedded sweep (seconds per meta-iteration, training only):", "",
            *table(["geometry", "N", "batched s", "per_task s", "per_task/batched"], rows,
                   [False, True, True, True, True])]  # fmt: skip


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["dataset"], row["B"], row["geometry"], row["N"], row["order"]


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"
