"""Check every job of an `anil train` command line before Hydra creates any folder.

The command line is read by Hydra's own argument parser, and a multirun is expanded into its jobs
by Hydra's own basic sweeper (`BasicSweeper.split_arguments`), after prepending the sweep an
experiment carries in `hydra.sweeper.params`, as that sweeper does. Each job is then composed and
validated; the first problem stops everything with one line (ConfigError).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException

from anil.cli.compose import compose_train, first_line, hydra_context, typed
from anil.config import ConfigError, TrainConfig
from anil.run.trackers import missing_packages


def parse_args(args: list[str]) -> argparse.Namespace:
    """`anil train` arguments as Hydra reads them (overrides, -m, --help, --cfg, ...)."""
    return get_args_parser().parse_args(args)


def only_informs(options: argparse.Namespace) -> bool:
    """Hydra prints help, config or completion and exits: nothing is trained, nothing to check."""
    return bool(
        options.help or options.hydra_help or options.cfg or options.info or options.shell_completion
        or options.experimental_rerun
    )  # fmt: skip


def parse_overrides(overrides: list[str]) -> list[Override]:
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise ConfigError(f"{first_line(error)} (quote values that hold '=' or ',')") from None


def job_overrides(overrides: list[str], sweeper_params: dict[str, str]) -> list[list[str]]:
    """The override list of every job a multirun launches, in launch order: the experiment's
    sweep (`hydra.sweeper.params`) first, the command line after it, as Hydra's basic sweeper does."""
    arguments = [f"{key}={value}" for key, value in sweeper_params.items()] + overrides
    try:
        (batch,) = BasicSweeper.split_arguments(parse_overrides(arguments), max_batch_size=None)
    except HydraException as error:
        raise ConfigError(first_line(error)) from None
    return [list(job) for job in batch]


@dataclass(frozen=True)
class LaunchPlan:
    """Where the command's output goes: `folder_key` (hydra.run.dir or hydra.sweep.dir), and the
    default folder it resolves to when the command line does not set it (None when it does)."""

    folder_key: str
    default_folder: Path | None
    jobs: int = 1  # how many jobs the command runs (a sweep's expanded grid)


def check_overrides(args: list[str]) -> LaunchPlan | None:
    """Compose and check every job that `anil train ARGS` would run; ConfigError on the first problem.
    None when Hydra will only print (help, config) and run nothing."""
    options = parse_args(args)
    if only_informs(options):
        return None
    parsed = parse_overrides(options.overrides)
    sweeps = [o for o in parsed if o.is_sweep_override()]
    if sweeps and not options.multirun:
        raise ConfigError(f"'{sweeps[0].input_line}' sweeps several values: add -m to run one job per value")
    fixed = [str(o.input_line) for o in parsed if not o.is_sweep_override()]
    key = "hydra.sweep.dir" if options.multirun else "hydra.run.dir"
    with hydra_context():
        base = compose_train(fixed, with_hydra=True)  # the output folder and the experiment's own sweep
        _check_sweep_keys(sweeps, list(base.hydra.job.config.override_dirname.exclude_keys))
        folder = Path(base.hydra.sweep.dir if options.multirun else base.hydra.run.dir)
        _check_writable(folder)
        if not options.multirun:
            _check_job(typed(compose_train(options.overrides)))
            count = 1
        else:
            params = {str(k): str(v) for k, v in (base.hydra.sweeper.get("params") or {}).items()}
            jobs = job_overrides(options.overrides, params)
            for job in jobs:
                _check_job(typed(compose_train(job)))
            count = len(jobs)
    given = any(o.get_key_element() == key for o in parsed)
    return LaunchPlan(key, None if given else folder, count)


def _check_sweep_keys(sweeps: list[Override], unnamed: list[str]) -> None:
    """A swept key that job folder names leave out (hydra.job.config.override_dirname.exclude_keys)
    would put every job of the sweep in one folder, where all but the first are refused."""
    for override in sweeps:
        if override.get_key_element() in unnamed:
            key = override.get_key_element()
            raise ConfigError(
                f"'{override.input_line}': {key} is left out of job folder names, so every job of this sweep "
                f"would share one folder; run one sweep per value of {key}, each with its own hydra.sweep.dir"
            )


def _check_job(config: TrainConfig) -> None:
    """What the environment must provide for this job: the trackers' packages."""
    missing = missing_packages(config.logger)
    if missing:
        name = missing[0]
        raise ConfigError(f"logger={name} needs the {name} package: pip install 'anil[{name}]'")


def _check_writable(folder: Path) -> None:
    """The output folder, or the nearest folder above it that exists, must be a writable folder."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"cannot write the output folder {folder}: {existing} is a file; choose another hydra.run.dir"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write the output folder {folder}: {existing} is not writable; choose another hydra.run.dir"
        )
