"""Numbers with their spread, and decisions that may come out "inconclusive".

- `interval`: a mean over seeds with a Student t 95% interval (mean +- t(0.975, n-1) s / sqrt(n));
- `paired_interval`: the same for differences taken seed by seed (runs with the same seed see the
  same tasks at every N, so pairing removes the task-to-task noise from a comparison between N);
- `decide`: a three-way verdict on whether a quantity lies above a threshold, "inconclusive"
  whenever the interval straddles it;
- `log_band`: a band for a log-scale plot from quantiles over seeds (never below the data).

The t interval holds its 95% at small n, where a percentile bootstrap is too narrow (it reuses the
few values it has); tests/test_claims.py simulates its coverage. `MIN_SEEDS` keeps a decision from
resting on fewer seeds than that at all.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anil.analysis.thresholds import CONFIDENCE, MIN_SEEDS, SEEDS_AT_MOST

BANDS = ("quartiles", "minmax", "none")  # the spread over seeds a figure's band shows (anil plot --band)


class Verdict(enum.Enum):
    AGREES = "agrees"
    DISAGREES = "disagrees"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval over `n` values (seeds)."""

    estimate: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}]"

    def excludes(self, value: float) -> bool:
        return self.low > value or self.high < value


def interval(values: Sequence[float]) -> Interval:
    """The mean of `values` (non-finite ones dropped) with its Student t 95% interval; unbounded
    below MIN_SEEDS."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    if len(data) == 0:
        return Interval(math.nan, -math.inf, math.inf, 0)
    estimate = float(data.mean())
    if len(data) < MIN_SEEDS:
        return Interval(estimate, -math.inf, math.inf, len(data))
    half = t_quantile(1 - (1 - CONFIDENCE) / 2, len(data) - 1) * float(data.std(ddof=1)) / math.sqrt(len(data))
    return Interval(estimate, estimate - half, estimate + half, len(data))


@functools.cache
def t_quantile(p: float, df: int) -> float:
    """The p-quantile (p > 0.5) of Student's t with `df` degrees of freedom: bisection on its CDF,
    which is 1 - I_x(df/2, 1/2) / 2 at x = df / (df + t^2), the regularised incomplete beta
    integrated numerically (no SciPy). Accurate to 1e-6 for df >= 1."""
    low, high = 0.0, 1000.0
    for _ in range(60):
        middle = (low + high) / 2
        if _t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _t_cdf(t: float, df: int) -> float:
    """P(T <= t) for t >= 0: 1/2 plus the density integrated from 0 to t (Simpson, on u = atan(t/sqrt(df))
    where the integrand cos(u)^(df-1) is smooth and bounded)."""
    # With t = sqrt(df) tan(u), the density times dt is c cos(u)^(df - 1) du, c = Gamma((df+1)/2) /
    # (sqrt(pi) Gamma(df/2)).
    constant = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(math.pi)
    top = math.atan(t / math.sqrt(df))
    steps = 400  # even
    width = top / steps
    total = 0.0
    for k in range(steps + 1):
        weight = 1 if k in (0, steps) else (4 if k % 2 else 2)
        total += weight * math.cos(k * width) ** (df - 1)
    return 0.5 + constant * total * width / 3


def paired_interval(a: dict[int, float], b: dict[int, float]) -> Interval:
    """Mean over the seeds both have of a[seed] - b[seed], with its t interval."""
    common = sorted(set(a) & set(b))
    return interval([a[s] - b[s] for s in common])


def decide(quantity: Interval, threshold: float = 0.0) -> Verdict:
    """AGREES when the whole interval lies above `threshold`, DISAGREES when it lies below,
    INCONCLUSIVE when it straddles it (or rests on too few seeds)."""
    if quantity.n < MIN_SEEDS or not math.isfinite(quantity.estimate):
        return Verdict.INCONCLUSIVE
    if quantity.low > threshold:
        return Verdict.AGREES
    if quantity.high < threshold:
        return Verdict.DISAGREES
    return Verdict.INCONCLUSIVE


def what_would_decide(quantity: Interval, threshold: float = 0.0) -> str:
    """For an undecided quantity: how many seeds would put its t interval clear of `threshold` if
    the estimate and the spread across seeds stayed where they are (the half-width is
    t(0.975, n-1) s / sqrt(n), so it narrows faster than 1/sqrt(n) at small n)."""
    if quantity.n < MIN_SEEDS or not math.isfinite(quantity.high - quantity.low):
        return f"at least {MIN_SEEDS} seeds would decide it"
    gap = abs(quantity.estimate - threshold)
    quantile = 1 - (1 - CONFIDENCE) / 2
    spread = (quantity.high - quantity.low) / 2 * math.sqrt(quantity.n) / t_quantile(quantile, quantity.n - 1)
    for seeds in range(quantity.n + 1, SEEDS_AT_MOST + 1):
        if gap > 0 and t_quantile(quantile, seeds - 1) * spread / math.sqrt(seeds) < gap:
            return f"about {seeds} seeds (now {quantity.n}) would decide it if the estimate holds"
    return f"the estimate sits too close to {threshold:g} for more seeds (up to {SEEDS_AT_MOST}) to decide it"


def both(first: Verdict, second: Verdict) -> Verdict:
    """A claim made of two parts: it agrees when both do and disagrees when either does."""
    if Verdict.DISAGREES in (first, second):
        return Verdict.DISAGREES
    if first is second is Verdict.AGREES:
        return Verdict.AGREES
    return Verdict.INCONCLUSIVE


def log_band(values: np.ndarray, low: float = 0.25, high: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Quantile band over seeds (axis 0) for a log-scale plot: always within the data, never <= 0
    unless the data are."""
    return np.nanquantile(values, low, axis=0), np.nanquantile(values, high, axis=0)
