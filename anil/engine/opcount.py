"""Counts of the gradient evaluations and second-order products a meta-iteration actually performs.

Counted where they happen, per task (a batched call over B tasks counts B):
- a gradient evaluation is counted when an inner-loop `autograd.grad` call runs, and, for the
  outer gradient, when backward reaches the adapted head (w) or the query features (phi);
- a second-order product (Hessian-vector for w, mixed Jacobian-vector for phi) is counted when the
  meta-backward pass differentiates an inner step's gradient: a hook sits on a private alias of
  the tensor that step differentiated (the head iterate w_j; the support features, or the body
  parameters for MAML), which receives a gradient only through that step's gradient.
So a detached inner loop (first order) shows zero second-order products, whatever the formulas say.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from anil.engine.counters import COUNTERS


@dataclass
class OpCounts:
    grad_evals_w: int = 0
    grad_evals_phi: int = 0
    second_order_w: int = 0  # Hessian-vector products grad^2_w L_S v
    second_order_phi: int = 0  # mixed products grad_phi grad_w L_S v (MAML: grad^2_phi L_S v)

    def add(self, name: str, tasks: int) -> None:
        setattr(self, name, getattr(self, name) + tasks)

    def watch(self, alias: torch.Tensor, name: str, tasks: int) -> None:
        """Count `tasks` under `name` each time backward computes the gradient of `alias`, a view
        private to one use. Register only after any autograd.grad call that itself reaches it."""
        if alias.requires_grad:
            alias.register_hook(lambda grad: self.add(name, tasks))

    def as_dict(self) -> dict[str, int]:
        """The counts under the names metrics.csv gives them (anil/engine/counters.py)."""
        return {name: getattr(self, name) for name in COUNTERS}


class NoCounts(OpCounts):
    """Counting switched off (evaluation, benchmarks of the bare engine)."""

    def add(self, name: str, tasks: int) -> None:
        pass

    def watch(self, alias: torch.Tensor, name: str, tasks: int) -> None:
        pass


def alias(tensor: torch.Tensor) -> torch.Tensor:
    """A view of `tensor` (no copy) whose gradient can be watched apart from the tensor's other uses."""
    return tensor.view_as(tensor)
