"""Fine-tuning relearning (Figure 2a): ordinary fine-tuning on N forget shots, at the strongest
learning rate that keeps retained accuracy within the stealth budget PRA also obeys."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import MuError
from ..metrics import accuracy
from ..train import fit, make_optimizer
from ..util import seed_everything
from .stealth import strongest_stealthy

# Learning rates the stealthy fine-tuning attacker tries (SGD as in training, one epoch on N shots).
DEFAULT_RELEARN_LRS: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def relearn(
    model: nn.Module,
    shots: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int = 1,
    lr: float = 0.01,
    batch_size: int = 32,
    seed: int = 0,
    device: str = "cpu",
    bn_mode: str = "eval",
) -> nn.Module:
    """Return a fine-tuned copy of ``model`` (cross-entropy on the shots only)."""
    g = seed_everything(seed)
    m = copy.deepcopy(model)
    x, y = shots[0].to(device), shots[1].to(device)
    opt = make_optimizer(m.parameters(), lr)

    def make_batches(_epoch: int):
        order = torch.randperm(len(y), generator=g).to(device)
        for i in range(0, len(y), batch_size):
            idx = order[i : i + batch_size]
            yield x[idx], y[idx]

    fit(
        m,
        make_batches,
        lambda b: nn.functional.cross_entropy(m(b[0]), b[1]),
        opt,
        epochs,
        device=device,
        bn_mode=bn_mode,
        desc="relearn",
    )
    return m


@dataclass
class RelearnResult:
    """Acc_f and Acc_r after fine-tuning at each learning rate, and the one the attacker keeps."""

    lrs: list[float]
    acc_f: list[float]
    acc_r: list[float]
    unlearned_acc_r: float
    lr: float
    chosen_acc_f: float
    chosen_acc_r: float


def relearn_sweep(
    model: nn.Module,
    shots: tuple[torch.Tensor, torch.Tensor],
    forget: tuple[torch.Tensor, torch.Tensor],
    retain: tuple[torch.Tensor, torch.Tensor],
    lrs: Sequence[float] = DEFAULT_RELEARN_LRS,
    tolerance: float = 1.0,
    unlearned_acc_r: float | None = None,
    **kw,
) -> RelearnResult:
    """Fine-tune at every rate of ``lrs`` and keep the strongest within the stealth budget.

    The same rule as PRA's alpha (``stealth.strongest_stealthy``): retained accuracy may drop at
    most ``tolerance`` points below the unlearned model's.  Without it, one step at a large rate on
    a handful of forget shots "restores" the class by predicting it everywhere.
    """
    lrs = sorted(float(v) for v in lrs)
    if not lrs or lrs[0] <= 0:
        raise MuError(f"relearning rates must be > 0 and at least one, got {lrs}")
    if unlearned_acc_r is None:
        unlearned_acc_r = accuracy(model, *retain)
    runs = [relearn_accuracy(model, shots, forget, retain, lr=lr, **kw) for lr in lrs]
    acc_f = [r["acc_f"] for r in runs]
    acc_r = [r["acc_r"] for r in runs]
    best = strongest_stealthy(acc_f, acc_r, unlearned_acc_r, tolerance)
    return RelearnResult(lrs, acc_f, acc_r, unlearned_acc_r, lrs[best], acc_f[best], acc_r[best])


def relearn_accuracy(
    model: nn.Module,
    shots: tuple[torch.Tensor, torch.Tensor],
    forget: tuple[torch.Tensor, torch.Tensor],
    retain: tuple[torch.Tensor, torch.Tensor],
    **kw,
) -> dict[str, float]:
    """Acc_f and Acc_r after fine-tuning relearning on ``shots``."""
    m = relearn(model, shots, **kw)
    return {"acc_f": accuracy(m, *forget), "acc_r": accuracy(m, *retain)}
