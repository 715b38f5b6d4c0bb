"""Chapter modules: what a chapter's tables hold (rows, paper values joined to the right rows)
and its statement checks, on fake runs, so a lost row or a wrong join fails here."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from mu_lib import paper
from mu_lib.chapters import ablations
from mu_lib.profiles import get_profile


def fake_run_many(configs, desc=""):
    """One fake result per config: Proto-Acc_f falls with lambda2, OU with lambda1 < 1."""
    out = []
    for c in configs:
        l1, l2 = c.overrides["lambda1"], c.overrides["lambda2"]
        out.append(
            SimpleNamespace(
                metrics={
                    "acc_ft": 0.0,
                    "acc_rt": 90.0 - l2,
                    "ou_pgd": 0.2 if l1 == 1.0 else 0.05,
                    "proto_acc_f": 90.0 / (1 + 10 * l2),
                }
            )
        )
    return out


@pytest.fixture
def grid():
    return ablations.Ablations(
        get_profile("cpu"),
        [0, 1],
        [1.0, 0.7, 0.3],
        [0.0, 1.0, 2.0],
        [0.01, 0.03, 0.5],
        [0.01, 0.03, 0.1],
        ["salun", "delete", "unsc"],
    )


def test_table3_has_every_grid_row_with_the_paper_value_of_that_row(monkeypatch, grid):
    monkeypatch.setattr(ablations, "run_many", fake_run_many)
    t3 = ablations.table3(grid)
    assert len(t3) == 2 * 3 * 3  # Spotter and SalUn + Spotter, lambda1 x lambda2
    assert set(t3.method) == {"Spotter", "SalUn + Spotter"}
    ref = paper.table(3)
    for _, row in t3.iterrows():
        hit = ref[
            (ref.method == row.method) & (ref.lambda1 == row.lambda1) & (ref.lambda2 == row.lambda2)
        ]
        assert len(hit) == 1, (row.method, row.lambda1, row.lambda2)
        assert row["proto_acc_f (paper)"] == pytest.approx(hit.proto_acc_f.iloc[0])
        assert row["ou (ours)"] == (0.2 if row.lambda1 == 1.0 else 0.05)
        assert row["proto_acc_f Δ"] == pytest.approx(
            row["proto_acc_f (ours)"] - hit.proto_acc_f.iloc[0]
        )


def test_statements_follow_the_numbers(monkeypatch, grid):
    monkeypatch.setattr(ablations, "run_many", fake_run_many)
    t3 = ablations.table3(grid)
    f5a = pd.DataFrame(
        [
            {"method": ablations.spotter_name(b), "eps_o": e, "ou": 0.01 * (i + 1)}
            for b in grid.spotters
            for i, e in enumerate(grid.eps_train_grid)
        ]
    )
    without = {paper.paper_name(b): 0.5 for b in grid.bases}
    f5b = pd.DataFrame(
        [
            {"method": n, "spotter": s, "eps": e, "ou": v}
            for b in grid.bases
            for n, s, v0 in (
                (ablations.spotter_name(b), True, 0.02),
                (paper.paper_name(b), False, 0.4),
            )
            for e, v in zip(grid.eps_grid, (v0, v0 * 0.8, v0 * 0.5), strict=True)
        ]
    )
    checks = ablations.statements(grid, t3, f5a, without, f5b)
    assert checks["holds here"].all(), checks[~checks["holds here"]]
    # a Spotter variant above its base at a training radius breaks exactly that statement
    f5a.loc[f5a.method == "SalUn + Spotter", "ou"] += 0.9
    broken = ablations.statements(grid, t3, f5a, without, f5b)
    failed = broken.loc[~broken["holds here"], "paper's statement"].tolist()
    assert failed == ["SalUn + Spotter: OU stays below SalUn alone at every training radius (5a)"]


def test_smoke_profile_caps_the_grid():
    a = ablations.Ablations(
        get_profile("smoke"), [0], [1.0, 0.7, 0.3], [0.0, 1.0, 2.0], [0.01, 0.03, 0.5],
        [0.01, 0.03, 0.1, 0.3], ["salun", "delete", "unsc"],
    )  # fmt: skip
    assert a.lambda1s == [1.0, 0.7] and a.lambda2s == [0.0, 1.0]
    assert a.eps_train_grid == [0.01, 0.03] and a.eps_grid == [0.01, 0.03, 0.1]
    assert a.bases == ["salun"]


def test_table9_joins_each_round_to_the_paper_round():
    from mu_lib.chapters import scenarios

    rows = [
        {"round": r, "seed": s, **{c: float(r + s) for c in scenarios.SEQ_COLS}}
        for r in (1, 2, 3)
        for s in (0, 1)
    ]
    t = scenarios.table9(pd.DataFrame(rows), [0, 7, 3])
    ref = paper.table(9)
    assert t["round"].tolist() == [1, 2, 3] and t["forget_class"].tolist() == [0, 7, 3]
    assert t["acc_f (ours)"].tolist() == [1.5, 2.5, 3.5]  # seed means
    for _, row in t.iterrows():
        assert row["ou (paper)"] == pytest.approx(ref.ou[ref["round"] == row["round"]].iloc[0])
    text = scenarios.sequential_reading(t, rounds=3, num_classes=10)
    assert "Some earlier class comes back above 5%" not in text  # max Acc_f 3.5


def test_table10_joins_each_fraction_to_the_paper_row():
    from mu_lib.chapters import scenarios

    rows = [
        {"setting": f, "seed": 0, "forget_classes": cls, **{c: v for c in scenarios.RATIO_COLS}}
        for f, cls, v in (("10%", [0], 1.0), ("30%", [0, 4, 2], 2.0), ("50%", [0, 4, 2, 9, 1], 3.0))
    ]
    t = scenarios.table10(pd.DataFrame(rows))
    ref = paper.table(10).set_index("forget_fraction")
    assert t.setting.tolist() == ["10%", "30%", "50%"]
    assert t.forget_classes.tolist() == ["[0]", "[0, 4, 2]", "[0, 4, 2, 9, 1]"]
    for _, row in t.iterrows():
        assert row["acc_r_star (paper)"] == pytest.approx(ref.loc[row.setting, "acc_r_star"])
    assert "It does not fall steadily" in scenarios.ratio_reading(t)  # our OU rises 1 -> 3


def test_reproduction_report_pairs_numbers_and_says_what_compares(tmp_path):
    from mu_lib.chapters import reproduction

    pd.DataFrame(
        {
            "method": ["Spotter", "DELETE", "SalUn", "NegGrad"],
            "ratio": [0.2606060606060606, float("nan"), 1.0, 2.0],
            "acc_f (ours)": [0.0, 1.0, 2.0, 3.0],
            "acc_f (paper)": [0.0, 2.0, 4.0, 6.0],
            "acc_f Δ": [0.0, -1.0, -2.0, -3.0],
            "extra (ours)": [1.0, 2.0, 3.0, 4.0],  # no paper column: not paired
        }
    ).to_csv(tmp_path / "t1.csv", index=False)
    tables = reproduction.load_tables(tmp_path)
    report = reproduction.side_by_side(tables)
    assert len(report) == 4 and set(report.metric) == {"acc_f"}
    assert report.row.tolist() == ["Spotter, 0.260606", "DELETE", "SalUn, 1", "NegGrad, 2"]
    cpu = reproduction.comparability(report, get_profile("cpu")).iloc[0]
    assert cpu["comparable"] == "pattern only" and cpu["mean |Δ|"] is None
    assert cpu["rank correlation (median over metrics)"] == pytest.approx(1.0)
    full = reproduction.comparability(report, get_profile("paper")).iloc[0]
    assert full["comparable"] == "numbers" and full["mean |Δ|"] == pytest.approx(1.5)


def test_reproduction_row_keys_are_the_columns_before_the_pairs(tmp_path):
    from mu_lib.chapters import reproduction

    pd.DataFrame(
        {
            "round": [1, 2],
            "forget_class": [0, 5],
            "acc_f (ours)": [0.0, 1.0],
            "acc_f (paper)": [0.0, 0.3],
            "acc_f Δ": [0.0, 0.7],
            "ou_original": [0.0378632, 0.155538],  # appended after the pairs
        }
    ).to_csv(tmp_path / "t9.csv", index=False)
    report = reproduction.side_by_side(reproduction.load_tables(tmp_path))
    assert report.row.tolist() == ["1, 0", "2, 5"]


def test_reconstruction_reading_follows_the_numbers():
    from mu_lib.chapters import reconstruction

    summ = pd.DataFrame(
        {
            "dataset": ["digits", "digits"],
            "kind": ["ridge", "logistic"],
            "cos_recon": [0.9, 0.97],
            "cos_exact": [1.0, 0.99],
            "cos_mean": [0.3, 0.2],
            "cos_most_changed": [0.5, 0.4],
            "label_ok": [1.0, 0.9],
            "beats_both_baselines": [True, True],
        }
    )
    curves = pd.DataFrame(
        {"epsilon": [0.1, 10.0, 1e4, math.inf], "cos_recon": [0.1, 0.2, 0.8, 0.9], "cos_mean": 0.2}
    )
    text = reconstruction.reading(summ, curves)
    assert "cosine 1.000 or more" in text and "an identity" in text
    assert "no better than an uninformed guess" in text and "epsilon = 1e+04" in text
    curves.loc[1, "cos_recon"] = 0.6  # the attack works at epsilon 10: DP did not stop it
    assert "still better than an uninformed guess" in reconstruction.reading(summ, curves)
    curves["cos_mean"] = -0.4  # a public mean pointing away: a random direction is the guess
    curves.loc[[0, 1], "cos_recon"] = 0.03
    assert "no better than an uninformed guess" in reconstruction.reading(summ, curves)


def test_table6_joins_each_dataset_to_the_paper_row_it_stands_beside():
    from mu_lib.chapters import larger

    assert [r[0] for r in larger.rows_spec(get_profile("paper"), None)] == [
        "tinyimagenet",
        "casia-webface",
    ]
    row_of = {"fashion-mnist": (larger.TINY, 10, (0, 4, 2)), "faces": (larger.FACES, 10, (0, 1, 2))}
    df = pd.DataFrame(
        [
            {
                "our_dataset": d,
                "method": m,
                "seed": 0,
                **{c: v for c in [*larger.COLS, "acc_ft", "acc_rt"]},
            }
            for d in row_of
            for m, v in (("Original", 99.0), ("DELETE", 5.0), ("Spotter", 1.0))
        ]
    )
    t = larger.table6(df, row_of)
    assert len(t) == 6
    ref = paper.table(6)
    for _, row in t.iterrows():
        hit = ref[(ref.dataset == row.dataset) & (ref.method == row.method)]
        assert row.dataset == row_of[row.our_dataset][0]
        assert row["proto_acc_f (paper)"] == pytest.approx(hit.proto_acc_f.iloc[0])
    text = larger.reading(t, row_of)
    assert text.count("Spotter over-unlearns less than DELETE") == 2


def test_table7_joins_each_backbone_to_its_paper_model():
    from mu_lib.chapters import transformers

    assert get_profile("paper").transformer_backbones == ("vit_s", "deit_s")
    df = pd.DataFrame(
        [
            {"backbone": b, "method": m, "seed": 0, "dispersion_f": 0.0,
             **{c: v for c in transformers.COLS}}
            for b in ("vit_s", "deit_s")
            for m, v in (("Original", 90.0), ("Retrain", 0.0), ("Spotter", 1.0))
        ]
    )  # fmt: skip
    t = transformers.table7(df)
    ref = paper.table(7)
    assert len(t) == 6
    for _, row in t.iterrows():
        hit = ref[
            (ref.model == transformers.PAPER_MODEL[row.backbone]) & (ref.method == row.method)
        ]
        assert row["proto_acc_f (paper)"] == pytest.approx(hit.proto_acc_f.iloc[0])
    assert (
        transformers.paper_fit()
        == "about 85% of their retained training data and about 71% of the test data"
    )


def test_identity_table_joins_cifar10_and_faces_rows():
    from mu_lib.chapters import identity

    summary = pd.DataFrame(
        [
            {"method": m, "acc_f": 0.0, "proto_acc_f": p, "acc_r_star": 90.0, "pra_k": 5,
             **{c: 0.5 for c in identity.EXTRA}}
            for m, p in zip(identity.MODELS, (99.0, 10.0, 70.0, 2.0), strict=True)
        ]
    )  # fmt: skip
    t = identity.table(summary).set_index("method")
    ref = paper.table(1).query("dataset == 'CIFAR-10'").set_index("method")
    faces = paper.table(6)[paper.table(6).dataset.str.startswith("CASIA")].set_index("method")
    for m in identity.MODELS:
        assert t.loc[m, "proto_acc_f (paper)"] == pytest.approx(ref.loc[m, "proto_acc_f"])
        assert t.loc[m, "proto_acc_f (paper, faces)"] == pytest.approx(
            faces.loc[m.split(" (")[0], "proto_acc_f"]
        )


def test_over_unlearning_worked_example_and_reading_use_the_paper_table():
    from mu_lib.chapters import over_unlearning as ou

    ex = ou.worked_example()
    js = ex["JS to masked original"].tolist()
    assert js[0] == 0.0 and js[1] == pytest.approx(0.0, abs=1e-6) and js[2] > 0.05
    t1 = paper.table(1).query("dataset == 'CIFAR-10'").set_index("method").ou
    table = pd.DataFrame(
        {
            "OU@eps (PGD, JS)": [0.0, 0.2, 0.05],
            "OU@eps paper (CIFAR-10)": [None, t1["DELETE"], t1["Spotter (lambda2=0.1)"]],
        }
    )
    text = ou.reading(table, 0.0)
    assert f"({t1['Spotter (lambda2=0.1)']:.4f} vs {t1['DELETE']:.4f} on CIFAR-10)" in text
    assert "over-unlearns less than DELETE" in text


def test_relearning_reading_cites_the_paper_table():
    from mu_lib.chapters import relearning

    curves = pd.DataFrame(
        [
            {"method": m, "N": n, "unlearned acc_f": 0.0, "relearn acc_f": r, "relearn lr": 1e-3,
             "unlearned acc_r": 95.0, "relearn acc_r": 94.5, "PRA proto_acc_f": p,
             "PRA acc_r_star": 94.2, "PRA alpha": 0.8}
            for m, r, p in (("DELETE", 40.0, 65.0), ("Spotter (λ2 = 1)", 0.0, 5.0))
            for n in (1, 5)
        ]
    )  # fmt: skip
    ref = paper.table(1).query("dataset == 'CIFAR-10' and method == 'DELETE'").iloc[0]
    text = relearning.reading(curves, (1, 5))
    assert text.startswith("With N = 5 shots:")
    assert f"({ref.acc_f:.0f} → {ref.proto_acc_f:.0f}% on CIFAR-10)" in text
    assert "fine-tuning restores less of DELETE's forget class than PRA" in text


def test_table4_joins_the_paper_rows_and_reads_the_rank_correlation():
    from mu_lib.chapters import gaussian_ou

    ref = paper.table(4).query("dataset == 'CIFAR-10'")
    frame = pd.DataFrame(
        {"method": ref.method, "dataset": "CIFAR-10", "seed": 0,
         "ou_pgd": ref.ou_pgd.values * 0.5, "ou_gaussian": ref.ou_gaussian.values * 0.5}
    )  # fmt: skip
    t = gaussian_ou.table4(frame, "CIFAR-10")
    assert len(t) == len(ref)
    for _, row in t.iterrows():
        assert row["ou_gaussian (paper)"] == pytest.approx(
            ref.set_index("method").loc[row.method, "ou_gaussian"]
        )
        assert row["ou_pgd Δ"] == pytest.approx(-0.5 * row["ou_pgd (paper)"])
    corr = gaussian_ou.rank_correlations({"CIFAR-10": t})
    assert corr["Spearman ours vs paper (PGD-OU)"].iloc[0] == pytest.approx(1.0)
    assert "holds here as well" in gaussian_ou.reading(corr, {"CIFAR-10": t})
    frame["ou_gaussian"] = -frame["ou_pgd"]  # reversed ranking: the conclusion must flip
    t = gaussian_ou.table4(frame, "CIFAR-10")
    corr = gaussian_ou.rank_correlations({"CIFAR-10": t})
    assert "does not hold" in gaussian_ou.reading(corr, {"CIFAR-10": t})


def fake_mra(mra: float, unlearned: float = 0.0) -> dict:
    return {
        "unlearned_acc": unlearned, "distill_acc": 2.0, "prior_matched_acc": 40.0,
        "mra_acc": mra, "student_acc": 30.0, "round_acc": [10.0, mra], "secs": 3.0,
    }  # fmt: skip


def test_membership_table_keeps_every_method_and_the_retrain_verdict_follows_the_numbers():
    from mu_lib.chapters import membership

    methods = ["retrain", "delete", "salun"]

    def table(retrain_recall):
        res = {}
        for m, q in zip(methods, (retrain_recall, 80.0, 60.0), strict=True):
            res[m, "query_only"] = fake_mra(q)
            res[m, "white_box"] = fake_mra(q + 5)
        return membership.recall_table(res, methods)

    df = table(10.0)
    assert list(df.method) == methods
    assert df.set_index("method").loc["delete", "MRA white-box"] == 85.0
    assert df.set_index("method").loc["salun", "Δ query-only − plain distillation"] == 58.0
    assert df.paper.isna().all()  # no published numbers
    assert "recovers more than half of D_f for 100%" in membership.against_abstract(df)
    assert "Less than the approximate methods' mean" in membership.against_abstract(df)
    assert "Not less than" in membership.against_abstract(table(90.0))
    assert "White-box beats query-only by more than 2 points on 3 method(s)" in (
        membership.reading(df)
    )


def test_table8_joins_the_paper_worst_case_of_each_shot_count_and_the_verdict_flips():
    from mu_lib.chapters import repeated_pra

    ref = repeated_pra.paper_table8().set_index("shots")
    shots = [1, 5, 10]

    def pooled(worst):
        return pd.DataFrame(
            {"shots": shots, "worst_proto_acc_f": [worst] * 3, "worst_acc_r_star": [90.0] * 3,
             "mean_proto_acc_f": [0.5] * 3, "mean_acc_r_star": [91.0] * 3}
        )  # fmt: skip

    single = {0: {"pra_k": 5, "proto_acc_f": 1.0}, 1: {"pra_k": 5, "proto_acc_f": 3.0}}
    table = repeated_pra.table8(pooled(2.0), single, "SalUn + Spotter")
    assert list(table.shots) == shots
    for _, row in table.iterrows():
        assert row["worst_proto_acc_f (paper)"] == pytest.approx(
            ref.loc[row.shots, "worst_proto_acc_f"]
        )
    assert table.single_draw_proto_acc_f.tolist()[1] == pytest.approx(2.0)  # mean over seeds
    assert table.single_draw_proto_acc_f.isna().tolist() == [True, False, True]
    per_seed = pd.DataFrame({"acc_r": [92.0, 93.0]})
    assert "**holds** here" in repeated_pra.reading(table, per_seed, 40)
    flipped = repeated_pra.table8(pooled(30.0), single, "SalUn + Spotter")
    assert "**does not hold** here" in repeated_pra.reading(flipped, per_seed, 40)
    assert repeated_pra.repeats_for(get_profile("smoke"), None) == 5
    assert repeated_pra.repeats_for(get_profile("cpu"), None) == 500


def test_table5_joins_the_paper_row_of_the_same_method_and_alpha():
    from mu_lib.chapters import alpha_sweep

    alphas = [1.0, 0.6, 0.2]
    sw = pd.DataFrame(
        [
            {"method": name, "key": key, "form": form, "alpha": a, "proto_acc_f": 10 * a,
             "acc_r_star": 90.0, "acc_r": 90.0}
            for key, name in (("boundary_shrink", "Boundary Shrink"), ("spotter", "Spotter"))
            for form in alpha_sweep.FORMS
            for a in alphas
        ]
    )  # fmt: skip
    t5 = alpha_sweep.table5(sw)
    assert len(t5) == 2 * len(alphas)  # cos rows only, none lost or doubled
    ref = paper.table(5).assign(method=lambda t: t.method.map(alpha_sweep.paper_key))
    for _, row in t5.iterrows():
        hit = ref[(ref.method == row.method) & (ref.alpha == row.alpha)]
        assert row["proto_acc_f (paper)"] == pytest.approx(hit.proto_acc_f.iloc[0])


def test_alpha_reading_uses_the_stealth_rule_and_says_when_no_alpha_fits():
    from mu_lib.chapters import alpha_sweep

    g = pd.DataFrame(
        {"method": "SalUn", "key": "salun", "form": "cos", "alpha": [1.0, 0.6, 0.2],
         "proto_acc_f": [80.0, 50.0, 50.0], "acc_r_star": [70.0, 89.5, 90.0], "acc_r": 90.0}
    )  # fmt: skip
    best = alpha_sweep.stealthy_choice(g)
    assert best.alpha == 0.6  # alpha 1 costs 20 points; of the tied others the stronger wins
    assert "50.0% at α = 0.6 within the 1-point budget" in alpha_sweep.reading(g)
    broke = g.assign(acc_r_star=[70.0, 80.0, 85.0])
    assert alpha_sweep.stealthy_choice(broke) is None
    assert "no α in the grid stays within the 1-point budget" in alpha_sweep.reading(broke)


def test_audit_reading_names_each_pair_and_profile_sizes_the_torchvision_run():
    from mu_lib import audit_demo

    rec = {
        "meta": {"arch": "cnn_small"},
        "models": {"original": {"acc_f": 98.0, "acc_rt": 97.0},
                   "unlearned": {"acc_f": 0.0, "acc_rt": 95.0}},
        "ou": {"pgd": 0.0123},
        "pra": {"unlearned": {"10": {"chosen_proto_acc_f": 12.0},
                              "5": {"chosen_proto_acc_f": 7.0}}},
        "feature_attacks": {"unlearned": [{"attack": "probe", "k": 5, "acc_f": 1.0},
                                          {"attack": "knn", "k": 5, "acc_f": 33.0}]},
    }  # fmt: skip
    text = audit_demo.reading({"salun": rec})
    assert text.startswith("- **SalUn** (cnn_small): Acc_f 98.0% -> 0.0%")
    assert "PRA with 5 shots brings the forget accuracy back to 7.0%" in text
    assert "k-NN with 5 shots to 33.0%" in text
    assert audit_demo.tv_settings(get_profile("smoke"), None, None) == (1, 30)
    assert audit_demo.tv_settings(get_profile("cpu"), None, None) == (8, None)
    assert audit_demo.tv_settings(get_profile("smoke"), 3, 7) == (3, 7)


def test_retrain_start_table_shows_the_old_rule_sharing_tensors_and_the_new_none():
    from mu_lib.chapters import definitions

    t = definitions.retrain_start_table(("cnn_small", "vit_tiny")).set_index("backbone")
    before = "shared with the original (reset_parameters on a copy, before)"
    now = "shared with the original (rebuilt from the registry, now)"
    assert t.loc["vit_tiny", before] > 0  # class token, position embeddings, in-projections
    assert (t[now] == 0).all()


def test_switch_effects_runs_both_definitions_of_every_switch(monkeypatch):
    from mu_lib.chapters import definitions

    seen = []

    def fake_run(cfg):
        seen.append(cfg)
        proto = 80.0 if cfg.pra_form == "l2_raw" else 20.0
        ou = 0.3 if cfg.neighbours == "authors" else 0.1
        body = cfg.overrides.get("train_body", False) or cfg.overrides.get("reset_forget_rows", 0)
        m = {"acc_f": 0.0, "acc_rt": 70.0 if body else 88.0, "ou_pgd": ou, "ou_gauss": ou,
             "proto_acc_f": proto, "acc_r_star": 90.0}  # fmt: skip
        return SimpleNamespace(metrics=m)

    monkeypatch.setattr(definitions, "run", fake_run)
    t = definitions.switch_effects("smoke")
    assert len(seen) == 2 * len(definitions.SWITCHES)
    assert set(t["definition"]) == {s.item for s in definitions.SWITCHES}
    pra = t.query("definition == 'PRA prototype (Appendix F)' and metric == 'Proto-Acc_f'").iloc[0]
    assert (pra["value now"], pra["value other"]) == (20.0, 80.0)  # cos now, l2_raw the option
    be = t.query("definition == 'Boundary Expand' and metric == 'Acc_rt'").iloc[0]
    assert (be["value now"], be["value other"]) == (
        88.0,
        70.0,
    )  # head only now, whole network other
    assert all(c.seed == 0 and c.forget_classes == (0,) for c in seen)


def test_a_diverged_attack_is_a_row_with_no_recall_and_a_note_not_a_crash(monkeypatch):
    from mu_lib import Diverged, mra_experiment
    from mu_lib.chapters import membership
    from mu_lib.experiment import RunConfig

    def blows_up(*_a, **_k):
        raise Diverged("mra-t0: the training loss became nan in epoch 1: the run diverged; lower")

    monkeypatch.setattr(mra_experiment, "membership_recall", blows_up)
    w = mra_experiment.recall_experiment(RunConfig(method="neggrad", profile="smoke"), "white_box")
    assert w["mra_acc"] is None and "diverged" in w["diverged"]
    res = {("neggrad", "query_only"): fake_mra(70.0), ("neggrad", "white_box"): w}
    df = membership.recall_table(res, ["neggrad"])
    assert (
        math.isnan(df.loc[0, "MRA white-box"]) and "white-box: attack diverged" in df.loc[0, "note"]
    )
    assert "failed attack, not evidence" in membership.reading(df)


def test_the_switch_legend_names_every_definition_once_per_wording():
    from mu_lib.chapters import definitions

    leg = definitions.legend()
    assert set(leg["definition"]) == {s.item for s in definitions.SWITCHES}
    assert list(leg.columns) == ["definition", "now", "option"]


def test_table1_parts_keep_every_column_once_and_every_row():
    from mu_lib.chapters import main_results as ch

    cols = ["method", "settings"] + [
        f"{m} {k}" for m in ("acc_f", "acc_r", "acc_ft", "acc_rt", "ou", "proto_acc_f", "acc_r_star")
        for k in ("(ours)", "(paper)", "Δ")
    ]  # fmt: skip
    t1 = pd.DataFrame(
        [[f"m{i}", "lr 1e-3"] + [1.0] * (len(cols) - 2) for i in range(3)], columns=cols
    )
    parts = ch.table1_parts(t1)
    shown = [c for p in parts.values() for c in p.columns if c != "method"]
    assert sorted(shown) == sorted(cols[1:]) and all(len(p) == 3 for p in parts.values())
    assert "acc_r_star (ours)" not in parts["accuracies"]  # acc_r does not swallow acc_r_star


def test_membership_methods_are_capped_on_smoke_only_by_default():
    from mu_lib.chapters import membership
    from mu_lib.profiles import get_profile

    full = membership.registered(None, get_profile("cpu"))
    assert full[:3] == ["retrain", "delete", "spotter"] and len(full) >= 8
    assert membership.registered(None, get_profile("smoke")) == ["retrain", "delete"]
    asked = ["spotter", "neggrad", "salun"]
    assert membership.registered(asked, get_profile("smoke")) == asked  # a choice is kept whole
