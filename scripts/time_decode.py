"""Time the first decode and a later start of FC100 and miniImageNet, in every supported format,
on fixtures written at the real datasets' sizes (60,000 images each) in a temporary folder.

    .venv/bin/python -m scripts.time_decode            # all formats (needs ~3 GB of free disk)
    .venv/bin/python -m scripts.time_decode --scale 0.1

Run from the repository root, as a module: the fixture writers live with the tests
(tests/helpers/formats.py) and do not ship with the package.

miniImageNet fixtures are noise JPEGs, which decode more slowly than photographs: an upper bound.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from anil.config import DatasetConfig
from anil.data import load_splits
from tests.helpers import formats as fixtures


def timed_loads(config: DatasetConfig) -> tuple[float, float, int]:
    tick = time.perf_counter()
    first = load_splits(config)
    decode = time.perf_counter() - tick
    tick = time.perf_counter()
    later = load_splits(config)
    start = time.perf_counter() - tick
    assert [len(later.split(s).counts) for s in ("train", "val", "test")] == [
        len(first.split(s).counts) for s in ("train", "val", "test")
    ]
    return decode, start, sum(int(first.split(s).counts.sum()) for s in ("train", "val", "test"))


def link_folders(csv_root: Path, root: Path, splits: dict[str, list[str]], per_class: int) -> None:
    """The per-split folder layout over the same JPEG files (hard links: no second encode)."""
    for split, wnids in splits.items():
        for wnid in wnids:
            (root / split / wnid).mkdir(parents=True)
            for i in range(per_class):
                name = f"{wnid}{i:08d}.jpg"
                os.link(csv_root / "images" / name, root / split / wnid / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real images per class")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    per_class = max(2, round(600 * options.scale))
    wnids = fixtures.mini_wnids(64, 16, 20)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        cache = str(base / "cache")
        writers = {
            ("fc100", "cifar"): lambda r: fixtures.write_cifar(r, per_class * 5 // 6, per_class - per_class * 5 // 6),
            ("fc100", "pickles"): lambda r: fixtures.write_fc100_pickles(r, per_class),
            ("miniimagenet", "csv"): lambda r: fixtures.write_mini_csv(r, per_class, wnids, noise=True),
            ("miniimagenet", "folders"): lambda r: link_folders(base / "miniimagenet-csv", r, wnids, per_class),
            ("miniimagenet", "pickles"): lambda r: fixtures.write_mini_pickles(r, per_class, splits=wnids),
        }
        for (name, fmt), write in writers.items():
            root = base / f"{name}-{fmt}"
            root.mkdir()
            write(root)
            size = 32 if name == "fc100" else 84
            decode, start, images = timed_loads(
                DatasetConfig(name=name, root=str(root), format=fmt, image_size=size, cache_dir=cache)
            )
            rows.append((name, fmt, images, decode, start))
            print(
                f"{name:<13} {fmt:<8} {images:>7} images  first decode {decode:7.2f} s  later start {start:6.2f} s",
                flush=True,
            )
    print(f"\n{os.cpu_count()} CPUs; per class {per_class} images")
    print("| dataset | format | images | first decode (s) | later start (s) |")
    print("|---|---|---|---|---|")
    for name, fmt, images, decode, start in rows:
        print(f"| {name} | {fmt} | {images:,} | {decode:.1f} | {start:.2f} |")


if __name__ == "__main__":
    main()
