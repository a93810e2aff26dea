"""Benchmark a meta-iteration (engine vs per-task reference vs floor): see anil/analysis/bench.py."""

from anil.analysis.bench import main

if __name__ == "__main__":
    main()
