"""Print the `anil train` overrides of one algorithm's tuned stepsizes, read from the tuning sweep
that `anil report reproduction --maml-tuning SWEEP` collected into docs/data/reproduction/; or the
tuning grid itself.

    .venv/bin/python scripts/tuned.py maml     # e.g. alpha=0.1 optim.beta_w=0.001 optim.beta_phi=0.001
    .venv/bin/python scripts/tuned.py --grid   # "alpha beta" per line, from the tuning experiment's sweep
    .venv/bin/python scripts/tuned.py anil --beyond   # "alpha beta" past a grid edge the choice lies on

scripts/table2_runs.sh runs ANIL and MAML with them, scripts/tuning_runs.sh runs the grid. Exits 1
with one line when the algorithm's part of the grid has not all finished or every run of it diverged.
"""

import argparse
import sys
from pathlib import Path

from anil.analysis.reports import tuning
from anil.analysis.reports.sweeps import read
from anil.cli.compose import swept

DATA = Path(__file__).resolve().parent.parent / "docs" / "data" / "reproduction"
EXPERIMENT = "maml_tuning_embedded_hard"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algorithm", nargs="?", choices=sorted(tuning.LABELS))
    parser.add_argument("--data", type=Path, default=DATA, help="the folder with maml-tuning-{seeds,jobs}.csv")
    parser.add_argument("--grid", action="store_true", help="print the grid's (alpha, beta) pairs and exit")
    parser.add_argument(
        "--beyond", action="store_true", help="print the (alpha, beta) past a grid edge the choice lies on, if any"
    )
    options = parser.parse_args()
    grid = [(a, b) for a in swept(EXPERIMENT, "alpha") for b in swept(EXPERIMENT, "optim.beta_w")]
    if options.grid:
        print("\n".join(f"{a} {b}" for a, b in grid))
        return 0
    if options.algorithm is None:
        parser.error("name an algorithm, or --grid")
    if not (options.data / f"{tuning.NAME}-jobs.csv").exists():
        print(f"tuned.py: no {tuning.NAME}-jobs.csv in {options.data}: run the tuning sweep and "
              "`anil report reproduction --maml-tuning SWEEP` first", file=sys.stderr)  # fmt: skip
        return 1
    rows = tuning.ranked(read(options.data, tuning.NAME))
    finished = int((rows["finished"] & (rows["algorithm"] == options.algorithm)).sum())
    if finished < len(grid):
        print(f"tuned.py: {finished} of the {len(grid)} {options.algorithm} tuning jobs have finished: run "
              "scripts/tuning_runs.sh to the end and collect it again", file=sys.stderr)  # fmt: skip
        return 1
    chosen = tuning.choice(rows, options.algorithm)
    if chosen is None:
        print(f"tuned.py: every {options.algorithm} tuning run diverged: widen the grid", file=sys.stderr)
        return 1
    if options.beyond:
        print("\n".join(f"{a:g} {b:g}" for a, b in tuning.beyond(rows, options.algorithm)))
    else:
        print(tuning.overrides(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
