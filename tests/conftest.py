import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def dataset_cache(tmp_path_factory):
    """Rendered datasets go to a per-session cache, never the user's ~/.cache."""
    path = tmp_path_factory.mktemp("anil-cache")
    os.environ["ANIL_CACHE"] = str(path)
    return path
