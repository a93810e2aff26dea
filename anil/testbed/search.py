"""Stepsizes found by search rather than imposed: a per-run geometric bisection for the largest
stable α, and a grid for the best β.

`bisect` keeps, for every run, a bracket [low, high] with `stable(low)` true and `stable(high)`
false, and halves it (on a log scale) `steps` times; the runs are searched side by side, each
with its own bracket, so a batch of runs costs one short training per step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def bisect(
    stable: Callable[[torch.Tensor], torch.Tensor], low: torch.Tensor, high: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """stable: α [R] -> bool [R], assumed true below a threshold and false above it. Returns the
    final brackets (low, high); a run whose `high` tested stable keeps high = inf (not bracketed)."""
    top = stable(high)
    high = torch.where(top, torch.full_like(high, float("inf")), high)
    for _ in range(steps):
        bounded = torch.isfinite(high)
        middle = torch.where(bounded, torch.sqrt(low * high.clamp_max(torch.finfo(high.dtype).max)), low)
        ok = stable(middle)
        low = torch.where(bounded & ok, middle, low)
        high = torch.where(bounded & ~ok, middle, high)
    return low, high


def best_on_grid(scores: torch.Tensor) -> torch.Tensor:
    """scores [grid, seeds] (lower is better, non-finite = failed) -> the grid index per seed."""
    return torch.nan_to_num(scores, nan=float("inf")).argmin(0)
