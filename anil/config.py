"""Typed run configuration: the schema every YAML value is checked against.

Hydra composes a plain tree of values; `from_dict` turns it into frozen dataclasses once, at the
edge, and raises `ConfigError` with one line that names the key and the fix. Nothing below this
module sees an unchecked value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


class ConfigError(ValueError):
    """A config value that cannot be used; the message is one line naming the key."""


AUTHORS_LARGE_N = 10  # alpha_schedule=authors halves alpha from this N on
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"  # the Hydra config tree (conf/ beside anil/)


@dataclass(frozen=True)
class DatasetConfig:
    name: str = "embedded"  # embedded (KanjiVG characters) | procedural (synthetic glyphs) | fc100 | miniimagenet
    root: Optional[str] = None  # folder with the data files (fc100, miniimagenet), or its parent
    format: str = "auto"  # auto-detect, or force one: fc100: cifar|pickles; miniimagenet: csv|folders|pickles
    image_size: int = 28  # images are image_size x image_size (resized if the files differ)
    train_classes: int = 1000  # meta-train classes
    val_classes: int = 100  # validation classes (held out, used every eval_every)
    test_classes: int = 200  # meta-test classes (held out)
    instances: int = 20  # images per class
    jitter: float = 6.0  # std of the per-image translation, in 109-unit canvas units
    cache_dir: Optional[str] = None  # where rendered arrays are cached; None: ~/.cache/anil


@dataclass(frozen=True)
class GeometryConfig:
    name: str = "convex"  # convex: linear head | nonconvex: Linear -> ReLU -> Linear head
    hidden: int = 0  # hidden width of the nonconvex head (unused by convex)


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"  # adam (the authors' code) | sgd (the theory)
    beta_w: float = 0.001  # outer stepsize for the head initialisation w
    beta_phi: float = 0.001  # outer stepsize for the body phi
    momentum: float = 0.0  # SGD momentum (0 = plain SGD as in Algorithm 1)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:K
    dtype: str = "float32"  # float32 | float64
    bf16: bool = False  # autocast the body to bfloat16 (GPU tensor cores); the inner loop stays in dtype
    compile_body: bool = False  # torch.compile the body (pays off on a GPU for long runs)
    algorithm: str = "anil"  # anil: the inner loop adapts the head | maml: every parameter (Table 2's baseline)
    N: int = 5  # inner-loop gradient steps
    alpha: float = 0.1  # inner stepsize
    alpha_schedule: str = "constant"  # constant: alpha | inverse_n: alpha / N | authors: alpha, alpha / 2 for N >= 10
    first_order: bool = False  # drop the second-order terms of Proposition 1
    lam: float = 0.01  # (lam/2)||w||^2 in the inner loss; > 0 for geometry=convex
    ways: int = 5
    shots: int = 5  # support samples per class
    query: int = 5  # query samples per class
    B: int = 32  # tasks per meta-batch
    iterations: int = 1000  # meta-iterations
    eval_every: int = 100  # validation every this many iterations (0: only at the end)
    eval_tasks: int = 100  # validation tasks per evaluation
    checkpoint_every: int = 100  # write checkpoint.pt every this many iterations (0: only at exit)
    resume: bool = False  # continue the run in this run directory from its checkpoint
    blowup_loss: float = 1e4  # a training loss above this (or not finite) stops the run as diverged
    fail_on_divergence: bool = False  # exit 1 on divergence (default 0, so the other jobs of a sweep go on)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    @property
    def inner_stepsize(self) -> float:
        """The alpha actually used per inner step."""
        if self.alpha_schedule == "inverse_n":
            return self.alpha / self.N
        if self.alpha_schedule == "authors" and self.N >= AUTHORS_LARGE_N:
            return self.alpha / 2  # design.md: the authors' code used 0.1, and 0.05 for N >= 10
        return self.alpha

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short hash of every value: two runs with the same digest used the same config."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def training_values(self) -> dict[str, Any]:
        """The values that decide what is trained: a checkpoint resumes only under the same ones.
        Run length, device, evaluation and checkpoint cadence may change between sessions."""
        values = _flatten(self.to_dict())
        return {k: v for k, v in values.items() if k not in RESUMABLE_CHANGES}


RESUMABLE_CHANGES = frozenset(
    {"iterations", "device", "eval_every", "eval_tasks", "checkpoint_every", "resume", "blowup_loss",
     "fail_on_divergence", "dataset.cache_dir", "dataset.root"}
)


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat


CHOICES: dict[str, tuple[str, ...]] = {
    "algorithm": ("anil", "maml"),
    "dtype": ("float32", "float64"),
    "alpha_schedule": ("constant", "inverse_n", "authors"),
    "dataset.name": ("embedded", "procedural", "fc100", "miniimagenet"),
    "geometry.name": ("convex", "nonconvex"),
    "optim.name": ("adam", "sgd"),
}

FORMATS: dict[str, tuple[str, ...]] = {
    "embedded": ("auto",),
    "procedural": ("auto",),
    "fc100": ("auto", "cifar", "pickles"),
    "miniimagenet": ("auto", "csv", "folders", "pickles"),
}

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
    "iterations": (1, False, "meta-iterations"),
    "eval_every": (0, False, "validation interval"),
    "eval_tasks": (1, False, "validation tasks"),
    "checkpoint_every": (0, False, "checkpoint interval"),
    "blowup_loss": (0, True, "blow-up threshold"),
    "dataset.image_size": (8, False, "image side in pixels"),
    "dataset.train_classes": (2, False, "meta-train classes"),
    "dataset.val_classes": (2, False, "validation classes"),
    "dataset.test_classes": (2, False, "test classes"),
    "dataset.instances": (2, False, "images per class"),
    "dataset.jitter": (0, False, "translation jitter"),
    "geometry.hidden": (0, False, "hidden width"),
    "optim.beta_w": (0, True, "outer stepsize for w"),
    "optim.beta_phi": (0, True, "outer stepsize for phi"),
    "optim.momentum": (0, False, "SGD momentum"),
}


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """Check a composed config tree and return it typed; raise ConfigError on the first problem."""
    config = _build(TrainConfig, values, prefix="")
    _check_values(config)
    return config


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a group of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        key = prefix + unknown[0]
        raise ConfigError(f"unknown key '{key}'; known keys here: {', '.join(sorted(names))}")
    kwargs = {}
    for name in names & set(values):
        key, hint = prefix + name, hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, values[name], prefix=key + ".")
        else:
            kwargs[name] = _coerce(key, values[name], hint)
    return cls(**kwargs)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Convert one leaf to its declared type without guessing (no '3.5' -> 3, no 'yes' -> True)."""
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)
    if optional:
        if value is None:
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} is not true/false; e.g. {key}=true")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} is not a whole number; e.g. {key}=5")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(f"{key}={value!r} is not a finite number; e.g. {key}=0.1")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}={value!r} is not a string")
    raise ConfigError(f"{key}: unsupported type {hint}")


def _get(config: TrainConfig, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _check_values(config: TrainConfig) -> None:
    for key, allowed in CHOICES.items():
        value = _get(config, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of: {', '.join(allowed)}")
    for key, (low, strict, meaning) in BOUNDS.items():
        value = _get(config, key)
        if value < low or (strict and value == low):
            relation = ">" if strict else ">="
            raise ConfigError(f"{key}={value!r}: {meaning} must be {relation} {low}")
    if not (config.device in ("auto", "cpu", "cuda") or _is_cuda_index(config.device)):
        raise ConfigError(f"device={config.device!r} is not one of: auto, cpu, cuda, cuda:K")
    if config.geometry.name == "convex" and config.lam <= 0:
        raise ConfigError(
            f"lam={config.lam!r}: geometry=convex needs lam > 0 so the inner loss is strongly convex; e.g. lam=0.01"
        )
    if config.geometry.name == "nonconvex" and config.geometry.hidden < 1:
        raise ConfigError(
            f"geometry.hidden={config.geometry.hidden!r}: the nonconvex head needs a hidden width >= 1; e.g. geometry.hidden=64"
        )
    if config.algorithm == "maml" and (config.bf16 or config.compile_body):
        raise ConfigError("bf16 and compile_body apply to algorithm=anil only (MAML runs each task's body on its own); drop them")
    _check_dataset(config)
    if config.optim.name == "adam" and config.optim.momentum != 0:
        raise ConfigError("optim.momentum applies to optim=sgd only; drop it or use optim=sgd")


def _check_dataset(config: TrainConfig) -> None:
    data = config.dataset
    if data.format not in FORMATS[data.name]:
        raise ConfigError(f"dataset.format={data.format!r} is not one of: {', '.join(FORMATS[data.name])} (dataset={data.name})")
    if data.name in ("fc100", "miniimagenet"):
        if not data.root:
            raise ConfigError(f"dataset={data.name} needs dataset.root=PATH, the folder holding the files (see README)")
        return  # class and image counts come from the files; the loader checks them
    smallest = min(data.train_classes, data.val_classes, data.test_classes)
    if config.ways > smallest:
        raise ConfigError(f"ways={config.ways} but a split of dataset={data.name} has only {smallest} classes; lower ways")
    if config.shots + config.query > data.instances:
        raise ConfigError(
            f"shots + query = {config.shots + config.query} but dataset.instances={data.instances} images per class; lower shots or query"
        )


def _is_cuda_index(device: str) -> bool:
    prefix, _, index = device.partition(":")
    return prefix == "cuda" and index.isdigit()
