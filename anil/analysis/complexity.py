"""ANIL against MAML per meta-iteration (the paper's Table 2), measured.

For each geometry and N, on FC100-shaped inputs (5-way 5-shot, 5 query, 3x32x32, Conv-4):
- median seconds of one meta-iteration (forward + meta-backward) of ANIL's batched engine, ANIL's
  per-task loop (anil_reference_meta_loss) and MAML, timed round-robin in one process so the
  ratios are fair;
- the memory the meta-graph holds (bytes autograd saves for backward; on a GPU: peak allocated);
- the operation counters of anil/engine/opcount.py (what backward actually computed), and from
  them the gradient-entry count Table 2 is written in (evaluations x parameter dimension);
- Table 2's predicted ANIL/MAML factor per meta-iteration: gradient entries
  (N n_w + n_phi) / (N (n_w + n_phi)), second-order entries n_w (n_w + n_phi) / (n_w + n_phi)^2.

Run: .venv/bin/python scripts/complexity.py     (about 3 minutes on 2 CPU cores; writes
docs/data/complexity.json, then docs/complexity.md via anil/analysis/reports/complexity.py)
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from anil.analysis.theory import dot
from anil.analysis.timing import QUERY, SHOTS, WAYS, interleaved, make_batch, make_model, peak_bytes
from anil.engine.batched import BodyPass, anil_meta_loss, anil_reference_meta_loss, encode, task_minor_images
from anil.engine.losses import support_loss
from anil.engine.maml import maml_meta_loss
from anil.engine.model import AnilNet, dimensions, head_logits
from anil.engine.opcount import OpCounts
from anil.geometry import Geometry
from anil.tasks import InnerLoop, TaskBatch, class_labels

SIDE = 32  # FC100
# The image shapes (channels, side) at which unit costs are measured: each dataset's own.
SHAPES = {"fc100": (3, 32), "embedded": (1, 28)}


Forward = Callable[..., torch.Tensor]


def forwards(model: AnilNet, batch: TaskBatch, inner: InnerLoop, body: BodyPass) -> dict[str, Forward]:
    """The meta-loss of each contender, as a function of an OpCounts (or None)."""
    return {
        "anil": lambda counts=None: anil_meta_loss(model, batch, inner, torch.float32, body, counts).loss,
        "anil_per_task": lambda counts=None: anil_reference_meta_loss(model, batch, inner, torch.float32),
        "maml": lambda counts=None: maml_meta_loss(model, batch, inner, torch.float32, counts).loss,
    }


def as_step(model: AnilNet, forward: Forward) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        forward().backward()

    return step


def measure(
    geometry: str, n: int, tasks: int, repeats: int, alpha: float, lam: float, device: torch.device
) -> dict[str, Any]:
    """One (geometry, N) row: seconds, memory and counters of ANIL, ANIL's per-task loop and MAML."""
    model = make_model(geometry, SIDE, device)
    batch = make_batch(SIDE, tasks, device)
    inner = InnerLoop(n, alpha, lam if geometry == Geometry.convex else 0.0, first_order=False)
    body = BodyPass.auto(device, WAYS * (SHOTS + QUERY), (3, SIDE))
    contenders = forwards(model, batch, inner, body)
    seconds = interleaved({name: as_step(model, f) for name, f in contenders.items()}, repeats, device)
    row: dict[str, Any] = {"geometry": geometry, "N": n, "B": tasks}
    row.update(dimensions(model))
    n_w, n_phi = row["n_w"], row["n_phi"]
    for name, forward in contenders.items():
        row[f"{name}_s"] = seconds[name]
        row[f"{name}_bytes"] = peak_bytes(as_step(model, forward), forward, device)
    for name in ("anil", "maml"):
        counts = OpCounts()
        model.zero_grad(set_to_none=True)
        contenders[name](counts).backward()
        row.update({f"{name}_{k}": v for k, v in counts.as_dict().items()})
        row[f"{name}_grad_entries"] = counts.grad_evals_w * n_w + counts.grad_evals_phi * n_phi
    row["time_ratio"] = row["anil_s"] / row["maml_s"]
    row["time_ratio_per_task"] = row["anil_per_task_s"] / row["maml_s"]
    row["memory_ratio"] = row["anil_bytes"] / row["maml_bytes"]
    row["grad_entries_ratio"] = row["anil_grad_entries"] / row["maml_grad_entries"]
    row["table2_grad_factor"] = (n * n_w + n_phi) / (n * (n_w + n_phi))
    row["table2_second_order_factor"] = n_w / (n_w + n_phi)
    return row


def unit_costs(
    geometry: str, tasks: int, repeats: int, lam: float, device: torch.device, shape: tuple[int, int] = (3, SIDE)
) -> dict[str, float]:
    """Median seconds per task of each operation the counters count, measured in isolation on the
    same inputs of `shape` (channels, side): what a counted evaluation costs where ANIL takes it
    (the head, the features) and where MAML takes it (through the body)."""
    channels, side = shape
    model = make_model(geometry, side, device, channels=channels)
    batch = make_batch(side, tasks, device, channels=channels)
    labels = batch.support_labels()
    images = task_minor_images(batch, torch.float32)
    head = [p.detach().unsqueeze(0).expand(tasks, *p.shape).clone().requires_grad_(True) for p in model.head]
    features = encode(model, batch, torch.float32)[0].detach().requires_grad_(True)  # [B, ways*k, d]
    v = [torch.randn_like(h) for h in head]

    def grad_w() -> None:
        torch.autograd.grad(support_loss(head, features, labels, lam).sum(), head)

    def second_order(wrt: list[torch.Tensor]) -> Callable[[], None]:
        def step() -> None:
            g = torch.autograd.grad(support_loss(head, features, labels, lam).sum(), head, create_graph=True)
            torch.autograd.grad(dot(g, v), wrt)

        return step

    every_image = class_labels(WAYS, (SHOTS + QUERY) * tasks, device)  # task-minor: [ways, k+q, B] flattened

    def through_body(order: int) -> Callable[[], None]:
        params = [*model.body.parameters(), *model.head]

        def step() -> None:
            loss = F.cross_entropy(head_logits(list(model.head), model.body(images, tasks=tasks)), every_image)
            if order == 1:
                torch.autograd.grad(loss, params)
            else:
                g = torch.autograd.grad(loss, params, create_graph=True)
                torch.autograd.grad(dot(g, [torch.ones_like(a) for a in g]), params)

        return step

    steps = {"grad_w": grad_w, "hvp_w": second_order(head), "mixed_at_features": second_order([features]),
             "grad_through_body": through_body(1), "hvp_through_body": through_body(2)}  # fmt: skip
    seconds = interleaved(steps, repeats, device)
    return {name: value / tasks for name, value in seconds.items()}


def measure_all(
    grid: list[int], tasks: int, repeats: int, alpha: float, lam: float, device: torch.device, command: str
) -> dict[str, Any]:
    """Every row of the grid, both geometries, with what the document needs to say how it was measured."""
    started = time.perf_counter()
    rows = []
    for geometry in Geometry:
        for n in grid:
            rows.append(measure(geometry, n, tasks, repeats, alpha, lam, device))
            r = rows[-1]
            print(
                f"{geometry} N={n}: ANIL {r['anil_s']:.3f} s, loop {r['anil_per_task_s']:.3f} s, "
                f"MAML {r['maml_s']:.3f} s, time ratio {r['time_ratio']:.3f}, "
                f"Table 2 gradient factor {r['table2_grad_factor']:.4f}",
                flush=True,
            )
    units = {
        dataset: {geometry: unit_costs(geometry, tasks, max(repeats, 5), lam, device, shape) for geometry in Geometry}
        for dataset, shape in SHAPES.items()
    }
    meta = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
        "wall_s": time.perf_counter() - started,
        "repeats": repeats,
        "alpha": alpha,
        "lam": lam,
        "side": SIDE,
        "channels": 3,
        "dataset": "fc100",  # whose image shape the per-iteration rows use
        "ways": WAYS,
        "shots": SHOTS,
        "query": QUERY,
        "command": command,
    }
    return {"meta": meta, "rows": rows, "unit_costs": units, "unit_cost_shapes": SHAPES}
