"""Definitions checked against the paper and the methods' reference code (issue 13, section 3):
Retrain and MRA start from scratch for every backbone, helpers restore each module's own mode,
DELETE masks each sample's own class, SCRUB alternates its passes, Spotter's loss is eqs. 8-11.

Everything but the last test runs on tiny models and tensors (no training, no cache).
"""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
from torch import nn

from mu_lib.attacks.mra import fresh_copy
from mu_lib.backbones import MODELS, build_model
from mu_lib.infer import embed_all, predict_logits
from mu_lib.perturb import fgsm, gaussian, pgd_linf
from mu_lib.profiles import get_profile
from mu_lib.train import set_bn_mode
from mu_lib.unlearn import Context
from mu_lib.unlearn.base import Batch
from mu_lib.unlearn.helpers import accumulate_grads, bn_frozen
from mu_lib.unlearn.scrub import Scrub, ScrubHparams, kd_kl
from mu_lib.unlearn.simple import Delete, DeleteHparams, Retrain, RetrainHparams
from mu_lib.unlearn.spotter import Spotter, SpotterHparams
from mu_lib.unlearn.unsc import null_space_projectors
from mu_lib.util import seed_everything

SMOKE = get_profile("smoke")


def context(model, original, forget, retain=None, num_classes=4, forget_classes=(0,), seed=0):
    frozen = copy.deepcopy(original).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return Context(
        original=frozen,
        model=model,
        forget=forget,
        retain=retain,
        num_classes=num_classes,
        forget_classes=tuple(forget_classes),
        seed=seed,
        device="cpu",
        profile=SMOKE,
        generator=seed_everything(seed + 1),
    )


# ------------------------------------------------------------------ (a) from scratch


def backbone_shape(name: str) -> tuple[int, int]:
    """(channels, size) small enough to build every backbone quickly."""
    if name in ("vit_s", "deit_s"):
        pytest.importorskip("timm")
        return 3, 16
    return 1, 8


def trained_like(name: str) -> nn.Module:
    """A registry model whose every parameter moved away from its initial value, as training
    moves it (so that any tensor equal to the original's was not re-initialised)."""
    channels, size = backbone_shape(name)
    model = build_model(name, 4, channels, size)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01 + 0.01)
    return model


def shared_parameters(a: nn.Module, b: nn.Module) -> list[str]:
    pb = dict(b.named_parameters())
    return [n for n, p in a.named_parameters() if torch.equal(p.detach(), pb[n].detach())]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_retrain_starts_from_a_model_that_shares_no_parameter_with_the_original(name):
    original = trained_like(name)
    channels, size = backbone_shape(name)
    xr = torch.rand(8, channels, size, size)
    yr = torch.arange(8) % 3 + 1
    ctx = context(copy.deepcopy(original), original, (xr[:0], yr[:0]), (xr, yr))
    start = Retrain(RetrainHparams(train_epochs=0, batch_size=8, retain_batch=8)).unlearn(ctx)
    assert shared_parameters(start, original) == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mra_fresh_copy_shares_no_parameter_with_the_model(name):
    original = trained_like(name)
    student = fresh_copy(original, seed=3)
    assert shared_parameters(student, original) == []
    assert all(p.requires_grad for p in student.parameters())


# ------------------------------------------------------------------ (b) modes


def frozen_bn_cnn() -> nn.Module:
    model = build_model("cnn_small", 4, 1, 8)
    set_bn_mode(model, "eval")  # what the unlearning loop does for bn_mode='eval'
    return model


def modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def test_a_frozen_batchnorm_stays_frozen_after_every_helper():
    model = frozen_bn_cnn()
    before = modes(model)
    assert any(before) and not all(before)  # conv layers train, BatchNorm frozen
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6) % 4
    helpers = {
        "pgd_linf": lambda: pgd_linf(model, x, y, eps=0.03, step=0.01, steps=2),
        "fgsm": lambda: fgsm(model, x, y, eps=0.03),
        "gaussian": lambda: gaussian(x, std=0.1),
        "predict_logits": lambda: predict_logits(model, x),
        "embed_all": lambda: embed_all(model, x),
        "accumulate_grads": lambda: accumulate_grads(
            model, x, nn.functional.cross_entropy, y, 4, lambda grads, n: None
        ),
        "null_space_projectors": lambda: null_space_projectors(model, x, 0.99),
    }
    for name, call in helpers.items():
        call()
        assert modes(model) == before, f"{name} changed the modules' train/eval modes"
    with bn_frozen(model):
        pass
    assert modes(model) == before


# ------------------------------------------------------------------ (c) DELETE


class Table(nn.Module):
    """Row i of ``logits`` for the one-hot input e_i: a model with chosen outputs."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.lin = nn.Linear(logits.shape[0], logits.shape[1], bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(logits.T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def test_delete_masks_each_samples_own_class_only():
    teacher = torch.tensor([[2.0, 1.0, 0.0, -1.0], [1.0, 2.0, 0.0, -1.0]])
    x, y = torch.eye(2), torch.tensor([0, 1])  # one sample of each forget class
    own = teacher.clone()
    own[[0, 1], [0, 1]] = -30.0  # the reference: only the label's logit is masked
    every = teacher.clone()
    every[:, [0, 1]] = -30.0  # both forget classes masked for every sample
    # the reference's target for the class-0 sample keeps mass on forget class 1
    assert torch.softmax(own, 1)[0, 1] > 0.5
    method = Delete(DeleteHparams(batch_size=2, retain_batch=2))
    batch = Batch(idx=torch.arange(2), x=x, y=y)

    def loss_with(student_logits):
        ctx = context(Table(student_logits), Table(teacher), (x, y), forget_classes=(0, 1))
        return float(method.loss(ctx, batch).detach())

    assert loss_with(own) == pytest.approx(0.0, abs=1e-6)  # the target itself: zero KL
    assert loss_with(every) > 0.5


# ------------------------------------------------------------------ (d) SCRUB


def scrub_setup(epochs=3, max_epochs=2, **kw):
    torch.manual_seed(0)
    original = build_model("cnn_small", 4, 1, 8).eval()
    model = copy.deepcopy(original)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # a student that differs from its teacher
    xf, yf = torch.rand(10, 1, 8, 8), torch.zeros(10, dtype=torch.long)
    xr, yr = torch.rand(21, 1, 8, 8), torch.arange(21) % 3 + 1
    hp = ScrubHparams(
        epochs=epochs, max_epochs=max_epochs, batch_size=4, retain_batch=8, lr=1e-3, **kw
    )
    return Scrub(hp), context(model, original, (xf, yf), (xr, yr))


def test_scrub_alternates_a_max_pass_over_forget_data_and_a_min_pass_over_retained_data():
    method, ctx = scrub_setup()
    method.prepare(ctx)
    kinds = []
    for epoch in range(3):
        steps = list(method.batches(ctx, epoch))
        forget = [b for b in steps if len(b.y)]
        retain = [b for b in steps if b.xr is not None]
        assert all(b.xr is None for b in forget) and all(len(b.y) == 0 for b in retain)
        kinds.append(("max" if forget else "") + "min")
        is_forget = [len(b.y) > 0 for b in steps]
        assert is_forget == sorted(is_forget, reverse=True)  # the max pass comes first
        if forget:
            assert sorted(torch.cat([b.idx for b in forget]).tolist()) == list(range(10))
        assert sum(len(b.yr) for b in retain) == 21  # one whole pass over D_r
    assert kinds == ["maxmin", "maxmin", "min"]
    # the loop counts the same steps: 2 passes of 3 forget batches, 3 passes of 3 retained
    method, ctx = scrub_setup()
    method.unlearn(ctx)
    assert ctx.counts == {"forget_batches": 6, "retain_batches": 9}


def test_scrub_steps_use_the_reference_weights():
    method, ctx = scrub_setup()
    method.prepare(ctx)
    assert (method.hp.forget_weight, method.hp.retain_kd, method.hp.retain_ce) == (1.0, 0.001, 0.99)
    xf, yf = ctx.forget
    xr, yr = ctx.retain
    t = method.hp.temperature
    student, teacher = ctx.model.eval(), ctx.original
    fb = Batch(idx=torch.arange(4), x=xf[:4], y=yf[:4])
    with torch.no_grad():
        up = method.loss(ctx, fb)
        assert float(up) == pytest.approx(-float(kd_kl(teacher(xf[:4]), student(xf[:4]), t)))
        none = torch.zeros(0, dtype=torch.long)
        rb = Batch(idx=none, x=xf[none], y=yf[none], xr=xr[:8], yr=yr[:8])
        out = student(xr[:8])
        want = 0.001 * kd_kl(teacher(xr[:8]), out, t) + 0.99 * nn.functional.cross_entropy(
            out, yr[:8]
        )
        assert float(method.loss(ctx, rb)) == pytest.approx(float(want), rel=1e-5)
        # past max_epochs a forget batch (a plugged-in Spotter's stream) no longer ascends
        method.after_epoch(ctx, 1)
        assert float(method.loss(ctx, fb)) == 0.0


# ------------------------------------------------------------------ (e) Spotter


class TinyNet(nn.Module):
    """embed(x) = tanh(W x), head linear: Spotter needs only these two."""

    def __init__(self, d_in=12, d_emb=5, classes=4):
        super().__init__()
        self.body = nn.Linear(d_in, d_emb)
        self.head = nn.Linear(d_emb, classes)

    def embed(self, x):
        return torch.tanh(self.body(x.flatten(1)))

    def forward(self, x):
        return self.head(self.embed(x))


def kl_masked_by_hand(teacher_logits, student_logits, forget_classes):
    """mean_i sum_{k retained} p_ik (log p_ik - log q_ik), p the masked softmax (eq. 2)."""
    total = 0.0
    for t_row, s_row in zip(teacher_logits.tolist(), student_logits.tolist(), strict=True):
        keep = [k for k in range(len(t_row)) if k not in forget_classes]
        zt = sum(math.exp(t_row[k]) for k in keep)
        zs = sum(math.exp(v) for v in s_row)
        for k in keep:
            p = math.exp(t_row[k]) / zt
            total += p * (math.log(p) - math.log(math.exp(s_row[k]) / zs))
    return total / len(teacher_logits)


def within_class_cosine_by_hand(emb, y, classes):
    """Per forget class, the mean cosine over pairs i < j; averaged over the classes."""
    per_class = []
    for c in classes:
        rows = [e for e, label in zip(emb.tolist(), y.tolist(), strict=True) if label == c]
        pairs = list(itertools.combinations(rows, 2))
        cos = [
            sum(a * b for a, b in zip(u, v, strict=True))
            / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))
            for u, v in pairs
        ]
        per_class.append(sum(cos) / len(cos))
    return sum(per_class) / len(per_class)


def test_spotter_loss_is_the_papers_weighted_sum_computed_by_hand():
    torch.manual_seed(0)
    original = TinyNet().eval()
    student = copy.deepcopy(original)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    xf = torch.rand(6, 1, 3, 4)
    yf = torch.tensor([0, 0, 0, 1, 1, 1])
    ctx = context(student, original, (xf, yf), forget_classes=(0, 1), seed=4)
    l1, l2 = 0.7, 0.5
    hp = SpotterHparams(lambda1=l1, lambda2=l2, epochs=1, batch_size=6, retain_batch=6)
    method = Spotter(hp)
    method.prepare(ctx)
    neighbours = ctx.state["spotter_neighbours"]
    assert not torch.equal(neighbours, xf) and (neighbours - xf).abs().max() <= hp.eps_o + 1e-6
    idx = torch.tensor([5, 0, 3, 1, 4, 2])  # any order
    batch = Batch(idx=idx, x=xf[idx], y=yf[idx])
    with torch.no_grad():
        got = float(method.loss(ctx, batch))
        l_u = kl_masked_by_hand(original(xf[idx]), student(xf[idx]), (0, 1))
        xn = neighbours[idx]
        l_o = kl_masked_by_hand(original(xn), student(xn), (0, 1))
        l_sim = within_class_cosine_by_hand(student.embed(xf[idx]), yf[idx], (0, 1))
    assert l_u > 0.01 and l_o > 0.01 and abs(l_sim) > 0.01  # every term is in play
    assert got == pytest.approx(l1 * l_u + (1 - l1) * l_o + l2 * l_sim, rel=1e-5)


def test_evaluation_neighbours_differ_from_spotters_training_neighbours():
    from mu_lib.experiment import RunConfig, neighbours, original_model, split_for

    cfg = RunConfig(method="spotter", profile="smoke", device="cpu", seed=0)
    original, _, _ = original_model(cfg)
    xf, yf = split_for(cfg).forget_train
    x_eval, _ = neighbours(cfg, "pgd")
    hp = SpotterHparams(eps_o=SMOKE.pgd_eps, step_o=SMOKE.pgd_step, steps_o=SMOKE.pgd_steps)
    ctx = context(copy.deepcopy(original), original, (xf, yf), num_classes=10, seed=cfg.seed)
    Spotter(hp).prepare(ctx)
    x_train = ctx.state["spotter_neighbours"]
    assert x_train.shape == x_eval.shape
    assert (x_train - xf).abs().max() <= SMOKE.pgd_eps + 1e-6  # same ball, same attack settings
    # ... but drawn independently: the random starts differ, and so do the neighbours
    assert (x_train - x_eval).abs().mean() > 0.1 * SMOKE.pgd_eps
