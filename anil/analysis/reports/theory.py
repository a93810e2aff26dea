"""docs/theory.md from docs/data/theory.json: Proposition 1 checked numerically, the strongly convex
limit, and the smoothness measurements of `anil smoothness` against Propositions 2 and 3.

`collect` measures (the formula checks of anil/analysis/theory.py) and reads an `anil smoothness`
output folder into the JSON; `render` turns the JSON into Markdown. Every number and verdict in
the document is computed from the JSON.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from anil.analysis.reports import testbed
from anil.analysis.reports.formulas import limit_section, proposition_1_section
from anil.analysis.reports.markdown import generated_by, source_name, table
from anil.analysis.smoothness_summary import AGREEMENT, summarise
from anil.analysis.statistics import Verdict
from anil.analysis.testbed import bound_growth
from anil.config import TrainConfig

COMMAND = "anil report theory"
CONTRACTING = 2.0  # gradient descent with stepsize alpha contracts along every direction of H only if alpha*L < 2

TESTBED = "testbed.json"  # anil testbed's output, beside theory.json


def collect(smoothness: Path, figures: Path, init_curvature: list[Path] | None = None) -> dict[str, Any]:
    """Run the formula checks and read an `anil smoothness --out` folder; copy its figure into
    `figures`. `init_curvature`: `anil smoothness --curvature-only` folders (one per initialisation)."""
    from anil.analysis.theory import formula_checks  # measures with torch; rendering the document does not

    figures.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(smoothness / "smoothness.png", figures / "smoothness.png")
    data: dict[str, Any] = {
        "checks": formula_checks(),
        "smoothness": {
            "config": json.loads((smoothness / "config.json").read_text(encoding="utf-8")),
            "norms": pd.read_csv(smoothness / "norms.csv").to_dict("records"),
            "curvature": pd.read_csv(smoothness / "curvature.csv").to_dict("records"),
        },
    }
    if init_curvature:
        data["init_curvature"] = [
            {
                "config": json.loads((folder / "config.json").read_text(encoding="utf-8")),
                "curvature": pd.read_csv(folder / "curvature.csv").to_dict("records"),
            }
            for folder in init_curvature
        ]
    return data


def init_of(config: dict[str, Any]) -> str:
    """A run's initialisation; runs made before the option existed used PyTorch's defaults."""
    return str(config.get("init", TrainConfig.init))


def init_section(runs: list[dict[str, Any]]) -> list[str]:
    """alpha*L at the initialisation under each init: where the first inner steps stand."""
    rows = []
    for run in runs:
        config, curvature = run["config"], pd.DataFrame(run["curvature"])
        for geometry, part in curvature[curvature["iteration"] == 0].groupby("geometry"):
            low, high = part["alpha_L"].quantile([0.25, 0.75])
            rows.append([init_of(config), geometry, len(part), f"{part['mu'].median():.4g}",
                         f"{part['L'].median():.4g}", f"{part['alpha_L'].median():.3f} [{low:.3f}, {high:.3f}]",
                         f"{(part['alpha_L'] < CONTRACTING).mean():.0%}"])  # fmt: skip
    first = runs[0]["config"]
    return [
        "## α·L at initialisation under each initialisation",
        "",
        f"The inner loss's curvature at the untrained model (dataset={first['dataset']}, α = {first['alpha']}, "
        f"seed {first['seed']}, `anil smoothness --curvature-only --init INIT --points 1 --train-iterations 0 "
        f"--B {first['B']}`), per task: median μ and L, α·L as median [quartiles], and the share of tasks on "
        f"which gradient descent on the support loss contracts (α·L < {CONTRACTING:g}). `init=pytorch` keeps "
        "BatchNorm weights at 1; `init=authors` (the paper's code) draws them from U(0, 1), which shrinks the "
        "features and with them L.",
        "",
        *table(
            ["init", "geometry", "tasks", "μ", "L", "α·L", f"α·L < {CONTRACTING:g}"],
            rows,
            [False, False, True, True, True, True, True],
        ),
    ]


def _per_point(norms: pd.DataFrame, block: str) -> dict[str, pd.Series]:
    """Each (trajectory point, meta-batch)'s values of `block`, indexed by N."""
    keys = ["iteration", "batch"] if "batch" in norms else ["iteration"]
    points = {}
    for key, part in norms.groupby(keys):
        iteration, *batch = key if isinstance(key, tuple) else (key,)
        name = f"{int(str(iteration))}" + (f", batch {int(str(batch[0]))}" if batch else "")
        points[name] = part.set_index("N")[block].sort_index()
    return points


def _every(outcomes: list[Verdict]) -> Verdict:
    """One verdict from every point's: unanimous, or inconclusive."""
    if outcomes and all(o is outcomes[0] for o in outcomes):
        return outcomes[0]
    return Verdict.INCONCLUSIVE


def block_verdict(geometry: str, block: str, norms: pd.DataFrame, alpha_mu: float) -> tuple[Verdict, str]:
    """Judged in the bound's direction only, at every trajectory point: Propositions 2 and 3 are
    upper bounds, so a block that grows from the smallest to the largest N faster than its bound
    can (anil/analysis/testbed.py, `bound_growth`: ×N nonconvex; the fastest of the strongly
    convex bound's terms) disagrees, one that grows within it agrees, and one that shrinks is
    consistent (the bound is not tight). `alpha_mu`: αμ of the convex inner loss."""
    points = _per_point(norms, block)
    outcomes, said = [], []
    for iteration, values in points.items():
        grid, v = list(values.index), values.to_numpy()
        ratio, limit = v[-1] / v[0], bound_growth(geometry == "nonconvex", grid[0], grid[-1], alpha_mu)
        word = "faster than the bound" if ratio > limit else ("shrinks" if ratio < 1 else "within the bound")
        said.append(f"it. {iteration}: ×{ratio:.3g} from N={grid[0]} to {grid[-1]} (bound ≤ ×{limit:.3g}: {word})")
        outcomes.append(Verdict.DISAGREES if ratio > limit else Verdict.AGREES)
    return _every(outcomes), "; ".join(said)


def curvature_section(smoothness: dict[str, Any]) -> list[str]:
    curvature, config = pd.DataFrame(smoothness["curvature"]), smoothness["config"]
    alpha, grid = config["alpha"], config["N"]
    lines = [
        "## The inner loss's curvature: μ, L and the stepsize",
        "",
        "The smallest and largest eigenvalues μ and L of each task's inner-loss Hessian ∇²_w L_S(w, φ), at the "
        "meta-initialisation w of each probed point (Lanczos with full reorthogonalisation, "
        f"{int(curvature['lanczos_steps'].max())} steps), over the {curvature['task'].nunique()} tasks of the probed "
        "meta-batch: median [min, max].",
        "",
    ]
    rows = []
    for (geometry, iteration), part in curvature.groupby(["geometry", "iteration"]):

        def spread(column: str, part: pd.DataFrame = part) -> str:
            values = part[column]
            return f"{values.median():.4g} [{values.min():.4g}, {values.max():.4g}]"

        mu, big = part["mu"].median(), part["L"].median()
        # With μ < 0 the support loss curves downward somewhere: gradient descent does not contract
        # there whatever α·L is, so the column says so rather than reading α·L alone.
        contracts = (
            "no: μ < 0 (not convex)"
            if (part["mu"] < 0).any()
            else "yes"
            if (part["alpha_L"] < CONTRACTING).all()
            else "no"
            if (part["alpha_L"] >= CONTRACTING).all()
            else "some tasks"
        )
        prop2 = f"{mu / big**2:.3g}" if mu > 0 else "— (μ ≤ 0)"
        rows.append(
            [geometry, iteration, spread("mu"), spread("L"), spread("alpha_mu"), spread("alpha_L"), contracts, prop2]
        )
    header = ["geometry", "iteration", "μ", "L", "α·μ", "α·L", f"inner GD contracts (μ > 0 and α·L < {CONTRACTING:g})"]
    lines += table([*header, "μ/L² (Prop. 2's α)"], rows, [False, True, True, True, True, True, False, True])
    lines += [
        "",
        f"The runs use init={init_of(config)} and α = {alpha} at every N of the grid ({', '.join(map(str, grid))}). "
        "Proposition 2 assumes "
        "α = μ/L² (the last column); Proposition 3 assumes α < c/N for a constant c it does not give; a gradient "
        "step contracts along every direction of the inner Hessian only where α·L < 2.",
    ]
    return lines


def _stop(config: dict[str, Any], norms: pd.DataFrame) -> str:
    """How the probe's Lanczos stopped: on a residual bound (with its meta-batches and starts), or,
    in probes from before it had one, on the step-to-step change of its estimate."""
    if config.get("stop") != "residual":
        return f"stops at a relative change below {config['tolerance']:g} (one start, no residual bound)"
    residuals = norms[[c for c in norms.columns.astype(str) if c.startswith("residual_")]].to_numpy()
    spreads = norms[[c for c in norms.columns.astype(str) if c.startswith("spread_")]].to_numpy()
    return (
        f"stops once the residual ‖Av − θv‖ is at most {config['tolerance']:g}·|θ| (largest relative residual "
        f"{residuals.max():.1e}), on {config['batches']} meta-batches per point, from {config['starts']} starts "
        f"(largest relative spread between starts {spreads.max():.1e})"
    )


def _minutes(config: dict[str, Any]) -> str:
    """The probe's run time: a resumed probe's last invocation understates it, so the Lanczos time
    summed over every invocation is given where recorded."""
    if "probe_s" not in config:
        return f"{config['wall_s'] / 60:.0f} min"
    return f"{config['probe_s'] / 60:.0f} min of Lanczos over all its invocations"


def smoothness_section(smoothness: dict[str, Any]) -> list[str]:
    norms, config = pd.DataFrame(smoothness["norms"]), smoothness["config"]
    summary = summarise(norms)
    grid = sorted(summary["N"].unique())
    command = (
        f"anil smoothness --dataset {config['dataset']} --init {init_of(config)} --N {' '.join(map(str, config['N']))} "
        f"--points {config['points']} --train-iterations {config['train_iterations']} "
        f"--tolerance {config['tolerance']} --max-iterations {config['max_iterations']} --B {config['B']} "
        f"--alpha {config['alpha']} --lam {config['lam']}"
        + (f" --batches {config['batches']} --starts {config['starts']}" if "batches" in config else "")
        + (f" --dtype {config['dtype']}" if "dtype" in config else "")
        + f" --out {config['out']}"
    )
    mixed = (norms["L_wphi"] - norms["L_phiw"]).abs() / norms[["L_wphi", "L_phiw"]].max(axis=1)
    converged = norms[[c for c in norms if c.startswith("converged_")]].to_numpy()
    iterations = norms[[c for c in norms if c.startswith("iterations_")]].to_numpy()
    lines = [
        "## Propositions 2 and 3: the meta-objective's smoothness against N, measured",
        "",
        f"Command: `{command}` (trajectory: N = {config['trajectory_N']}, points at iterations 0 … "
        f"{config['train_iterations']}; {_minutes(config)}, torch {config['torch']}, "
        f"{config['threads']} threads, {config['date']}).",
        "",
        "Each value is the operator norm of a block of the meta-loss's Hessian on a fixed meta-batch of "
        f"{config['B']} tasks ({config.get('batches', 1)} per point), {config.get('dtype', 'float64')}: "
        "L_ww = ‖∂²L/∂w²‖, "
        "L_wphi = ‖∂²L/∂φ∂w‖ (Lanczos on MᵀM), L_phiw = the "
        "same block from the φ side (on MMᵀ), L_phiphi = ‖∂²L/∂φ²‖: the Lipschitz constants of ∂L/∂w and ∂L/∂φ "
        "that Propositions 2 and 3 bound. Lanczos on Hessian-vector products (double backward through the "
        f"unrolled inner loop) {_stop(config, norms)} "
        f"({int(converged.sum())} of {converged.size} runs converged, {int(iterations.max())} steps at most). "
        f"The two estimates of the mixed block differ by at most {100 * mixed.max():.2f}% "
        f"({'within' if mixed.max() <= AGREEMENT else 'MORE than'} the {100 * AGREEMENT:g}% they should agree to). "
        "Median over the probed points, [min, max]:",
        "",
        "![smoothness](figures/smoothness.png)",
        "",
    ]
    header = ["geometry", "block", *(f"N={n}" for n in grid), "verdict", "per point"]
    rows, verdicts = [], []
    for (geometry, block), part in summary.groupby(["geometry", "block"], sort=False):
        part = part.sort_values("N")
        cells = [f"{m:.3g} [{lo:.3g}, {hi:.3g}]" for m, lo, hi in zip(part["median"], part["min"], part["max"])]
        alpha_mu = config["alpha"] * config["lam"]  # μ = λ for the convex head (the curvature table measures it)
        verdict, said = block_verdict(str(geometry), str(block), norms[norms["geometry"] == geometry], alpha_mu)
        verdicts.append(verdict.value)
        rows.append([geometry, block, *cells, f"**{verdict.value}**", said])
    lines += table(header, rows, [False, False, *[True] * len(grid), False, False])
    counted = ", ".join(f"{verdicts.count(v)} × {v}" for v in dict.fromkeys(verdicts))
    lines += [
        "",
        f"Summary: {counted} (of {len(verdicts)} geometry × block rows). The rule per row (anil/analysis/reports/"
        "theory.py, `block_verdict`) reads the propositions as the upper bounds they are: a block that grows from "
        "the smallest to the largest N faster than its bound can (×N under Proposition 3; under Proposition 2 the "
        "fastest of its terms (1 − αμ)^N, N(1 − αμ)^N, (1 − αμ)^{N/2} and a constant) disagrees, one that grows "
        "within it agrees, and one that shrinks is consistent (the bound is not tight), counted as agrees. A "
        "verdict holds only when every probed point (and meta-batch) gives it; otherwise it is inconclusive.",
    ]
    return lines


def render(data: dict[str, Any], source: str) -> str:
    checks = data["checks"]
    lines = [
        "# The theory, checked: Proposition 1 exactly, Propositions 2 and 3 measured, Theorems 1 and 2 on a testbed",
        "",
        generated_by(COMMAND, [source])
        + f" The formula checks ran on {checks['date']} (torch {checks['torch']}, {checks['wall_s']:.0f} s).",
        "",
        *proposition_1_section(checks),
        "",
        *limit_section(checks),
        "",
        *curvature_section(data["smoothness"]),
        "",
        *(init_section(data["init_curvature"]) + [""] if data.get("init_curvature") else []),
        *smoothness_section(data["smoothness"]),
    ]
    return "\n".join(lines) + "\n"


def write(data_path: Path, doc_path: Path) -> Path:
    """docs/theory.md from theory.json, and the testbed's section from testbed.json beside it when
    `anil testbed` has written one."""
    data = json.loads(data_path.read_text(encoding="utf-8"))
    text = render(data, source_name(data_path, doc_path))
    bed = data_path.with_name(TESTBED)
    if bed.exists():
        record = json.loads(bed.read_text(encoding="utf-8"))
        text += "\n" + "\n".join(testbed.section(record, source_name(bed, doc_path))) + "\n"
    doc_path.write_text(text, encoding="utf-8")
    return doc_path
