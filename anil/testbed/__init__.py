"""The theory testbed: a task family whose inner-loss conditioning is a knob, and a trainer that
runs many seeds and stepsizes at once, so that Theorems 1-2 and Propositions 2-3 can be tested
where their N-dependence can show (docs/theory.md, "The testbed").

Layers: `family` (tasks from a seed) -> `net` (the body and heads, batched over runs and tasks)
-> `train` (outer SGD for all runs at once, the full objective's gradient norm) -> `lanczos`,
`search` -> `suite` (every experiment, written to one JSON file). The analysis of that file is
torch-free (anil/analysis/testbed.py).
"""
