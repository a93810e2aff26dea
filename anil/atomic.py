"""Atomic file writes: a temporary file in the same folder, flushed to disk, then renamed over the
target. A reader (or a run killed mid-write) sees the old file or the new one, never half of one.
Used by every layer that writes results (checkpoints, summaries, caches, reports)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb", **open_args: Any) -> Iterator[IO[Any]]:
    # mkstemp creates the file exclusively (never through a link) with mode 0600; give it the mode
    # any other new file gets under the user's umask, so a teammate can read the result too.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _finite(value: Any) -> Any:
    """Strict JSON has no NaN or Infinity: write them as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    with atomic_file(path, "w", encoding="utf-8") as f:
        json.dump(_finite(data), f, indent=2, sort_keys=True)
        f.write("\n")


def whole_lines(path: Path) -> list[str]:
    """A text file's lines with their endings, less a last line that a kill cut short (no line end
    yet): how the files that runs append to (metrics.csv, the probe records) are read back."""
    with open(path, newline="", encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    return lines if not lines or lines[-1].endswith("\n") else lines[:-1]
