"""Loss pieces shared by several methods."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..metrics import masked_logits


def masked_distillation(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    forget_classes: Sequence[int],
    temperature: float = 1.0,
) -> torch.Tensor:
    """KL(masked softmax of teacher || softmax of student), batch mean (DELETE, Spotter's L_u/L_o).

    Written as a cross-entropy against the masked teacher (the teacher's entropy is constant), with
    0 * log(0) terms on C_f dropped, so the student is pushed to put no mass on C_f.
    """
    t = temperature
    p = torch.softmax(masked_logits(teacher_logits.float(), forget_classes) / t, dim=1)
    log_q = torch.log_softmax(student_logits.float() / t, dim=1)
    ent = torch.xlogy(p, p).sum(1)
    return (ent - (p * log_q).sum(1)).mean() * t * t


@torch.no_grad()
def teacher_logits(original: nn.Module, x: torch.Tensor) -> torch.Tensor:
    original.eval()
    return original(x)


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
