"""SalUn (Fan et al., ICLR 2024; paper Appendix C): random-label fine-tuning restricted to the most
salient weights, those with the largest forget-loss gradient magnitudes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import MuError
from .base import Batch, Context, HParams, Method, register
from .helpers import accumulate_grads
from .losses import random_other_labels


@dataclass
class SalUnHparams(HParams):
    """SalUn's settings (the rest as in ``HParams``).

    keep: share of weights that may change (the mask keeps the top ``keep`` of |gradient| of the
        forget loss over all parameters, one global threshold); 0.5 as in the SalUn paper's
        image-classification runs.
    use_retain: False (default) fine-tunes D_f only.  The SalUn paper's random-label variant
        also trains on D_r, but the DELETE harness that the Spotter paper's baselines follow runs
        SalUn without retained data by default, and the paper's own numbers say so too: its SalUn
        collapses Acc_r on CIFAR-100 (22.89%), which fine-tuning on D_r would prevent.  True adds
        cross-entropy on a retained batch per step (weight ``retain_weight``), as in the SalUn code.
    retain_weight: weight of the retained cross-entropy when ``use_retain`` is True.
    lr: 1e-2 on ``paper``, the order of magnitude of the SalUn code's random-label runs;
        ``cpu`` / ``smoke`` take the tuning protocol's choice (``mu_lib.tuning``).
    bn_mode: ``train``, as in the DELETE benchmark harness.

    The mask is applied to gradients before the optimiser step; as in the reference code, weight
    decay (added by the optimiser after the mask) still shrinks masked weights slightly.
    """

    lr: float = 1e-2
    bn_mode: str = "train"
    keep: float = 0.5
    use_retain: bool = False
    retain_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.keep <= 1.0:
            raise MuError(f"keep must be in (0, 1], got {self.keep}")
        if self.retain_weight < 0:
            raise MuError(f"retain_weight must be >= 0, got {self.retain_weight}")


def saliency_masks(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, keep: float, batch_size: int
) -> dict[str, torch.Tensor]:
    """0/1 mask per parameter: 1 for the top ``keep`` share of |sum of forget-loss gradients|."""
    total: dict[str, torch.Tensor] = {}

    def add(grads: dict[str, torch.Tensor], n: int) -> None:
        for name, g in grads.items():  # sum of per-batch mean gradients, weighted by batch size
            total[name] = total.get(name, torch.zeros_like(g)) + g * n

    accumulate_grads(model, x, nn.functional.cross_entropy, y, batch_size, add)
    flat = torch.cat([g.abs().flatten() for g in total.values()])
    k = max(1, int(round(keep * flat.numel())))
    threshold = torch.topk(flat, k, sorted=False).values.min()
    if float(threshold) == 0.0:  # more zero gradients than 1 - keep: keep only non-zero ones
        return {name: (g.abs() > 0).to(g.dtype) for name, g in total.items()}
    return {name: (g.abs() >= threshold).to(g.dtype) for name, g in total.items()}


@register
class SalUn(Method):
    """Random-label fine-tuning of the salient weights only (forget data only by default)."""

    name = "salun"
    summary = "random-label fine-tuning of the top-50% salient weights (forget data; D_r optional)"
    source = "Fan et al., SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency, ICLR 2024"
    uses_retain = False  # default; ``needs_retain`` follows ``use_retain``
    Hparams = SalUnHparams

    @property
    def needs_retain(self) -> bool:
        return bool(self.hp.use_retain)

    def prepare(self, ctx: Context) -> None:
        xf, yf = ctx.forget
        masks = saliency_masks(ctx.model, xf, yf, self.hp.keep, self.hp.batch_size)
        named = dict(ctx.model.named_parameters())
        ctx.state["salun_masks"] = [(named[n], m) for n, m in masks.items()]
        kept = sum(float(m.sum()) for m in masks.values())
        ctx.state["salun_kept"] = kept / sum(m.numel() for m in masks.values())

    def loss(self, ctx: Context, batch: Batch) -> torch.Tensor:
        target = random_other_labels(batch.y, ctx.retain_classes, ctx.generator)
        loss = nn.functional.cross_entropy(ctx.model(batch.x).float(), target)
        if self.hp.use_retain and batch.xr is not None:
            retain = nn.functional.cross_entropy(ctx.model(batch.xr).float(), batch.yr)
            loss = loss + self.hp.retain_weight * retain
        return loss

    def after_backward(self, ctx: Context) -> None:
        for p, m in ctx.state["salun_masks"]:
            if p.grad is not None:
                p.grad.mul_(m)
