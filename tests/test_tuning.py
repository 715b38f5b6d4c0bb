"""The tuning protocol (mu_lib.tuning): one rule, one step budget, choices read by every method;
and Spotter plugged into a method changes only the loss."""

from __future__ import annotations

import pytest

from mu_lib import Diverged, MuError, tuned, tuning
from mu_lib.profiles import get_profile
from mu_lib.unlearn import METHODS, build_method
from mu_lib.unlearn.base import OPTIMISATION_FIELDS

PROFILES = ("smoke", "cpu")
BASES = sorted(m for m in METHODS if m != "spotter")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("base", BASES)
def test_plugged_spotter_keeps_every_optimisation_setting_of_its_base(profile, base):
    p = get_profile(profile)
    plugged = build_method("spotter", profile, {}, p.unlearn_epochs, base=base)
    alone = build_method(base, profile, {}, p.unlearn_epochs)
    for name in ("epochs", "batch_size", "bn_mode", "weight_decay", "lr", "momentum", "optimizer"):
        assert getattr(plugged.hp, name) == getattr(alone.hp, name), (base, name)
    assert set(OPTIMISATION_FIELDS) >= {"epochs", "batch_size", "bn_mode", "weight_decay", "lr"}


def test_a_setting_given_to_plugged_spotter_still_applies():
    plugged = build_method("spotter", "cpu", {"lr": 0.02, "bn_mode": "train"}, 10, base="unsc")
    assert plugged.hp.lr == 0.02 and plugged.hp.bn_mode == "train"
    assert plugged.hp.weight_decay == build_method("unsc", "cpu").hp.weight_decay


@pytest.mark.parametrize("profile", PROFILES)
def test_every_tuned_method_gets_the_same_step_budget(profile):
    p = get_profile(profile)
    for m in tuning.TUNED_METHODS:
        hp = build_method(m, profile, {}, p.unlearn_epochs).hp
        if tuning.step_budget(m, profile):  # one-shot methods (Fisher) have no steps
            assert (hp.epochs, hp.batch_size) == (p.unlearn_epochs, p.unlearn_batch), m


@pytest.mark.parametrize("profile", PROFILES)
def test_methods_take_their_default_from_the_protocol_file(profile):
    choice = tuned.selection(profile).get("default", {})  # cpu may be partial (see the page)
    assert set(choice) <= set(tuning.TUNED_METHODS)
    assert profile != "smoke" or choice
    for m, values in choice.items():
        hp = build_method(m, profile).hp
        for k, v in values.items():
            assert getattr(hp, k) == pytest.approx(v), (m, k)


def test_changing_the_file_changes_the_defaults(monkeypatch):
    fake = {"default": {"neggrad": {"lr": 0.0123}}, "pra": {"neggrad": {"lr": 0.05}}}
    monkeypatch.setattr(tuned, "selection", lambda profile: fake)
    assert build_method("neggrad", "cpu").hp.lr == 0.0123
    assert tuned.chosen("cpu", "neggrad", "pra") == {"lr": 0.05}
    with pytest.raises(MuError, match="view"):
        tuned.chosen("cpu", "neggrad", "best")


def test_development_pairs_are_never_the_books():
    for profile in PROFILES:
        assert all(s != 0 and c != 0 for s, c in tuning.dev_pairs(profile))
    with pytest.raises(MuError, match="seed 0"):
        tuning.run_protocol("smoke", "unused.csv", pairs=[(0, 3)])


def _point(value, acc_f, drop, proto, method="m"):
    return {
        "method": method,
        "param": "lr",
        "value": value,
        "forgets": acc_f <= tuning.FORGET_MAX,
        "within_budget": drop >= -tuning.RETAIN_DROP_MAX,
        "acc_f_max": acc_f,
        "proto_acc_f_mean": proto,
    }


def test_the_two_rules(monkeypatch):
    monkeypatch.setitem(tuning.GRIDS, "m", ("lr", (1e-4, 3e-4, 1e-3, 3e-3)))
    table = [
        _point(1e-4, 20.0, -0.1, 90.0),  # does not forget
        _point(3e-4, 4.0, -0.5, 60.0),  # default: the smallest that forgets
        _point(1e-3, 0.0, -1.5, 20.0),  # pra: lowest Proto-Acc_f within the budget
        _point(3e-3, 0.0, -9.0, 1.0),  # lowest Proto-Acc_f, but outside the budget
    ]
    c = tuning.choose(table)
    assert c["default"]["m"] == {"lr": 3e-4}
    assert c["pra"]["m"] == {"lr": 1e-3}
    assert "m" not in c["notes"]
    none_forgets = [_point(1e-4, 30.0, 0.0, 90.0), _point(3e-4, 8.0, -3.0, 50.0)]
    monkeypatch.setitem(tuning.GRIDS, "m", ("lr", (1e-4, 3e-4)))  # the whole grid ran
    c = tuning.choose(none_forgets)
    assert c["default"]["m"] == {"lr": 3e-4} and c["pra"]["m"] == {"lr": 3e-4}
    assert "no grid value" in c["notes"]["m"]
    monkeypatch.setitem(tuning.GRIDS, "m", ("lr", (1e-4, 3e-4, 1e-3, 3e-3)))
    unfinished = tuning.choose(table[:2])  # 3e-4 forgets and keeps Acc_rt: the walk goes on
    assert "m" not in unfinished["default"] and "did not finish" in unfinished["notes"]["m"]


def test_protocol_writes_each_trial_and_resumes(tmp_path, monkeypatch):
    csv = tmp_path / "smoke_trials.csv"
    grid = {"neggrad": ("lr", (1e-3, 3e-3))}
    monkeypatch.setitem(tuning.GRIDS, "neggrad", grid["neggrad"])  # the selection reads GRIDS
    seen = []
    rows = tuning.run_protocol(
        "smoke", csv, methods=["neggrad"], pairs=[(1, 7)], grids=grid, log=seen.append
    )
    assert len(seen) == len(rows) >= 2  # the original and at least one grid value
    assert len(tuning.read_trials(csv)) == len(rows)
    again = []
    tuning.run_protocol(
        "smoke", csv, methods=["neggrad"], pairs=[(1, 7)], grids=grid, log=again.append
    )
    assert again == []  # every trial was already in the CSV
    doc = tuning.write_selection("smoke", rows, tmp_path, pairs=[(1, 7)])
    assert set(doc["default"]) == {"neggrad"}  # the other methods: a note, no choice
    assert doc["notes"]["spotter"] == "no trial has run yet: no choice"
    assert (tmp_path / "smoke_selection.csv").read_text().startswith("method,param,value")


def test_table1_rows_follow_each_view_and_the_authors_row_is_theirs(monkeypatch):
    from mu_lib import main_results as mr

    fake = {"default": {"salun": {"lr": 3e-4}, "spotter": {"lr": 1e-3}},
            "pra": {"salun": {"lr": 3e-3}, "spotter": {"lr": 1e-2}}}  # fmt: skip
    monkeypatch.setattr(tuned, "selection", lambda profile: fake)
    rows = {v: mr.method_rows(["original", "salun", "spotter"], (0.1, 1.0), "cpu", v)
            for v in mr.VIEWS}  # fmt: skip
    assert [r.overrides for r in rows["default"]] == [
        {},
        {"lr": 3e-4},
        {"lr": 1e-3, "lambda2": 0.1},
        {"lr": 1e-3, "lambda2": 1.0},
    ]
    assert rows["pra"][1].overrides == {"lr": 3e-3}
    authors = mr.authors_rows((1.0,))[0]
    hp = build_method("spotter", "cpu", authors.overrides).hp
    assert (hp.lr, hp.batch_size, hp.epochs, hp.bn_mode) == (1e-4, 128, 10, "eval")
    assert mr.settings("cpu", authors) == "lr 1e-04, batch 128, 10 ep, BN eval"


def test_a_diverged_trial_is_a_row_that_neither_forgets_nor_keeps_acc_rt(monkeypatch):
    def boom(cfg):
        raise Diverged("unlearn:neggrad: the unlearning loss became nan: the run diverged")

    monkeypatch.setattr(tuning, "light_metrics", boom)
    row = tuning.measured_or_diverged(None)
    assert row["diverged"] and row["acc_f"] != row["acc_f"]  # NaN
    rows = [{**row, "seed": 1, "forget_class": 7}]
    s = tuning._point_summary(rows, {(1, 7): 90.0})
    assert not s["forgets"] and not s["within_budget"]


def test_the_walk_brackets_a_method_that_forgets_at_its_start(monkeypatch):
    grid = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
    seen: dict[float, dict] = {}

    def summary(v):  # forgets from 1e-5 up, keeps Acc_rt up to 1e-4
        return {"forgets": v >= 1e-5, "within_budget": v <= 1e-4}

    order = []
    while (v := tuning.next_value("lr", grid, seen)) is not None:
        order.append(v)
        seen[v] = summary(v)
    # up from the start until outside the budget, then down until a value does not forget
    assert order == [1e-4, 3e-4, 3e-5, 1e-5, 3e-6]
    table = [_point(v, 0.0 if v >= 1e-5 else 50.0, 0.0 if v <= 1e-4 else -9.0, 10.0) for v in order]
    monkeypatch.setitem(tuning.GRIDS, "m", ("lr", grid))
    assert tuning.choose(table)["default"]["m"] == {"lr": 1e-5}
