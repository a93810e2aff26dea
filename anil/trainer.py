"""The meta-training loop (Algorithm 1), Hydra-free: `run(config, run_dir)`.

It owns the run directory's contents: metrics.csv (a row per iteration, flushed), checkpoint.pt
(every `checkpoint_every` iterations and at exit), best.pt (best validation accuracy), and
summary.json (written last; `status` is completed, diverged or interrupted).
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from anil import checkpoint, distributed
from anil.checkpoint import BEST, CHECKPOINT, CheckpointError, RunLock
from anil.config import ConfigError, OptimConfig, TrainConfig
from anil.data import load_splits
from anil.data.sampler import TaskBatch, TaskSampler
from anil.data.split import Split
from anil.distributed import World, local_device
from anil.algorithms import meta_loss, score
from anil.meta import BodyPass, InnerLoop
from anil.metrics import MetricsWriter, write_json_atomic
from anil.model import AnilNet
from anil.opcount import OpCounts

log = logging.getLogger(__name__)

EVAL_SEED_OFFSET = 1_000_003  # the validation tasks come from their own stream, fixed per seed


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but this torch sees no CUDA device; use device=cpu or device=auto")
    return torch.device(name)


def make_optimizer(model: AnilNet, optim: OptimConfig) -> torch.optim.Optimizer:
    """Separate outer stepsizes for the head initialisation w and the body phi (Algorithm 1, line 10)."""
    groups = [
        {"params": list(model.head.parameters()), "lr": optim.beta_w},
        {"params": list(model.body.parameters()), "lr": optim.beta_phi},
    ]
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.beta_w, momentum=optim.momentum)
    return torch.optim.Adam(groups, lr=optim.beta_w)


def squared_norm(params: Any) -> torch.Tensor:
    return torch.stack([p.grad.pow(2).sum() for p in params if p.grad is not None]).sum()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@dataclass
class Setup:
    """Everything a run trains with, built once from the config."""

    model: AnilNet
    optimizer: torch.optim.Optimizer
    sampler: TaskSampler
    val_batches: list[TaskBatch]
    inner: InnerLoop
    dtype: torch.dtype
    body: BodyPass
    world: World = World()
    algorithm: str = "anil"


def fixed_batches(config: TrainConfig, split: Split, name: str, tasks: int, device: torch.device, seed: int) -> list[TaskBatch]:
    """`tasks` tasks of `split` drawn once, in meta-batches of at most B: the same tasks every time
    they are scored, so a curve moves only when the model does."""
    sampler = TaskSampler(split, config.ways, config.shots, config.query, generator(device, seed), name)
    return [sampler.sample(min(config.B, tasks - i)) for i in range(0, tasks, config.B)]


def make_model(config: TrainConfig, split: Split, device: torch.device) -> AnilNet:
    """The network for `config`, sized to the images of `split`, on `device` in config.dtype."""
    channels, image_size = split.images.shape[1:3]
    model = AnilNet(config.geometry.name, image_size, channels, config.ways, config.geometry.hidden)
    return model.to(device, getattr(torch, config.dtype))


def body_pass(config: TrainConfig, split: Split, device: torch.device) -> BodyPass:
    return BodyPass.auto(device, config.ways * (config.shots + config.query), split.images.shape[2], config.bf16)


def build(config: TrainConfig, device: torch.device, world: World = World()) -> Setup:
    seed_everything(config.seed)
    splits = load_splits(config.dataset)
    sampler = TaskSampler(splits.train, config.ways, config.shots, config.query, generator(device, config.seed), "train")
    val_batches = fixed_batches(config, splits.val, "val", config.eval_tasks, device, config.seed + EVAL_SEED_OFFSET)
    model = make_model(config, splits.train, device)
    if config.compile_body:
        model.body.compile()  # in place: parameter names and checkpoints stay the same
    return Setup(
        model=model,
        optimizer=make_optimizer(model, config.optim),
        sampler=sampler,
        val_batches=val_batches,
        inner=InnerLoop(config.N, config.inner_stepsize, config.lam, config.first_order),
        dtype=getattr(torch, config.dtype),
        body=body_pass(config, splits.train, device),
        world=world,
        algorithm=config.algorithm,
    )


METRIC_NAMES = ("loss", "accuracy", "grad_norm_w", "grad_norm_phi", "support_loss_before", "support_loss_after")


def meta_step(setup: Setup, tasks: int, blowup_loss: float = math.inf) -> tuple[dict[str, float], bool]:
    """One meta-iteration (Algorithm 1, lines 3-10). Returns its metrics, measured before the
    update, and whether it was healthy; an unhealthy step (non-finite loss or gradient, or a loss
    above `blowup_loss`) leaves the parameters as they were."""
    model, world = setup.model, setup.world
    batch = world.shard(setup.sampler.sample(tasks))  # every process draws the same B tasks, keeps its B/K
    counts = OpCounts()
    out = meta_loss(setup.algorithm, model, batch, setup.inner, setup.dtype, setup.body, counts)
    setup.optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    world.average_gradients(list(model.parameters()))
    norms = [squared_norm(model.head.parameters()), squared_norm(model.body.parameters())]
    scalars = world.average(torch.stack([out.loss.detach(), out.accuracy, out.support_before, out.support_after]))
    loss, accuracy, before, after = scalars
    # One host sync per iteration for all the scalars, not one .item() per metric.
    values = torch.stack([loss, accuracy, *norms, before, after]).tolist()
    metrics = {**dict(zip(METRIC_NAMES, values)), **counts.as_dict()}
    healthy = all(math.isfinite(v) for v in values) and metrics["loss"] <= blowup_loss
    if healthy:
        setup.optimizer.step()
    return metrics, healthy


def training_state(setup: Setup, config: TrainConfig, iteration: int, train_time: float, best: float) -> dict[str, Any]:
    return {
        "iteration": iteration,
        "train_time": train_time,
        "best_val_accuracy": best,
        "model": setup.model.state_dict(),
        "optimizer": setup.optimizer.state_dict(),
        "rng": checkpoint.rng_state(),
        "sampler": setup.sampler.generator.get_state(),
        "config": config.to_dict(),
        "training_values": config.training_values(),
    }


def restore(setup: Setup, state: dict[str, Any]) -> tuple[int, float, float]:
    setup.model.load_state_dict(state["model"])
    setup.optimizer.load_state_dict(state["optimizer"])
    checkpoint.set_rng_state(state["rng"])
    setup.sampler.generator.set_state(state["sampler"])
    return state["iteration"], state["train_time"], state["best_val_accuracy"]


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
        raise CheckpointError(
            f"checkpoint {path} was trained with other values of {', '.join(changed[:4])}; "
            f"resume with the run's own settings (anil resume {run_dir}) or use a new run directory"
        )
    if state["iteration"] >= config.iterations:
        raise CheckpointError(
            f"the run in {run_dir} already finished its {state['iteration']} iterations; nothing to resume "
            "(pass a larger iterations= to train on)"
        )
    return state


class StopRequests:
    """SIGINT / SIGTERM ask the loop to stop after the current iteration; a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._request)
        return self

    def _request(self, number: int, frame: Any) -> None:
        if self.signal is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signal.Signals(number).name
        log.warning("%s received: finishing this iteration, then checkpointing", self.signal)

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def run(config: TrainConfig, out_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Meta-train as `config` says, in `out_dir` (continuing its checkpoint when config.resume)."""
    started = time.perf_counter()
    device = local_device(resolve_device(config.device))
    world = distributed.init(device, config.B)
    out_dir = world.main_path(out_dir)  # every process reads rank 0's run folder; only rank 0 writes it
    try:
        if world.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
        with RunLock(out_dir) if world.is_main else contextlib.nullcontext():
            summary = _run_locked(config, out_dir, device, world, progress, started)
    finally:
        distributed.shutdown()
    if world.is_main:
        _report(summary, out_dir)
    return summary


def _run_locked(config, out_dir, device, world, progress, started) -> dict[str, Any]:
    if world.is_main and not config.resume and (out_dir / "metrics.csv").exists():
        raise CheckpointError(
            f"{out_dir} already holds a run; continue it with anil resume {out_dir} or choose another hydra.run.dir"
        )
    state = resume_state(config, out_dir) if config.resume else None
    setup = build(config, device, world)
    first, train_time, best = restore(setup, state) if state else (0, 0.0, -1.0)
    log.info(
        "%s %s %s at iteration %d, N=%d, alpha=%g, B=%d on %s (%s), run dir %s",
        "resuming" if state else "training", config.geometry.name, config.algorithm.upper(), first, config.N, setup.inner.stepsize,
        config.B, device, config.dataset.name, out_dir,
    )
    metrics_path = out_dir / "metrics.csv"
    writer = MetricsWriter(metrics_path, keep_until=first if config.resume else None) if world.is_main else NullWriter()
    with writer, StopRequests() as stop:
        outcome = _loop(config, setup, out_dir, writer, stop, (first, train_time, best), progress and world.is_main)
    summary = {
        **outcome,
        "wall_time_s": time.perf_counter() - started,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        "torch": torch.__version__,
        "config_digest": config.digest(),
    }
    if world.is_main:
        write_json_atomic(out_dir / "summary.json", summary)
    return summary


def _loop(config, setup, out_dir, writer, stop, start, progress) -> dict[str, Any]:
    first, train_time, best = start
    device = next(setup.model.parameters()).device
    save = checkpoint.save if setup.world.is_main else (lambda path, state: None)  # only rank 0 writes
    row: dict[str, Any] = {}
    status, reason = "completed", ""
    bar = tqdm(initial=first, total=config.iterations, disable=not progress, desc=f"{config.geometry.name} N={config.N}", unit="it")
    iteration = first
    for iteration in range(first + 1, config.iterations + 1):
        tick = time.perf_counter()
        metrics, healthy = meta_step(setup, config.B, config.blowup_loss)
        train_time += time.perf_counter() - tick
        row = {"iteration": iteration, "time": train_time, **metrics}
        if not healthy:  # keep the last good checkpoint: nothing is saved from here on
            writer.write(row)
            status, reason = "diverged", _divergence_reason(metrics, config.blowup_loss)
            break
        if (config.eval_every and iteration % config.eval_every == 0) or iteration == config.iterations:
            row["val_loss"], row["val_accuracy"] = score(
                setup.algorithm, setup.model, setup.val_batches, setup.inner, setup.dtype, setup.body
            )
            log.info("iteration %d: loss %.4f, val loss %.4f, val accuracy %.3f",
                     iteration, row["loss"], row["val_loss"], row["val_accuracy"])
            if row["val_accuracy"] > best:
                best = row["val_accuracy"]
                save(out_dir / BEST, training_state(setup, config, iteration, train_time, best))
        writer.write(row)
        bar.update()
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.2f}", refresh=False)
        last = iteration == config.iterations
        stopping = setup.world.any(stop.signal is not None, device)  # all processes stop at the same iteration
        if last or stopping or (config.checkpoint_every and iteration % config.checkpoint_every == 0):
            save(out_dir / CHECKPOINT, training_state(setup, config, iteration, train_time, best))
        if stopping and not last:
            status, reason = "interrupted", f"stopped by {stop.signal or 'another process'}"
            break
    bar.close()
    return {
        "status": status, "reason": reason, "iteration": iteration, "iterations": config.iterations,
        "final": row, "train_time_s": train_time, "seconds_per_iteration": train_time / max(1, iteration - first),
        "best_val_accuracy": best if best >= 0 else None,
    }


class NullWriter:
    """What processes other than rank 0 write metrics to: nothing."""

    def write(self, row: dict[str, Any]) -> None:
        pass

    def __enter__(self) -> "NullWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _divergence_reason(metrics: dict[str, float], blowup_loss: float) -> str:
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        return f"non-finite {', '.join(bad)}"
    return f"loss {metrics['loss']:.4g} above blowup_loss={blowup_loss:g}"


def _report(outcome: dict[str, Any], out_dir: Path) -> None:
    """Log how the run ended (rank 0 only)."""
    if outcome["status"] == "diverged":
        log.warning("diverged at iteration %d (%s); the last good checkpoint is kept in %s",
                    outcome["iteration"], outcome["reason"], out_dir)
    elif outcome["status"] == "interrupted":
        log.warning("stopped at iteration %d (%s); continue with: anil resume %s",
                    outcome["iteration"], outcome["reason"], out_dir)
    else:
        final = outcome["final"]
        log.info("done: loss %.4f, val accuracy %.3f, %.1f s training",
                 final["loss"], final["val_accuracy"], outcome["train_time_s"])
