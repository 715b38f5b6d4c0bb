"""Repeated PRA (mu_lib.attacks.pra_repeat): batched evaluation, alpha rule, worst case, shots."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mu_lib import MuError
from mu_lib.attacks.pra import PRA
from mu_lib.attacks.pra_repeat import draw_shots, repeat_pra, repeated_table


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
@pytest.mark.parametrize("form", ["l2", "cos"])
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


def test_table_rows_per_shot_count():
    rows, full = repeated_table(_attack(), shots=(1, 5), repeats=10)
    assert [r["shots"] for r in rows] == [1, 5]
    assert all(len(full[k].proto_acc_f) == 10 for k in (1, 5))
