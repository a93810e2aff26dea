"""Find which on-disk format a dataset root holds: the root itself or one folder down."""

from __future__ import annotations

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
    looked_for: str,
    prefer: tuple[str, ...] = (),
) -> tuple[str, Path]:
    """(format, folder holding its files), trying formats in priority order unless dataset.format forces one."""
    if not config.root:
        raise DatasetError(f"dataset={dataset} needs dataset.root=PATH: the folder holding {looked_for}")
    root = Path(config.root).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DatasetError(f"dataset.root={root} {what}; point it at the folder holding {looked_for}")
    children = sorted(p for p in root.iterdir() if p.is_dir())
    candidates = [root, *(root / p for p in prefer if (root / p).is_dir()), *children]
    wanted = list(formats) if config.format == "auto" else [config.format]
    for fmt in wanted:
        for folder in candidates:
            if all(_present(folder, marker) for marker in formats[fmt]):
                return fmt, folder
    forced = "" if config.format == "auto" else f" in format {config.format}"
    raise DatasetError(f"no {dataset} data{forced} in {root}: looked for {looked_for} there and one folder down")


def _present(folder: Path, marker: Marker) -> bool:
    if isinstance(marker, tuple):
        return any(_present(folder, m) for m in marker)
    if marker.endswith("/"):
        return (folder / marker).is_dir()
    return (folder / marker).is_file()
