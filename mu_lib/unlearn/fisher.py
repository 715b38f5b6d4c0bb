"""Fisher Forgetting (Golatkar et al., CVPR 2020; paper Appendix C): one-shot Gaussian noise on
the weights whose variance is the inverse diagonal Fisher information of the retained data, so
the weights the retained data do not pin down get the most noise, and the noise does the
forgetting.

The Fisher and the variance follow the reference code (AdityaGolatkar/SelectiveForgetting, and
its copies in the DELETE / SalUn harnesses):

* F_i = mean over retained x of sum_y p(y | x) (d log p(y | x) / d theta_i)^2, the expectation
  over the model's *predicted* distribution (not the empirical Fisher of the true label);
* var_i = alpha * min(1 / (F_i + 1e-8), 1e3), capped at 1e2 for the head; for a weight tensor
  (ndim > 1) averaged over its input dimension (dim 1); times 10 for the head and for the other
  one-dimensional parameters (BatchNorm);
* theta_i <- theta_i + sqrt(var_i) * N(0, 1).

The reference also sets the forget-class rows of the head to mean 0 with variance 1e-3; that step
alone removes the class (``head_mask``), so here it is the option ``reset_forget_rows`` and off
by default: the noise scale is chosen so that the noise forgets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from .. import MuError
from ..util import eval_mode
from .base import Context, HParams, Method, register
from .helpers import chunks, require_retain

VAR_CAP = 1e3  # reference: 1 / F is capped at 1e3 (1e2 for the head)
HEAD_VAR_CAP = 1e2
LOUD = 10.0  # reference: the head's and the 1-D parameters' variances are multiplied by 10
FORGET_ROW_VAR = 1e-4  # reference: variance of the reset forget rows (before the x10)


@dataclass
class FisherHparams(HParams):
    """Fisher Forgetting's settings (the optimiser fields of ``HParams`` are unused: the method
    has no training loss).

    epochs: 0, and only 0: the whole method is the one-shot step in ``finish``.
    alpha: noise scale (see the module docstring).  The reference code uses 1e-7 .. 1e-6;
        1e-6 on ``paper``; ``cpu`` / ``smoke`` take the tuning protocol's choice (``mu_lib.tuning``).
    reset_forget_rows: also set the forget-class head rows to mean 0, variance 1e-3, as the
        reference does (off: that step alone is head masking, see the ``head_mask`` method).
    fisher_samples: retained examples (drawn at random) used for the Fisher (None: all of D_r).
        ``cpu`` / ``smoke`` use 500 / 300: each example costs one backward pass per class.
    fisher_batch: examples per vectorised per-example-gradient pass (CUDA only).
    bn_mode: ``eval``: the Fisher is taken with BatchNorm frozen, as in the reference.
    """

    epochs: int | None = 0
    alpha: float = 1e-6
    reset_forget_rows: bool = False
    fisher_samples: int | None = None
    fisher_batch: int = 16
    bn_mode: str = "eval"

    def validate(self) -> None:
        super().validate()
        if self.epochs != 0:
            raise MuError(
                f"fisher has no training loop: epochs must be 0, got {self.epochs} "
                "(its strength is alpha, e.g. --set alpha=1e-7)"
            )
        if self.alpha < 0:
            raise MuError(f"alpha must be >= 0, got {self.alpha}")
        if self.fisher_samples is not None and self.fisher_samples < 1:
            raise MuError(f"fisher_samples must be >= 1 or None, got {self.fisher_samples}")
        if self.fisher_batch < 1:
            raise MuError(f"fisher_batch must be >= 1, got {self.fisher_batch}")


def predicted_fisher(
    model: nn.Module, x: torch.Tensor, batch_size: int = 16, counts: dict | None = None
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher, by parameter name: mean over ``x`` of sum_y p(y|x) (grad log p(y|x))^2.

    One backward pass per (example, class).  On CUDA the examples of a batch are vectorised
    (``torch.func.vmap``); on CPU a plain loop is faster for small convolutional nets.
    """
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    with eval_mode(model):
        if x.device.type == "cuda":
            _fisher_vectorised(model, x, batch_size, fisher, counts)
        else:
            _fisher_loop(model, x, batch_size, fisher, counts)
    model.zero_grad(set_to_none=True)
    return {n: f / max(len(x), 1) for n, f in fisher.items()}


def _fisher_loop(model, x, batch_size, fisher, counts) -> None:
    names, params = zip(*model.named_parameters(), strict=True)
    for s in chunks(len(x), batch_size):
        for i in range(s.start, s.stop):
            logp = torch.log_softmax(model(x[i : i + 1]).float(), dim=1)[0]
            prob = logp.detach().exp()
            for y in range(len(logp)):
                grads = torch.autograd.grad(
                    logp[y], params, retain_graph=y < len(logp) - 1, allow_unused=True
                )
                for n, g in zip(names, grads, strict=True):
                    if g is not None:
                        fisher[n] += prob[y] * g**2
        if counts is not None:
            counts["retain_batches"] += 1


def _fisher_vectorised(model, x, batch_size, fisher, counts) -> None:
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def log_prob(p, xi, y):
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return torch.log_softmax(out.float(), dim=1)[0, y]

    per_example = vmap(grad(log_prob), in_dims=(None, 0, None))
    for s in chunks(len(x), batch_size):
        with torch.no_grad():
            prob = torch.softmax(functional_call(model, (params, buffers), (x[s],)).float(), 1)
        for y in range(prob.shape[1]):
            g = per_example(params, x[s], y)
            w = prob[:, y]
            for n in fisher:
                fisher[n] += torch.einsum("b,b...->...", w, g[n] ** 2)
        if counts is not None:
            counts["retain_batches"] += 1


def fisher_variance(
    fisher: torch.Tensor, alpha: float, is_head: bool, forget_rows: list[int] | None = None
) -> torch.Tensor:
    """The reference's noise variance of one parameter tensor from its diagonal Fisher.

    ``forget_rows`` (head only): rows whose variance is reset to the reference's small value.
    """
    var = (1.0 / (fisher + 1e-8)).clamp(max=HEAD_VAR_CAP if is_head else VAR_CAP) * alpha
    if var.dim() > 1:
        var = var.mean(dim=1, keepdim=True).expand_as(fisher).clone()
    if is_head and forget_rows:
        var[forget_rows] = FORGET_ROW_VAR
    if is_head or var.dim() == 1:
        var = var * LOUD
    return var


@register
class FisherForgetting(Method):
    """Inverse-Fisher noise on the weights (uses D_r)."""

    name = "fisher"
    summary = "one-shot weight noise scaled by the inverse diagonal Fisher of D_r (uses D_r)"
    source = "Golatkar et al., Eternal Sunshine of the Spotless Net: Selective Forgetting in Deep Networks, CVPR 2020"
    uses_retain = True
    Hparams = FisherHparams
    # alpha: the tuning protocol's choice (``mu_lib/tuned``); smoke's below until its run covers
    # Fisher.  fisher_samples: retained images the Fisher is estimated on (not tuned).
    profile_defaults = {
        "cpu": {"fisher_samples": 500},
        "smoke": {"alpha": 3e-6, "fisher_samples": 300},
    }

    def fisher(self, ctx: Context) -> dict[str, torch.Tensor]:
        """The Fisher of the original on the sampled retained data, shared by every alpha."""
        hp = self.hp
        xr, yr = require_retain(self.name, ctx)
        key = ("fisher_predicted", hp.fisher_samples, ctx.seed, len(yr))
        if key not in ctx.shared:
            if hp.fisher_samples is not None and hp.fisher_samples < len(yr):
                g = torch.Generator().manual_seed(ctx.seed + 6_000)
                pick = torch.randperm(len(yr), generator=g)[: hp.fisher_samples].to(xr.device)
                xr = xr[pick]
            ctx.shared[key] = predicted_fisher(ctx.model, xr, hp.fisher_batch, ctx.counts)
        return ctx.shared[key]

    def finish(self, ctx: Context) -> None:
        hp = self.hp
        fisher = self.fisher(ctx)
        head = {id(p) for p in ctx.model.head.parameters()}
        rows = list(ctx.forget_classes) if hp.reset_forget_rows else None
        g = torch.Generator().manual_seed(ctx.seed + 6_001)
        with torch.no_grad():
            for name, p in ctx.model.named_parameters():
                is_head = id(p) in head
                var = fisher_variance(fisher[name], hp.alpha, is_head, rows if is_head else None)
                if is_head and rows:
                    p[rows] = 0.0
                p.add_(var.sqrt() * torch.randn(p.shape, generator=g).to(p.device))
