"""The inner loop's geometry (Section 3 of the paper): which head w adapts on the support set.

One typed choice for the whole package: the config's `geometry.name`, the model's head, the
memory estimate and the analyses all take a `Geometry`. A str-valued enum, so that a value read
back from a run folder ("convex" in a CSV or YAML) compares equal to it, and it prints as its value.
"""

from __future__ import annotations

import enum


class Geometry(str, enum.Enum):
    convex = "convex"  # a linear head and the loss + (lam/2)||w||^2: strongly convex in w
    nonconvex = "nonconvex"  # Linear -> ReLU -> Linear: nonconvex in w

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)
