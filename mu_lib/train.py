"""The one optimisation loop of the library.

``fit`` runs any loss over any batch stream with optional gradient hooks; supervised training of
original and retrained models (``train_classifier``), every unlearning method and the fine-tuning
relearning attack all go through it.  On CUDA it uses bf16 autocast and channels-last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from . import Diverged, MuError
from .data import batches
from .util import autocast, progress, seed_everything


def set_bn_mode(model: nn.Module, mode: str) -> None:
    """Put the model in train mode, with BatchNorm frozen (running stats and mode) if ``eval``."""
    if mode not in ("train", "eval"):
        raise MuError(f"bn_mode must be 'train' or 'eval', got {mode!r}")
    model.train()
    if mode == "eval":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def make_optimizer(
    params,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    kind: str = "sgd",
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    if lr <= 0:
        raise MuError(f"learning rate must be > 0, got {lr}")
    if kind == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
        )
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise MuError(f"unknown optimizer {kind!r}; choose 'sgd' or 'adam'")


def raise_diverged(desc: str, epoch: int, value: float, optimizer: torch.optim.Optimizer) -> None:
    """A NaN/inf loss ends the run (nothing of it is stored) with the setting to change."""
    lr = optimizer.param_groups[0]["lr"] if optimizer.param_groups else None
    what = "unlearning" if desc.startswith("unlearn") else "training"
    fix = (
        f"lower the learning rate (e.g. --set lr={lr / 10:g})"
        if what == "unlearning" and lr
        else f"lower the learning rate (now {lr:g}) or the method's loss weights"
        if lr
        else "lower the learning rate"
    )
    raise Diverged(
        f"{desc}: the {what} loss became {value} in epoch {epoch + 1}: the run diverged and "
        f"nothing was stored; {fix}"
    )


def fit(
    model: nn.Module,
    make_batches: Callable[[int], Iterable[Any]],
    loss_fn: Callable[[Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    *,
    device: str,
    bn_mode: str = "train",
    after_backward: Callable[[], None] | None = None,
    after_step: Callable[[], None] | None = None,
    after_epoch: Callable[[int], None] | None = None,
    scheduler: Any = None,
    desc: str = "train",
    quiet: bool | None = None,
) -> list[float]:
    """Minimise ``loss_fn`` over ``make_batches(epoch)`` for ``epochs`` epochs; return epoch losses.

    ``after_backward`` may edit gradients (masks, projections) before the optimiser step;
    ``after_epoch(epoch)`` may look at the model between epochs (each epoch resets the BN mode).
    """
    history: list[float] = []
    bar = progress(range(epochs), desc=desc, quiet=quiet)
    for epoch in bar:
        set_bn_mode(model, bn_mode)
        total, n = 0.0, 0
        for batch in make_batches(epoch):
            optimizer.zero_grad(set_to_none=True)
            with autocast(device):
                loss = loss_fn(batch)
            loss.backward()
            if after_backward is not None:
                after_backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            value = float(loss.detach())  # the one host sync of a step, as before
            if not math.isfinite(value):
                raise_diverged(desc, epoch, value, optimizer)
            total += value
            n += 1
        if scheduler is not None:
            scheduler.step()
        history.append(total / max(n, 1))
        if after_epoch is not None:
            after_epoch(epoch)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    model.eval()
    return history


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop (4-pixel padding) and horizontal flip, on tensors (CIFAR-style)."""
    n, _, h, w = x.shape
    pad = torch.nn.functional.pad(x, (4, 4, 4, 4), mode="reflect")
    dx, dy = (torch.randint(0, 9, (2,), generator=generator)).tolist()
    out = pad[:, :, dy : dy + h, dx : dx + w]
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1).to(out.device), out.flip(3), out)


# Learning-rate schedules of ``train_classifier``: ``cosine`` anneals lr -> 0 once per epoch (the
# paper's); ``onecycle`` rises linearly from lr/10 to lr over the first ``warmup`` fraction of the
# optimiser steps, then falls linearly to 0, updated after every step.
SCHEDULES = ("cosine", "onecycle")


def check_schedule(schedule: str, warmup: float) -> None:
    if schedule not in SCHEDULES:
        raise MuError(f"unknown training schedule {schedule!r}; choose one of {SCHEDULES}")
    if not 0.0 <= warmup < 1.0:
        raise MuError(f"warm-up must be a fraction of the steps in [0, 1), got {warmup}")


def onecycle_factor(step: int, total: int, warmup: float) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` of ``total``."""
    warm = round(warmup * total)
    if step < warm:
        return 0.1 + 0.9 * step / warm
    return max(1.0 - (step - warm) / max(total - warm, 1), 0.0)


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: str,
    augment: bool = False,
    schedule: str = "cosine",
    warmup: float = 0.0,
    nesterov: bool = False,
    desc: str = "train",
) -> list[float]:
    """Supervised cross-entropy training (original and retrained models): SGD (momentum 0.9,
    weight decay 5e-4, optionally Nesterov) under ``schedule`` (see ``SCHEDULES``)."""
    check_schedule(schedule, warmup)
    g = seed_everything(seed)
    opt = make_optimizer(model.parameters(), lr, nesterov=nesterov)
    per_epoch, per_step = None, None
    if schedule == "cosine":
        per_epoch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    else:
        total = max(epochs * math.ceil(len(y) / batch_size), 1)
        per_step = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: onecycle_factor(step, total, warmup)
        )
    x_dev, y_dev = x.to(device), y.to(device)

    def make_batches(_epoch: int):
        for idx in batches(len(y), batch_size, shuffle=True, generator=g):
            xb = x_dev[idx.to(device)]
            if augment:
                xb = augment_batch(xb, g)
            yield xb, y_dev[idx.to(device)]

    def loss_fn(batch):
        xb, yb = batch
        return nn.functional.cross_entropy(model(xb), yb)

    return fit(
        model,
        make_batches,
        loss_fn,
        opt,
        epochs,
        device=device,
        scheduler=per_epoch,
        after_step=per_step.step if per_step is not None else None,
        desc=desc,
    )
