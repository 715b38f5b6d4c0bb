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
    lr: 1e-4, the authors' setting (10 epochs, batch 128, CIFAR ResNet-18), and Spotter's default
        on ``paper`` and ``smoke``.  On ``cpu`` 2e-4 with batch 16 (below).  With a base method,
        ``lr`` None takes the base's learning rate (the cpu default is then not applied).
    batch_size: the profile's, except on ``cpu``: 16 alone, 32 plugged into another method.
    bn_mode: ``eval`` (frozen BatchNorm), as in the authors' notebook.

    Why ``cpu`` differs.  The rule the baselines use (the smallest lr that brings Acc_f below 5%)
    says nothing about Spotter: L_u is met through the head within the first epoch at any rate,
    while L_sim, the part that resists PRA, needs more steps on the small CNN (at lr 1e-4 with
    batch 32, PRA still restored 52-60% of forget classes 3, 8 and 9).  Batch 16 doubles the
    steps.  The rate trades resistance to PRA against retained accuracy, since Spotter sees no
    retained data, so it is chosen by ``benchmarks/select_spotter_lr.py``: the rate of
    {1e-4, 1.5e-4, 2e-4, 3e-4} under which the foundation's claim for lambda2 = 1 (Acc_f < 1%,
    Acc_rt within 2 points of the original, Proto-Acc_f <= 10%) holds on the most (seed, class)
    pairs of seeds 1 and 2, which the book does not use.  Pairs that hold, of 20: 1e-4 5,
    1.5e-4 7, 2e-4 11, 3e-4 (the earlier default) 8.  On held-out seeds 0, 3 and 4, 2e-4 holds on
    16 pairs of 30 and 3e-4 on 13.  Which classes miss changes from seed to seed, and even with
    float-level differences in the original (one trained with another thread count), so only
    counts over many pairs mean much.  Bags and ankle boots (classes 8 and 9) kept Proto-Acc_f
    above 10% in all but one of these runs, at every rate; sandals (5) mostly lose more than 2
    points of Acc_rt.  (Seeds 1-4 ran with one thread per process, seed 0 on the book's original.)
    More epochs do not rescue classes 8 and 9 (``benchmarks/spotter_frontier.py``, seed 0, 2e-4,
    20 epochs): bags keep Proto-Acc_f above 12%, ankle boots drop below 10% only after epoch 16,
    with Acc_rt 2.7 points down.  Over the ten classes the claim holds most often after 10 or 12
    epochs (7 of 10, measured every 2 epochs), so the paper's 10 stays.  Neither does a twice as
    wide CNN (256-d features; 20 epochs: bags 10.9% at -1.04, ankle boots 5.9% at -2.29 after 18)
    nor BatchNorm in train mode (bags and ankle boots 70-89% after 12 epochs).
    """

    lr: float | None = None  # type: ignore[assignment]
    lambda1: float = 0.7
    lambda2: float = 1.0
    eps_o: float = 0.03
    step_o: float = 0.01
    steps_o: int = 3
    bn_mode: str = "eval"

    def validate(self) -> None:
        if self.lr is not None:
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
    profile_defaults = {"cpu": {"batch_size": 16, "lr": 2e-4}}  # see SpotterHparams
    # Plugged into another method, Spotter runs at that method's rate (``lr`` None), with batch 32
    # on cpu: 320 steps, as long as the cpu runs of every method.
    plugged_profile_defaults = {"cpu": {"batch_size": 32}}

    def __init__(self, hp: SpotterHparams, base: Method | None = None):
        super().__init__(hp)
        self.base = base
        if hp.lr is None:
            hp.lr = base.hp.lr if base is not None else 1e-4
        HParams.validate(hp)

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
