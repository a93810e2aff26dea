"""`anil train`: the Hydra edge.

Hydra lives in this module only: `main` turns the composed config into a typed `TrainConfig`,
takes the run directory from Hydra and calls `trainer.run`, which knows nothing of Hydra.
`check_overrides` validates every job of a command line before Hydra creates any directory.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from anil.checkpoint import CheckpointError
from anil.config import CONF_DIR, ConfigError, from_dict
from anil.data import DatasetError
from anil.trainer import run

log = logging.getLogger(__name__)

# --- the Hydra edge ------------------------------------------------------------------------------


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    config = from_dict(OmegaConf.to_container(cfg, resolve=True))
    hydra_config = HydraConfig.get()
    progress = hydra_config.mode != RunMode.MULTIRUN and sys.stderr.isatty()
    run_dir = Path(hydra_config.runtime.output_dir)
    try:
        summary = run(config, run_dir, progress=progress)
    except (DatasetError, ConfigError, CheckpointError) as error:  # bad data, device or run dir: one line
        print(f"anil train: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as error:  # a disk that is full or turned read-only mid-run
        print(f"anil train: cannot write {error.filename or run_dir}: {error.strerror or error}", file=sys.stderr)
        raise SystemExit(1) from None
    if summary["status"] == "interrupted":
        print(f"anil train: stopped at iteration {summary['iteration']}; continue with: anil resume {run_dir}", file=sys.stderr)
        raise SystemExit(130)
    if summary["status"] == "diverged":
        print(f"anil train: diverged at iteration {summary['iteration']} ({summary['reason']}); see {run_dir}", file=sys.stderr)
        if config.fail_on_divergence:
            raise SystemExit(1)


INFO_FLAGS = {"-h", "--help", "--hydra-help", "-i", "--info", "-c", "--cfg", "--resolve", "-sc", "--shell-completion", "--version"}
VALUE_FLAGS = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-p", "--package"}


def check_overrides(args: list[str]) -> None:
    """Compose and check every job that `anil train ARGS` would run, before Hydra makes a directory.

    Raises ConfigError with one line on the first bad value, unknown key or unknown option.
    """
    if any(a.split("=")[0] in INFO_FLAGS for a in args):
        return  # Hydra prints help or config and exits; nothing is trained
    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = _override_args(args)
    parser, parsed = OverridesParser.create(), []
    for override in overrides:
        try:
            parsed.append(parser.parse_override(override))
        except HydraException as error:
            raise ConfigError(f"cannot parse '{override}': {_first_line(error)} (quote values that hold '=' or ',')") from None
    sweeps = {o.get_key_element(): o for o in parsed if o.is_sweep_override()}
    if sweeps and not multirun:
        raise ConfigError(f"'{next(iter(sweeps.values())).input_line}' sweeps several values: add -m to run one job per value")
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    fixed_keys = {o.get_key_element() for o in parsed if not o.is_sweep_override()}
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="train"):
        base = _compose(fixed, hydra=True)
        _check_writable(Path(base.hydra.sweep.dir if multirun else base.hydra.run.dir))
        if multirun:  # an experiment may carry its own sweep (hydra.sweeper.params)
            params = base.hydra.sweeper.get("params") or {}
            for key, value in params.items():
                if key not in sweeps and key not in fixed_keys:  # the command line wins
                    sweeps[key] = OverridesParser.create().parse_override(f"{key}={value}")
        grid = [[f"{key}={v}" for v in _values(o)] for key, o in sweeps.items()]
        for combination in itertools.product(*grid):
            cfg = _compose(fixed + list(combination), hydra=False)
            from_dict(OmegaConf.to_container(cfg, resolve=True))


def _check_writable(folder: Path) -> None:
    """The output folder, or the nearest folder above it that exists, must be a writable folder."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"cannot write the output folder {folder}: {existing} is a file; choose another hydra.run.dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write the output folder {folder}: {existing} is not writable; choose another hydra.run.dir")


def _override_args(args: list[str]) -> list[str]:
    overrides, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in VALUE_FLAGS:
            skip = True
        elif not arg.startswith("-"):
            overrides.append(arg)
    return overrides


def _values(override: Any) -> list[str]:
    if override.is_sweep_override():
        try:
            return list(override.sweep_string_iterator())
        except HydraException as error:
            raise ConfigError(f"{override.input_line}: {_first_line(error)}") from None
    return [override.get_value_element_as_str()]


def _compose(overrides: list[str], hydra: bool) -> DictConfig:
    try:
        return compose(config_name="train", overrides=overrides, return_hydra_config=hydra)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(_explain(error)) from None


def _explain(error: Exception) -> str:
    text = _first_line(error)
    if text.startswith("Could not override '") or "is not in struct" in str(error):
        key = text.split("'")[1] if "'" in text else "?"
        return f"unknown key '{key}'; `anil train --help` lists the keys (use +{key}=... only to add a new one)"
    missing = re.search(r"Could not find '([\w-]+)/([^']+)'", text)
    if missing and (CONF_DIR / missing.group(1)).is_dir():
        group, option = missing.groups()
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        return f"{group}={option} is not an option; choose one of: {', '.join(options)}"
    return text


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
