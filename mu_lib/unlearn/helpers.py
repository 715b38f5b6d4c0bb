"""Small pieces shared by the baseline methods (batched teacher passes, BatchNorm switches,
label helpers, gradient accumulation).  No method logic lives here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .. import MuError
from ..data import batches
from ..util import eval_mode


def chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices covering ``range(n)`` (in-memory data: no DataLoader needed)."""
    for i in range(0, n, max(size, 1)):
        yield slice(i, min(i + size, n))


@contextmanager
def bn_frozen(model: nn.Module):
    """Run a forward pass with every BatchNorm in eval mode, restoring each module's mode after.

    ``train.fit`` sets the BatchNorm mode once per epoch, so a loss that needs a frozen-BN pass
    for part of its batch (Learn to Unlearn's adversarial term) must put the modes back itself.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = [m.training for m in bns]
    for m in bns:
        m.eval()
    try:
        yield model
    finally:
        for m, t in zip(bns, modes, strict=True):
            m.train(t)


def accumulate_grads(
    model: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    batch_size: int,
    per_batch: Callable[[dict[str, torch.Tensor], int], None],
) -> None:
    """Backpropagate ``loss_fn(model(x_b), y_b)`` batch by batch (eval mode) and hand each batch's
    parameter gradients, by name, to ``per_batch(grads, batch_len)``.  The model is left unchanged."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    with eval_mode(model):
        for idx in batches(len(y), batch_size, shuffle=False):
            idx = idx.to(x.device)
            model.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]).float(), y[idx]).backward()
            per_batch({n: p.grad for n, p in params.items() if p.grad is not None}, len(idx))
    model.zero_grad(set_to_none=True)


def require_retain(name: str, ctx) -> tuple[torch.Tensor, torch.Tensor]:
    """``ctx.retain``, or the loop's error when a retained-data method was given none."""
    if ctx.retain is None:
        raise MuError(f"{name} uses retained data but none was provided")
    return ctx.retain
