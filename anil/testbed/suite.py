"""Every testbed experiment, stage by stage, into one JSON file (docs/data/testbed.json).

Stages: calibrate (the feature scale s that sets each target κ, then μ, L and α = 1/L), then per
geometry and N: the stepsize searches on search seeds kept apart from the judged ones, the judged
runs (every seed, Definition 1's quantities every `every` iterations on the fixed tasks, μ and L at
the end), and the meta-Hessian block norms. Each finished stage is written at once; a rerun
with the same plan skips the stages the file already holds, so a stopped suite resumes; a file
written under another plan is refused, never overwritten.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from anil.atomic import write_json_atomic
from anil.geometry import Geometry
from anil.testbed import stages
from anil.testbed.family import Family

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    grid: tuple[int, ...] = (1, 3, 5, 7, 10, 20)  # N
    seeds: int = 10  # judged runs per configuration: seeds 0 .. seeds - 1
    search_seeds: tuple[int, ...] = (100, 101, 102)  # the searches' seeds, apart from the judged ones
    iterations: int = 1000
    search_iterations: int = 200
    tasks: int = 8  # B
    every: int = 10  # Definition 1's quantities every this many iterations
    evaluation_tasks: int = 256  # the fixed tasks of the full objective
    kappas: tuple[float, ...] = (4.0, 10.0, 20.0)  # target κ = L/μ of the convex inner loss
    lam: float = 0.1  # λ, hence μ of the convex inner loss
    betas: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0)  # the β grid
    alpha_bracket: tuple[float, float] = (0.01, 100.0)  # the nonconvex α bisection's start
    bisection_steps: int = 8
    probe_beta: float = 0.1  # β while α is searched (stability is the inner loop's)
    smoothness_batches: int = 3  # meta-batches per smoothness point
    width: int = 16  # the body's output d
    hidden: int = 16  # the nonconvex head's hidden width
    dim: int = 16  # input dimension

    def family(self) -> Family:
        return Family(dim=self.dim)

    def digest(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


QUICK = Plan(
    grid=(1, 3), seeds=3, search_seeds=(100, 101), iterations=20, search_iterations=10, every=5,
    evaluation_tasks=16, kappas=(4.0, 10.0), betas=(0.1, 1.0), bisection_steps=3, smoothness_batches=2,
)  # fmt: skip


def with_changes(plan: Plan, changes: list[str]) -> Plan:
    """`plan` with `key=value` changes (a tuple field takes comma-separated values), each checked."""
    fields = {f.name: f for f in dataclasses.fields(plan)}
    values: dict[str, Any] = {}
    for change in changes:
        key, _, text = change.partition("=")
        if key not in fields or not text:
            raise ValueError(f"{change!r} is not key=value with a key of the plan: {', '.join(fields)}")
        current = getattr(plan, key)
        kind = type(current[0]) if isinstance(current, tuple) else type(current)
        try:
            parsed = [kind(part) for part in text.split(",")]
        except ValueError:
            raise ValueError(f"{key}={text}: expected {kind.__name__} values") from None
        if any(v <= 0 for v in parsed):
            raise ValueError(f"{key}={text}: every value must be positive")
        values[key] = tuple(parsed) if isinstance(current, tuple) else parsed[0]
    return dataclasses.replace(plan, **values)


def run(plan: Plan, out: Path) -> dict[str, Any]:
    """Run every stage not yet in `out` (written after each), return the whole record."""
    record = _load(out, plan)
    started = time.perf_counter()

    def stage(name: str, work: Callable[[], Any]) -> Any:
        if name not in record["stages"]:
            begun = time.perf_counter()
            result = work()
            record["stages"][name] = result
            record["seconds"][name] = round(time.perf_counter() - begun, 2)
            # the machine's 1-minute load at the stage's end: above the threads used, others shared it
            record.setdefault("load", {})[name] = round(os.getloadavg()[0], 2)
            write_json_atomic(out, record)
            log.info("testbed: %s done in %.0f s (%.0f s this session)", name, record["seconds"][name],
                     time.perf_counter() - started)  # fmt: skip
        return record["stages"][name]

    context = stages.Context(plan.family(), plan, torch.float64)
    calibration = stage("calibrate", lambda: stages.calibrate(context))
    for n in plan.grid:
        for geometry in Geometry:
            key = f"{geometry.value} N={n}"
            stepsizes = stage(f"search {key}", partial(stages.search, context, geometry, n, calibration))
            for name, work in (("runs", stages.judged), ("smoothness", stages.smoothness)):
                stage(f"{name} {key}", partial(work, context, geometry, n, calibration, stepsizes))
    record["meta"]["seconds"] = round(sum(record["seconds"].values()), 1)
    write_json_atomic(out, record)
    return record


def _load(out: Path, plan: Plan) -> dict[str, Any]:
    fresh = {"meta": _meta(plan), "stages": {}, "seconds": {}}
    if not out.exists():
        return fresh
    try:
        record = json.loads(out.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {out} ({error}); remove it to start the testbed afresh") from None
    if record.get("meta", {}).get("plan") != json.loads(plan.digest()):
        raise ValueError(f"{out} holds a testbed run with another plan; pass another --out (it is kept as it is)")
    record["meta"].update({k: v for k, v in _meta(plan).items() if k not in record["meta"]})
    return record


def _meta(plan: Plan) -> dict[str, Any]:
    return {
        "plan": json.loads(plan.digest()),
        "family": dataclasses.asdict(plan.family()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }
