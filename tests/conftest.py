import importlib.util
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def dataset_cache(tmp_path_factory):
    """Rendered datasets go to a per-session cache, never the user's ~/.cache."""
    path = tmp_path_factory.mktemp("anil-cache")
    os.environ["ANIL_CACHE"] = str(path)
    return path


def pytest_collection_modifyitems(config, items):
    """@pytest.mark.needs("mlflow"): the test skips, saying why, where that package is absent (a
    bare CUDA machine running the suite); `make test` installs them all, so CI runs every one."""
    for item in items:
        for marker in item.iter_markers("needs"):
            missing = [name for name in marker.args if not _installed(name)]
            if missing:
                item.add_marker(pytest.mark.skip(reason=f"optional package not installed: {', '.join(missing)}"))


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent is missing
        return False
