"""Learn to Unlearn (Cha et al., AAAI 2024; paper Appendix C): gradient ascent on D_f, kept in check
by adversarial examples of other classes (targeted attacks on the forget data, labelled with
their target class) and a penalty on moving weights that D_f does not rely on."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import MuError
from .base import Batch, Context, HParams, Method, register
from .helpers import bn_frozen, chunks
from .losses import random_other_labels


@dataclass
class L2ULHparams(HParams):
    """Learn to Unlearn's settings (the rest as in ``HParams``).

    adv_eps, adv_step, adv_steps: targeted l2 PGD (random start) against the original towards a
        random retained class, per forget example: radius 0.4, step 0.1, 10 steps, as in the
        benchmark code of the method (pixel space here, since our models normalise inside).
    adv_weight: weight of the cross-entropy on the adversarial examples (0.1, benchmark code).
    reg_weight: weight of the importance penalty sum_i w_i (theta_i - theta0_i)^2 / 2, where
        w = 1 - (MAS importance on D_f, min-max normalised per tensor): weights that matter for
        the forget data are free to move, the others are held.  1.0: the penalty is part of the
        method as the paper describes it (the harness can switch it off with 0).
    lr: 1e-3 on ``paper`` (the method's code's SGD setting); ``cpu`` / ``smoke`` take the tuning protocol's choice (``mu_lib.tuning``).
    bn_mode: ``train``, as in the DELETE benchmark harness; the adversarial term always runs with
        BatchNorm frozen, as the benchmark code does.

    The adversarial examples are computed once, in ``prepare``, from the frozen original (the
    benchmark code redraws them each step; once is what a CPU budget allows, as for Spotter's
    neighbours).
    """

    lr: float = 1e-3
    bn_mode: str = "train"
    adv_eps: float = 0.4
    adv_step: float = 0.1
    adv_steps: int = 10
    adv_weight: float = 0.1
    reg_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        if self.adv_eps < 0 or self.adv_step < 0 or self.adv_steps < 0:
            raise MuError("adv_eps, adv_step and adv_steps must be >= 0")
        if self.adv_weight < 0 or self.reg_weight < 0:
            raise MuError("adv_weight and reg_weight must be >= 0")


def _l2_norm(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (v.dim() - 1)))


def targeted_pgd_l2(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    eps: float,
    step: float,
    steps: int,
    generator: torch.Generator,
    batch_size: int = 256,
) -> torch.Tensor:
    """Targeted l2 PGD with a random start in the eps-ball: descend the loss of ``target``."""
    model.eval()
    out = []
    for s in chunks(len(x), batch_size):
        xb, tb = x[s], target[s]
        d = torch.randn(xb.shape, generator=generator).to(xb.device)
        r = torch.rand(len(xb), generator=generator).to(xb.device).view(-1, *[1] * (xb.dim() - 1))
        adv = (xb + d / _l2_norm(d) * r * eps).clamp(0, 1)
        for _ in range(steps):
            adv.requires_grad_(True)
            loss = nn.functional.cross_entropy(model(adv).float(), tb)
            (g,) = torch.autograd.grad(loss, adv)
            with torch.no_grad():
                adv = adv - step * g / _l2_norm(g)
                delta = adv - xb
                delta = delta * (eps / _l2_norm(delta)).clamp(max=1.0)
                adv = (xb + delta).clamp(0, 1)
        out.append(adv.detach())
    return torch.cat(out)


def mas_importance(model: nn.Module, x: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """MAS importance on ``x``: mean |gradient| of the l2 norm of the outputs, per parameter."""
    model.eval()
    params = list(model.parameters())
    acc = [torch.zeros_like(p) for p in params]
    for s in chunks(len(x), batch_size):
        out = model(x[s]).float()
        grads = torch.autograd.grad(out.norm(dim=1).mean(), params, allow_unused=True)
        for a, g in zip(acc, grads, strict=True):
            if g is not None:
                a += g.abs() * (s.stop - s.start)
    return [a / max(len(x), 1) for a in acc]


@register
class LearnToUnlearn(Method):
    """-CE on D_f + CE on adversarial examples of other classes + importance penalty (forget data only)."""

    name = "l2ul"
    summary = "gradient ascent on D_f + adversarial examples of other classes + weight-importance penalty (forget data only)"
    source = "Cha et al., Learning to Unlearn: Instance-wise Unlearning for Pre-trained Classifiers, AAAI 2024"
    Hparams = L2ULHparams

    def prepare(self, ctx: Context) -> None:
        hp = self.hp
        xf, yf = ctx.forget
        g = torch.Generator().manual_seed(ctx.seed + 4_000)
        y_adv = random_other_labels(yf, ctx.retain_classes, g)
        x_adv = targeted_pgd_l2(ctx.original, xf, y_adv, hp.adv_eps, hp.adv_step, hp.adv_steps, g)
        ctx.state["l2ul_adv"] = (x_adv, y_adv)
        if hp.reg_weight > 0:
            imp = mas_importance(ctx.model, xf, hp.batch_size)
            hold = []
            for p, theta0, w in zip(
                ctx.model.parameters(), ctx.original.parameters(), imp, strict=True
            ):
                span = w.max() - w.min()
                w = (w - w.min()) / span if float(span) > 0 else torch.zeros_like(w)
                hold.append((p, theta0.detach(), 1.0 - w))
            ctx.state["l2ul_hold"] = hold

    def loss(self, ctx: Context, batch: Batch) -> torch.Tensor:
        hp = self.hp
        loss = -nn.functional.cross_entropy(ctx.model(batch.x).float(), batch.y)
        if hp.adv_weight > 0:
            x_adv, y_adv = ctx.state["l2ul_adv"]
            with bn_frozen(ctx.model):
                adv = nn.functional.cross_entropy(
                    ctx.model(x_adv[batch.idx]).float(), y_adv[batch.idx]
                )
            loss = loss + hp.adv_weight * adv
        if hp.reg_weight > 0:
            reg = sum((w * (p - t0) ** 2).sum() for p, t0, w in ctx.state["l2ul_hold"])
            loss = loss + hp.reg_weight * 0.5 * reg
        return loss
