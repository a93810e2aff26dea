"""The prepared device check: every measurement the GPU tables need, in one time-boxed command.

    bash scripts/gpu_check.sh OUT            # on a CUDA machine: at most about 8 minutes
    bash scripts/gpu_check.sh --dry-run OUT  # every part shrunk, on a CPU: about 2 minutes

Parts run one after another, each in its own process under its own time limit, so that a slow or
failing part costs only its own box and the others still report. Whatever a part printed goes to
OUT/gpu_check.log; what it measured goes into OUT/gpu_check.json, with each part's status
(ok | failed | timed out | skipped), exit code and wall time, the device, torch version and date.
The JSON is rewritten after every part: a check cut short still leaves what it had measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anil.atomic import write_json_atomic  # the tree is on the path: scripts/gpu_check.sh puts it there

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


@dataclass
class Part:
    name: str
    seconds: int  # its time box
    command: list[str]
    result: Path | None = None  # a JSON file the part writes, folded into gpu_check.json
    reads: str = "json"  # json | junit | sweep
    env: dict[str, str] = field(default_factory=dict)


def bench(out: Path, name: str, *options: str) -> list[str]:
    return [PY, "scripts/bench.py", *options, "--out", str(out / f"{name}.json")]


# Time boxes (seconds) on a CUDA machine, from the first run's log (an H200, 2026-12-04), where every
# part ran past the box it had: the GPU tests took 54 s (the compiled body's test 39 s of it); the
# benchmark measured a grid row in 5-25 s at 10 repeats, the per-task reference at N = 30 being most
# of it (2.3 s an iteration); the short sweeps needed about 95 s with N = 30, about 55 s without it.
# The whole check stays within 8 minutes: the full test suite is left to `make test` on the device.
BOXES = {"gpu_tests": 90, "bench": 130, "bench_bf16": 40, "bench_graphs": 60, "unit_prices": 30, "sweeps": 60,
         "bench_compile": 60}  # fmt: skip
DRY_BOXES = {"gpu_tests": 60, "bench": 110, "bench_bf16": 40, "bench_graphs": 40, "unit_prices": 60, "sweeps": 60}


def plan(dry: bool, work: Path) -> list[Part]:
    """The parts and their boxes. Full: FC100 shape B = 32 at N = 1, 7, 30 (both geometries) and
    miniImageNet shape B = 32 at N = 7; engine, per-task reference and floor; then the engine in
    bf16 and replayed from CUDA graphs (convex), the unit prices the cost claims use, short figure
    sweeps, and a compiled body last (the slowest to start). Dry: B = 4, N = 1 (and 7), 1 repeat."""
    boxes = DRY_BOXES if dry else BOXES
    if dry:
        grid = ["--quick", "--device", "cpu", "--parts", "fc100-convex"]
        variant_grid = grid
    else:
        grid = ["--device", "cuda", "--B", "32", "--mini-B", "32", "--repeats", "5", "--N", "1", "7", "30"]
        variant_grid = ["--device", "cuda", "--B", "32", "--repeats", "3", "--parts", "fc100-convex"]
    gpu_tests = ["tests/test_gpu.py", "tests/test_graphs.py"]
    units = [PY, "scripts/complexity.py", "--units-only", "--no-doc", "--json", str(work / "units.json")]
    units += ["--device", "cpu", "--repeats", "1", "--B", "2"] if dry else ["--device", "cuda", "--repeats", "5"]
    parts = [
        Part("gpu_tests", boxes["gpu_tests"],
             [PY, "-m", "pytest", "-m", "gpu or not gpu", "-q", "-p", "no:cacheprovider", *gpu_tests]),
        Part("bench", boxes["bench"], bench(work, "bench", *grid), work / "bench.json"),
        Part("bench_bf16", boxes["bench_bf16"], bench(work, "bf16", *variant_grid, "--N", "1", "7", "--bf16",
                                                     "--no-extras"), work / "bf16.json"),
        # CUDA graphs keep the extras: their launch counts against N and B are the point.
        Part("bench_graphs", boxes["bench_graphs"],
             bench(work, "graphs", *variant_grid, *([] if dry else ["--N", "1", "7", "30"]), "--cuda-graphs"),
             work / "graphs.json"),
        Part("unit_prices", boxes["unit_prices"], units, work / "units.json"),
        sweep_part(dry, work, boxes["sweeps"]),
    ]  # fmt: skip
    if not dry:  # compiling takes longer than the whole dry run on a CPU, and most of its box on a GPU
        compiled = ["--device", "cuda", "--B", "32", "--repeats", "3", "--N", "7", "--parts", "fc100-convex"]
        command = bench(work, "compile", *compiled, "--compile", "--no-extras")
        parts.append(Part("bench_compile", boxes["bench_compile"], command, work / "compile.json"))
    parts[0].result, parts[0].reads = work / "gpu_tests.xml", "junit"
    parts[0].command.append(f"--junitxml={work / 'gpu_tests.xml'}")
    return parts


def sweep_part(dry: bool, work: Path, box: int) -> Part:
    """Short figure sweeps on the embedded data, timed with the batched engine and the per-task
    loop (the paper's cost model): seconds per iteration against N for each, and the loss curves."""
    folder = work / "sweep"
    grid = ["N=1,5", "iterations=2", "B=2"] if dry else ["N=1,5,10,20", "iterations=30", "B=8"]
    command = [
        PY, "-m", "anil", "train", "-m", "experiment=fig2_embedded", "alpha_schedule=constant", "seed=0",
        "engine=batched,per_task", "eval_every=0", "eval_tasks=8", *grid,
        f"device={'cpu' if dry else 'cuda'}", f"hydra.sweep.dir={folder}",
    ]  # fmt: skip
    return Part("sweeps", box, command, folder, reads="sweep")


def read_result(part: Part) -> Any:
    if part.result is None or not part.result.exists():
        return None
    if part.reads == "junit":
        suite = ElementTree.parse(part.result).getroot()
        suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
        assert suite is not None
        failed = [
            f"{case.get('classname')}::{case.get('name')}"
            for case in suite.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None
        ]
        counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
        return {**counts, "failed": failed}
    if part.reads == "sweep":
        return read_sweep(part.result)
    return json.loads(part.result.read_text())


def read_sweep(folder: Path) -> list[dict[str, Any]]:
    """One row per finished job: its config's N, engine, schedule, the measured seconds per
    iteration, and its loss curve (iteration, loss, cumulative training seconds)."""
    import csv

    import yaml

    rows = []
    for summary_path in sorted(folder.glob("*/summary.json")):
        summary = json.loads(summary_path.read_text())
        config = yaml.safe_load((summary_path.parent / ".hydra" / "config.yaml").read_text())
        with (summary_path.parent / "metrics.csv").open() as handle:
            curve = [(int(r["iteration"]), float(r["loss"]), float(r["time"])) for r in csv.DictReader(handle)]
        rows.append(
            {
                "job": summary_path.parent.name,
                "geometry": config.get("geometry", {}).get("name"),
                "engine": config.get("engine"),
                "N": config.get("N"),
                "alpha_schedule": config.get("alpha_schedule"),
                "status": summary.get("status"),
                "seconds_per_iteration": summary.get("seconds_per_iteration"),
                "curve": curve,
            }
        )
    return rows


def environment(dry: bool) -> dict[str, Any]:
    probe = (
        "import json, torch; cuda = torch.cuda.is_available();"
        "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'cuda_available': cuda,"
        "'device': torch.cuda.get_device_name(0) if cuda else 'cpu'}))"
    )
    found = subprocess.run([PY, "-c", probe], capture_output=True, text=True, timeout=60)
    info = json.loads(found.stdout) if found.returncode == 0 else {"probe_error": found.stderr.strip()[-500:]}
    smi = shutil.which("nvidia-smi")
    if smi:
        query = [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        info["nvidia_smi"] = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip()
    return {
        **info,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "dry_run": dry,
    }


def run_part(part: Part, log: Any) -> dict[str, Any]:
    """Run one part under its box; its output goes to the log as it comes."""
    log.write(f"\n===== {part.name} (box {part.seconds} s): {' '.join(part.command)}\n")
    log.flush()
    tick = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **part.env}
    # Its own process group: at the limit the part's children (the benchmark's per-part processes,
    # a sweep's jobs) stop with it instead of running on into the next part's time.
    process = subprocess.Popen(
        part.command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        code: int | None = process.wait(timeout=part.seconds)
        status = "ok" if code == 0 else "failed"
    except subprocess.TimeoutExpired:
        stop_group(process)
        status, code = "timed out", None
    wall = time.monotonic() - tick
    log.write(f"===== {part.name}: {status} after {wall:.1f} s\n")
    log.flush()
    try:
        result = read_result(part)
    except (OSError, ValueError, KeyError, ElementTree.ParseError) as error:  # a part cut short mid-write
        result, status = None, f"{status}; its result unreadable: {error}"
    return {"status": status, "returncode": code, "wall_s": round(wall, 1), "box_s": part.seconds, "result": result}


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the part's whole process group, SIGKILL to what is left after 10 s."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("outputs/gpu_check"))
    parser.add_argument("--dry-run", action="store_true", help="shrink every size and run on the CPU")
    parser.add_argument("--only", nargs="+", help="run only these parts (by name)")
    options = parser.parse_args(argv)
    options.out.mkdir(parents=True, exist_ok=True)
    report_path = options.out / "gpu_check.json"
    report: dict[str, Any] = {"environment": environment(options.dry_run), "parts": {}}
    if not options.dry_run and not report["environment"].get("cuda_available"):
        print("gpu_check: no CUDA device here; run with --dry-run for the CPU rehearsal", file=sys.stderr)
        return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp, (options.out / "gpu_check.log").open("w") as log:
        for part in plan(options.dry_run, Path(tmp)):
            if options.only and part.name not in options.only:
                continue
            outcome = run_part(part, log)
            report["parts"][part.name] = outcome
            report["wall_s"] = round(time.monotonic() - started, 1)
            write_json_atomic(report_path, report)
            print(
                f"{part.name:<14} {outcome['status']:<10} {outcome['wall_s']:>6.1f} s (box {part.seconds} s)",
                flush=True,
            )
    print(f"wrote {report_path} and {options.out / 'gpu_check.log'} ({report['wall_s']:.0f} s in all)")
    return 0 if all(p["status"] == "ok" for p in report["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
