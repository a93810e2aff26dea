"""`anil train` and `anil plot` end to end, through the real command line."""

import json
import platform
import time

import pandas as pd
import pytest
import torch

from anil.analysis.runs import loss_jumped
from anil.run.metrics import COLUMNS
from anil.run.setup import build
from anil.run.trainer import objective_gradient, squared_norm
from anil.tasks import TaskBatch
from helpers import SMOKE, anil, small_config


def train(cwd, *args):
    result = anil("train", *SMOKE, *args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def only_run(cwd):
    runs = list((cwd / "outputs" / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_two_iterations_write_every_metric(tmp_path, geometry):
    run_dir = f"hydra.run.dir={tmp_path}/outputs/runs/a"
    started = time.time()
    train(
        tmp_path,
        f"geometry={geometry}",
        "N=2",
        "seed=3",
        "optim.beta_w=0.002",
        "optim.beta_phi=${optim.beta_w}",
        run_dir,
    )
    run = only_run(tmp_path)
    metrics = pd.read_csv(run / "metrics.csv")
    assert tuple(metrics.columns) == COLUMNS
    assert metrics["iteration"].tolist() == [1, 2]
    assert metrics[list(COLUMNS[:8])].notna().all().all()
    assert (metrics["time"].diff().dropna() > 0).all()
    # what the time axis can be trusted for: the steps' own CPU time, and when each ended
    assert (metrics["cpu_time"] > 0).all() and metrics["cpu_time"].is_monotonic_increasing
    assert metrics["clock"].is_monotonic_increasing and metrics["clock"].between(started, time.time()).all()
    assert metrics["val_accuracy"].between(0, 1).all()
    assert (metrics["support_loss_after"] < metrics["support_loss_before"]).all()  # the inner loop descends
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["device"] == "cpu"
    assert summary["peak_memory_bytes"] > 2**20  # this run's own high-water mark
    assert summary["host"] == platform.node() and summary["cpu_time_s"] == pytest.approx(metrics["cpu_time"].iloc[-1])
    assert summary["final"]["loss"] == pytest.approx(metrics["loss"].iloc[-1])
    config = (run / ".hydra" / "config.yaml").read_text()
    assert f"name: {geometry}" in config
    assert "beta_phi: 0.002" in config and "${" not in config  # recorded as the values the run used


def test_same_seed_same_losses(tmp_path):
    for name in ("a", "b"):
        train(tmp_path, "seed=5", f"hydra.run.dir={tmp_path}/outputs/runs/{name}")
    a, b = (pd.read_csv(tmp_path / "outputs" / "runs" / n / "metrics.csv") for n in ("a", "b"))
    columns = ["loss", "accuracy", "sq_grad_norm_w", "sq_grad_norm_phi", "val_loss"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    c = tmp_path / "c"
    c.mkdir()
    train(c, "seed=6", f"hydra.run.dir={c}/outputs/runs/c")
    assert not pd.read_csv(c / "outputs" / "runs" / "c" / "metrics.csv")["loss"].equals(a["loss"])


FIGURE_SWEEP = [
    "dataset=procedural",
    "N=1,2",
    "seed=0",
    "iterations=3",
    "eval_every=0",
    "eval_tasks=4",
    "B=2",
    "device=cpu",
]


def test_figure_sweep_then_plot(tmp_path):
    """The fig1 experiment's own sweep, cut to two jobs, through the real CLI; then anil plot."""
    sweep = tmp_path / "sweep"
    result = anil("train", "-m", "experiment=fig1_embedded", *FIGURE_SWEEP, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == [  # readable names: geometry first, then what the sweep varied (the experiment left out)
        "geometry=convex,B=2,N=1,dataset=procedural,eval_every=0,eval_tasks=4,iterations=3,seed=0",
        "geometry=convex,B=2,N=2,dataset=procedural,eval_every=0,eval_tasks=4,iterations=3,seed=0",
    ]
    plotted = anil("plot", str(sweep), cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    assert "time axis" not in plotted.stderr  # the sweep's jobs ran one after another
    for name in ("procedural_convex", "procedural_convex_gradnorms"):
        assert (sweep / f"{name}.png").stat().st_size > 10_000
        assert (sweep / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    curves = pd.read_csv(sweep / "curves.csv")
    assert sorted(curves["N"].unique()) == [1, 2] and len(curves) == 2 * 3  # one curve per N, 3 iterations each
    for job in jobs:
        metrics = pd.read_csv(sweep / job / "metrics.csv")
        n = int(job.split(",N=")[1].split(",")[0])
        assert curves.loc[curves["N"] == n, "loss"].tolist() == pytest.approx(metrics["loss"].tolist())


def test_plot_marks_diverged_skips_missing_and_reads_running_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    result = anil("train", "-m", *SMOKE, "geometry=convex,nonconvex", "N=1,2", "seed=0,1", f"hydra.sweep.dir={sweep}",
                  cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sweep: job 2 of 8" in result.stdout + result.stderr and "left)" in result.stdout + result.stderr
    assert "anil train: sweep of 8 jobs done in" in result.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 8 and not any("device" in j.name for j in jobs)  # device is excluded from job names
    nonconvex_n2 = [j for j in jobs if "geometry=nonconvex" in j.name and "N=2" in j.name]
    diverged = nonconvex_n2[0] / "summary.json"  # one seed diverged, as the trainer would record it
    diverged.write_text(diverged.read_text().replace('"status": "completed"', '"status": "diverged"'))
    running = nonconvex_n2[1]  # the other is still running: no summary, a NaN loss, a half-written row
    (running / "summary.json").unlink()
    metrics = (running / "metrics.csv").read_text().splitlines(keepends=True)
    first = metrics[1].split(",")
    first[2] = "nan"
    (running / "metrics.csv").write_text(metrics[0] + ",".join(first) + metrics[2][:7])
    spiked = next(j for j in jobs if "geometry=convex" in j.name and "N=2" in j.name and "seed=1" in j.name)
    table = pd.read_csv(spiked / "metrics.csv")
    table["loss"] = [0.1, 5.0]  # the loss jumped 50x above its running minimum
    table.to_csv(spiked / "metrics.csv", index=False)
    side_by_side = pd.read_csv(jobs[1] / "metrics.csv")  # as if jobs 1 and 2 had trained at the same time
    beside = pd.read_csv(jobs[2] / "metrics.csv")  # its steps' times too: job 1's own could reach back in time
    side_by_side["clock"], side_by_side["time"] = beside["clock"].to_numpy(), beside["time"].to_numpy()
    side_by_side.to_csv(jobs[1] / "metrics.csv", index=False)
    (jobs[0] / "metrics.csv").unlink()  # a job that failed before training
    (sweep / "broken" / ".hydra").mkdir(parents=True)
    (sweep / "broken" / ".hydra" / "config.yaml").write_text((jobs[1] / ".hydra" / "config.yaml").read_text())
    plotted = anil("plot", str(sweep), "--smooth", "2", cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    assert f"skipped {jobs[0]}: no metrics.csv" in plotted.stderr
    assert f"skipped {sweep / 'broken'}: no metrics.csv" in plotted.stderr
    assert "diverged (marked in the legends)" in plotted.stderr
    assert f"loss jumped ×10 above its running minimum (marked in the legends): {spiked}" in plotted.stderr
    assert "procedural convex (constant): final training loss N=1 " in plotted.stderr  # what the figure shows
    assert "N=2's loss jumped in 1/2" in plotted.stderr
    assert "time axis: 2 of 7 jobs trained at the same time as another on one host" in plotted.stderr
    for geometry in ("convex", "nonconvex"):
        assert (sweep / f"procedural_{geometry}.png").stat().st_size > 10_000
    curves = pd.read_csv(sweep / "curves.csv")
    marked = curves.groupby(["geometry", "N"])["diverged_runs"].first()
    assert marked.to_dict() == {("convex", 1): 0, ("convex", 2): 0, ("nonconvex", 1): 0, ("nonconvex", 2): 2}
    jumped = curves.groupby(["geometry", "N"])["jumped_runs"].first()
    assert jumped.to_dict() == {("convex", 1): 0, ("convex", 2): 1, ("nonconvex", 1): 0, ("nonconvex", 2): 0}
    last = curves[(curves["geometry"] == "nonconvex") & (curves["N"] == 2)]
    assert last["seeds"].tolist() == [2, 1]  # the running job's half-written second row was left out
    assert curves.loc[(curves["geometry"] == "convex") & (curves["N"] == 1), "seeds"].tolist() == [1, 1]


@pytest.mark.parametrize(
    "loss, jumped",
    [
        ([1.6, 0.5, 0.2, 8.0, 0.3], True),  # the demo's spike: 0.2 -> 8
        ([1.6, 1.0, 0.5, 0.4], False),  # a falling loss
        ([1.6, 0.01, 0.2, 0.15], False),  # x20 above its minimum but still below where it started
        ([float("nan"), 1.0], False),
    ],
)
def test_a_loss_that_jumps_is_told_apart(loss, jumped):
    assert loss_jumped(pd.Series(loss)) is jumped


def test_plot_of_an_empty_folder_fails_clearly(tmp_path):
    result = anil("plot", str(tmp_path))
    assert result.returncode == 1 and "no job with metrics" in result.stderr


def test_the_full_objectives_gradient_is_measured_without_changing_training(tmp_path):
    plain = tmp_path / "plain"
    train(tmp_path, "iterations=4", f"hydra.run.dir={plain}")
    measured = tmp_path / "measured"
    train(tmp_path, "iterations=4", "grad_eval_every=2", "grad_eval_tasks=6", f"hydra.run.dir={measured}")
    a, b = (pd.read_csv(run / "metrics.csv") for run in (plain, measured))
    pd.testing.assert_frame_equal(a[["loss", "sq_grad_norm_w", "val_loss"]], b[["loss", "sq_grad_norm_w", "val_loss"]])
    assert b["meta_sq_grad_norm_w"].notna().tolist() == [True, True, False, True]  # iterations 1, 2 and 4
    assert (b["meta_sq_grad_norm_phi"].dropna() > 0).all() and a["meta_sq_grad_norm_w"].isna().all()
    plotted = anil("plot", str(measured))
    assert plotted.returncode == 0, plotted.stderr
    assert pd.read_csv(measured / "curves.csv")["meta_sq_grad_norm_w"].notna().sum() == 3


def test_the_full_objective_is_the_mean_over_all_its_tasks():
    """Accumulated batch by batch, the gradient equals that of one batch holding every task."""
    config = small_config(dtype="float64", grad_eval_every=1, grad_eval_tasks=6, B=4)
    setup = build(config, torch.device("cpu"))
    w, phi = objective_gradient(setup, setup.objective_tasks)  # batches of 4 and 2
    parts = list(setup.objective_tasks)
    batch = TaskBatch(torch.cat([p.images for p in parts]), parts[0].shots)  # the same 6 tasks in one batch
    setup.optimizer.zero_grad()
    setup.learner.loss(setup.model, batch).loss.backward()
    assert w == pytest.approx(squared_norm(setup.model.head.parameters()).item(), rel=1e-10)
    assert phi == pytest.approx(squared_norm(setup.model.body.parameters()).item(), rel=1e-10)
