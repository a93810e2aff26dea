"""`anil eval RUN_DIR`: meta-test accuracy on held-out test classes, with a 95% confidence interval.

The model comes from the run's checkpoint (best validation accuracy by default, or the last one);
test tasks are drawn from the test split with their own seed; N and alpha may be changed.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import torch

from anil import checkpoint
from anil.checkpoint import BEST, CHECKPOINT, CheckpointError
from anil.config import ConfigError, from_dict
from anil.data import DatasetError, load_splits
from anil.algorithms import score_tasks
from anil.meta import InnerLoop
from anil.metrics import write_json_atomic
from anil.trainer import body_pass, fixed_batches, make_model, resolve_device

Z95 = 1.959964  # two-sided 95% quantile of the standard normal


def confidence_interval(values: torch.Tensor) -> float:
    """Half-width of the 95% interval of the mean (normal approximation, as few-shot papers report)."""
    if len(values) < 2:
        return math.nan
    return Z95 * values.double().std(unbiased=True).item() / math.sqrt(len(values))


def evaluate_run(run_dir: Path, which: str, tasks: int, seed: int, device_name: str, N: int | None, alpha: float | None) -> dict[str, Any]:
    path = run_dir / (BEST if which == "best" else CHECKPOINT)
    if which == "auto":
        path = run_dir / BEST if (run_dir / BEST).exists() else run_dir / CHECKPOINT
    state = checkpoint.load(path)
    config = from_dict(state["config"])
    changes = {k: v for k, v in (("N", N), ("alpha", alpha)) if v is not None}
    config = from_dict({**config.to_dict(), **changes}) if changes else config
    device = resolve_device(device_name)
    test = load_splits(config.dataset).test
    model = make_model(config, test, device)
    model.load_state_dict(state["model"])
    batches = fixed_batches(config, test, "test", tasks, device, seed)
    inner = InnerLoop(config.N, config.inner_stepsize, config.lam, first_order=True)
    losses, accuracies = score_tasks(config.algorithm, model, batches, inner, getattr(torch, config.dtype), body_pass(config, test, device))
    return {
        "accuracy": accuracies.mean().item(), "accuracy_ci95": confidence_interval(accuracies),
        "loss": losses.double().mean().item(), "loss_ci95": confidence_interval(losses),
        "tasks": tasks, "seed": seed, "checkpoint": path.name, "checkpoint_iteration": state["iteration"],
        "N": config.N, "alpha": config.inner_stepsize, "ways": config.ways, "shots": config.shots,
        "query": config.query, "dataset": config.dataset.name, "geometry": config.geometry.name, "algorithm": config.algorithm,
        "device": str(device),
    }


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="anil eval", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder (outputs/runs/<stamp> or a sweep job)")
    parser.add_argument("--checkpoint", choices=["auto", "best", "last"], default="auto",
                        help="best validation accuracy (best.pt), the last one (checkpoint.pt), or auto: best if present")
    parser.add_argument("--tasks", type=int, default=600, help="test tasks (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test tasks (default 0)")
    parser.add_argument("--N", type=int, default=None, help="inner steps at test time (default: the run's)")
    parser.add_argument("--alpha", type=float, default=None, help="inner stepsize at test time (default: the run's)")
    parser.add_argument("--device", default="auto")
    options = parser.parse_args(args)
    if options.tasks < 2:
        parser.error("--tasks must be at least 2 for a confidence interval")
    try:
        result = evaluate_run(options.run_dir, options.checkpoint, options.tasks, options.seed, options.device,
                              options.N, options.alpha)
    except (CheckpointError, ConfigError, DatasetError) as error:
        print(f"anil eval: {error}", file=sys.stderr)
        return 1
    write_json_atomic(options.run_dir / "eval.json", result)
    print(
        f"test accuracy {100 * result['accuracy']:.2f}% ± {100 * result['accuracy_ci95']:.2f}% (95% CI, "
        f"{result['tasks']} tasks, {result['ways']}-way {result['shots']}-shot), loss {result['loss']:.4f}; "
        f"{result['checkpoint']} at iteration {result['checkpoint_iteration']}, N={result['N']}, alpha={result['alpha']:g}"
    )
    return 0
