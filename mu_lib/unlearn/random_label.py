"""Random Label (Golatkar et al., 2020; paper Appendix C): fine-tune on D_f with labels drawn from
the retained classes, so the forget classes lose their training signal."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Batch, Context, HParams, Method, register
from .losses import random_other_labels


@dataclass
class RandomLabelHparams(HParams):
    """Random Label's settings (the rest as in ``HParams``).

    lr: 1e-2 on ``paper``: the order of magnitude random-label fine-tuning is run at in the
        SalUn / DELETE benchmark code (the Spotter paper does not publish its baselines'
        settings).  ``cpu`` / ``smoke`` take the tuning protocol's choice (``mu_lib.tuning``).
    bn_mode: ``train``, as in the DELETE benchmark harness the paper's baselines come from.
    fixed_labels: False redraws every example's label at every step (the harness's default);
        True draws one label per forget example once, in ``prepare``.
    """

    lr: float = 1e-2
    bn_mode: str = "train"
    fixed_labels: bool = False


@register
class RandomLabel(Method):
    """Cross-entropy on D_f towards random retained-class labels (forget data only)."""

    name = "random_label"
    summary = "fine-tune D_f towards random retained-class labels (forget data only)"
    source = "Golatkar et al., Eternal Sunshine of the Spotless Net, CVPR 2020"
    Hparams = RandomLabelHparams

    def prepare(self, ctx: Context) -> None:
        if self.hp.fixed_labels:
            _, yf = ctx.forget
            ctx.state["random_labels"] = random_other_labels(yf, ctx.retain_classes, ctx.generator)

    def loss(self, ctx: Context, batch: Batch) -> torch.Tensor:
        if self.hp.fixed_labels:
            target = ctx.state["random_labels"][batch.idx]
        else:
            target = random_other_labels(batch.y, ctx.retain_classes, ctx.generator)
        return nn.functional.cross_entropy(ctx.model(batch.x).float(), target)
