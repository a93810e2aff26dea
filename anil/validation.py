"""The checks a type cannot express: ranges, choices and rules across fields of a `TrainConfig`,
each failing with one line that names the key (ConfigError); and `from_dict`, which turns a plain
tree (a checkpoint's saved config) back into a checked `TrainConfig`."""

from __future__ import annotations

import math
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from anil.config import ConfigError, DatasetConfig, TrainConfig, explain
from anil.geometry import Geometry

CHOICES: dict[str, tuple[str, ...]] = {
    "algorithm": ("anil", "maml"),
    "engine": ("batched", "per_task"),
    "init": ("pytorch", "authors"),  # anil.engine.model.INITS (a test keeps them equal)
    "dtype": ("float32", "float64"),
    "alpha_schedule": ("constant", "inverse_n", "authors"),
    "dataset.name": ("embedded", "embedded_hard", "procedural", "fc100", "miniimagenet"),
    "geometry.name": tuple(g.value for g in Geometry),
    "optim.name": ("adam", "sgd"),
    "optim.beta_schedule": ("constant", "inverse_n"),
}

FORMATS: dict[str, tuple[str, ...]] = {
    "embedded": ("auto",),
    "embedded_hard": ("auto",),
    "procedural": ("auto",),
    "fc100": ("auto", "cifar", "pickles"),
    "miniimagenet": ("auto", "csv", "folders", "pickles"),
}

WANDB_MODES = ("offline", "online", "disabled")
FILE_DATASETS = ("fc100", "miniimagenet")  # read from the user's files; the others are rendered
RENDERED_ONLY = ("train_classes", "val_classes", "test_classes", "instances", "jitter", "distortion", "clutter")

# key -> (lowest allowed value, whether the bound is strict, what the key means)
BOUNDS: dict[str, tuple[float, bool, str]] = {
    "seed": (0, False, "random seed"),
    "N": (1, False, "inner-loop steps"),
    "alpha": (0, True, "inner stepsize"),
    "lam": (0, False, "inner-loss regularisation"),
    "ways": (2, False, "classes per task"),
    "shots": (1, False, "support samples per class"),
    "query": (1, False, "query samples per class"),
    "B": (1, False, "tasks per meta-batch"),
    "task_chunk": (0, False, "tasks per backward pass"),
    "iterations": (1, False, "meta-iterations"),
    "eval_every": (0, False, "validation interval"),
    "eval_tasks": (1, False, "validation tasks"),
    "grad_eval_every": (0, False, "meta-gradient evaluation interval"),
    "grad_eval_tasks": (1, False, "tasks of the meta-gradient evaluation"),
    "checkpoint_every": (0, False, "checkpoint interval"),
    "blowup_loss": (0, True, "blow-up threshold"),
    "max_eval_hours": (0, True, "longest projected time of the run's evaluations"),
    "dataset.image_size": (16, False, "image side in pixels (Conv-4 halves it four times)"),
    "dataset.train_classes": (2, False, "meta-train classes"),
    "dataset.val_classes": (2, False, "validation classes"),
    "dataset.test_classes": (2, False, "test classes"),
    "dataset.instances": (2, False, "images per class"),
    "dataset.jitter": (0, False, "translation jitter"),
    "dataset.distortion": (0, False, "drawer distortion"),
    "dataset.clutter": (0, False, "distractor strokes per image"),
    "geometry.hidden": (0, False, "hidden width"),
    "optim.beta_w": (0, True, "outer stepsize for w"),
    "optim.beta_phi": (0, True, "outer stepsize for phi"),
    "optim.momentum": (0, False, "SGD momentum"),
}


# key -> (highest allowed value, what the key means)
UPPER_BOUNDS: dict[str, tuple[float, str]] = {
    "seed": (2**32 - 1, "random seed (NumPy's seeds are 32-bit)"),
}


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """Merge a plain tree onto the schema's defaults, type-checked, then `validate` it.
    Keys missing from `values` (added to the schema after it was written) take their defaults."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), values)
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise ConfigError(explain(error)) from None
    assert isinstance(config, TrainConfig)
    validate(config)
    return config


def value_at(config: TrainConfig, key: str) -> Any:
    """config.value_at("dataset.root") -> config.dataset.root."""
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def validate(config: TrainConfig) -> None:
    """The checks a type cannot express; raises ConfigError with one line on the first problem."""
    for key, allowed in CHOICES.items():
        value = value_at(config, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of: {', '.join(allowed)}")
    for key, (low, strict, meaning) in BOUNDS.items():
        value = value_at(config, key)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value!r}: {meaning} must be a finite number")
        if value < low or (strict and value == low):
            relation = ">" if strict else ">="
            raise ConfigError(f"{key}={value!r}: {meaning} must be {relation} {low}")
    for key, (high, meaning) in UPPER_BOUNDS.items():
        value = value_at(config, key)
        if value > high:
            raise ConfigError(f"{key}={value!r}: {meaning} must be <= {high}")
    check_device(config.device)
    _check_geometry(config)
    _check_dataset(config)
    if config.algorithm == "maml" and (config.bf16 or config.compile_body):
        raise ConfigError(
            "bf16 and compile_body apply to algorithm=anil only (MAML runs each task's body on its own); drop them"
        )
    if config.cuda_graphs and config.compile_body:
        raise ConfigError("cuda_graphs and compile_body: choose one (torch.compile captures graphs of its own)")
    if config.engine == "per_task" and (config.algorithm != "anil" or config.bf16):
        raise ConfigError(
            "engine=per_task is ANIL's per-task loop, in dtype: use it with algorithm=anil and bf16=false"
        )
    if config.logger.wandb is not None and config.logger.wandb.mode not in WANDB_MODES:
        raise ConfigError(f"logger.wandb.mode={config.logger.wandb.mode!r} is not one of: {', '.join(WANDB_MODES)}")
    if config.optim.name == "adam" and config.optim.momentum != 0:
        raise ConfigError("optim.momentum applies to optim=sgd only; drop it or use optim=sgd")


def _check_geometry(config: TrainConfig) -> None:
    if config.geometry.name == Geometry.convex and config.lam <= 0:
        raise ConfigError(
            f"lam={config.lam!r}: geometry=convex needs lam > 0 so the inner loss is strongly convex; e.g. lam=0.01"
        )
    if config.geometry.name == Geometry.nonconvex and config.geometry.hidden < 1:
        raise ConfigError(
            f"geometry.hidden={config.geometry.hidden!r}: the nonconvex head needs a hidden width >= 1; "
            "e.g. geometry.hidden=64"
        )


def _check_dataset(config: TrainConfig) -> None:
    data = config.dataset
    if data.format not in FORMATS[data.name]:
        allowed = ", ".join(FORMATS[data.name])
        raise ConfigError(f"dataset.format={data.format!r} is not one of: {allowed} (dataset={data.name})")
    if data.name in FILE_DATASETS:
        if not data.root:
            raise ConfigError(f"dataset={data.name} needs dataset.root=PATH, the folder holding the files (see README)")
        defaults = DatasetConfig()
        changed = [key for key in RENDERED_ONLY if getattr(data, key) != getattr(defaults, key)]
        if changed:
            raise ConfigError(
                f"dataset.{changed[0]} applies to the rendered datasets (embedded, procedural); "
                f"dataset={data.name} takes its classes and images from the files: drop it"
            )
        return  # class and image counts come from the files; the loader checks them
    smallest = min(data.train_classes, data.val_classes, data.test_classes)
    if config.ways > smallest:
        raise ConfigError(
            f"ways={config.ways} but a split of dataset={data.name} has only {smallest} classes; lower ways"
        )
    if config.shots + config.query > data.instances:
        raise ConfigError(
            f"shots + query = {config.shots + config.query} but dataset.instances={data.instances} images per class; "
            "lower shots or query"
        )


def check_device(device: str, key: str = "device") -> None:
    """auto, cpu, cuda or cuda:K; anything else is a ConfigError naming `key`."""
    if not (device in ("auto", "cpu", "cuda") or _is_cuda_index(device)):
        raise ConfigError(f"{key}={device!r} is not one of: auto, cpu, cuda, cuda:K")


def _is_cuda_index(device: str) -> bool:
    prefix, _, index = device.partition(":")
    return prefix == "cuda" and index.isdigit()
