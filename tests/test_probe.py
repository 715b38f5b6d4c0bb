"""k-NN recovery and the linear probe: they restore a class that only the head hides, and they do
not on features that never separated it (the retrain floor)."""

import copy

import pandas as pd
import pytest
import torch

from mu_lib import MuError, beyond
from mu_lib.attacks.probe import FeatureAttacks, class_shots, knn_predict
from mu_lib.experiment import RunConfig, original_model, pra_for, unlearned_model

FORGET = (3,)


@pytest.fixture(scope="module")
def smoke_models():
    """The smoke original, a copy whose head only masks class 3, and the model retrained without it."""
    cfg = RunConfig(method="retrain", profile="smoke", forget_classes=FORGET, device="cpu")
    orig, _, _ = original_model(cfg)
    masked = copy.deepcopy(orig)
    with torch.no_grad():
        masked.head.weight[list(FORGET)] = 0.0
        masked.head.bias[list(FORGET)] = -100.0
    retrained = unlearned_model(cfg)[0]
    return cfg, masked, retrained


def attacks_on(cfg, model):
    pra = pra_for(cfg, model)
    return pra, FeatureAttacks.from_pra(pra)


@pytest.mark.parametrize("attack", ["knn", "probe"])
def test_attack_restores_a_class_the_head_only_masks(smoke_models, attack):
    cfg, masked, _ = smoke_models
    pra, fa = attacks_on(cfg, masked)
    assert pra.acc_f == 0.0  # the head hides the class completely
    res = getattr(fa, attack)(5, seed=0)
    assert res.acc_f >= 95.0  # five shots bring it back
    assert res.acc_r >= 95.0


def test_knn_on_the_retrained_model_stays_below_the_masked_one(smoke_models):
    cfg, masked, retrained = smoke_models
    floor = attacks_on(cfg, retrained)[1].knn(5, seed=0).acc_f
    hidden = attacks_on(cfg, masked)[1].knn(5, seed=0).acc_f
    assert floor < hidden - 10.0  # a net that never saw the digit separates it less well


def never_seen_features(n_per_class=60, dim=16, classes=5):
    """Retained classes are separate clusters; the forget class 0 is drawn from the mixture of
    the retained ones, as for a model whose features carry nothing of it."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(classes, dim, generator=g) * 4
    y = torch.arange(classes).repeat_interleave(n_per_class)
    src = y.clone()
    src[y == 0] = torch.randint(1, classes, (int((y == 0).sum()),), generator=g)
    x = centers[src] + torch.randn(len(y), dim, generator=g)
    f = y == 0
    return FeatureAttacks(x[f], y[f], x[~f], y[~f], [0])


@pytest.mark.parametrize("attack", ["knn", "probe"])
def test_attack_fails_on_features_that_never_separated_the_class(attack):
    fa = never_seen_features()
    res = getattr(fa, attack)(20, seed=0)
    assert res.acc_f < 35.0  # chance is 1 in 5; nothing to recover
    assert res.acc_r > 60.0  # the retained classes still hold on (the shots of 0 pull some away)


def test_shots_are_left_out_and_too_many_shots_is_a_clear_error():
    fa = never_seen_features(n_per_class=10)
    with pytest.raises(MuError, match="k=10 shots of class 0 is impossible"):
        fa.knn(10)
    assert fa.max_shots() == 9
    assert [r.k for r in fa.run(ks=(5, 20))] == [5, 5]  # k=20 skipped, not silently capped


def test_knn_vote_and_shot_draw():
    ref = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    ref_y = torch.tensor([0, 0, 1])
    q = torch.tensor([[0.8, 0.2], [0.1, 1.0]])
    assert knn_predict(ref, ref_y, q, 1).tolist() == [0, 1]
    assert knn_predict(ref, ref_y, q, 3).tolist() == [0, 0]  # majority of all three
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    a, b = class_shots(y, [0, 1], 2, seed=1), class_shots(y, [0, 1], 2, seed=1)
    assert torch.equal(a, b) and sorted(y[a].tolist()) == [0, 0, 1, 1]


def _frame(knn_spotter):
    rows = []
    for method, pra, knn in [
        ("Retrain", 90.0, 90.0),
        ("NegGrad", 95.0, 99.0),
        ("SalUn", 96.0, 99.0),
        ("DELETE", 94.0, 98.0),
        ("Spotter (λ2 = 1)", 20.0, knn_spotter),
    ]:
        for attack, v in (("pra", pra), ("knn", knn)):
            rows.append(dict(view="default", method=method, seed=0, attack=attack, k=5, acc_f=v,
                             acc_r=99.0, unlearned_acc_f=0.0))  # fmt: skip
    return pd.DataFrame(rows)


def test_verdict_says_plainly_whether_the_advantage_survives():
    text, table = beyond.verdict(_frame(knn_spotter=97.0), "default")
    assert text.startswith("No: Spotter's advantage over the baselines does not survive")
    assert "no more than the retrained model" not in text  # 97 is 7 points above the floor
    assert table.set_index("attack").loc["PRA", "baselines_beaten"] == 3
    text, _ = beyond.verdict(_frame(knn_spotter=60.0), "default")
    assert text.startswith("Yes: Spotter's advantage over the baselines survives")


def test_beyond_rows_on_smoke_table1_models():
    cfgs = beyond.table1_configs(["retrain", "neggrad", "spotter"], [1.0], "smoke", [0], [0])
    df = beyond.run_attacks({"default": cfgs}, ks=(5, 20))
    assert set(df["attack"]) == {"pra", "knn", "probe"} and set(df["k"]) == {5, 20}
    table = beyond.forget_table(df, "default")
    assert list(table["method"]) == ["Retrain", "NegGrad", "Spotter (λ2 = 1)"]
    assert "k-NN recovery k=5" in table.columns and "linear probe k=20" in table.columns
    again = beyond.run_attacks({"default": cfgs}, ks=(5, 20))  # from the cache, same numbers
    pd.testing.assert_frame_equal(df, again)
