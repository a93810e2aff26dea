"""What the benchmark measures the engine against besides its own reference: the machine's compute
limit, and a conventional learn2learn-style ANIL step.

- **Compute limit.** The machine's fp32 peak, measured in the same run and at the engine's thread
  count: the fastest of square matrix products of several sizes and of every convolution kernel
  the body runs (each layer forward, and its input and weight gradients, at the engine's images
  per call and memory layout), so that no kernel of the body can beat it. With the FLOPs of the
  body's convolutions forward and backward, counted from the layer shapes, it gives the least time
  any implementation of the body pass can take (engine/limit >= 1 by construction); engine time
  over that is how far from the machine's limit the engine sits.
- **learn2learn-style step.** How ANIL is usually written (learn2learn's ANIL example: a Conv-4 of
  conv with bias -> BatchNorm2d -> ReLU -> max-pool in NCHW, then a head adapted per task): a
  Python loop over tasks, each running the body over its own 50 images, adapting the head N steps
  with create_graph=True, and back-propagating its query loss; the head is linear (convex) or
  linear -> ReLU -> linear (nonconvex). Written here from that description; it shares no code with
  the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from anil.analysis.timing import fastest_seconds, profiled
from anil.tasks import InnerLoop, TaskBatch, class_labels

FILTERS, BLOCKS = 64, 4
# Where an iteration's operator time goes, by the aten operators' own (self) time. The first
# matching category wins; what matches none is "other".
CATEGORIES = {
    "convolution": ("conv", "mkldnn_convolution"),
    "batch norm": ("batch_norm",),
    "max-pool": ("max_pool",),
    "relu": ("relu", "threshold_backward"),
    "matmul (inner loop, head)": ("bmm", "addmm", "mm", "matmul", "baddbmm", "linear"),
    "copies and layout": ("copy_", "contiguous", "clone", "to_dense", "reorder", "_to_copy", "cat", "stack"),
    "element-wise and reductions": ("add", "mul", "sub", "div", "sum", "mean", "pow", "exp", "log", "softmax",
                                    "nll", "where", "fill_", "zero_", "repeat"),
}  # fmt: skip


GEMM_SIZES = (1024, 2048, 3072)
PEAK_REPEATS = 5  # each kernel's best of this many timed calls
PEAK_METHOD = (
    "the fastest of square fp32 matrix products (sizes {sizes}) and of the body's convolution kernels "
    "(each layer forward, input gradient and weight gradient, {images} images per call, {layout}), each the "
    "best of {repeats} after a warm-up, at {threads} threads"
)


def peak_rates(
    device: torch.device, images: int, channels: int, side: int, repeats: int = PEAK_REPEATS
) -> dict[str, float]:
    """FLOP/s of each kernel that bounds the body: square GEMMs and the body's convolutions
    (forward, input gradient, weight gradient per layer) at `images` images per call, in the
    memory layout the body uses on `device`. The best of `repeats`, not the median: a peak is what
    the machine attains (the median of five GEMMs once read 135 GFLOP/s on a shared machine
    whose convolutions reached 176 in the same run)."""
    rates: dict[str, float] = {}
    for size in GEMM_SIZES:
        a, b = (torch.randn(size, size, device=device) for _ in range(2))
        rates[f"gemm {size}"] = 2 * size**3 / fastest_seconds(_product(a, b), repeats, device)
    layout = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    c_in, h = channels, side
    for layer in range(BLOCKS):
        x = torch.randn(images, c_in, h, h, device=device).contiguous(memory_format=layout)
        weight = torch.randn(FILTERS, c_in, 3, 3, device=device)
        out = F.conv2d(x, weight, padding=1)
        flops = 2.0 * images * c_in * FILTERS * 9 * h * h
        kernels = {"forward": _conv_forward(x, weight)}
        for name, mask in (("input gradient", [True, False, False]), ("weight gradient", [False, True, False])):
            kernels[name] = _conv_backward(out, x, weight, mask)
        for name, kernel in kernels.items():
            rates[f"conv {layer + 1} {name}"] = flops / fastest_seconds(kernel, repeats, device)
        c_in, h = FILTERS, h // 2
    return rates


def peak_method(device: torch.device, images: int, repeats: int = PEAK_REPEATS) -> str:
    """How peak_rates measured, in words (the performance document quotes it)."""
    layout = "channels-last" if device.type == "cpu" else "NCHW"
    sizes = ", ".join(str(s) for s in GEMM_SIZES)
    threads = torch.get_num_threads()
    return PEAK_METHOD.format(sizes=sizes, images=images, layout=layout, repeats=repeats, threads=threads)


def _product(a: torch.Tensor, b: torch.Tensor) -> Callable[[], object]:
    return lambda: a @ b


def _conv_forward(x: torch.Tensor, weight: torch.Tensor) -> Callable[[], object]:
    return lambda: F.conv2d(x, weight, padding=1)


def _conv_backward(out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mask: list[bool]) -> Callable[[], object]:
    grad = torch.randn_like(out)
    return lambda: torch.ops.aten.convolution_backward(
        grad, x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask
    )


def operator_time(step: Callable[[], None], device: torch.device) -> dict[str, float]:
    """Seconds of one call of `step` by operator category (CATEGORIES; self time of aten
    operators, so nested calls are not counted twice), from the PyTorch profiler."""
    seconds: dict[str, float] = {name: 0.0 for name in [*CATEGORIES, "other"]}
    for event in profiled(step, device):
        if not event.key.startswith("aten::"):
            continue
        name = event.key.removeprefix("aten::")
        found = next((c for c, keys in CATEGORIES.items() if any(k in name for k in keys)), "other")
        own = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
        seconds[found] += own / 1e6
    return seconds


def body_flops(images: int, channels: int, side: int) -> float:
    """FLOPs of Conv-4's convolutions over `images` images, forward and backward: each 3x3 conv costs
    2 * C_in * C_out * 9 * H * W per image forward, as much again for the weight gradient, and as
    much again for the input gradient (except the first layer's, which nothing needs)."""
    total, c_in, h = 0.0, channels, side
    for layer in range(BLOCKS):
        forward = 2.0 * c_in * FILTERS * 9 * h * h
        total += forward * (2 if layer == 0 else 3)
        c_in, h = FILTERS, h // 2
    return total * images


class ConventionalNet(nn.Module):
    """Conv-4 as it is usually written: conv (with bias) -> BatchNorm2d -> ReLU -> 2x2 max-pool, and
    a head of nn.Linear layers (one: convex; two with a ReLU between: nonconvex, `hidden` wide)."""

    def __init__(self, channels: int, side: int, ways: int, hidden: int = 0):
        super().__init__()
        layers: list[nn.Module] = []
        for layer in range(BLOCKS):
            layers += [
                nn.Conv2d(channels if layer == 0 else FILTERS, FILTERS, 3, padding=1),
                nn.BatchNorm2d(FILTERS),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
        self.body = nn.Sequential(*layers, nn.Flatten())
        sizes = [FILTERS * (side // 2**BLOCKS) ** 2, *([hidden] if hidden else []), ways]
        self.head = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))


def _apply_head(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The head's layers [weight, bias, weight, bias, ...] with a ReLU between them."""
    for i in range(0, len(params), 2):
        x = F.linear(F.relu(x) if i else x, params[i], params[i + 1])
    return x


def conventional_step(net: ConventionalNet, batch: TaskBatch, inner: InnerLoop) -> Callable[[], None]:
    """One meta-iteration the learn2learn way: task by task, body per task, head adapted with
    create_graph=True, query losses averaged into one backward."""
    ways, shots, query = batch.ways, batch.shots, batch.query
    labels_s, labels_q = class_labels(ways, shots, batch.images.device), class_labels(ways, query, batch.images.device)
    head: list[torch.Tensor] = [p for layer in net.head for p in cast(nn.Linear, layer).parameters()]
    images = batch.images.to(head[0].dtype) / 255  # [B, ways, k+q, ch, S, S]

    def step() -> None:
        net.zero_grad(set_to_none=True)
        total = torch.zeros((), device=images.device)
        for task in range(batch.tasks):
            x = images[task]  # [ways, k+q, ch, S, S]
            features = net.body(x.flatten(0, 1)).view(ways, shots + query, -1)  # [ways, k+q, d]
            support, queried = features[:, :shots].flatten(0, 1), features[:, shots:].flatten(0, 1)
            params = head
            for _ in range(inner.steps):
                loss = F.cross_entropy(_apply_head(params, support), labels_s)
                loss = loss + inner.lam / 2 * torch.stack([p.pow(2).sum() for p in params]).sum()
                grads = torch.autograd.grad(loss, params, create_graph=True)
                params = [p - inner.stepsize * g for p, g in zip(params, grads)]
            total = total + F.cross_entropy(_apply_head(params, queried), labels_q)
        (total / batch.tasks).backward()

    return step
