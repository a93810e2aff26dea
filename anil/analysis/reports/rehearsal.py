"""The full-size dress rehearsal's section of docs/performance.md, from the JSON that
scripts/dress_rehearsal.py writes (docs/data/dress-rehearsal.json). Torch-free."""

from __future__ import annotations

from typing import Any

from anil.analysis.reports.markdown import table

REAL_PER_CLASS = 600  # images per class in CIFAR-100 and miniImageNet


def section(data: dict[str, Any], source: str) -> list[str]:
    meta = data["meta"]
    per_class = int(meta["per_class"])
    scale = (
        "at the datasets' real sizes"
        if per_class >= REAL_PER_CLASS
        else f"at {per_class} images per class of the real {REAL_PER_CLASS}: decode times and cache sizes grow with "
        "it, seconds per iteration and memory do not (an iteration draws B tasks whatever the split's size)"
    )
    lines = [
        "## Full-size datasets: the dress rehearsal",
        "",
        f"From `{source}` (`{meta['command']}`, {meta['date']}, {meta['cpus']} CPUs), {scale}. Synthetic data in "
        "the real formats (random pixels: features, and with them α·L and the first losses, may be larger than on "
        "photographs), each paper figure sweep's every N at seed 0 run for a few iterations through `anil train`, "
        "one job at a time.",
        "",
        *table(
            ["dataset", "format", "images", "files MB", "first decode s", "later start s", "cache MB"],
            [
                [
                    r["dataset"],
                    r["format"],
                    f"{r['images']:,}",
                    f"{r['source_bytes'] / 1e6:.0f}",
                    f"{r['first_decode_s']:.1f}",
                    f"{r['later_start_s']:.2f}",
                    f"{r['cache_bytes'] / 1e6:.0f}",
                ]
                for r in data["decode"]
            ],
            [False, False, True, True, True, True, True],
        ),  # fmt: skip
    ]
    measured = [r for r in data.get("curvature", []) if "alpha_L" in r]
    if measured:
        lines += ["", "The inner loss at the authors' initialisation (median over the probed tasks; random pixels, so "
                  "larger than photographs may give): "
                  + "; ".join(f"{r['dataset']} {r['geometry']}: μ = {r['mu']:.3g}, L = {r['L']:.3g}, α·L = "
                              f"{r['alpha_L']:.3g}" for r in measured)
                  + ". Gradient descent on the support loss contracts only where α·L < 2."]  # fmt: skip
    for experiment in data["experiments"]:
        lines += ["", *_experiment(experiment)]
    return lines


def _experiment(experiment: dict[str, Any]) -> list[str]:
    rows = []
    for r in experiment["rows"]:
        note = f"refused at B = {experiment['B']}; ran with task_chunk={r['task_chunk']}" if "task_chunk" in r else ""
        note = r.get("error", note) if r["exit"] != 0 else note
        peak = r.get("peak_bytes")
        gib = _number(peak / 2**30 if peak else None, "{:.1f}")
        rows.append([r["N"], _number(r.get("seconds_per_iteration"), "{:.2f}"), gib, _number(r.get("loss"), "{:.3g}"),
                     note])  # fmt: skip
    projected = experiment.get("projected_training_s")
    whole = (
        f"the whole sweep ({experiment['jobs']} jobs × {experiment['iterations']} iterations) would train for about "
        f"{projected / 3600:.1f} h on this machine (validation not counted)"
        if projected
        else "no projection: not every N ran"
    )
    return [
        f"`{experiment['experiment']}` (B = {experiment['B']}): {whole}.",
        "",
        *table(["N", "s/iteration", "peak GiB", "training loss", "note"], rows, [True, True, True, True, False]),
    ]


def _number(value: float | None, form: str) -> str:
    return "—" if value is None else form.format(value)
