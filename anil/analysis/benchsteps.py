"""The steps the benchmark times (anil/analysis/bench.py): the engine (eager or replayed from a
CUDA graph), the per-task reference, the floor, and a breakdown of one iteration into its parts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from anil.analysis.timing import QUERY, SHOTS, WAYS, interleaved
from anil.data.sampler import TaskSampler
from anil.data.split import Split
from anil.engine import model as model_module
from anil.engine.batched import BodyPass, adapt, anil_meta_loss, anil_reference_meta_loss, encode
from anil.engine.batchnorm import pytorch_batch_norm
from anil.engine.losses import query_loss
from anil.engine.model import AnilNet
from anil.engine.opcount import OpCounts
from anil.run.graphs import WARMUP_CALLS, GraphedGradients
from anil.tasks import InnerLoop, TaskBatch, class_labels

Step = Callable[[], None]


def engine_step(model: AnilNet, batch: TaskBatch, inner: InnerLoop, body: BodyPass) -> Step:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        anil_meta_loss(model, batch, inner, torch.float32, body).loss.backward()

    return step


def graphed_engine_step(model: AnilNet, batch: TaskBatch, inner: InnerLoop, body: BodyPass) -> Step:
    """engine_step replayed from a CUDA graph after its warm-up calls (eager on a CPU)."""

    def compute(batch: TaskBatch, counts: OpCounts) -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        loss = anil_meta_loss(model, batch, inner, torch.float32, body).loss
        loss.backward()
        return loss.detach()

    graphed = GraphedGradients(compute, list(model.parameters()), batch.images.device)

    def step() -> None:
        graphed(batch, OpCounts())

    for _ in range(WARMUP_CALLS + 1):  # warm up and capture before anything is timed
        step()
    return step


def engine_loss(model: AnilNet, batch: TaskBatch, inner: InnerLoop, body: BodyPass) -> Callable[[], torch.Tensor]:
    """The engine's meta-loss as a function of nothing (what peak_bytes records the graph of)."""
    return lambda: anil_meta_loss(model, batch, inner, torch.float32, body).loss


def reference_step(model: AnilNet, batch: TaskBatch, inner: InnerLoop) -> Step:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        anil_reference_meta_loss(model, batch, inner, torch.float32).backward()

    return step


def floor_step(model: AnilNet, batch: TaskBatch, body: BodyPass) -> Step:
    """Body + linear head over all the images, one backward: the least any ANIL iteration can cost."""
    labels = class_labels(WAYS, SHOTS + QUERY, batch.images.device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        support, query = encode(model, batch, torch.float32, body)
        features = torch.cat([support, query], dim=1)  # [B, ways*(k+q), d]
        logits = F.linear(features, model.head[0], model.head[1])
        F.cross_entropy(logits.flatten(0, 1), labels.repeat(batch.tasks)).backward()

    return step


def breakdown(
    model: AnilNet, batch: TaskBatch, inner: InnerLoop, body: BodyPass, repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds of each part of one meta-iteration."""
    split = Split(
        np.random.default_rng(0).integers(0, 256, (64 * 600, *batch.images.shape[3:]), dtype=np.uint8),
        np.full(64, 600),
        [str(i) for i in range(64)],
        "random",
    )
    sampler = TaskSampler(split, WAYS, SHOTS, QUERY, torch.Generator(device=device).manual_seed(0))
    labels_s, labels_q = class_labels(WAYS, SHOTS, device), class_labels(WAYS, QUERY, device)
    state: dict[str, Any] = {}

    def body_forward() -> None:
        state["features"] = encode(model, batch, torch.float32, body)

    def inner_loop() -> None:
        support, query = state["features"]
        adapted, _ = adapt(list(model.head), support, labels_s, inner)
        state["loss"] = query_loss(adapted, query, labels_q).mean()

    def backward() -> None:
        model.zero_grad(set_to_none=True)
        body_forward()
        inner_loop()
        state["loss"].backward()

    timed = interleaved(
        {
            "sampling": lambda: sampler.sample(batch.tasks),
            "body forward": body_forward,
            "inner loop (forward)": inner_loop,
            "whole": backward,
        },
        repeats,
        device,
    )
    whole = timed.pop("whole")
    timed["backward (body + inner loop)"] = whole - timed["body forward"] - timed["inner loop (forward)"]
    return timed


@contextlib.contextmanager
def body_with_pytorch_batch_norm() -> Iterator[None]:
    """The body with PyTorch's own BatchNorm kernel instead of anil/engine/batchnorm.py's accurate
    one: what the accuracy costs, timed side by side (on a GPU both are PyTorch's)."""
    original = model_module.batch_norm
    model_module.batch_norm = pytorch_batch_norm
    try:
        yield
    finally:
        model_module.batch_norm = original


def with_pytorch_batch_norm(step: Step) -> Step:
    def wrapped() -> None:
        with body_with_pytorch_batch_norm():
            step()

    return wrapped
