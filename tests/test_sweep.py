"""Sweeps (mu_lib.sweep): the grid, the cache that makes a sweep resumable, and Ray = local.

One grid (delete, spotter) x seeds (0, 1) on ``smoke`` is run three ways: locally in two steps
(an "interrupted" sweep: seed 0 first, then the whole grid), on a local Ray instance into a
fresh cache, and on Ray again (which must do nothing).  Torch runs with one thread everywhere
because CPU results depend on the thread count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from mu_lib import MuError
from mu_lib import sweep as sw
from mu_lib.cli import main as mu_main
from mu_lib.experiment import run

GRID = ["--methods", "delete,spotter", "--seeds", "0,1", "--profile", "smoke"]
FLOATS = ("acc_f", "acc_r", "acc_ft", "acc_rt", "ou_pgd", "ou_gauss", "proto_acc_f", "alpha")


def _mu(args: list[str], cache: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MU_CACHE_DIR=cache, MU_QUIET="1")
    cmd = [sys.executable, "-m", "mu_lib.cli", "sweep", *args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


# ------------------------------------------------------------------ cheap checks


def test_grid_product_and_overrides():
    cfgs = sw.grid(methods=["delete", "spotter"], seeds=[0, 1], profile="smoke")
    assert [(c.method, c.seed) for c in cfgs] == [
        ("delete", 0),
        ("spotter", 0),
        ("delete", 1),
        ("spotter", 1),
    ]
    assert all(c.profile == "smoke" for c in cfgs)
    # lambda2 is Spotter's: it reaches spotter only, and two values give two spotter runs.
    cfgs = sw.grid(
        methods=["delete", "spotter"],
        seeds=[0],
        overrides=[{"lambda2": 0.0}, {"lambda2": 1.0}],
        profile="smoke",
    )
    assert [(c.method, c.overrides) for c in cfgs] == [
        ("delete", {}),
        ("spotter", {"lambda2": 0.0}),
        ("spotter", {"lambda2": 1.0}),
    ]
    # bases only combine with methods that accept one
    cfgs = sw.grid(
        methods=["delete", "spotter"], seeds=[0], bases=[None, "delete"], profile="smoke"
    )
    assert [(c.method, c.base) for c in cfgs] == [
        ("delete", None),
        ("spotter", None),
        ("spotter", "delete"),
    ]
    with pytest.raises(MuError, match="lambda9"):
        sw.grid(methods=["delete"], overrides=[{"lambda9": 1}], profile="smoke")
    with pytest.raises(MuError, match="unknown method"):
        sw.grid(methods=["nope"], profile="smoke")


def test_bad_executor_and_missing_ray(monkeypatch):
    cfgs = sw.grid(methods=["delete"], seeds=[0], profile="smoke")
    with pytest.raises(MuError, match="local"):
        sw.sweep(cfgs, executor="dask")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MuError, match=r"pip install 'unlearning-blindspots\[ray\]'"):
        sw.sweep(cfgs, executor="ray")


# ------------------------------------------------------------------ the grid, three ways


@pytest.fixture(scope="module")
def local_records(tmp_path_factory):
    """The grid run locally, interrupted after seed 0 and started again."""
    cache = str(tmp_path_factory.mktemp("local-cache"))
    part, full = (str(tmp_path_factory.mktemp("out") / n) for n in ("part.json", "full.json"))
    first = _mu([*GRID[:2], "--seeds", "0", *GRID[4:], "--threads", "1", "--json-out", part], cache)
    assert "2 runs, 0 cached, 2 to run" in first.stdout
    second = _mu([*GRID, "--threads", "1", "--json-out", full], cache)
    assert "4 runs, 2 cached, 2 to run" in second.stdout
    assert "delete" in second.stdout and "acc_f" in second.stdout  # the summary table
    return json.loads(open(part).read()), json.loads(open(full).read())


def test_interrupted_sweep_runs_only_missing(local_records):
    part, full = local_records
    assert [r["cached"] for r in part] == [False, False]
    # seed 0 came from the cache, unchanged; seed 1 was run now
    assert [(r["config"]["seed"], r["cached"]) for r in full] == [
        (0, True),
        (0, True),
        (1, False),
        (1, False),
    ]
    assert [r["metrics"] for r in full[:2]] == [r["metrics"] for r in part]
    assert [r["timings"] for r in full[:2]] == [r["timings"] for r in part]


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason="the `ray` extra is not installed")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as err:  # pragma: no cover - only where Ray cannot start at all
        pytest.skip(f"Ray cannot start here: {err}")
    yield ray
    ray.shutdown()


def test_ray_equals_local_and_rerun_is_free(ray_instance, local_records, tmp_path, monkeypatch):
    _, local = local_records
    # Set after ray.init: the workers only see this cache dir if the sweep forwards it.
    cache = tmp_path / "ray-cache"
    monkeypatch.setenv("MU_CACHE_DIR", str(cache))
    monkeypatch.setenv("MU_QUIET", "1")
    out = tmp_path / "ray.json"
    assert mu_main(["sweep", *GRID, "--executor", "ray", "--json-out", str(out)]) == 0
    remote = json.loads(out.read_text())
    assert [r["key"] for r in remote] == [r["key"] for r in local]
    assert not any(r["cached"] for r in remote)
    for a, b in zip(local, remote, strict=True):
        for k in FLOATS:
            assert b["metrics"][k] == pytest.approx(a["metrics"][k], rel=1e-9, abs=1e-12), (
                k,
                a["config"]["method"],
                a["config"]["seed"],
            )

    # Results landed in this process's cache: a chapter's run() reads them without training.
    cfgs = sw.grid(methods=["delete", "spotter"], seeds=[0, 1], profile="smoke")
    assert sw.pending(cfgs) == []
    assert run(cfgs[0]).cached

    # Second Ray sweep: nothing is launched and everything comes back cached.
    launched = []
    real = sw._run_ray
    monkeypatch.setattr(sw, "_run_ray", lambda todo, *a: launched.append(todo) or real(todo, *a))
    t0 = time.perf_counter()
    again = sw.sweep(cfgs, executor="ray")
    assert launched == []
    assert all(r.cached for r in again)
    assert [r.metrics for r in again] == [r["metrics"] for r in remote]
    assert time.perf_counter() - t0 < 10
