"""The meta-training loop (Algorithm 1), Hydra-free: `run(config, run_dir)`.

It owns the run directory's contents: metrics.csv (a row per iteration, flushed), checkpoint.pt
(every `checkpoint_every` iterations and at exit), best.pt (best validation accuracy), and
summary.json (written last; see anil/run/outcome.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from anil.config import TrainConfig
from anil.engine.opcount import OpCounts
from anil.run import checkpoint, distributed
from anil.run.checkpoint import BEST, CHECKPOINT
from anil.run.clock import lap, peak_memory_bytes
from anil.run.distributed import local_device
from anil.run.folder import RunLock, refuse_if_taken
from anil.run.metrics import STEP_METRICS, MetricsWriter
from anil.run.outcome import Progress, RunSummary, Status, log_ending, write_summary
from anil.run.resumption import restore, resume_state, training_state
from anil.run.rows import Fanout, NullWriter, RowWriter
from anil.run.setup import Setup, TaskSet, build, resolve_device
from anil.run.step import meta_gradients, squared_norm
from anil.run.stops import StopNow, StopRequests
from anil.run.trackers import Trackers
from anil.tasks import TaskBatch

log = logging.getLogger(__name__)


Section = Callable[[], contextlib.AbstractContextManager[Any]]


def meta_step(
    setup: Setup, tasks: int, blowup_loss: float = math.inf, section: Section = contextlib.nullcontext
) -> tuple[dict[str, float], bool]:
    """One meta-iteration (Algorithm 1, lines 3-10). Returns its metrics, measured before the
    update, and whether it was healthy; an unhealthy step (non-finite loss or gradient, or a loss
    above `blowup_loss`) leaves the parameters as they were. Everything before the update runs
    inside `section()` (where a stop request may abandon the iteration: nothing has changed yet)."""
    with section():
        batch = setup.world.shard(setup.sampler.sample(tasks))  # every process draws the same B tasks, keeps its B/K
        counts = OpCounts()
        if setup.graphed is not None:
            metrics_tensor = setup.graphed(batch, counts)
        else:
            metrics_tensor = meta_gradients(setup, batch, counts)
        # One host sync per iteration for all the scalars, not one .item() per metric.
        values = metrics_tensor.tolist()
    metrics: dict[str, float] = {**dict(zip(STEP_METRICS, values)), **counts.as_dict()}
    healthy = all(math.isfinite(v) for v in values) and metrics["loss"] <= blowup_loss
    if healthy:
        setup.optimizer.step()
    return metrics, healthy


def mean_score(setup: Setup, batches: Iterable[TaskBatch]) -> tuple[float, float]:
    """Mean query loss and accuracy over the tasks of `batches`, after adapting on each."""
    losses, accuracies = setup.learner.score(setup.model, batches)
    return losses.double().mean().item(), accuracies.double().mean().item()


def objective_gradient(setup: Setup, tasks: TaskSet) -> tuple[float, float]:
    """||dL/dw||^2 and ||dL/dphi||^2 of the meta-objective averaged over all of `tasks` (gradients
    accumulated batch by batch, weighted by batch size). Leaves the model's parameters, and every
    random state, as they were: the training run is the same with or without it."""
    model = setup.model
    setup.optimizer.zero_grad(set_to_none=True)
    for batch in tasks:
        (setup.learner.loss(model, batch).loss * (batch.tasks / tasks.tasks)).backward()
    norms = torch.stack([squared_norm(model.head.parameters()), squared_norm(model.body.parameters())]).tolist()
    setup.optimizer.zero_grad(set_to_none=True)
    return norms[0], norms[1]


@dataclass
class Loop:
    """One session of the training loop over a built setup."""

    config: TrainConfig
    setup: Setup
    out_dir: Path
    writer: RowWriter
    stop: StopRequests
    show_progress: bool

    def save(self, name: str, progress: Progress) -> None:
        if self.setup.world.is_main:  # only rank 0 writes
            checkpoint.save(self.out_dir / name, training_state(self.setup, self.config, progress))

    def validate(self, row: dict[str, Any], progress: Progress) -> None:
        """Score the fixed validation tasks into `row`; keep best.pt when they improved."""
        log.info("iteration %d: validating on %d tasks", row["iteration"], self.setup.val_tasks.tasks)
        with self.stop.preemptible():
            row["val_loss"], row["val_accuracy"] = mean_score(self.setup, self.setup.val_tasks)
        log.info(
            "iteration %d: loss %.4f, val loss %.4f, val accuracy %.3f",
            row["iteration"], row["loss"], row["val_loss"], row["val_accuracy"],
        )  # fmt: skip
        if row["val_accuracy"] > progress.best_val_accuracy:
            progress.best_val_accuracy = row["val_accuracy"]
            self.save(BEST, progress)

    def evaluate_objective(self, row: dict[str, Any]) -> None:
        """The full objective's squared meta-gradient norms into `row` (its own time, not training's)."""
        tasks = self.setup.objective_tasks
        assert tasks is not None
        with self.stop.preemptible():
            row["meta_sq_grad_norm_w"], row["meta_sq_grad_norm_phi"] = objective_gradient(self.setup, tasks)

    def step(self, progress: Progress) -> dict[str, Any] | None:
        """One meta-iteration, its time counted into `progress`; None when a stop request abandoned it
        (the random states are then put back, so a resume draws this iteration's tasks again)."""
        before = (checkpoint.rng_state(), self.setup.sampler.generator.get_state())
        try:
            with lap(next(self.setup.model.parameters()).device) as took:
                metrics, healthy = meta_step(self.setup, self.config.B, self.config.blowup_loss, self.stop.preemptible)
        except StopNow:
            checkpoint.set_rng_state(before[0])
            self.setup.sampler.generator.set_state(before[1])
            return None
        progress.train_time += took.wall
        progress.cpu_time += took.cpu
        progress.iteration += 1
        timing = {"time": progress.train_time, "cpu_time": progress.cpu_time, "clock": took.ended}
        return {"iteration": progress.iteration, **timing, **metrics, "healthy": healthy}

    def evaluate(self, row: dict[str, Any], progress: Progress) -> bool:
        """The evaluations due at this row's iteration, into `row`; False when a stop request
        abandoned one (the step stays taken; the row waits in `progress.pending`)."""
        iteration, last = row["iteration"], row["iteration"] == self.config.iterations
        try:
            if (self.config.eval_every and iteration % self.config.eval_every == 0) or last:
                self.validate(row, progress)
            if self.config.grad_eval_every and (iteration % self.config.grad_eval_every == 0 or iteration == 1):
                self.evaluate_objective(row)
        except StopNow:
            progress.pending = row
            return False
        progress.pending = None
        return True

    def finish(self, row: dict[str, Any], progress: Progress, stopping: bool) -> None:
        """Write an evaluated row, and checkpoint where the run says so."""
        self.writer.write(row)
        iteration, every = row["iteration"], self.config.checkpoint_every
        if iteration == self.config.iterations or stopping or (every and iteration % every == 0):
            self.save(CHECKPOINT, progress)

    def run(self, progress: Progress) -> RunSummary:
        config, setup = self.config, self.setup
        device = next(setup.model.parameters()).device
        row: dict[str, Any] = dict(progress.pending or {})
        status, reason = Status.COMPLETED, ""
        bar = tqdm(initial=progress.iteration, total=config.iterations, disable=not self.show_progress,
                   desc=f"{config.geometry.name} N={config.N}", unit="it")  # fmt: skip
        while progress.pending is not None or progress.iteration < config.iterations:
            if progress.pending is None:
                stepped = self.step(progress)
                if stepped is None:  # abandoned mid-iteration: the model is as the last iteration left it
                    self.save(CHECKPOINT, progress)
                    status, reason = Status.INTERRUPTED, f"stopped by {self.stop.signal} during an iteration"
                    break
                row = stepped
                if not row.pop("healthy"):  # keep the last good checkpoint: nothing is saved from here on
                    self.writer.write(row)
                    status, reason = Status.DIVERGED, _divergence_reason(row, config.blowup_loss)
                    break
                bar.update()
            if not self.evaluate(row, progress):  # the step is taken; its evaluation is redone on resume
                self.save(CHECKPOINT, progress)
                stopped_by = self.stop.signal or "a request"
                status, reason = (
                    Status.INTERRUPTED,
                    f"stopped by {stopped_by} during iteration {row['iteration']}'s evaluation",
                )
                break
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.2f}", refresh=False)
            stopping = setup.world.any(self.stop.signal is not None, device)  # all processes together
            self.finish(row, progress, stopping)
            if stopping and progress.iteration < config.iterations:
                status, reason = Status.INTERRUPTED, f"stopped by {self.stop.signal or 'another process'}"
                break
        bar.close()
        best = progress.best_val_accuracy
        return RunSummary(
            status=status,
            reason=reason,
            iteration=progress.iteration,
            iterations=config.iterations,
            final=row,
            train_time_s=progress.train_time,
            cpu_time_s=progress.cpu_time,
            wall_time_s=progress.wall_time(),  # every session's, this one's up to now
            seconds_per_iteration=progress.train_time / max(1, progress.iteration),
            best_val_accuracy=best if best >= 0 else None,
        )


OnClaim = Callable[[Path], None]


def run(
    config: TrainConfig,
    out_dir: Path,
    progress: bool = False,
    on_claim: OnClaim | None = None,
    trackers: Trackers | None = None,
) -> RunSummary:
    """Meta-train as `config` says, in `out_dir` (continuing its checkpoint when config.resume).

    The folder is claimed first: locked, and refused (RunRefused, nothing changed) when it holds a
    run and config.resume is false, or when its checkpoint cannot be resumed under `config`. Then
    `on_claim(out_dir)` runs (the command line records the config there) and training starts.
    Every metrics row goes to metrics.csv, then to `trackers` (which the caller starts and closes)."""
    started = time.perf_counter()
    device = local_device(resolve_device(config.device))
    world = distributed.init(device, config.B)
    out_dir = world.main_path(out_dir)  # every process reads rank 0's run folder; only rank 0 writes it
    try:
        if world.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
        with RunLock(out_dir) if world.is_main else contextlib.nullcontext():
            summary = _run_locked(
                config, out_dir, device, world, progress and world.is_main, on_claim, trackers, started
            )
    finally:
        distributed.shutdown()
    summary = _with_environment(summary, config, device)
    if world.is_main:
        write_summary(out_dir, summary)
        log_ending(summary, out_dir)
    return summary


def _run_locked(
    config: TrainConfig,
    out_dir: Path,
    device: torch.device,
    world: distributed.World,
    show_progress: bool,
    on_claim: OnClaim | None,
    trackers: Trackers | None,
    started: float,
) -> RunSummary:
    """`started`: when this session began (time.perf_counter), for the wall time the checkpoints carry."""
    if world.is_main and not config.resume:
        refuse_if_taken(out_dir)
    state = resume_state(config, out_dir) if config.resume else None
    if world.is_main and on_claim is not None:
        on_claim(out_dir)
    setup = build(config, device, world)
    progress = restore(setup, state) if state else Progress()
    progress.session_start = started
    log.info(
        "%s %s %s at iteration %d, N=%d, alpha=%g, B=%d on %s (%s), run dir %s",
        "resuming" if state else "training", config.geometry.name, config.algorithm.upper(), progress.iteration,
        config.N, config.inner_stepsize, config.B, device, config.dataset.name, out_dir,
    )  # fmt: skip
    keep_until = progress.iteration if config.resume else None
    writer = MetricsWriter(out_dir / "metrics.csv", keep_until) if world.is_main else NullWriter()
    rows = Fanout(writer, trackers) if trackers is not None and world.is_main else writer
    with writer, StopRequests(can_preempt=world.size == 1) as stop:  # preempting one rank would hang the others
        return Loop(config, setup, out_dir, rows, stop, show_progress).run(progress)


def _with_environment(summary: RunSummary, config: TrainConfig, device: torch.device) -> RunSummary:
    environment = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "host": platform.node(),  # jobs overlapping in time share a machine only on the same host
        "peak_memory_bytes": peak_memory_bytes(device),
        "config_digest": config.digest(),
    }
    return replace(summary, environment=environment)


def _divergence_reason(metrics: dict[str, float], blowup_loss: float) -> str:
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        return f"non-finite {', '.join(bad)}"
    return f"loss {metrics['loss']:.4g} above blowup_loss={blowup_loss:g}"
