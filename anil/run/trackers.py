"""Experiment trackers beside metrics.csv: TensorBoard, MLflow, Weights & Biases.

Each receives the same per-iteration metrics as metrics.csv, the composed config as
hyper-parameters when the run starts, and the run's figures at the end. metrics.csv stays the
record: a tracker that fails (a full disk, a server gone) is switched off with one warning and
training goes on. Each tracker's package is an optional extra (`pip install 'anil[tensorboard]'`);
`missing_packages` names the ones a config asks for but this environment lacks, so the command
line can refuse before anything runs.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from pathlib import Path
from typing import Any, Protocol, cast

from anil.config import LoggerConfig, MlflowConfig, TensorboardConfig, TrainConfig, WandbConfig, flatten

log = logging.getLogger(__name__)

PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # tracker -> module it needs


class Tracker(Protocol):
    name: str

    def start(self, run_dir: Path, config: dict[str, Any]) -> None: ...

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def figures(self, paths: list[Path]) -> None: ...

    def close(self) -> None: ...


def chosen(logger: LoggerConfig) -> list[str]:
    return [name for name in PACKAGES if getattr(logger, name) is not None]


def missing_packages(logger: LoggerConfig) -> list[str]:
    """The chosen trackers whose package is not installed."""
    return [name for name in chosen(logger) if importlib.util.find_spec(PACKAGES[name]) is None]


class TensorboardTracker:
    name = "tensorboard"

    def __init__(self, settings: TensorboardConfig):
        self.settings = settings
        self.writer: Any = None

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(self.settings.log_dir or str(run_dir / "tensorboard"))
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.items()))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def figures(self, paths: list[Path]) -> None:
        import numpy as np
        from PIL import Image

        for path in paths:
            with Image.open(path) as image:
                self.writer.add_image(path.stem, np.asarray(image.convert("RGB")), dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class MlflowTracker:
    name = "mlflow"

    def __init__(self, settings: MlflowConfig):
        self.settings = settings
        self.run: Any = None

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        import mlflow

        uri = self.settings.tracking_uri or (Path("outputs") / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):  # MLflow keeps its file store working only when asked to
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = mlflow.tracking.MlflowClient(uri)
        experiment = self.client.get_experiment_by_name(self.settings.experiment)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(self.settings.experiment)
        )
        self.run = self.client.create_run(experiment_id, run_name=run_dir.name, tags={"run_dir": str(run_dir)})
        params = {k: str(v)[:500] for k, v in config.items()}
        self.client.log_batch(self.run.info.run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()])

    def log(self, metrics: dict[str, float], step: int) -> None:
        import mlflow

        stamp = int(1000 * step)  # a fixed timestamp per step: the store orders by step, not by clock
        entries = [mlflow.entities.Metric(k, v, stamp, step) for k, v in metrics.items()]
        self.client.log_batch(self.run.info.run_id, metrics=entries)

    def figures(self, paths: list[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.run.info.run_id, str(path))

    def close(self) -> None:
        if self.run is not None:
            self.client.set_terminated(self.run.info.run_id)


class WandbTracker:
    name = "wandb"

    def __init__(self, settings: WandbConfig):
        self.settings = settings
        self.run: Any = None

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        import wandb

        self.run = wandb.init(
            project=self.settings.project, mode=cast(Any, self.settings.mode), dir=self.settings.dir or str(run_dir),
            name=run_dir.name, config=config, reinit="finish_previous",
        )  # fmt: skip

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def figures(self, paths: list[Path]) -> None:
        import wandb

        self.run.log({path.stem: wandb.Image(str(path)) for path in paths})

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()


def make_trackers(config: TrainConfig) -> Trackers:
    made: list[Tracker] = []
    if config.logger.tensorboard is not None:
        made.append(TensorboardTracker(config.logger.tensorboard))
    if config.logger.mlflow is not None:
        made.append(MlflowTracker(config.logger.mlflow))
    if config.logger.wandb is not None:
        made.append(WandbTracker(config.logger.wandb))
    return Trackers(made)


class Trackers:
    """The chosen trackers as one; each failure switches that tracker off, with one warning."""

    def __init__(self, trackers: list[Tracker]):
        self.active = trackers

    def _each(self, action: str, *args: Any) -> None:
        for tracker in list(self.active):
            try:
                getattr(tracker, action)(*args)
            except Exception as error:  # any failure: a tracker never stops training; metrics.csv keeps every row
                log.warning(
                    "the %s tracker failed (%s: %s); it is off for the rest of this run, metrics.csv keeps every row",
                    tracker.name, type(error).__name__, error,
                )  # fmt: skip
                self.active.remove(tracker)

    def start(self, run_dir: Path, config: TrainConfig) -> None:
        self._each("start", run_dir, flatten(config.to_dict()))

    def write(self, row: dict[str, Any]) -> None:
        """The numeric, finite values of a metrics row, at its iteration."""
        numbers = {
            k: float(v) for k, v in row.items() if k != "iteration" and isinstance(v, (int, float)) and math.isfinite(v)
        }
        self._each("log", numbers, int(row["iteration"]))

    def figures(self, paths: list[Path]) -> None:
        self._each("figures", paths)

    def close(self) -> None:
        self._each("close")
