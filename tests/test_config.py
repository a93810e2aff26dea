"""Config composition for every group option, and one clear line for each bad value."""

import os
import subprocess

import pytest
import yaml

from anil.cli.checks import check_overrides, job_overrides
from anil.cli.compose import compose_train, config_groups, hydra_context
from anil.config import ConfigError, TrainConfig, flatten
from anil.validation import from_dict
from helpers import REPO, anil, anil_command, compose_config

GROUPS = config_groups()


@pytest.mark.parametrize("group,option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_group_option_composes_and_validates(group, option, tmp_path):
    needs_root = "fc100" in option or "miniimagenet" in option  # a real dataset (or its experiments) needs its folder
    config = compose_config([f"{group}={option}"] + ([f"dataset.root={tmp_path}"] if needs_root else []))
    assert isinstance(config, TrainConfig)
    if group in ("dataset", "geometry", "optim"):
        assert getattr(config, group).name == option
    if option in ("fc100", "miniimagenet"):
        assert config.dataset.name == option and config.dataset.image_size == {"fc100": 32, "miniimagenet": 84}[option]


def test_defaults_follow_design_notes():
    config = compose_config([])
    assert (config.B, config.alpha, config.lam, config.ways, config.shots, config.query) == (32, 0.1, 0.01, 5, 5, 5)
    assert config.geometry.name == "convex" and config.optim.name == "adam"
    assert config.optim.beta_w == config.optim.beta_phi == 0.001


def test_geometry_sets_its_own_head_and_regulariser():
    nonconvex = compose_config(["geometry=nonconvex"])
    assert nonconvex.geometry.hidden > 0 and nonconvex.lam == 0.0


def test_inverse_n_schedule_divides_alpha():
    assert compose_config(["alpha_schedule=inverse_n", "N=4", "alpha=0.2"]).inner_stepsize == pytest.approx(0.05)
    assert compose_config(["N=4", "alpha=0.2"]).inner_stepsize == pytest.approx(0.2)


def test_inverse_n_outer_schedule_divides_both_outer_stepsizes():
    from anil.engine.model import AnilNet
    from anil.run.setup import make_optimizer

    model = AnilNet("convex", 28, 1, 5, 0)
    overrides = ["optim=sgd", "optim.beta_w=0.2", "optim.beta_phi=0.4", "N=4"]
    for schedule, expected in (("inverse_n", [0.05, 0.1]), ("constant", [0.2, 0.4])):
        config = compose_config(overrides + [f"optim.beta_schedule={schedule}"])
        optimizer = make_optimizer(model, config.optim, config.N)
        assert [group["lr"] for group in optimizer.param_groups] == pytest.approx(expected)


def test_authors_schedule_halves_alpha_from_n_10():
    steps = [compose_config(["alpha_schedule=authors", f"N={n}", "alpha=0.1"]).inner_stepsize for n in (9, 10, 20)]
    assert steps == pytest.approx([0.1, 0.05, 0.05])


def test_figure_experiments_carry_their_grids():
    fig1 = compose_config(["experiment=fig1_fc100", "dataset.root=/data"])
    assert fig1.geometry.name == "convex" and fig1.alpha_schedule == "authors" and fig1.dataset.name == "fc100"
    assert compose_config(["experiment=fig2_embedded"]).geometry.name == "nonconvex"


@pytest.mark.parametrize(
    "args,key",
    [
        (["N=-1"], "N"),
        (["ways=0"], "ways"),
        (["alpha=abc"], "alpha"),
        (["lam=0"], "lam"),
        (["foo=1"], "foo"),
        (["geometry=bogus"], "geometry"),
        (["first_order=maybe"], "first_order"),
        (["device=tpu"], "device"),
        (["optim.beta_phi=-1"], "optim.beta_phi"),
        (["optim.beta_schedule=half"], "optim.beta_schedule"),
        (["ways=200"], "ways"),
        (["-m", "N=1,-2"], "N"),
        (["-m", "experiment=demo", "N=0"], "N"),
        (["N=1,3"], "N=1,3"),
        (["dataset=fc100"], "dataset.root"),
        (["dataset=miniimagenet", "dataset.root=/x", "dataset.format=cifar"], "dataset.format"),
        (["dataset=fc100", "dataset.root=/x", "dataset.train_classes=3"], "dataset.train_classes"),
        (["cuda_graphs=true", "compile_body=true"], "cuda_graphs"),
    ],
)
def test_bad_values_are_named(args, key):
    with pytest.raises(ConfigError) as error:
        check_overrides(args)
    message = str(error.value)
    assert key in message and "\n" not in message


def test_from_dict_rejects_unknown_nested_key():
    with pytest.raises(ConfigError, match="dataset.colour"):
        from_dict({"dataset": {"colour": 1}})


def test_bad_config_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    result = anil("train", "N=-1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["anil train: config error: N=-1: inner-loop steps must be >= 1"]
    assert list(tmp_path.iterdir()) == []


def test_help_lists_the_groups(tmp_path):
    result = anil("train", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for group, options in GROUPS.items():
        assert f"{group}: {', '.join(options)}" in result.stdout


def test_the_schema_defaults_equal_the_composed_default_config():
    """conf/*.yaml extend the typed schema; composing no override must give exactly its defaults
    (a YAML value that silently differs from the schema would fail here)."""
    assert compose_config([]) == TrainConfig()


def test_option_files_hold_only_what_differs_from_the_schema():
    """conf/<group>/*.yaml carry deltas: a value equal to the schema's default would silently stop
    following it. (The experiment files pin the paper's settings on purpose and are not checked.)"""
    defaults = flatten(TrainConfig().to_dict())
    restated = []
    for group in ("geometry", "optim", "logger", "dataset"):
        for path in sorted((REPO / "conf" / group).glob("*.yaml")):
            text = path.read_text()
            package = text.split("@package ", 1)[1].split()[0] if "@package" in text else group
            prefix = "" if package == "_global_" else f"{package}."
            values = flatten(yaml.safe_load(text) or {})
            restated += [
                f"{path.name}: {key}" for key, v in values.items() if defaults.get(prefix + key, object()) == v
            ]
    assert not restated, restated


def test_from_dict_checks_types_against_the_schema():
    with pytest.raises(ConfigError, match="N='many' is not a whole number"):
        from_dict({"N": "many"})
    assert from_dict({"N": 3}).N == 3 and from_dict({}).N == TrainConfig().N  # missing keys take defaults


def test_sweep_expansion_is_hydras_own(tmp_path):
    """The jobs checked before launch are exactly the jobs Hydra launches: the experiment's own
    sweep (demo: geometry x N) with the command line winning for N, and a fixed override kept."""
    sweep = tmp_path / "sweep"
    args = ["experiment=demo", "dataset=procedural", "iterations=1", "eval_every=0", "eval_tasks=2", "B=2",
            "device=cpu", "N=1,2"]  # fmt: skip
    result = anil("train", "-m", *args, f"hydra.sweep.dir={sweep}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    launched = sorted(
        tuple(sorted(yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())))
        for job in sweep.iterdir() if (job / ".hydra").is_dir()
    )  # fmt: skip
    with hydra_context():
        params = compose_train(["experiment=demo"], with_hydra=True).hydra.sweeper.params
    checked = sorted(tuple(sorted(job)) for job in job_overrides(args, {k: str(v) for k, v in params.items()}))
    assert len(launched) == 4 and checked == launched


@pytest.mark.slow  # a process: completion reads COMP_LINE from its environment
def test_shell_completion_completes_anil_train(tmp_path):
    env = {**os.environ, "COMP_LINE": "anil train geometry=", "COMP_POINT": "20"}
    result = subprocess.run(
        [*anil_command(), "-sc", "query=bash"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0 and result.stdout.split() == ["geometry=convex", "geometry=nonconvex"]
    script = anil("train", "-sc", "install=bash").stdout
    assert "complete -o nospace -o default -F hydra_bash_completion anil" in script
    assert list(tmp_path.iterdir()) == []


def test_a_recorded_config_with_references_reads_back_resolved():
    from anil.config import resolve_references

    recorded = {"optim": {"beta_w": 0.2, "beta_phi": "${optim.beta_w}"}, "N": 5}
    assert resolve_references(recorded)["optim"]["beta_phi"] == 0.2
    with pytest.raises(ValueError, match="does not resolve"):
        resolve_references({"optim": {"beta_phi": "${optim.missing}"}})


@pytest.mark.parametrize("key", ["dataset.root", "dataset.cache_dir", "device"])
def test_sweeping_a_key_left_out_of_job_folder_names_is_refused(tmp_path, key):
    result = anil("train", "-m", f"{key}=a,b", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"{key} is left out of job folder names" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
