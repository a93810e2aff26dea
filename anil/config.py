"""The configuration schema: one set of typed defaults for every run.

The dataclasses below are the only place a default lives. The command line registers them as the
schema that conf/*.yaml extends (Hydra's structured configs), so every value is type-checked when
the config is composed; the YAML files hold only what differs per option. anil/validation.py
adds the checks a type cannot express (ranges, choices, and rules across fields) and turns a
plain tree (a checkpoint's saved config) back into a checked `TrainConfig`.

Nothing here imports Hydra; OmegaConf does the typed merge.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from anil.geometry import Geometry


class ConfigError(ValueError):
    """A config value that cannot be used; the message is one line naming the key."""


AUTHORS_LARGE_N = 10  # alpha_schedule=authors halves alpha from this N on


@dataclass
class DatasetConfig:
    # embedded, embedded_hard (KanjiVG characters) | procedural (synthetic glyphs) | fc100 | miniimagenet
    name: str = "embedded"
    root: Optional[str] = None  # folder with the data files (fc100, miniimagenet), or its parent
    format: str = "auto"  # auto-detect, or force one: fc100: cifar|pickles; miniimagenet: csv|folders|pickles
    image_size: int = 28  # images are image_size x image_size (resized if the files differ)
    train_classes: int = 1000  # meta-train classes (rendered datasets)
    val_classes: int = 100  # validation classes (held out, used every eval_every)
    test_classes: int = 200  # meta-test classes (held out)
    instances: int = 20  # images per class (rendered datasets)
    jitter: float = 6.0  # std of the per-image translation, in units of the 109-unit KanjiVG canvas
    distortion: float = 1.0  # scales the drawer's rotation, shear, aspect, stroke offsets and wobble (rendered)
    clutter: int = 0  # distractor strokes drawn at random places on every image (rendered datasets)
    cache_dir: Optional[str] = None  # where rendered / decoded arrays are cached; None: $ANIL_CACHE or ~/.cache/anil


@dataclass
class GeometryConfig:
    name: Geometry = Geometry.convex  # convex: linear head | nonconvex: Linear -> ReLU -> Linear head
    hidden: int = 0  # hidden width of the nonconvex head (unused by convex)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam (the authors' code) | sgd (the theory)
    beta_w: float = 0.001  # outer stepsize for the head initialisation w
    beta_phi: float = 0.001  # outer stepsize for the body phi
    momentum: float = 0.0  # SGD momentum (0 = plain SGD as in Algorithm 1)
    beta_schedule: str = "constant"  # constant: beta_w, beta_phi at every N | inverse_n: both / N (Theorem 2)


@dataclass
class TensorboardConfig:
    log_dir: Optional[str] = None  # None: <run dir>/tensorboard (tensorboard --logdir outputs shows every run)


@dataclass
class MlflowConfig:
    tracking_uri: Optional[str] = None  # None: a local file store, outputs/mlruns under the launch folder
    experiment: str = "anil"  # the MLflow experiment every run of a sweep goes into


@dataclass
class WandbConfig:
    project: str = "anil"
    mode: str = "offline"  # offline (no account or network needed; `wandb sync` later) | online | disabled
    dir: Optional[str] = None  # None: the run dir (its offline run lands in <run dir>/wandb)


@dataclass
class LoggerConfig:
    """Experiment trackers beside metrics.csv, which is always written and stays the record. A
    tracker is on when its section is set: `logger=tensorboard`, `logger=[tensorboard,mlflow]`."""

    tensorboard: Optional[TensorboardConfig] = None
    mlflow: Optional[MlflowConfig] = None
    wandb: Optional[WandbConfig] = None


@dataclass
class TrainConfig:
    seed: int = 0  # seeds model init, task sampling and the validation tasks
    init: str = "pytorch"  # pytorch: PyTorch's layer defaults | authors: as the paper's code (the paper's experiments)
    device: str = "auto"  # auto (CUDA when present, else CPU) | cpu | cuda | cuda:K
    dtype: str = "float32"  # float32 | float64
    bf16: bool = False  # autocast the body to bfloat16 (GPU tensor cores); the inner loop stays in dtype
    compile_body: bool = False  # torch.compile the body (pays off on a GPU for long runs)
    cuda_graphs: bool = False  # replay each meta-iteration from one CUDA graph (launch overhead stops growing with N)
    algorithm: str = "anil"  # anil: the inner loop adapts the head | maml: every parameter (Table 2's baseline)
    engine: str = (
        "batched"  # batched: all tasks at once | per_task: a Python loop over tasks (learn2learn's cost model)
    )
    N: int = 5  # inner-loop gradient steps on the support set
    alpha: float = 0.1  # inner stepsize (the authors: 0.1, and 0.05 for N >= 10)
    alpha_schedule: str = "constant"  # constant: alpha | inverse_n: alpha / N | authors: alpha, alpha / 2 for N >= 10
    first_order: bool = False  # drop the second-order terms of Proposition 1
    lam: float = 0.01  # (lam/2)||w||^2 in the inner loss; > 0 for geometry=convex
    ways: int = 5  # classes per task
    shots: int = 5  # support samples per class
    query: int = 5  # query samples per class
    B: int = 32  # tasks per meta-batch
    task_chunk: int = 0  # tasks per backward pass: the same meta-gradient in pieces, less memory (0: all B at once)
    iterations: int = 1000  # meta-iterations (the authors: 1000 on FC100, 2000 on miniImageNet)
    eval_every: int = 100  # validation every this many iterations (0: only at the end)
    eval_tasks: int = 100  # validation tasks per evaluation (the same tasks every time)
    grad_eval_every: int = 0  # every this many iterations, ||dL/dw||^2 and ||dL/dphi||^2 of the full objective (0: off)
    grad_eval_tasks: int = 256  # training tasks that estimate the full objective (the same for every N and seed)
    max_eval_hours: float = 24.0  # refuse a run whose evaluations are projected (from one timed batch) to take longer
    checkpoint_every: int = 100  # write checkpoint.pt every this many iterations and at exit (0: only at exit)
    resume: bool = False  # continue the run in this run directory from its checkpoint (or: anil resume RUN_DIR)
    blowup_loss: float = 1e4  # a training loss above this (or a non-finite loss or gradient) stops the run as diverged
    fail_on_divergence: bool = False  # exit 1 on divergence (default 0, so the other jobs of a sweep go on)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    @property
    def inner_stepsize(self) -> float:
        """The alpha actually used per inner step."""
        return inner_stepsize(self.alpha, self.alpha_schedule, self.N)

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (a Geometry as its string), as checkpoints and run folders store them."""
        return dataclasses.asdict(self, dict_factory=_plain)

    def digest(self) -> str:
        """A short hash of every value: two runs with the same digest used the same config."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def training_values(self) -> dict[str, Any]:
        """The values that decide what is trained: a checkpoint resumes only under the same ones.
        Run length, device, evaluation and checkpoint cadence may change between sessions."""
        values = flatten(self.to_dict())
        return {k: v for k, v in values.items() if k not in RESUMABLE_CHANGES and not k.startswith("logger")}


def _plain(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {key: value.value if isinstance(value, enum.Enum) else value for key, value in pairs}


def outer_stepsizes(optim: OptimConfig, steps: int) -> tuple[float, float]:
    """(beta_w, beta_phi) at N = `steps`: as configured, or divided by N where Theorem 2 (nonconvex
    inner loop) prescribes stepsizes of order 1/N because the meta-objective's smoothness grows with N."""
    scale = 1 / steps if optim.beta_schedule == "inverse_n" else 1.0
    return optim.beta_w * scale, optim.beta_phi * scale


def inner_stepsize(alpha: float, schedule: str, steps: int) -> float:
    """The per-step inner stepsize of a schedule: alpha, alpha / N, or the authors' halving from N = 10."""
    if schedule == "inverse_n":
        return alpha / steps
    if schedule == "authors" and steps >= AUTHORS_LARGE_N:
        return alpha / 2  # the authors' code used 0.1, and 0.05 for N >= 10
    return alpha


RESUMABLE_CHANGES = frozenset(
    {
        "iterations",
        "device",
        "eval_every",
        "eval_tasks",
        "grad_eval_every",
        "grad_eval_tasks",
        "max_eval_hours",
        "task_chunk",
        "checkpoint_every",
        "resume",
        "blowup_loss",
        "fail_on_divergence",
        "dataset.cache_dir",
        "dataset.root",
    }
)


def resolve_references(values: dict[str, Any]) -> dict[str, Any]:
    """A recorded config with its ${key} references replaced by their values (an experiment may set
    one key from another, e.g. optim.beta_phi: ${optim.beta_w}). ValueError naming the reference
    that cannot be resolved."""
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(values), resolve=True)
    except OmegaConfBaseException as error:
        raise ValueError(f"a ${{...}} reference does not resolve: {explain(error)}") from None
    assert isinstance(resolved, dict)
    return {str(k): v for k, v in resolved.items()}


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat


def explain(error: OmegaConfBaseException) -> str:
    """OmegaConf's multi-line message as one line that names the key."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    key = error.full_key
    if key and "not in" in first and "Key '" in first:
        return f"unknown key '{key}'; `anil train --help` lists the keys"
    if key and ("could not be converted to" in first or "is not a valid bool" in first):
        return f"{key}={error.value!r} is not {_expected(first)}"
    return f"{key}: {first}" if key else first


def _expected(message: str) -> str:
    for marker, kind in (("Integer", "a whole number"), ("Float", "a number"), ("bool", "true/false")):
        if marker in message:
            return kind
    return "of the right type"
