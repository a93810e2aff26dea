"""The network: a Conv-4 body phi with per-task BatchNorm, and a head w per geometry.

The body takes the images of T tasks in *task-minor* order, [n, T, ch, S, S] flattened to
[n*T, ch, S, S] (n images per task). On a GPU, a conv output [n*T, C, h, w] is, without a copy,
the tensor [n, T*C, h, w], and one fused batch_norm over it normalises each (task, channel) pair
over that task's own n images: exactly the statistics each task would get if it ran on its own.

On a CPU the body runs in channels-last memory ([rows, h, w, C] in memory), the layout oneDNN's
convolutions and PyTorch's max-pool are fastest in (scripts/bench.py at the FC100 shape, B = 32,
N = 7, 2 threads: 0.98 s per meta-iteration, 1.55 s with the dense NCHW body). There a task's
channels are not adjacent in memory, so the tasks go side by side in the channel dimension
instead: [n*T, ch, S, S] is, without a copy, [n, T*ch, S, S], a grouped conv (one group per task,
the same filters in each) gives [n, T*C, h, w], and per-channel BatchNorm over it is again per
task. It runs through anil.engine.batchnorm, which sums the statistics accurately (PyTorch's own
channels-last CPU kernel sums them naively in float32).

BatchNorm always uses the statistics of the batch at hand (no running averages), in training and
in evaluation alike, as in MAML/ANIL reference code: a task is normalised over its support and
query images together.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from anil.engine.batchnorm import batch_norm
from anil.geometry import Geometry

BN_EPS = 1e-5


class Body(nn.Module):
    """Conv-4: four blocks of 3x3 conv (64 filters) -> per-task BatchNorm -> ReLU -> 2x2 max-pool.

    The convs have no bias: the BatchNorm shift right after makes one redundant (its gradient is 0)."""

    def __init__(self, channels: int = 1, filters: int = 64, blocks: int = 4):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(channels if i == 0 else filters, filters, kernel_size=3, padding=1, bias=False)
            for i in range(blocks)
        )
        self.bn_weight = nn.ParameterList(nn.Parameter(torch.ones(filters)) for _ in range(blocks))
        self.bn_bias = nn.ParameterList(nn.Parameter(torch.zeros(filters)) for _ in range(blocks))

    def forward(self, x: torch.Tensor, tasks: int = 1) -> torch.Tensor:
        """x: [n*T, ch, S, S] in task-minor order -> features [n*T, d]."""
        if x.device.type == "cpu":
            return self._forward_grouped(x, tasks)
        return self._forward_dense(x, tasks)

    def _filters(self) -> list[torch.Tensor]:
        """Each block's conv weight [C_out, C_in, 3, 3]."""
        return [cast(nn.Conv2d, conv).weight for conv in self.convs]

    def _forward_dense(self, x: torch.Tensor, tasks: int) -> torch.Tensor:
        for filters, weight, bias in zip(self._filters(), self.bn_weight, self.bn_bias):
            x = F.conv2d(x, filters, padding=1)  # [n*T, C, h, w]
            rows, channels, height, width = x.shape
            grouped = x.reshape(rows // tasks, tasks * channels, height, width)  # [n, T*C, h, w]
            grouped = F.batch_norm(
                grouped, None, None, weight.repeat(tasks), bias.repeat(tasks), training=True, eps=BN_EPS
            )
            # ReLU after the pool: the same values and gradients (both are monotone), on 4x fewer elements
            x = F.relu(F.max_pool2d(grouped.reshape(rows, channels, height, width), 2))
        return x.flatten(1)

    def _forward_grouped(self, x: torch.Tensor, tasks: int) -> torch.Tensor:
        rows, channels, height, width = x.shape
        x = x.reshape(rows // tasks, tasks * channels, height, width)  # [n, T*ch, S, S], a view
        x = x.contiguous(memory_format=torch.channels_last)
        for filters, weight, bias in zip(self._filters(), self.bn_weight, self.bn_bias):
            # the same filters in every group: the repeat's backward sums the tasks' weight gradients
            x = F.conv2d(x, filters.repeat(tasks, 1, 1, 1), padding=1, groups=tasks)  # [n, T*C, h, w]
            # not F.batch_norm: its channels-last CPU kernel sums the statistics naively in float32 (batchnorm.py)
            x = batch_norm(x, weight.repeat(tasks), bias.repeat(tasks), BN_EPS)
            x = F.relu(F.max_pool2d(x, 2))  # [n, T*C, h/2, w/2]; ReLU after the pool as above
        return x.reshape(rows, -1)  # [n, T, C, s, s] -> [n*T, C*s*s], the order a per-task pass gives

    @staticmethod
    def feature_size(image_size: int, filters: int = 64, blocks: int = 4) -> int:
        side = image_size
        for _ in range(blocks):
            side //= 2
        if side < 1:
            raise ValueError(f"image_size={image_size} is too small for {blocks} pooling blocks")
        return filters * side * side


def head_widths(geometry: Geometry, features: int, ways: int, hidden: int) -> list[int]:
    """The head's layer widths, input first: [d, ways] (convex) or [d, hidden, ways] (nonconvex)."""
    return [features, ways] if geometry == Geometry.convex else [features, hidden, ways]


def head_size(geometry: Geometry, features: int, ways: int, hidden: int) -> int:
    """n_w: the number of head parameters (weights and biases)."""
    widths = head_widths(geometry, features, ways, hidden)
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths[:-1], widths[1:]))


def dimensions(model: AnilNet) -> dict[str, int]:
    """n_w and n_φ, the head's and the body's parameter counts (Table 2 counts entries in them)."""
    return {"n_w": sum(p.numel() for p in model.head), "n_phi": sum(p.numel() for p in model.body.parameters())}


def init_head(geometry: Geometry, features: int, ways: int, hidden: int) -> nn.ParameterList:
    """Head parameters w as [weight, bias, ...]: one Linear (convex) or Linear -> ReLU -> Linear."""
    sizes = head_widths(geometry, features, ways, hidden)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layer = nn.Linear(fan_in, fan_out)  # PyTorch's default (Kaiming-uniform) initialisation
        params += [nn.Parameter(layer.weight.detach().clone()), nn.Parameter(layer.bias.detach().clone())]
    return nn.ParameterList(params)


def head_logits(params: list[torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    """Apply the head. Batched: params [B, out, in] / [B, out], features [B, n, d] -> [B, n, ways].
    Also works unbatched (params [out, in] / [out], features [n, d]), the per-task reference's case."""
    x = features
    for i in range(0, len(params), 2):
        if i:
            x = F.relu(x)
        x = torch.matmul(x, params[i].transpose(-1, -2)) + params[i + 1].unsqueeze(-2)
    return x


INITS = ("pytorch", "authors")


def init_authors_(model: AnilNet) -> None:
    """The initialisation of the paper's code (learn2learn's Conv-4, which its ANIL example used):
    Xavier-uniform (gain 1) conv and head weights, zero head biases, BatchNorm weights drawn from
    U(0, 1) and BatchNorm biases at 0. (That Conv-4 also has conv biases, zero at the start; here
    they are left out: BatchNorm right after removes them, so their gradient is 0.) Their smaller
    BatchNorm scales give smaller features than PyTorch's default of 1, hence a smaller inner-loss
    curvature at the same alpha."""
    with torch.no_grad():
        for conv in model.body.convs:
            assert isinstance(conv, nn.Conv2d)
            nn.init.xavier_uniform_(conv.weight, gain=1.0)
        for weight in model.body.bn_weight:
            nn.init.uniform_(weight, 0.0, 1.0)
        for bias in model.body.bn_bias:
            nn.init.zeros_(bias)
        for i, param in enumerate(model.head):
            if i % 2 == 0:  # [out, in] weights
                nn.init.xavier_uniform_(param, gain=1.0)
            else:
                nn.init.zeros_(param)


class AnilNet(nn.Module):
    """The body phi and the head w. `filters` below Conv-4's 64 only for tests that need a model
    small enough to form its Hessian densely. `init`: "pytorch" (PyTorch's layer defaults,
    BatchNorm weights at 1) or "authors" (init_authors_)."""

    def __init__(
        self,
        geometry: Geometry | str,
        image_size: int,
        channels: int,
        ways: int,
        hidden: int,
        filters: int = 64,
        init: str = "pytorch",
    ):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init={init!r} is not one of {INITS}")
        self.body = Body(channels, filters)
        self.head = init_head(Geometry(geometry), Body.feature_size(image_size, filters), ways, hidden)
        if init == "authors":
            init_authors_(self)
