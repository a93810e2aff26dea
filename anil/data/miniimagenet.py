"""miniImageNet (Ravi & Larochelle split): 64 / 16 / 20 classes of 600 images, 84x84 RGB.

Formats (docs/datasets.md):
  csv      `{train,val,test}.csv` (header `filename,label`) and a flat `images/` folder; images
           of any size are resized to image_size (bilinear, no crop)
  folders  `{train,val,test}/<wnid>/*.jpg` (the cbfinn/maml layout)
  pickles  `mini-imagenet-cache-{train,val|validation,test}.pkl`: {'image_data': [N,84,84,3],
           'class_dict': {wnid: [row indices]}}
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from anil.config import DatasetConfig
from anil.data.cache import cached, fingerprint, tag
from anil.data.locate import Marker, find_format
from anil.data.progress import bar
from anil.data.readers import decode_image, group_by_label, image_array, read_pickle, require, resize_hwc
from anil.data.split import SPLITS, DatasetError, Split, Splits

PICKLE_NAMES = {
    "train": ("mini-imagenet-cache-train.pkl",),
    "val": ("mini-imagenet-cache-val.pkl", "mini-imagenet-cache-validation.pkl"),  # learn2learn says validation
    "test": ("mini-imagenet-cache-test.pkl",),
}
FORMATS: dict[str, tuple[Marker, ...]] = {
    "csv": ("train.csv", "val.csv", "test.csv", "images/"),
    "folders": ("train/", "val/", "test/"),
    "pickles": tuple(PICKLE_NAMES[s] for s in SPLITS),
}
LOOKED_FOR = {
    "csv": "{train,val,test}.csv + images/",
    "folders": "{train,val,test}/<wnid>/*.jpg",
    "pickles": "mini-imagenet-cache-{train,val,test}.pkl",
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
PARALLEL_FROM = 2000  # decode in worker processes from this many images on


def load(config: DatasetConfig) -> Splits:
    fmt, folder = find_format("miniimagenet", config, FORMATS, LOOKED_FOR, prefer=("miniimagenet", "mini-imagenet"))
    size = config.image_size
    if fmt == "csv":
        images = _image_files(folder / "images")
        files = [folder / f"{s}.csv" for s in SPLITS] + images
        decode = lambda: _from_csv(folder, size)  # noqa: E731
        count = len(images)
    elif fmt == "folders":
        files = [p for s in SPLITS for p in _image_files(folder / s)]
        decode = lambda: _from_folders(folder, size)  # noqa: E731
        count = len(files)
    else:
        files = [_pickle_path(folder, s) for s in SPLITS]
        decode = lambda: _from_pickles(folder, size)  # noqa: E731
        count = sum(f.stat().st_size for f in files) // (3 * 84 * 84)  # the cache pickles hold 84x84 RGB images
    key = fingerprint(files, f"size={size}")
    entry = f"miniimagenet-{fmt}-{tag(str(folder.resolve()))}"
    return cached(entry, str(folder), key, config.cache_dir, decode, count * 3 * size**2)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _decode_all(paths: list[Path], size: int) -> np.ndarray:
    """uint8 [M, 3, size, size]; in worker processes for a real-sized split."""
    description = f"decoding {paths[0].parent.name if paths else 'images'}"
    if len(paths) < PARALLEL_FROM:
        return np.stack(list(bar((decode_image(p, size) for p in paths), len(paths), description, "image")))
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        decoded = pool.map(partial(decode_image, size=size), paths, chunksize=256)
        return np.stack(list(bar(decoded, len(paths), description, "image")))


def _read_csv(path: Path) -> list[tuple[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"{path} is not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start}); "
            "use the original split file or save it as UTF-8"
        ) from None
    except PermissionError:
        raise DatasetError(f"cannot read {path}: permission denied; make it readable (chmod +r)") from None
    if not rows or [c.strip() for c in rows[0]] != ["filename", "label"]:
        raise DatasetError(f"{path}: the first line must be 'filename,label'")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[0] or not row[1]:
            raise DatasetError(f"{path} line {number}: expected 'filename,label', found {','.join(row)!r}")
    if len(rows) == 1:
        raise DatasetError(f"{path} lists no images")
    return [(row[0], row[1]) for row in rows[1:]]


def _labelled(images: np.ndarray, wnids: list[str], source: str) -> Split:
    names = sorted(set(wnids))
    index = {w: i for i, w in enumerate(names)}
    return group_by_label(images, np.array([index[w] for w in wnids]), dict(enumerate(names)), source)


def _from_csv(folder: Path, size: int) -> Splits:
    splits = []
    for split in SPLITS:
        listing = folder / f"{split}.csv"
        rows = _read_csv(listing)
        paths = [_image_in(folder / "images", name, f"{listing} line {number}") for number, (name, _) in
                 enumerate(rows, start=2)]  # fmt: skip
        images = _decode_all(paths, size)
        splits.append(_labelled(images, [label for _, label in rows], str(listing)))
    return Splits(*splits)


def _image_in(images: Path, name: str, where: str) -> Path:
    """images/NAME, refused when NAME (an absolute path, a '..', or a link) leads outside images/:
    a split file names images, it does not choose what else on the machine is read."""
    path = images / name
    if Path(name).is_absolute() or not _inside(images, path):
        raise DatasetError(f"{where}: image {name!r} lies outside {images}; list only files inside images/")
    return path


def _inside(root: Path, path: Path) -> bool:
    """Whether `path`, links followed, stays under `root` (links followed too)."""
    return path.resolve().is_relative_to(root.resolve())


def _from_folders(folder: Path, size: int) -> Splits:
    splits = []
    for split in SPLITS:
        paths = [p for p in _image_files(folder / split) if p.parent.parent == folder / split]
        if not paths:
            raise DatasetError(f"{folder / split} holds no <class>/<image> files")
        outside = [p for p in paths if not _inside(folder, p)]
        if outside:
            raise DatasetError(f"{outside[0]} is a link to a file outside {folder}; copy the image into the dataset")
        splits.append(_labelled(_decode_all(paths, size), [p.parent.name for p in paths], str(folder / split)))
    return Splits(*splits)


def _class_rows(class_dict: object, path: Path) -> dict[str, np.ndarray]:
    """'class_dict' -> {wnid: int64 row indices}; a DatasetError unless it is a dict of index lists."""
    if not isinstance(class_dict, dict):
        raise DatasetError(
            f"{path}: 'class_dict' is a {type(class_dict).__name__}, expected a dict of wnid -> row indices"
        )
    classes = {}
    for key, rows in class_dict.items():
        indices = np.asarray(rows)
        if indices.ndim != 1 or indices.dtype.kind not in "iu":
            raise DatasetError(f"{path}: 'class_dict'[{key!r}] is not a list of row indices; use the original file")
        classes[key.decode() if isinstance(key, bytes) else str(key)] = indices.astype(np.int64)
    return classes


def _pickle_path(folder: Path, split: str) -> Path:
    return next(folder / n for n in PICKLE_NAMES[split] if (folder / n).is_file())


def _from_pickles(folder: Path, size: int) -> Splits:
    splits = []
    for split in SPLITS:
        path = _pickle_path(folder, split)
        data = read_pickle(path)
        require(data, ("image_data", "class_dict"), path)
        pixels = image_array(data, "image_data", path, "(N, 84, 84, 3)")
        if pixels.ndim != 4 or pixels.shape[3] != 3:
            raise DatasetError(f"{path}: 'image_data' is {pixels.dtype} {pixels.shape}, expected uint8 (N, 84, 84, 3)")
        classes = _class_rows(data["class_dict"], path)
        names = sorted(classes)
        rows = np.concatenate([classes[n] for n in names])
        if len(rows) and (rows.min() < 0 or rows.max() >= len(pixels)):
            raise DatasetError(f"{path}: 'class_dict' points past the {len(pixels)} images of 'image_data'")
        counts = np.array([len(classes[n]) for n in names], dtype=np.int64)
        splits.append(Split(np.ascontiguousarray(resize_hwc(pixels[rows], size)), counts, names, str(path)))
    return Splits(*splits)
