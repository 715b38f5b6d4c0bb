"""Neighbour generators for the eps-neighbourhood A_eps(D_f) of the forget set (paper eq. 1).

PGD is run against the *original* model (it maximises the original's loss), so the neighbour set
is the same for every unlearned model that is compared with it.
"""

from __future__ import annotations

import torch
from torch import nn

from . import MuError
from .infer import inference_batch, predict_logits
from .models import Normalize
from .util import eval_mode


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


# ---------------------------------------------------------------- the authors' notebook generators

# ``paper``: the paper's text (PGD on the original's own loss in [0, 1] pixel space; Gaussian
# noise of variance 0.01 in pixel space).  ``authors``: the Spotter authors' notebook (PGD ascending
# the loss of the original's runner-up class, clamped to [0, 1] in the model's normalised input
# space; Gaussian noise of std 0.01 in that space).
NEIGHBOURS = ("paper", "authors")


def check_neighbours(setting: str) -> str:
    if setting not in NEIGHBOURS:
        raise MuError(
            f"unknown neighbours setting {setting!r}; choose one of {NEIGHBOURS} "
            "('paper': the paper's text, 'authors': the authors' notebook)"
        )
    return setting


def input_normalisation(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of the model's own input ``Normalize`` module, shaped (1, C, 1, 1); a model
    without one (inputs used as they are) gives (0, 1)."""
    for m in model.modules():
        if isinstance(m, Normalize):
            return m.mean.detach().cpu(), m.std.detach().cpu()
    return torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)


def runner_up(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The class ``model`` ranks second on each clean example."""
    return predict_logits(model, x, batch_size).topk(2, dim=1).indices[:, 1]


def pgd_runner_up_normalised(
    model: nn.Module,
    x: torch.Tensor,
    *,
    eps: float = 0.03,
    step: float = 0.01,
    steps: int = 3,
    seed: int = 0,
    batch_size: int = 512,
    device: str | None = None,
) -> torch.Tensor:
    """The authors' notebook PGD, returned in [0, 1] pixel space (the inputs our models take).

    It works on z = (x - mean) / std: a uniform random start in the eps-ball, then ``steps``
    signed-gradient steps that *ascend* the cross-entropy of the original's runner-up class on
    the clean example, each projected to the eps-ball around z and clamped to [0, 1] *in z*.
    That clamp cuts every normalised value outside [0, 1] (for our models' mean 0.5, std 0.25:
    pixels outside [0.5, 0.75]), so these neighbours can lie far from x.
    """
    if eps < 0 or step < 0 or steps < 0:
        raise MuError(
            f"PGD needs eps, step, steps >= 0 (got eps={eps}, step={step}, steps={steps})"
        )
    device = device or next(model.parameters()).device.type
    mean, std = (t.to(device) for t in input_normalisation(model))
    target = runner_up(model, x, batch_size)
    batch_size = inference_batch(batch_size, device)
    g = torch.Generator().manual_seed(seed)
    out = []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            z0 = (x[i : i + batch_size].to(device) - mean) / std
            tb = target[i : i + batch_size].to(device)
            delta = (torch.rand(z0.shape, generator=g) * 2 - 1).to(device) * eps
            z = (z0 + delta).clamp(0, 1)
            for _ in range(steps):
                z.requires_grad_(True)
                loss = nn.functional.cross_entropy(model(z * std + mean), tb)
                (grad,) = torch.autograd.grad(loss, z)
                with torch.no_grad():
                    z = z + step * grad.sign()
                    z = torch.min(torch.max(z, z0 - eps), z0 + eps).clamp(0, 1)
            out.append((z.detach() * std + mean).cpu())
    return torch.cat(out) if out else x.clone()


def gaussian_normalised(
    x: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    *,
    noise_std: float = 0.01,
    seed: int = 0,
) -> torch.Tensor:
    """The authors' notebook Gaussian neighbours: N(0, noise_std^2) added to the normalised
    tensor (no clamp), returned in pixel space, i.e. x + noise_std * std * N(0, 1)."""
    if noise_std < 0:
        raise MuError(f"Gaussian std must be >= 0, got {noise_std}")
    g = torch.Generator().manual_seed(seed)
    z = (x - mean) / std + torch.randn(x.shape, generator=g) * noise_std
    return z * std + mean
