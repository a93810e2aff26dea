"""float32 accuracy against a float64 reference: every body path, both geometries, first and second
order, at 1 and at 2 threads. Equality tests in float64 (test_meta.py) cannot see a kernel that
sums in float32 badly; these can (PyTorch's channels-last CPU BatchNorm put the meta-gradient off
by up to 1.5e-2 relative at this shape, against 4e-6 for the NCHW path)."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

from anil.data.sampler import TaskSampler
from anil.data.split import Split
from anil.engine import model as model_module
from anil.engine.batched import BodyPass, anil_meta_loss, anil_per_task_meta_loss
from anil.engine.batchnorm import batch_norm, reference_batch_norm
from anil.engine.model import BN_EPS, AnilNet
from anil.tasks import InnerLoop, TaskBatch

# The error of a correct float32 computation here is 1e-6 to 5e-6; the bound leaves room for that
# spread but not for a kernel that loses digits.
WITHIN = 4.0  # times the error of the dense NCHW body (whose BatchNorm accumulates in float64)
CEILING = 2e-5
THREADS_APART = 1e-5


@contextmanager
def threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def dense_body() -> Iterator[None]:
    """The GPU layout (one dense NCHW conv, the per-task BatchNorm through a view) on the CPU."""
    original = model_module.Body.forward
    model_module.Body.forward = lambda self, x, tasks=1: self._forward_dense(x, tasks)  # type: ignore[method-assign]
    try:
        yield
    finally:
        model_module.Body.forward = original  # type: ignore[method-assign]


def fc100_shaped(geometry: str) -> tuple[AnilNet, TaskBatch]:
    """A float64 Conv-4 at FC100's shape (3x32x32, 5-way 5+5) and two tasks of random images:
    51,200 values per channel in the first BatchNorm, as in training."""
    torch.manual_seed(0)
    model = AnilNet(geometry, 32, 3, ways=5, hidden=8).double()
    images = torch.randint(0, 256, (10, 10, 3, 32, 32), dtype=torch.uint8).numpy()
    split = Split.from_grouped(images, [str(c) for c in range(10)], "random")
    sampler = TaskSampler(split, ways=5, shots=5, query=5, generator=torch.Generator().manual_seed(0))
    return model, sampler.sample(2)


def meta_gradient(model: AnilNet, loss: torch.Tensor) -> torch.Tensor:
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))]).double()


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
@pytest.mark.parametrize("first_order", [False, True])
def test_every_body_path_is_accurate_in_float32_at_any_thread_count(geometry, first_order):
    model64, batch = fc100_shaped(geometry)
    inner = InnerLoop(3, 0.4, 0.05, first_order)
    truth = meta_gradient(model64, anil_per_task_meta_loss(model64, batch, inner, torch.float64).loss)
    model = model64.float()
    one_task_per_call = BodyPass(chunk_tasks=1)  # the CPU's own chunking at 3x32x32
    paths = {
        "channels-last grouped": lambda: anil_meta_loss(model, batch, inner, torch.float32, one_task_per_call).loss,
        "per-task reference": lambda: anil_per_task_meta_loss(model, batch, inner, torch.float32).loss,
    }
    found: dict[tuple[str, int], torch.Tensor] = {}
    for count in (1, 2):
        with threads(count):
            for name, loss in paths.items():
                found[name, count] = meta_gradient(model, loss())
            with dense_body():
                found["dense", count] = meta_gradient(model, paths["channels-last grouped"]())
    error = {key: ((g - truth).norm() / truth.norm()).item() for key, g in found.items()}
    for (name, count), value in error.items():
        assert value <= WITHIN * error["dense", count], f"{name} at {count} threads: {value:.1e} ({error})"
        assert value <= CEILING, f"{name} at {count} threads: {value:.1e}"
    for name in (*paths, "dense"):
        apart = ((found[name, 1] - found[name, 2]).norm() / truth.norm()).item()
        assert apart <= THREADS_APART, f"{name}: 1 and 2 threads differ by {apart:.1e}"


def channels_last(shape: tuple[int, ...], dtype: torch.dtype, scale: float = 6.0, shift: float = 20.0) -> torch.Tensor:
    """Conv-output-like values (mean/std as in the body's deeper blocks), channels-last."""
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * scale + shift
    return x.to(dtype).contiguous(memory_format=torch.channels_last)


def test_batch_norm_equals_pytorch_in_float64_with_exact_first_and_second_derivatives():
    x = channels_last((4, 6, 5, 5), torch.float64).requires_grad_()
    weight = torch.rand(6, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True)
    ours = batch_norm(x, weight, bias, BN_EPS)
    theirs = F.batch_norm(x.contiguous(), None, None, weight, bias, training=True, eps=BN_EPS)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    probe = torch.randn_like(theirs)
    inputs = (x, weight, bias)
    for a, b in zip(torch.autograd.grad(ours, inputs, probe), torch.autograd.grad(theirs, inputs, probe)):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    function = lambda x, w, b: batch_norm(x.contiguous(memory_format=torch.channels_last), w, b, BN_EPS)  # noqa: E731
    assert torch.autograd.gradcheck(function, (x, weight, bias))
    assert torch.autograd.gradgradcheck(function, (x, weight, bias))  # MAML's second order needs it


def test_batch_norm_in_float32_is_as_accurate_as_the_nchw_kernel():
    """The cause, measured directly: statistics and gradients at the first block's size."""
    x64 = channels_last((50, 64, 32, 32), torch.float64)
    weight, bias = torch.rand(64, dtype=torch.float64), torch.randn(64, dtype=torch.float64)
    probe = torch.randn(x64.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def run(norm, x, w, b):
        x, w, b = (t.detach().requires_grad_() for t in (x, w, b))
        out = norm(x, w, b)
        return [out, *torch.autograd.grad(out, (x, w, b), probe.to(x.dtype))]

    truth = run(reference_batch_norm_eps, x64, weight, bias)
    x32, w32, b32 = x64.float().contiguous(memory_format=torch.channels_last), weight.float(), bias.float()
    nchw = run(lambda x, w, b: F.batch_norm(x.contiguous(), None, None, w, b, True, 0.0, BN_EPS), x32, w32, b32)
    for count in (1, 2):
        with threads(count):
            ours = run(lambda x, w, b: batch_norm(x, w, b, BN_EPS), x32, w32, b32)
        for name, a, b, t in zip(("output", "grad x", "grad weight", "grad bias"), ours, nchw, truth):
            ours_error = ((a.double() - t).norm() / t.norm()).item()
            nchw_error = ((b.double() - t).norm() / t.norm()).item()
            message = f"{name} at {count} threads: {ours_error:.1e} against {nchw_error:.1e}"
            assert ours_error <= max(3 * nchw_error, 1e-6), message


def reference_batch_norm_eps(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return reference_batch_norm(x, w, b, BN_EPS)


def test_bfloat16_and_nchw_inputs_keep_pytorch_kernel():
    """Only channels-last float32/float64 CPU tensors take the accurate path; the others are F.batch_norm's."""
    weight, bias = torch.ones(4), torch.zeros(4)
    for x in (torch.randn(3, 4, 5, 5), channels_last((3, 4, 5, 5), torch.bfloat16)):
        assert batch_norm(x, weight.to(x.dtype), bias.to(x.dtype), BN_EPS).grad_fn is None  # no grad asked
        x = x.detach().requires_grad_()
        assert "NativeBatchNorm" in type(batch_norm(x, weight.to(x.dtype), bias.to(x.dtype), BN_EPS).grad_fn).__name__
