"""The embedded datasets: handwritten-like characters that need no download.

`embedded`: real KanjiVG stroke data (the `kanjivg` wheel ships 6,413 CJK characters as SVG
strokes); one class per character, instances drawn by the jittered renderer of `strokes.py`.
`procedural`: the same renderer fed with glyphs composed from a seeded library of synthetic
radicals; no data at all, fast, for unit tests and smoke runs.

Both render once per dataset config and cache the arrays outside the repo through the same decoded
cache as the real datasets (rendered images are derived from CC BY-SA data and are never
committed); the cache key includes the kanjivg version, so an updated package renders again.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import numpy as np

from anil.config import DatasetConfig
from anil.data.cache import cached, fingerprint, tag
from anil.data.progress import bar
from anil.data.split import DatasetError, Split, Splits
from anil.data.strokes import CANVAS, StrokeParseError, parse_svg_strokes, render

SPLIT_SEED = 20200  # fixes which characters go to which split, independently of the run seed
RENDER_VERSION = 1  # bump when rendering changes, so old caches are not reused
CJK = range(0x4E00, 0xA000)
KANJI = ("embedded", "embedded_hard")  # the dataset names drawn from KanjiVG (the hard one: other defaults)


def load(config: DatasetConfig) -> Splits:
    """Render the dataset described by `config`, or read it from the cache."""
    settings = _settings(config)
    source = f"dataset={config.name}"
    render = lambda: _render_splits(*_glyphs(config), config, source)  # noqa: E731
    size = _needed(config) * config.instances * config.image_size**2  # uint8, one channel
    return cached(f"{config.name}-{tag(settings)}", source, fingerprint([], settings), config.cache_dir, render, size)


def _settings(config: DatasetConfig) -> str:
    """Everything the rendered images depend on: a change renders them again."""
    counts = f"{config.train_classes}-{config.val_classes}-{config.test_classes}x{config.instances}"
    version = _kanjivg_version() if config.name in KANJI else "none"
    harder = f"|distortion={config.distortion:g}|clutter={config.clutter}"
    harder = "" if (config.distortion, config.clutter) == (1.0, 0) else harder  # default: the old key
    return (
        f"{config.name}|{config.image_size}px|{counts}|jitter={config.jitter:g}{harder}"
        f"|render=v{RENDER_VERSION}|kanjivg={version}"
    )


def _glyphs(config: DatasetConfig) -> tuple[list[list[np.ndarray]], list[str]]:
    return _kanji_glyphs(config) if config.name in KANJI else _procedural_glyphs(config)


def _render_splits(glyphs: list[list[np.ndarray]], names: list[str], config: DatasetConfig, source: str) -> Splits:
    counts = {"train": config.train_classes, "val": config.val_classes, "test": config.test_classes}
    rng = np.random.default_rng([SPLIT_SEED, config.image_size, config.instances])
    library = _clutter_library() if config.clutter else []
    splits, start = [], 0
    for name, count in counts.items():
        block = []
        for glyph in bar(glyphs[start : start + count], count, f"rendering {source} {name}", "class"):
            block.append([_draw(glyph, config, rng, library) for _ in range(config.instances)])
        grouped = np.asarray(block, dtype=np.uint8)[:, :, None]  # [C, I, 1, S, S]
        splits.append(Split.from_grouped(grouped, names[start : start + count], source))
        start += count
    return Splits(*splits)


def _draw(
    glyph: list[np.ndarray], config: DatasetConfig, rng: np.random.Generator, library: list[np.ndarray]
) -> np.ndarray:
    """One drawing of `glyph`, with `config.clutter` strokes of the shared library on top."""
    clutter = [library[i] for i in rng.choice(len(library), size=config.clutter)] if config.clutter else []
    return render(glyph, config.image_size, rng, config.jitter, config.distortion, clutter)


def _clutter_library() -> list[np.ndarray]:
    """Distractor strokes, the same for every class and split (so they say nothing of the class):
    the strokes of synthetic radicals, scaled to a third of the canvas."""
    rng = np.random.default_rng([SPLIT_SEED, 1])
    return [stroke * CANVAS / 3 for _ in range(64) for stroke in _radical(rng)]


def _needed(config: DatasetConfig) -> int:
    return config.train_classes + config.val_classes + config.test_classes


def _kanjivg_version() -> str:
    try:
        return importlib.metadata.version("kanjivg")
    except importlib.metadata.PackageNotFoundError:
        return "missing"  # kanji_folder() says how to install it when rendering starts


def kanji_folder() -> Path:
    """Where the `kanjivg` wheel put its SVGs (it installs a top-level `kanji/` data folder)."""
    try:
        folder = Path(str(importlib.metadata.distribution("kanjivg").locate_file("kanji")))
    except importlib.metadata.PackageNotFoundError:
        raise DatasetError(
            "the embedded dataset needs the kanjivg package: pip install kanjivg (or use dataset=procedural)"
        ) from None
    if not folder.is_dir():
        raise DatasetError(
            f"kanjivg is installed but {folder} is missing: reinstall it (pip install --force-reinstall kanjivg)"
        )
    return folder


def _kanji_glyphs(config: DatasetConfig) -> tuple[list[list[np.ndarray]], list[str]]:
    """CJK characters in a fixed seeded order; splits take consecutive blocks, so they are disjoint."""
    folder = kanji_folder()
    codes = sorted(int(m.group(1), 16) for p in folder.iterdir() if (m := re.fullmatch(r"([0-9a-f]{5})\.svg", p.name)))
    codes = [c for c in codes if c in CJK]
    if len(codes) < _needed(config):
        raise DatasetError(
            f"dataset={config.name} asks for {_needed(config)} classes but kanjivg has {len(codes)} CJK characters; "
            "lower dataset.train_classes, val_classes or test_classes"
        )
    order = np.random.default_rng(SPLIT_SEED).permutation(len(codes))[: _needed(config)]
    chosen = [codes[i] for i in order]
    return [_strokes(folder / f"{c:05x}.svg") for c in chosen], [chr(c) for c in chosen]


def _strokes(path: Path) -> list[np.ndarray]:
    try:
        return parse_svg_strokes(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, StrokeParseError) as error:
        raise DatasetError(
            f"cannot render {path}: {error}; reinstall kanjivg (pip install --force-reinstall kanjivg)"
        ) from None


# --- procedural glyphs -------------------------------------------------------------------------

LAYOUTS = {  # boxes (x0, y0, x1, y1) in unit canvas coordinates, one per radical
    "left_right": [(0.0, 0.0, 0.45, 1.0), (0.5, 0.0, 1.0, 1.0)],
    "top_bottom": [(0.0, 0.0, 1.0, 0.45), (0.0, 0.5, 1.0, 1.0)],
    "narrow_left": [(0.0, 0.0, 0.3, 1.0), (0.35, 0.0, 1.0, 1.0)],
    "top_two_bottom": [(0.0, 0.0, 1.0, 0.45), (0.0, 0.5, 0.48, 1.0), (0.52, 0.5, 1.0, 1.0)],
    "enclosure": [(0.0, 0.0, 1.0, 1.0), (0.25, 0.3, 0.75, 0.8)],
}


def _radical(rng: np.random.Generator) -> list[np.ndarray]:
    """2-4 strokes, each a straight or hooked cubic, in the unit square."""
    strokes = []
    for _ in range(rng.integers(2, 5)):
        start, end = rng.uniform(0.05, 0.95, size=2), rng.uniform(0.05, 0.95, size=2)
        bend = rng.normal(0, 0.15, size=(2, 2)) * (rng.random() < 0.5)  # half the strokes curve
        c1, c2 = start + (end - start) / 3 + bend[0], start + 2 * (end - start) / 3 + bend[1]
        t = np.linspace(0, 1, 9)[:, None]
        strokes.append((1 - t) ** 3 * start + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * end)
    return strokes


def _procedural_glyphs(config: DatasetConfig) -> tuple[list[list[np.ndarray]], list[str]]:
    rng = np.random.default_rng(SPLIT_SEED)
    radicals = [_radical(rng) for _ in range(40)]
    glyphs: list[list[np.ndarray]] = []
    names: list[str] = []
    while len(glyphs) < _needed(config):
        layout = list(LAYOUTS)[rng.integers(len(LAYOUTS))]
        parts = rng.choice(len(radicals), size=len(LAYOUTS[layout]), replace=False)
        name = f"{layout}:{'+'.join(map(str, parts))}"
        if name in names:  # the same composition twice would put one class in two splits
            continue
        glyph = []
        for part, (x0, y0, x1, y1) in zip(parts, LAYOUTS[layout]):
            for stroke in radicals[part]:
                box = np.array([x0, y0]) + stroke * np.array([x1 - x0, y1 - y0])
                glyph.append((0.1 + 0.8 * box) * CANVAS)  # keep a margin on the canvas
        glyphs.append(glyph)
        names.append(name)
    return glyphs, names
