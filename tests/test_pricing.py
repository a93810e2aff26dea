"""The paper's evaluation counts to a target, Table 2's entries, and seconds at a measured time per iteration."""

import pandas as pd
import pytest

from anil.analysis.pricing import Pace, entries, has_counters, with_costs


def run(n, iterations=3, geometry="convex"):
    """B = 2 tasks, N inner steps: what metrics.csv counts per iteration, iterations out of order."""
    rows = [
        dict(iteration=i, N=n, geometry=geometry, grad_evals_w=2 * (n + 1), grad_evals_phi=2,
             second_order_w=2 * n, second_order_phi=2 * n)
        for i in range(iterations, 0, -1)
    ]  # fmt: skip
    return pd.DataFrame(rows).sort_values("iteration")


PACE = Pace(
    [dict(algorithm="anil", geometry="convex", N=n, seconds=0.5 + 0.01 * n, n_w=10, n_phi=1000) for n in (1, 5, 10)],
    {"machine": "x86_64", "cpus": 2, "torch": "2.13.0", "threads": 1, "load_average": 0.0, "command": "c", "date": "d"},
    None,  # type: ignore[arg-type]
)


def test_counts_accumulate_per_view_and_per_counter():
    # N = 3: per iteration 8 gradients in w and 2 in phi (10 gradient evaluations), 6 + 6 second-order products.
    costed = with_costs(run(3), None, "anil")
    assert costed["gradient_evals"].tolist() == [10, 20, 30]
    assert costed["second_order_evals"].tolist() == [12, 24, 36]
    assert costed["grad_evals_w_total"].tolist() == [8, 16, 24] and "priced" not in costed
    assert not has_counters(run(3).drop(columns="second_order_w"))


def test_priced_seconds_are_iterations_at_the_configurations_own_time():
    assert with_costs(run(5), PACE, "anil")["priced"].tolist() == pytest.approx([0.55, 1.1, 1.65])
    assert "priced" not in with_costs(run(7), PACE, "anil")  # N = 7 was not timed
    assert "priced" not in with_costs(run(5), PACE, "maml")  # nor MAML
    step, rest = PACE.inner_step_ratio("convex")
    assert step == pytest.approx(0.01) and rest == pytest.approx(0.5)
    assert PACE.inner_step_ratio("nonconvex") is None and PACE.dimensions("convex") == (10, 1000)
    assert "1 thread" in PACE.describe()


def test_table_2_entries_fill_the_adapted_dimensions():
    costed = with_costs(run(3, iterations=1), None, "anil")
    anil = entries(costed, (10, 1000), "anil")
    assert anil["gradient_entries"].tolist() == [8 * 10 + 2 * 1000]
    assert anil["second_order_entries"].tolist() == [6 * 10**2 + 6 * 10 * 1000]
    maml = entries(costed, (10, 1000), "maml")  # every parameter adapted: each pass fills n_w + n_phi
    assert maml["gradient_entries"].tolist() == [2 * 1010]
    assert maml["second_order_entries"].tolist() == [6 * 1010**2]


def test_each_configuration_is_timed_with_its_network_dimensions():
    import torch

    from anil.analysis.iteration_time import time_iterations
    from anil.cli.compose import compose_typed, sweep_grid

    grid = sweep_grid("fig1_embedded_hard")
    assert [config.N for config in grid] == [1, 5, 10, 20] and {c.dataset.name for c in grid} == {"embedded_hard"}
    small = [(f"N={n}", compose_typed(["experiment=smoke", "dataset=procedural", f"N={n}"])) for n in (1, 3)]
    rows = time_iterations(small, 2, torch.device("cpu"))
    assert [(r["experiment"], r["N"], r["repeats"]) for r in rows] == [("N=1", 1, 2), ("N=3", 3, 2)]
    assert all(r["q25"] <= r["seconds"] <= r["q75"] and r["seconds"] > 0 and r["n_phi"] > r["n_w"] > 0 for r in rows)
