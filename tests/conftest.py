import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def dataset_cache(tmp_path_factory):
    """Rendered datasets go to a per-session cache, never the user's ~/.cache."""
    path = tmp_path_factory.mktemp("anil-cache")
    os.environ["ANIL_CACHE"] = str(path)
    return path


def anil_command() -> list[str]:
    """The installed console script when there is one, else the module."""
    script = Path(sys.executable).parent / "anil"
    return [str(script)] if script.exists() else [sys.executable, "-m", "anil"]
