"""Seconds per meta-iteration of each configuration a sweep ran, timed one process at a time.

A sweep's own time axis is only as good as the way its jobs ran (anil/analysis/overlap.py): jobs
side by side on a few cores slow each other unevenly. This times the same training step the runs
take (anil/run/trainer.py: meta_step, sampling and the optimiser's update included) for every
configuration of the sweeps, round-robin in one process, so that whatever else the machine does
hits every configuration alike. The reports price a run's iterations to a target at these
seconds (anil/analysis/pricing.py).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from anil.analysis.timing import round_robin
from anil.config import TrainConfig
from anil.engine.model import dimensions
from anil.run.setup import build
from anil.run.trainer import meta_step

Timed = tuple[str, TrainConfig]  # the experiment a configuration comes from, and the configuration


def time_iterations(configs: list[Timed], repeats: int, device: torch.device) -> list[dict[str, Any]]:
    """One row per configuration: the median and quartiles of `repeats` iterations' seconds."""
    setups = [build(config, device) for _, config in configs]
    steps: dict[str, Callable[[], Any]] = {
        str(i): partial(meta_step, setup, config.B) for i, ((_, config), setup) in enumerate(zip(configs, setups))
    }
    samples = round_robin(steps, repeats, device)
    rows = []
    for i, ((experiment, config), setup) in enumerate(zip(configs, setups)):
        seconds = samples[str(i)]
        quartiles = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else [seconds[0]] * 3
        rows.append({
            "experiment": experiment, "algorithm": config.algorithm, "dataset": config.dataset.name,
            "geometry": config.geometry.name, "N": config.N, "B": config.B, **dimensions(setup.model),
            "seconds": statistics.median(seconds), "q25": quartiles[0], "q75": quartiles[2], "repeats": len(seconds),
        })  # fmt: skip
    return rows


def environment(command: str, started: float) -> dict[str, Any]:
    """Where and how the timing ran: what a reader needs to compare it with another machine's."""
    return {
        "machine": platform.processor() or platform.machine(),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
        "load_average": os.getloadavg()[0],  # other work on the machine when it ended (1 min average)
        "wall_s": time.perf_counter() - started,
        "command": command,
    }
