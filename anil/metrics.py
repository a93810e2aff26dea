"""Run outputs: `metrics.csv`, one row per meta-iteration, flushed as written; `summary.json` at the end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from anil.atomic import atomic_file

COLUMNS = (
    "iteration",  # meta-iterations done, 1-based; the row's numbers are measured in that iteration
    "time",  # training wall-clock seconds so far (evaluation excluded)
    "loss",  # meta training loss: query loss at the adapted heads, mean over the B tasks
    "accuracy",  # query accuracy at the adapted heads
    "grad_norm_w",  # ||dL/dw||^2 of the meta-gradient (Definition 1)
    "grad_norm_phi",  # ||dL/dphi||^2
    "support_loss_before",  # inner loss at w_0
    "support_loss_after",  # inner loss at w_N
    "val_loss",  # validation query loss (held-out classes), every eval_every iterations
    "val_accuracy",
    # What the meta-iteration actually computed, per task (anil/opcount.py):
    "grad_evals_w",  # gradient evaluations in w (inner steps and the outer gradient)
    "grad_evals_phi",  # gradient evaluations in phi
    "second_order_w",  # Hessian-vector products in w
    "second_order_phi",  # mixed (ANIL) or Hessian-vector (MAML) products in phi
)


class MetricsWriter:
    """Appends rows to metrics.csv and flushes each one, so a killed run loses nothing it logged.

    `keep_until=k` continues an existing file: rows after iteration k (logged after the checkpoint
    being resumed) are dropped first, since the resumed run computes them again, identically.
    """

    def __init__(self, path: Path, keep_until: int | None = None):
        self.path = path
        if keep_until is not None and path.exists():
            _truncate(path, keep_until)
            self._file = open(path, "a", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        else:
            self._file = open(path, "w", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow({k: _format(v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _truncate(path: Path, keep_until: int) -> None:
    """Keep the header and the rows up to iteration `keep_until`, replacing the file atomically.
    A last line cut short by a kill is dropped with the rest."""
    with open(path, newline="", encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    header = ",".join(COLUMNS) + "\r\n"
    # A run started by an older anil has fewer columns, all of them a prefix of today's: rows keep
    # their values and the header gains the new names (read back as empty).
    kept = [header if not lines or header.startswith(lines[0].rstrip("\r\n")) else lines[0]]
    for line in lines[1:]:
        iteration = line.split(",", 1)[0]
        if iteration.isdigit() and int(iteration) <= keep_until and line.endswith("\n"):
            kept.append(line)
    with atomic_file(path, "w", newline="", encoding="utf-8") as f:
        f.writelines(kept)


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # repr: no precision lost
    return "" if value is None else value


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
