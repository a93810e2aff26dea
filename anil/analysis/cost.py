"""The unit operations docs/complexity.md prices one at a time (anil/analysis/complexity.py:
unit_costs), named once for the measurement and the document. Torch-free.

The reproduction no longer sums these prices into a cost per iteration: work that one backward pass
shares is priced there as separate passes (MAML's came out 2.2-2.9x its measured time). It prices
iterations at their own measured time instead (anil/analysis/pricing.py).
"""

from __future__ import annotations

UNIT_OPERATIONS = {
    "grad_w": "gradient in w at the features (one inner step's ∇_w L_S)",
    "hvp_w": "Hessian-vector product in w at the features (∇²_w L_S v)",
    "mixed_at_features": "mixed product at the features (ANIL's ∇_φ∇_w L_S v, before the body)",
    "grad_through_body": "gradient through the body (∇_φ of a loss on the task's images)",
    "hvp_through_body": "Hessian-vector product through the body and head (MAML's second-order product)",
}
