"""Print the `anil train` overrides of one algorithm's tuned stepsizes, read from the tuning sweep
that `anil report reproduction --maml-tuning SWEEP` collected into docs/data/reproduction/.

    .venv/bin/python scripts/tuned.py maml     # e.g. alpha=0.1 optim.beta_w=0.001 optim.beta_phi=0.001

scripts/reproduce.sh runs the MAML sweep with them. Exits 1 with one line when there is no
tuning data or every run of the algorithm diverged.
"""

import argparse
import sys
from pathlib import Path

from anil.analysis.reports import tuning
from anil.analysis.reports.sweeps import read

DATA = Path(__file__).resolve().parent.parent / "docs" / "data" / "reproduction"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algorithm", choices=sorted(tuning.LABELS))
    parser.add_argument("--data", type=Path, default=DATA, help="the folder with maml-tuning-{seeds,jobs}.csv")
    options = parser.parse_args()
    if not (options.data / f"{tuning.NAME}-jobs.csv").exists():
        print(f"tuned.py: no {tuning.NAME}-jobs.csv in {options.data}: run the tuning sweep and "
              "`anil report reproduction --maml-tuning SWEEP` first", file=sys.stderr)  # fmt: skip
        return 1
    rows = tuning.ranked(read(options.data, tuning.NAME))
    unfinished = int((~rows["finished"]).sum())
    if unfinished:
        print(f"tuned.py: {unfinished} tuning job(s) have not finished: run scripts/tuning_runs.sh to the end "
              "and collect it again", file=sys.stderr)  # fmt: skip
        return 1
    chosen = tuning.choice(rows, options.algorithm)
    if chosen is None:
        print(f"tuned.py: every {options.algorithm} tuning run diverged: widen the grid", file=sys.stderr)
        return 1
    print(tuning.overrides(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
