"""A run folder: which files make it a run, the lock that gives one process the right to write it,
and the refusals that keep an existing run from being overwritten or rewritten.

Nothing of a run folder changes before `claim` has taken the lock and passed these checks: the
command line writes .hydra/ and train.log only afterwards (anil/cli/record.py).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO

from anil.run.errors import CheckpointError

LOCK = ".lock"
# Any of these marks a folder as holding a run, finished or not (.hydra/ is written with the first).
RUN_FILES = ("metrics.csv", "checkpoint.pt", "best.pt", "summary.json", "eval.json", "train.log", ".hydra")


class RunRefused(CheckpointError):
    """The run folder may not be used as asked; nothing in it was changed."""


def holds_run(folder: Path) -> bool:
    """Does `folder` hold (part of) a run? A dangling link counts: it is a run file too."""
    return any(os.path.lexists(folder / name) for name in RUN_FILES)


def open_no_follow(path: Path, flags: int, mode: int = 0o666) -> int:
    """os.open that refuses a symbolic link at `path` (a link could point anywhere outside the run)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise RunRefused(f"{path} is a symbolic link; a run's files must be plain files: remove it") from None
        raise


class RunLock:
    """An exclusive lock on a run directory: a second process writing into it is refused.
    The kernel drops the lock when the process dies, so a killed run never leaves it stuck."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK
        self._file: IO[str] | None = None

    def __enter__(self) -> RunLock:
        self._file = file = os.fdopen(open_no_follow(self.path, os.O_RDWR | os.O_CREAT), "r+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = file.read().strip() or "?"
            file.close()
            raise RunRefused(
                f"run directory {self.path.parent} is in use by another anil process (pid {owner}); "
                "wait for it to finish or choose another hydra.run.dir"
            ) from None
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


def refuse_if_taken(run_dir: Path) -> None:
    """A fresh run may start only in a folder that holds no run."""
    if holds_run(run_dir):
        raise RunRefused(
            f"{run_dir} already holds a run; continue it with anil resume {run_dir} or choose another hydra.run.dir"
        )
