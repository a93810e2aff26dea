"""Will a run fit? Memory estimates checked before anything is allocated, so that a config that
cannot fit stops with one line and the estimate instead of swapping or dying after minutes; and
the time an evaluation would take, projected from the measured cost of its first batch, so that an
outsized one (`anil eval --tasks 100000000`, `eval_tasks=...`) stops with one line, nothing written.

The estimates are deliberately simple upper bounds on what autograd keeps for one meta-iteration:
- the body: per image, each of the four Conv-4 blocks keeps its conv output and its normalised
  output (2 x 64 x side^2 floats at full resolution, a quarter of that per later block), and the
  pools their indices: about BODY_FACTOR x 64 x side^2 floats in all (autograd's saved tensors,
  counted by tests/test_task_chunk.py with saved-tensor hooks, come to 3.7 at 28, 32 and 84 px);
- ANIL's inner loop: per step and task, the head iterate, its gradient and the support logits;
- MAML: the body's activations for every inner step of every task;
- a validation batch: no graph through the body (scoring keeps none), so at most the two largest
  activations of its first block at once (NO_GRAPH_FACTOR x 64 x side^2 floats per image), and
  never at the same time as a training step's graph: the need is the larger of the two, not the sum.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from anil.config import ConfigError, TrainConfig
from anil.data.cache import available_memory
from anil.engine.learner import MetaLearner
from anil.engine.model import AnilNet, Body, head_size
from anil.run.clock import lap
from anil.tasks import TaskBatch

EVAL_HOURS = TrainConfig.max_eval_hours  # the longest an evaluation may be projected to take (anil eval --max-hours)
PROBE_TASKS = 100_000  # a run's evaluation work (tasks scored over the run) above which it is timed up front
GRADIENT_COST = 3.0  # a task of the full objective's gradient costs about this many scorings (forward and backward)
Scores = tuple[torch.Tensor, torch.Tensor]  # per-task query losses and accuracies, [tasks] each
BODY_FACTOR = 4.0  # floats kept per image per (filter x pixel) of the first block, all blocks together
NO_GRAPH_FACTOR = 2.0  # the same without a graph: the conv output and its normalised copy, alive at once
FILTERS = 64
HEADROOM = 0.9  # use at most this share of what is available


@dataclass(frozen=True)
class Estimate:
    body_bytes: int  # activations of one meta-batch through the body
    inner_bytes: int  # the unrolled inner loop's graph
    validation_bytes: int  # one validation meta-batch (the tasks are drawn batch by batch)

    @property
    def total(self) -> int:
        """A training step and a validation batch never hold memory at the same time."""
        return max(self.body_bytes + self.inner_bytes, self.validation_bytes)


def head_parameters(config: TrainConfig, side: int) -> int:
    """n_w: parameters of the head for `side`-pixel images."""
    return head_size(config.geometry.name, Body.feature_size(side), config.ways, config.geometry.hidden)


def estimate(config: TrainConfig, side: int, channels: int) -> Estimate:
    """Memory of one backward pass: over the whole meta-batch, or a piece of task_chunk tasks."""
    float_bytes = 8 if config.dtype == "float64" else 4
    tasks = min(config.task_chunk or config.B, config.B)
    images = tasks * config.ways * (config.shots + config.query)
    per_image = BODY_FACTOR * FILTERS * side * side * float_bytes + channels * side * side * float_bytes
    body = images * per_image
    support = config.ways * config.shots
    per_step = tasks * (3 * head_parameters(config, side) + 4 * support * max(config.ways, config.geometry.hidden))
    inner = float(config.N * per_step * float_bytes)
    if config.algorithm == "maml":  # every inner step runs the body again over the support set, per task
        inner += config.N * tasks * support * per_image
    no_graph = NO_GRAPH_FACTOR * FILTERS * side * side * float_bytes + channels * side * side * float_bytes
    validation = min(config.B, config.eval_tasks) * config.ways * (config.shots + config.query) * no_graph
    return Estimate(int(body), int(inner), int(validation))


def available_bytes(device: torch.device) -> int:
    """Free memory on `device`: CUDA's free memory, or the host's MemAvailable."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return available_memory()


def gib(size: float) -> str:
    return f"{size / 2**30:.1f} GiB"


def check_fits(config: TrainConfig, side: int, channels: int, device: torch.device) -> Estimate:
    """Raise ConfigError (one line, with the estimate) when a meta-iteration cannot fit in memory."""
    need = estimate(config, side, channels)
    free = available_bytes(device)
    if need.total > HEADROOM * free:
        biggest = max(
            ("the body pass (B, ways, shots, query, dataset.image_size)", need.body_bytes),
            ("the unrolled inner loop (N, B)", need.inner_bytes),
            ("a validation batch (B)", need.validation_bytes),
            key=lambda part: part[1],
        )
        tasks = min(config.task_chunk or config.B, config.B)
        fits = int(tasks * HEADROOM * free / max(need.body_bytes + need.inner_bytes, 1))
        pieces = f", or split the meta-batch (the same meta-gradient): task_chunk={fits}" if 1 <= fits < tasks else ""
        raise ConfigError(
            f"a meta-iteration needs about {gib(need.total)} but {device} has {gib(free)} free; "
            f"most of it is {biggest[0]}: lower those{pieces}"
        )
    return need


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def check_duration(what: str, per_task_s: float, tasks: int, limit_hours: float, fix: str) -> None:
    """Raise ConfigError (one line) when `tasks` tasks at the measured `per_task_s` would take
    longer than `limit_hours`."""
    projected = per_task_s * tasks
    if projected > limit_hours * 3600:
        raise ConfigError(
            f"{what}: {tasks:,} tasks would take about {duration(projected)} at {1e3 * per_task_s:.3g} ms per task "
            f"(measured on the first batch), over the limit of {limit_hours:g} h; {fix}"
        )


def timed_batch(learner: MetaLearner, model: AnilNet, batch: TaskBatch) -> tuple[Scores, float]:
    """learner.score on one batch, and the seconds it took per task: the pace an evaluation's
    projected time is read from."""
    with lap(batch.images.device) as took:
        scores = learner.score(model, [batch])
    return scores, took.wall / batch.tasks


def evaluation_tasks(config: TrainConfig) -> float:
    """Tasks a run scores in its evaluations (validations, and the full objective's gradient
    weighted by GRADIENT_COST), over all its iterations."""
    validations = (config.iterations // config.eval_every if config.eval_every else 0) + 1
    gradients = config.iterations // config.grad_eval_every + 1 if config.grad_eval_every else 0
    return validations * config.eval_tasks + GRADIENT_COST * gradients * config.grad_eval_tasks


def check_evaluations(config: TrainConfig, learner: MetaLearner, model: AnilNet, batches: Iterable[TaskBatch]) -> None:
    """Refuse (ConfigError, one line) a run whose evaluations would take longer than
    config.max_eval_hours at the pace of one validation batch, timed here when there are more
    than PROBE_TASKS of them (smaller runs are not slowed by the probe)."""
    total = evaluation_tasks(config)
    if total <= PROBE_TASKS:
        return
    _, pace = timed_batch(learner, model, next(iter(batches)))
    fix = ("lower eval_tasks or grad_eval_tasks, evaluate less often (eval_every, grad_eval_every), "
           "or raise max_eval_hours")  # fmt: skip
    check_duration("the run's evaluations", pace, int(total), config.max_eval_hours, fix)
