"""Metrics of the paper: accuracies, masked softmax (eq. 2), KL / JS, OU@eps (eq. 3), dispersion."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .infer import predict_logits

# The headline metrics of a run (Table 1's columns plus the Gaussian OU and PRA's alpha).
HEADLINE_METRICS: tuple[str, ...] = (
    "acc_f",
    "acc_r",
    "acc_ft",
    "acc_rt",
    "ou_pgd",
    "ou_gauss",
    "proto_acc_f",
    "acc_r_star",
    "alpha",
)


def percent_correct(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in percent of precomputed logits (NaN for an empty set)."""
    if len(y) == 0:
        return float("nan")
    return 100.0 * float((logits.argmax(1) == y).float().mean())


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy in percent (NaN for an empty set)."""
    if len(y) == 0:
        return float("nan")
    return percent_correct(predict_logits(model, x, batch_size), y.cpu())


def accuracy_suite(model: nn.Module, split, batch_size: int = 1024, pra=None) -> dict[str, float]:
    """Table 1's four accuracies: forget/retain on train (Acc_f, Acc_r) and test (Acc_ft, Acc_rt).

    ``pra``: a PRA built on this model and this split's training data; its single embedding pass
    already holds the model's training logits, so Acc_f and Acc_r are read from it instead of
    running the training split through the model a second time.
    """
    if pra is not None:
        acc_f, acc_r = pra.acc_f, pra.acc_r
    else:
        acc_f = accuracy(model, *split.forget_train, batch_size)
        acc_r = accuracy(model, *split.retain_train, batch_size)
    return {
        "acc_f": acc_f,
        "acc_r": acc_r,
        "acc_ft": accuracy(model, *split.forget_test, batch_size),
        "acc_rt": accuracy(model, *split.retain_test, batch_size),
    }


def masked_logits(logits: torch.Tensor, forget_classes: Sequence[int]) -> torch.Tensor:
    """Logits with the forget classes set to -inf (softmax of this is the masked softmax)."""
    out = logits.clone()
    out[:, list(forget_classes)] = float("-inf")
    return out


def masked_softmax(logits: torch.Tensor, forget_classes: Sequence[int]) -> torch.Tensor:
    """Softmax renormalised over the retained classes; exactly 0 on C_f (eq. 2)."""
    return torch.softmax(masked_logits(logits, forget_classes), dim=1)


def kl_div(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-row KL(p || q) in nats, with 0 log 0 = 0."""
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(1)


def js_div(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-row Jensen-Shannon divergence in nats (symmetric, in [0, ln 2])."""
    m = 0.5 * (p + q)
    return 0.5 * kl_div(p, m) + 0.5 * kl_div(q, m)


DIVERGENCES = {"js": js_div, "kl": kl_div}


def ou_from_logits(
    original_logits: torch.Tensor,
    unlearned_logits: torch.Tensor,
    forget_classes: Sequence[int],
    divergence: str = "js",
) -> float:
    """OU@eps from logits already computed on the neighbour set."""
    if divergence not in DIVERGENCES:
        from . import MuError

        raise MuError(f"unknown divergence {divergence!r}; choose one of {sorted(DIVERGENCES)}")
    p = masked_softmax(original_logits.double(), forget_classes)
    q = torch.softmax(unlearned_logits.double(), dim=1)
    return float(DIVERGENCES[divergence](p, q).mean())


def ou_eps(
    original: nn.Module,
    unlearned: nn.Module,
    neighbours: torch.Tensor,
    forget_classes: Sequence[int],
    divergence: str = "js",
    batch_size: int = 1024,
    original_logits: torch.Tensor | None = None,
) -> float:
    """OU@eps (eq. 3): mean divergence between the original's masked softmax and the unlearned
    model's softmax on the neighbours of D_f.  Pass ``original_logits`` to reuse them."""
    if original_logits is None:
        original_logits = predict_logits(original, neighbours, batch_size)
    return ou_from_logits(
        original_logits,
        predict_logits(unlearned, neighbours, batch_size),
        forget_classes,
        divergence,
    )


def mean_pairwise_cosine(z: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over distinct pairs of rows (differentiable; L_sim of eq. 10)."""
    n = z.shape[0]
    if n < 2:
        return z.new_zeros(())
    zn = nn.functional.normalize(z, dim=1)
    s = zn.sum(0)
    # sum over i != j of cos = ||sum z_i||^2 - sum ||z_i||^2, computed in O(n d)
    return (s.dot(s) - (zn * zn).sum()) / (n * (n - 1))


def dispersion_loss(z: torch.Tensor, y: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """L_sim: per-class mean pairwise cosine similarity, averaged over the classes present."""
    terms = [mean_pairwise_cosine(z[y == c]) for c in classes if int((y == c).sum()) >= 2]
    return torch.stack(terms).mean() if terms else z.new_zeros(())


@torch.no_grad()
def feature_dispersion(emb: torch.Tensor, y: torch.Tensor, classes: Sequence[int]) -> float:
    """Reported dispersion: 1 - mean within-class cosine similarity (higher = more scattered)."""
    return 1.0 - float(dispersion_loss(emb.float(), y, classes))
