"""`anil smoothness`: the estimator measures a local derivative, leaves the model as it found it,
and the command writes its table and figure."""

import errno

import pandas as pd
import pytest
import torch

from anil.analysis.probe_log import ProbeLog
from anil.analysis.smoothness import DivergedTrajectory, Probe, measure, probe_point
from anil.analysis.smoothness_summary import BLOCKS, predicted
from anil.cli.smoothness import parser, trajectory_config
from anil.run.setup import build, inner_loop, make_learner
from helpers import anil

TINY = ["--dataset", "procedural", "--B", "2", "--directions", "1", "--points", "1", "--train-iterations", "1",
        "--max-iterations", "3", "--tolerance", "0.05", "--hidden", "8", "--batches", "2", "--starts", "2"]  # fmt: skip


def tiny_setup(geometry):
    # The command's own parser, so that every option it adds reaches the trajectory with its default.
    options = parser().parse_args(["--dataset", "procedural", "--device", "cpu", "--trajectory-N", "2", "--B", "2",
                                   "--hidden", "8"])  # fmt: skip
    config = trajectory_config(geometry, options)
    return build(config, torch.device("cpu")), config


def learner_for(config):
    return lambda n: make_learner(config, (1, 28), torch.device("cpu"), inner_loop(config, steps=n))


def test_probe_restores_the_parameters_and_is_a_local_derivative():
    setup, config = tiny_setup("convex")
    batch = setup.sampler.sample(2)
    before = [p.detach().clone() for p in setup.model.parameters()]
    probes = {
        radius: Probe((1, 3), points=1, train_iterations=0, directions=1, radius=radius) for radius in (1e-4, 1e-5)
    }
    rows = {
        radius: probe_point(setup, batch, "convex", probe, learner_for(config), seed=0)
        for radius, probe in probes.items()
    }
    for p, q in zip(setup.model.parameters(), before):
        assert torch.equal(p, q)  # every displacement was undone exactly
    # The convex meta-objective is smooth in w (the features stay fixed when only w moves), so the
    # difference quotient along a fixed direction converges as the radius shrinks: ||H d|| / ||d||.
    for coarse, fine in zip(rows[1e-4], rows[1e-5]):
        assert coarse["N"] == fine["N"]
        assert coarse["L_ww"] == pytest.approx(fine["L_ww"], rel=1e-3)
        assert all(fine[b] > 0 for b in BLOCKS)


def test_predicted_shapes_follow_the_propositions():
    grid = [1, 2, 5, 10]
    assert predicted("nonconvex", "L_phiphi", grid, 0.1, 0.0) == [1.0, 2.0, 5.0, 10.0]  # linear in N
    decay = predicted("convex", "L_ww", grid, 0.5, 0.5)
    assert decay == pytest.approx([0.75**n for n in grid])
    assert predicted("convex", "L_phiphi", grid, 0.1, 0.01) is None  # Prop. 2: bounded, no N-dependence


@pytest.mark.slow  # the whole probe, about a minute on 2 cores
def test_smoothness_command_writes_its_outputs(tmp_path):
    out = tmp_path / "smooth"
    result = anil("smoothness", *TINY, "--N", "1", "2", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 2 * len(BLOCKS) * 2  # geometries x blocks x N
    assert (summary["median"] > 0).all() and (summary["samples"] == 2).all()  # two meta-batches per point
    norms = pd.read_csv(out / "norms.csv")
    assert (norms["iterations_ww"] <= 3).all() and {"converged_wphi", "seconds"} <= set(norms.columns)
    assert sorted(norms["batch"].unique()) == [0, 1] and (norms["spread_ww"] >= 0).all()
    assert (norms["residual_ww"] >= 0).all()  # Lanczos reports the residual of what it returns
    curvature = pd.read_csv(out / "curvature.csv")
    assert len(curvature) == 2 * 2 and (curvature["L"] >= curvature["mu"]).all()  # geometries x tasks
    convex = curvature[curvature["geometry"] == "convex"]
    assert convex["mu"].to_numpy() == pytest.approx(0.01, rel=1e-6)  # the few-shot head: mu is lam exactly
    assert curvature["alpha_L"].to_numpy() == pytest.approx(0.1 * curvature["L"].to_numpy())
    assert len(pd.read_csv(out / "quotients.csv")) == 2 * 2  # geometries x N, one direction
    assert (out / "smoothness.png").stat().st_size > 10_000 and (out / "smoothness.pdf").exists()
    # Run again into the same folder: other options are refused, the same ones find nothing left to measure.
    refused = anil("smoothness", *TINY, "--N", "1", "3", "--out", str(out), cwd=tmp_path)
    assert refused.returncode == 1 and "other options (N: [1, 2] -> [1, 3])" in refused.stderr
    again = anil("smoothness", *TINY, "--N", "1", "2", "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert pd.read_csv(out / "norms.csv").equals(norms)


def test_smoothness_rejects_a_bad_radius(tmp_path):
    result = anil("smoothness", "--radius", "2", cwd=tmp_path)
    assert result.returncode == 2 and "--radius must be in (0, 1)" in result.stderr


def test_a_diverging_trajectory_is_not_probed(monkeypatch):
    """meta_step reports an unhealthy step: measure stops with one line instead of probing a blown-up model."""
    _, config = tiny_setup("convex")
    probed = []
    monkeypatch.setattr("anil.analysis.smoothness.meta_step", lambda setup, tasks, blowup=0: ({}, False))
    monkeypatch.setattr("anil.analysis.smoothness.operator_norms", lambda *args: probed.append(args) or [])
    monkeypatch.setattr("anil.analysis.smoothness.curvature_rows", lambda *args: [])
    with pytest.raises(DivergedTrajectory, match="trajectory diverged at iteration 1"):
        measure(config, Probe((1,), points=2, train_iterations=3))
    assert len(probed) == 1  # only the point at iteration 0, probed before any step was taken


def fake_norms(setup, batch, probe, learner_for):
    """Stands in for Lanczos (tested in test_spectra.py): numbers that depend on the point and the
    meta-batch, so that a resumed probe matches an unbroken one only if both see the same ones."""
    size = sum(float(p.detach().double().norm()) for p in setup.model.parameters())
    return [{"N": n, "L_ww": size * n + float(batch.support_labels().sum())} for n in probe.grid]


def test_a_stopped_probe_resumes_where_it_stopped_and_matches_an_unbroken_one(tmp_path, monkeypatch):
    """Rows reach the folder per (point, meta-batch); a rerun retrains the trajectory, checks each
    point reproduces, and measures only what is missing, with the numbers an unbroken probe gets."""
    _, config = tiny_setup("convex")
    probe = Probe((1, 2), points=2, train_iterations=2, batches=2)
    calls = []

    def stopping(*args):
        calls.append(args)
        if len(calls) == 3:  # the point at iteration 2, its first meta-batch: a kill mid-probe
            raise KeyboardInterrupt
        return fake_norms(*args)

    monkeypatch.setattr("anil.analysis.smoothness.operator_norms", fake_norms)
    unbroken = measure(config, probe).frame("norms")
    monkeypatch.setattr("anil.analysis.smoothness.operator_norms", stopping)
    stopped = ProbeLog(tmp_path, {"run": 1})
    with pytest.raises(KeyboardInterrupt):
        measure(config, probe, stopped)
    stopped.close()  # the process that stopped would have released it by ending
    assert len(pd.read_csv(tmp_path / "norms.csv")) == 2 * 2  # point 0: two meta-batches x two N, on disk
    calls.clear()
    resumed = measure(config, probe, ProbeLog(tmp_path, {"run": 1}))
    assert len(calls) == 2  # only the point at iteration 2's two meta-batches
    assert resumed.frame("norms").equals(unbroken)
    assert len(pd.read_csv(tmp_path / "points.csv")) == 2 and len(resumed.rows["curvature"]) == 2 * 2


def test_a_full_disk_gets_one_line_and_keeps_what_was_measured(tmp_path, monkeypatch, capsys):
    from anil.cli import smoothness as command

    def full(config, probe, record):
        record.add("curvature", [{"geometry": "convex", "iteration": 0, "mu": 0.01}])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(command, "measure", full)
    out = tmp_path / "probe"
    assert command.main(["--dataset", "procedural", "--out", str(out)]) == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and f"cannot write to {out}: No space left on device" in said[0]
    assert len(pd.read_csv(out / "curvature.csv")) == 1  # the row measured before the disk filled stays
