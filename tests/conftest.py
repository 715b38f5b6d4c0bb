"""Shared test set-up: the smoke profile, quiet progress bars and one cache per test session
(so the smoke original model is trained once and reused by every test and notebook).

Under pytest-xdist (``make test`` runs ``-n 2``) every worker process gets its own cache folder:
a test then sees the same cache a serial run would give it, less the entries of tests that ran on
the other worker, and no test's "first run is not cached" depends on the other worker's order."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MU_PROFILE", "smoke")
os.environ.setdefault("MU_QUIET", "1")


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    root = tmp_path_factory.mktemp(f"mu-cache-{worker}")
    old = {k: os.environ.get(k) for k in ("MU_CACHE_DIR", "MU_FIGURES_DIR", "MU_RESULTS_DIR")}
    os.environ["MU_CACHE_DIR"] = str(root)
    os.environ["MU_FIGURES_DIR"] = str(root / "figures")
    os.environ["MU_RESULTS_DIR"] = str(root / "results")
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
