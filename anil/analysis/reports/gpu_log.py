"""What a device check's log kept of benchmark parts cut short by their time box.

Before the benchmark wrote each row to its JSON as it was measured, a part that ran past its box
left no JSON, only the table rows it had printed to the check's log (OUT/gpu_check.log). This
reads those rows back, so that a run's measurements are reported rather than lost; the document
says they came from the log. Torch-free.
"""

from __future__ import annotations

import re
from typing import Any

SECTION = re.compile(r"^===== (\w+) \(box (\d+) s\): (.*)$", re.MULTILINE)
HEADER = re.compile(r"^torch (\S+) on (.+?); .*median of (\d+)", re.MULTILINE)
COLUMNS = ("dataset", "B", "geometry", "N", "order", "engine_s", "reference_s", "floor_s", "engine_over_floor",
           "reference_over_engine", "graph_mib")  # fmt: skip


def recover(log: str) -> dict[str, dict[str, Any]]:
    """Part name -> a benchmark result built from the rows that part printed (parts that printed
    none are left out)."""
    found = {}
    starts = list(SECTION.finditer(log))
    for here, after in zip(starts, [*starts[1:], None]):
        text = log[here.end() : after.start() if after else len(log)]
        rows = [_row(line) for line in text.splitlines() if line.startswith(("| fc100 |", "| miniimagenet |"))]
        header = HEADER.search(text)
        if rows and header:
            found[here.group(1)] = {
                "torch": header.group(1), "machine": header.group(2), "repeats": int(header.group(3)),
                "command": here.group(3), "rows": rows, "recovered_from_log": True,
            }  # fmt: skip
    return found


def _row(line: str) -> dict[str, Any]:
    cells = dict(zip(COLUMNS, (c.strip() for c in line.strip().strip("|").split("|"))))
    number = lambda key: None if cells[key] in ("—", "") else float(cells[key])  # noqa: E731
    return {
        "dataset": cells["dataset"], "B": int(cells["B"]), "geometry": cells["geometry"], "N": int(cells["N"]),
        "order": cells["order"], "engine_s": number("engine_s"), "reference_s": number("reference_s"),
        "floor_s": number("floor_s"), "engine_over_floor": number("engine_over_floor"),
        "reference_over_engine": number("reference_over_engine"),
        "memory_bytes": float(cells["graph_mib"]) * 2**20,
    }  # fmt: skip


def fill(check: dict[str, Any], log: str) -> list[str]:
    """Give each part of `check` that has no result the rows its log section kept; the names of
    the parts so filled."""
    filled = []
    for name, result in recover(log).items():
        part = check["parts"].get(name)
        if part is not None and not part.get("result"):
            part["result"] = {**result, "date": str(check["environment"].get("date", ""))[:10]}
            filled.append(name)
    return filled
