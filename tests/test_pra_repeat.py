"""Repeated PRA (mu_lib.attacks.pra_repeat): it is the main attack (attacks/pra.py) on every
draw, cosine by default; worst case, shots, and the pooled Table 8."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mu_lib import MuError
from mu_lib.attacks import pra
from mu_lib.attacks.pra import PRA
from mu_lib.attacks.pra_repeat import (
    draw_shots,
    pooled_summary,
    repeat_pra,
    repeated_table,
    sweep_shot_sets,
)
from mu_lib.experiment import RunConfig, pra_for, run, split_for, unlearned_model


class Toy(nn.Module):
    """Embedding = the input; a random linear head (enough for PRA's interface)."""

    def __init__(self, d: int, c: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.head = nn.Linear(d, c)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


def _attack(forget_classes=(0,), n=60, c=6, d=8, seed=0) -> PRA:
    """Gaussian class clusters; the forget classes have a wide spread so shots matter."""
    g = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(c, d, generator=g)
    y = torch.arange(c).repeat_interleave(n)
    spread = torch.where(torch.isin(y, torch.tensor(forget_classes)), 2.5, 0.7)
    x = centres[y] + spread[:, None] * torch.randn(len(y), d, generator=g)
    m = torch.isin(y, torch.tensor(forget_classes))
    return PRA(Toy(d, c, seed), (x[m], y[m]), (x[~m], y[~m]), forget_classes)


@pytest.mark.parametrize("forget_classes", [(0,), (1, 3)])
@pytest.mark.parametrize("form", ["cos", "l2", "l2_raw"])
def test_each_repeat_is_exactly_pra_sweep(forget_classes, form):
    attack = _attack(forget_classes)
    res = repeat_pra(attack, k=3, repeats=25, seed=1, form=form)
    for i, idx in enumerate(res.shots):
        ref = attack.sweep(torch.tensor(idx), form)
        assert (res.proto_acc_f[i], res.acc_r_star[i], res.alpha[i]) == (
            ref.chosen_proto_acc_f,
            ref.chosen_acc_r_star,
            ref.alpha,
        )


def test_worst_at_least_mean_and_is_a_real_repeat():
    attack = _attack()
    s = repeat_pra(attack, k=1, repeats=60, seed=0).summary()
    assert s["worst_proto_acc_f"] >= s["mean_proto_acc_f"]
    res = repeat_pra(attack, k=1, repeats=60, seed=0)
    w = res.worst_index
    assert res.proto_acc_f[w] == max(res.proto_acc_f)
    assert s["worst_acc_r_star"] == res.acc_r_star[w]
    # one-shot prototypes of a spread-out class vary: the worst case is strictly above the mean
    assert s["worst_proto_acc_f"] > s["mean_proto_acc_f"]


def test_deterministic_for_a_seed_and_different_across_seeds():
    attack = _attack()
    a = repeat_pra(attack, k=5, repeats=20, seed=3)
    b = repeat_pra(attack, k=5, repeats=20, seed=3)
    c = repeat_pra(attack, k=5, repeats=20, seed=4)
    assert a.shots == b.shots and a.proto_acc_f == b.proto_acc_f
    assert a.shots != c.shots


def test_repeats_draw_different_shots_from_the_right_class():
    attack = _attack((1, 3))
    shots = draw_shots(attack.yf, attack.forget_classes, k=4, repeats=30, seed=0)
    assert shots.shape == (30, 8)
    assert len({tuple(sorted(r.tolist())) for r in shots}) > 25
    for row in shots:
        assert (attack.yf[row[:4]] == 1).all() and (attack.yf[row[4:]] == 3).all()
        assert len(set(row.tolist())) == 8  # no shot drawn twice within a repeat


def test_too_many_shots_raise():
    attack = _attack(n=20)
    with pytest.raises(MuError, match="k=21"):
        repeat_pra(attack, k=21, repeats=2)
    with pytest.raises(MuError, match="repeats"):
        repeat_pra(attack, k=1, repeats=0)
    repeat_pra(attack, k=20, repeats=2)  # all of them is allowed


def test_default_form_is_the_papers_cosine_as_in_the_main_tables():
    attack = _attack()
    res = repeat_pra(attack, k=3, repeats=5, seed=0)
    assert res.form == RunConfig().pra_form == "cos"
    for i, idx in enumerate(res.shots):
        assert res.proto_acc_f[i] == attack.sweep(torch.tensor(idx), "cos").chosen_proto_acc_f


def test_every_repeat_runs_the_main_attacks_own_evaluation(monkeypatch):
    """One PRA implementation: each draw goes through PRA.evaluate of the real attack."""
    attack = _attack()
    calls = []
    real = PRA.evaluate

    def spy(self, protos, form, alphas):
        calls.append(self)
        return real(self, protos, form, alphas)

    monkeypatch.setattr(PRA, "evaluate", spy)
    repeat_pra(attack, k=2, repeats=7, seed=0)
    assert len(calls) == 7 and all(c is attack for c in calls)


def test_l2_form_uses_the_unit_prototype_as_the_authors_code():
    protos = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    w, b = pra.prototype_head(protos, "l2")
    unit = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    assert torch.allclose(w, 2 * unit) and torch.allclose(b, torch.tensor([-1.0, -1.0]))
    w_raw, b_raw = pra.prototype_head(protos, "l2_raw")  # eq. 6 on the raw mean
    assert torch.equal(w_raw, 2 * protos) and torch.equal(b_raw, torch.tensor([-25.0, -4.0]))


def test_appendix_f_equals_the_main_attack_on_the_same_model_and_shots():
    """On the smoke profile's Spotter model, the repeated attack fed the main run's shots gives
    the main run's Proto-Acc_f, Acc*_r and alpha, bit for bit, in both forms."""
    cfg = RunConfig(method="spotter", profile="smoke", seed=0)
    res = run(cfg)
    attack = pra_for(cfg, unlearned_model(cfg)[0])
    k = res.metrics["pra_k"]
    shots = split_for(cfg).shot_indices(k, cfg.seed)
    for form in ("cos", "l2"):
        main = res.details["pra"][form]
        rep = sweep_shot_sets(attack, shots[None], form, cfg.alphas)
        assert rep.k == k and rep.shots == [shots.tolist()]
        assert (rep.proto_acc_f[0], rep.acc_r_star[0], rep.alpha[0]) == (
            main["chosen_proto_acc_f"],
            main["chosen_acc_r_star"],
            main["alpha"],
        )
    assert res.metrics["proto_acc_f"] == res.details["pra"]["cos"]["chosen_proto_acc_f"]


def test_table_pools_seeds_and_keeps_per_seed_rows():
    attacks = {0: _attack(seed=0), 1: _attack(seed=1)}
    pooled, per_seed, full = repeated_table(attacks, shots=(1, 5), repeats=10)
    assert [r["shots"] for r in pooled] == [1, 5]
    assert [(r["seed"], r["shots"]) for r in per_seed] == [(0, 1), (0, 5), (1, 1), (1, 5)]
    assert all(len(full[s, k].proto_acc_f) == 10 for s in (0, 1) for k in (1, 5))
    for row in pooled:
        runs = [full[s, row["shots"]] for s in (0, 1)]
        every = [v for r in runs for v in r.proto_acc_f]
        assert row["worst_proto_acc_f"] == max(every)
        assert row["mean_proto_acc_f"] == pytest.approx(sum(every) / len(every))
        assert row == pooled_summary(runs)
    with pytest.raises(MuError, match="same shot count"):
        pooled_summary([full[0, 1], full[0, 5]])
