"""A deterministic cost axis for meta-training: each iteration's counted operations weighted by
what one such operation costs, measured once (scripts/complexity.py, docs/data/complexity.json).

Wall-clock time on a shared machine is noisy (identical job sets measured 0.27 and 0.32 s per
iteration here), so the complexity claims ("the cost first falls then rises with N", "rises with
N") are judged on this axis, with wall-clock as a second view. The counters come from the runs
themselves (metrics.csv: what backward actually computed, anil/engine/opcount.py); only their
prices come from the unit-cost measurement, taken on the same image shape.

For ANIL the counters price as:
    grad_evals_w      x  grad_w             an inner-loop (or outer) gradient in the head
    grad_evals_phi    x  grad_through_body  the body's forward and backward for one task
    second_order_w    x  hvp_w              a Hessian-vector product in the head
    second_order_phi  x  mixed_at_features  a mixed product taken at the features
For MAML (every parameter adapted) a gradient in φ and a second-order product in φ both go
through the body, so those two counters price as grad_through_body and hvp_through_body (a
Hessian-vector product through body and head). Its head parts (grad_evals_w, second_order_w)
come out of the same passes; they are still priced at the head's own costs, which adds under
0.5% (a head operation costs about 1/250 of a body one) and keeps the two algorithms' prices for
their head parts the same.
"""

from __future__ import annotations

import pandas as pd

# The unit operations the counters are priced in (measured by anil/analysis/complexity.py).
UNIT_OPERATIONS = {
    "grad_w": "gradient in w at the features (one inner step's ∇_w L_S)",
    "hvp_w": "Hessian-vector product in w at the features (∇²_w L_S v)",
    "mixed_at_features": "mixed product at the features (ANIL's ∇_φ∇_w L_S v, before the body)",
    "grad_through_body": "gradient through the body (∇_φ of a loss on the task's images)",
    "hvp_through_body": "Hessian-vector product through the body and head (MAML's second-order product)",
}

ANIL_PRICES = {
    "grad_evals_w": "grad_w",
    "grad_evals_phi": "grad_through_body",
    "second_order_w": "hvp_w",
    "second_order_phi": "mixed_at_features",
}
MAML_PRICES = {**ANIL_PRICES, "second_order_phi": "hvp_through_body"}
PRICES = {"anil": ANIL_PRICES, "maml": MAML_PRICES}  # TrainConfig.algorithm -> counter -> operation
COUNTERS = tuple(ANIL_PRICES)
UnitCosts = dict[str, dict[str, dict[str, float]]]  # dataset -> geometry -> operation -> seconds per task
# Datasets whose images have another's shape (channels, side): their operations cost the same.
SAME_SHAPE = {"embedded_hard": "embedded"}  # both 1x28x28


def prices_for(units: UnitCosts, dataset: str, geometry: str) -> dict[str, float] | None:
    """`dataset`'s unit costs for `geometry` (or those of a dataset of the same image shape); None if unmeasured."""
    return units.get(SAME_SHAPE.get(dataset, dataset), {}).get(geometry)


def has_counters(frame: pd.DataFrame) -> bool:
    return all(c in frame for c in COUNTERS)


def iteration_cost(counts: pd.DataFrame, prices: dict[str, float], algorithm: str = "anil") -> pd.Series:
    """Seconds each row's counted operations cost at `prices` (one geometry's unit costs)."""
    parts = [counts[counter].astype(float) * prices[operation] for counter, operation in PRICES[algorithm].items()]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def counted_cost(
    run: pd.DataFrame, units: UnitCosts, dataset: str, geometry: str, algorithm: str = "anil"
) -> pd.Series:
    """Cumulative counted cost (seconds at the unit costs) of one run's rows, in iteration order.
    Raises KeyError naming what is missing when the run has no counters or no prices exist."""
    if not has_counters(run):
        raise KeyError(f"the run has no operation counters ({', '.join(COUNTERS)})")
    prices = prices_for(units, dataset, geometry)
    if prices is None:
        raise KeyError(f"no unit costs measured for dataset={dataset}, geometry={geometry}")
    return iteration_cost(run.sort_values("iteration"), prices, algorithm).cumsum()
