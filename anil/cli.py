"""The `anil` command: pop the subcommand and dispatch (`train` is the Hydra app)."""

from __future__ import annotations

import sys

USAGE = """usage: anil <command> [args]

commands:
  train [-m] [key=value ...]   meta-train ANIL (a Hydra app: `anil train --help` lists groups and keys)
  plot SWEEP_DIR [...]         draw loss vs meta-iteration and vs time, one curve per N, per geometry

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
    if command == "plot":
        from anil.plot import main as plot_main

        return plot_main(args)
    print(f"anil: unknown command '{command}'; try: anil --help", file=sys.stderr)
    return 2


def _train(args: list[str]) -> int:
    from anil.config import ConfigError
    from anil import train

    try:
        train.check_overrides(args)
    except ConfigError as error:
        print(f"anil train: config error: {error}", file=sys.stderr)
        return 2
    sys.argv = ["anil-train", *args]  # the Hydra app reads its overrides from sys.argv
    train.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
