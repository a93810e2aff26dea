"""scripts/gpu_check.py's plumbing: a part that runs past its limit stops with all its children,
and a part's results are read back (JUnit XML, sweep folders) into the report."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
assert spec is not None and spec.loader is not None
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up while the script loads
spec.loader.exec_module(gpu_check)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_part_past_its_limit_stops_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    spawner = (
        "import subprocess, sys, time, pathlib;"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']);"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(child.pid)); time.sleep(120)"
    )
    part = gpu_check.Part("slow", 3, [sys.executable, "-c", spawner])
    with (tmp_path / "log").open("w") as log:
        outcome = gpu_check.run_part(part, log)
    assert outcome["status"] == "timed out" and outcome["returncode"] is None
    assert outcome["wall_s"] < 120 / 2  # cut at its box, long before the 120 s the part would have run
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child), "the part's child outlived its limit"


def test_failed_part_and_junit_counts(tmp_path):
    junit = tmp_path / "t.xml"
    junit.write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
        '<testcase classname="tests.test_a" name="test_ok"/>'
        '<testcase classname="tests.test_a" name="test_bad"><failure message="x"/></testcase>'
        '<testcase classname="tests.test_a" name="test_skip"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )
    part = gpu_check.Part("tests", 30, [sys.executable, "-c", "raise SystemExit(3)"], junit, reads="junit")
    with (tmp_path / "log").open("w") as log:
        outcome = gpu_check.run_part(part, log)
    assert outcome["status"] == "failed" and outcome["returncode"] == 3
    assert outcome["result"] == {
        "tests": 3,
        "failures": 1,
        "errors": 0,
        "skipped": 1,
        "failed": ["tests.test_a::test_bad"],
    }


def test_sweep_jobs_are_read_with_their_config_and_curve(tmp_path):
    job = tmp_path / "geometry=nonconvex,N=5,engine=per_task"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(
        "geometry:\n  name: nonconvex\nengine: per_task\nN: 5\nalpha_schedule: constant\n"
    )
    (job / "summary.json").write_text(json.dumps({"status": "completed", "seconds_per_iteration": 0.25}))
    (job / "metrics.csv").write_text("iteration,loss,time\n1,1.6,0.3\n2,1.5,0.55\n")
    (row,) = gpu_check.read_sweep(tmp_path)
    assert (row["geometry"], row["engine"], row["N"], row["seconds_per_iteration"]) == (
        "nonconvex",
        "per_task",
        5,
        0.25,
    )
    assert row["curve"] == [(1, 1.6, 0.3), (2, 1.5, 0.55)]


def test_without_cuda_the_full_check_refuses_and_points_to_the_dry_run(tmp_path, capsys):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert gpu_check.main([str(tmp_path / "out")]) == 2
    assert "--dry-run" in capsys.readouterr().err


def test_the_dependency_probe_finds_what_the_code_reads():
    """The probe passes where the packages are installed (here: make test installed them); the
    kanjivg wheel has data only, so probing `import kanjivg` would fail even then."""
    lines = (REPO / "scripts" / "gpu_check.sh").read_text().splitlines()
    line = next(text for text in lines if text.startswith("PROBE="))
    probe = line.split("=", 1)[1].strip("'")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0
    assert subprocess.run([sys.executable, "-c", "import kanjivg"], capture_output=True).returncode != 0


@pytest.mark.slow
def test_a_benchmark_stopped_by_its_box_keeps_the_rows_it_measured(tmp_path):
    """SIGTERM to the benchmark's process group (what a time box sends) while a part is measuring:
    the rows that part had written are folded into the JSON before the benchmark exits."""
    out = tmp_path / "bench.json"
    command = [sys.executable, "scripts/bench.py", "--quick", "--device", "cpu", "--parts", "fc100-convex",
               "--no-extras", "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout is not None
    for line in process.stdout:  # the first row of the part's grid has been measured and written
        if line.startswith("| fc100 |"):
            break
    os.killpg(process.pid, 15)
    assert process.wait(timeout=60) == 128 + 15
    data = json.loads(out.read_text())
    assert len(data["rows"]) >= 1 and data["complete"] is False


LOG = """
===== bench (box 110 s): python scripts/bench.py --device cuda --B 32 --repeats 10 --out /tmp/x/bench.json
torch 2.11.0+cu130 on NVIDIA H200; 5-way, 5+5 per class; median of 10
| dataset | B | geometry | N | order | engine s | reference s | floor s | engine/floor | reference/engine | graph MiB |
|---|---|---|---|---|---|---|---|---|---|---|
fp32 GEMM peak: 47973 GFLOP/s (2048^3, the fastest of 10)
| fc100 | 32 | convex | 7 | second | 0.029 | 0.666 | 0.009 | 3.120 | 22.58 | 1931.5 |
| fc100 | 32 | convex | 7 | first | 0.024 | — | 0.009 | 2.494 | — | 1931.0 |
===== bench: timed out after 110.2 s

===== bench_compile (box 60 s): python scripts/bench.py --compile
torch 2.11.0+cu130 on NVIDIA H200; 5-way, 5+5 per class; median of 6; body compiled
===== bench_compile: timed out after 60.1 s
"""


def test_rows_a_part_printed_before_its_box_ran_out_are_recovered_from_the_log():
    from anil.analysis.reports import gpu_log

    check = {"environment": {"date": "2026-12-04 16:00:24 UTC"}, "parts": {"bench": {"result": None},
             "bench_compile": {"result": None}, "sweeps": {"result": {"kept": True}}}}  # fmt: skip
    assert gpu_log.fill(check, LOG) == ["bench"]  # the compiled part printed no row: nothing to recover
    bench = check["parts"]["bench"]["result"]
    assert bench["recovered_from_log"] and bench["date"] == "2026-12-04" and bench["repeats"] == 10
    first, second = bench["rows"]
    assert first["engine_s"] == 0.029 and first["reference_over_engine"] == 22.58 and first["N"] == 7
    assert second["reference_s"] is None and second["memory_bytes"] == 1931.0 * 2**20
    assert check["parts"]["sweeps"]["result"] == {"kept": True} and check["parts"]["bench_compile"]["result"] is None


def test_the_full_check_fits_its_eight_minutes_and_prices_the_units(tmp_path):
    full, dry = gpu_check.plan(False, tmp_path), gpu_check.plan(True, tmp_path)
    assert sum(part.seconds for part in full) <= 8 * 60
    for parts in (full, dry):
        units = next(part for part in parts if part.name == "unit_prices")
        assert "--units-only" in units.command and units.result == tmp_path / "units.json"
    assert [part.name for part in full][-1] == "bench_compile"  # the slowest to start goes last


@pytest.mark.slow
def test_the_dress_rehearsal_writes_real_formats_and_measures_each_job(tmp_path):
    """scripts/dress_rehearsal.py at a reduced size: every format decodes into the cache, and a
    paper experiment's job runs through the command line with its time and memory recorded."""
    out = tmp_path / "rehearsal.json"
    command = [sys.executable, "-m", "scripts.dress_rehearsal", "--scale", "0.04", "--iterations", "2",
               "--experiments", "fig1_fc100", "--max-jobs", "1", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert {(r["dataset"], r["format"]) for r in data["decode"]} == {
        ("fc100", "cifar"),
        ("miniimagenet", "pickles"),
        ("miniimagenet", "csv"),
    }
    assert all(r["images"] > 0 and r["cache_bytes"] > 0 for r in data["decode"])
    measured = {(r["dataset"], r["geometry"]): r for r in data["curvature"]}  # α·L at initialisation, both datasets
    assert set(measured) == {(d, g) for d in ("fc100", "miniimagenet") for g in ("convex", "nonconvex")}
    assert all(r["L"] > 0 and r["alpha_L"] == pytest.approx(0.1 * r["L"], rel=1e-6) for r in measured.values())
    (experiment,) = data["experiments"]
    (job,) = experiment["rows"]
    assert job["exit"] == 0 and job["N"] == 1 and job["seconds_per_iteration"] > 0 and job["peak_bytes"] > 2**20
    assert experiment["jobs"] == 35 and experiment["projected_training_s"] is None  # one N of seven: no projection
