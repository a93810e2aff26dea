"""`anil report DOC`: regenerate a document of docs/ from the measured data under docs/data/.

    anil report all                                     # every document, from docs/data/ (seconds)
    anil report reproduction --fig1 SWEEP --fig2 SWEEP  # read two finished sweeps into docs/data/, then render
        [--divergence SWEEP --curvature DIR]            # and the N = 30 divergence search with its curvature
        [--fig1-init SWEEP] [--fig2-init SWEEP]         # a figure's sweep under the other initialisation
        [--theory DIR] [--maml SWEEP]                   # the theorems' regime, MAML beside ANIL
        [--maml-tuning SWEEP]                           # each algorithm's stepsizes tuned on its own
        [--table2 DIR]                                  # ANIL and MAML each at its tuned stepsizes
        [--long DIR]                                    # the fixed-alpha half to 1,000 iterations
    anil report theory --smoothness DIR                 # run the formula checks, read `anil smoothness` output
    anil report complexity | performance                # render (scripts/complexity.py, scripts/bench.py measure)

Run it from the repository root (the paths default to docs/ and docs/data/ there).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anil.analysis.reports import (
    complexity,
    divergence,
    jobs,
    long,
    maml,
    performance,
    regimes,
    reproduction,
    table2,
    theory,
    tuning,
)
from anil.atomic import write_json_atomic
from anil.cli.arguments import OneLineParser

DOCS = Path("docs")
DATA = DOCS / "data"
DOCUMENTS = ("reproduction", "theory", "complexity", "performance")


def parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="anil report", description=__doc__.splitlines()[0])
    parser.add_argument("doc", choices=[*DOCUMENTS, "all"], help="which document (all: every one, from docs/data/)")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the docs folder (default docs)")
    parser.add_argument("--fig1", type=Path, help="reproduction: a finished fig1_* sweep to read first")
    parser.add_argument("--fig2", type=Path, help="reproduction: a finished fig2_* sweep to read first")
    for fig in ("fig1", "fig2"):
        parser.add_argument(
            f"--{fig}-init", type=Path, help=f"reproduction: the {fig} sweep rerun under the other init (with --fig1)"
        )
    parser.add_argument(
        "--theory", type=Path, help="reproduction: the theory_* sweeps (both geometries under one folder; with --fig1)"
    )
    parser.add_argument("--maml", type=Path, help="reproduction: a finished maml_* sweep (with --fig1)")
    parser.add_argument(
        "--maml-tuning", type=Path, help="reproduction: a finished maml_tuning_* sweep (each algorithm's stepsizes)"
    )
    parser.add_argument(
        "--table2", type=Path, help="reproduction: scripts/table2_runs.sh's folder (anil/ and maml/, finished or not)"
    )
    parser.add_argument(
        "--long", type=Path, help="reproduction: scripts/long_runs.sh's folder (its fig1/ and fig2/, finished or not)"
    )
    parser.add_argument("--divergence", type=Path, help="reproduction: a finished divergence_* sweep to read first")
    parser.add_argument(
        "--curvature", type=Path, help="reproduction: its dataset's `anil smoothness --curvature-only` folder"
    )
    parser.add_argument(
        "--smoothness", type=Path, help="theory: an `anil smoothness --out` folder; runs the formula checks"
    )
    parser.add_argument(
        "--init-curvature",
        type=Path,
        nargs="+",
        help="theory: `anil smoothness --curvature-only` folders, one per initialisation (with --smoothness)",
    )
    return parser


def render(doc: str, docs: Path) -> Path:
    data = docs / "data"
    if doc == "reproduction":
        return reproduction.write(data / "reproduction", docs / "reproduction.md")
    if doc == "theory":
        return theory.write(data / "theory.json", docs / "theory.md")
    if doc == "complexity":
        return complexity.write(data / "complexity.json", docs / "complexity.md")
    return performance.write(data, docs / "performance.md")


def main(args: list[str]) -> int:
    cli = parser()
    options = cli.parse_args(args)
    docs: Path = options.docs
    if (options.fig1 is None) != (options.fig2 is None):
        cli.error("--fig1 and --fig2 go together")
    for flag in ("fig1_init", "fig2_init", "theory", "maml"):
        if getattr(options, flag) is not None and options.fig1 is None:
            cli.error(f"--{flag.replace('_', '-')} goes with --fig1")
    if (options.divergence is None) != (options.curvature is None):
        cli.error("--divergence and --curvature go together")
    if options.init_curvature and options.smoothness is None:
        cli.error("--init-curvature goes with --smoothness")
    try:
        if options.fig1 is not None:
            for name, sweep in (("fig1", options.fig1), ("fig2", options.fig2)):
                jobs.collect(sweep, name, docs / "data" / "reproduction", docs / "figures")
        for name, folder in (
            (reproduction.INIT_VARIANTS["fig1"], options.fig1_init),
            (reproduction.INIT_VARIANTS["fig2"], options.fig2_init),
            (regimes.NAME, options.theory),
            (maml.NAME, options.maml),
        ):
            if folder is not None:
                jobs.collect(folder, name, docs / "data" / "reproduction", None)
        if options.maml_tuning is not None:  # run in parts, across sessions: what is there so far
            jobs.collect(options.maml_tuning, tuning.NAME, docs / "data" / "reproduction", None, running=True)
        for algorithm, name in table2.NAMES.items():
            if options.table2 is not None and (options.table2 / algorithm).is_dir():
                jobs.collect(options.table2 / algorithm, name, docs / "data" / "reproduction", None, running=True)
        for fig, name in long.NAMES.items():
            if options.long is not None and (options.long / fig).is_dir():
                jobs.collect(options.long / fig, name, docs / "data" / "reproduction", None, running=True)
        if options.divergence is not None:
            divergence.collect(options.divergence, options.curvature, docs / "data" / "reproduction")
        if options.smoothness is not None:
            collected = theory.collect(options.smoothness, docs / "figures", options.init_curvature)
            write_json_atomic(docs / "data" / "theory.json", collected)
        for doc in DOCUMENTS if options.doc == "all" else (options.doc,):
            print(f"wrote {render(doc, docs)}")
    except (OSError, ValueError) as error:  # missing or unreadable data, a sweep with unreadable jobs
        print(f"anil report: {error}", file=sys.stderr)
        return 1
    return 0
