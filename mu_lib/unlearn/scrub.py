"""SCRUB (Kurmanji et al., NeurIPS 2023), beyond the paper's baselines: the original is a teacher;
the student moves away from it on D_f (max-steps) while staying close to it and to the labels
on D_r (min-steps).

As in the SCRUB code, the two kinds of step alternate by whole passes: each of the first
``max_epochs`` epochs is one pass of max-steps over D_f followed by one pass of min-steps over
D_r; the later epochs have min-steps only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .. import MuError
from ..data import batches
from .base import Batch, Context, HParams, Method, register
from .helpers import require_retain
from .losses import forget_teacher_logits, teacher_logits


@dataclass
class ScrubHparams(HParams):
    """SCRUB's settings (the rest as in ``HParams``); defaults are the SCRUB code's.

    temperature: distillation temperature of both KL terms (``kd_T`` = 4).
    max_epochs: epochs that begin with a pass of max-steps over D_f (the code's ``msteps``; None:
        the first half of the epochs, rounded up); SCRUB stops ascending early so that the
        min-steps can repair D_r.
    forget_weight: weight of the KL(teacher || student) that a max-step *maximises* (1).
    retain_kd: weight of the KL(teacher || student) that a min-step minimises (``alpha`` = 0.001).
    retain_ce: weight of the cross-entropy that a min-step minimises (``gamma`` = 0.99).
    retain_steps: min-steps per epoch (None: one pass over D_r in batches of ``retain_batch``,
        as the code does; a number caps the pass).
    lr: 5e-4, the SCRUB code's CIFAR setting (``paper``); ``cpu`` / ``smoke`` see
        ``profile_defaults``.
    bn_mode: ``train``, as in the SCRUB code.
    """

    lr: float = 5e-4
    bn_mode: str = "train"
    temperature: float = 4.0
    max_epochs: int | None = None
    forget_weight: float = 1.0
    retain_kd: float = 0.001
    retain_ce: float = 0.99
    retain_steps: int | None = None

    def validate(self) -> None:
        super().validate()
        if self.temperature <= 0:
            raise MuError(f"temperature must be > 0, got {self.temperature}")
        if self.max_epochs is not None and self.max_epochs < 0:
            raise MuError(f"max_epochs must be >= 0 or None, got {self.max_epochs}")
        if min(self.forget_weight, self.retain_kd, self.retain_ce) < 0:
            raise MuError("forget_weight, retain_kd and retain_ce must be >= 0")
        if self.retain_steps is not None and self.retain_steps < 1:
            raise MuError(
                f"retain_steps must be >= 1 or None (one pass over D_r), got {self.retain_steps}"
            )


def kd_kl(teacher: torch.Tensor, student: torch.Tensor, t: float) -> torch.Tensor:
    """KL(softmax(teacher / t) || softmax(student / t)) * t^2, batch mean."""
    p = torch.log_softmax(teacher.float() / t, dim=1)
    q = torch.log_softmax(student.float() / t, dim=1)
    return nn.functional.kl_div(q, p, log_target=True, reduction="batchmean") * t * t


@register
class Scrub(Method):
    """Max KL to the original on D_f, min KL + CE on D_r, in alternating passes (uses D_r)."""

    name = "scrub"
    summary = "teacher-student: push away from the original on D_f, stay close on D_r (uses D_r)"
    source = (
        "Kurmanji et al., Towards Unbounded Machine Unlearning, NeurIPS 2023 (beyond the paper)"
    )
    uses_retain = True
    Hparams = ScrubHparams
    # The tuning protocol's choice (``mu_lib/tuned``); smoke's below until its run covers this
    # method.
    profile_defaults = {"smoke": {"lr": 3e-3}}

    def ascends(self, epoch: int) -> bool:
        """Whether ``epoch`` (from 0) has max-steps."""
        hp = self.hp
        last = math.ceil((hp.epochs or 0) / 2) if hp.max_epochs is None else hp.max_epochs
        return epoch < last and hp.forget_weight > 0

    def prepare(self, ctx: Context) -> None:
        require_retain(self.name, ctx)
        ctx.state["scrub_epoch"] = 0

    def after_epoch(self, ctx: Context, epoch: int) -> None:
        ctx.state["scrub_epoch"] = epoch + 1

    def batches(self, ctx: Context, epoch: int) -> Iterator[Batch]:
        """A pass of forget-only batches (the first ``max_epochs`` epochs), then one of
        retained-only batches."""
        hp = self.hp
        xf, yf = ctx.forget
        xr, yr = require_retain(self.name, ctx)
        if self.ascends(epoch):
            for idx in batches(len(yf), hp.batch_size, shuffle=True, generator=ctx.generator):
                idx = idx.to(xf.device)
                ctx.counts["forget_batches"] += 1
                yield Batch(idx=idx, x=xf[idx], y=yf[idx])
        none = torch.zeros(0, dtype=torch.long, device=xf.device)
        order = batches(len(yr), hp.retain_batch, shuffle=True, generator=ctx.generator)
        for step, ridx in enumerate(order):
            if hp.retain_steps is not None and step >= hp.retain_steps:
                break
            ridx = ridx.to(xr.device)
            ctx.counts["retain_batches"] += 1
            yield Batch(idx=none, x=xf[none], y=yf[none], xr=xr[ridx], yr=yr[ridx])

    def loss(self, ctx: Context, batch: Batch) -> torch.Tensor:
        """A max-step on the batch's forget part, a min-step on its retained part (a batch that
        has both, as a plugged-in Spotter's stream gives, takes the sum)."""
        hp = self.hp
        loss = torch.zeros((), device=batch.x.device)
        if len(batch.y) and self.ascends(ctx.state.get("scrub_epoch", 0)):
            forget = kd_kl(forget_teacher_logits(ctx, batch), ctx.model(batch.x), hp.temperature)
            loss = loss - hp.forget_weight * forget
        if batch.xr is not None and len(batch.yr):
            out_r = ctx.model(batch.xr)
            kd = kd_kl(teacher_logits(ctx.original, batch.xr), out_r, hp.temperature)
            ce = nn.functional.cross_entropy(out_r.float(), batch.yr)
            loss = loss + hp.retain_kd * kd + hp.retain_ce * ce
        return loss
