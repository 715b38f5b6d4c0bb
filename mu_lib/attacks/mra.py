"""Membership Recall Attack (MRA; Sui et al., IJCAI 2025): recover the labels of forgotten samples
from the unlearned model alone.

Threat model.  The attacker holds the unlearned model (queries only, or also its weights), the
forgotten samples *without labels* and unlabelled public data from the same distribution.  It
never sees the original model, the retained set or any label.  ``membership_recall`` enforces
this by its signature: it takes exactly those inputs plus hyperparameters, nothing else.

The attack treats the unlearned model as a noisy labeller (learning with noisy labels):

1. **Distil** a fresh student of the same architecture from the unlearned model (the teacher)
   on mixup-augmented pool images (forgotten + public).  After the first round the soft
   targets mix teacher and student predictions, so what the student has already recovered is
   not washed out again by the teacher.
2. **Select**: per class, the samples that teacher and student agree on most confidently.
   Scores are ranked within each class (percentiles) before comparing classes, so a class whose
   logit the unlearning pushed down everywhere still gets its share of the pool: about
   ``tau * N / C`` samples per class (N pool size, C classes).  This class-balance prior is what
   lets a suppressed class come back.
3. **Fine-tune** the student on the selected samples with their agreed labels (label
   smoothing); in the ``white_box`` setting the teacher (a copy) is fine-tuned the same way, so
   its later soft targets carry the recovered classes too.

Rounds of distil / select / fine-tune repeat.  The recovered labels are the final student's
predictions on the forgotten samples.  ``distill_labels`` (the student after the first
distillation, before any selection) is the plain-distillation ablation.

Every optimisation goes through ``mu_lib.train.fit``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import MuError
from ..data import batches
from ..models import check_classifier
from ..train import fit, make_optimizer, predict_logits, progress, seed_everything

SETTINGS = ("query_only", "white_box")


@dataclass
class MRAHparams:
    """Hyperparameters of the Membership Recall Attack (defaults tuned on ``smoke``/``cpu``).

    setting: ``query_only`` (teacher fixed, only queried) or ``white_box`` (a copy of the
        teacher is fine-tuned on the selected samples too).
    rounds: outer rounds of distil / select / fine-tune (>= 1).
    distill_epochs: epochs of the first distillation of the fresh student over the pool.
    redistill_epochs: distillation epochs at the start of every later round.
    finetune_epochs: epochs of fine-tuning on the selected samples per round.
    temperature: distillation temperature (softens the teacher so its ranking of the
        non-argmax classes, where the forgotten class hides, reaches the student).
    mixup_alpha: Beta(alpha, alpha) mixing weight of mixup; 0 disables mixup.
    teacher_weight: share of the teacher in the soft targets after the first round (the rest is
        the student's own detached prediction); the first round uses the teacher only, since a
        fresh student's predictions carry no information.
    tau: fraction of N / C samples selected per class, in (0, 1].
    label_smoothing: label smoothing of the fine-tuning cross-entropy.
    lr, finetune_lr: SGD learning rates of distillation and fine-tuning (momentum 0.9).
    teacher_lr: white-box fine-tuning learning rate of the teacher copy.
    batch_size: images per step.
    seed: initialisation of the student, batch order and mixup draws.
    """

    setting: str = "query_only"
    rounds: int = 3
    distill_epochs: int = 6
    redistill_epochs: int = 1
    finetune_epochs: int = 2
    temperature: float = 2.0
    mixup_alpha: float = 0.4
    teacher_weight: float = 0.7
    tau: float = 0.5
    label_smoothing: float = 0.1
    lr: float = 0.05
    finetune_lr: float = 0.01
    teacher_lr: float = 0.01
    batch_size: int = 128
    seed: int = 0

    def validate(self) -> None:
        if self.setting not in SETTINGS:
            raise MuError(f"unknown MRA setting {self.setting!r}; choose one of {SETTINGS}")
        if not (isinstance(self.tau, int | float) and 0 < self.tau <= 1):
            raise MuError(
                f"tau={self.tau!r} is not in (0, 1]; it is the fraction of N/C samples selected "
                "per class, e.g. tau=0.5"
            )
        for name in ("rounds", "batch_size"):
            if getattr(self, name) < 1:
                raise MuError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("distill_epochs", "redistill_epochs", "finetune_epochs"):
            if getattr(self, name) < 0:
                raise MuError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise MuError(f"temperature must be > 0, got {self.temperature}")
        if self.mixup_alpha < 0:
            raise MuError(f"mixup_alpha must be >= 0 (0 disables mixup), got {self.mixup_alpha}")
        if not 0 <= self.teacher_weight <= 1:
            raise MuError(f"teacher_weight must be in [0, 1], got {self.teacher_weight}")
        if not 0 <= self.label_smoothing < 1:
            raise MuError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class MRAResult:
    """What the attacker ends with: a label per forgotten sample (and the per-round trail)."""

    labels: torch.Tensor  # recovered labels of the forgotten samples (final student)
    distill_labels: torch.Tensor  # plain-distillation ablation (student after round 1's distil)
    teacher_labels: torch.Tensor  # the unlearned model's own predictions
    round_labels: list[torch.Tensor] = field(default_factory=list)
    selected: list[int] = field(default_factory=list)  # selected samples per round
    student: nn.Module | None = None
    round_calibrated: list[torch.Tensor] = field(default_factory=list)


# ------------------------------------------------------------------------ pieces


def fresh_copy(model: nn.Module, seed: int) -> nn.Module:
    """A re-initialised model of the same architecture (deepcopy, then ``reset_parameters`` on
    every layer under ``seed``): works for any registered backbone without knowing its name.
    Fixed buffers (the input normalisation constants) are kept; BatchNorm statistics reset."""
    student = copy.deepcopy(model)
    torch.manual_seed(seed)
    for m in student.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
        if hasattr(m, "reset_running_stats"):
            m.reset_running_stats()
    for p in student.parameters():
        p.requires_grad_(True)
    return student


def prior_offsets(logp: torch.Tensor, iters: int = 50) -> torch.Tensor:
    """Per-class offsets b with mean_x softmax(logp + b) uniform over classes (prior matching).

    Unlearning pushes a class's scores down on *every* input; public data of a natural
    distribution holds every class, so re-balancing the model's average prediction there undoes
    that global shift while keeping the ranking of samples within each class.
    """
    c = logp.shape[1]
    b = torch.zeros(c)
    for _ in range(iters):
        marginal = torch.softmax(logp + b, 1).mean(0).clamp_min(1e-12)
        b = b - torch.log(marginal * c)
    return b


def agreed_selection(
    logp_teacher: torch.Tensor,
    logp_student: torch.Tensor,
    tau: float,
    calibrate: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, the samples teacher and student agree on most confidently.

    Each model's log-probabilities are shifted by prior-matching offsets (computed on the rows
    ``calibrate`` selects, e.g. the public part of the pool; default all rows).  A sample is a
    candidate for class k when both models' shifted argmax is k; per class the
    ``ceil(tau * N / C)`` candidates with the highest lower confidence of the two are kept.
    Returns (indices into the pool, their labels).
    """
    n, c = logp_teacher.shape
    quota = max(1, math.ceil(tau * n / c))
    probs = []
    for logp in (logp_teacher, logp_student):
        ref = logp if calibrate is None else logp[calibrate]
        probs.append(torch.softmax(logp + prior_offsets(ref), 1))
    pt, ps = probs
    lab_t, lab_s = pt.argmax(1), ps.argmax(1)
    def margin(p: torch.Tensor) -> torch.Tensor:  # top-1 minus every other class
        top2 = p.topk(2, 1).values
        return p - torch.where(p == top2[:, :1], top2[:, 1:], top2[:, :1])

    score = torch.minimum(margin(pt), margin(ps))
    idx_all, lab_all = [], []
    for k in range(c):
        cand = torch.nonzero((lab_t == k) & (lab_s == k)).flatten()
        if len(cand) == 0:
            continue
        top = cand[score[cand, k].argsort(descending=True)[:quota]]
        idx_all.append(top)
        lab_all.append(torch.full_like(top, k))
    if not idx_all:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    return torch.cat(idx_all), torch.cat(lab_all)


def _distill(
    student: nn.Module,
    teacher: nn.Module,
    pool: torch.Tensor,
    epochs: int,
    teacher_weight: float,
    offsets: torch.Tensor | None,
    hp: MRAHparams,
    g: torch.Generator,
    rng: np.random.Generator,
    device: str,
    desc: str,
) -> None:
    """Soft-target distillation on mixup images; targets mix teacher and (detached) student."""
    t = hp.temperature
    teacher.eval()

    def make_batches(_epoch: int):
        for idx in batches(len(pool), hp.batch_size, shuffle=True, generator=g):
            xb = pool[idx.to(pool.device)]
            if hp.mixup_alpha > 0 and len(xb) > 1:
                lam = torch.from_numpy(rng.beta(hp.mixup_alpha, hp.mixup_alpha, len(xb)))
                lam = lam.float().view(-1, 1, 1, 1).to(xb.device)
                perm = torch.randperm(len(xb), generator=g).to(xb.device)
                xb = lam * xb + (1 - lam) * xb[perm]
            yield xb

    def loss_fn(xb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            zt = teacher(xb).float()
            if offsets is not None:
                zt = torch.log_softmax(zt, 1) + offsets
            target = torch.softmax(zt / t, 1)
        logits = student(xb).float()
        log_q = torch.log_softmax(logits / t, 1)
        if teacher_weight < 1:
            own = torch.softmax(logits.detach() / t, 1)
            target = teacher_weight * target + (1 - teacher_weight) * own
        return -(target * log_q).sum(1).mean() * t * t

    opt = make_optimizer(student.parameters(), hp.lr)
    fit(student, make_batches, loss_fn, opt, epochs, device=device, bn_mode="train", desc=desc)


def _finetune(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    bn_mode: str,
    hp: MRAHparams,
    g: torch.Generator,
    device: str,
    desc: str,
) -> None:
    """Label-smoothed cross-entropy on the selected samples."""

    def make_batches(_epoch: int):
        for idx in batches(len(y), hp.batch_size, shuffle=True, generator=g):
            idx = idx.to(x.device)
            yield x[idx], y[idx]

    def loss_fn(batch) -> torch.Tensor:
        xb, yb = batch
        return nn.functional.cross_entropy(
            model(xb).float(), yb, label_smoothing=hp.label_smoothing
        )

    opt = make_optimizer(model.parameters(), lr)
    fit(
        model,
        make_batches,
        loss_fn,
        opt,
        hp.finetune_epochs,
        device=device,
        bn_mode=bn_mode,
        desc=desc,
    )


def _check_inputs(
    model: nn.Module, x_forgotten: torch.Tensor, x_public: torch.Tensor, num_classes: int
) -> None:
    check_classifier(model)
    if x_forgotten is None or len(x_forgotten) == 0:
        raise MuError(
            "the forgotten set is empty: MRA needs at least one forgotten sample to recall "
            "(pass the forget-set images, e.g. split.forget_train[0])"
        )
    heads = model.head.out_features
    if num_classes != heads:
        raise MuError(
            f"num_classes={num_classes} does not match the model's head ({heads} outputs); "
            f"pass num_classes={heads}"
        )
    if x_public is not None and len(x_public) and x_public.shape[1:] != x_forgotten.shape[1:]:
        raise MuError(
            f"public images have shape {tuple(x_public.shape[1:])}, forgotten ones "
            f"{tuple(x_forgotten.shape[1:])}; both must be (C, H, W) images of the same size"
        )


# ------------------------------------------------------------------------ the attack


def membership_recall(
    unlearned: nn.Module,
    x_forgotten: torch.Tensor,
    x_public: torch.Tensor,
    num_classes: int,
    hp: MRAHparams | None = None,
) -> MRAResult:
    """Recall the labels of ``x_forgotten`` from ``unlearned`` (see the module docstring).

    The unlearned model is never modified (white-box fine-tunes a copy).  No labels, no original
    model and no retained data enter here by construction.
    """
    hp = hp or MRAHparams()
    hp.validate()
    _check_inputs(unlearned, x_forgotten, x_public, num_classes)
    device = next(unlearned.parameters()).device.type
    g = seed_everything(hp.seed)
    rng = np.random.default_rng(hp.seed)

    white = hp.setting == "white_box"
    teacher = copy.deepcopy(unlearned) if white else unlearned
    teacher.eval()
    student = fresh_copy(unlearned, hp.seed).to(device)

    x_public = x_public if x_public is not None else x_forgotten[:0]
    pool = torch.cat([x_forgotten, x_public]).to(device)
    nf = len(x_forgotten)

    def labels_of(model: nn.Module) -> torch.Tensor:
        return predict_logits(model, pool[:nf]).argmax(1)

    public = torch.arange(nf, len(pool)) if len(pool) > nf else None

    def logp_of(model: nn.Module) -> torch.Tensor:
        return torch.log_softmax(predict_logits(model, pool), 1)

    teacher_labels = labels_of(teacher)
    res = MRAResult(teacher_labels, teacher_labels, teacher_labels)
    # 1. plain knowledge distillation from the unlearned model (also the ablation's end point)
    import os
    offsets = None
    if os.environ.get("MRA_CALKD"):
        lt0 = logp_of(teacher)
        offsets = prior_offsets(lt0 if public is None else lt0[public]).to(device)
    _distill(student, teacher, pool, hp.distill_epochs, 1.0, offsets, hp, g, rng, device, "mra-kd")
    res.distill_labels = labels_of(student)
    # 2. learning with noisy labels: prior-matched teacher, agreement selection, fine-tuning
    for r in progress(range(hp.rounds), desc=f"mra:{hp.setting}"):
        logp_t = logp_of(teacher)
        if offsets is None or white:  # a fine-tuned teacher needs new offsets
            offsets = prior_offsets(logp_t if public is None else logp_t[public]).to(device)
        _distill(
            student,
            teacher,
            pool,
            hp.redistill_epochs,
            hp.teacher_weight,
            offsets,
            hp,
            g,
            rng,
            device,
            f"mra-distil{r}",
        )
        idx, lab = agreed_selection(logp_t, logp_of(student), hp.tau, public)
        import os
        if os.environ.get("MRA_PUBONLY") and public is not None:
            keep = idx >= nf
            idx, lab = idx[keep], lab[keep]
        res.selected.append(len(idx))
        if len(idx):
            xs, ys = pool[idx.to(pool.device)], lab.to(pool.device)
            _finetune(student, xs, ys, hp.finetune_lr, "train", hp, g, device, f"mra-ft{r}")
            if white:
                _finetune(teacher, xs, ys, hp.teacher_lr, "eval", hp, g, device, f"mra-teacher{r}")
        res.round_labels.append(labels_of(student))
        lps = logp_of(student)
        cal = lps + prior_offsets(lps if public is None else lps[public])
        res.round_calibrated.append(cal[:nf].argmax(1))
    res.labels = res.round_labels[-1]
    res.student = student
    return res
