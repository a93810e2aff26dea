"""How far a run got (`Progress`, saved in checkpoints) and how it ended (`RunSummary`, written to
summary.json), with the three ways a run ends as one enum that every reader shares."""

from __future__ import annotations

import enum
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anil.atomic import write_json_atomic

log = logging.getLogger(__name__)

SUMMARY = "summary.json"


class Status(enum.Enum):
    COMPLETED = "completed"  # every iteration ran
    DIVERGED = "diverged"  # a non-finite or blown-up loss or gradient stopped it (the step was not taken)
    INTERRUPTED = "interrupted"  # SIGINT / SIGTERM: checkpointed, resumable
    FAILED = "failed"  # a sweep job stopped by its own problem (bad data, device): see reason


@dataclass
class Progress:
    """Where a run stands: restored from a checkpoint on resume, advanced by the loop."""

    iteration: int = 0  # meta-iterations done
    train_time: float = 0.0  # seconds of training so far (evaluation excluded), over every session
    cpu_time: float = 0.0  # process CPU seconds of those steps (NaN when resumed from a run that did not count them)
    best_val_accuracy: float = -1.0  # the best validation accuracy so far (-1: none yet)
    # The last iteration's metrics row when a stop abandoned its evaluation: the step is taken, the
    # row is not written yet; a resume evaluates it first, so metrics.csv comes out as uninterrupted.
    pending: dict[str, Any] | None = None
    # Wall seconds of the earlier sessions up to their last checkpoint, start-up and evaluation
    # included (what the job has cost so far: work redone after a kill counts once).
    earlier_wall: float = 0.0
    session_start: float = field(default_factory=time.perf_counter)  # when this session began

    def wall_time(self) -> float:
        """Wall seconds over every session so far, this one up to now."""
        return self.earlier_wall + time.perf_counter() - self.session_start


@dataclass(frozen=True)
class RunSummary:
    status: Status
    reason: str  # why it stopped early ("" when completed)
    iteration: int  # the last iteration run
    iterations: int  # the iterations asked for
    final: dict[str, Any]  # the last metrics row
    train_time_s: float
    seconds_per_iteration: float  # training time per meta-iteration, over the whole run
    best_val_accuracy: float | None
    cpu_time_s: float = math.nan  # process CPU seconds of the training steps, over every session
    wall_time_s: float = 0.0  # wall time over every session, start-up and evaluation included
    environment: dict[str, Any] = field(default_factory=dict)  # device, torch version, threads, config digest

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["status"] = self.status.value
        environment = values.pop("environment")
        return {**values, **environment}


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    write_json_atomic(run_dir / SUMMARY, summary.to_json())


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json ({} while it runs: the summary is written last). ValueError when it
    is not valid JSON or names no known status."""
    path = run_dir / SUMMARY
    if not path.exists():
        return {}
    summary = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(summary, dict):
        raise ValueError(f"{path} is not a JSON object")
    Status(summary.get("status"))  # raises ValueError for an unknown status
    return summary


def log_ending(summary: RunSummary, out_dir: Path) -> None:
    """Log how the run ended (rank 0 only)."""
    if summary.status is Status.DIVERGED:
        log.warning(
            "diverged at iteration %d (%s); the last good checkpoint is kept in %s",
            summary.iteration, summary.reason, out_dir,
        )  # fmt: skip
    elif summary.status is Status.INTERRUPTED:
        log.warning(
            "stopped at iteration %d (%s); continue with: anil resume %s", summary.iteration, summary.reason, out_dir
        )
    else:
        final = summary.final
        log.info(
            "done: loss %.4f, val accuracy %.3f, %.1f s training",
            final["loss"], final["val_accuracy"], summary.train_time_s,
        )  # fmt: skip
