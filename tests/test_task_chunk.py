"""task_chunk: the meta-gradient of a meta-batch computed in pieces of tasks equals the one of the
whole batch, and the memory estimate (and its advice) follows the piece."""

import dataclasses

import pytest
import torch

from anil.config import ConfigError
from anil.engine.opcount import OpCounts
from anil.run import budget
from anil.run.setup import build
from anil.run.step import meta_gradients
from helpers import small_config


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_pieces_of_tasks_give_the_whole_batch_meta_gradient(geometry):
    from anil.config import GeometryConfig

    config = small_config(
        B=8, dtype="float64", geometry=GeometryConfig(name=geometry, hidden=8 * (geometry != "convex"))
    )
    results = {}
    for chunk in (0, 3):  # 3: pieces of 3, 3 and 2 tasks
        setup = build(dataclasses.replace(config, task_chunk=chunk), torch.device("cpu"))
        counts = OpCounts()
        metrics = meta_gradients(setup, setup.sampler.sample(8), counts)
        results[chunk] = (metrics, [p.grad.clone() for p in setup.model.parameters()], counts.as_dict())
    (whole, whole_grads, whole_counts), (pieces, piece_grads, piece_counts) = results[0], results[3]
    torch.testing.assert_close(pieces, whole, rtol=1e-12, atol=1e-14)
    for a, b in zip(piece_grads, whole_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    assert piece_counts == whole_counts  # the same evaluations, counted per task


def test_the_memory_estimate_follows_the_piece_and_suggests_one(monkeypatch):
    config = small_config(B=32)
    whole, piece = budget.estimate(config, 32, 3), budget.estimate(dataclasses.replace(config, task_chunk=4), 32, 3)
    assert piece.body_bytes * 8 == whole.body_bytes and piece.inner_bytes * 8 == whole.inner_bytes
    monkeypatch.setattr(budget, "available_bytes", lambda device: int(whole.total / 3))  # a third of what B needs
    with pytest.raises(ConfigError) as refused:
        budget.check_fits(config, 32, 3, torch.device("cpu"))
    suggested = int(str(refused.value).rsplit("task_chunk=", 1)[1])
    assert 1 <= suggested < 32
    budget.check_fits(dataclasses.replace(config, task_chunk=suggested), 32, 3, torch.device("cpu"))  # and it fits


@pytest.mark.parametrize("side", [28, 84])
def test_the_estimate_bounds_what_autograd_keeps_and_a_validation_batch_is_not_added_to_it(side):
    """Autograd's saved tensors for one meta-iteration (counted once per storage with saved-tensor
    hooks) lie under the estimate's training part, and within 1.5x of it: an upper bound that does
    not refuse runs that fit. Validation keeps no graph and never overlaps a training step."""
    from anil.engine.batched import Anil, BodyPass
    from anil.engine.model import AnilNet
    from anil.tasks import InnerLoop, TaskBatch

    config = small_config(B=2, shots=5, query=5, N=3, eval_tasks=2)
    model = AnilNet("convex", side, 3, config.ways, 0, init="authors")
    images = torch.randint(0, 255, (2, config.ways, 10, 3, side, side), dtype=torch.uint8)
    storages: dict[int, int] = {}

    def keep(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    learner = Anil(InnerLoop(3, 0.1, 0.01, False), torch.float32, BodyPass.auto(torch.device("cpu"), 50, (3, side)))
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        learner.loss(model, TaskBatch(images, 5))
    need = budget.estimate(config, side, 3)
    training = need.body_bytes + need.inner_bytes
    assert sum(storages.values()) <= training <= 1.5 * sum(storages.values())
    assert need.total == max(training, need.validation_bytes) and need.validation_bytes < training
