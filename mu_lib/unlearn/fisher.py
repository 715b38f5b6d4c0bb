"""Fisher Forgetting (Golatkar et al., CVPR 2020; paper Appendix C): one-shot Gaussian noise whose
variance is the inverse diagonal Fisher information of the retained data (weights the retained
data do not pin down get the most noise), and the forget classes' head rows set to zero."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from .. import MuError
from .base import Context, HParams, Method, register
from .helpers import chunks, require_retain


@dataclass
class FisherHparams(HParams):
    """Fisher Forgetting's settings (the optimiser fields of ``HParams`` are unused: the method
    has no training loss).

    epochs: 0, and only 0: the whole method is the one-shot step in ``finish``.
    alpha: noise scale; each weight gets N(0, alpha * min(1 / (F_i + 1e-8), var_cap)).  The
        reference code works with 1e-8 .. 1e-6; 1e-6 on ``paper``; ``cpu`` / ``smoke`` take the
        value chosen by ``benchmarks/select_lr.py`` (grid over alpha, see ``profile_defaults``).
    var_cap: upper bound on 1 / F_i (1e3, as in the reference code), so that weights with no
        Fisher information do not receive unbounded noise.
    fisher_samples: retained examples (drawn at random) used for the diagonal Fisher (None: all
        of D_r); per-example gradients of the log-likelihood of the true label (empirical
        Fisher).  ``cpu`` / ``smoke`` use 1000 / 300: per-example gradients cost about 5 ms each
        on 2 CPU cores, and a diagonal mean is estimated well from a thousand examples.
    fisher_batch: examples per vectorised per-example-gradient pass.
    bn_mode: ``eval``: the Fisher is taken with BatchNorm frozen, as the model is deployed.
    """

    epochs: int | None = 0
    alpha: float = 1e-6
    var_cap: float = 1e3
    fisher_samples: int | None = None
    fisher_batch: int = 64
    bn_mode: str = "eval"

    def validate(self) -> None:
        super().validate()
        if self.epochs != 0:
            raise MuError(
                f"fisher has no training loop: epochs must be 0, got {self.epochs} "
                "(its strength is alpha, e.g. --set alpha=1e-7)"
            )
        if self.alpha < 0 or self.var_cap <= 0:
            raise MuError(f"alpha must be >= 0 and var_cap > 0 (got {self.alpha}, {self.var_cap})")
        if self.fisher_samples is not None and self.fisher_samples < 1:
            raise MuError(f"fisher_samples must be >= 1 or None, got {self.fisher_samples}")


def diagonal_fisher(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, counts: dict | None = None
) -> dict[str, torch.Tensor]:
    """Mean over examples of the squared per-example gradient of log p(y | x), per parameter.

    Per-example gradients are vectorised (``torch.func.vmap``) on CUDA; on CPU a plain loop over
    examples is faster for small convolutional nets (and ``batch_size`` only sets the counting).
    """
    model.eval()
    params = {n: p.detach() for n, p in model.named_parameters()}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    vectorise = x.device.type == "cuda"
    if vectorise:
        buffers = {n: b.detach() for n, b in model.named_buffers()}

        def nll(p, xi, yi):
            out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
            return nn.functional.cross_entropy(out.float(), yi.unsqueeze(0))

        per_example = vmap(grad(nll), in_dims=(None, 0, 0))
    live = dict(model.named_parameters())
    for s in chunks(len(y), batch_size):
        if vectorise:
            g = per_example(params, x[s], y[s])
            for n in fisher:
                fisher[n] += (g[n] ** 2).sum(0)
        else:
            for i in range(s.start, s.stop):
                model.zero_grad(set_to_none=True)
                out = model(x[i : i + 1]).float()
                nn.functional.cross_entropy(out, y[i : i + 1]).backward()
                for n, p in live.items():
                    if p.grad is not None:
                        fisher[n] += p.grad**2
        if counts is not None:
            counts["retain_batches"] += 1
    model.zero_grad(set_to_none=True)
    return {n: f / max(len(y), 1) for n, f in fisher.items()}


@register
class FisherForgetting(Method):
    """Inverse-Fisher noise on the weights and zeroed forget-class head rows (uses D_r)."""

    name = "fisher"
    summary = "one-shot noise scaled by the inverse diagonal Fisher of D_r; forget head rows zeroed (uses D_r)"
    source = "Golatkar et al., Eternal Sunshine of the Spotless Net: Selective Forgetting in Deep Networks, CVPR 2020"
    uses_retain = True
    Hparams = FisherHparams
    # Off ``paper``, benchmarks/select_lr.py's rule on alpha (no lr to choose): the smallest of
    # {1e-8, 1e-7, 1e-6} that brings Acc_f below 5% (forget class 0, seed 0).  The smallest
    # passes on cpu and smoke: zeroing the forget rows of the head already gives Acc_f 0.
    profile_defaults = {
        "cpu": {"alpha": 1e-8, "fisher_samples": 1000},
        "smoke": {"alpha": 1e-8, "fisher_samples": 300},
    }

    def finish(self, ctx: Context) -> None:
        hp = self.hp
        xr, yr = require_retain(self.name, ctx)
        if hp.fisher_samples is not None and hp.fisher_samples < len(yr):
            g = torch.Generator().manual_seed(ctx.seed + 6_000)
            pick = torch.randperm(len(yr), generator=g)[: hp.fisher_samples].to(xr.device)
            xr, yr = xr[pick], yr[pick]
        fisher = diagonal_fisher(ctx.model, xr, yr, hp.fisher_batch, ctx.counts)
        g = torch.Generator().manual_seed(ctx.seed + 6_001)
        fc = list(ctx.forget_classes)
        with torch.no_grad():
            for name, p in ctx.model.named_parameters():
                var = hp.alpha * (1.0 / (fisher[name] + 1e-8)).clamp(max=hp.var_cap)
                p.add_(var.sqrt() * torch.randn(p.shape, generator=g).to(p.device))
            ctx.model.head.weight[fc] = 0.0
            if ctx.model.head.bias is not None:
                ctx.model.head.bias[fc] = 0.0
