"""The claims registry: verdict logic on hand-made results (no training)."""

from __future__ import annotations

import math
import re

import pytest

from mu_lib import MuError
from mu_lib.claims import (
    BASELINES,
    CLAIMS,
    get_claim,
    interval,
    judge,
    scoreboard,
    status_of,
    verdicts,
)


def metrics(acc_f=0.0, acc_r=99.0, acc_rt=90.0, ou=0.1, gauss=None, proto=80.0):
    return {
        "acc_f": acc_f,
        "acc_r": acc_r,
        "acc_rt": acc_rt,
        "ou_pgd": ou,
        "ou_gauss": ou if gauss is None else gauss,
        "proto_acc_f": proto,
    }


def paper_like_unit() -> dict:
    """A pair that behaves as the paper's Table 1 says."""
    u = {"original": metrics(acc_f=99.0, ou=0.0, proto=99.0)}
    for i, b in enumerate(BASELINES):
        u[b] = metrics(ou=0.10 + 0.02 * i, proto=60.0 + i)
    u["boundary_expand"] = metrics(ou=0.05, proto=95.0)
    u["spotter_l01"] = metrics(ou=0.02, proto=40.0, acc_rt=90.5)
    u["spotter_l1"] = metrics(ou=0.03, proto=2.0, acc_rt=89.0)
    for b in ("salun", "delete", "unsc"):
        u[f"{b}+spotter"] = metrics(ou=0.03, proto=1.0)
    u["retrain"] = metrics(proto=30.0)
    return u


def test_registry_has_the_claims_the_book_needs():
    ids = [c.id for c in CLAIMS]
    assert len(ids) >= 12 and len(set(ids)) == len(ids)
    for c in CLAIMS:
        assert c.paper()  # the paper's evidence comes from the shipped tables
    with pytest.raises(MuError, match="unknown claim 'nope'"):
        get_claim("nope")


def test_status_rule():
    assert status_of(8, 10) == "holds"
    assert status_of(7, 10) == "partly"
    assert status_of(3, 10) == "partly"
    assert status_of(2, 10) == "fails"
    assert status_of(0, 0) == "n/a"


def test_interval_is_a_t_interval():
    m, lo, hi = interval([1.0, 2.0, 3.0])
    assert m == 2.0
    assert lo == pytest.approx(2.0 - 4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
    assert hi == pytest.approx(2.0 + 4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
    assert interval([5.0]) == (5.0, None, None)
    assert interval([]) == (None, None, None)


def test_every_table1_claim_holds_on_paper_like_results():
    units = [paper_like_unit() for _ in range(10)]
    for v in verdicts({"table1": units}):
        if v.claim.family == "table1":
            assert v.status == "holds", (v.claim.id, v.values)
            assert v.n == 10


def test_spotter_claims_fail_when_pra_restores_spotter():
    units = []
    for i in range(10):
        u = paper_like_unit()
        if i < 8:  # PRA restores Spotter on 8 pairs of 10
            u["spotter_l1"]["proto_acc_f"] = 70.0
        units.append(u)
    v = judge(get_claim("spotter_resists_pra"), units)
    assert (v.n_hold, v.n, v.status) == (2, 10, "fails")
    assert v.mean == pytest.approx((8 * 70 + 2 * 2) / 10)
    assert judge(get_claim("spotter_lowest_pra"), units).status == "fails"


def test_retained_accuracy_budget_is_part_of_the_spotter_claim():
    u = paper_like_unit()
    u["spotter_l1"]["acc_rt"] = u["original"]["acc_rt"] - 2.5
    assert judge(get_claim("spotter_resists_pra"), [u]).n_hold == 0


def test_ou_claim_ignores_boundary_expand_only():
    u = paper_like_unit()
    u["boundary_expand"]["ou_pgd"] = 0.001
    assert judge(get_claim("spotter_lowest_ou"), [u]).n_hold == 1
    u["delete"]["ou_pgd"] = 0.001
    assert judge(get_claim("spotter_lowest_ou"), [u]).n_hold == 0


def test_rank_claim_detects_reversed_rankings():
    u = paper_like_unit()
    keys = [*BASELINES, "spotter_l01", "spotter_l1"]
    for i, k in enumerate(keys):
        u[k]["ou_pgd"], u[k]["ou_gauss"] = 0.01 * i, 0.01 * (len(keys) - i)
    v = judge(get_claim("gaussian_pgd_rank_alike"), [u])
    assert v.values[0] == pytest.approx(-1.0) and v.n_hold == 0


def test_units_missing_a_method_are_not_judged():
    u = paper_like_unit()
    del u["spotter_l1"], u["retrain"]
    assert judge(get_claim("spotter_resists_pra"), [u]).status == "n/a"
    assert judge(get_claim("retrain_pra_floor"), [u]).status == "n/a"


def test_eps_claim():
    falls = {0.01: 0.4, 0.03: 0.3, 0.1: 0.2, 0.3: 0.1}
    level = {0.01: 0.03, 0.03: 0.03, 0.1: 0.03, 0.3: 0.029}
    unit = {"salun": falls, "delete": falls, "unsc": falls, "spotter_l1": level}
    assert judge(get_claim("ou_eps_shape"), [unit]).n_hold == 1
    unit["spotter_l1"] = falls
    assert judge(get_claim("ou_eps_shape"), [unit]).n_hold == 0


def test_scoreboard_rows_name_claim_paper_and_verdict():
    rows = scoreboard(verdicts({"table1": [paper_like_unit()]}))
    assert len(rows) == len(CLAIMS)
    row = next(r for r in rows if r["claim"] == "spotter_resists_pra")
    assert row["verdict"] == "holds" and row["holds on"] == "1 of 1"
    assert "CIFAR-10" in row["paper"] and row["chapter"] == "s5_2_main_results"
    assert next(r for r in rows if r["claim"] == "sequential_stays_forgotten")["verdict"] == "n/a"


def test_paper_numbers_join_the_right_rows():
    from mu_lib.claims import paper_table1_unit, paper_verdict

    u = paper_table1_unit("CIFAR-10")
    assert u["spotter_l1"]["proto_acc_f"] == pytest.approx(0.24)
    assert u["boundary_expand"]["ou_pgd"] == pytest.approx(0.0958)
    assert u["delete"]["ou_gauss"] != u["delete"]["ou_pgd"]  # Table 4's Gaussian column
    assert u["delete+spotter"]["proto_acc_f"] == pytest.approx(0.04)
    assert set(BASELINES) <= set(u)
    # on the paper's own numbers the CIFAR-10 claims pass
    for c in CLAIMS:
        if c.family == "table1":
            assert paper_verdict(c).startswith("CIFAR-10: yes"), c.id


def test_scoreboard_html_escapes_thresholds_and_links_chapters():
    from mu_lib.chapters.claims import scoreboard_html

    html = scoreboard_html(scoreboard(verdicts({"table1": [paper_like_unit()]})))
    assert "Acc_f &lt;= 1, Proto-Acc_f &lt;= 10, Acc_rt &gt;= original - 2" in html
    assert '<a href="s5_2_main_results.html">s5_2_main_results</a>' in html
    headers = re.findall(r"<th>(.*?)</th>", html)
    assert headers[:3] == ["claim", "verdict", "holds on"]  # the answer before the prose


def test_ou_by_radius_is_a_runs_ou_at_each_radius_and_is_one_cached_entry(monkeypatch):
    """The radius evidence reads OU@eps alone; it must be the number a full run reports."""
    import mu_lib.analysis as an
    from mu_lib.experiment import RunConfig, run

    cfg = RunConfig(method="neggrad", profile="smoke", seed=0, forget_classes=(2,))
    grid = (0.01, 0.1)
    curve = an.ou_by_radius(cfg, grid)
    assert curve == {e: run(cfg, eval_eps=e).metrics["ou_pgd"] for e in grid}
    monkeypatch.setattr(an, "ou", lambda *a, **k: pytest.fail("recomputed a cached curve"))
    assert an.ou_by_radius(cfg, grid) == curve
