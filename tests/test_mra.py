"""Membership Recall Attack: threat model enforced by the signature, input errors, the pieces,
and recovery of forgotten labels on the smoke profile."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from mu_lib import MuError, mra_experiment
from mu_lib.attacks import mra
from mu_lib.backbones import build_model
from mu_lib.experiment import RunConfig, split_for, unlearned_model


def test_the_attack_cannot_receive_labels_retained_data_or_the_original_model():
    params = list(inspect.signature(mra.membership_recall).parameters)
    # memo: the attack's own first distillation, kept for its next call (keyed by the teacher)
    assert params == ["unlearned", "x_forgotten", "x_public", "num_classes", "hp", "memo"]
    forbidden = ("retain", "original", "label", "y_", "split", "cfg")
    assert not [p for p in params if any(f in p for f in forbidden)]
    # and the hyperparameters carry no data either
    assert not any(
        isinstance(v, torch.Tensor | nn.Module) for v in mra.MRAHparams().to_dict().values()
    )


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_model("cnn_small", 10, 1, 8).eval()
    return model, torch.rand(12, 1, 8, 8), torch.rand(20, 1, 8, 8)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"tau": 0.0}, "tau"),
        ({"tau": 1.5}, "tau"),
        ({"tau": -0.2}, "tau"),
        ({"tau": "half"}, "tau"),
        ({"setting": "grey_box"}, "setting"),
        ({"rounds": 0}, "rounds"),
        ({"temperature": 0.0}, "temperature"),
        ({"selection": "vote"}, "selection"),
        ({"white_box_report": "both"}, "white_box_report"),
        ({"smoothing": -0.1}, "smoothing"),
    ],
)
def test_bad_hyperparameters_raise(tiny, change, match):
    model, xf, xp = tiny
    with pytest.raises(MuError, match=match):
        mra.membership_recall(model, xf, xp, 10, mra.MRAHparams(**change))


def test_bad_inputs_raise(tiny):
    model, xf, xp = tiny
    with pytest.raises(MuError, match="empty"):
        mra.membership_recall(model, xf[:0], xp, 10)
    with pytest.raises(MuError, match="num_classes=7"):
        mra.membership_recall(model, xf, xp, 7)
    headless = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(MuError, match="head"):
        mra.membership_recall(headless, xf, xp, 10)
    with pytest.raises(MuError, match="same size"):
        mra.membership_recall(model, xf, torch.rand(5, 1, 6, 6), 10)


def test_prior_offsets_make_the_average_prediction_uniform():
    torch.manual_seed(0)
    logits = torch.randn(400, 5)
    logits[:, 2] -= 8.0  # a suppressed class, as after unlearning
    logp = torch.log_softmax(logits, 1)
    b = mra.prior_offsets(logp)
    marginal = torch.softmax(logp + b, 1).mean(0)
    assert torch.allclose(marginal, torch.full((5,), 0.2), atol=1e-3)
    assert (torch.softmax(logp + b, 1).argmax(1) == 2).sum() > 40  # the class comes back
    # ranking within a class is unchanged
    assert torch.equal(logp[:, 2].argsort(), (logp + b)[:, 2].argsort())


def test_agreed_selection_keeps_only_agreements_and_the_most_confident():
    pt = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3], [0.45, 0.55]])
    ps = torch.tensor([[0.8, 0.2], [0.7, 0.3], [0.3, 0.7], [0.4, 0.6], [0.4, 0.6]])
    idx, lab = mra.agreed_selection(pt, ps, tau=0.5)
    # class 0 agreed on rows 0, 1 (row 3 disagrees): keep ceil(0.5 * 2) = 1, the surer row 0;
    # class 1 agreed on rows 2, 4: keep row 2
    assert idx.tolist() == [0, 2] and lab.tolist() == [0, 1]
    idx, _ = mra.agreed_selection(pt, ps, tau=1.0)
    assert sorted(idx.tolist()) == [0, 1, 2, 4]


def test_product_selection_takes_round_tau_n_over_c_per_class_without_agreement():
    """The reference's rule: per class, the top round(tau * N / C) rows of the product of the
    Laplace-smoothed probabilities; a class nobody predicts still gets its most likely rows."""
    pa = torch.tensor(
        [
            [0.90, 0.05, 0.05],
            [0.80, 0.15, 0.05],
            [0.70, 0.20, 0.10],  # class 2 is never anyone's argmax ...
            [0.60, 0.30, 0.10],
            [0.10, 0.80, 0.10],
            [0.05, 0.90, 0.05],
            [0.55, 0.05, 0.40],  # ... but this row is its most likely one
            [0.30, 0.60, 0.10],
        ]
    )
    pb = torch.tensor(
        [
            [0.85, 0.10, 0.05],
            [0.20, 0.70, 0.10],  # the models disagree on row 1
            [0.60, 0.20, 0.20],
            [0.65, 0.25, 0.10],
            [0.20, 0.70, 0.10],
            [0.10, 0.85, 0.05],
            [0.50, 0.10, 0.40],
            [0.25, 0.65, 0.10],
        ]
    )
    beta = 0.02
    idx, lab = mra.product_selection(pa, pb, tau=0.75, beta=beta)  # round(0.75 * 8 / 3) = 2
    assert lab.tolist() == [0, 0, 1, 1, 2, 2]
    sa = (pa + beta) / (pa + beta).sum(1, keepdim=True)
    sb = (pb + beta) / (pb + beta).sum(1, keepdim=True)
    joint = sa * sb
    for k in range(3):
        assert idx[lab == k].tolist() == joint[:, k].argsort(descending=True)[:2].tolist()
    # by hand: class 0 rows 0 (.9 x .85) and 2 (.7 x .6); class 1 rows 5 and 4; class 2 rows 6
    # (.4 x .4) and 2 (.1 x .2), although no model predicts class 2 for any row
    assert idx.tolist() == [0, 2, 5, 4, 6, 2]
    # the count is round(tau * N / C) per class, at least one
    assert len(mra.product_selection(pa, pb, tau=0.5)[0]) == 3 * round(0.5 * 8 / 3)
    assert len(mra.product_selection(pa, pb, tau=0.01)[0]) == 3


def test_the_attack_follows_the_reference_by_default_and_our_additions_are_options(
    tiny, monkeypatch
):
    hp = mra.MRAHparams()
    assert (hp.selection, hp.prior_matching, hp.white_box_report) == ("product", False, "teacher")
    model, xf, xp = tiny

    def forbidden(*_a, **_k):
        raise AssertionError("an option that is off by default was used")

    monkeypatch.setattr(mra, "prior_offsets", forbidden)
    monkeypatch.setattr(mra, "agreed_selection", forbidden)
    quick = {"rounds": 1, "distill_epochs": 1, "finetune_epochs": 1, "batch_size": 8}
    for setting in mra.SETTINGS:
        mra.membership_recall(model, xf, xp, 10, mra.MRAHparams(setting=setting, **quick))


def test_white_box_reports_the_fine_tuned_teacher(tiny, monkeypatch):
    """The reference's open-source case evaluates the fine-tuned unlearned model ("restore"),
    not the student; ``white_box_report='student'`` is the option."""
    from mu_lib.infer import predict_logits

    model, xf, xp = tiny
    tuned = {}
    real = mra._finetune

    def spy(m, *args, **kw):
        real(m, *args, **kw)
        tuned.setdefault(args[3], m)  # args[3] is the BatchNorm mode: eval for the teacher

    monkeypatch.setattr(mra, "_finetune", spy)
    quick = {"rounds": 1, "distill_epochs": 1, "finetune_epochs": 1, "batch_size": 8}
    res = mra.membership_recall(model, xf, xp, 10, mra.MRAHparams(setting="white_box", **quick))
    teacher, student = tuned["eval"], tuned["train"]
    assert teacher is not model and student is res.student
    as_teacher = predict_logits(teacher, xf).argmax(1)
    as_student = predict_logits(student, xf).argmax(1)
    assert not torch.equal(as_teacher, as_student)  # otherwise this test could not tell
    assert torch.equal(res.labels, as_teacher) and torch.equal(res.restored_labels, as_teacher)
    assert torch.equal(res.student_labels, as_student)
    hp = mra.MRAHparams(setting="white_box", white_box_report="student", **quick)
    assert torch.equal(mra.membership_recall(model, xf, xp, 10, hp).labels, as_student)


def test_white_box_leaves_the_unlearned_model_untouched(tiny):
    model, xf, xp = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hp = mra.MRAHparams(
        setting="white_box", rounds=1, distill_epochs=1, finetune_epochs=1, batch_size=8
    )
    res = mra.membership_recall(model, xf, xp, 10, hp)
    assert res.labels.shape == (12,) and len(res.round_labels) == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("method", ["retrain", "spotter"])
def test_mra_recovers_forgotten_labels_on_smoke(method):
    """Both methods leave the unlearned model with 0% on D_f on smoke / seed 0; MRA must get
    most labels back, and clearly more than plain distillation (which copies the teacher)."""
    cfg = RunConfig(method=method, profile="smoke", seed=0)
    out = {s: mra_experiment.recall_experiment(cfg, s) for s in mra.SETTINGS}
    for setting, r in out.items():
        assert r["setting"] == setting and r["n_forgotten"] > 0 and r["n_public"] > 0
        assert r["unlearned_acc"] < 10, r  # the method did forget
        assert r["mra_acc"] > r["unlearned_acc"] + 50, r
        assert r["mra_acc"] > r["distill_acc"] + 50, r
        assert set(r["per_class"]) == {"0"}
        hist = r["label_hist"]["mra"]
        # each share is rounded to 4 decimals, so the sum may be off by 5e-5 per class
        assert abs(sum(hist) - 1) <= 5e-5 * len(hist) + 1e-9
    # the forgotten samples' labels, under the unlearned model, all land on retained classes
    assert out["query_only"]["label_hist"]["unlearned"][0] < 0.1


def test_recall_experiment_is_cached_and_keeps_the_attacker_away_from_labels(monkeypatch):
    cfg = RunConfig(method="retrain", profile="smoke", seed=0)
    first = mra_experiment.recall_experiment(cfg, "query_only")
    seen = {}
    real = mra.membership_recall

    def spy(*args, **kw):
        seen["args"] = args
        return real(*args, **kw)

    monkeypatch.setattr(mra_experiment, "membership_recall", spy)
    assert mra_experiment.recall_experiment(cfg, "query_only") == first  # from the store
    assert "args" not in seen
    # a fresh configuration runs the attack: it receives D_f's images and public images only
    mra_experiment.recall_experiment(cfg, "query_only", mra.MRAHparams(rounds=1), public_size=100)
    model, xf, xp, n, _hp = seen["args"]
    split = split_for(cfg)
    assert model is unlearned_model(cfg)[0]
    assert torch.equal(xf, split.forget_train[0]) and n == split.num_classes
    assert len(xp) == 100
    train = {tuple(row.flatten().tolist()) for row in split.x_train}
    assert not any(tuple(row.flatten().tolist()) in train for row in xp)  # disjoint from training
