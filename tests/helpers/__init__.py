"""What several test modules share: how to call the `anil` command, a tiny float64 model with a
task sampler, the smoke-run arguments and config composition. Test modules import from here,
never from each other."""

from __future__ import annotations

import subprocess
import sys
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


def anil(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `anil ARGS` and capture what it prints."""
    return subprocess.run([*anil_command(), *args], capture_output=True, text=True, cwd=cwd)


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
