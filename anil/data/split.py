"""A split's images grouped by class, as every loader returns them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
    """Data that cannot be used; the message is one line naming the file or folder and the fix."""


@dataclass(frozen=True)
class Split:
    """Images of one split, grouped by class: class c owns images[offsets[c] : offsets[c] + counts[c]]."""

    images: np.ndarray  # uint8 [M, ch, S, S]
    counts: np.ndarray  # int64 [C]
    names: list[str]  # C class names (wnids, CIFAR fine names, characters)
    source: str  # the file or folder it came from, for error messages

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)

    @classmethod
    def from_grouped(cls, grouped: np.ndarray, names: list[str], source: str) -> Split:
        """[C, I, ch, S, S] (the same number of images per class) -> Split."""
        classes, instances = grouped.shape[:2]
        counts = np.full(classes, instances, dtype=np.int64)
        return cls(grouped.reshape(classes * instances, *grouped.shape[2:]), counts, names, source)

    def check_tasks(self, split: str, ways: int, shots: int, query: int) -> None:
        """Every task of this shape can be drawn, or a DatasetError says which class falls short."""
        if len(self.counts) < ways:
            raise DatasetError(
                f"split {split} of {self.source} has {len(self.counts)} classes, fewer than ways={ways}; lower ways"
            )
        short = np.flatnonzero(self.counts < shots + query)
        if len(short):
            c = short[0]
            raise DatasetError(
                f"class {self.names[c]} in split {split} of {self.source} has {self.counts[c]} images, "
                f"fewer than shots + query = {shots + query}; lower shots or query"
            )


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split

    def split(self, name: str) -> Split:
        return getattr(self, name)
