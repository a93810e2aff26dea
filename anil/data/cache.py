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

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from anil.atomic import current_umask
from anil.data.split import SPLITS, DatasetError, Split, Splits

log = logging.getLogger(__name__)

DECODE_VERSION = 1  # bump when decoding changes, so old caches are not reused


def fingerprint(files: list[Path], settings: str) -> str:
    """What a cache was made from: the decoding settings and each source file's path, size and mtime."""
    digest = hashlib.sha256(f"v{DECODE_VERSION}|{settings}".encode())
    for path in sorted(files):
        try:
            stat = path.stat()
        except OSError as error:  # not a write problem: name the file and what is wrong with it
            loop = error.errno == errno.ELOOP
            why = "is a symlink loop (a link that leads back to itself)" if loop else (error.strerror or str(error))
            raise DatasetError(f"cannot read {path}: {why}; replace or remove the file") from None
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


def cached(entry: str, source: str, key: str, cache_dir: str | None, decode: Callable[[], Splits], size: int) -> Splits:
    """The splits cached under `entry` when their fingerprint `key` still matches; else `decode()`
    them and cache the result. `source` names the data in messages; `size` estimates the bytes of
    the decoded arrays, checked against free memory and disk before decoding starts.

    Processes that share a cache (torchrun ranks, parallel sweep jobs, independent runs) decode
    once: the first takes a lock on the entry and decodes, the others wait for it and read."""
    preferred = cache_root(cache_dir) / "decoded" / entry
    splits = _read(preferred, key, source)
    if splits is not None:
        return splits
    folder = _writable(preferred)
    check_room(size, source, folder)
    if folder is None:
        return decode()
    with _entry_lock(folder):
        splits = _read(folder, key, source)  # another process may have decoded it while this one waited
        if splits is not None:
            return splits
        _remove_stale_staging(folder)
        return _write(folder, key, decode(), source)


def check_room(size: int, source: str, folder: Path | None) -> None:
    """Decoding holds the arrays in memory, then writes them to `folder`: refuse (one line, with the
    estimate) what cannot fit in either. At its peak a decode holds the images twice (the decoded
    pieces and the array they are stacked into)."""
    memory = available_memory()
    if DECODE_PEAK * size > memory:
        raise DatasetError(
            f"decoding {source} needs about {_gib(DECODE_PEAK * size)} of memory but {_gib(memory)} is available; "
            "lower dataset.image_size"
        )
    if folder is not None:
        free = shutil.disk_usage(folder.parent).free
        if size > free:
            raise DatasetError(
                f"the decoded {source} needs about {_gib(size)} of disk but {folder.parent} has {_gib(free)} free; "
                "lower dataset.image_size or set dataset.cache_dir to a larger disk"
            )


def available_memory() -> int:
    """The host's MemAvailable (what can be allocated without swapping), in bytes."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _gib(size: float) -> str:
    return f"{size / 2**30:.1f} GiB"


@contextlib.contextmanager
def _entry_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on one cache entry (a file beside it; the kernel drops it if the holder dies)."""
    with open(folder.parent / f".{folder.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_staging(folder: Path) -> None:
    """Staging folders of decodes that were killed (only the lock holder stages, so any found now is stale)."""
    for stale in folder.parent.glob(f".{folder.name}-*"):
        if stale.is_dir():
            log.warning("removing %s, left by a decode that was stopped", stale)
            shutil.rmtree(stale, ignore_errors=True)


DECODE_PEAK = 2  # copies of the decoded images in memory at the peak of a decode
SAMPLES = 64  # blocks read to check an array against its digest
BLOCK = 1 << 16  # bytes per block


def sampled_digest(path: Path) -> str:
    """A digest of a file's size and SAMPLES blocks spread evenly over it: a few MB read however large
    the file, yet any whole-file overwrite (zeros, another array) changes it."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for i in range(SAMPLES):
            f.seek(max(0, (size - BLOCK) * i // max(SAMPLES - 1, 1)))
            digest.update(f.read(BLOCK))
    return digest.hexdigest()


def _read(folder: Path, key: str, source: str) -> Splits | None:
    try:
        stamp = json.loads((folder / "source.json").read_text(encoding="utf-8"))
        if stamp.get("fingerprint") != key:
            log.info("the source changed since %s was decoded; decoding again", folder)
            return None
        parts = []
        for split in SPLITS:
            meta = json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))
            array = folder / f"{split}.npy"
            if meta.get("digest") != sampled_digest(array):
                log.warning("%s does not match its digest (changed since it was written); decoding again", array)
                return None
            images = np.load(array, mmap_mode="c")  # copy-on-write: no read-only tensors
            counts = np.asarray(meta["counts"], dtype=np.int64)
            if images.shape[0] != counts.sum():
                return None
            parts.append(Split(images, counts, list(meta["names"]), source))
        log.info("using the decoded cache %s", folder)
        return Splits(*parts)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as error:
        log.warning("the decoded cache %s is unreadable (%s); decoding again", folder, error)
        return None


def _write(folder: Path, key: str, splits: Splits, source: str) -> Splits:
    """Write in a staging folder, then swap it in: a reader sees the old entry or the new one."""
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    # mkdtemp makes the folder 0700; give it the mode any new folder gets under the user's umask,
    # so that a shared dataset.cache_dir stays readable by the teammates the umask allows
    os.chmod(staging, 0o777 & ~current_umask())
    try:
        for split in SPLITS:
            part = splits.split(split)
            np.save(staging / f"{split}.npy", part.images)
            digest = sampled_digest(staging / f"{split}.npy")
            meta = {"counts": part.counts.tolist(), "names": part.names, "digest": digest}
            (staging / f"{split}.json").write_text(json.dumps(meta), encoding="utf-8")
        (staging / "source.json").write_text(json.dumps({"fingerprint": key, "source": source}), encoding="utf-8")
        if folder.exists():  # an outdated entry: moved aside first, so the rename below cannot fail
            outdated = folder.with_name(f".{folder.name}-outdated-{os.getpid()}")
            os.replace(folder, outdated)
            shutil.rmtree(outdated, ignore_errors=True)
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
