"""Loss pieces shared by several methods."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..infer import predict_logits
from ..metrics import masked_logits


def masked_distillation(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    forget_classes: Sequence[int],
    temperature: float = 1.0,
) -> torch.Tensor:
    """KL(masked softmax of teacher || softmax of student), batch mean (Spotter's L_u and L_o).

    Written as a cross-entropy against the masked teacher (the teacher's entropy is constant), with
    0 * log(0) terms on C_f dropped, so the student is pushed to put no mass on C_f.
    """
    t = temperature
    p = torch.softmax(masked_logits(teacher_logits.float(), forget_classes) / t, dim=1)
    log_q = torch.log_softmax(student_logits.float() / t, dim=1)
    ent = torch.xlogy(p, p).sum(1)
    return (ent - (p * log_q).sum(1)).mean() * t * t


def own_class_distillation(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """KL(softmax of teacher with each sample's own class masked || softmax of student), batch
    mean: DELETE's target (its reference code masks the label, not every forget class, so with
    two forget classes a sample of one keeps the teacher's mass on the other)."""
    t = temperature
    masked = teacher_logits.float().clone()
    masked[torch.arange(len(labels), device=masked.device), labels] = float("-inf")
    p = torch.softmax(masked / t, dim=1)
    log_q = torch.log_softmax(student_logits.float() / t, dim=1)
    return (torch.xlogy(p, p).sum(1) - (p * log_q).sum(1)).mean() * t * t


@torch.no_grad()
def teacher_logits(original: nn.Module, x: torch.Tensor) -> torch.Tensor:
    original.eval()
    return original(x)


def cached_teacher_logits(ctx, key: str, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The original's logits on rows ``idx`` of ``x``, computed for all of ``x`` once per run.

    The teacher is frozen and the unlearning loop does not augment, so its outputs on D_f (or on
    fixed neighbours of D_f) never change: one batched pass replaces a teacher forward per step.
    """
    t = ctx.state.get(key)
    if t is None:
        t = predict_logits(ctx.original, x, ctx.profile.eval_batch, ctx.device).to(x.device)
        ctx.state[key] = t
    return t[idx]


def forget_teacher_logits(ctx, batch) -> torch.Tensor:
    """The original's logits on the batch's forget examples (cached; see above)."""
    return cached_teacher_logits(ctx, "teacher_forget", ctx.forget[0], batch.idx)


def random_other_labels(
    y: torch.Tensor, choices: Sequence[int], generator: torch.Generator
) -> torch.Tensor:
    """Labels drawn uniformly from ``choices`` (the retained classes)."""
    c = torch.tensor(list(choices), device=y.device)
    pick = torch.randint(len(c), y.shape, generator=generator).to(y.device)
    return c[pick]


def best_other_class(logits: torch.Tensor, forget_classes: Sequence[int]) -> torch.Tensor:
    """The highest-scoring non-forget class per row."""
    return masked_logits(logits, forget_classes).argmax(1)
