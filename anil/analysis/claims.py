"""The paper's claims about N, each stated where the paper states it, and a rule per claim that
turns measured data into a verdict (agrees / disagrees / inconclusive) with the numbers it used.

Inputs are per-seed measurements keyed by N: `Levels` are log10 of a convergence quantity at a
fixed point (lower is better: a loss or the meta-gradient norm after K iterations), `Costs` the
cost of reaching a fixed threshold (iterations, counted evaluations or seconds; a run that never
reached it is given the cost it spent, a lower bound). Runs with the same seed see the same
tasks at every N, so every comparison between N is paired by seed (anil/analysis/statistics.py).
Each threshold is a named constant with the reason for its value (anil/analysis/thresholds.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

from anil.analysis.statistics import Interval, Verdict, both, decide, paired_interval, what_would_decide
from anil.analysis.thresholds import DIVERGING_SHARE, MIN_SEEDS, SATURATION, SATURATION_N

K = TypeVar("K", int, float)  # what the stability counts are keyed by: N, or a searched base α
Levels = dict[int, dict[int, float]]  # N -> seed -> log10 of the quantity (lower is better)
Costs = dict[int, dict[int, float]]  # N -> seed -> cost to reach the threshold


@dataclass(frozen=True)
class Claim:
    key: str
    statement: str  # what the paper says, in our words
    source: str  # where it says it


@dataclass(frozen=True)
class Judgement:
    claim: Claim
    verdict: Verdict
    evidence: str  # the numbers the rule used, with intervals
    reason: str  # why this verdict; for "inconclusive", what would decide it


CONVEX_PER_ITERATION = Claim(
    "convex-per-iteration",
    "strongly convex inner loop: more inner steps N converge faster per meta-iteration, nearly saturating at N = 7",
    "Section 4.1 (Figure 1, left panels); Theorem 1 (its N-dependent term decays exponentially, "
    "then the φ term dominates)",
)
CONVEX_COMPLEXITY = Claim(
    "convex-complexity",
    "strongly convex inner loop: the cost of reaching a given accuracy first falls, then rises with N",
    "Section 3.3 and Table 1 (complexity); Section 4.1 (Figure 1, right panels: running time)",
)
NONCONVEX_PER_ITERATION = Claim(
    "nonconvex-per-iteration",
    "nonconvex inner loop: a larger N converges more slowly",
    "contributions list and Theorem 2; Section 4.2 notes that N = 1 is not the fastest per iteration in Figure 2",
)
NONCONVEX_COMPLEXITY = Claim(
    "nonconvex-complexity",
    "nonconvex inner loop: the cost of reaching a given accuracy rises with N",
    "Section 3.3 and Table 1; Section 4.2 (Figure 2, right panels: N = 1 fastest in running time)",
)
DIVERGENCE_AT_30 = Claim(
    "divergence-at-30",
    "nonconvex inner loop with a constant stepsize: N = 30 diverges on FC100",
    "Section 4.2 (Figure 2(a))",
)
INVERSE_N = Claim(
    "inverse-n-stepsize",
    "nonconvex inner loop: a stepsize α of order 1/N keeps training stable as N grows",
    "Proposition 3 (α < O(1/N)) and the contributions list; not tested in Section 4",
)

ANIL_VS_MAML = Claim(
    "anil-vs-maml",
    "ANIL reaches a given accuracy with less computation than MAML, by a factor that grows with N",
    "Table 2 and Section 3.3 (complexity of ANIL against MAML's)",
)


def _nearest(grid: list[int], target: int) -> int:
    return min(grid, key=lambda n: (abs(n - target), n))


def _paired(levels: dict[int, dict[int, float]], a: int, b: int) -> Interval:
    return paired_interval(levels[a], levels[b])


def convex_per_iteration(levels: Levels) -> Judgement:
    """Gain from N = 1 to 7 positive (paired), and the further gain beyond 7 below SATURATION of it."""
    grid = sorted(levels)
    low, middle, high = grid[0], _nearest(grid, SATURATION_N), grid[-1]
    gain = _paired(levels, low, middle)  # log10 drop from the smallest N to N ~ 7 (> 0: faster)
    further = _paired(levels, middle, high)
    seeds = set(levels[low]) & set(levels[middle]) & set(levels[high])
    slack = {
        s: SATURATION * (levels[low][s] - levels[middle][s]) - (levels[middle][s] - levels[high][s]) for s in seeds
    }
    saturation = paired_interval(slack, {s: 0.0 for s in seeds})
    faster, saturated = decide(gain), decide(saturation)
    verdict = both(faster, saturated)
    evidence = (
        f"log10 drop N={low}→{middle}: {gain}; further drop N={middle}→{high}: {further}; "
        f"{SATURATION:g}× the first minus the second: {saturation} (> 0: saturated)"
    )
    parts = {
        (Verdict.AGREES, Verdict.AGREES): f"faster from N={low} to {middle}, and little further gain beyond",
        (Verdict.DISAGREES, None): f"not faster from N={low} to {middle}",
        (None, Verdict.DISAGREES): f"faster up to N={middle}, but no saturation: N={high} gains more than "
        f"{SATURATION:g}× that again",
    }
    reason = parts.get((faster, saturated)) or parts.get((faster, None)) or parts.get((None, saturated))
    undecided = gain if faster is not Verdict.AGREES else saturation  # the part still open
    reason = reason or f"an interval straddles its decision: {what_would_decide(undecided)}"
    return Judgement(CONVEX_PER_ITERATION, verdict, evidence, reason)


def convex_complexity(costs: Costs) -> Judgement:
    """Some interior N costs less than both ends (paired), or an end is cheapest of all (disagrees)."""
    grid = sorted(costs)
    ends = (grid[0], grid[-1])
    dips = {n: (_paired(costs, ends[0], n), _paired(costs, ends[1], n)) for n in grid[1:-1]}
    evidence = "; ".join(
        f"N={n}: cost(N={ends[0]}) − cost {a}, cost(N={ends[1]}) − cost {b}" for n, (a, b) in dips.items()
    )
    for n, (falls, rises) in dips.items():
        if decide(falls) is Verdict.AGREES and decide(rises) is Verdict.AGREES:
            return Judgement(
                CONVEX_COMPLEXITY, Verdict.AGREES, evidence, f"N={n} is cheaper than both N={ends[0]} and N={ends[1]}"
            )
    for end in ends:
        others = [_paired(costs, n, end) for n in grid if n != end]
        if all(decide(d) is Verdict.AGREES for d in others):
            return Judgement(
                CONVEX_COMPLEXITY, Verdict.DISAGREES, evidence, f"N={end}, an end of the grid, is cheapest of all"
            )
    if not dips:
        return Judgement(CONVEX_COMPLEXITY, Verdict.INCONCLUSIVE, evidence, "the grid has no N between its ends")
    # the best candidate: the interior N whose weaker side (of falling and rising) is strongest
    n, sides = max(dips.items(), key=lambda item: min(side.low for side in item[1]))
    weaker = min(sides, key=lambda side: side.low)
    return Judgement(
        CONVEX_COMPLEXITY,
        Verdict.INCONCLUSIVE,
        evidence,
        f"no N is cheaper than both ends beyond the noise; for N={n}, {what_would_decide(weaker)}",
    )


def nonconvex_per_iteration(levels: Levels) -> Judgement:
    """The largest N ends higher than the smallest (paired): slower with N."""
    return _largest_against_smallest(
        NONCONVEX_PER_ITERATION, levels, "log10 level", "larger N slower",
        "N={hi} converges more slowly than N={lo}", "N={hi} converges faster than N={lo}",
    )  # fmt: skip


def nonconvex_complexity(costs: Costs) -> Judgement:
    """The largest N costs more than the smallest to reach the threshold (paired)."""
    return _largest_against_smallest(
        NONCONVEX_COMPLEXITY, costs, "cost", "rises with N",
        "reaching the threshold costs more at N={hi} than at N={lo}",
        "reaching the threshold costs less at N={hi} than at N={lo}",
    )  # fmt: skip


def _largest_against_smallest(
    claim: Claim, values: dict[int, dict[int, float]], quantity: str, positive: str, agrees: str, disagrees: str
) -> Judgement:
    """Paired difference of `quantity` between the largest and the smallest N; the claim holds when
    it is above zero. `agrees` / `disagrees` are reasons with {hi} and {lo} for the two N."""
    grid = sorted(values)
    hi, lo = grid[-1], grid[0]
    difference = _paired(values, hi, lo)
    verdict = decide(difference)
    evidence = f"{quantity} N={hi} minus N={lo}: {difference} (> 0: {positive})"
    reasons = {
        Verdict.AGREES: agrees.format(hi=hi, lo=lo),
        Verdict.DISAGREES: disagrees.format(hi=hi, lo=lo),
        Verdict.INCONCLUSIVE: f"the difference straddles zero: {what_would_decide(difference)}",
    }
    return Judgement(claim, verdict, evidence, reasons[verdict])


def divergence_at_30(dataset: str, diverged: int, runs: int, n: int = 30) -> Judgement:
    """At least DIVERGING_SHARE of the constant-stepsize runs at N = 30 diverge (on FC100)."""
    evidence = f"dataset={dataset}: {diverged} of {runs} runs at N={n} (constant α) diverged"
    if dataset != "fc100":
        return Judgement(
            DIVERGENCE_AT_30, Verdict.INCONCLUSIVE, evidence, "the claim is about FC100; run fig2_fc100 to test it"
        )
    if runs >= MIN_SEEDS and diverged >= DIVERGING_SHARE * runs:
        return Judgement(DIVERGENCE_AT_30, Verdict.AGREES, evidence, "most runs blew up")
    if runs >= MIN_SEEDS and diverged == 0:
        return Judgement(DIVERGENCE_AT_30, Verdict.DISAGREES, evidence, "no run blew up")
    return Judgement(
        DIVERGENCE_AT_30,
        Verdict.INCONCLUSIVE,
        evidence,
        "too few runs, or only some blew up: more seeds would decide it",
    )


def inverse_n(
    constant: dict[K, tuple[int, int]], inverse: dict[K, tuple[int, int]], key: str = "N", failure: str = "diverged"
) -> Judgement:
    """Where a constant α failed, α/N did not. Inputs: `key` (N, or the base α of a search at one
    N) -> (failed runs, runs) per schedule; `failure` says what failing means (a past participle:
    "diverged", or "failed" for diverged or stalled at chance)."""
    evidence = (
        f"{failure} runs, constant α: " + ", ".join(f"{key}={n:g}: {d}/{r}" for n, (d, r) in sorted(constant.items()))
        + "; α/N: " + ", ".join(f"{key}={n:g}: {d}/{r}" for n, (d, r) in sorted(inverse.items()))
    )  # fmt: skip
    unstable = [n for n, (d, _) in constant.items() if d > 0 and n in inverse]
    if not unstable:
        return Judgement(
            INVERSE_N, Verdict.INCONCLUSIVE, evidence, f"constant α never {failure}: there was nothing to restore"
        )
    if all(inverse[n][0] == 0 for n in unstable):
        return Judgement(
            INVERSE_N, Verdict.AGREES, evidence, f"α/N stayed stable at {key}={unstable}, where constant α {failure}"
        )
    if all(inverse[n][0] >= constant[n][0] for n in unstable):
        return Judgement(INVERSE_N, Verdict.DISAGREES, evidence, f"α/N {failure} as often as constant α")
    return Judgement(
        INVERSE_N,
        Verdict.INCONCLUSIVE,
        evidence,
        f"α/N {failure} less often, but not never: more seeds would decide it",
    )


def anil_vs_maml(anil: Costs, maml: Costs) -> Judgement:
    """Table 2: ANIL needs less than MAML by a factor that grows with N (N n_w + N n_φ over
    N n_w + n_φ for gradient entries, exactly 1 at N = 1). MAML's cost to the target over ANIL's,
    log10 and paired by seed (a seed sees the same tasks under both), at each N; the claim agrees
    when MAML costs more at the largest N and the factor grows from the smallest N to the largest,
    and disagrees when either is decided the other way. Costs must be positive."""
    grid = sorted(set(anil) & set(maml))
    if len(grid) < 2:
        return Judgement(ANIL_VS_MAML, Verdict.INCONCLUSIVE, f"N={grid}", "run both algorithms at two N or more")
    ratio = {n: {s: math.log10(maml[n][s]) - math.log10(anil[n][s]) for s in set(maml[n]) & set(anil[n])} for n in grid}
    per_n = {n: paired_interval(ratio[n], dict.fromkeys(ratio[n], 0.0)) for n in grid}
    lo, hi = grid[0], grid[-1]
    growth = paired_interval(ratio[hi], ratio[lo])
    at_top, grows = decide(per_n[hi]), decide(growth)
    evidence = (
        "; ".join(
            f"N={n}: log10 cost MAML/ANIL {r} (×{10**r.estimate:.3g}, MAML {_dearer(decide(r))})"
            for n, r in per_n.items()
        )
        + f"; growth of the log10 ratio N={lo}→{hi}: {growth}"
    )
    verdict = both(at_top, grows)
    if verdict is Verdict.AGREES:
        reason = f"MAML costs more at N={hi}, by a factor that grows from N={lo}"
    elif at_top is Verdict.DISAGREES:
        reason = f"MAML costs less at N={hi}"
    elif grows is Verdict.DISAGREES:
        reason = f"the factor shrinks from N={lo} to N={hi}"
    else:
        undecided = per_n[hi] if at_top is not Verdict.AGREES else growth
        reason = f"an interval straddles its decision: {what_would_decide(undecided)}"
    return Judgement(ANIL_VS_MAML, verdict, evidence, reason)


def _dearer(verdict: Verdict) -> str:
    return {Verdict.AGREES: "dearer", Verdict.DISAGREES: "cheaper", Verdict.INCONCLUSIVE: "undecided"}[verdict]
