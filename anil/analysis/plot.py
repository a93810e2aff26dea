"""`anil plot SWEEP_DIR [...]`: the paper's convergence figures from one or more sweeps.

Each job is read back from its own files: `metrics.csv` for the curve and `.hydra/config.yaml`
for what it ran (never the folder name). Per (dataset, geometry), two figures, PNG and PDF:
- `<dataset>_<geometry>`: training loss against meta-iterations (left) and against training
  time (right), one curve per N (and stepsize schedule), the mean over seeds with the quartiles
  over seeds as a band (`--band minmax`: the min-max range; `none`: no band); the legend marks
  curves with runs that diverged or whose loss jumped (anil/analysis/runs.py: loss_jumped);
  the time panel is marked when the jobs may have shared a machine (anil/analysis/overlap.py);
- `<dataset>_<geometry>_gradnorms`: the squared norms ||dL/dw||^2 (left) and ||dL/dphi||^2
  (right) of each iteration's mini-batch meta-gradient, against meta-iterations.
`curves.csv` holds every plotted number; `describe` says in one sentence per panel what it shows.
Jobs still running are plotted up to their last complete row; jobs without metrics are skipped
with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from anil.analysis.overlap import Occupancy  # noqa: E402
from anil.analysis.runs import JUMP  # noqa: E402
from anil.run.metrics import OBJECTIVE_METRICS  # noqa: E402

log = logging.getLogger(__name__)

FORMATS = ("png", "pdf")


def draw(
    table: pd.DataFrame,
    out_dir: Path,
    smooth: int,
    band: str,
    formats: tuple[str, ...] = FORMATS,
    timing: Occupancy | None = None,
) -> list[Path]:
    """Per (dataset, geometry): the loss figure and the gradient-norm figure, in each of `formats`.
    `timing`: whether the jobs shared a machine; the time panel says so when they may have."""
    written = []
    for (dataset, geometry), panel in table.groupby(["dataset", "geometry"]):
        stem = out_dir / f"{dataset}_{geometry}"
        title = f"ANIL, {geometry} inner loop, {dataset}"
        figure = _loss_figure(panel, smooth, band, title)
        if timing is not None and not timing.trusted:  # the time panel is not a fair comparison between N
            figure.axes[1].set_title(f"not comparable: {timing.describe()}", color="tab:red", fontsize="small")
        written += _save(figure, stem, formats)
        written += _save(_grad_norm_figure(panel, smooth, title), stem.with_name(stem.name + "_gradnorms"), formats)
    return written


def _loss_figure(panel: pd.DataFrame, smooth: int, band: str, title: str) -> Figure:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for curve, style in _curves(panel):
        mean = _smoothed(curve["loss"], smooth)
        low, high = _band(curve, band, smooth, mean)
        for axis, x in zip(axes, (curve["iteration"], curve["time"])):
            axis.plot(x, mean, **style)
            if low is not None:
                axis.fill_between(x, low, high, color=style["color"], alpha=0.15, linewidth=0)
    _label(axes, ("meta-iteration", "training time (s, evaluation excluded)"), "training loss", title)
    spread = {"quartiles": "quartiles over seeds", "minmax": "min–max over seeds", "none": "no band"}[band]
    axes[0].legend(title=f"mean, {spread}", fontsize="small")
    return figure


def _grad_norm_figure(panel: pd.DataFrame, smooth: int, title: str) -> Figure:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    full = False
    for curve, style in _curves(panel):
        for axis, column, objective in zip(axes, ("sq_grad_norm_w", "sq_grad_norm_phi"), OBJECTIVE_METRICS):
            axis.plot(curve["iteration"], _smoothed(curve[column], smooth), alpha=0.5, **style)
            if objective in curve and curve[objective].notna().any():  # the theorems' quantity, where measured
                points = curve.dropna(subset=[objective])
                axis.plot(points["iteration"], points[objective], "o", markersize=4, color=style["color"])
                full = True
    _label(axes, ("meta-iteration", "meta-iteration"), None, title)
    axes[0].set_ylabel("‖∂L/∂w‖² (head)")
    axes[1].set_ylabel("‖∂L/∂φ‖² (body)")
    legend = "lines: the iteration's mini-batch; dots: the full objective" if full else "the iteration's mini-batch"
    axes[0].legend(title=f"mean over seeds; {legend}", fontsize="small", title_fontsize="small")
    return figure


def _curves(panel: pd.DataFrame) -> Iterator[tuple[pd.DataFrame, dict[str, Any]]]:
    """Each curve of a panel with its line style: colour by N, dashed for alpha / N."""
    colours = plt.get_cmap("viridis")
    sizes = sorted(panel["N"].unique())
    several_steps = panel[panel["alpha_schedule"] != "inverse_n"]["alpha"].nunique() > 1
    for (schedule, n, alpha), curve in panel.groupby(["alpha_schedule", "N", "alpha"]):
        diverged, runs = int(curve["diverged_runs"].iloc[0]), int(curve["runs"].iloc[0])
        label = f"N={n}" + (" α/N" if schedule == "inverse_n" else f" α={alpha:g}" if several_steps else "")
        label += f" (diverged {diverged}/{runs})" if diverged else ""
        jumped = int(curve["jumped_runs"].iloc[0]) if "jumped_runs" in curve else 0
        label += f" (loss jumped ×{JUMP:g} in {jumped}/{runs})" if jumped else ""
        colour = colours(sizes.index(n) / max(len(sizes) - 1, 1) * 0.9)
        yield curve, {"label": label, "color": colour, "linestyle": "--" if schedule == "inverse_n" else "-"}


def _smoothed(series: pd.Series, window: int) -> pd.Series:
    return series.rolling(window, min_periods=1).mean() if window > 1 else series


def _band(curve: pd.DataFrame, band: str, smooth: int, mean: pd.Series) -> tuple[pd.Series | None, pd.Series | None]:
    if band == "none":
        return None, None
    if band == "quartiles":  # quantiles over seeds: on a log axis a band can never leave the data
        return _smoothed(curve["loss_q25"], smooth), _smoothed(curve["loss_q75"], smooth)
    return _smoothed(curve["loss_min"], smooth), _smoothed(curve["loss_max"], smooth)


def _label(axes: Sequence[Axes], xlabels: Sequence[str], ylabel: str | None, title: str) -> None:
    for axis, xlabel in zip(axes, xlabels):
        axis.set_xlabel(xlabel)
        if ylabel:
            axis.set_ylabel(ylabel)
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].figure.suptitle(title)


def _save(figure: Figure, stem: Path, formats: tuple[str, ...]) -> list[Path]:
    paths = [stem.with_suffix(f".{fmt}") for fmt in formats]
    for path in paths:
        figure.savefig(path, dpi=150)
    plt.close(figure)
    return paths


def describe(table: pd.DataFrame, last: int = 10) -> list[str]:
    """One sentence per figure panel, computed from curves.csv's table: the final training loss per
    N (mean over seeds of the last `last` logged iterations), where it is lowest and highest, and
    the curves marked as diverged or jumped."""
    lines = []
    for (dataset, geometry, schedule), panel in table.groupby(["dataset", "geometry", "alpha_schedule"]):
        finals: dict[int, float] = {}
        for n, curve in panel.groupby("N"):
            finals[int(str(n))] = float(curve.sort_values("iteration").tail(last)["loss"].mean())
        ranked = sorted(finals, key=lambda n: finals[n])
        per_n = ", ".join(f"N={n} {finals[n]:.3g}" for n in sorted(finals))
        line = f"{dataset} {geometry} ({schedule}): final training loss {per_n}"
        if len(ranked) > 1:
            line += f"; lowest at N={ranked[0]}, highest at N={ranked[-1]}"
        runs = panel.drop_duplicates("N")
        marked = [
            f"N={int(r.N)} diverged in {int(r.diverged_runs)}/{int(r.runs)}"
            for r in runs.itertuples()
            if r.diverged_runs
        ]
        marked += [
            f"N={int(r.N)}'s loss jumped in {int(r.jumped_runs)}/{int(r.runs)}"
            for r in runs.itertuples()
            if r.jumped_runs
        ]
        lines.append(line + (f" ({'; '.join(marked)})" if marked else "") + ".")
    return lines
