"""The data layer: datasets as class-grouped uint8 splits, and the vectorised task sampler.

It imports the configuration schema and the neutral task types (anil.tasks), never the engine,
the run layer or the command line.
"""

from __future__ import annotations

from collections.abc import Callable

from anil.config import DatasetConfig
from anil.data import embedded, fc100, miniimagenet
from anil.data.split import DatasetError, Split, Splits

LOADERS: dict[str, Callable[[DatasetConfig], Splits]] = {
    "embedded": embedded.load,
    "embedded_hard": embedded.load,
    "procedural": embedded.load,
    "fc100": fc100.load,
    "miniimagenet": miniimagenet.load,
}

__all__ = ["DatasetError", "LOADERS", "Split", "Splits", "load_splits"]


def load_splits(config: DatasetConfig) -> Splits:
    try:
        return LOADERS[config.name](config)
    except PermissionError as error:  # a source file or folder this user may not read
        raise DatasetError(f"cannot read {error.filename}: permission denied; make it readable (chmod +r)") from None
