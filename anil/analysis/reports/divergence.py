"""The N = 30 divergence search of docs/reproduction.md (Section 4.2: with a constant inner
stepsize, N = 30 diverges on FC100; Proposition 3: α of order 1/N keeps the nonconvex inner loop
stable).

The search runs the nonconvex inner loop at one large N over a grid of base stepsizes, each used
as a constant α and as α/N (conf/experiment/divergence_*.yaml), and the inner loss's curvature at
initialisation is measured on the same dataset (`anil smoothness --curvature-only`), so that every
stepsize is also stated as α·L: gradient descent on a loss of curvature L overshoots once α·L > 2.
`collect` reads both into docs/data/reproduction/; `Search` judges the two stability claims and
writes the section.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anil.analysis import claims
from anil.analysis.reports.jobs import job_row, tally
from anil.analysis.reports.markdown import table
from anil.analysis.runs import find_jobs

JOBS, CURVATURE, CURVATURE_CONFIG = "divergence-jobs.csv", "divergence-curvature.csv", "divergence-curvature.json"
PAPER_ALPHA = 0.1  # the constant inner stepsize of the paper's experiments (Section 4)


def collect(sweep: Path, curvature: Path, data_dir: Path) -> list[Path]:
    """Read a finished divergence sweep and an `anil smoothness --curvature-only` folder into `data_dir`."""
    jobs, skipped = find_jobs([sweep])
    if skipped or not jobs:
        raise ValueError(f"{sweep}: {len(jobs)} readable jobs; skipped {'; '.join(skipped) or 'none'}")
    for name in ("curvature.csv", "config.json"):
        if not (curvature / name).is_file():
            raise ValueError(f"{curvature / name} is missing: run anil smoothness --curvature-only --out {curvature}")
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = [data_dir / JOBS, data_dir / CURVATURE, data_dir / CURVATURE_CONFIG]
    pd.DataFrame([job_row(job) for job in jobs]).to_csv(paths[0], index=False, float_format="%.7g")
    shutil.copyfile(curvature / "curvature.csv", paths[1])
    shutil.copyfile(curvature / "config.json", paths[2])
    return paths


def read(data_dir: Path) -> Search | None:
    """The search in `data_dir`, or None where none was collected."""
    paths = [data_dir / JOBS, data_dir / CURVATURE, data_dir / CURVATURE_CONFIG]
    if not paths[0].exists():
        return None
    config = json.loads(paths[2].read_text(encoding="utf-8"))
    return Search(pd.read_csv(paths[0]), pd.read_csv(paths[1]), config, paths)


@dataclass(frozen=True)
class Search:
    jobs: pd.DataFrame  # divergence-jobs.csv: one row per (base α, schedule, seed)
    curvature: pd.DataFrame  # per task: geometry, mu, L of the inner loss at initialisation
    curvature_config: dict[str, Any]  # how the curvature was measured
    paths: list[Path] = field(default_factory=list)

    @property
    def dataset(self) -> str:
        return str(self.jobs["dataset"].iloc[0])

    @property
    def n(self) -> int:
        return int(self.jobs["N"].max())

    @property
    def sweep_dir(self) -> str:
        return f"outputs/sweeps/divergence_{self.dataset}"

    @property
    def curvature_dir(self) -> str:
        return f"outputs/smoothness/{self.dataset}_init_{self.curvature_config['init']}"

    def _l_per_task(self) -> np.ndarray:
        """The inner loss's largest curvature L at initialisation, one per probed task of the search's geometry."""
        geometry = str(self.jobs["geometry"].iloc[0])
        return self.curvature.loc[self.curvature["geometry"] == geometry, "L"].to_numpy(dtype=float)

    def curvature_l(self) -> tuple[float, float, float]:
        """L at initialisation over the probed tasks: median, quartiles."""
        low, middle, high = np.quantile(self._l_per_task(), [0.25, 0.5, 0.75])
        return float(middle), float(low), float(high)

    def counts(self, schedule: str) -> dict[float, tuple[int, int]]:
        """Base α -> (diverged runs, runs) under `schedule`."""
        part = self.jobs[self.jobs["alpha_schedule"] == schedule]
        return {float(a): counted for a, counted in tally(part, "alpha_base", part["diverged"]).items()}

    def stalled(self, schedule: str) -> dict[float, tuple[int, int]]:
        """Base α -> (runs under `schedule` that ended at or above chance, ln ways, without having
        diverged; runs)."""
        part = self.jobs[self.jobs["alpha_schedule"] == schedule]
        above = (part["final_loss"] >= math.log(self.ways)) & ~part["diverged"].astype(bool)
        return {float(a): counted for a, counted in tally(part, "alpha_base", above).items()}

    def smallest_diverging(self) -> float | None:
        """The smallest base α at which most constant-α runs diverged."""
        found = [a for a, (d, r) in sorted(self.counts("constant").items()) if d >= claims.DIVERGING_SHARE * r]
        return found[0] if found else None

    def judgements(self) -> list[tuple[claims.Judgement, str]]:
        constant, inverse = self.counts("constant"), self.counts("inverse_n")
        at_paper = constant.get(PAPER_ALPHA, (0, 0))
        return [
            (claims.divergence_at_30(self.dataset, *at_paper, n=self.n), f"diverged runs at α = {PAPER_ALPHA:g}"),
            (claims.inverse_n(constant, inverse, key="base α"), f"diverged runs at N = {self.n}"),
            (
                claims.inverse_n(self.failed("constant"), self.failed("inverse_n"), key="base α", failure="failed"),
                f"failed runs at N = {self.n} (diverged, or ended at or above the chance loss)",
            ),
        ]

    def failed(self, schedule: str) -> dict[float, tuple[int, int]]:
        """Base α -> (runs under `schedule` that diverged or stalled at chance, runs)."""
        diverged, stalled = self.counts(schedule), self.stalled(schedule)
        return {a: (d + stalled[a][0], r) for a, (d, r) in diverged.items()}

    def none_diverged(self, curvature: float) -> str:
        """What a search without a constant-α blow-up says: where its largest α ended."""
        top = max(self.jobs.loc[self.jobs["alpha_schedule"] == "constant", "alpha_base"])
        stalled, runs = self.stalled("constant").get(top, (0, 0))
        said = f"No base α of the grid made most constant-α runs diverge at N = {self.n}"
        if runs and stalled == runs:
            return (
                f"{said}. At the largest, {top:g} (α·L = {top * curvature:.3g} at initialisation), every run "
                "stopped at or above the chance loss without blowing up: here a too-large constant α makes "
                "training collapse, not diverge, and a larger α would not change that."
            )
        return f"{said}: the grid should go higher."

    def commands(self) -> list[str]:
        c = self.curvature_config
        return [
            f"anil train -m experiment=divergence_{self.dataset} hydra.sweep.dir={self.sweep_dir}",
            f"anil smoothness --dataset {c['dataset']} --curvature-only --init {c['init']} --points {c['points']} "
            f"--train-iterations {c['train_iterations']} --B {c['B']} --N {' '.join(map(str, c['N']))} "
            f"--out {self.curvature_dir}",
        ]

    @property
    def ways(self) -> int:
        return int(self.jobs["ways"].iloc[0])

    def section(self) -> list[str]:
        middle, low, high = self.curvature_l()
        constant, inverse = self.counts("constant"), self.counts("inverse_n")
        cells = self.jobs.groupby(["alpha_schedule", "alpha_base"])
        last, final = cells["last_iteration"].min(), cells["final_loss"]
        rows = []
        for base in sorted(set(constant) | set(inverse)):
            row = [f"{base:g}"]
            for schedule, counts, step in (("constant", constant, base), ("inverse_n", inverse, base / self.n)):
                if base not in counts:
                    row += ["—", "—", "—", "—"]
                    continue
                d, r = counts[base]
                row += [f"{step:.3g}", f"{step * middle:.3g} [{step * low:.3g}, {step * high:.3g}]", f"{d}/{r}"]
                row[-1] += f" (first stop: it. {int(last[(schedule, base)])})" if d else ""
                losses = final.get_group((schedule, base))
                row.append(f"{losses.mean():.3g} [{losses.min():.3g}–{losses.max():.3g}]")
            rows.append(row)
        smallest = self.smallest_diverging()
        found = (
            f"The smallest base α at which most constant-α runs diverged is {smallest:g}, "
            f"α·L = {smallest * middle:.3g} at initialisation; α/N at that base ({smallest / self.n:.3g}) "
            f"diverged in {inverse.get(smallest, (0, 0))[0]} of {inverse.get(smallest, (0, 0))[1]} runs."
            if smallest is not None
            else self.none_diverged(middle)
        )
        stalled = "; ".join(
            f"{'constant α' if schedule == 'constant' else 'α/N'}: "
            + (", ".join(f"base α={a:g}: {k}/{r}" for a, (k, r) in counts.items() if k) or "none")
            for schedule, counts in (("constant", self.stalled("constant")), ("inverse_n", self.stalled("inverse_n")))
        )
        header = ["base α", "constant α", "α·L", "diverged", "final loss", "α/N", "(α/N)·L", "diverged", "final loss"]
        return [
            f"## Divergence at N = {self.n} and α of order 1/N",
            "",
            f"The nonconvex inner loop at N = {self.n} on dataset={self.dataset}, {self.jobs['iterations'].iloc[0]} "
            f"meta-iterations, {self.jobs['seed'].nunique()} seeds per cell. L is the inner loss's largest curvature "
            f"at initialisation (median [quartiles] over {len(self._l_per_task())} tasks, "
            f"init={self.curvature_config['init']}); "
            "gradient descent on such a loss overshoots once α·L > 2, and L changes as the body trains, so α·L at "
            "initialisation explains a divergence only roughly. A run diverged when its loss became non-finite or "
            f"exceeded `blowup_loss`; the final training loss (mean [min–max] over seeds) shows runs that stopped "
            f"learning without blowing up: chance is ln {self.ways} = {math.log(self.ways):.3g}.",
            "",
            *table(header, rows, [True] * len(header)),
            "",
            found,
            f"Runs that ended at or above the chance loss without blowing up (they stopped learning): {stalled}.",
            "",
        ]
