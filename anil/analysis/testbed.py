"""The testbed's verdicts (anil testbed's JSON -> judgements), torch-free.

Quantities, each as the paper states it:
- Definition 1's stationarity of a run at an evaluation: max(‖∂L/∂w‖², ‖∂L/∂φ‖²) of the full
  objective over the fixed tasks; a configuration's costs are read at two common levels ε
  (`epsilons`): the lowest that every one of its runs reaches, and the median of the runs' minima;
- the cost to ε: iterations, and the paper's evaluation counts per meta-iteration of B tasks
  (gradients in w: B(N + 1), the N inner steps and the outer one at w_N; in φ: B; second-order
  products, Hessian- and Jacobian-vector: 2BN), as anil/engine/opcount.py counts them;
- Theorem 1's N-dependent term decays like (1 − αμ)^{N/2} (its (1 − μ²/L²)^{N/2} at Proposition
  2's α = μ/L², where αμ = μ²/L²); it has fallen to SATURATED of itself at N_sat = 2 ln(SATURATED) /
  ln(1 − αμ). The measured N_sat comes from fitting K_ε(N) = a rᴺ + b per seed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from anil.analysis.claims import Claim, Judgement
from anil.analysis.statistics import Interval, Verdict, decide, interval, what_would_decide

SATURATED = 0.1  # the exponential term has saturated once it is a tenth of its value at N = 0
RATES = np.linspace(0.01, 0.999, 500)  # the fit's grid of r
COUNTS = ("iterations", "grad_w", "grad_phi", "second_order")

Costs = dict[int, dict[int, float]]  # N -> seed -> cost to ε

THEOREM_1 = Claim(
    "testbed-theorem-1",
    "strongly convex inner loop: the iterations to an ε-accurate point fall with N and saturate, at the rate "
    "(1 − αμ)^{N/2} of Theorem 1's N-dependent term",
    "Theorem 1 (its rate with respect to w and φ)",
)
KAPPA_ORDER = Claim(
    "testbed-kappa",
    "a larger condition number κ = L/μ saturates later in N (the rate (1 − αμ) is closer to 1)",
    "Theorem 1 and its discussion of κ",
)
ALPHA_STAR = Claim(
    "testbed-alpha-star",
    "nonconvex inner loop: the largest stable α falls like 1/N (Proposition 3's α < O(1/N)), not N-independent",
    "Proposition 3",
)
BETA_STAR = Claim(
    "testbed-beta-star", "nonconvex inner loop: the best outer stepsize β falls like 1/N", "Theorem 2 (β = poly/N)"
)


def stationarity(config: dict[str, Any]) -> list[list[float]]:
    """Definition 1's quantity per seed at each evaluation (non-finite after a divergence)."""
    return [[max(w, p) for w, p in zip(ws, ps)] for ws, ps in zip(config["grad_w"], config["grad_phi"])]


def epsilons(runs: dict[int, dict[str, Any]]) -> dict[str, float]:
    """Two common levels: the lowest every run reaches (no run censored; set by the slowest
    configuration), and the median of the runs' minima (half the runs reach it; a run that does
    not is given the cost of its whole run, a lower bound). A verdict that differs between them
    is set by the choice of ε."""
    minima = _minima(runs)
    return {"every run reaches": max(minima), "half the runs reach": float(np.median(minima))}


def _minima(runs: dict[int, dict[str, Any]]) -> list[float]:
    return [min(v for v in seed if math.isfinite(v)) for config in runs.values() for seed in stationarity(config)]


def minima(runs: dict[int, dict[str, Any]]) -> Costs:
    """N -> seed -> log10 of the run's least Definition 1 quantity over its evaluations (what the
    theorems bound: min over iterations)."""
    return {
        n: {s: math.log10(min(v for v in levels if math.isfinite(v))) for s, levels in zip(c["seeds"], stationarity(c))}
        for n, c in runs.items()
    }


def cheapest(costs: Costs) -> tuple[int, Interval]:
    """The N of least mean cost, with its t interval over seeds."""
    means = {n: interval(list(seeds.values())) for n, seeds in costs.items()}
    n = min(means, key=lambda k: means[k].estimate)
    return n, means[n]


def per_iteration(n: int, tasks: int) -> dict[str, int]:
    """The paper's evaluation counts of one ANIL meta-iteration over `tasks` tasks."""
    return {"iterations": 1, "grad_w": tasks * (n + 1), "grad_phi": tasks, "second_order": 2 * tasks * n}


def costs_to(runs: dict[int, dict[str, Any]], epsilon: float, tasks: int) -> dict[str, Costs]:
    """count -> N -> seed -> the count spent up to the first evaluation at or below ε."""
    out: dict[str, Costs] = {count: {} for count in COUNTS}
    for n, config in runs.items():
        prices = per_iteration(n, tasks)
        for seed, levels in zip(config["seeds"], stationarity(config)):
            reached = next((at for at, v in zip(config["at"], levels) if v <= epsilon), None)
            spent = config["at"][-1] if reached is None else reached  # unreached: a lower bound
            for count in COUNTS:
                out[count].setdefault(n, {})[seed] = float(max(spent, 1) * prices[count])
    return out


def fit_rate(grid: list[int], costs: list[float]) -> float:
    """r of the least-squares fit cost(N) = a rᴺ + b with a, b ≥ 0 (NaN when no r fits with a > 0:
    the cost does not fall with N)."""
    ns, ys = np.asarray(grid, dtype=float), np.asarray(costs, dtype=float)
    best, best_error = math.nan, math.inf
    for r in RATES:
        design = np.stack([r**ns, np.ones_like(ns)], 1)
        (a, b), *_ = np.linalg.lstsq(design, ys, rcond=None)
        if a <= 0 or b < 0:
            continue
        error = float(((design @ np.array([a, b]) - ys) ** 2).sum())
        if error < best_error:
            best, best_error = float(r), error
    return best


def saturation_n(rate: float) -> float:
    """The N at which rᴺ has fallen to SATURATED."""
    return math.log(SATURATED) / math.log(rate) if 0 < rate < 1 else math.nan


def predicted_saturation(alpha_mu: float) -> float:
    """Theorem 1's N_sat: (1 − αμ)^{N/2} = SATURATED."""
    return saturation_n(math.sqrt(1 - alpha_mu)) if 0 < alpha_mu < 1 else math.nan


def measured_saturation(iterations: Costs) -> dict[int, float]:
    """seed -> N_sat of the fitted rate (seeds whose costs do not fall are left out)."""
    grid = sorted(iterations)
    seeds = set.intersection(*(set(iterations[n]) for n in grid))
    fitted = {s: saturation_n(fit_rate(grid, [iterations[n][s] for n in grid])) for s in sorted(seeds)}
    return {s: v for s, v in fitted.items() if math.isfinite(v)}


def theorem_1(iterations: Costs, alpha_mu: float) -> Judgement:
    """Falls with N (paired log10 cost, smallest N against largest) and saturates no later than
    Theorem 1's N_sat (per seed log10 predicted − measured > 0)."""
    grid = sorted(iterations)
    lo, hi = grid[0], grid[-1]
    common = set(iterations[lo]) & set(iterations[hi])
    falls = interval([math.log10(iterations[lo][s] / iterations[hi][s]) for s in sorted(common)])
    measured = measured_saturation(iterations)
    predicted = predicted_saturation(alpha_mu)
    margin = interval([math.log10(predicted / v) for v in measured.values()])
    fitted = (
        f"measured N_sat {interval(list(measured.values()))} over the {len(measured)} seeds whose cost falls with N"
        if measured
        else "no seed's cost falls with N, so no saturation point can be fitted"
    )
    evidence = (
        f"log10 K_ε(N={lo}) − log10 K_ε(N={hi}): {falls}; {fitted}; predicted N_sat {predicted:.3g} "
        f"(αμ = {alpha_mu:.3g})" + (f"; log10 predicted/measured {margin}" if measured else "")
    )
    fell, early = decide(falls), decide(margin)
    if fell is Verdict.DISAGREES:
        return Judgement(THEOREM_1, Verdict.DISAGREES, evidence, f"K_ε does not fall from N={lo} to N={hi}")
    if fell is Verdict.AGREES and early is Verdict.AGREES:
        tight = "tight" if abs(margin.estimate) < math.log10(2) else "not tight: it saturates earlier than predicted"
        return Judgement(THEOREM_1, Verdict.AGREES, evidence, f"falls, and saturates no later than predicted ({tight})")
    if fell is Verdict.AGREES and early is Verdict.DISAGREES:
        return Judgement(THEOREM_1, Verdict.DISAGREES, evidence, "falls, but saturates later than Theorem 1's rate")
    open_part = falls if fell is not Verdict.AGREES else margin
    return Judgement(
        THEOREM_1, Verdict.INCONCLUSIVE, evidence, f"an interval straddles its decision: {what_would_decide(open_part)}"
    )


def kappa_order(low: dict[int, float], high: dict[int, float], kappas: tuple[float, float]) -> Judgement:
    """Measured N_sat at the larger κ above that at the smaller (paired by seed, log10)."""
    common = sorted(set(low) & set(high))
    later = interval([math.log10(high[s] / low[s]) for s in common])
    evidence = f"log10 N_sat(κ={kappas[1]:g}) − log10 N_sat(κ={kappas[0]:g}): {later}"
    return _three_way(KAPPA_ORDER, later, evidence, "the larger κ saturates later", "the larger κ saturates earlier")


def exponent(values: dict[int, dict[str, float]]) -> Interval:
    """The log-log slope over N, fitted per seed: values N -> seed -> positive value."""
    grid = sorted(values)
    seeds = set.intersection(*(set(values[n]) for n in grid))
    logs = np.log(np.asarray(grid, dtype=float))
    slopes = [float(np.polyfit(logs, np.log([values[n][s] for n in grid]), 1)[0]) for s in sorted(seeds)]
    return interval(slopes)


def inverse_n(claim: Claim, values: dict[int, dict[str, float]]) -> Judgement:
    """The fitted exponent b below −1/2 (nearer 1/N's −1 than an N-independent rule's 0) agrees."""
    slope = exponent(values)
    nearer = Interval(-0.5 - slope.estimate, -0.5 - slope.high, -0.5 - slope.low, slope.n)
    evidence = f"log-log slope against N: {slope} (1/N: −1; N-independent: 0)"
    agrees = "it falls like 1/N (the slope is nearer −1 than 0)"
    disagrees = "it is nearer N-independent than 1/N (the slope is above −1/2)"
    return _three_way(claim, nearer, evidence, agrees, disagrees, "the slope straddles −1/2")


def _three_way(
    claim: Claim, quantity: Interval, evidence: str, agrees: str, disagrees: str,
    straddles: str = "the difference straddles zero",
) -> Judgement:  # fmt: skip
    """`decide(quantity)` with the reason for each outcome (inconclusive: what would decide it)."""
    verdict = decide(quantity)
    reasons = {
        Verdict.AGREES: agrees,
        Verdict.DISAGREES: disagrees,
        Verdict.INCONCLUSIVE: f"{straddles}: {what_would_decide(quantity)}",
    }
    return Judgement(claim, verdict, evidence, reasons[verdict])


SMOOTHNESS = Claim(
    "testbed-smoothness",
    "the meta-objective's smoothness constants grow with N at most as the bounds do: at most like N "
    "(nonconvex, Proposition 3); at most like the fastest of (1 − αμ)^N, N(1 − αμ)^N, (1 − αμ)^{N/2} and a "
    "constant (strongly convex, Proposition 2)",
    "Propositions 2 and 3",
)


def bound_growth(nonconvex: bool, low: int, high: int, alpha_mu: float) -> float:
    """The most a bound of the proposition can grow from N = low to N = high: a positive sum of
    terms grows at most as fast as its fastest term."""
    if nonconvex:
        return high / low
    q = 1 - alpha_mu
    terms = [lambda n: q**n, lambda n: n * q**n, lambda n: q ** (n / 2), lambda n: 1.0]
    return max(term(high) / term(low) for term in terms)


def smoothness(norms: dict[int, list[float]], nonconvex: bool, alpha_mu: float) -> Judgement:
    """log10 growth from the smallest to the largest N, per meta-batch: above the bound's growth
    disagrees; within [0, bound] agrees; below 0 agrees as "consistent (the bound is not tight)"."""
    grid = sorted(norms)
    lo, hi = grid[0], grid[-1]
    growth = interval([math.log10(b / a) for a, b in zip(norms[lo], norms[hi])])
    limit = math.log10(bound_growth(nonconvex, lo, hi, alpha_mu))
    evidence = f"log10 growth N={lo}→{hi}: {growth}; the bound's at most {limit:.3g}"
    if growth.n >= 3 and growth.low > limit:
        return Judgement(SMOOTHNESS, Verdict.DISAGREES, evidence, "grows faster than the bound allows")
    if growth.n >= 3 and growth.high < 0:
        return Judgement(SMOOTHNESS, Verdict.AGREES, evidence, "consistent: it shrinks (the bound is not tight)")
    if growth.n >= 3 and growth.low >= 0 and growth.high <= limit:
        return Judgement(SMOOTHNESS, Verdict.AGREES, evidence, "grows within the bound")
    return Judgement(SMOOTHNESS, Verdict.INCONCLUSIVE, evidence, "the interval crosses 0 or the bound's growth")
