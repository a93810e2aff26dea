"""Experiment trackers receive what metrics.csv receives, offline; a failing tracker never costs
training or a row of metrics.csv; a missing tracker package stops before anything runs."""

import logging

import pandas as pd
import pytest

from anil.run import trackers as trackers_module
from anil.run.trackers import Trackers
from anil.run.trainer import run
from helpers import SMOKE, anil, small_config, wandb_log

RUN = [*SMOKE, "iterations=3"]


def trained(tmp_path, logger):
    run_dir = tmp_path / "run"
    result = anil("train", *RUN, f"logger={logger}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return run_dir, pd.read_csv(run_dir / "metrics.csv")


@pytest.mark.slow  # the trackers' own packages: seconds of imports and, for wandb, a service process
@pytest.mark.needs("tensorboard")
def test_tensorboard_event_files_hold_the_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, metrics = trained(tmp_path, "tensorboard")
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 10})
    events.Reload()
    losses = events.Scalars("loss")
    assert [e.step for e in losses] == metrics["iteration"].tolist()
    assert [e.value for e in losses] == pytest.approx(metrics["loss"].tolist(), rel=1e-6)
    assert "procedural_convex" in events.Tags()["images"]  # the run's figures at the end


@pytest.mark.slow  # the trackers' own packages: seconds of imports and, for wandb, a service process
@pytest.mark.needs("mlflow")
def test_mlflow_local_store_holds_the_metrics_and_the_config(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # reading the file store, as anil's writer does
    run_dir, metrics = trained(tmp_path, "mlflow")
    client = MlflowClient((tmp_path / "outputs" / "mlruns").as_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("anil").experiment_id])
    history = client.get_metric_history(found.info.run_id, "loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(metrics["loss"].tolist())
    assert found.data.params["N"] == "5" and found.data.params["dataset.name"] == "procedural"
    assert "procedural_convex.png" in [a.path for a in client.list_artifacts(found.info.run_id)]


@pytest.mark.slow  # the trackers' own packages: seconds of imports and, for wandb, a service process
@pytest.mark.needs("wandb")
def test_wandb_offline_run_holds_the_metrics(tmp_path):
    run_dir, metrics = trained(tmp_path, "wandb")
    (log_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    rows = [row for row in wandb_log.history(log_file) if "loss" in row]
    assert [row["loss"] for row in rows] == pytest.approx(metrics["loss"].tolist())


@pytest.mark.slow  # the trackers' own packages: seconds of imports and, for wandb, a service process
@pytest.mark.needs("tensorboard", "mlflow")
def test_several_trackers_at_once(tmp_path):
    run_dir, _ = trained(tmp_path, "[csv,tensorboard,mlflow]")
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "outputs" / "mlruns").is_dir()


class Breaking:
    """A tracker whose server goes away after two rows."""

    name = "breaking"

    def __init__(self):
        self.logged = 0

    def start(self, run_dir, config):
        pass

    def log(self, metrics, step):
        self.logged += 1
        if self.logged > 2:
            raise ConnectionError("server gone")

    def figures(self, paths):
        pass

    def close(self):
        pass


def test_a_failing_tracker_costs_nothing_but_itself(tmp_path, caplog):
    breaking = Breaking()
    trackers = Trackers([breaking])
    with caplog.at_level(logging.WARNING):
        summary = run(small_config(iterations=6), tmp_path, trackers=trackers)
    assert summary.status.value == "completed" and breaking.logged == 3 and not trackers.active
    assert pd.read_csv(tmp_path / "metrics.csv")["iteration"].tolist() == list(range(1, 7))
    assert "the breaking tracker failed (ConnectionError: server gone)" in caplog.text


def test_a_missing_tracker_package_stops_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(trackers_module.importlib.util, "find_spec", lambda name: None)
    from anil.cli.checks import check_overrides
    from anil.config import ConfigError

    with pytest.raises(ConfigError, match=r"logger=wandb needs the wandb package: pip install 'anil\[wandb\]'"):
        check_overrides(["experiment=smoke", "logger=wandb"])
