"""Meta-test accuracy of a trained run on held-out test classes, with a 95% confidence interval.

The model comes from the run's checkpoint (best validation accuracy by default, or the last one);
test tasks are drawn from the test split with their own seed (by a CPU generator, so every device
scores the same tasks); N and alpha may be changed for the test-time adaptation.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from anil.data import load_splits
from anil.run import checkpoint
from anil.run.checkpoint import BEST, CHECKPOINT
from anil.run.setup import image_shape, make_learner, make_model, resolve_device, task_set
from anil.validation import check_device, validate

Z95 = 1.959964  # two-sided 95% quantile of the standard normal
EVAL_JSON = "eval.json"


def confidence_interval(values: torch.Tensor) -> float:
    """Half-width of the 95% interval of the mean (normal approximation, as few-shot papers report)."""
    if len(values) < 2:
        return math.nan
    return Z95 * values.double().std(unbiased=True).item() / math.sqrt(len(values))


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
) -> dict[str, Any]:
    check_device(device_name, "--device")
    path = checkpoint_path(run_dir, which)
    state = checkpoint.load(path)
    config = checkpoint.saved_config(state)
    if N is not None or alpha is not None:
        config = replace(config, N=config.N if N is None else N, alpha=config.alpha if alpha is None else alpha)
        validate(config)
    device = resolve_device(device_name)
    test = load_splits(config.dataset).test
    model = make_model(config, test, device)
    model.load_state_dict(state["model"])
    batches = task_set(config, test, "test", tasks, device, seed)
    shown = tqdm(batches, total=len(batches), disable=not progress, desc="test tasks", unit="batch")
    losses, accuracies = make_learner(config, image_shape(test.images.shape), device).score(model, shown)
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
