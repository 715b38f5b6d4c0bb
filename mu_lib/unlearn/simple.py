"""The reference points: Original (no change), Retrain (gold standard) and DELETE."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..backbones import fresh_model
from ..train import train_classifier
from .base import Batch, Context, HParams, Method, register
from .helpers import require_retain
from .losses import forget_teacher_logits, own_class_distillation


@register
class Original(Method):
    """No unlearning: the original model, the upper bound every attack tries to get back to."""

    name = "original"
    summary = "no-op: the original model"
    source = "-"

    def unlearn(self, ctx: Context) -> nn.Module:
        return ctx.model


@dataclass
class RetrainHparams(HParams):
    """Retrain uses the profile's *training* schedule (lr, batch, augmentation); the optimiser
    fields of HParams are unused.  ``train_epochs`` (None: the profile's for the backbone) sets its length."""

    train_epochs: int | None = None


@register
class Retrain(Method):
    """Train from scratch on D_r only: the gold standard of exact unlearning."""

    name = "retrain"
    summary = "train from scratch on the retained data (gold standard)"
    source = "exact unlearning baseline"
    uses_retain = True
    Hparams = RetrainHparams

    def unlearn(self, ctx: Context) -> nn.Module:
        p = ctx.profile
        model = ctx.model
        # from scratch: every parameter and buffer of a newly built backbone (in place, so the
        # model keeps its device and memory layout)
        model.load_state_dict(fresh_model(model, ctx.seed + 7).state_dict())
        xr, yr = require_retain(self.name, ctx)
        epochs = self.hp.train_epochs
        if epochs is None:
            epochs = p.epochs_for(ctx.backbone)
        train_classifier(
            model,
            xr,
            yr,
            epochs=epochs,
            lr=p.train_lr,
            batch_size=p.train_batch,
            seed=ctx.seed + 7,
            device=ctx.device,
            augment=p.train_augment,
            schedule=p.train_schedule,
            warmup=p.train_warmup,
            nesterov=p.train_nesterov,
            desc="retrain",
        )
        ctx.counts["retain_batches"] += 1
        return model


@dataclass
class DeleteHparams(HParams):
    """DELETE (Zhou et al., CVPR 2025): masked distillation on D_f.

    lr 1e-4 on ``paper`` (the setting of the Spotter authors' harness).  ``cpu`` / ``smoke`` take the tuning protocol's choice (``mu_lib.tuning``).  bn_mode ``train`` follows the DELETE harness.
    """

    bn_mode: str = "train"
    temperature: float = 1.0


@register
class Delete(Method):
    """DELETE: distil the original's logits with each sample's own class masked out."""

    name = "delete"
    summary = "distil the original with each sample's own-class logit masked (forget data only)"
    source = "Zhou et al., Decoupled Distillation to Erase (DELETE), CVPR 2025"
    Hparams = DeleteHparams
    # The tuning protocol's choice (``mu_lib/tuned``); smoke's below until its run covers this
    # method.
    profile_defaults = {"smoke": {"lr": 3e-3}}

    def loss(self, ctx: Context, batch: Batch) -> torch.Tensor:
        t = forget_teacher_logits(ctx, batch)
        return own_class_distillation(t, ctx.model(batch.x), batch.y, self.hp.temperature)
