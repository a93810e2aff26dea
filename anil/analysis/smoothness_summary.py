"""Reading and drawing what the smoothness probe measured (anil/analysis/smoothness.py): the block
names, the summary over points, the N-dependence Propositions 2-3 predict, and the figure.
Torch-free, so that `anil report theory` reads the probe's files without it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from anil.geometry import Geometry  # noqa: E402

BLOCKS = ("L_ww", "L_wphi", "L_phiw", "L_phiphi")
AGREEMENT = 0.02  # the two estimates of the mixed block (from w and from phi) should agree this closely


def summarise(samples: pd.DataFrame) -> pd.DataFrame:
    """Median and quartiles of each block per (geometry, N) over the points (and directions)."""
    ids = [c for c in ("geometry", "N", "iteration", "direction") if c in samples]
    long = samples.melt(id_vars=ids, value_vars=list(BLOCKS), var_name="block")
    grouped = long.groupby(["geometry", "block", "N"])["value"]
    return pd.DataFrame(
        {
            "median": grouped.median(),
            "q25": grouped.quantile(0.25),
            "q75": grouped.quantile(0.75),
            "min": grouped.min(),
            "max": grouped.max(),
            "samples": grouped.size(),
        }
    ).reset_index()


def predicted(geometry: str, block: str, grid: list[int], alpha: float, lam: float) -> list[float] | None:
    """The N-dependence Propositions 2 (convex, mu = lam: the guaranteed strong convexity) and 3 predict,
    up to a constant; None where the bound does not depend on N."""
    decay = 1 - alpha * lam
    shapes = {
        Geometry.convex: {
            "L_ww": lambda n: decay**n,
            "L_wphi": lambda n: n * decay**n,
            "L_phiw": lambda n: decay ** (n / 2),
        },
        Geometry.nonconvex: {b: (lambda n: float(n)) for b in BLOCKS},
    }
    shape = shapes[Geometry(geometry)].get(block)
    return None if shape is None else [shape(n) for n in grid]


def draw(summary: pd.DataFrame, out: Path, alpha: float, lam: float) -> list[Path]:
    """smoothness.png/.pdf: each block's median and quartiles against N, per geometry."""
    geometries = list(summary["geometry"].unique())
    figure, axes = plt.subplots(
        1, len(geometries), figsize=(5.5 * len(geometries), 4.2), constrained_layout=True, squeeze=False
    )
    colours = {block: plt.get_cmap("tab10")(i) for i, block in enumerate(BLOCKS)}
    for axis, geometry in zip(axes[0], geometries):
        for block, part in summary[summary["geometry"] == geometry].groupby("block"):
            part = part.sort_values("N")
            grid = part["N"].tolist()
            axis.plot(grid, part["median"], "o-", color=colours[block], label=f"{block} (median)")
            axis.fill_between(grid, part["q25"], part["q75"], color=colours[block], alpha=0.2, linewidth=0)
            shape = predicted(geometry, block, grid, alpha, lam if geometry == Geometry.convex else 0.0)
            if shape is not None:  # anchored at the smallest N: only the shape is predicted
                scale = part["median"].iloc[0] / shape[0]
                axis.plot(grid, [scale * s for s in shape], ":", color=colours[block])
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("inner steps N")
        axis.set_ylabel("operator norm of the meta-Hessian block")
        axis.set_title(f"{geometry} inner loop (dotted: predicted shape)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    paths = [out / "smoothness.png", out / "smoothness.pdf"]
    for path in paths:
        figure.savefig(path, dpi=150)
    plt.close(figure)
    return paths
