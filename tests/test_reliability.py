"""Kill and resume with nothing lost, divergence, meta-test evaluation, and bad run directories."""

import dataclasses
import json
import re
import signal
import subprocess
import time

import pandas as pd
import pytest
import torch

from anil.engine.batched import Anil
from anil.engine.learner import MetaOutput
from anil.run import checkpoint, trainer
from anil.run.outcome import Status
from anil.run.stops import StopNow
from helpers import MEASURED, anil, anil_command, small_config

RUN = ["experiment=smoke", "B=2", "iterations=40", "eval_every=8", "eval_tasks=4", "checkpoint_every=3", "device=cpu"]
COMPARED = ["iteration", *MEASURED]


def start(run_dir, *extra):
    return subprocess.Popen(
        [*anil_command(), "train", *RUN, *extra, f"hydra.run.dir={run_dir}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(run_dir):
    path = run_dir / "metrics.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0


def wait_for_rows(run_dir, count, process, timeout=120):
    deadline = time.time() + timeout
    while rows(run_dir) < count:
        assert process.poll() is None, process.stderr.read()
        assert time.time() < deadline, "the run made no progress"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    process = start(run_dir)
    assert process.wait() == 0, process.stderr.read()
    return pd.read_csv(run_dir / "metrics.csv")


def assert_same_run(run_dir, reference):
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["iteration"].tolist() == list(range(1, 41))  # no gaps, no duplicates
    pd.testing.assert_frame_equal(metrics[COMPARED], reference[COMPARED])  # identical losses
    assert metrics["time"].is_monotonic_increasing  # the time axis continues from the checkpoint
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


@pytest.mark.slow  # processes and signals
@pytest.mark.parametrize("kill_after", [2, 11, 25])
def test_sigkill_then_resume_reproduces_the_uninterrupted_run(tmp_path, reference, kill_after):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_for_rows(run_dir, kill_after, process)
    process.kill()  # SIGKILL: no handler runs, whatever was being written is cut
    process.wait()
    assert rows(run_dir) < 40
    resumed = anil("resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run_dir, reference)


@pytest.mark.slow  # processes and signals
def test_sigterm_checkpoints_and_says_how_to_resume(tmp_path, reference):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_for_rows(run_dir, 5, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    assert f"anil resume {run_dir}" in process.stderr.read()
    state = checkpoint.load(run_dir / checkpoint.CHECKPOINT)
    assert state["iteration"] == rows(run_dir)  # the checkpoint is at the last logged iteration
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert anil("resume", str(run_dir)).returncode == 0
    assert_same_run(run_dir, reference)


def test_nan_stops_as_diverged_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = Anil.loss

    def poisoned(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:  # the 4th meta-iteration produces a NaN loss
            return MetaOutput(out.loss * float("nan"), out.accuracy, out.support_before, out.support_after)
        return out

    monkeypatch.setattr(Anil, "loss", poisoned)
    summary = trainer.run(small_config(), tmp_path)
    assert summary.status is Status.DIVERGED and summary.iteration == 4 and "non-finite" in summary.reason
    state = checkpoint.load(tmp_path / checkpoint.CHECKPOINT)
    assert state["iteration"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics["iteration"].tolist() == [1, 2, 3, 4] and pd.isna(metrics["loss"].iloc[-1])
    saved = json.loads((tmp_path / "summary.json").read_text())  # strict JSON: NaN written as a string
    assert saved["status"] == "diverged" and saved["final"]["loss"] == "nan"


@pytest.mark.parametrize("stopped_at", [4, 8])  # a validation mid-run, and the final one
def test_a_stop_during_validation_is_redone_on_resume(tmp_path, monkeypatch, stopped_at):
    """The step is taken, its validation abandoned: the run says it was stopped, its checkpoint
    holds the unwritten row, and the resumed metrics equal an uninterrupted run's."""
    config = small_config(iterations=8, eval_every=2)
    reference = tmp_path / "reference"
    assert trainer.run(config, reference).status is Status.COMPLETED
    real, validations = trainer.mean_score, {"n": 0}

    def stopped(setup, tasks):
        validations["n"] += 1
        if validations["n"] == stopped_at // 2:  # validations run at iterations 2, 4, 6, 8
            raise StopNow
        return real(setup, tasks)

    monkeypatch.setattr(trainer, "mean_score", stopped)
    run_dir = tmp_path / "run"
    summary = trainer.run(config, run_dir)
    assert summary.status is Status.INTERRUPTED and summary.iteration == stopped_at
    assert f"during iteration {stopped_at}'s evaluation" in summary.reason
    assert pd.read_csv(run_dir / "metrics.csv")["iteration"].tolist() == list(range(1, stopped_at))
    saved = checkpoint.load(run_dir / checkpoint.CHECKPOINT)
    assert saved["pending_row"]["iteration"] == stopped_at
    assert summary.train_time_s < saved["wall_time"] <= summary.wall_time_s  # start-up and validation too
    monkeypatch.undo()
    resumed = trainer.run(dataclasses.replace(config, resume=True), run_dir)
    assert resumed.status is Status.COMPLETED and resumed.final["val_accuracy"] >= 0
    assert resumed.wall_time_s > saved["wall_time"]  # the job's wall time over both sessions
    metrics, expected = (pd.read_csv(d / "metrics.csv") for d in (run_dir, reference))
    assert metrics["iteration"].tolist() == list(range(1, 9))
    pd.testing.assert_frame_equal(metrics[MEASURED], expected[MEASURED])


def test_blowup_threshold_and_exit_codes(tmp_path):
    result = anil("train", *RUN, "blowup_loss=0.01", f"hydra.run.dir={tmp_path}/a")
    assert result.returncode == 0  # a sweep goes on
    assert "diverged at iteration 1 (loss" in result.stderr and "above blowup_loss=0.01" in result.stderr
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["status"] == "diverged" and not (tmp_path / "a" / "checkpoint.pt").exists()
    failing = anil("train", *RUN, "alpha=1e30", "fail_on_divergence=true", f"hydra.run.dir={tmp_path}/b")
    assert failing.returncode == 1 and "diverged at iteration 1 (non-finite" in failing.stderr


def test_eval_reports_accuracy_with_a_confidence_interval(tmp_path):
    trainer.run(small_config(iterations=20, eval_every=5), tmp_path)
    result = anil("eval", str(tmp_path), "--tasks", "40")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert "\n" not in line and "% ± " in line and "40 tasks" in line and "best.pt" in line
    report = json.loads((tmp_path / "eval.json").read_text())
    assert 0 < report["accuracy_ci95"] < 0.2 and report["tasks"] == 40
    assert report["accuracy"] > 0.35  # trained features beat chance (0.2) clearly, even after 20 iterations
    changed = anil("eval", str(tmp_path), "--tasks", "40", "--checkpoint", "last", "--N", "1", "--alpha", "0.01")
    assert changed.returncode == 0 and "N=1, alpha=0.01" in changed.stdout and "checkpoint.pt" in changed.stdout


def test_corrupt_checkpoint_is_named(tmp_path):
    trainer.run(small_config(iterations=3), tmp_path)
    path = tmp_path / checkpoint.CHECKPOINT
    path.write_bytes(path.read_bytes()[:200])
    result = anil("eval", str(tmp_path), "--checkpoint", "last")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1  # one line, no traceback
    expected = rf"anil eval: checkpoint {re.escape(str(path))} is corrupt \([^\n]+\); delete it to start over"
    assert re.fullmatch(expected, lines[0]), lines[0]


def test_resume_refusals_are_one_line(tmp_path):
    run_dir = tmp_path / "run"
    assert anil("train", *RUN, "iterations=4", f"hydra.run.dir={run_dir}").returncode == 0
    finished = anil("resume", str(run_dir))
    assert finished.returncode == 1 and finished.stderr.strip().splitlines() == [
        f"anil resume: the run in {run_dir} already finished its 4 iterations; nothing to resume "
        "(pass a larger iterations= to train on)"
    ]  # the messages name the command typed
    bad = anil("resume", str(run_dir), "iterations=8", "N=-3")
    assert bad.stderr.strip() == "anil resume: config error: N=-3: inner-loop steps must be >= 1"
    other = anil("train", *RUN, "iterations=8", "N=2", "resume=true", f"hydra.run.dir={run_dir}")
    assert other.returncode == 1 and "trained with other values of N" in other.stderr
    again = anil("train", *RUN, f"hydra.run.dir={run_dir}")
    assert again.returncode == 1 and "already holds a run" in again.stderr
    corrupt = tmp_path / "corrupt"
    assert anil("train", *RUN, "iterations=4", f"hydra.run.dir={corrupt}").returncode == 0
    (corrupt / checkpoint.CHECKPOINT).write_bytes(b"\x00" * 64)
    broken = anil("train", *RUN, "iterations=8", "resume=true", f"hydra.run.dir={corrupt}")
    assert broken.returncode == 1 and "is corrupt" in broken.stderr and len(broken.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # processes and signals
def test_a_second_process_in_the_same_run_directory_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    first = start(run_dir, "iterations=100000")
    try:
        wait_for_rows(run_dir, 1, first)
        second = anil("train", *RUN, f"hydra.run.dir={run_dir}")
        assert second.returncode == 1
        assert "is in use by another anil process (pid" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.kill()
        first.wait()


def test_unwritable_output_location(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = anil("train", *RUN, f"hydra.run.dir={blocker}/run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"anil train: config error: cannot write the output folder {blocker}/run: {blocker} is a file; "
        "choose another hydra.run.dir"
    ]


def test_checkpoint_from_before_a_new_config_key_still_resumes(tmp_path):
    config = small_config(iterations=4, checkpoint_every=2)
    trainer.run(small_config(iterations=2, checkpoint_every=2), tmp_path)
    path = tmp_path / checkpoint.CHECKPOINT
    state = checkpoint.load(path)
    del state["training_values"]["bf16"]  # as written by a version without that key
    del state["format"]
    checkpoint.save(path, state)
    summary = trainer.run(dataclasses.replace(config, resume=True), tmp_path)
    assert summary.status is Status.COMPLETED and summary.iteration == 4
