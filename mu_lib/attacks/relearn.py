"""Fine-tuning relearning (Figure 2a): a few steps of ordinary fine-tuning on N forget shots."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..metrics import accuracy
from ..train import fit, make_optimizer, seed_everything


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
