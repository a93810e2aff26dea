"""Table 2's comparison with each algorithm at its own stepsizes (scripts/table2_runs.sh): ANIL and
MAML on the MAML sweep's settings, each at what the tuning grid chose for it, judged by the same
section as the untuned comparison (anil/analysis/reports/maml.py).

The runs take hours (MAML at N = 10 about 23 min a job on one thread) and are collected while they
run (`anil report reproduction --table2 DIR`), so the section reads finished runs only, at the N
where both algorithms have MIN_SEEDS of them, and says how far the runs have got.
"""

from __future__ import annotations

from anil.analysis.reports import maml, tuning
from anil.analysis.reports.sweeps import Row, Sweep, completed
from anil.analysis.thresholds import MIN_SEEDS

NAMES = {"anil": "table2-anil", "maml": "table2-maml"}  # docs/data/reproduction/<name>-{seeds,jobs}.csv
HEADING = "## ANIL against MAML, each at its own tuned stepsizes (Table 2)"


def _judged(anil: Sweep, maml_runs: Sweep) -> tuple[Sweep, Sweep] | None:
    """Both algorithms' finished runs at the N where each has MIN_SEEDS of them; None before two
    such N (Table 2's claim is about how the cost ratio moves with N)."""
    anil_done, maml_done = completed(anil, MIN_SEEDS), completed(maml_runs, MIN_SEEDS)
    shared = set(anil_done.jobs["N"]) & set(maml_done.jobs["N"])
    if len(shared) < 2:
        return None
    return tuple(  # type: ignore[return-value]
        Sweep(s.seeds[s.seeds["N"].isin(shared)], s.jobs[s.jobs["N"].isin(shared)], s.pace)
        for s in (anil_done, maml_done)
    )


def judgements(anil: Sweep, maml_runs: Sweep) -> list[Row]:
    judged = _judged(anil, maml_runs)
    return [] if judged is None else maml.judgements(*judged, NAMES["maml"], NAMES["anil"])


def _progress(sweep: Sweep) -> str:
    """Finished jobs per N, of those started."""
    done = sweep.jobs["status"] == "completed"
    return ", ".join(f"N = {n}: {int(done[part.index].sum())} of {len(part)}" for n, part in sweep.jobs.groupby("N"))


def section(anil: Sweep, maml_runs: Sweep, tuned: Sweep | None) -> list[str]:
    """The comparison so far: how far the runs have got, then maml.section on the finished ones."""
    judged = _judged(anil, maml_runs)
    lines = [
        HEADING,
        "",
        "`bash scripts/table2_runs.sh .venv/bin outputs/table2` runs ANIL and MAML on the MAML sweep's settings, "
        "each at the stepsizes the tuning grid chose for it, one job at a time and resumably; "
        "`anil report reproduction --table2 outputs/table2` collects what has finished. Finished jobs of those "
        f"started so far: ANIL {_progress(anil)}; MAML {_progress(maml_runs)}. Only finished runs are read, at "
        f"the N where both algorithms have {MIN_SEEDS} of them.",
        "",
    ]
    if judged is None:
        lines += [f"Fewer than two N have {MIN_SEEDS} finished runs of both algorithms yet: nothing is judged.", ""]
        chosen = [] if tuned is None else tuning.section(tuned, anil, maml_runs, (NAMES["anil"], NAMES["maml"]))
        return lines + chosen
    return lines + maml.section(*judged, NAMES["maml"], tuned, NAMES["anil"])
