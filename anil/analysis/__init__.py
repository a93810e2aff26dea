"""Analysis: Proposition 1 by formula, smoothness measurements, figures, statistics, benchmarks
and the builders of the generated documents in docs/. Importable and tested; the command line
and scripts/ are thin entry points over it."""
