"""`anil table SWEEP_DIR [...]`: a results table per configuration, mean over seeds with a 95%
interval, as Markdown (printed), CSV and LaTeX (booktabs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anil.analysis.runs import find_jobs
from anil.analysis.table import markdown, per_job, summarise, write
from anil.cli.arguments import OneLineParser


def parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="anil table", description="a results table: mean over seeds with a 95% interval")
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (or run folders)")
    parser.add_argument(
        "--metric",
        default="val_accuracy",
        help="a metrics.csv column, or test_accuracy / test_loss from anil eval (default val_accuracy)",
    )
    parser.add_argument(
        "--by", default="geometry,N", help="config keys that tell configurations apart (default geometry,N)"
    )
    parser.add_argument("--at", default="final", help="final (default), best, or an iteration number")
    parser.add_argument("--percent", action="store_true", help="show the metric times 100")
    parser.add_argument("--digits", type=int, default=3, help="decimals shown (default 3)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where table.md/.csv/.tex go (default: the first folder)"
    )
    return parser  # fmt: skip


def main(args: list[str]) -> int:
    cli = parser()
    options = cli.parse_args(args)
    if options.at not in ("final", "best") and not options.at.isdigit():
        cli.error(f"--at must be final, best or an iteration number (got {options.at})")
    if not 0 <= options.digits <= 10:
        cli.error(f"--digits must be between 0 and 10 (got {options.digits})")
    missing = [str(p) for p in options.sweeps if not p.is_dir()]
    if missing:
        cli.error(f"not a folder: {', '.join(missing)}")
    jobs, skipped = find_jobs(options.sweeps)
    for reason in skipped:
        print(f"anil table: skipped {reason}", file=sys.stderr)
    if not jobs:
        print(f"anil table: no job with metrics under {', '.join(map(str, options.sweeps))}", file=sys.stderr)
        return 1
    by = [key.strip() for key in options.by.split(",") if key.strip()]
    try:
        table = per_job(jobs, options.metric, options.at, by)
    except KeyError as error:
        print(f"anil table: {error.args[0]}; choose a column metrics.csv has, or test_accuracy", file=sys.stderr)
        return 1
    except ValueError as error:  # nothing is written: the table files there stay as they were
        print(f"anil table: {error}", file=sys.stderr)
        return 1
    summary = summarise(table, options.metric, by)
    scale = 100.0 if options.percent else 1.0
    print(markdown(summary, options.metric, by, scale, options.digits), end="")
    try:
        written = write(summary, options.metric, by, options.out or options.sweeps[0], scale, options.digits)
    except OSError as error:
        print(
            f"anil table: cannot write {error.filename}: {error.strerror}; give --out a writable folder",
            file=sys.stderr,
        )
        return 1
    print(f"wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0
