"""benchmarks/bench_gpu_paper.py runs end to end (``--tiny`` on CPU) and projects every row."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench_gpu_paper", ROOT / "benchmarks" / "bench_gpu_paper.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_times_every_table1_method_and_projects_table1(tmp_path):
    bench = load_bench()
    out = tmp_path / "gpu.json"
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"s5_2_main_results": {"seconds": 10}, "x1": {"seconds": 30}}))
    res = bench.main(["--tiny", "--device", "cpu", "--json", str(out), "--status", str(status)])
    assert json.loads(out.read_text())["projection"]["table1_s"] == pytest.approx(
        res["projection"]["table1_s"]
    )
    timed = set(res["methods"])
    assert timed == set(bench.TABLE1_METHODS) - {"original", "retrain"}
    assert all(m["projected_s"] > 0 for m in res["methods"].values())
    assert res["train_images_per_s"] > 0
    pr = res["projection"]
    assert all(math.isfinite(v) and v > 0 for v in pr.values())
    assert pr["table1_s"] == pytest.approx(3 * pr["per_seed_s"])
    assert pr["book_s"] == pytest.approx(4 * pr["table1_s"])  # (10 + 30) / 10
    # Retrain is projected from the training throughput on D_r: 9/10 of the original's images
    assert pr["retrain_s"] == pytest.approx(0.9 * pr["original_training_s"])
