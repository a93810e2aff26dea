"""Building what a run trains with from its typed config: device, seeds, model, optimiser, task
sampler, validation tasks and the meta-learner. Training, `anil eval`, `anil smoothness` and the
benchmarks all build through here, so each is built one way."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from anil.config import ConfigError, OptimConfig, TrainConfig, inner_stepsize, outer_stepsizes
from anil.data import load_splits
from anil.data.sampler import TaskSampler
from anil.data.split import Split
from anil.engine.batched import Anil, AnilPerTask, BodyPass
from anil.engine.learner import MetaLearner
from anil.engine.maml import Maml
from anil.engine.model import AnilNet
from anil.run.budget import check_evaluations, check_fits
from anil.run.distributed import World
from anil.run.graphs import GraphedGradients
from anil.run.step import meta_gradients
from anil.tasks import InnerLoop, TaskBatch

EVAL_SEED_OFFSET = 1_000_003  # the validation tasks come from their own stream, fixed per seed
OBJECTIVE_SEED = 20_201_229  # the tasks that estimate the full objective: one set for every N and seed


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but this torch sees no CUDA device; use device=cpu or device=auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def dtype_of(config: TrainConfig) -> torch.dtype:
    dtype = getattr(torch, config.dtype)
    assert isinstance(dtype, torch.dtype)
    return dtype


def image_shape(images: tuple[int, ...]) -> tuple[int, int]:
    """(channels, side) from the shape [count, channels, side, side] of square images."""
    return int(images[1]), int(images[2])


def make_model(config: TrainConfig, split: Split, device: torch.device) -> AnilNet:
    """The network for `config`, sized to the images of `split`, on `device` in config.dtype."""
    channels, image_size = split.images.shape[1:3]
    model = AnilNet(config.geometry.name, image_size, channels, config.ways, config.geometry.hidden, init=config.init)
    return model.to(device, dtype_of(config))


def make_optimizer(model: AnilNet, optim: OptimConfig, steps: int) -> torch.optim.Optimizer:
    """Separate outer stepsizes for the head initialisation w and the body phi (Algorithm 1, line 10),
    at N = `steps` inner steps (optim.beta_schedule may scale them with N)."""
    beta_w, beta_phi = outer_stepsizes(optim, steps)
    groups = [
        {"params": list(model.head.parameters()), "lr": beta_w},
        {"params": list(model.body.parameters()), "lr": beta_phi},
    ]
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=beta_w, momentum=optim.momentum)
    return torch.optim.Adam(groups, lr=beta_w)


def inner_loop(config: TrainConfig, steps: int | None = None) -> InnerLoop:
    """The config's inner loop; `steps` replaces N (the stepsize schedule follows it)."""
    n = config.N if steps is None else steps
    return InnerLoop(n, inner_stepsize(config.alpha, config.alpha_schedule, n), config.lam, config.first_order)


def make_learner(
    config: TrainConfig, shape: tuple[int, int], device: torch.device, inner: InnerLoop | None = None
) -> MetaLearner:
    """ANIL (batched body, adapted head) or MAML (every parameter adapted), as config.algorithm says,
    for images of `shape` (channels, side) on `device`."""
    inner = inner or inner_loop(config)
    if config.algorithm == "maml":
        return Maml(inner, dtype_of(config))
    if config.engine == "per_task":
        return AnilPerTask(inner, dtype_of(config))
    body = BodyPass.auto(device, config.ways * (config.shots + config.query), shape, config.bf16)
    return Anil(inner, dtype_of(config), body)


@dataclass(frozen=True)
class TaskSet:
    """`tasks` tasks of `split` in meta-batches of at most `batch`: the same tasks every time they
    are iterated (the generator is re-seeded), so a validation curve moves only when the model
    does. Drawn batch by batch (memory for one batch, however many tasks) by a CPU generator
    whatever the device, so a CPU and a CUDA run (or `anil eval` on either) score the same tasks."""

    split: Split
    name: str  # the split's name, for error messages
    ways: int
    shots: int
    query: int
    batch: int
    tasks: int
    seed: int
    device: torch.device

    def __iter__(self) -> Iterator[TaskBatch]:
        cpu = generator(torch.device("cpu"), self.seed)
        sampler = TaskSampler(self.split, self.ways, self.shots, self.query, cpu, self.name)
        for start in range(0, self.tasks, self.batch):
            yield sampler.sample(min(self.batch, self.tasks - start)).to(self.device)

    def __len__(self) -> int:
        """Meta-batches per pass."""
        return -(-self.tasks // self.batch)


def task_set(config: TrainConfig, split: Split, name: str, tasks: int, device: torch.device, seed: int) -> TaskSet:
    """The fixed tasks of `split` that validation or `anil eval` score, in meta-batches of B."""
    split.check_tasks(name, config.ways, config.shots, config.query)  # fail now, not at the first evaluation
    return TaskSet(split, name, config.ways, config.shots, config.query, config.B, tasks, seed, device)


@dataclass
class Setup:
    """Everything a run trains with, built once from the config."""

    model: AnilNet
    optimizer: torch.optim.Optimizer
    sampler: TaskSampler
    val_tasks: TaskSet
    learner: MetaLearner
    objective_tasks: TaskSet | None = None  # when config.grad_eval_every > 0
    world: World = field(default_factory=World)
    graphed: GraphedGradients | None = None  # when config.cuda_graphs: the meta-gradients from a CUDA graph
    task_chunk: int = 0  # tasks per backward pass (0: the whole meta-batch at once)


def build(config: TrainConfig, device: torch.device, world: World | None = None) -> Setup:
    seed_everything(config.seed)
    splits = load_splits(config.dataset)
    sampler = TaskSampler(
        splits.train, config.ways, config.shots, config.query, generator(device, config.seed), "train"
    )
    val_tasks = task_set(config, splits.val, "val", config.eval_tasks, device, config.seed + EVAL_SEED_OFFSET)
    objective = None
    if config.grad_eval_every:
        objective = task_set(config, splits.train, "train", config.grad_eval_tasks, device, OBJECTIVE_SEED)
    channels, side = image_shape(splits.train.images.shape)
    check_fits(config, side, channels, device)
    model = make_model(config, splits.train, device)
    if config.compile_body:
        model.body.compile()  # in place: parameter names and checkpoints stay the same
    world = world or World()
    if config.cuda_graphs and world.size > 1:
        raise ConfigError(
            "cuda_graphs=true runs in one process (its graph holds no all-reduce); drop it under torchrun"
        )
    setup = Setup(
        model=model,
        optimizer=make_optimizer(model, config.optim, config.N),
        sampler=sampler,
        val_tasks=val_tasks,
        learner=make_learner(config, (channels, side), device),
        world=world,
        objective_tasks=objective,
        task_chunk=config.task_chunk,
    )
    check_evaluations(config, setup.learner, model, val_tasks)
    if config.cuda_graphs:
        setup.graphed = GraphedGradients(partial(meta_gradients, setup), list(model.parameters()), device)
    return setup
