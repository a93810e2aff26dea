"""anil: ANIL meta-learning (Ji, Lee, Liang, Poor, NeurIPS 2020), batched and exact."""

__version__ = "0.1.0"
