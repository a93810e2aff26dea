"""An install that works outside the clone: the wheel carries the Hydra configs, and the version
comes from one place."""

import subprocess
import sys
import sysconfig
import venv

import pandas as pd
import pytest

from helpers import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+: the standard library's TOML reader
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_package_list_names_every_package_folder():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "anil").rglob("__init__.py")}
    assert listed == folders | {"anil.conf"}
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"anil.conf": "conf"}


@pytest.mark.slow  # builds and installs a wheel, runs it as processes
def test_a_wheel_installed_outside_the_clone_trains_and_plots(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("anil-*.whl")
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"  # a Python with nothing installed
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    # The wheel itself goes into the new environment; its dependencies (torch, hydra, ...) are taken
    # from this one through a path entry, so the test needs no download.
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)],
                             capture_output=True, text=True)  # fmt: skip
    assert install.returncode == 0, install.stderr
    with open(f"{site}/zz-deps.pth", "w") as pth:
        pth.write(sysconfig.get_paths()["purelib"] + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    def anil(*args):
        code = "import sys; from anil.cli import main; sys.exit(main())"
        return subprocess.run([str(python), "-c", code, *args], cwd=outside, capture_output=True, text=True)

    where = subprocess.run([str(python), "-c", "import anil; print(anil.__file__)"], cwd=outside,
                           capture_output=True, text=True)  # fmt: skip
    assert where.stdout.startswith(site), where.stdout  # the wheel's anil, not the clone's
    version = anil("--version")
    assert version.stdout.strip() == f"anil {PYPROJECT['project']['version']}"
    trained = anil("train", "experiment=smoke", "iterations=2", "device=cpu", f"hydra.run.dir={outside}/run")
    assert trained.returncode == 0, trained.stderr
    plotted = anil("plot", str(outside / "run"))
    assert plotted.returncode == 0, plotted.stderr
    assert len(pd.read_csv(outside / "run" / "curves.csv")) == 2
