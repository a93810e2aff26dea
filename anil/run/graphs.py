"""A meta-iteration's gradient computation replayed from a CUDA graph (`cuda_graphs=true`).

On a GPU the batched engine's cost at small B is kernel launches, not arithmetic: every inner
step launches the same few dozen kernels, so launch overhead grows with N while the work per
kernel is tiny. A meta-iteration has static shapes (B, ways, shots and query never change within
a run), so one CUDA graph captured once can replay every later iteration's forward, inner loop
and meta-backward with a single launch. What stays outside the graph, and why:
- task sampling (it draws from a generator; the drawn images are copied into the graph's input);
- the optimizer step (it is skipped when a step is unhealthy, a decision the host makes after
  reading the metrics; capturing it would take the update out of the health check's hands).

On a CPU there are no graphs: the same object runs the computation eagerly (the fallback that the
CPU tests exercise), through the same static-input path, so both paths are one code path up to
capture and replay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from anil.engine.opcount import OpCounts
from anil.tasks import TaskBatch

log = logging.getLogger(__name__)

# Eager calls before capture: they run on a side stream, as capture requires, so that cuDNN's
# algorithm choice, autograd's buffers and the allocator settle before the graph is recorded.
WARMUP_CALLS = 3

Compute = Callable[[TaskBatch, OpCounts], torch.Tensor]  # batch, counts -> [K] metrics (graph outputs)


class GraphedGradients:
    """Calls `compute(batch, counts)`: eagerly for the first WARMUP_CALLS calls, then from one
    captured CUDA graph. `compute` must leave the gradients in `params[i].grad` and return a
    tensor of metrics; after a replay the gradients are put back on the parameters (a caller may
    have set them to None in between, e.g. the objective's gradient evaluation)."""

    def __init__(self, compute: Compute, params: list[torch.nn.Parameter], device: torch.device) -> None:
        self.compute = compute
        self.params = params
        self.device = device
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.images: torch.Tensor | None = None  # the graph's input, uint8 [B, ways, shots + query, ch, S, S]
        self.outputs: torch.Tensor | None = None  # the graph's metrics, [K]
        self.grads: list[torch.Tensor | None] = []
        self.counts = OpCounts()  # what one captured iteration performs (hooks run at capture only)
        if device.type != "cuda":
            log.warning("cuda_graphs=true needs a CUDA device; on %s the meta-iteration runs eagerly", device)

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, batch: TaskBatch, counts: OpCounts) -> torch.Tensor:
        self.calls += 1
        if self.device.type != "cuda":
            return self.compute(batch, counts)
        if self.graph is None and self.calls <= WARMUP_CALLS:
            return self._on_side_stream(batch, counts)
        if self.graph is None:
            self._capture(batch)
        assert self.images is not None and self.outputs is not None
        self.images.copy_(batch.images)
        assert self.graph is not None
        self.graph.replay()
        for param, grad in zip(self.params, self.grads):
            param.grad = grad
        for name, value in self.counts.as_dict().items():
            counts.add(name, value)
        return self.outputs.clone()  # the next replay overwrites the graph's own output

    def _on_side_stream(self, batch: TaskBatch, counts: OpCounts) -> torch.Tensor:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            outputs = self.compute(batch, counts)
        torch.cuda.current_stream(self.device).wait_stream(side)
        return outputs

    def _capture(self, batch: TaskBatch) -> None:
        """Record one call on `batch`'s shapes; nothing runs until the first replay."""
        images = batch.images.clone()
        graph = torch.cuda.CUDAGraph()
        counts = OpCounts()
        for param in self.params:
            param.grad = None  # allocated inside the graph's memory pool, refilled by every replay
        torch.cuda.synchronize(self.device)
        with torch.cuda.graph(graph):
            outputs = self.compute(TaskBatch(images, batch.shots), counts)
        self.images, self.outputs, self.counts, self.graph = images, outputs, counts, graph
        self.grads = [param.grad for param in self.params]
        log.info("captured the meta-iteration in a CUDA graph (B=%d)", batch.tasks)
