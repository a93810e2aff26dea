"""Seconds per meta-iteration of every configuration of the named experiments' sweeps, timed
round-robin in one process (anil/analysis/iteration_time.py); writes docs/data/iteration-timing.json.

    .venv/bin/python scripts/time_iterations.py      # the reproduction's sweeps, about 5 min on 2 cores
    .venv/bin/python scripts/time_iterations.py --experiments fig1_embedded_hard --repeats 3 --out /tmp/t.json

Run it alone on the machine: it is the clean wall-clock the reports price iterations with.
"""

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from anil.analysis.iteration_time import environment, time_iterations
from anil.atomic import write_json_atomic
from anil.cli.compose import sweep_grid

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = ["fig1_embedded_hard", "fig2_embedded_hard", "maml_embedded_hard"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=EXPERIMENTS)
    parser.add_argument("--repeats", type=int, default=10, help="timed iterations per configuration (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: as the sweeps' jobs ran)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "data" / "iteration-timing.json")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(options.threads)
    started = time.perf_counter()
    configs = [(experiment, config) for experiment in options.experiments for config in sweep_grid(experiment)]
    print(f"timing {len(configs)} configurations, {options.repeats} rounds", flush=True)
    rows = time_iterations(configs, options.repeats, torch.device("cpu"))
    for row in rows:
        print(f"{row['experiment']} {row['algorithm']} {row['geometry']} N={row['N']}: {row['seconds']:.3f} s")
    command = " ".join([".venv/bin/python scripts/time_iterations.py", *sys.argv[1:]])
    write_json_atomic(options.out, {"meta": environment(command, started), "rows": rows})
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
