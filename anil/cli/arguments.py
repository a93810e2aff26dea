"""The argument parser of the subcommands that are not Hydra apps (eval, plot, table, smoothness,
report): a bad option is one line naming it and where help is, not argparse's usage block."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message}; see {self.prog} --help", file=sys.stderr)
        raise SystemExit(2)
