"""Stroke glyphs: parse SVG stroke paths into polylines and render them with a random "drawer".

A glyph is a list of strokes; a stroke is a float array [P, 2] of points on a 109 x 109 canvas
(KanjiVG's coordinate system). Each rendered image is one person's drawing of the glyph: a global
affine jitter, per-stroke offsets, a low-frequency wobble and a random pen width.
"""

from __future__ import annotations

import math
import re

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 109.0  # KanjiVG's viewBox side
CUBIC_SAMPLES = 8  # points per cubic segment; enough for a 28-84 px image

_TOKEN = re.compile(r"[MmCcSsLlHhVvZz]|[-+]?(?:\d*\.\d+|\d+\.?)(?:[eE][-+]?\d+)?")
_ARITY = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Z": 0}


Point = tuple[float, float]


class StrokeParseError(ValueError):
    pass


def _point(xy: np.ndarray) -> Point:
    return float(xy[0]), float(xy[1])


def parse_path(d: str) -> np.ndarray:
    """SVG path data (M, L, H, V, C, S, Z; absolute or relative) -> polyline [P, 2]."""
    tokens = _TOKEN.findall(d)
    points: list[Point] = []
    cursor = np.zeros(2)
    start = np.zeros(2)
    last_control: np.ndarray | None = None  # second control point of the last cubic (for S)
    command = ""
    i = 0
    while i < len(tokens):
        if tokens[i].isalpha():
            command = tokens[i]
            i += 1
            if command in "Zz":
                points.append(_point(start))
                cursor, last_control = start.copy(), None
                continue
        if not command:
            raise StrokeParseError(f"path data starts with a number: {d[:40]!r}")
        arity = _ARITY[command.upper()]
        args = [float(t) for t in tokens[i : i + arity]]
        if len(args) < arity or any(t.isalpha() for t in tokens[i : i + arity]):
            raise StrokeParseError(f"command {command!r} lacks arguments in {d[:40]!r}")
        i += arity
        cursor, last_control = _apply(command, args, cursor, last_control, points)
        if command in "Mm":
            start = cursor.copy()
            command = "L" if command == "M" else "l"  # extra pairs after M are line-tos
    if len(points) < 2:
        raise StrokeParseError(f"path has fewer than two points: {d[:40]!r}")
    return np.asarray(points, dtype=np.float64)


def _apply(
    command: str, args: list[float], cursor: np.ndarray, last_control: np.ndarray | None, points: list[Point]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Append the points of one path command to `points`; return the new cursor and the last cubic control."""
    relative = command.islower()
    origin = cursor if relative else np.zeros(2)
    kind = command.upper()
    if kind in "ML":
        end = origin + args[:2]
        points.append(_point(end))
        return end, None
    if kind in "HV":
        end = cursor.copy()
        axis = 0 if kind == "H" else 1
        end[axis] = (cursor[axis] if relative else 0.0) + args[0]
        points.append(_point(end))
        return end, None
    if kind == "C":
        c1, c2, end = origin + args[0:2], origin + args[2:4], origin + args[4:6]
    else:  # S: the first control point mirrors the previous cubic's second one
        c1 = 2 * cursor - last_control if last_control is not None else cursor.copy()
        c2, end = origin + args[0:2], origin + args[2:4]
    t = np.linspace(0, 1, CUBIC_SAMPLES + 1)[1:, None]  # [S, 1]
    curve = (1 - t) ** 3 * cursor + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * end
    points.extend(_point(p) for p in curve)
    return end, c2


def parse_svg_strokes(svg_text: str) -> list[np.ndarray]:
    """All `<path d=...>` elements of a KanjiVG file, in stroke order."""
    paths = re.findall(r"<path\b[^>]*?\sd=\"([^\"]+)\"", svg_text)
    return [parse_path(d) for d in paths]


def render(
    strokes: list[np.ndarray],
    size: int,
    rng: np.random.Generator,
    jitter: float,
    distortion: float = 1.0,
    clutter: list[np.ndarray] | None = None,
) -> np.ndarray:
    """One jittered drawing of a glyph -> uint8 [size, size], white strokes on black.

    `distortion` scales the random deformations (the affine's rotation, shear and aspect spread,
    the per-stroke offsets and the wobble); 1 is the default drawer. `clutter` strokes are
    drawn with the same pen at random places on top: they carry no class information, so the
    body has to learn to ignore them (a harder, more FC100-like task than clean glyphs).
    """
    scale2x = 2 * size / CANVAS  # draw at twice the size, then downsample (cheap antialiasing)
    affine = _random_affine(rng, jitter, distortion)
    image = Image.new("L", (2 * size, 2 * size), 0)
    draw = ImageDraw.Draw(image)
    width = max(1, round(rng.uniform(1.5, 3.5) * size / 28))
    for stroke in strokes:
        points = stroke + rng.normal(0, 2.0 * distortion, size=2)  # per-stroke offset
        phase, amplitude = rng.uniform(0, 2 * math.pi), rng.normal(0, 1.5 * distortion)
        along = np.linspace(0, math.pi, len(points))[:, None]
        points = points + amplitude * np.sin(along + phase) * np.array([[0.7, 0.7]])  # wobble
        points = (points - CANVAS / 2) @ affine[:, :2].T + affine[:, 2] + CANVAS / 2
        draw.line([tuple(p) for p in points * scale2x], fill=255, width=width, joint="curve")
    for stroke in clutter or []:  # anywhere on the canvas, independent of the glyph's affine
        points = stroke - stroke.mean(axis=0) + rng.uniform(0.1, 0.9, size=2) * CANVAS
        draw.line([tuple(p) for p in points * scale2x], fill=255, width=width, joint="curve")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def _random_affine(rng: np.random.Generator, jitter: float, distortion: float = 1.0) -> np.ndarray:
    """[2, 3]: rotation, shear, aspect and scale about the canvas centre, plus a translation."""
    angle, shear = rng.normal(0, 0.15 * distortion), rng.normal(0, 0.15 * distortion)
    aspect, scale = math.exp(rng.normal(0, 0.1 * distortion)), rng.uniform(0.7, 1.05)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    linear = scale * rotation @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([aspect, 1 / aspect])
    return np.concatenate([linear, rng.normal(0, jitter, size=(2, 1))], axis=1)
