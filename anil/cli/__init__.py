"""The command line, the only layer that knows Hydra: `anil train` composes a config and passes a
typed TrainConfig and a run directory down; the other subcommands parse their arguments here and
call the run and analysis layers."""

from anil.cli.main import main

__all__ = ["main"]
