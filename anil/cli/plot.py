"""`anil plot SWEEP_DIR [...]`: the paper's convergence figures from one or more sweeps."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from anil.analysis.statistics import BANDS
from anil.cli.arguments import OneLineParser

log = logging.getLogger("anil.plot")


def parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="anil plot", description="loss against meta-iterations and training time, one curve per N"
    )
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (outputs/sweeps/<stamp>) or run folders")
    parser.add_argument("--out", type=Path, default=None, help="where figures go (default: the first sweep folder)")
    parser.add_argument("--smooth", type=int, default=1, help="rolling-mean window over iterations (default 1: none)")
    parser.add_argument(
        "--band", choices=BANDS, default="quartiles",
        help="shaded band around the mean over seeds: quartiles over seeds (default), minmax or none",
    )  # fmt: skip
    return parser


def main(args: list[str]) -> int:
    cli = parser()
    options = cli.parse_args(args)
    # Imported once the arguments are read: `anil plot --help` and a bad option need no matplotlib.
    from anil.analysis.overlap import occupancy
    from anil.analysis.plot import describe, draw
    from anil.analysis.runs import JUMP, find_jobs, per_seed, summarise_seeds

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    missing = [str(p) for p in options.sweeps if not p.is_dir()]
    if missing:
        cli.error(f"not a folder: {', '.join(missing)}")
    if options.smooth < 1:
        cli.error(f"--smooth must be >= 1 (got {options.smooth})")
    jobs, skipped = find_jobs(options.sweeps)
    for reason in skipped:
        log.warning("skipped %s", reason)
    if not jobs:
        log.error("anil plot: no job with metrics under %s", ", ".join(map(str, options.sweeps)))
        return 1
    out_dir = options.out or options.sweeps[0]
    rows = per_seed(jobs)
    table, timing = summarise_seeds(rows), occupancy(rows)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_dir / "curves.csv", index=False)
        written = draw(table, out_dir, options.smooth, options.band, timing=timing)
    except OSError as error:
        print(f"anil plot: cannot write {error.filename or out_dir}: {error.strerror or error}; "
              "give --out a writable folder", file=sys.stderr)  # fmt: skip
        return 1
    for path in written:
        log.info("wrote %s", path)
    diverged = [str(job.path) for job in jobs if job.diverged]
    if diverged:
        log.warning("diverged (marked in the legends): %s", ", ".join(diverged))
    jumped = [str(job.path) for job in jobs if job.jumped and not job.diverged]
    if jumped:
        log.warning("loss jumped ×%g above its running minimum (marked in the legends): %s", JUMP, ", ".join(jumped))
    log.info("wrote %s (%d jobs, %d skipped)", out_dir / "curves.csv", len(jobs), len(skipped))
    if not timing.trusted:
        log.warning("time axis: %s; compare training times only from jobs run one at a time", timing.describe())
    for line in describe(table):  # last, so a sweep's log ends with what its figures show
        log.info("%s", line)
    return 0
