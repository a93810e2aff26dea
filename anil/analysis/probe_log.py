"""What `anil smoothness` has measured so far, kept on disk as it is measured, so that a probe of
hours can be stopped and run again to finish: every (geometry, point, meta-batch) of block norms,
every point's curvature and difference quotients is appended to its CSV and flushed the moment it
is done, and a rerun with the same options skips what the files hold.

A rerun retrains the trajectory (seeded, so the same parameters come back) and checks that each
point's parameter norm equals the one recorded: a trajectory that does not reproduce is refused
rather than mixed with the old rows. Torch-free: only files and numbers.
"""

from __future__ import annotations

import csv
import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from anil.atomic import atomic_file, whole_lines, write_json_atomic

KINDS = ("norms", "curvature", "quotients", "points")  # one CSV each
SETTINGS = "probe.json"  # the options that define what is measured; a rerun must match them
LOCK = ".lock"  # held by the probe writing the folder (its pid inside)
# The relative difference of a retrained point's parameter norm that still counts as the same point,
# per precision. At one thread count the trajectory is bit-for-bit the same; another thread count
# reorders float sums, and in float32 that grows over the trajectory's steps (measured: 1.3e-4 after
# the 100 default iterations, 1 against 2 threads, embedded_hard, convex); another trajectory
# (seed, stepsize, data) differs by far more.
REPRODUCED = {"float64": 1e-9, "float32": 1e-3}


class ProbeRefused(RuntimeError):
    """The folder cannot take this probe; the message is one line that names the folder and the fix."""


class ProbeLog:
    """Rows by kind, in memory and (with a folder) appended to `<folder>/<kind>.csv` as they arrive."""

    def __init__(self, folder: Path | None = None, settings: dict[str, Any] | None = None):
        self.folder = folder
        self.rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        if folder is not None:
            self._open(folder, settings or {})

    def _open(self, folder: Path, settings: dict[str, Any]) -> None:
        stored = folder / SETTINGS
        if stored.exists():
            old = json.loads(stored.read_text(encoding="utf-8"))
            changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            if changed:
                what = ", ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in changed)
                raise ProbeRefused(
                    f"{folder} holds a probe measured with other options ({what}); "
                    "rerun with its options to finish it, or choose another --out"
                )
        elif any((folder / f"{kind}.csv").exists() for kind in KINDS):
            raise ProbeRefused(f"{folder} holds a probe without {SETTINGS} (an older anil): choose another --out")
        folder.mkdir(parents=True, exist_ok=True)
        self._lock(folder)
        write_json_atomic(stored, settings)
        for kind in KINDS:
            path = folder / f"{kind}.csv"
            if path.exists() and path.stat().st_size > 0:
                self.rows[kind] = _complete_rows(path)

    def _lock(self, folder: Path) -> None:
        """Hold an exclusive lock on the folder while this probe lives: two probes appending to the
        same files would interleave their rows. The kernel drops it when the process ends."""
        self._held = open(folder / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 (held for the probe's life)
        try:
            fcntl.flock(self._held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._held.seek(0)
            owner = self._held.read().strip() or "?"
            self._held.close()
            raise ProbeRefused(
                f"{folder} is in use by another anil smoothness (pid {owner}); wait for it or choose another --out"
            ) from None
        self._held.truncate(0)
        self._held.write(str(os.getpid()))
        self._held.flush()

    def close(self) -> None:
        """Release the folder (a process that ends releases it too)."""
        if self.folder is not None and not self._held.closed:
            self._held.close()

    def __enter__(self) -> ProbeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, kind: str, **key: Any) -> bool:
        """Whether a row of `kind` matches every column given (e.g. geometry, iteration, batch)."""
        return any(all(row.get(k) == v for k, v in key.items()) for row in self.rows[kind])

    def add(self, kind: str, rows: list[dict[str, Any]]) -> None:
        """Append rows (all with the same columns) and flush them to disk before returning."""
        if not rows:
            return
        self.rows[kind] += rows
        if self.folder is None:
            return
        path = self.folder / f"{kind}.csv"
        new = not path.exists() or path.stat().st_size == 0
        columns = list(rows[0]) if new else _header(path)
        with open(path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            if new:
                writer.writeheader()
            writer.writerows({k: _exact(row.get(k)) for k in columns} for row in rows)
            f.flush()
            os.fsync(f.fileno())

    def check_point(self, geometry: str, iteration: int, parameters_norm: float, dtype: str = "float64") -> None:
        """Record a trajectory point, or check a retrained one (trained in `dtype`) against its record."""
        for row in self.rows["points"]:
            if row["geometry"] == geometry and row["iteration"] == iteration:
                recorded = float(row["parameters_norm"])
                if abs(parameters_norm - recorded) > REPRODUCED[dtype] * abs(recorded):
                    raise ProbeRefused(
                        f"the {geometry} trajectory does not reproduce at iteration {iteration} "
                        f"(parameter norm {parameters_norm!r}, recorded {recorded!r}: another torch or machine?); "
                        "finish it where it started or choose another --out"
                    )
                return
        self.add("points", [{"geometry": geometry, "iteration": iteration, "parameters_norm": parameters_norm}])

    def frame(self, kind: str) -> pd.DataFrame:
        return pd.DataFrame(self.rows[kind])


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def _complete_rows(path: Path) -> list[dict[str, Any]]:
    """The file's rows; a last line cut short by a kill (fewer fields than the header) is dropped
    and the file rewritten without it, so the next append starts on a fresh line."""
    lines = whole_lines(path)
    cut = len("".join(lines).encode("utf-8")) != path.stat().st_size  # whole_lines dropped a cut last line
    if lines and len(next(csv.reader([lines[-1]]))) != len(_header(path)):
        lines, cut = lines[:-1], True
    if cut:
        with atomic_file(path, "w", encoding="utf-8", newline="") as f:
            f.write("".join(lines))
    if len(lines) <= 1:
        return []
    return [{str(k): v for k, v in row.items()} for row in pd.read_csv(path).to_dict("records")]


def _exact(value: Any) -> Any:
    """Floats as their shortest exact repr, so a resumed point compares bit for bit."""
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return value
