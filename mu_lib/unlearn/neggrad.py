"""NegGrad (Thudi et al., 2022; paper Appendix C): gradient ascent on the cross-entropy of D_f."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Batch, Context, HParams, Method, register


@dataclass
class NegGradHparams(HParams):
    """NegGrad's settings (the rest as in ``HParams``).

    lr: 1e-4 on ``paper``, the gradient-ascent setting of the SalUn benchmark code (ascent is
        unbounded, so it is run small and short); ``cpu`` / ``smoke`` take the tuning protocol's choice (``mu_lib.tuning``).
    bn_mode: ``train``, as in the DELETE benchmark harness.
    """

    lr: float = 1e-4
    bn_mode: str = "train"


@register
class NegGrad(Method):
    """Maximise the loss of D_f: minimise minus its cross-entropy (forget data only)."""

    name = "neggrad"
    summary = "gradient ascent on the cross-entropy of D_f (forget data only)"
    source = "Thudi et al., Unrolling SGD: Understanding Factors Influencing Machine Unlearning, EuroS&P 2022"
    Hparams = NegGradHparams

    def loss(self, ctx: Context, batch: Batch) -> torch.Tensor:
        return -nn.functional.cross_entropy(ctx.model(batch.x).float(), batch.y)
