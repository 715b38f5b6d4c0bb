"""UNSC, unlearning via null space calibration (Chen et al., IJCAI 2024; paper Appendix C).

Fine-tunes D_f towards the original's best non-forget class, with every weight update projected
onto the null space of the retained classes' layer inputs: for each Conv2d / Linear layer, the
inputs it sees on one small retained batch are decomposed (SVD of their second-moment matrix),
the directions holding 99% of the energy are kept as the retained subspace, and gradients are
multiplied by (I - U U^T).  Updates then leave the layer's response to retained inputs unchanged
to first order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import MuError
from ..infer import predict_logits
from ..util import eval_mode
from .base import Batch, Context, HParams, Method, register
from .helpers import require_retain
from .losses import best_other_class


@dataclass
class UNSCHparams(HParams):
    """UNSC's settings (the rest as in ``HParams``).

    energy: share of the retained inputs' energy (sum of squared singular values) whose
        directions are protected, per layer; 0.99 (the reference code uses 0.97 .. 0.997).
    per_class: retained examples per retained class in the one small batch that defines the null
        spaces (the reference code uses one batch per class; 16 keeps it small).
    train_norm: False trains only the projected Conv2d / Linear weights (and their biases);
        BatchNorm scales and shifts are outside the null-space guarantee, so they stay fixed.
    lr: 1e-2 on ``paper`` (the order of the reference code's SGD settings); ``cpu`` / ``smoke`` take the tuning protocol's choice (``mu_lib.tuning``).
    bn_mode: ``eval`` (frozen BatchNorm), as in the reference code.
    weight_decay: 0: decay is not projected and would move every weight, retained directions
        included (the reference code uses plain SGD without decay).

    The loop hands this method retained batches each step (it declares ``uses_retain``); its loss
    ignores them: retained data enter only through the null spaces.
    """

    lr: float = 1e-2
    bn_mode: str = "eval"
    weight_decay: float = 0.0
    energy: float = 0.99
    per_class: int = 16
    train_norm: bool = False

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.energy <= 1.0:
            raise MuError(f"energy must be in (0, 1], got {self.energy}")
        if self.per_class < 1:
            raise MuError(f"per_class must be >= 1, got {self.per_class}")


def _projected_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _layer_rows(module: nn.Module, inp: torch.Tensor) -> torch.Tensor:
    """The layer's input as rows of the matrix its weight multiplies (patches for convolutions),
    with a column of ones appended when the layer has a bias."""
    if isinstance(module, nn.Conv2d):
        cols = nn.functional.unfold(
            inp.contiguous(), module.kernel_size, module.dilation, module.padding, module.stride
        )  # (N, C*k*k, L)
        rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    else:
        rows = inp.reshape(-1, inp.shape[-1])
    rows = rows.double()
    if module.bias is not None:
        rows = torch.cat([rows, rows.new_ones(len(rows), 1)], dim=1)
    return rows


def null_space_projectors(
    model: nn.Module, x: torch.Tensor, energy: float
) -> list[tuple[nn.Module, torch.Tensor, int]]:
    """Per layer: (module, I - U U^T, rank of U), U spanning ``energy`` of the inputs' energy."""
    layers = _projected_layers(model)
    seen: dict[nn.Module, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out: seen.__setitem__(mod, args[0].detach()))
        for m in layers
    ]
    try:
        with torch.no_grad(), eval_mode(model):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    out = []
    for m in layers:
        rows = _layer_rows(m, seen[m])
        evals, evecs = torch.linalg.eigh(rows.T @ rows)  # ascending; = squared singular values
        evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
        cum = evals.cumsum(0) / evals.sum().clamp_min(1e-300)
        k = int((cum < energy).sum()) + 1
        k = min(k, len(evals))
        u = evecs[:, :k]
        proj = torch.eye(len(evals), dtype=u.dtype, device=u.device) - u @ u.T
        out.append((m, proj.float(), k))
    return out


@register
class UNSC(Method):
    """Fine-tune D_f to the original's best other class inside the retained null space (uses a
    small retained subset)."""

    name = "unsc"
    summary = "fine-tune D_f to the best non-forget class with updates projected onto the null space of retained activations (small D_r subset)"
    source = "Chen et al., Machine Unlearning via Null Space Calibration, IJCAI 2024"
    uses_retain = True
    Hparams = UNSCHparams

    def prepare(self, ctx: Context) -> None:
        xf, _ = ctx.forget
        ctx.state["unsc_targets"] = best_other_class(
            predict_logits(ctx.original, xf, device=ctx.device).to(xf.device), ctx.forget_classes
        )
        xr, yr = require_retain(self.name, ctx)
        g = torch.Generator().manual_seed(ctx.seed + 2_000)
        pick = []
        for c in ctx.retain_classes:
            idx = torch.nonzero(yr.cpu() == c).flatten()
            pick.append(idx[torch.randperm(len(idx), generator=g)[: self.hp.per_class]])
        pick_t = torch.cat(pick).to(xr.device)
        ctx.counts["retain_batches"] += 1
        proj = null_space_projectors(ctx.model, xr[pick_t], self.hp.energy)
        ctx.state["unsc_projectors"] = proj
        ctx.state["unsc_ranks"] = [k for _, _, k in proj]

    def loss(self, ctx: Context, batch: Batch) -> torch.Tensor:
        target = ctx.state["unsc_targets"][batch.idx]
        return nn.functional.cross_entropy(ctx.model(batch.x).float(), target)

    def after_backward(self, ctx: Context) -> None:
        for m, proj, _ in ctx.state["unsc_projectors"]:
            w = m.weight
            if w.grad is None:
                continue
            g = w.grad.reshape(w.shape[0], -1)
            if m.bias is not None:  # the bias is the weight of the constant input column
                gb = m.bias.grad if m.bias.grad is not None else torch.zeros_like(m.bias)
                g = torch.cat([g, gb.reshape(-1, 1)], dim=1) @ proj.to(g.dtype)
                if m.bias.grad is not None:
                    m.bias.grad.copy_(g[:, -1].reshape(m.bias.grad.shape))
                g = g[:, :-1]
            else:
                g = g @ proj.to(g.dtype)
            w.grad.copy_(g.reshape(w.grad.shape))

    def trainable_parameters(self, ctx: Context):
        if self.hp.train_norm:
            return ctx.model.parameters()
        return [p for m in _projected_layers(ctx.model) for p in m.parameters(recurse=False)]
