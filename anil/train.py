"""`anil train`: the Hydra edge and the meta-training loop.

Hydra lives in this module only: `main` turns the composed config into a typed `TrainConfig`,
takes the run directory from Hydra and calls `run`, which knows nothing of Hydra.
`check_overrides` validates every job of a command line before Hydra creates any directory.
"""

from __future__ import annotations

import itertools
import logging
import platform
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tqdm import tqdm

from anil.config import ConfigError, OptimConfig, TrainConfig, from_dict
from anil.data import DatasetError, load_splits
from anil.data.sampler import TaskBatch, TaskSampler
from anil.meta import InnerLoop, auto_chunk_tasks, evaluate, meta_forward
from anil.metrics import MetricsWriter, write_json_atomic
from anil.model import AnilNet

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
EVAL_SEED_OFFSET = 1_000_003  # the validation tasks come from their own stream, fixed per seed


# --- the training loop (Hydra-free) --------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but this torch sees no CUDA device; use device=cpu or device=auto")
    return torch.device(name)


def make_optimizer(model: AnilNet, optim: OptimConfig) -> torch.optim.Optimizer:
    """Separate outer stepsizes for the head initialisation w and the body phi (Algorithm 1, line 10)."""
    groups = [
        {"params": list(model.head.parameters()), "lr": optim.beta_w},
        {"params": list(model.body.parameters()), "lr": optim.beta_phi},
    ]
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.beta_w, momentum=optim.momentum)
    return torch.optim.Adam(groups, lr=optim.beta_w)


def squared_norm(params: Any) -> torch.Tensor:
    return torch.stack([p.grad.pow(2).sum() for p in params if p.grad is not None]).sum()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Setup:
    """Everything a run trains with, built once from the config."""

    model: AnilNet
    optimizer: torch.optim.Optimizer
    sampler: TaskSampler
    val_batches: list[TaskBatch]
    inner: InnerLoop
    dtype: torch.dtype
    chunk_tasks: int


def build(config: TrainConfig, device: torch.device) -> Setup:
    seed_everything(config.seed)
    splits = load_splits(config.dataset)
    task_shape = (config.ways, config.shots, config.query)
    sampler = TaskSampler(splits.train, *task_shape, _generator(device, config.seed), "train")
    val_sampler = TaskSampler(splits.val, *task_shape, _generator(device, config.seed + EVAL_SEED_OFFSET), "val")
    # The same validation tasks at every evaluation, so the curve moves only when the model does.
    val_batches = [val_sampler.sample(min(config.B, config.eval_tasks - i)) for i in range(0, config.eval_tasks, config.B)]
    dtype = getattr(torch, config.dtype)
    channels, image_size = splits.train.images.shape[1:3]
    model = AnilNet(config.geometry.name, image_size, channels, config.ways, config.geometry.hidden).to(device, dtype)
    return Setup(
        model=model,
        optimizer=make_optimizer(model, config.optim),
        sampler=sampler,
        val_batches=val_batches,
        inner=InnerLoop(config.N, config.inner_stepsize, config.lam, config.first_order),
        dtype=dtype,
        chunk_tasks=auto_chunk_tasks(device, config.ways * (config.shots + config.query)),
    )


def meta_step(setup: Setup, tasks: int) -> dict[str, float]:
    """One meta-iteration (Algorithm 1, lines 3-10); returns its metrics, measured before the update."""
    model = setup.model
    out = meta_forward(model, setup.sampler.sample(tasks), setup.inner, setup.dtype, setup.chunk_tasks)
    setup.optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    norms = [squared_norm(model.head.parameters()), squared_norm(model.body.parameters())]
    setup.optimizer.step()
    # One host sync per iteration for all the scalars, not one .item() per metric.
    values = torch.stack([out.loss.detach(), out.accuracy, *norms, out.support_before, out.support_after]).tolist()
    names = ("loss", "accuracy", "grad_norm_w", "grad_norm_phi", "support_loss_before", "support_loss_after")
    return dict(zip(names, values))


def run(config: TrainConfig, out_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Meta-train as `config` says; write metrics.csv and summary.json into `out_dir`."""
    started = time.perf_counter()
    device = resolve_device(config.device)
    setup = build(config, device)
    log.info(
        "training %s ANIL, N=%d, alpha=%g, B=%d on %s (%s), run dir %s",
        config.geometry.name, config.N, setup.inner.stepsize, config.B, device, config.dataset.name, out_dir,
    )
    train_time, row = 0.0, {}
    bar = tqdm(total=config.iterations, disable=not progress, desc=f"{config.geometry.name} N={config.N}", unit="it")
    with MetricsWriter(out_dir / "metrics.csv") as writer:
        for iteration in range(1, config.iterations + 1):
            tick = time.perf_counter()
            metrics = meta_step(setup, config.B)
            train_time += time.perf_counter() - tick
            row = {"iteration": iteration, "time": train_time, **metrics}
            if (config.eval_every and iteration % config.eval_every == 0) or iteration == config.iterations:
                row["val_loss"], row["val_accuracy"] = evaluate(
                    setup.model, setup.val_batches, setup.inner, setup.dtype, setup.chunk_tasks
                )
                log.info("iteration %d: loss %.4f, val loss %.4f, val accuracy %.3f",
                         iteration, row["loss"], row["val_loss"], row["val_accuracy"])
            writer.write(row)
            bar.update()
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.2f}", refresh=False)
    bar.close()
    summary = {
        "status": "completed",
        "iterations": config.iterations,
        "final": row,
        "train_time_s": train_time,
        "wall_time_s": time.perf_counter() - started,
        "seconds_per_iteration": train_time / config.iterations,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        "torch": torch.__version__,
        "config_digest": config.digest(),
    }
    write_json_atomic(out_dir / "summary.json", summary)
    log.info("done: loss %.4f, val accuracy %.3f, %.1f s training", row["loss"], row["val_accuracy"], train_time)
    return summary


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


# --- the Hydra edge ------------------------------------------------------------------------------


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    config = from_dict(OmegaConf.to_container(cfg, resolve=True))
    hydra_config = HydraConfig.get()
    progress = hydra_config.mode != RunMode.MULTIRUN and sys.stderr.isatty()
    try:
        run(config, Path(hydra_config.runtime.output_dir), progress=progress)
    except (DatasetError, ConfigError) as error:  # bad data or device: one line, not a traceback
        print(f"anil train: {error}", file=sys.stderr)
        raise SystemExit(1) from None


INFO_FLAGS = {"-h", "--help", "--hydra-help", "-i", "--info", "-c", "--cfg", "--resolve", "-sc", "--shell-completion", "--version"}
VALUE_FLAGS = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-p", "--package"}


def check_overrides(args: list[str]) -> None:
    """Compose and check every job that `anil train ARGS` would run, before Hydra makes a directory.

    Raises ConfigError with one line on the first bad value, unknown key or unknown option.
    """
    if any(a.split("=")[0] in INFO_FLAGS for a in args):
        return  # Hydra prints help or config and exits; nothing is trained
    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = _override_args(args)
    parser, parsed = OverridesParser.create(), []
    for override in overrides:
        try:
            parsed.append(parser.parse_override(override))
        except HydraException as error:
            raise ConfigError(f"cannot parse '{override}': {_first_line(error)} (quote values that hold '=' or ',')") from None
    sweeps = {o.get_key_element(): o for o in parsed if o.is_sweep_override()}
    if sweeps and not multirun:
        raise ConfigError(f"'{next(iter(sweeps.values())).input_line}' sweeps several values: add -m to run one job per value")
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    fixed_keys = {o.get_key_element() for o in parsed if not o.is_sweep_override()}
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="train"):
        base = _compose(fixed, hydra=True)
        if multirun:  # an experiment may carry its own sweep (hydra.sweeper.params)
            params = base.hydra.sweeper.get("params") or {}
            for key, value in params.items():
                if key not in sweeps and key not in fixed_keys:  # the command line wins
                    sweeps[key] = OverridesParser.create().parse_override(f"{key}={value}")
        grid = [[f"{key}={v}" for v in _values(o)] for key, o in sweeps.items()]
        for combination in itertools.product(*grid):
            cfg = _compose(fixed + list(combination), hydra=False)
            from_dict(OmegaConf.to_container(cfg, resolve=True))


def _override_args(args: list[str]) -> list[str]:
    overrides, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in VALUE_FLAGS:
            skip = True
        elif not arg.startswith("-"):
            overrides.append(arg)
    return overrides


def _values(override: Any) -> list[str]:
    if override.is_sweep_override():
        try:
            return list(override.sweep_string_iterator())
        except HydraException as error:
            raise ConfigError(f"{override.input_line}: {_first_line(error)}") from None
    return [override.get_value_element_as_str()]


def _compose(overrides: list[str], hydra: bool) -> DictConfig:
    try:
        return compose(config_name="train", overrides=overrides, return_hydra_config=hydra)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(_explain(error)) from None


def _explain(error: Exception) -> str:
    text = _first_line(error)
    if text.startswith("Could not override '") or "is not in struct" in str(error):
        key = text.split("'")[1] if "'" in text else "?"
        return f"unknown key '{key}'; `anil train --help` lists the keys (use +{key}=... only to add a new one)"
    missing = re.search(r"Could not find '([\w-]+)/([^']+)'", text)
    if missing and (CONF_DIR / missing.group(1)).is_dir():
        group, option = missing.groups()
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        return f"{group}={option} is not an option; choose one of: {', '.join(options)}"
    return text


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
