"""Datasets: a name -> loader registry and the vectorised task sampler."""

from __future__ import annotations

from typing import Callable

from anil.config import DatasetConfig
from anil.data import embedded
from anil.data.embedded import Splits

LOADERS: dict[str, Callable[[DatasetConfig], Splits]] = {
    "embedded": embedded.load,
    "procedural": embedded.load,
}


def load_splits(config: DatasetConfig) -> Splits:
    return LOADERS[config.name](config)
