"""`anil eval RUN_DIR`: meta-test accuracy of a trained run, with a 95% confidence interval."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anil.atomic import write_json_atomic
from anil.cli.arguments import OneLineParser
from anil.config import ConfigError
from anil.data import DatasetError
from anil.run.budget import EVAL_HOURS
from anil.run.errors import CheckpointError
from anil.run.evaluation import EVAL_JSON, evaluate_run


def parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="anil eval", description="meta-test accuracy on held-out test classes")
    parser.add_argument("run_dir", type=Path, help="a run folder (outputs/runs/<stamp> or a sweep job)")
    parser.add_argument(
        "--checkpoint", choices=["auto", "best", "last"], default="auto",
        help="best validation accuracy (best.pt), the last one (checkpoint.pt), or auto: best if present",
    )  # fmt: skip
    parser.add_argument("--tasks", type=int, default=600, help="test tasks (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test tasks (default 0)")
    parser.add_argument("--N", type=int, default=None, help="inner steps at test time (default: the run's)")
    parser.add_argument("--alpha", type=float, default=None, help="inner stepsize at test time (default: the run's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--max-hours", type=float, default=EVAL_HOURS,
        help=f"refuse, after timing the first batch, an evaluation projected to take longer (default {EVAL_HOURS:g})",
    )  # fmt: skip
    return parser


def main(args: list[str]) -> int:
    cli = parser()
    options = cli.parse_args(args)
    if options.tasks < 2:
        cli.error("--tasks must be at least 2 for a confidence interval")
    try:
        result = evaluate_run(
            options.run_dir, options.checkpoint, options.tasks, options.seed, options.device, options.N, options.alpha,
            progress=sys.stderr.isatty(), max_hours=options.max_hours,
        )  # fmt: skip
    except (CheckpointError, ConfigError, DatasetError) as error:
        print(f"anil eval: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("anil eval: interrupted; nothing was written", file=sys.stderr)
        return 130
    print(
        f"test accuracy {100 * result['accuracy']:.2f}% ± {100 * result['accuracy_ci95']:.2f}% (95% CI, "
        f"{result['tasks']} tasks, {result['ways']}-way {result['shots']}-shot), loss {result['loss']:.4f}; "
        f"{result['checkpoint']} at iteration {result['checkpoint_iteration']}, "
        f"N={result['N']}, alpha={result['alpha']:g}"
    )
    try:  # the result is printed first: a run folder that cannot be written does not lose it
        write_json_atomic(options.run_dir / EVAL_JSON, result)
    except OSError as error:
        print(f"anil eval: cannot write {options.run_dir / EVAL_JSON}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0
