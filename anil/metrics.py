"""Run outputs: `metrics.csv`, one row per meta-iteration, flushed as written; `summary.json` at the end."""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

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
)


class MetricsWriter:
    """Appends rows to metrics.csv and flushes each one, so a killed run loses nothing it logged."""

    def __init__(self, path: Path):
        self.path = path
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


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # repr: no precision lost
    return "" if value is None else value


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
