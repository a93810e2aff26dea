"""The package's layers import only downward: the engine and the data layer never reach the run,
analysis or command-line layers; the engine never imports the data layer; only the command line
imports Hydra; and the project cites nothing outside its repository."""

import ast
import re
from pathlib import Path

import pytest

from helpers import REPO

PACKAGE = REPO / "anil"

# layer -> the anil modules it may import (its own modules are always allowed)
ALLOWED = {
    "base": {"anil", "anil.config", "anil.tasks", "anil.atomic"},
    "data": {"anil.config", "anil.tasks", "anil.atomic"},
    "engine": {"anil.tasks"},
    "run": {"anil.config", "anil.tasks", "anil.atomic", "anil.data", "anil.engine"},
    "analysis": {"anil.config", "anil.tasks", "anil.atomic", "anil.data", "anil.engine", "anil.run"},
    "cli": {
        "anil",
        "anil.config",
        "anil.tasks",
        "anil.atomic",
        "anil.data",
        "anil.engine",
        "anil.run",
        "anil.analysis",
    },
}
BASE = {"__init__.py", "__main__.py", "config.py", "tasks.py", "atomic.py"}


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
