"""CUDA checks (marked gpu; skipped without a CUDA device): the same engine, on the device."""

import dataclasses

import pytest
import torch

from anil.config import DatasetConfig, OptimConfig, TrainConfig
from anil.data import load_splits
from anil.data.sampler import TaskSampler
from anil.data.split import Split
from anil.engine.batched import BodyPass, anil_meta_loss, anil_reference_meta_loss
from anil.engine.model import AnilNet
from anil.run.setup import build, task_set
from anil.run.trainer import meta_step
from anil.tasks import InnerLoop

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")
SGD = OptimConfig(name="sgd", beta_w=0.01, beta_phi=0.01)  # outer steps that do not amplify last-bit differences
PROCEDURAL = DatasetConfig(name="procedural", train_classes=64, val_classes=16, test_classes=16, instances=12)


def cuda_sampler(seed=0):
    images = torch.randint(0, 256, (12, 6, 3, 32, 32), dtype=torch.uint8).numpy()
    split = Split.from_grouped(images, [str(i) for i in range(12)], "random")
    return TaskSampler(split, 3, 2, 3, torch.Generator(device=CUDA).manual_seed(seed))


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_batched_equals_reference_on_cuda(geometry):
    torch.manual_seed(0)
    model = AnilNet(geometry, 32, 3, 3, 8).to(CUDA, torch.float64)
    batch = cuda_sampler().sample(4)
    assert batch.images.device.type == "cuda"  # tasks are sampled on the device
    inner = InnerLoop(3, 0.3, 0.05, False)
    batched = anil_meta_loss(model, batch, inner, torch.float64).loss
    reference = anil_reference_meta_loss(model, batch, inner, torch.float64)
    grads = [torch.autograd.grad(loss, list(model.parameters())) for loss in (batched, reference)]
    flat = [torch.cat([g.flatten() for g in gs]) for gs in grads]
    assert ((flat[0] - flat[1]).norm() / flat[1].norm()).item() < 1e-8


def test_bf16_body_is_close_to_float32_on_cuda():
    torch.manual_seed(0)
    model = AnilNet("convex", 32, 3, 3, 0).to(CUDA)
    batch = cuda_sampler().sample(8)
    inner = InnerLoop(5, 0.1, 0.01, False)
    full = anil_meta_loss(model, batch, inner, torch.float32).loss.item()
    half = anil_meta_loss(model, batch, inner, torch.float32, BodyPass(0, bf16=True)).loss.item()
    assert abs(full - half) / full < 0.05


def test_compiled_body_computes_the_eager_meta_gradients_on_cuda():
    """torch.compile fuses the body's kernels, which reorders float32 sums: the first step's
    gradients agree with the eager body's to float32 tolerance, and five SGD steps track the eager
    run. (Under Adam the first device run saw 3e-3 by the fifth step: Adam divides by the root of
    near-zero second moments, so early updates are nearly sign(gradient) and last-bit differences
    grow; that is Adam's, not the compiled body's.)"""
    config = TrainConfig(dataset=PROCEDURAL, B=8, device="cuda", optim=SGD)
    grads, losses = {}, {}
    for compiled in (False, True):
        setup = build(dataclasses.replace(config, compile_body=compiled), CUDA)
        first = meta_step(setup, 8)[0]["loss"]
        grads[compiled] = [p.grad.detach().clone() for p in setup.model.parameters()]  # before any step changed them
        losses[compiled] = [first] + [meta_step(setup, 8)[0]["loss"] for _ in range(4)]
    assert all(torch.isfinite(torch.tensor(losses[True])))
    for eager, compiled in zip(grads[False], grads[True]):
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5 * eager.abs().max().item())
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_validation_tasks_are_the_same_on_cpu_and_cuda():
    config = TrainConfig(dataset=PROCEDURAL, B=4)
    val = load_splits(PROCEDURAL).val
    on_cpu = list(task_set(config, val, "val", 10, torch.device("cpu"), seed=3))
    on_cuda = list(task_set(config, val, "val", 10, CUDA, seed=3))
    assert all(b.images.device.type == "cuda" for b in on_cuda)
    assert all(torch.equal(a.images, b.images.cpu()) for a, b in zip(on_cpu, on_cuda))
