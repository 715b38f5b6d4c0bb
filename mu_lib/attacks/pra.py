"""Prototypical Relearning Attack (paper eqs. 4-7, Algorithm 1).

With k labelled shots per forget class, the attacker averages their embeddings into a prototype
and writes it into the forget rows of the head: cosine form w = p / ||p||, b = 0; L2 form
w = 2p, b = -||p||^2 (the linear part of -||e - p||^2) with p scaled to unit length first, as
the authors' code does (``normalize_proto=True`` in their ``update_fc_with_prototypes``), so
w = 2p/||p||, b = -1; ``l2_raw`` is eq. 6 on the raw mean p.  The rows are interpolated with the
unlearned ones by alpha.  Because the head is linear, the logits for every alpha follow from one
embedding pass: z(alpha) = alpha * z_proto + (1 - alpha) * z_unlearned on the forget rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .. import MuError
from ..infer import embed_all
from ..metrics import percent_correct
from ..models import check_classifier
from .stealth import strongest_stealthy

DEFAULT_ALPHAS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FORMS = ("cos", "l2", "l2_raw")  # cos: the paper's attack (Sec. 5.1)


def check_alpha(alpha: float) -> float:
    if not 0.0 <= float(alpha) <= 1.0:
        raise MuError(f"alpha must be in [0, 1], got {alpha}")
    return float(alpha)


def prototypes(emb: torch.Tensor, y: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """Mean embedding per class (rows in the order of ``classes``)."""
    rows = []
    for c in classes:
        m = y == c
        if not bool(m.any()):
            raise MuError(
                f"no shots for class {c}: PRA needs at least one example per forget class"
            )
        rows.append(emb[m].mean(0))
    return torch.stack(rows)


def _unit(protos: torch.Tensor) -> torch.Tensor:
    return protos / protos.norm(dim=1, keepdim=True).clamp_min(1e-12)


def prototype_head(protos: torch.Tensor, form: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Head rows (w, b) that classify by prototype: cosine, squared-L2 on the unit prototype
    (``l2``, the authors' code) or squared-L2 on the raw prototype (``l2_raw``, eq. 6)."""
    if form == "cos":
        return _unit(protos), protos.new_zeros(len(protos))
    if form in ("l2", "l2_raw"):
        p = _unit(protos) if form == "l2" else protos
        return 2 * p, -(p * p).sum(1)
    raise MuError(f"unknown PRA form {form!r}; choose one of {FORMS}")


def patched_head(
    head: nn.Linear, forget_classes: Sequence[int], w: torch.Tensor, b: torch.Tensor, alpha: float
) -> nn.Linear:
    """A copy of ``head`` whose forget rows are alpha * prototype + (1 - alpha) * unlearned (eq. 7)."""
    alpha = check_alpha(alpha)
    new = nn.Linear(head.in_features, head.out_features, bias=True).to(head.weight.device)
    with torch.no_grad():
        new.weight.copy_(head.weight)
        new.bias.copy_(head.bias if head.bias is not None else torch.zeros(head.out_features))
        fc = list(forget_classes)
        new.weight[fc] = alpha * w.to(new.weight) + (1 - alpha) * head.weight[fc]
        new.bias[fc] = alpha * b.to(new.bias) + (1 - alpha) * new.bias[fc]
    return new


class PatchedModel(nn.Module):
    """The unlearned model with a PRA-patched head (for Grad-CAM and further attacks)."""

    def __init__(self, model: nn.Module, head: nn.Linear):
        super().__init__()
        self.model = model
        self.head = head

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.model.embed(x))


@dataclass
class PRAResult:
    """Proto-Acc_f and Acc*_r for each alpha, and the alpha the attacker would pick."""

    form: str
    k: int
    alphas: list[float]
    proto_acc_f: list[float]
    acc_r_star: list[float]
    acc_r: float
    alpha: float
    chosen_proto_acc_f: float
    chosen_acc_r_star: float
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class PRA:
    """Embeddings computed once; any number of (shots, alpha) evaluations are then matrix products."""

    def __init__(
        self,
        model: nn.Module,
        forget: tuple[torch.Tensor, torch.Tensor],
        retain: tuple[torch.Tensor, torch.Tensor],
        forget_classes: Sequence[int],
        batch_size: int = 1024,
    ):
        check_classifier(model)
        self.model = model
        self.forget_classes = list(forget_classes)
        self.ef = embed_all(model, forget[0], batch_size)
        self.yf = forget[1].cpu()
        self.er = embed_all(model, retain[0], batch_size)
        self.yr = retain[1].cpu()
        head = model.head
        self.W = head.weight.detach().float().cpu()
        self.b = (
            head.bias.detach().float().cpu() if head.bias is not None else torch.zeros(len(self.W))
        )
        self.zf = self.ef @ self.W.T + self.b
        self.zr = self.er @ self.W.T + self.b
        self.acc_r = percent_correct(self.zr, self.yr)
        self.acc_f = percent_correct(self.zf, self.yf)

    def shot_prototypes(self, shot_idx: torch.Tensor) -> torch.Tensor:
        """Prototypes from the shots given as indices into the forget set."""
        return prototypes(self.ef[shot_idx], self.yf[shot_idx], self.forget_classes)

    def _acc(self, z: torch.Tensor, zp: torch.Tensor, y: torch.Tensor, alpha: float) -> float:
        z = z.clone()
        z[:, self.forget_classes] = alpha * zp + (1 - alpha) * z[:, self.forget_classes]
        return percent_correct(z, y)

    def evaluate(
        self, protos: torch.Tensor, form: str, alphas: Sequence[float]
    ) -> tuple[list[float], list[float]]:
        w, b = prototype_head(protos, form)
        zpf = self.ef @ w.T + b
        zpr = self.er @ w.T + b
        pf = [self._acc(self.zf, zpf, self.yf, check_alpha(a)) for a in alphas]
        pr = [self._acc(self.zr, zpr, self.yr, a) for a in alphas]
        return pf, pr

    def sweep(
        self,
        shot_idx: torch.Tensor,
        form: str = "cos",
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        tolerance: float = 1.0,
    ) -> PRAResult:
        """Evaluate every alpha and pick the strongest attack with Acc*_r >= Acc_r - tolerance."""
        alphas = [check_alpha(a) for a in alphas]
        if not alphas:
            raise MuError("alphas is empty; give at least one value in [0, 1]")
        k = len(shot_idx) // max(len(self.forget_classes), 1)
        pf, pr = self.evaluate(self.shot_prototypes(shot_idx), form, alphas)
        order = sorted(range(len(alphas)), key=lambda i: alphas[i])  # mildest first
        pick = strongest_stealthy(
            [pf[i] for i in order], [pr[i] for i in order], self.acc_r, tolerance
        )
        best = order[pick]
        return PRAResult(form, k, alphas, pf, pr, self.acc_r, alphas[best], pf[best], pr[best])

    def patched_model(self, shot_idx: torch.Tensor, form: str, alpha: float) -> PatchedModel:
        w, b = prototype_head(self.shot_prototypes(shot_idx), form)
        return PatchedModel(
            self.model, patched_head(self.model.head, self.forget_classes, w, b, alpha)
        )


def nearest_prototype_predict(emb: torch.Tensor, protos: torch.Tensor, form: str) -> torch.Tensor:
    """Prototypical-network prediction (index into ``protos``): max cosine or min L2 distance
    (to the unit prototype for ``l2``, to the raw one for ``l2_raw``)."""
    if form == "cos":
        e = nn.functional.normalize(emb, dim=1)
        p = nn.functional.normalize(protos, dim=1)
        return (e @ p.T).argmax(1)
    if form in ("l2", "l2_raw"):
        return torch.cdist(emb, _unit(protos) if form == "l2" else protos).argmin(1)
    raise MuError(f"unknown PRA form {form!r}; choose one of {FORMS}")
