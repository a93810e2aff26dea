"""`anil train` and `anil plot` end to end, through the real command line."""

import json
import subprocess

import pandas as pd
import pytest

from anil.metrics import COLUMNS
from conftest import anil_command

SMOKE = ["experiment=smoke", "iterations=2", "eval_every=1", "eval_tasks=4", "B=3", "device=cpu"]


def train(cwd, *args):
    result = subprocess.run([*anil_command(), "train", *SMOKE, *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def only_run(cwd):
    runs = list((cwd / "outputs" / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_two_iterations_write_every_metric(tmp_path, geometry):
    train(tmp_path, f"geometry={geometry}", "N=2", "seed=3", f"hydra.run.dir={tmp_path}/outputs/runs/a")
    run = only_run(tmp_path)
    metrics = pd.read_csv(run / "metrics.csv")
    assert tuple(metrics.columns) == COLUMNS
    assert metrics["iteration"].tolist() == [1, 2]
    assert metrics[list(COLUMNS[:8])].notna().all().all()
    assert (metrics["time"].diff().dropna() > 0).all()
    assert metrics["val_accuracy"].between(0, 1).all()
    assert (metrics["support_loss_after"] < metrics["support_loss_before"]).all()  # the inner loop descends
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["device"] == "cpu"
    assert summary["final"]["loss"] == pytest.approx(metrics["loss"].iloc[-1])
    config = (run / ".hydra" / "config.yaml").read_text()
    assert f"name: {geometry}" in config


def test_same_seed_same_losses(tmp_path):
    for name in ("a", "b"):
        train(tmp_path, "seed=5", f"hydra.run.dir={tmp_path}/outputs/runs/{name}")
    a, b = (pd.read_csv(tmp_path / "outputs" / "runs" / n / "metrics.csv") for n in ("a", "b"))
    columns = ["loss", "accuracy", "grad_norm_w", "grad_norm_phi", "val_loss"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    c = tmp_path / "c"
    c.mkdir()
    train(c, "seed=6", f"hydra.run.dir={c}/outputs/runs/c")
    assert not pd.read_csv(c / "outputs" / "runs" / "c" / "metrics.csv")["loss"].equals(a["loss"])


def test_sweep_then_plot(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [*anil_command(), "train", "-m", *SMOKE, "geometry=convex,nonconvex", "N=1,2", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 4 and not any("device" in j for j in jobs)  # device is excluded from job names
    diverged = sweep / jobs[0] / "summary.json"  # mark one job as diverged, as the trainer would
    diverged.write_text(diverged.read_text().replace('"status": "completed"', '"status": "diverged"'))
    (sweep / "broken" / ".hydra").mkdir(parents=True)
    (sweep / "broken" / ".hydra" / "config.yaml").write_text((sweep / jobs[0] / ".hydra" / "config.yaml").read_text())
    plotted = subprocess.run([*anil_command(), "plot", str(sweep)], cwd=tmp_path, capture_output=True, text=True)
    assert plotted.returncode == 0, plotted.stderr
    assert "skipped" in plotted.stderr and "broken" in plotted.stderr
    for geometry in ("convex", "nonconvex"):
        assert (sweep / f"procedural_{geometry}.png").stat().st_size > 10_000
    curves = pd.read_csv(sweep / "curves.csv")
    assert curves.groupby(["geometry", "N"])["diverged"].any().sum() == 1
    assert sorted(curves.groupby(["geometry", "N"]).size().index.tolist()) == [
        ("convex", 1), ("convex", 2), ("nonconvex", 1), ("nonconvex", 2)
    ]


def test_plot_of_an_empty_folder_fails_clearly(tmp_path):
    result = subprocess.run([*anil_command(), "plot", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1 and "no job with metrics" in result.stderr
