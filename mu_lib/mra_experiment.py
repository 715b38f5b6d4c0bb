"""The Membership Recall Attack as an experiment (the x1 chapter's runs): MRA against the
unlearned model of a ``RunConfig``, on a seeded public pool, scored by the evaluator, cached."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from . import Diverged, MuError
from .attacks.mra import RUN_KINDS, MRAHparams, calibrated, membership_recall
from .experiment import split_for, store, unlearn_config, unlearned_model
from .infer import predict_logits

PUBLIC_SIZE = {"smoke": 500, "cpu": 500, "paper": 5000}  # default public pool per profile


def _recall(labels: torch.Tensor, y: torch.Tensor) -> float:
    """Percentage of ``labels`` equal to the true ``y`` (2 decimals; the evaluator's view)."""
    return round(100.0 * float((labels.cpu() == y.cpu()).float().mean()), 2)


def recall_experiment(
    cfg,
    setting: str = "query_only",
    hp: MRAHparams | None = None,
    public_size: int | None = None,
) -> dict[str, Any]:
    """MRA against the unlearned model of ``cfg`` (a ``RunConfig``), cached in the store.

    The forgotten samples are D_f (the forget classes' training images).  The public pool is a
    seeded random subset of ``public_size`` test-split images of *all* classes (default
    ``PUBLIC_SIZE[profile]``): disjoint from the training set, and holding the forgotten classes
    as any natural sample would.  Labels are used here, by the evaluator only, after the attack.
    Returns recall accuracies in percent: ``unlearned_acc`` (the unlearned model's own
    predictions), ``prior_matched_acc`` (its prior-matched predictions, no training: a
    diagnostic of the ``prior_matching`` option), ``distill_acc`` (plain distillation),
    ``mra_acc`` (the reported model: the fine-tuned teacher in white-box, else the student),
    ``student_acc`` (the final student in both settings) and ``round_acc``; ``per_class``
    recall per forget class; ``label_hist``, where the forgotten samples' labels land per class.
    """
    hp = dataclasses.replace(hp or MRAHparams(), setting=setting)
    hp.validate()
    prof = cfg.prof
    size = PUBLIC_SIZE.get(prof.name, 500) if public_size is None else int(public_size)
    if size < 0:
        raise MuError(f"public_size must be >= 0, got {size}")
    conf = {
        "what": "mra",
        "unlearned": unlearn_config(cfg),
        "hp": hp.to_dict(),
        "public": {"source": "test split, all classes", "size": size, "seed": cfg.seed},
    }

    def build() -> dict[str, Any]:
        split = split_for(cfg)
        xf, yf = split.forget_train
        gen = torch.Generator().manual_seed(20_000 + cfg.seed)
        pick = torch.randperm(len(split.x_test), generator=gen)[:size]
        x_public = split.x_test[pick]
        model, _, _, _ = unlearned_model(cfg)
        t0 = time.perf_counter()
        try:
            res = membership_recall(model, xf, x_public, split.num_classes, hp, memo=store().memo)
        except Diverged as err:
            # the attack's own fine-tuning blew up at the reference's rates: a failed attack,
            # recorded as such (every recall empty), not a crash of the whole chapter
            return {
                **dict.fromkeys((f"{k}_acc" for k in RUN_KINDS), None),
                "diverged": str(err).split(";")[0],
                "round_acc": [],
                "per_class": {},
                "label_hist": {},
                "method": cfg.method,
                "setting": setting,
                "n_forgotten": len(yf),
                "n_public": len(x_public),
                "secs": round(time.perf_counter() - t0, 2),
            }
        secs = time.perf_counter() - t0
        _, offsets = calibrated(
            model, torch.cat([xf, x_public]).to(res.labels.device), len(xf), True
        )
        lp = torch.log_softmax(predict_logits(model, xf), 1)
        prior = (lp + offsets).argmax(1)
        runs = {  # the keys are RUN_KINDS
            "unlearned": res.teacher_labels,
            "prior_matched": prior,
            "distill": res.distill_labels,
            "mra": res.labels,
            "student": res.student_labels,
        }
        out: dict[str, Any] = {f"{k}_acc": _recall(v, yf) for k, v in runs.items()}
        out["reported"] = (
            "teacher" if setting == "white_box" and hp.white_box_report == "teacher" else "student"
        )
        out["round_acc"] = [_recall(v, yf) for v in res.round_labels]
        out["per_class"] = {
            str(c): {k: _recall(v[yf == c], yf[yf == c]) for k, v in runs.items()}
            for c in split.forget_classes
        }
        out["label_hist"] = {
            k: [
                round(float(f), 4)
                for f in torch.bincount(v.cpu(), minlength=split.num_classes).float() / len(v)
            ]
            for k, v in runs.items()
        }
        out.update(
            method=cfg.method,
            setting=setting,
            n_forgotten=len(yf),
            n_public=len(x_public),
            selected=res.selected,
            secs=round(secs, 2),
        )
        return out

    return store().cached("mra", conf, build)
