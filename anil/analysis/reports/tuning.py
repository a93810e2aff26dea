"""Each algorithm at its own stepsizes before Table 2's comparison: the tuning grid
(conf/experiment/maml_tuning_<dataset>.yaml, α × β for ANIL and for MAML, on a seed kept apart from
the judged ones), the setting each algorithm does best with, and whether the judged runs used it.

A setting's score is its training loss averaged over the last TUNING_WINDOW iterations (the loss
the comparison's targets are set on, less noisy than one iteration); a run that diverged is never
chosen. Torch-free.
"""

from __future__ import annotations

import math

import pandas as pd

from anil.analysis.reports.markdown import table
from anil.analysis.reports.sweeps import Sweep
from anil.analysis.thresholds import TUNING_WINDOW

NAME = "maml-tuning"  # docs/data/reproduction/maml-tuning-{seeds,jobs}.csv
STEPSIZES = ["alpha", "beta_w", "beta_phi"]
LABELS = {"anil": "ANIL", "maml": "MAML"}


def ranked(tuning: Sweep) -> pd.DataFrame:
    """One row per (algorithm, α, β_w, β_φ): its score, whether it diverged, and the chosen one."""
    last = tuning.seeds.groupby("job")["iteration"].transform("max")
    tail = tuning.seeds[tuning.seeds["iteration"] > last - TUNING_WINDOW]
    score = tail.groupby("job")["loss"].mean().rename("loss")
    columns = ["algorithm", *STEPSIZES, "diverged", "status", "N", "seed", "iterations", "dataset"]
    rows = tuning.jobs.set_index("job")[columns].join(score).reset_index()
    rows["diverged"] = rows["diverged"].astype(bool) | (rows["status"] == "diverged")
    rows["finished"] = rows["diverged"] | (rows["status"] == "completed")  # a stopped or running job is not scored
    rows["loss"] = rows["loss"].where(rows["finished"] & ~rows["diverged"] & rows["loss"].map(math.isfinite))
    rows["chosen"] = False
    for _, part in rows.groupby("algorithm"):
        if part["loss"].notna().any():
            rows.loc[part["loss"].idxmin(), "chosen"] = True
    return rows.sort_values(["algorithm", *STEPSIZES], ignore_index=True)


def _score(row: pd.Series) -> str:
    if not row["finished"]:
        return "not finished"
    return "diverged" if row["diverged"] else f"{row['loss']:.4g}"


def choice(rows: pd.DataFrame, algorithm: str) -> dict[str, float] | None:
    picked = rows[(rows["algorithm"] == algorithm) & rows["chosen"]]
    return None if picked.empty else {k: float(picked[k].iloc[0]) for k in STEPSIZES}


def _on_edge(rows: pd.DataFrame, algorithm: str) -> list[tuple[str, bool]]:
    """(stepsize, at the largest end) for each of the algorithm's chosen stepsizes that is the
    smallest or largest its grid tried."""
    chosen, tried = choice(rows, algorithm), rows[rows["algorithm"] == algorithm]
    if chosen is None:
        return []
    ends = []
    for key in ("alpha", "beta_w"):
        values = sorted(float(v) for v in tried[key].unique())
        if len(values) > 1 and chosen[key] in (values[0], values[-1]):
            ends.append((key, chosen[key] == values[-1]))
    return ends


def edges(rows: pd.DataFrame, algorithm: str) -> list[str]:
    """Which of the algorithm's chosen stepsizes is the smallest or largest its grid tried: the
    best setting may then lie beyond the grid."""
    chosen = choice(rows, algorithm)
    if chosen is None:
        return []
    return [
        f"{'α' if key == 'alpha' else 'β'} = {chosen[key]:g}, the {'largest' if largest else 'smallest'} tried"
        for key, largest in _on_edge(rows, algorithm)
    ]


def beyond(rows: pd.DataFrame, algorithm: str) -> list[tuple[float, float]]:
    """(α, β) one step past each edge of the grid that the algorithm's choice lies on, along that
    stepsize with the other held at the choice, where not tried yet: the grid grows there until the
    choice lies inside it (a diverged or worse setting past it bounds it). Steps follow the grid's
    1-3-10 ladder."""
    chosen, tried = choice(rows, algorithm), rows[rows["algorithm"] == algorithm]
    if chosen is None:
        return []
    past = []
    for key, largest in _on_edge(rows, algorithm):
        step = _ladder(chosen[key], up=largest)
        pair = (step, chosen["beta_w"]) if key == "alpha" else (chosen["alpha"], step)
        if not ((tried["alpha"] == pair[0]) & (tried["beta_w"] == pair[1])).any():
            past.append(pair)
    return past


def _ladder(value: float, up: bool) -> float:
    """The next stepsize on the 1-3-10 ladder above or below `value` (0.01 -> 0.03 -> 0.1)."""
    exponent = math.floor(math.log10(value) + 1e-9)
    low_rung = round(value / 10**exponent) < 3  # value is 1eE (else 3eE)
    if up:
        return float(f"{(3 * 10**exponent if low_rung else 10 ** (exponent + 1)):.1g}")
    return float(f"{(3 * 10 ** (exponent - 1) if low_rung else 10**exponent):.1g}")


def overrides(chosen: dict[str, float]) -> str:
    """The `anil train` overrides that run at `chosen`."""
    return f"alpha={chosen['alpha']:g} optim.beta_w={chosen['beta_w']:g} optim.beta_phi={chosen['beta_phi']:g}"


def _used(jobs: pd.DataFrame, rows: pd.DataFrame, algorithm: str, experiment: str) -> str:
    """Whether the judged runs (`jobs`) of one algorithm ran at its chosen stepsizes."""
    ran = {k: sorted(float(v) for v in jobs[k].unique()) for k in STEPSIZES}
    who, chosen = LABELS[algorithm], choice(rows, algorithm)
    its = "its choice so far" if not rows["finished"].all() else "its chosen stepsizes"
    if chosen is None:
        tried = int((rows["algorithm"] == algorithm).sum())
        return f"{who}: {'every tuning run diverged' if tried else 'no tuning runs yet'}, no stepsize chosen."
    if all(values == [chosen[k]] for k, values in ran.items()):
        return f"{who}'s judged runs (`{experiment}`) ran at {its} ({overrides(chosen)})."
    said = ", ".join(f"{k} {'/'.join(f'{v:g}' for v in values)}" for k, values in ran.items())
    return (
        f"{who}'s judged runs (`{experiment}`) ran at {said}, **not** at {its}: the comparison below "
        f"does not yet give {who} its best setting (rerun them with `{overrides(chosen)}`)."
    )


def section(tuning: Sweep, anil: Sweep, maml: Sweep, experiments: tuple[str, str]) -> list[str]:
    """The tuning table and, per algorithm, whether its judged runs used its choice."""
    rows = ranked(tuning)
    first, count = rows.iloc[0], f"{len(rows)} job{'s' if len(rows) != 1 else ''}"
    body = [
        [LABELS.get(str(r["algorithm"]), str(r["algorithm"])), f"{r['alpha']:g}", f"{r['beta_w']:g}",
         f"{r['beta_phi']:g}", _score(r),
         "**chosen**" if r["chosen"] else ""]
        for _, r in rows.iterrows()
    ]  # fmt: skip
    compared = anil.jobs[
        (anil.jobs["alpha_schedule"] == maml.jobs["alpha_schedule"].iloc[0]) & anil.jobs["N"].isin(maml.jobs["N"])
    ]  # the ANIL runs the comparison pairs with MAML's
    judged = [(compared, "anil", experiments[0]), (maml.jobs, "maml", experiments[1])]
    return [
        "### Stepsizes: each algorithm tuned on its own",
        "",
        f"`maml_tuning_{first['dataset']}` grid ({count}: inner α × outer β for each algorithm, at N = "
        f"{int(first['N'])}, seed {int(first['seed'])}, kept apart from the judged seeds, "
        f"{int(first['iterations'])} meta-iterations; {tuning.jobs['wall_time_s'].sum() / 60:.1f} min of job time). "
        f"Score: the training loss averaged over the last {TUNING_WINDOW} iterations; the lowest is chosen"
        + (
            "."
            if rows["finished"].all()
            else f", so far: {int(rows['finished'].sum())} of the jobs listed finished "
            "(`bash scripts/tuning_runs.sh` goes on where it stopped)."
        ),
        "",
        *table(
            ["algorithm", "α", "β_w", "β_φ", f"loss, last {TUNING_WINDOW} iterations", ""],
            body,
            [False, True, True, True, True, False],
        ),  # fmt: skip
        "",
        *(f"- {_used(jobs, rows, who, name)}" for jobs, who, name in judged),
        *(
            f"- {LABELS[who]}'s choice lies at the grid's edge ({'; '.join(edges(rows, who))}): a better setting may "
            "lie beyond it; `bash scripts/tuning_runs.sh` steps past it until the choice lies inside."
            for _, who, _ in judged
            if edges(rows, who)
        ),
        "",
    ]
