"""`metrics.csv`: one row per meta-iteration, flushed as written, so a killed run loses nothing it logged."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from anil.atomic import atomic_file, whole_lines
from anil.engine.counters import COUNTERS
from anil.run.folder import open_no_follow

STEP_METRICS = (  # measured in every meta-iteration, before the update
    "loss",  # meta training loss: query loss at the adapted heads, mean over the B tasks
    "accuracy",  # query accuracy at the adapted heads
    "sq_grad_norm_w",  # ||dL/dw||^2 of this meta-batch's meta-gradient (a mini-batch estimate; Definition 1)
    "sq_grad_norm_phi",  # ||dL/dphi||^2 of this meta-batch's meta-gradient
    "support_loss_before",  # inner loss at w_0
    "support_loss_after",  # inner loss at w_N
)
VALIDATION_METRICS = ("val_loss", "val_accuracy")  # held-out classes, every eval_every iterations
# The theorems' quantity, E||grad L_meta||^2 (Definition 1): the squared norms of the meta-gradient of
# the full objective, estimated on a fixed set of grad_eval_tasks training tasks (the same for every
# N and seed), every grad_eval_every iterations (empty otherwise). Not a mini-batch estimate.
OBJECTIVE_METRICS = ("meta_sq_grad_norm_w", "meta_sq_grad_norm_phi")

# iteration: meta-iterations done, 1-based (the row's numbers are measured in that iteration);
# time: training wall-clock seconds so far (evaluation excluded); then what the meta-iteration
# actually computed, per task (anil/engine/opcount.py).
# cpu_time: the process CPU seconds of those steps; clock: the Unix time the step ended (whether jobs
# overlapped on one machine, anil/analysis/overlap.py). Appended last, so older files stay a prefix.
COLUMNS = ("iteration", "time", *STEP_METRICS, *VALIDATION_METRICS, *COUNTERS, *OBJECTIVE_METRICS, "cpu_time", "clock")

# Columns renamed since older runs were written (old -> new): readers and resumed runs map them.
RENAMED = {"grad_norm_w": "sq_grad_norm_w", "grad_norm_phi": "sq_grad_norm_phi"}


class MetricsWriter:
    """Appends rows to metrics.csv and flushes each one, so a killed run loses nothing it logged.

    `keep_until=k` continues an existing file: rows after iteration k (logged after the checkpoint
    being resumed) are dropped first, since the resumed run computes them again, identically.
    """

    def __init__(self, path: Path, keep_until: int | None = None):
        self.path = path
        appending = keep_until is not None and path.exists()
        if keep_until is not None and appending:
            _truncate(path, keep_until)
        mode = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if appending else os.O_TRUNC)
        self._file = os.fdopen(open_no_follow(path, mode), "w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        if not appending:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow({k: _format(v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _truncate(path: Path, keep_until: int) -> None:
    """Keep the header and the rows up to iteration `keep_until`, replacing the file atomically.
    A last line cut short by a kill is dropped with the rest."""
    lines = whole_lines(path)
    header = ",".join(COLUMNS) + "\r\n"
    # A run started by an older anil may have fewer columns, all of them a prefix of today's, or
    # columns since renamed (RENAMED): rows keep their values and the header gets today's names.
    old = ",".join(RENAMED.get(name, name) for name in lines[0].rstrip("\r\n").split(",")) if lines else ""
    kept = [header if not lines or header.startswith(old) else lines[0]]
    for line in lines[1:]:
        iteration = line.split(",", 1)[0]
        if iteration.isdigit() and int(iteration) <= keep_until:
            kept.append(line)
    with atomic_file(path, "w", newline="", encoding="utf-8") as f:
        f.writelines(kept)


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # repr: no precision lost
    return "" if value is None else value
