"""Meta-test accuracy of a trained run on held-out test classes, with a 95% confidence interval.

The model comes from the run's checkpoint (best validation accuracy by default, or the last one);
test tasks are drawn from the test split with their own seed (by a CPU generator, so every device
scores the same tasks); N and alpha may be changed for the test-time adaptation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from anil.data import load_splits
from anil.engine.learner import MetaLearner
from anil.engine.model import AnilNet
from anil.run import checkpoint
from anil.run.budget import EVAL_HOURS, check_duration, check_fits, timed_batch
from anil.run.checkpoint import BEST, CHECKPOINT
from anil.run.setup import image_shape, make_learner, make_model, resolve_device, task_set
from anil.tasks import TaskBatch
from anil.validation import check_device, validate

Z95 = 1.959964  # two-sided 95% quantile of the standard normal
EVAL_JSON = "eval.json"


def confidence_interval(values: torch.Tensor) -> float:
    """Half-width of the 95% interval of the mean (normal approximation, as few-shot papers report)."""
    if len(values) < 2:
        return math.nan
    return Z95 * values.double().std(unbiased=True).item() / math.sqrt(len(values))


def timed_score(
    learner: MetaLearner, model: AnilNet, batches: Iterable[TaskBatch], tasks: int, max_hours: float, fix: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """learner.score over `batches` ([tasks] losses and accuracies), refusing with one line after
    the first batch when all `tasks` would take longer than `max_hours` at its measured pace."""
    remaining = iter(batches)
    first = next(remaining)
    scores, pace = timed_batch(learner, model, first)
    check_duration("the evaluation", pace, tasks, max_hours, fix)
    parts = [scores]
    if tasks > first.tasks:
        parts.append(learner.score(model, remaining))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def checkpoint_path(run_dir: Path, which: str) -> Path:
    """best.pt, checkpoint.pt, or (auto) best.pt when the run has one."""
    if which == "auto":
        return run_dir / BEST if (run_dir / BEST).exists() else run_dir / CHECKPOINT
    return run_dir / (BEST if which == "best" else CHECKPOINT)


def evaluate_run(
    run_dir: Path,
    which: str,
    tasks: int,
    seed: int,
    device_name: str,
    N: int | None,
    alpha: float | None,
    progress: bool = False,
    max_hours: float = EVAL_HOURS,
) -> dict[str, Any]:
    """Score `tasks` test tasks with the run's model. Refused (ConfigError, one line) before the
    scoring goes on when its memory does not fit or its first batch projects more than
    `max_hours` for all of them."""
    check_device(device_name, "--device")
    path = checkpoint_path(run_dir, which)
    state = checkpoint.load(path)
    config = checkpoint.saved_config(state)
    if N is not None or alpha is not None:
        config = replace(config, N=config.N if N is None else N, alpha=config.alpha if alpha is None else alpha)
        validate(config)
    device = resolve_device(device_name)
    test = load_splits(config.dataset).test
    shape = image_shape(test.images.shape)
    check_fits(config, shape[1], shape[0], device)  # a test-time N may not fit where training's did
    model = make_model(config, test, device)
    model.load_state_dict(state["model"])
    batches = task_set(config, test, "test", tasks, device, seed)
    shown = tqdm(batches, total=len(batches), disable=not progress, desc="test tasks", unit="batch")
    fix = "lower --tasks (or --N), or raise --max-hours"
    losses, accuracies = timed_score(make_learner(config, shape, device), model, shown, tasks, max_hours, fix)
    return {
        "accuracy": accuracies.double().mean().item(),
        "accuracy_ci95": confidence_interval(accuracies),
        "loss": losses.double().mean().item(),
        "loss_ci95": confidence_interval(losses),
        "tasks": tasks,
        "seed": seed,
        "checkpoint": path.name,
        "checkpoint_iteration": state["iteration"],
        "N": config.N,
        "alpha": config.inner_stepsize,
        "ways": config.ways,
        "shots": config.shots,
        "query": config.query,
        "dataset": config.dataset.name,
        "geometry": config.geometry.name,
        "algorithm": config.algorithm,
        "device": str(device),
    }
