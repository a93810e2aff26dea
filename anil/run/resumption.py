"""What a checkpoint holds of a training run, putting it back, and whether a run may resume from
its checkpoint under a given config."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from anil.config import TrainConfig
from anil.run import checkpoint
from anil.run.checkpoint import CHECKPOINT
from anil.run.folder import RunRefused
from anil.run.outcome import Progress
from anil.run.setup import Setup

log = logging.getLogger(__name__)


def training_state(setup: Setup, config: TrainConfig, progress: Progress) -> dict[str, Any]:
    return {
        "iteration": progress.iteration,
        "train_time": progress.train_time,
        "cpu_time": progress.cpu_time,
        "wall_time": progress.wall_time(),
        "best_val_accuracy": progress.best_val_accuracy,
        "model": setup.model.state_dict(),
        "optimizer": setup.optimizer.state_dict(),
        "rng": checkpoint.rng_state(),
        "sampler": setup.sampler.generator.get_state(),
        "config": config.to_dict(),
        "training_values": config.training_values(),
        "pending_row": progress.pending,
    }


def restore(setup: Setup, state: dict[str, Any]) -> Progress:
    setup.model.load_state_dict(state["model"])
    setup.optimizer.load_state_dict(state["optimizer"])
    checkpoint.set_rng_state(state["rng"])
    setup.sampler.generator.set_state(state["sampler"])
    # A checkpoint written before CPU time was counted leaves it unknown (NaN), not restarted at 0.
    cpu_time = state.get("cpu_time", math.nan)
    # One written before wall time was carried over starts from its training time, a lower bound.
    earlier_wall = state.get("wall_time", state["train_time"])
    return Progress(
        state["iteration"],
        state["train_time"],
        cpu_time,
        state["best_val_accuracy"],
        state.get("pending_row"),
        earlier_wall,
    )


def resume_state(config: TrainConfig, run_dir: Path) -> dict[str, Any] | None:
    """The checkpoint to continue from, checked against this config; None when the run was
    stopped before its first checkpoint (it then starts over and logs the same rows again)."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        log.warning("no checkpoint in %s yet: starting from iteration 0", run_dir)
        return None
    state = checkpoint.load(path)
    # A key added to the config after the checkpoint was written counts as its default value.
    saved = {**TrainConfig().training_values(), **state["training_values"]}
    changed = checkpoint.differing_keys(saved, config.training_values())
    if changed:
        raise RunRefused(
            f"checkpoint {path} was trained with other values of {', '.join(changed[:4])}; "
            f"resume with the run's own settings (anil resume {run_dir}) or use a new run directory"
        )
    if state["iteration"] >= config.iterations and state.get("pending_row") is None:
        raise RunRefused(
            f"the run in {run_dir} already finished its {state['iteration']} iterations; nothing to resume "
            "(pass a larger iterations= to train on)"
        )
    return state
