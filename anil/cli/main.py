"""The `anil` command: pop the subcommand and dispatch (`train` is the Hydra app)."""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

USAGE = """usage: anil <command> [args]      anil --version

commands:
  train [-m] [key=value ...]   meta-train ANIL (a Hydra app: `anil train --help` lists groups and keys)
  resume RUN_DIR [key=value]   continue a stopped or killed run from its checkpoint (e.g. iterations=2000)
  eval RUN_DIR [--tasks 600]   meta-test accuracy with a 95% confidence interval (writes eval.json)
  plot SWEEP_DIR [...]         draw loss vs meta-iteration and vs time, one curve per N, per geometry
  table SWEEP_DIR [...]        a results table per configuration: mean over seeds, 95% interval (md, csv, tex)
  smoothness [--N 1 2 5 ...]   the meta-Hessian's block norms and the inner curvature against N (Props. 2-3)
  testbed [--quick]            the theory testbed: Theorems 1-2, Props. 2-3 where the constants are set
  report DOC [...]             regenerate a document of docs/ from its measured data

examples:
  anil train geometry=convex N=7
  anil train -m geometry=nonconvex 'N=1,5,10'
  anil plot outputs/sweeps/<stamp>
"""


# subcommand -> "module:function" taking the remaining arguments; imported on use, so that
# `anil --help` and `anil plot` do not pay for torch or Hydra they do not need.
COMMANDS = {
    "train": "anil.cli.train:launch",
    "resume": "anil.cli.main:resume",
    "eval": "anil.cli.evaluate:main",
    "plot": "anil.cli.plot:main",
    "smoothness": "anil.cli.smoothness:main",
    "table": "anil.cli.table:main",
    "testbed": "anil.cli.testbed:main",
    "report": "anil.cli.report:main",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if argv[0] in ("-sc", "--shell-completion"):
        return complete(argv)
    if argv[0] in ("-V", "--version"):
        from anil import __version__

        print(f"anil {__version__}")
        return 0
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"anil: unknown command '{command}'; try: anil --help", file=sys.stderr)
        return 2
    module, function = COMMANDS[command].split(":")
    handler: Callable[[list[str]], int] = getattr(importlib.import_module(module), function)
    return handler(args)


def complete(args: list[str]) -> int:
    """Hydra's completion script asks `anil -sc query=bash` with the line typed so far in COMP_LINE;
    Hydra strips only the program's name from it, so the `train` subcommand is taken out here."""
    from anil.cli.train import launch

    line = os.environ.get("COMP_LINE", "")
    os.environ["COMP_LINE"] = re.sub(r"^(\s*\S+)\s+train\b", r"\1", line)
    return launch(args)


def resume(args: list[str]) -> int:
    """Re-run `anil train` in RUN_DIR with the run's own overrides and resume=true."""
    import yaml

    from anil.cli.train import launch

    if len(args) < 1 or args[0].startswith("-"):
        print("usage: anil resume RUN_DIR [key=value ...]", file=sys.stderr)
        return 2
    run_dir = Path(args[0]).absolute()
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.exists():
        print(f"anil resume: {run_dir} is not a run folder (no .hydra/overrides.yaml)", file=sys.stderr)
        return 1
    kept = [o for o in yaml.safe_load(overrides_file.read_text()) or [] if not o.startswith(("resume=", "hydra."))]
    quoted = str(run_dir).replace("\\", "\\\\").replace("'", "\\'")
    return launch([*kept, *args[1:], f"hydra.run.dir='{quoted}'", "resume=true"], program="anil resume")
