"""`anil train`: the Hydra app.

`main` turns the composed config into a typed `TrainConfig`, takes the run directory from Hydra
and calls `anil.run.trainer.run`, which knows nothing of Hydra. Before Hydra starts, `launch`
checks every job of the command line (anil/cli/checks.py), so a bad value writes nothing.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from anil.cli.checks import check_overrides
from anil.cli.compose import CONF_DIR, CONFIG_NAME, register_schema, typed
from anil.config import ConfigError
from anil.data import DatasetError
from anil.run.checkpoint import CheckpointError
from anil.run.distributed import launched_ranks
from anil.run.outcome import Status
from anil.run.trainer import run


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=CONFIG_NAME)
def hydra_app(cfg: DictConfig) -> None:
    config = typed(cfg)
    hydra_config = HydraConfig.get()
    show_progress = hydra_config.mode != RunMode.MULTIRUN and sys.stderr.isatty()
    run_dir = Path(hydra_config.runtime.output_dir)
    try:
        summary = run(config, run_dir, progress=show_progress)
    except (DatasetError, ConfigError, CheckpointError) as error:  # bad data, device or run dir: one line
        print(f"anil train: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as error:  # a disk that is full or turned read-only mid-run
        print(f"anil train: cannot write {error.filename or run_dir}: {error.strerror or error}", file=sys.stderr)
        raise SystemExit(1) from None
    if summary.status is Status.INTERRUPTED:
        print(
            f"anil train: stopped at iteration {summary.iteration}; continue with: anil resume {run_dir}",
            file=sys.stderr,
        )
        raise SystemExit(130)
    if summary.status is Status.DIVERGED:
        print(
            f"anil train: diverged at iteration {summary.iteration} ({summary.reason}); see {run_dir}", file=sys.stderr
        )
        if config.fail_on_divergence:
            raise SystemExit(1)


def launch(args: list[str]) -> int:
    """Check every job of `anil train ARGS`, then hand the command line to Hydra."""
    register_schema()
    try:
        check_overrides(args)
    except ConfigError as error:
        print(f"anil train: config error: {error}", file=sys.stderr)
        return 2
    rank, _ = launched_ranks()
    scratch = None
    if rank:  # under torchrun only rank 0 writes: the others get a throwaway Hydra folder and no log file
        scratch = tempfile.mkdtemp(prefix=f"anil-rank{rank}-")
        args = [*args, f"hydra.run.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    sys.argv = ["anil-train", *args]  # the Hydra app reads its command line from sys.argv
    try:
        hydra_app()
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0
