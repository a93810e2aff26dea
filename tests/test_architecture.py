"""The package's layers import only downward: the engine and the data layer never reach the run,
analysis or command-line layers; the engine never imports the data layer; only the command line
imports Hydra; imports are absolute (so none escapes these rules); scripts/ drive the package
and nothing imports them; the readers of run folders never load torch; and the project cites
nothing outside its repository."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

PACKAGE = REPO / "anil"

# layer -> the anil modules it may import (its own modules are always allowed); each floor may use
# the modules at the package top and every floor below it
TOP = {"anil.config", "anil.validation", "anil.geometry", "anil.tasks", "anil.atomic"}
ALLOWED = {
    "base": {"anil", *TOP},
    "data": TOP,
    "engine": {"anil.tasks", "anil.geometry"},
    "run": {*TOP, "anil.data", "anil.engine"},
    "testbed": {*TOP, "anil.engine"},  # the theory testbed: its own tasks and trainer, the engine's losses
    "analysis": {*TOP, "anil.data", "anil.engine", "anil.run", "anil.testbed"},
    "cli": {"anil", *TOP, "anil.data", "anil.engine", "anil.run", "anil.analysis", "anil.testbed"},
}
BASE = {"__init__.py", "__main__.py", "config.py", "validation.py", "geometry.py", "tasks.py", "atomic.py"}


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return "base" if len(relative.parts) == 1 else relative.parts[0]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_known_layer():
    for path in modules():
        layer = layer_of(path)
        assert layer in ALLOWED, f"{path} is in no layer"
        if layer == "base":
            assert path.name in BASE, f"{path.name} sits at the package top: put it in a layer's folder"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(path):
    layer = layer_of(path)
    own = "anil" if layer == "base" else f"anil.{layer}"
    allowed = ALLOWED[layer] | {own}
    for name in imports(path):
        if name != "anil" and not name.startswith("anil."):
            continue
        if layer == "base" and path.name == "__main__.py" and name == "anil.cli":
            continue  # `python -m anil` is the command line's entry point
        assert any(name == a or name.startswith(a + ".") for a in allowed if a != "anil") or name in allowed, (
            f"{path.relative_to(REPO)} ({layer}) imports {name}"
        )


def test_imports_are_absolute():
    """A relative import would slip past the layer rules above, which read absolute names."""
    for path in [*modules(), *(REPO / "scripts").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
        assert not relative, f"{path.relative_to(REPO)}: relative import at line(s) {relative}"


@pytest.mark.parametrize("path", sorted((REPO / "scripts").glob("*.py")), ids=lambda p: p.name)
def test_scripts_use_the_package_without_hydra(path):
    """scripts/ are drivers over the package's layers: they import anil but never Hydra (which
    lives in anil/cli only), and no module of the package imports a script."""
    names = imports(path)
    assert not {n for n in names if n == "hydra" or n.startswith(("hydra.", "omegaconf"))}, path.name
    for module in modules():
        assert not {n for n in imports(module) if n == "scripts" or n.startswith("scripts.")}, module


# What reads run folders, sweeps and measured data: `anil plot`, `anil table`, `anil report`, the
# metrics and summary formats, statistics, claims. They start without torch's seconds of import.
TORCH_FREE = [
    "anil.cli.main",
    "anil.cli.plot",
    "anil.cli.table",
    "anil.cli.report",
    "anil.run.metrics",
    "anil.run.outcome",
    "anil.run.folder",
    "anil.run.errors",
    "anil.engine.counters",
    "anil.analysis.plot",
    "anil.analysis.table",
    "anil.analysis.statistics",
    "anil.analysis.claims",
    "anil.analysis.cost",
    "anil.analysis.targets",
    "anil.analysis.smoothness_summary",
    "anil.analysis.probe_log",
    "anil.analysis.overlap",
    "anil.analysis.thresholds",
    "anil.analysis.pricing",
    *sorted(f"anil.analysis.reports.{p.stem}" for p in (PACKAGE / "analysis" / "reports").glob("*.py")),
]
FIRST_TORCH_IMPORT = """
import builtins, importlib, sys
original, culprit = builtins.__import__, []
def watch(name, globals=None, locals=None, fromlist=(), level=0):
    if name.split(".")[0] == "torch" and "torch" not in sys.modules and not culprit:
        culprit.append((globals or {}).get("__name__"))
    return original(name, globals, locals, fromlist, level)
builtins.__import__ = watch
for module in sys.argv[1:]:
    importlib.import_module(module)
    if culprit:
        print(f"importing {module} loads torch (first imported by {culprit[0]})")
        break
"""


def test_readers_of_run_folders_do_not_import_torch():
    """In a fresh interpreter (this one has torch loaded): importing any reader leaves torch out."""
    result = subprocess.run(
        [sys.executable, "-c", FIRST_TORCH_IMPORT, *TORCH_FREE], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", result.stdout


def test_only_the_command_line_imports_hydra():
    for path in modules():
        if layer_of(path) == "cli":
            continue
        hydra = {n for n in imports(path) if n == "hydra" or n.startswith("hydra.")}
        assert not hydra, f"{path.relative_to(REPO)} imports {hydra}"


def test_the_engine_does_not_import_the_data_layer():
    for path in (PACKAGE / "engine").rglob("*.py"):
        assert not {n for n in imports(path) if n.startswith("anil.data")}, path


def test_nothing_points_outside_the_repository():
    pattern = re.compile(r"shared/|design\.md §|datasets\.md §")
    places = [*(REPO / d for d in ("anil", "conf", "scripts", "tests")), REPO / "README.md", REPO / "Makefile"]
    files = [p for place in places for p in ([place] if place.is_file() else place.rglob("*")) if p.is_file()]
    offending = []
    for path in files:
        if path.suffix not in {".py", ".yaml", ".md", ".sh", ""} or "__pycache__" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line) and path.name != "test_architecture.py":
                offending.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offending, "\n".join(offending)
