"""The names of the operation counters (anil/engine/opcount.py), in the order metrics.csv lists
them. Kept apart from the counters themselves so that readers of run folders (metrics files,
plots, tables, reports) know the columns without importing torch."""

COUNTERS = ("grad_evals_w", "grad_evals_phi", "second_order_w", "second_order_phi")
