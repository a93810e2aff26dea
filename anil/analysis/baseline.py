"""What the benchmark measures the engine against besides its own reference: the machine's compute
limit, and a conventional learn2learn-style ANIL step.

- **Compute limit.** The fp32 matrix-multiply peak of this machine, measured in the same run
  (median of square products), and the FLOPs of the body's convolutions forward and backward,
  counted from the layer shapes. Their ratio is the least time any implementation of the body
  pass can take; engine time over that is how far from the machine's limit the engine sits.
- **learn2learn-style step.** How ANIL is usually written (learn2learn's ANIL example: a Conv-4 of
  conv with bias -> BatchNorm2d -> ReLU -> max-pool in NCHW, then a head adapted per task): a
  Python loop over tasks, each running the body over its own 50 images, adapting the head N steps
  with create_graph=True, and back-propagating its query loss. Written here from that
  description; it shares no code with the engine.
"""

from __future__ import annotations

from collections.abc import Callable

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


def gemm_peak(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a size x size x size fp32 matrix product: the fastest of `repeats` after a
    warm-up. The best, not the median: a peak is what the machine attains, and on a shared
    machine the median of five has read as low as 135 GFLOP/s where the best reads 185, below the
    rate the body's own convolutions reached in the same run."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    return 2 * size**3 / fastest_seconds(lambda: a @ b, repeats, device)


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
    """Conv-4 as it is usually written: conv (with bias) -> BatchNorm2d -> ReLU -> 2x2 max-pool."""

    def __init__(self, channels: int, side: int, ways: int):
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
        self.head = nn.Linear(FILTERS * (side // 2**BLOCKS) ** 2, ways)


def conventional_step(net: ConventionalNet, batch: TaskBatch, inner: InnerLoop) -> Callable[[], None]:
    """One meta-iteration the learn2learn way: task by task, body per task, head adapted with
    create_graph=True, query losses averaged into one backward."""
    ways, shots, query = batch.ways, batch.shots, batch.query
    labels_s, labels_q = class_labels(ways, shots, batch.images.device), class_labels(ways, query, batch.images.device)
    images = batch.images.to(net.head.weight.dtype) / 255  # [B, ways, k+q, ch, S, S]

    def step() -> None:
        net.zero_grad(set_to_none=True)
        total = torch.zeros((), device=images.device)
        for task in range(batch.tasks):
            x = images[task]  # [ways, k+q, ch, S, S]
            features = net.body(x.flatten(0, 1)).view(ways, shots + query, -1)  # [ways, k+q, d]
            support, queried = features[:, :shots].flatten(0, 1), features[:, shots:].flatten(0, 1)
            weight: torch.Tensor = net.head.weight
            bias: torch.Tensor = net.head.bias
            for _ in range(inner.steps):
                loss = F.cross_entropy(F.linear(support, weight, bias), labels_s)
                loss = loss + inner.lam / 2 * (weight.pow(2).sum() + bias.pow(2).sum())
                g_weight, g_bias = torch.autograd.grad(loss, (weight, bias), create_graph=True)
                weight, bias = weight - inner.stepsize * g_weight, bias - inner.stepsize * g_bias
            total = total + F.cross_entropy(F.linear(queried, weight, bias), labels_q)
        (total / batch.tasks).backward()

    return step
