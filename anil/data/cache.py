"""The decoded cache every dataset goes through, rendered (embedded) or read from files (FC100,
miniImageNet).

The first use of a dataset decodes it into one compact uint8 array per split (`<split>.npy`,
memory-mapped on later starts) plus `<split>.json` (class names and counts) and `source.json`,
a fingerprint of what the arrays were made from (source paths, sizes and modification times, or
the rendering settings and package version). A changed source changes the fingerprint, and the
cache is decoded again. Files are written in a staging folder that is renamed into place, so a
failed or killed decode never leaves a cache that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from anil.data.split import SPLITS, Split, Splits

log = logging.getLogger(__name__)

DECODE_VERSION = 1  # bump when decoding changes, so old caches are not reused


def fingerprint(files: list[Path], settings: str) -> str:
    """What a cache was made from: the decoding settings and each source file's path, size and mtime."""
    digest = hashlib.sha256(f"v{DECODE_VERSION}|{settings}".encode())
    for path in sorted(files):
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def tag(text: str) -> str:
    """A short stable name for `text` (a source path, a set of rendering settings)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_root(configured: str | None) -> Path:
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("ANIL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "anil"
    )
    return Path(base)


def cached(entry: str, source: str, key: str, cache_dir: str | None, decode: Callable[[], Splits]) -> Splits:
    """The splits cached under `entry` when their fingerprint `key` still matches; else `decode()`
    them and cache the result. `source` names the data in messages."""
    folder = cache_root(cache_dir) / "decoded" / entry
    splits = _read(folder, key, source)
    if splits is not None:
        log.info("using the decoded cache %s", folder)
        return splits
    splits = decode()
    return _write(folder, key, splits, source)


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


def _write(preferred: Path, key: str, splits: Splits, source: str) -> Splits:
    folder = _writable(preferred)
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
