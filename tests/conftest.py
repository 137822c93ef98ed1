"""Test-wide set-up: caches (data sets, the compiled C sampling loop) go to a temporary directory,
never to the user's ~/.cache."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()
