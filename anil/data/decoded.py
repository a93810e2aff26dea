"""Reading source files safely, and the decoded cache every real dataset goes through.

The first use of a dataset decodes it into one compact uint8 array per split (`<split>.npy`,
memory-mapped on later starts) plus `<split>.json` (class names and counts) and `source.json`,
a fingerprint of the source files (paths, sizes, modification times). A changed source changes
the fingerprint, and the cache is decoded again. Files are written under temporary names and
renamed, `source.json` last, so a failed or killed decode never leaves a cache that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from anil.data.split import SPLITS, DatasetError, Split, Splits

log = logging.getLogger(__name__)

DECODE_VERSION = 1  # bump when decoding changes, so old caches are not reused


def read_pickle(path: Path) -> dict[str, Any]:
    """A dict pickle written by Python 2 or 3, with str keys (bytes keys are decoded)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1)
            f.seek(0)
            data = pickle.load(f, encoding="latin1")  # Python 2 pickles (CIFAR, FC100) need latin1
    except FileNotFoundError:
        raise DatasetError(f"missing file {path}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as error:
        hint = "an HTML page, not the dataset" if head == b"<" else "truncated or not a pickle"
        raise DatasetError(f"cannot read {path}: {hint} ({error}); download it again") from None
    if not isinstance(data, dict):
        raise DatasetError(f"cannot read {path}: expected a dict, found {type(data).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def require(data: dict[str, Any], keys: tuple[str, ...], path: Path) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise DatasetError(f"{path} lacks the key(s) {', '.join(missing)}; it holds {', '.join(map(str, data)) or 'nothing'}")


def decode_image(path: Path, size: int) -> np.ndarray:
    """An image file -> uint8 [3, size, size] RGB, resized (bilinear, no crop) when it is not square `size`."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    except FileNotFoundError:
        raise DatasetError(f"missing image {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"cannot decode image {path}: {error}; the file is truncated or not an image") from None


def resize_hwc(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [M, H, W, 3] -> uint8 [M, 3, size, size]; a copy-free transpose when no resize is needed."""
    if images.shape[1:3] != (size, size):
        images = np.stack([np.asarray(Image.fromarray(i).resize((size, size), Image.BILINEAR)) for i in images])
    return images.transpose(0, 3, 1, 2)


def group_by_label(images: np.ndarray, labels: np.ndarray, names: dict[int, str], source: str) -> Split:
    """[M, ch, S, S] with a label per image -> a Split grouped by class, classes in label order."""
    order = np.argsort(labels, kind="stable")
    classes, counts = np.unique(labels, return_counts=True)
    return Split(np.ascontiguousarray(images[order]), counts.astype(np.int64), [names.get(int(c), str(c)) for c in classes], source)


def fingerprint(files: list[Path], settings: str) -> str:
    digest = hashlib.sha256(f"v{DECODE_VERSION}|{settings}".encode())
    for path in sorted(files):
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_root(configured: str | None) -> Path:
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("ANIL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "anil"
    )
    return Path(base)


def cached(
    name: str, source: Path, files: list[Path], settings: str, cache_dir: str | None, decode: Callable[[], Splits]
) -> Splits:
    """The decoded splits of `source`, from the cache when its fingerprint still matches."""
    key = fingerprint(files, settings)
    tag = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    folder = cache_root(cache_dir) / "decoded" / f"{name}-{tag}"
    splits = _read(folder, key, str(source))
    if splits is not None:
        log.info("using the decoded cache %s", folder)
        return splits
    splits = decode()
    return _write(folder, key, splits, str(source))


def _read(folder: Path, key: str, source: str) -> Splits | None:
    try:
        stamp = json.loads((folder / "source.json").read_text(encoding="utf-8"))
        if stamp.get("fingerprint") != key:
            log.info("the source changed since %s was decoded; decoding again", folder)
            return None
        parts = []
        for split in SPLITS:
            meta = json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))
            images = np.load(folder / f"{split}.npy", mmap_mode="c")  # copy-on-write: no read-only tensors
            counts = np.asarray(meta["counts"], dtype=np.int64)
            if images.shape[0] != counts.sum():
                return None
            parts.append(Split(images, counts, list(meta["names"]), source))
        return Splits(*parts)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as error:
        log.warning("the decoded cache %s is unreadable (%s); decoding again", folder, error)
        return None


def _write(folder: Path, key: str, splits: Splits, source: str) -> Splits:
    folder = _writable(folder)
    if folder is None:
        return splits
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        for split in SPLITS:
            part = splits.split(split)
            np.save(staging / f"{split}.npy", part.images)
            meta = {"counts": part.counts.tolist(), "names": part.names}
            (staging / f"{split}.json").write_text(json.dumps(meta), encoding="utf-8")
        (staging / "source.json").write_text(json.dumps({"fingerprint": key, "source": source}), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)  # an outdated cache; nothing else lives there
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("decoded %s into %s", source, folder)
    return splits


def _writable(folder: Path) -> Path | None:
    """`folder`'s parent if it can be written, else a temporary location (said in the log), else None."""
    for candidate in (folder, Path(tempfile.gettempdir()) / "anil-cache" / "decoded" / folder.name):
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=candidate.parent)
            probe.close()
        except OSError as error:
            log.warning("cannot write the decoded cache in %s (%s)", candidate.parent, error)
            continue
        if candidate != folder:
            log.warning("using %s for the decoded cache instead; set dataset.cache_dir to choose", candidate)
        return candidate
    log.warning("no writable cache location: the dataset will be decoded again on every start")
    return None
