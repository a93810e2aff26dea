"""Find which on-disk format a dataset root holds: the root itself or one folder down."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Union

from anil.config import DatasetConfig
from anil.data.split import DatasetError

# A marker is a relative path that must exist: "name" a file, "name/" a folder; a tuple: any one of them.
Marker = Union[str, tuple[str, ...]]  # noqa: UP007 (a runtime alias: `|` on these needs Python 3.10 types)


def find_format(
    dataset: str,
    config: DatasetConfig,
    formats: dict[str, tuple[Marker, ...]],
    looked_for: dict[str, str],
    prefer: tuple[str, ...] = (),
) -> tuple[str, Path]:
    """(format, folder holding its files), trying formats in priority order unless dataset.format
    forces one. `looked_for`: how each format's files are named, for the messages."""
    wanted = list(formats) if config.format == "auto" else [config.format]
    named = " or ".join(looked_for[fmt] for fmt in wanted)  # only what this config would accept
    if not config.root:
        raise DatasetError(f"dataset={dataset} needs dataset.root=PATH: the folder holding {named}")
    root = Path(config.root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset.root={root} {_why_not_a_folder(root)}; point it at the folder holding {named}")
    children = sorted(p for p in root.iterdir() if p.is_dir())
    candidates = [root, *(root / p for p in prefer if (root / p).is_dir()), *children]
    for fmt in wanted:
        for folder in candidates:
            if all(_present(folder, marker) for marker in formats[fmt]):
                return fmt, folder
    forced = "" if config.format == "auto" else f" in format {config.format}"
    raise DatasetError(f"no {dataset} data{forced} in {root}: looked for {named} there and one folder down")


def _why_not_a_folder(root: Path) -> str:
    try:
        root.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "is a symlink loop (a link that leads back to itself)"
        return "does not exist"
    return "is a file, not a folder"


def _present(folder: Path, marker: Marker) -> bool:
    if isinstance(marker, tuple):
        return any(_present(folder, m) for m in marker)
    if marker.endswith("/"):
        return (folder / marker).is_dir()
    return (folder / marker).is_file()
