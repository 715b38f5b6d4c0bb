"""Neighbour generators for the eps-neighbourhood A_eps(D_f) of the forget set (paper eq. 1).

PGD is run against the *original* model (it maximises the original's loss), so the neighbour set
is the same for every unlearned model that is compared with it.
"""

from __future__ import annotations

import torch
from torch import nn

from . import MuError
from .train import eval_mode, inference_batch


def pgd_linf(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float = 0.03,
    step: float = 0.01,
    steps: int = 3,
    seed: int = 0,
    batch_size: int = 512,
    device: str | None = None,
    random_start: bool = True,
) -> torch.Tensor:
    """l-inf PGD maximising the cross-entropy of ``model``, from a uniform random start in the
    eps-ball (or from ``x`` itself with ``random_start=False``); output in [0, 1]."""
    if eps < 0 or step < 0 or steps < 0:
        raise MuError(
            f"PGD needs eps, step, steps >= 0 (got eps={eps}, step={step}, steps={steps})"
        )
    device = device or next(model.parameters()).device.type
    batch_size = inference_batch(batch_size, device)  # same neighbours, faster on CPU
    g = torch.Generator().manual_seed(seed)
    out = []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device)
            yb = y[i : i + batch_size].to(device)
            adv = xb
            if random_start:
                delta = (torch.rand(xb.shape, generator=g) * 2 - 1).to(device) * eps
                adv = (xb + delta).clamp(0, 1)
            for _ in range(steps):
                adv.requires_grad_(True)
                loss = nn.functional.cross_entropy(model(adv), yb)
                (grad,) = torch.autograd.grad(loss, adv)
                with torch.no_grad():
                    adv = adv + step * grad.sign()
                    adv = torch.min(torch.max(adv, xb - eps), xb + eps).clamp(0, 1)
            out.append(adv.detach().cpu())
    return torch.cat(out) if out else x.clone()


def fgsm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, device: str | None = None
) -> torch.Tensor:
    """One-step attack: PGD with a single step of size eps and no random start."""
    return pgd_linf(model, x, y, eps=eps, step=eps, steps=1, random_start=False, device=device)


def gaussian(x: torch.Tensor, *, std: float = 0.1, seed: int = 0) -> torch.Tensor:
    """x + N(0, std^2) (Appendix A uses variance 0.01, i.e. std 0.1), clipped to [0, 1]."""
    if std < 0:
        raise MuError(f"Gaussian std must be >= 0, got {std}")
    g = torch.Generator().manual_seed(seed)
    return (x + torch.randn(x.shape, generator=g) * std).clamp(0, 1)
