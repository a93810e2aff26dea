"""The theory testbed (anil/testbed/): the task family and its conditioning knob, the runs-batched
meta-gradient, the searches, Lanczos's residual stop, and the verdict rules on constructed data."""

import math

import pytest
import torch

from anil.analysis import testbed as rules
from anil.analysis.statistics import Verdict
from anil.geometry import Geometry
from anil.testbed.curvature import inner_curvature
from anil.testbed.family import Family, draw, draw_runs, fixed_tasks
from anil.testbed.lanczos import End, extremes
from anil.testbed.net import Nets, Setting, Shape, expand_runs, init, meta_loss, stationarity
from anil.testbed.search import best_on_grid, bisect
from anil.testbed.train import Schedule, generators, train

FAMILY = Family(dim=8, signal=2, shots=3, query=4)


def setting(runs, alpha=0.5, scale=2.0, n=3, lam=0.1):
    full = lambda v: torch.full((runs,), v, dtype=torch.float64)  # noqa: E731
    return Setting(full(alpha), full(scale), lam, n)


# --- the family ---------------------------------------------------------------------------------


def test_tasks_are_drawn_from_the_seed_alone_and_their_means_lie_in_the_shared_subspace():
    basis = FAMILY.subspace()
    first = draw(FAMILY, 4, torch.Generator().manual_seed(3), basis)
    again = draw(FAMILY, 4, torch.Generator().manual_seed(3), basis)
    other = draw(FAMILY, 4, torch.Generator().manual_seed(4), basis)
    assert torch.equal(first.support, again.support) and torch.equal(first.query, again.query)
    assert not torch.equal(first.support, other.support)
    assert torch.allclose(basis.T @ basis, torch.eye(2, dtype=torch.float64))
    # without noise, every sample is its class mean, inside span(U)
    clean = draw(Family(dim=8, signal=2, noise=0.0, shots=3, query=4), 2, torch.Generator().manual_seed(0), basis)
    outside = clean.support - clean.support @ basis @ basis.T
    assert outside.abs().max() < 1e-12
    assert first.support_labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]


def test_runs_with_one_seed_see_the_same_tasks_whatever_else_is_batched_with_them():
    basis = FAMILY.subspace()
    together = draw_runs(FAMILY, 3, generators([5, 6, 5]), basis)
    assert torch.equal(together.support[0], together.support[2])
    assert not torch.equal(together.support[0], together.support[1])


def test_the_feature_scale_moves_L_and_lambda_sets_mu_within_the_stated_bounds():
    tasks = expand_runs(fixed_tasks(FAMILY, 6), 1)
    nets = init(Shape(Geometry.convex, FAMILY.dim, 6), [0])
    measured = {}
    for scale in (0.5, 2.0, 6.0):
        found = inner_curvature(nets, tasks, setting(1, scale=scale, lam=0.1))
        assert found.certified
        assert found.mu.min() >= 0.1 - 1e-9  # λ ≤ μ
        assert found.L.max() <= 0.1 + (scale**2 + 1) / 2  # L ≤ λ + (s² + 1)/2
        measured[scale] = float(found.L.median())
    assert measured[0.5] < measured[2.0] < measured[6.0]


# --- the network and its meta-gradient -----------------------------------------------------------


def _grads(nets, tasks, config):
    return torch.autograd.grad(meta_loss(nets, tasks, config).sum(), nets.parameters())


@pytest.mark.parametrize("geometry", list(Geometry))
def test_runs_batched_together_get_the_meta_gradients_they_would_get_alone(geometry):
    shape = Shape(geometry, FAMILY.dim, 6, 5)
    tasks = draw_runs(FAMILY, 3, generators([0, 1]), FAMILY.subspace())
    together = _grads(init(shape, [0, 1]), tasks, setting(2))
    for run in range(2):
        alone_tasks = draw_runs(FAMILY, 3, generators([run]), FAMILY.subspace())
        alone = _grads(init(shape, [run]), alone_tasks, setting(1))
        for a, b in zip(alone, together):
            assert torch.allclose(a[0], b[run], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("geometry", list(Geometry))
def test_the_meta_gradient_through_the_inner_loop_matches_central_differences(geometry):
    nets = init(Shape(geometry, FAMILY.dim, 5, 4), [0])
    tasks = draw_runs(FAMILY, 2, generators([0]), FAMILY.subspace())
    config = setting(1, alpha=0.7, n=4)
    grads = torch.autograd.grad(meta_loss(nets, tasks, config).sum(), nets.parameters())
    generator = torch.Generator().manual_seed(1)
    along = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in nets.parameters()]
    heads = len(nets.head)

    def loss_at(shift):
        moved = [(p.detach() + shift * d).requires_grad_(True) for p, d in zip(nets.parameters(), along)]
        return float(meta_loss(Nets(body=moved[heads:], head=moved[:heads]), tasks, config).detach())

    step = 1e-5
    slope = (loss_at(step) - loss_at(-step)) / (2 * step)
    exact = float(sum((g * d).sum() for g, d in zip(grads, along)))
    assert slope == pytest.approx(exact, rel=1e-6)


def test_the_full_objective_in_chunks_is_exact():
    nets = init(Shape(Geometry.nonconvex, FAMILY.dim, 6, 5), [0, 1])
    tasks = fixed_tasks(FAMILY, 10)
    whole, pieces = stationarity(nets, tasks, setting(2), chunk=10), stationarity(nets, tasks, setting(2), chunk=3)
    for name in ("grad_w", "grad_phi", "loss"):
        assert torch.allclose(getattr(whole, name), getattr(pieces, name), rtol=1e-12)
    # Definition 1's w part is the head's gradient: it vanishes as N → ∞ in the convex case
    convex = init(Shape(Geometry.convex, FAMILY.dim, 6), [0])
    few, many = (stationarity(convex, tasks, setting(1, alpha=1.0, n=n, lam=0.5)) for n in (1, 40))
    assert many.grad_w < 1e-3 * few.grad_w


def test_a_diverging_run_is_frozen_and_leaves_the_others_as_they_would_be_alone():
    shape = Shape(Geometry.convex, FAMILY.dim, 6)
    schedule = Schedule(iterations=6, tasks=2, every=0)
    nets = init(shape, [0, 0])
    beta = torch.tensor([0.3, 1e9], dtype=torch.float64)
    curves = train(nets, setting(2), beta, [0, 0], FAMILY, schedule)
    alone = init(shape, [0])
    reference = train(alone, setting(1), beta[:1], [0], FAMILY, schedule)
    assert curves.diverged_at[0] is None and curves.diverged_at[1] is not None
    assert curves.loss[0] == pytest.approx(reference.loss[0], rel=1e-12)
    assert all(torch.isfinite(p).all() for p in nets.parameters())


# --- searches and Lanczos -------------------------------------------------------------------------


def test_the_bisection_brackets_a_known_threshold_per_run_and_flags_an_unbracketed_one():
    threshold = torch.tensor([0.37, 5.0, 250.0], dtype=torch.float64)
    low, high = bisect(lambda a: a < threshold, torch.full((3,), 0.01), torch.full((3,), 100.0), 20)
    assert (low[:2] <= threshold[:2]).all() and (threshold[:2] < high[:2]).all()
    assert ((high[:2] / low[:2]) < 1.0001).all()
    assert math.isinf(high[2]) and low[2] == 0.01  # stable at the top of the bracket: not bracketed
    assert best_on_grid(torch.tensor([[3.0, float("nan")], [1.0, 2.0], [2.0, float("inf")]])).tolist() == [1, 1]


def test_lanczos_stops_on_its_residual_bound_and_each_ritz_value_is_that_close_to_an_eigenvalue():
    generator = torch.Generator().manual_seed(0)
    spectrum = torch.stack([torch.linspace(-2.0, 7.0, 60), torch.linspace(0.1, 3.0, 60)]).double()
    rotation = torch.linalg.qr(torch.randn(2, 60, 60, generator=generator, dtype=torch.float64)).Q
    matrices = rotation @ torch.diag_embed(spectrum) @ rotation.transpose(1, 2)
    found = extremes(lambda v: torch.einsum("bij,bj->bi", matrices, v), 2, 60, matrices, tolerance=1e-6)
    assert found.certified and found.steps < 60
    assert (found.high_residual <= 1e-6 * found.high.abs()).all()
    assert torch.allclose(found.high, spectrum[:, -1], rtol=1e-5)
    assert torch.allclose(found.low, spectrum[:, 0], rtol=1e-5)
    # a Gram operator (singular): only its top must be certified
    tall = torch.randn(1, 60, 5, generator=generator, dtype=torch.float64)
    gram = tall @ tall.transpose(1, 2)
    top = extremes(lambda v: torch.einsum("bij,bj->bi", gram, v), 1, 60, gram, ends=End.high, tolerance=1e-8)
    assert top.certified and torch.allclose(top.high, torch.linalg.eigvalsh(gram)[:, -1])


# --- the verdict rules ------------------------------------------------------------------------------


def _costs(per_n, seeds=6, noise=0.02):
    return {n: {s: value * (1 + noise * ((s % 3) - 1)) for s in range(seeds)} for n, value in per_n.items()}


def test_the_fitted_rate_recovers_a_known_one():
    grid = [1, 3, 5, 7, 10, 20]
    assert rules.fit_rate(grid, [100 * 0.7**n + 20 for n in grid]) == pytest.approx(0.7, abs=0.003)
    assert math.isnan(rules.fit_rate(grid, [10.0 * n for n in grid]))  # rising: no falling fit


def test_theorem_1_can_agree_disagree_and_be_inconclusive():
    grid = [1, 3, 5, 7, 10, 20]
    fast = _costs({n: 100 * 0.6**n + 20 for n in grid})
    assert rules.theorem_1(fast, alpha_mu=0.1).verdict is Verdict.AGREES  # saturates well before N_sat ≈ 44
    slow = _costs({n: 100 * 0.99**n + 20 for n in grid})  # N_sat ≈ 229 against 0.9's ≈ 4.4
    assert rules.theorem_1(slow, alpha_mu=0.9).verdict is Verdict.DISAGREES
    rising = _costs({n: 10.0 * n for n in grid})
    assert rules.theorem_1(rising, alpha_mu=0.1).verdict is Verdict.DISAGREES
    noisy = {n: {s: 50 + 40 * ((s * 7 + n) % 5) for s in range(4)} for n in grid}
    assert rules.theorem_1(noisy, alpha_mu=0.1).verdict is Verdict.INCONCLUSIVE


def test_the_exponent_rule_tells_one_over_n_from_n_independent_and_says_when_it_cannot():
    grid = [1, 3, 5, 10, 20]
    jitter = lambda s: 1 + 0.05 * s  # noqa: E731
    inverse = {n: {str(s): 2.0 / n * jitter(s) ** (n % 2) for s in range(4)} for n in grid}
    flat = {n: {str(s): 2.0 * jitter(s) ** (n % 2) for s in range(4)} for n in grid}
    spread = {n: {str(s): 2.0 * n ** (-0.5 + (s - 1.5)) for s in range(4)} for n in grid}
    assert rules.inverse_n(rules.ALPHA_STAR, inverse).verdict is Verdict.AGREES
    assert rules.inverse_n(rules.ALPHA_STAR, flat).verdict is Verdict.DISAGREES
    assert rules.inverse_n(rules.ALPHA_STAR, spread).verdict is Verdict.INCONCLUSIVE


def test_smoothness_is_judged_in_the_bounds_direction_only():
    growing = {1: [1.0, 1.1, 0.9], 20: [10.0, 11.5, 9.2]}  # ×10 from N = 1 to 20: within N's ×20
    fast = {1: [1.0, 1.1, 0.9], 20: [100.0, 105.0, 95.0]}  # ×100: faster than linear
    shrinking = {1: [1.0, 1.1, 0.9], 20: [0.1, 0.12, 0.09]}
    mixed = {1: [1.0, 1.1, 0.9], 20: [0.5, 3.0, 30.0]}
    assert rules.smoothness(growing, True, 0.1).verdict is Verdict.AGREES
    assert rules.smoothness(fast, True, 0.1).verdict is Verdict.DISAGREES
    judged = rules.smoothness(shrinking, False, 0.1)
    assert judged.verdict is Verdict.AGREES and "not tight" in judged.reason
    assert rules.smoothness(mixed, True, 0.1).verdict is Verdict.INCONCLUSIVE
    assert rules.smoothness(growing, False, 0.5).verdict is Verdict.DISAGREES  # the convex bound cannot grow ×10


def test_epsilon_is_reached_by_every_run_and_costs_count_the_papers_evaluations():
    runs = {
        1: {"seeds": [0, 1], "at": [0, 10, 20], "grad_w": [[1.0, 0.5, 0.2], [1.0, 0.3, 0.25]],
            "grad_phi": [[0.5, 0.4, 0.1], [2.0, 0.2, 0.1]]},
        3: {"seeds": [0, 1], "at": [0, 10, 20], "grad_w": [[1.0, 0.1, 0.1], [1.0, 0.3, math.nan]],
            "grad_phi": [[0.5, 0.1, 0.1], [2.0, 0.2, math.nan]]},
    }  # fmt: skip
    epsilon = rules.epsilons(runs)["every run reaches"]
    assert epsilon == 0.3  # seed 1 at N = 3 reaches 0.3 at best
    assert rules.epsilons(runs) == {"every run reaches": 0.3, "half the runs reach": pytest.approx(0.225)}
    censored = rules.costs_to(runs, 0.225, tasks=4)["iterations"]
    assert censored[3][1] == 20.0 and censored[3][0] == 10.0  # never reached: the whole run, a lower bound
    costs = rules.costs_to(runs, epsilon, tasks=4)
    assert costs["iterations"][1] == {0: 20.0, 1: 10.0} and costs["iterations"][3] == {0: 10.0, 1: 10.0}
    assert costs["grad_w"][3][0] == 10 * 4 * 4 and costs["second_order"][3][0] == 10 * 2 * 4 * 3
    assert costs["grad_phi"][1][1] == 10 * 4


# --- the suite and its command ------------------------------------------------------------------------


def test_anil_testbed_refuses_an_output_folder_that_does_not_exist(tmp_path, capsys):
    from anil.cli.main import main

    assert main(["testbed", "--quick", "--out", str(tmp_path / "missing" / "t.json")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "missing" in error and "does not exist" in error


def test_the_plan_takes_key_value_changes_and_refuses_bad_ones_in_one_line(tmp_path, capsys):
    from anil.cli.main import main
    from anil.testbed.suite import Plan, with_changes

    changed = with_changes(Plan(), ["seeds=20", "kappas=4,40", "lam=0.05"])
    assert (changed.seeds, changed.kappas, changed.lam) == (20, (4.0, 40.0), 0.05)
    for bad, said in (("sedes=3", "sedes"), ("seeds=x", "expected int"), ("grid=0,1", "positive")):
        assert main(["testbed", "--out", str(tmp_path / "t.json"), bad]) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and said in error
    assert not (tmp_path / "t.json").exists()
    (tmp_path / "t.json").write_text('{"meta": {"plan": {"seeds": 1}}, "stages": {"calibrate": {}}, "seconds": {}}')
    assert main(["testbed", "--out", str(tmp_path / "t.json")]) == 1
    assert "another plan" in capsys.readouterr().err
    assert '"seeds": 1' in (tmp_path / "t.json").read_text()  # kept as it was


@pytest.mark.slow
def test_the_quick_suite_writes_every_stage_resumes_without_redoing_any_and_renders(tmp_path):
    import json

    from anil.analysis.reports import testbed as report
    from anil.testbed.suite import QUICK, run

    out = tmp_path / "testbed.json"
    record = run(QUICK, out)
    expected = 1 + 3 * 2 * len(QUICK.grid)  # calibrate; search, runs, smoothness per geometry and N
    assert len(record["stages"]) == expected == len(json.loads(out.read_text())["stages"])
    for config, calibrated in zip(record["stages"]["calibrate"]["convex"], QUICK.kappas):
        assert config["L"] / config["mu"] == pytest.approx(calibrated, rel=0.1)  # the knob hits its target κ
    assert set(record["load"]) == set(record["stages"])  # each stage records the machine's load
    seconds = dict(record["seconds"])
    again = run(QUICK, out)
    assert again["seconds"] == seconds  # nothing recomputed
    text = "\n".join(report.section(again, "testbed.json"))
    assert "### Theorem 1" in text and "### Propositions 2 and 3" in text and "**" in text


def test_the_run_time_is_said_to_be_alone_or_shared_from_the_recorded_load():
    from anil.analysis.reports.testbed import _load

    assert "(alone)" in _load({"load": {"a": 0.9, "b": 1.2}}, threads=1)
    assert "upper bound" in _load({"load": {"a": 0.9, "b": 2.3}}, threads=1)
    assert "not recorded" in _load({}, threads=1)
