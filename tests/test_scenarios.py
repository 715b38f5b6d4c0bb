"""Sequential unlearning (Table 9) and forget-ratio unlearning (Table 10) on the smoke profile."""

from __future__ import annotations

import pytest

from mu_lib import MuError
from mu_lib.experiment import RunConfig, run
from mu_lib.scenarios import (
    Sequential,
    check_rounds,
    class_order,
    forget_ratio,
    fraction_classes,
    sequential,
)

# short unlearning keeps the test fast; the metrics do not need to be good, only consistent
FAST = {"epochs": 1}


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MU_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_class_order_and_fractions():
    order = class_order(10, first=3, order_seed=0)
    assert order[0] == 3 and sorted(order) == list(range(10))
    assert order == class_order(10, first=3, order_seed=0)
    assert order != class_order(10, first=3, order_seed=1)
    assert fraction_classes(10, 0.1) == (0,)
    f3, f5 = fraction_classes(10, 0.3), fraction_classes(10, 0.5)
    assert len(f3) == 3 and len(f5) == 5 and set(f3) < set(f5)  # nested
    assert len(fraction_classes(100, 0.5)) == 50
    assert len(fraction_classes(3, 0.9)) == 2  # never all classes
    with pytest.raises(MuError, match="fraction"):
        fraction_classes(10, 1.0)


def test_round_limits():
    assert check_rounds(None, 10, 10) == 9
    with pytest.raises(MuError, match="rounds=10"):
        check_rounds(10, 10, 10)
    with pytest.raises(MuError, match="rounds=0"):
        check_rounds(0, 10, 10)
    with pytest.raises(MuError, match="approximate"):
        Sequential(RunConfig("retrain", profile="smoke"))
    with pytest.raises(MuError, match="distinct"):
        Sequential(RunConfig("spotter", profile="smoke"), order=(0, 0, 1))
    with pytest.raises(MuError, match="forget_data"):
        Sequential(RunConfig("spotter", profile="smoke"), forget_data="some")


def test_sequential_rounds_chain_and_cache(cache):
    cfg = RunConfig("spotter", profile="smoke", device="cpu", overrides=FAST)
    rows = sequential(cfg, rounds=2, order=(0, 4, 7))
    assert [r["round"] for r in rows] == [1, 2]
    assert rows[1]["forgotten"] == [0, 4] and rows[1]["forget_class"] == 4
    for r in rows:
        for k in ("acc_f", "acc_f_new", "acc_r", "ou", "ou_original", "proto_acc_f"):
            assert r[k] == r[k]  # not NaN
        assert 0.0 <= r["ou"] <= 0.7 and 0.0 <= r["ou_original"] <= 0.7  # JS <= ln 2
    # round 1 is the ordinary single-class run (same model, same teacher, same neighbours)
    single = run(cfg.replace(forget_classes=(0,))).metrics
    assert rows[0]["acc_f"] == pytest.approx(single["acc_f"])
    assert rows[0]["acc_r"] == pytest.approx(single["acc_r"])
    assert rows[0]["ou"] == pytest.approx(single["ou_pgd"], abs=1e-6)
    assert rows[0]["ou_original"] == pytest.approx(single["ou_pgd"], abs=1e-6)
    # a second call reads every round from the cache, with the same numbers
    again = Sequential(cfg, order=(0, 4, 7)).run(2)
    assert all(r["cached"] for r in again)
    assert [r["acc_f"] for r in again] == [r["acc_f"] for r in rows]
    # the chained model really starts from the previous round: it differs from a fresh
    # two-class run, which starts from the original
    seq = Sequential(cfg, order=(0, 4, 7))
    m2, _ = seq.model(2)
    m1, _ = seq.model(1)
    assert any(
        (a - b).abs().max() > 0 for a, b in zip(m1.parameters(), m2.parameters(), strict=True)
    )


def test_forget_ratio_rows(cache):
    cfg = RunConfig("spotter", profile="smoke", device="cpu", overrides=FAST)
    rows = forget_ratio(cfg, fractions=(0.1, 0.3))
    assert [r["n_forget"] for r in rows] == [1, 3]
    assert rows[0]["forget_classes"] == [0] and rows[0]["setting"] == "10%"
    assert set(rows[0]["forget_classes"]) < set(rows[1]["forget_classes"])
    assert all(r["acc_f"] == r["acc_f"] for r in rows)
