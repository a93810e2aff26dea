"""The counted-cost axis: each iteration's counters priced by the unit costs, accumulated."""

import pandas as pd
import pytest

from anil.analysis.cost import counted_cost

PRICES = {
    "grad_w": 1.0, "grad_through_body": 100.0, "hvp_w": 10.0, "mixed_at_features": 1000.0, "hvp_through_body": 1e4,
}  # fmt: skip
UNITS = {"embedded": {"convex": PRICES}}


def run(n, iterations=3, shuffled=False):
    rows = [
        dict(iteration=i, grad_evals_w=2 * (n + 1), grad_evals_phi=2, second_order_w=2 * n, second_order_phi=2 * n)
        for i in range(1, iterations + 1)
    ]
    frame = pd.DataFrame(rows)
    return frame.iloc[::-1] if shuffled else frame


def test_each_counter_is_priced_by_its_own_operation():
    # B = 2, N = 3: 8 head gradients, 2 body passes, 6 HVPs in w, 6 mixed products per iteration.
    per_iteration = 8 * 1.0 + 2 * 100.0 + 6 * 10.0 + 6 * 1000.0
    cost = counted_cost(run(3, shuffled=True), UNITS, "embedded", "convex")
    assert cost.tolist() == pytest.approx([per_iteration, 2 * per_iteration, 3 * per_iteration])


def test_maml_prices_its_second_order_products_in_phi_through_the_body():
    # the same counters as above; MAML's 6 second-order products in phi cost a body HVP each
    per_iteration = 8 * 1.0 + 2 * 100.0 + 6 * 10.0 + 6 * 1e4
    cost = counted_cost(run(3), UNITS, "embedded", "convex", algorithm="maml")
    assert cost.tolist() == pytest.approx([per_iteration, 2 * per_iteration, 3 * per_iteration])


def test_missing_counters_or_prices_are_named():
    with pytest.raises(KeyError, match="no operation counters"):
        counted_cost(run(1).drop(columns="second_order_w"), UNITS, "embedded", "convex")
    with pytest.raises(KeyError, match="dataset=fc100, geometry=convex"):
        counted_cost(run(1), UNITS, "fc100", "convex")


def test_the_counter_names_are_the_counters_fields():
    """metrics.csv's counter columns (engine/counters.py, torch-free) name exactly what OpCounts counts."""
    import dataclasses

    from anil.engine.counters import COUNTERS
    from anil.engine.opcount import OpCounts

    assert tuple(f.name for f in dataclasses.fields(OpCounts)) == COUNTERS
