"""Shared test set-up: the smoke profile, quiet progress bars and one cache per test session
(so the smoke original model is trained once and reused by every test and notebook)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MU_PROFILE", "smoke")
os.environ.setdefault("MU_QUIET", "1")


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("mu-cache")
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
