"""CUDA checks (marked gpu; skipped without a CUDA device): the same engine, on the device."""

import pytest
import torch

from anil.config import DatasetConfig, TrainConfig
from anil.data.sampler import TaskSampler
from anil.data.split import Split
from anil.meta import BodyPass, InnerLoop, meta_forward, reference_meta_loss
from anil.model import AnilNet
from anil.trainer import build, meta_step

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")


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
    batched = meta_forward(model, batch, inner, torch.float64).loss
    reference = reference_meta_loss(model, batch, inner, torch.float64)
    grads = [torch.autograd.grad(loss, list(model.parameters())) for loss in (batched, reference)]
    flat = [torch.cat([g.flatten() for g in gs]) for gs in grads]
    assert ((flat[0] - flat[1]).norm() / flat[1].norm()).item() < 1e-8


def test_bf16_body_is_close_to_float32_on_cuda():
    torch.manual_seed(0)
    model = AnilNet("convex", 32, 3, 3, 0).to(CUDA)
    batch = cuda_sampler().sample(8)
    inner = InnerLoop(5, 0.1, 0.01, False)
    full = meta_forward(model, batch, inner, torch.float32).loss.item()
    half = meta_forward(model, batch, inner, torch.float32, BodyPass(0, bf16=True)).loss.item()
    assert abs(full - half) / full < 0.05


def test_training_steps_on_cuda_with_compiled_body():
    procedural = DatasetConfig(name="procedural", train_classes=64, val_classes=16, test_classes=16, instances=12)
    config = TrainConfig(dataset=procedural, B=8, device="cuda", compile_body=True, bf16=True)
    setup = build(config, CUDA)
    losses = [meta_step(setup, 8)[0]["loss"] for _ in range(5)]
    assert all(l == l for l in losses) and losses[-1] < losses[0] * 1.5
