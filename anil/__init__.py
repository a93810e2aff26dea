"""anil: ANIL meta-learning (Ji, Lee, Liang, Poor, NeurIPS 2020), batched and exact."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("anil")  # the one place it is set: pyproject.toml
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
