"""Spotter (paper section 4): L = l1 * L_u + (1 - l1) * L_o + l2 * L_sim.

L_u is masked distillation on D_f (or, plugged in, any other method's loss), L_o the same masked
distillation on PGD neighbours of D_f (computed once from the original model, independently of the
evaluation neighbours) and L_sim the mean within-class cosine similarity of forget embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import MuError
from ..metrics import dispersion_loss
from ..perturb import pgd_linf
from .base import Batch, Context, HParams, Method, register
from .losses import cached_teacher_logits, forget_teacher_logits, masked_distillation


@dataclass
class SpotterHparams(HParams):
    """Spotter's settings.

    lambda1: weight of L_u against L_o (paper default 0.7).
    lambda2: weight of the dispersion loss L_sim (paper: 0.1 or 1).
    eps_o, step_o, steps_o: PGD neighbours used in L_o (paper: eps 0.03, like the evaluation).
    lr: 1e-4, the authors' setting (10 epochs, batch 128, CIFAR ResNet-18) and the ``paper``
        default; ``cpu`` / ``smoke`` take the tuning protocol's choice (``mu_lib.tuning``), as
        every method does.  Plugged into another method, every optimisation setting (lr, batch,
        epochs, BatchNorm mode, weight decay, momentum, optimiser) is the base's.
    bn_mode: ``eval`` (frozen BatchNorm), as in the authors' notebook.
    """

    lr: float = 1e-4
    lambda1: float = 0.7
    lambda2: float = 1.0
    eps_o: float = 0.03
    step_o: float = 0.01
    steps_o: int = 3
    bn_mode: str = "eval"

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.lambda1 <= 1.0:
            raise MuError(f"lambda1 must be in [0, 1], got {self.lambda1}")
        if self.lambda2 < 0:
            raise MuError(f"lambda2 must be >= 0, got {self.lambda2}")
        if self.eps_o < 0:
            raise MuError(f"eps_o must be >= 0, got {self.eps_o}")


@register
class Spotter(Method):
    """Spotter: masked distillation on D_f and its neighbours plus intra-class dispersion."""

    name = "spotter"
    summary = (
        "masked KD on D_f and its PGD neighbours + forget-feature dispersion (forget data only)"
    )
    source = (
        "Unlearning's Blind Spots: Over-Unlearning and Prototypical Relearning Attack (Spotter)"
    )
    Hparams = SpotterHparams
    accepts_base = True

    def __init__(self, hp: SpotterHparams, base: Method | None = None):
        super().__init__(hp)
        self.base = base  # build_method gives a plugged Spotter the base's optimisation settings

    @property
    def needs_retain(self) -> bool:
        return self.base is not None and self.base.needs_retain

    def describe(self) -> dict:
        d = super().describe()
        d["base"] = self.base.describe() if self.base is not None else None
        return d

    def prepare(self, ctx: Context) -> None:
        if self.base is not None:
            self.base.prepare(ctx)
        hp = self.hp
        if hp.lambda1 < 1.0:
            xf, yf = ctx.forget
            key = f"spotter_neighbours:{hp.eps_o}:{hp.step_o}:{hp.steps_o}"
            if key not in ctx.shared:
                # seed offset: training neighbours are drawn independently of the evaluation ones
                ctx.shared[key] = pgd_linf(
                    ctx.original,
                    xf,
                    yf,
                    eps=hp.eps_o,
                    step=hp.step_o,
                    steps=hp.steps_o,
                    seed=ctx.seed + 5_000,
                    device=ctx.device,
                ).to(xf.device)
            ctx.state["spotter_neighbours"] = ctx.shared[key]

    def unlearning_loss(self, ctx: Context, batch: Batch, logits: torch.Tensor) -> torch.Tensor:
        if self.base is not None:
            return self.base.loss(ctx, batch)
        return masked_distillation(forget_teacher_logits(ctx, batch), logits, ctx.forget_classes)

    def loss(self, ctx: Context, batch: Batch) -> torch.Tensor:
        hp = self.hp
        emb = ctx.model.embed(batch.x)
        logits = ctx.model.head(emb)
        total = hp.lambda1 * self.unlearning_loss(ctx, batch, logits)
        if hp.lambda1 < 1.0:
            neighbours = ctx.state["spotter_neighbours"]
            t_o = cached_teacher_logits(ctx, "spotter_teacher_o", neighbours, batch.idx)
            l_o = masked_distillation(t_o, ctx.model(neighbours[batch.idx]), ctx.forget_classes)
            total = total + (1.0 - hp.lambda1) * l_o
        if hp.lambda2 > 0:
            total = total + hp.lambda2 * dispersion_loss(emb.float(), batch.y, ctx.forget_classes)
        return total

    def after_backward(self, ctx: Context) -> None:
        if self.base is not None:
            self.base.after_backward(ctx)

    def after_epoch(self, ctx: Context, epoch: int) -> None:
        if self.base is not None:
            self.base.after_epoch(ctx, epoch)

    def finish(self, ctx: Context) -> None:
        if self.base is not None:
            self.base.finish(ctx)

    def trainable_parameters(self, ctx: Context):
        return (
            self.base.trainable_parameters(ctx) if self.base is not None else ctx.model.parameters()
        )
