"""The benchmark's targets (scripts/bench.py prints them; docs/performance.md tables them), judged
on the rows of one run, and the setting its extras recorded. Torch-free: the performance report
reads them."""

from __future__ import annotations

from typing import Any

from anil.geometry import Geometry

Target = tuple[str, float, bool]  # what is checked, the measured value, whether it is met
L2L_TARGET = 2.0  # the learn2learn-style loop at least this much slower than the engine, N = 1, 7, 30
LIMIT_TARGET = 2.0  # the engine within this factor of the FLOP limit at the machine's peak


def targets(rows: list[dict[str, Any]], calls: dict[int, int]) -> list[Target]:
    """The benchmark's targets, each with its measured value (ratios from one run)."""

    def find(**keys: Any) -> dict[str, Any] | None:
        return next((r for r in rows if all(r[k] == v for k, v in keys.items())), None)

    checks: list[Target] = []
    for n, limit in ((7, 1.10), (30, 1.25)):
        row = find(dataset="fc100", geometry=Geometry.convex, N=n, order="second")
        if row:
            name = f"engine/floor at N={n} (convex, FC100) <= {limit}"
            checks.append((name, row["engine_over_floor"], row["engine_over_floor"] <= limit))
    ratios = [r["reference_over_engine"] for r in rows if r["reference_over_engine"] is not None]
    checks.append(("engine never slower than the reference (min reference/engine >= 1)", min(ratios), min(ratios) >= 1))
    if 4 in calls and 32 in calls:  # not in a --quick run
        checks.append(("operator calls B=32 within 10% of B=4", calls[32] / calls[4], calls[32] <= 1.1 * calls[4]))
    for geometry in Geometry:
        for n in (1, 7, 30):
            row = find(dataset="fc100", geometry=geometry, N=n, order="second")
            if row and row.get("l2l_style_over_engine") is not None:
                name = f"learn2learn-style / engine at N={n} ({geometry}, FC100) >= {L2L_TARGET}"
                checks.append((name, row["l2l_style_over_engine"], row["l2l_style_over_engine"] >= L2L_TARGET))
    row = find(dataset="fc100", geometry=Geometry.convex, N=7, order="second")
    if row and row.get("engine_over_flop_limit") is not None:
        name = f"engine / FLOP limit at N=7 (convex, FC100) <= {LIMIT_TARGET}"
        checks.append((name, row["engine_over_flop_limit"], row["engine_over_flop_limit"] <= LIMIT_TARGET))
    low = find(dataset="fc100", geometry=Geometry.convex, N=1, order="second")
    high = find(dataset="fc100", geometry=Geometry.convex, N=30, order="second")
    if low and high:
        ratio = high["memory_bytes"] / low["memory_bytes"]
        checks.append(("memory at N=30 within 10% of N=1 (convex)", ratio, ratio <= 1.1))
    return checks


def shape_of(data: dict[str, Any]) -> str:
    """The inputs a benchmark measured its extras on, as it recorded them."""
    s = data.get("extras_setting")
    if not s:
        return "setting not recorded"
    return f"{s['dataset']} shape ({s['channels']}×{s['side']}×{s['side']}), {s['geometry']}"


def setting(data: dict[str, Any]) -> str:
    """shape_of with the N the extras (calls, breakdown, scaling, profile) ran at."""
    s = data.get("extras_setting")
    return f"{shape_of(data)}, N = {s['N']}" if s else shape_of(data)
