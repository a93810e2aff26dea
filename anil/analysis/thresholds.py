"""Every threshold a verdict rule uses, in one place, each with the reason for its value; the
reproduction document tables them (THRESHOLDS). Torch-free."""

from __future__ import annotations

CONFIDENCE = 0.95  # the intervals' coverage: the field's convention for a single comparison
MIN_SEEDS = 3  # a t interval needs two degrees of freedom to be finite; fewer seeds decide nothing
SEEDS_AT_MOST = 100  # beyond this many seeds, "more seeds" is no practical way to decide
SATURATION = 0.25  # "nearly saturates at N = 7": beyond 7, at most a quarter of the gain from 1 to 7
SATURATION_N = 7  # where Section 4.1 places the saturation
DIVERGING_SHARE = 0.5  # "diverges for N = 30": at least half of the seeds blow up
LEARNED = 0.01  # a run learned when it ends 1% below both its start and chance: below noise of a flat curve
NEGLIGIBLE = 0.1  # (1 − αμ)^N changing by under 10% across the N grid cannot order the N (Theorem 1)
FLAT = 0.05  # a curve is flat when its smoothed loss fell by under 5% over the last fifth of the run
# Theorems 1-2 bound the least E‖∇L_meta‖² over the iterations: a minimum over a few samples can miss
# it by the whole fall between them, and a mean over few tasks is not the full objective's gradient.
GRADIENT_EVERY = 10  # ‖∇L_meta‖² judged only where evaluated at least every 10 iterations ...
GRADIENT_TASKS = 256  # ... on at least 256 fixed tasks
TUNING_WINDOW = 15  # a tuning run's score: its mean training loss over the last 15 iterations (10% of 150)

THRESHOLDS = {  # name -> (value, what it decides and why this value)
    "CONFIDENCE": (CONFIDENCE, "coverage of every interval (Student t over seeds); a verdict needs it clear"),
    "MIN_SEEDS": (MIN_SEEDS, "fewest seeds a verdict may rest on: a t interval needs two degrees of freedom"),
    "SEEDS_AT_MOST": (SEEDS_AT_MOST, "beyond this, 'more seeds would decide it' is not said"),
    "SATURATION": (SATURATION, "'nearly saturating': the gain beyond N ≈ 7 at most this share of the gain up to it"),
    "SATURATION_N": (SATURATION_N, "the N where Section 4.1 places the saturation"),
    "DIVERGING_SHARE": (DIVERGING_SHARE, "'N = 30 diverges': at least this share of the runs blow up"),
    "LEARNED": (LEARNED, "a target or a final loss must lie this fraction below the start and chance to count"),
    "NEGLIGIBLE": (NEGLIGIBLE, "a smaller change of (1 − αμ)^N across N leaves Theorem 1's N-dependence untestable"),
    "FLAT": (FLAT, "a smaller fall over the last fifth of a run counts as a flattened curve"),
    "GRADIENT_EVERY": (GRADIENT_EVERY, "min ‖∇L_meta‖² over iterations is judged only where sampled this often"),
    "GRADIENT_TASKS": (GRADIENT_TASKS, "... and on at least this many fixed tasks (the full objective's gradient)"),
    "TUNING_WINDOW": (
        TUNING_WINDOW,
        "a stepsize setting's score: its mean training loss over this many last iterations",
    ),
}
