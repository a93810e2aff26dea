"""Hydra at the edge: where the configs live, the typed schema they extend, and composing a config
with Hydra's errors turned into one line that names the key.

The dataclasses of anil/config.py are registered in Hydra's ConfigStore as `anil_schema`, the first
entry of conf/train.yaml's defaults list: every YAML value and every command-line override is
type-checked against them during composition.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import anil
from anil.config import ConfigError, TrainConfig, explain
from anil.validation import from_dict


def find_conf() -> Path:
    """The Hydra config tree: the package anil.conf (an installed wheel carries it; an editable
    install maps it to conf/ at the top of the repository), else conf/ beside the package."""
    try:
        location = Path(str(resources.files("anil.conf")))
        if (location / "train.yaml").is_file():
            return location
    except ModuleNotFoundError:
        pass
    return Path(anil.__file__).resolve().parent.parent / "conf"


CONF_DIR = find_conf()
CONFIG_NAME = "train"
SCHEMA = "anil_schema"


def register_schema() -> None:
    """Make the typed defaults available to conf/train.yaml (idempotent)."""
    ConfigStore.instance().store(name=SCHEMA, node=TrainConfig)


def config_groups() -> dict[str, list[str]]:
    """Each config group of conf/ with its options, as `anil train --help` lists them."""
    groups = sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra" and not p.name.startswith("_"))
    return {g.name: sorted(p.stem for p in g.glob("*.yaml")) for g in groups}


def compose_train(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """The `anil train` config for `overrides`, composed as Hydra composes it. Must run inside
    `hydra_context()`. Raises ConfigError with one line on a bad override or value."""
    try:
        return compose(config_name=CONFIG_NAME, overrides=overrides, return_hydra_config=with_hydra)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(explain_hydra(error)) from None
    except ValueError:  # Hydra's defaults list refuses `group=null` with a bare ValueError
        emptied = [o.split("=")[0] for o in overrides if o.endswith("=null") and o.split("=")[0] in config_groups()]
        if not emptied:
            raise
        group = emptied[0]
        raise ConfigError(
            f"{group}=null: a run needs a {group}; choose one of: {', '.join(config_groups()[group])}"
        ) from None


def hydra_context() -> Any:
    register_schema()
    return initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name=CONFIG_NAME)


def typed(cfg: DictConfig) -> TrainConfig:
    """A composed config (Hydra's keys left out) as a checked TrainConfig."""
    try:
        values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:  # interpolation errors surface when resolving
        raise ConfigError(explain(error)) from None
    assert isinstance(values, dict)
    values.pop("hydra", None)
    return from_dict({str(k): v for k, v in values.items()})


def compose_typed(overrides: list[str]) -> TrainConfig:
    """compose_train + typed, in a Hydra context of its own (for commands other than `anil train`)."""
    with hydra_context():
        return typed(compose_train(overrides))


def sweep_grid(experiment: str, key: str = "N", extra: tuple[str, ...] = ()) -> list[TrainConfig]:
    """The configs of an experiment's own sweep along `key` (its hydra.sweeper.params), each at
    the experiment's other defaults (and the `extra` overrides, e.g. a dataset.root): what a timing
    of every configuration needs, without Hydra."""
    values = swept(experiment, key, extra)
    with hydra_context():
        return [typed(compose_train([f"experiment={experiment}", f"{key}={value}", *extra])) for value in values]


def swept(experiment: str, key: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The values an experiment's own sweep gives `key` (a comma list in its hydra.sweeper.params)."""
    return str(_swept(experiment, extra)[key]).split(",")


def sweep_jobs(experiment: str) -> int:
    """How many jobs the experiment's own sweep launches: the product of its swept values' counts
    (a comma list, or range(k))."""
    jobs = 1
    for value in _swept(experiment).values():
        text = str(value)
        ranged = re.fullmatch(r"range\((\d+)\)", text)
        jobs *= int(ranged.group(1)) if ranged else len(text.split(","))
    return jobs


def _swept(experiment: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The experiment's hydra.sweeper.params: swept key -> its values as written."""
    with hydra_context():
        return dict(compose_train([f"experiment={experiment}", *extra], with_hydra=True).hydra.sweeper.params)


def explain_hydra(error: Exception) -> str:
    """Hydra's and OmegaConf's multi-line errors as one line naming the key and the fix."""
    cause = _omegaconf_cause(error)
    text = first_line(error)
    if text.startswith("Could not override '") or "is not in struct" in str(error):
        key = text.split("'")[1] if "'" in text else "?"
        return f"unknown key '{key}'; `anil train --help` lists the keys (use +{key}=... only to add a new one)"
    missing = re.search(r"Could not find '([\w/-]+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        options = config_groups().get(group) or _hydra_options(group)
        if options:
            return f"{group}={option} is not an option; choose one of: {', '.join(options)}"
        return f"{group}={option} is not an option"
    if cause is not None:
        return explain(cause)
    return text


def _hydra_options(group: str) -> list[str]:
    """Options of a Hydra-provided group (e.g. hydra/launcher) as the ConfigStore and conf/ hold them."""
    options = set()
    folder = CONF_DIR / group
    if folder.is_dir():
        options |= {p.stem for p in folder.glob("*.yaml")}
    try:
        stored = ConfigStore.instance().list(group)
    except (OSError, KeyError, ValueError):  # the group is unknown to the store
        stored = []
    options |= {name.removesuffix(".yaml") for name in stored}
    return sorted(options)


def _omegaconf_cause(error: BaseException) -> OmegaConfBaseException | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OmegaConfBaseException):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
