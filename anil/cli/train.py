"""`anil train`: the Hydra app.

`launch` checks every job of the command line before Hydra starts (anil/cli/checks.py), so a bad
value writes nothing, and gives a run or sweep without an explicit folder a fresh one of its own.
`hydra_app` turns the composed config into a typed `TrainConfig`, takes the run directory from
Hydra and calls `anil.run.trainer.run`, which knows nothing of Hydra. A job that fails (bad data,
a refused folder) is one line on stderr; in a sweep it is recorded and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from anil.cli.checks import check_overrides
from anil.cli.compose import CONF_DIR, CONFIG_NAME, register_schema, typed
from anil.cli.record import JobRecord
from anil.config import ConfigError, TrainConfig
from anil.data import DatasetError
from anil.data import progress as data_progress
from anil.run.checkpoint import CHECKPOINT
from anil.run.distributed import launched_ranks
from anil.run.errors import CheckpointError
from anil.run.folder import RunRefused, holds_run
from anil.run.outcome import RunSummary, Status, write_summary
from anil.run.trackers import make_trackers
from anil.run.trainer import run


@dataclass
class SweepOutcome:
    """A command's jobs: how many, since when, and which failed (a sweep goes on past them, then exits 1)."""

    failed: list[str] = field(default_factory=list)
    jobs: int = 1
    started: float = field(default_factory=time.monotonic)

    def reset(self, jobs: int) -> None:
        self.failed.clear()
        self.jobs, self.started = jobs, time.monotonic()

    def job_started(self, index: int) -> str:
        """`index` (from 0) of `jobs`: what has been done, and an estimate of what is left."""
        elapsed = time.monotonic() - self.started
        line = f"sweep: job {index + 1} of {self.jobs}"
        if index:
            left = elapsed / index * (self.jobs - index)
            line += f" ({index} done in {_minutes(elapsed)}, about {_minutes(left)} left)"
        return line


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


@dataclass
class Program:
    name: str = "anil train"  # the command the messages name (anil resume launches through here too)


PROGRAM = Program()
OUTCOME = SweepOutcome()
log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=CONFIG_NAME)
def hydra_app(cfg: DictConfig) -> None:
    config = typed(cfg)
    hydra_config = HydraConfig.get()
    multirun = hydra_config.mode == RunMode.MULTIRUN
    if multirun:
        log.info(OUTCOME.job_started(int(hydra_config.job.num)))
    show_progress = not multirun and sys.stderr.isatty()
    data_progress.enabled = not multirun
    run_dir = Path(hydra_config.runtime.output_dir)
    record = JobRecord(cfg)
    trackers = make_trackers(config)

    def claim(folder: Path) -> None:
        record.claim(folder)
        trackers.start(folder, config)

    try:
        summary = run(config, run_dir, progress=show_progress, on_claim=claim, trackers=trackers)
        if summary.status is not Status.INTERRUPTED and trackers.active:
            trackers.figures(run_figures(run_dir))
    except RunRefused as error:  # somebody else's run: nothing in it is touched
        _failed(str(error), run_dir, multirun)
        return
    except (DatasetError, ConfigError, CheckpointError) as error:  # bad data, device, checkpoint: one line
        _job_failed(str(error), run_dir, multirun, record, config)
        return
    except OSError as error:  # a disk that is full or turned read-only mid-run
        reason = f"cannot write {error.filename or run_dir}: {error.strerror or error}"
        _job_failed(reason, run_dir, multirun, record, config, disk=True)
        return
    except KeyboardInterrupt:  # a second Ctrl-C: out at once, the last checkpoint stays as it was
        resume = f"continue from the last checkpoint with: anil resume {run_dir}"
        print(f"{PROGRAM.name}: stopped at once by a second Ctrl-C; {resume}", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        trackers.close()
        record.close()
    if summary.status is Status.INTERRUPTED:
        print(
            f"{PROGRAM.name}: stopped at iteration {summary.iteration}; continue with: anil resume {run_dir}",
            file=sys.stderr,
        )
        raise SystemExit(130)
    if summary.status is Status.DIVERGED:
        print(
            f"{PROGRAM.name}: diverged at iteration {summary.iteration} ({summary.reason}); see {run_dir}",
            file=sys.stderr,
        )
        if config.fail_on_divergence:
            raise SystemExit(1)


def run_figures(run_dir: Path) -> list[Path]:
    """The run's own loss and gradient-norm figures (PNG, in the run folder), for the trackers."""
    from anil.analysis.plot import draw
    from anil.analysis.runs import curves, find_jobs

    jobs, _ = find_jobs([run_dir])
    return draw(curves(jobs), run_dir, smooth=1, band="none", formats=("png",)) if jobs else []


def _failed(reason: str, run_dir: Path, multirun: bool) -> None:
    """One line; a single run exits 1, a sweep notes the job and goes on to the next."""
    print(f"{PROGRAM.name}: {reason}", file=sys.stderr)
    if not multirun:
        raise SystemExit(1)
    OUTCOME.failed.append(str(run_dir))


def _job_failed(
    reason: str, run_dir: Path, multirun: bool, record: JobRecord, config: TrainConfig, disk: bool = False
) -> None:
    """A job that stopped on its own problem. In a sweep its folder records the failure (config and
    summary.json, status failed) so `anil plot` lists it; a single fresh run leaves nothing behind,
    unless it has written a checkpoint (a disk that filled up mid-run): that run is never
    dismantled, and stays resumable once the problem is fixed."""
    resumable = (run_dir / CHECKPOINT).exists()
    if multirun and (record.folder is not None or not holds_run(run_dir)):
        if record.folder is None:
            record.claim(run_dir)
        with contextlib.suppress(OSError):  # the disk may still be full: the line below says what happened
            write_summary(run_dir, RunSummary(Status.FAILED, reason, 0, config.iterations, {}, 0.0, 0.0, None))
    elif not config.resume and not resumable:
        record.discard(run_dir)
    if resumable and disk:
        reason += f"; the run keeps its checkpoint: free the space (or fix the disk), then anil resume {run_dir}"
    _failed(reason, run_dir, multirun)


def launch(args: list[str], program: str = "anil train") -> int:
    """Check every job of `anil train ARGS`, then hand the command line to Hydra. `program`: the
    command the user typed (anil resume runs through here too), which every message names."""
    PROGRAM.name = program
    register_schema()
    try:
        plan = check_overrides(args)
    except ConfigError as error:
        print(f"{PROGRAM.name}: config error: {error}", file=sys.stderr)
        return 2
    OUTCOME.reset(plan.jobs if plan is not None else 1)
    rank, _ = launched_ranks()
    scratch = None
    if rank:  # under torchrun only rank 0 writes: the others get a throwaway Hydra folder and no log file
        scratch = tempfile.mkdtemp(prefix=f"anil-rank{rank}-")
        args = [*args, f"hydra.run.dir={scratch}", "hydra/job_logging=disabled"]
    elif plan is not None and plan.default_folder is not None:
        args = [*args, f"{plan.folder_key}={_quoted(claim_new_folder(plan.default_folder))}"]
    sys.argv = ["anil", *args]  # the Hydra app reads its command line from sys.argv (and names completion by it)
    try:
        hydra_app()
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if OUTCOME.jobs > 1:
        print(f"{PROGRAM.name}: sweep of {OUTCOME.jobs} jobs done in {_minutes(time.monotonic() - OUTCOME.started)}",
              file=sys.stderr)  # fmt: skip
    if OUTCOME.failed:
        print(f"{PROGRAM.name}: {len(OUTCOME.failed)} job(s) failed: {', '.join(OUTCOME.failed)}", file=sys.stderr)
        return 1
    return 0


def claim_new_folder(wanted: Path) -> Path:
    """`wanted`, or `wanted-2`, `wanted-3` ... : the first that this process creates itself (mkdir is
    atomic, so two runs started in the same second never share a timestamped folder)."""
    wanted.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = wanted, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1
            candidate = wanted.with_name(f"{wanted.name}-{number}")


def _quoted(path: Path) -> str:
    """A path as a Hydra override value (quoted, so ',' '=' and spaces stay part of it)."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"
