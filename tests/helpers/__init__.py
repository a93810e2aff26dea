"""What several test modules share: how to call the `anil` command, a tiny float64 model with a
task sampler, the smoke-run arguments and config composition. Test modules import from here,
never from each other."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from anil.cli.compose import compose_typed
from anil.config import DatasetConfig, TrainConfig
from anil.data import Splits, load_splits
from anil.data.sampler import TaskSampler
from anil.data.split import Split
from anil.engine.model import AnilNet
from anil.run.metrics import STEP_METRICS, VALIDATION_METRICS

REPO = Path(__file__).resolve().parents[2]
DTYPE = torch.float64

# Every metric a meta-iteration measures (no clock): equal across runs that compute the same thing.
MEASURED = [*STEP_METRICS, *VALIDATION_METRICS]

# A few-iteration run of the smoke experiment (procedural glyphs), fast enough for the CLI tests.
SMOKE = ["experiment=smoke", "iterations=2", "eval_every=1", "eval_tasks=4", "B=3", "device=cpu"]


def anil_command() -> list[str]:
    """The installed console script when there is one, else the module."""
    script = Path(sys.executable).parent / "anil"
    return [str(script)] if script.exists() else [sys.executable, "-m", "anil"]


def anil_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `anil ARGS` as its own process (for what only a process shows: signals, exit codes of
    the interpreter, environment, start-up time) and capture what it prints. Tests that use it are
    marked slow."""
    return subprocess.run([*anil_command(), *args], capture_output=True, text=True, cwd=cwd)


@dataclass
class Ran:
    """What `anil ARGS` did in this process: the exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def anil(*args: str, cwd: Path | None = None) -> Ran:
    """Run `anil ARGS` in this process, through the console script's own entry point, and capture
    what it prints: the exit status a process would have had (SystemExit's code; 1 and the
    traceback for an uncaught exception). Saves the 3-4 s of imports a new process pays. Hydra's
    global state, the logging handlers its job logging installs, the sweep outcome, sys.argv and
    the working folder are put back afterwards, so calls do not leak into each other."""
    from anil.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved = (sys.argv[:], os.getcwd(), logging.root.handlers[:], logging.root.level)
    _reset_cli_state()
    logging.root.handlers[:] = []  # as in a fresh process: the command's own logging setup decides
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _exit_status(main, list(args))
    finally:
        sys.argv, cwd_before, handlers, level = saved
        os.chdir(cwd_before)
        for handler in logging.root.handlers[:]:
            if handler not in handlers:
                logging.root.removeHandler(handler)
                handler.close()
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
        _reset_cli_state()
    return Ran(code, out.getvalue(), err.getvalue())


def _exit_status(main: Callable[[list[str]], int], args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)  # what the interpreter does with a message
        return 1
    except Exception:
        traceback.print_exc()
        return 1


def _reset_cli_state() -> None:
    from hydra.core.global_hydra import GlobalHydra

    from anil.cli import train
    from anil.data import progress

    GlobalHydra.instance().clear()
    train.OUTCOME.reset(1)
    progress.enabled = True


def make(geometry: str, seed: int = 0, classes: int = 12, image_size: int = 28) -> tuple[AnilNet, TaskSampler]:
    """A float64 Conv-4 (3-way, hidden 8) and a sampler of 2-shot 3-query tasks over random images."""
    torch.manual_seed(seed)
    model = AnilNet(geometry, image_size, 1, ways=3, hidden=8).to(DTYPE)
    images = torch.randint(0, 256, (classes, 6, 1, image_size, image_size), dtype=torch.uint8).numpy()
    split = Split.from_grouped(images, [str(c) for c in range(classes)], "random")
    sampler = TaskSampler(split, ways=3, shots=2, query=3, generator=torch.Generator().manual_seed(seed))
    return model, sampler


def compose_config(overrides: list[str]) -> TrainConfig:
    """The `anil train` config for `overrides`, composed by Hydra and checked."""
    return compose_typed(overrides)


def small_config(**changes: object) -> TrainConfig:
    """A procedural-glyph run of a few CPU seconds, for in-process trainer tests."""
    procedural = DatasetConfig(name="procedural", train_classes=64, val_classes=16, test_classes=16, instances=12)
    values: dict[str, object] = dict(
        dataset=procedural, B=2, iterations=8, eval_every=2, eval_tasks=4, checkpoint_every=1, device="cpu"
    )
    values.update(changes)
    return TrainConfig(**values)  # type: ignore[arg-type]


def reload_from_cache(config: DatasetConfig, monkeypatch: pytest.MonkeyPatch, module: object, decoder: str) -> Splits:
    """Load `config` again with `module.decoder` forbidden: the splits must come from the cache,
    memory-mapped."""

    def refuse(*args: object) -> None:
        raise AssertionError(f"{decoder} ran again although its source did not change")

    with monkeypatch.context() as patch:
        patch.setattr(module, decoder, refuse)
        splits = load_splits(config)
    assert isinstance(splits.train.images, np.memmap)
    return splits
