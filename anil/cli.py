"""The `anil` command: pop the subcommand and dispatch (`train` is the Hydra app)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

USAGE = """usage: anil <command> [args]

commands:
  train [-m] [key=value ...]   meta-train ANIL (a Hydra app: `anil train --help` lists groups and keys)
  resume RUN_DIR               continue a stopped or killed run from its checkpoint
  eval RUN_DIR [--tasks 600]   meta-test accuracy with a 95% confidence interval (writes eval.json)
  plot SWEEP_DIR [...]         draw loss vs meta-iteration and vs time, one curve per N, per geometry
  smoothness [--N 1 2 5 ...]   measure the meta-gradient's Lipschitz constants against N (Props. 2-3)

examples:
  anil train geometry=convex N=7
  anil train -m geometry=nonconvex 'N=1,5,10'
  anil plot outputs/sweeps/<stamp>
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, args = argv[0], argv[1:]
    if command == "train":
        return _train(args)
    if command == "resume":
        return _resume(args)
    if command == "eval":
        from anil.evaluation import main as eval_main

        return eval_main(args)
    if command == "plot":
        from anil.plot import main as plot_main

        return plot_main(args)
    if command == "smoothness":
        from anil.smoothness import main as smoothness_main

        return smoothness_main(args)
    print(f"anil: unknown command '{command}'; try: anil --help", file=sys.stderr)
    return 2


def _train(args: list[str]) -> int:
    from anil import train
    from anil.config import ConfigError
    from anil.distributed import launched_ranks

    try:
        train.check_overrides(args)
    except ConfigError as error:
        print(f"anil train: config error: {error}", file=sys.stderr)
        return 2
    rank, _ = launched_ranks()
    if rank:  # under torchrun only rank 0 writes: the others get a throwaway Hydra folder and no log file
        scratch = tempfile.mkdtemp(prefix=f"anil-rank{rank}-")
        args = [*args, f"hydra.run.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    sys.argv = ["anil-train", *args]  # the Hydra app reads its overrides from sys.argv
    try:
        train.main()
    finally:
        if rank:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _resume(args: list[str]) -> int:
    """Re-run `anil train` in RUN_DIR with the run's own overrides and resume=true."""
    import yaml

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
    return _train([*kept, *args[1:], f"hydra.run.dir='{quoted}'", "resume=true"])


if __name__ == "__main__":
    sys.exit(main())
