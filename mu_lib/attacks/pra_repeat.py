"""Repeated PRA (paper Appendix F, Table 8): the attack rerun R times with fresh random shots.

The paper reruns PRA 500 times per shot count on SalUn + Spotter and reports the highest
Proto-Acc_f it saw: an attacker who cannot pick shots from a weak pocket of the forget class
might still be lucky.  We report that worst case (with the Acc*_r of the same repeat) and the
mean over repeats.

Cost: embeddings come from an existing ``PRA`` (computed once).  All R prototype sets are
evaluated for all alphas in batched tensor operations, which reproduce ``PRA.evaluate``
exactly (same mixing expression, same first-index tie-breaking of argmax).  The alpha of each
repeat is then chosen by ``PRA.sweep`` itself, fed with these batched evaluations, so the
attacker's rule lives in one place only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from .. import MuError
from .pra import DEFAULT_ALPHAS, FORMS, PRA, PRAResult, check_alpha, prototype_head

PAPER_SHOTS: tuple[int, ...] = (1, 5, 10, 100)


def draw_shots(
    y: torch.Tensor, classes: Sequence[int], k: int, repeats: int, seed: int
) -> torch.Tensor:
    """(repeats, k * len(classes)) indices into ``y``: k distinct random shots per class and
    repeat, drawn independently per repeat (deterministic for a seed)."""
    if repeats < 1:
        raise MuError(f"repeats must be >= 1, got {repeats}")
    g = torch.Generator().manual_seed(20_000 + int(seed))
    cols = []
    for c in classes:
        idx = torch.nonzero(y == c).flatten()
        if k < 1 or k > len(idx):
            raise MuError(
                f"k={k} shots per class is impossible: forget class {c} has {len(idx)} "
                f"examples in the forget set; choose 1 <= k <= {len(idx)}"
            )
        order = torch.rand(repeats, len(idx), generator=g).argsort(1)[:, :k]
        cols.append(idx[order])
    return torch.cat(cols, 1)


def _mix(alpha: float, zp_i: torch.Tensor, zf_i: torch.Tensor) -> torch.Tensor:
    """The patched forget logit, with the very expression of ``PRA._acc`` (bit-identical)."""
    return alpha * zp_i + (1 - alpha) * zf_i


def _batched_accuracy(
    z: torch.Tensor,
    zp: torch.Tensor,
    y: torch.Tensor,
    forget_classes: Sequence[int],
    alphas: Sequence[float],
) -> torch.Tensor:
    """Accuracy (R, A) of the patched heads: ``PRA._acc`` for R prototype sets at once.

    z: (N, C) unlearned logits; zp: (R, N, F) prototype logits for the F forget classes.
    Only the forget columns change, so the best retained column is found once.  An example is
    correct when its label is the first index attaining the maximum (``argmax``'s rule): a
    retained example needs its label to be the best retained column and to beat every patched
    forget column (ties go to the lower index); a forget example needs its patched column to
    beat the best retained column and the other forget columns in the same way.  Only these
    comparisons are computed, on the examples that can be right at all.
    """
    n, c = z.shape
    fc = list(forget_classes)
    fset = set(fc)
    keep = torch.tensor([i for i in range(c) if i not in fset], dtype=torch.long)
    if len(keep):
        j = keep[z[:, keep].argmax(1)]  # (N,) best retained class
        v = z.gather(1, j[:, None]).squeeze(1)  # (N,) its logit
    else:
        j = torch.full((n,), c, dtype=torch.long)
        v = torch.full((n,), -float("inf"))
    is_f = torch.isin(y, torch.tensor(fc, dtype=y.dtype))
    rs = torch.nonzero(~is_f & (j == y)).flatten()  # retained examples that can be right
    fs = torch.nonzero(is_f).flatten()
    zp_r = zp[:, rs].permute(2, 0, 1).contiguous()  # (F, R, n_r)
    zp_f = zp[:, fs].permute(2, 0, 1).contiguous()  # (F, R, n_f)
    zf = z[:, fc].T.contiguous()  # (F, N)
    zf_r, v_r, y_r = zf[:, rs], v[rs], y[rs]
    zf_f, v_f, y_f, j_f = zf[:, fs], v[fs], y[fs], j[fs]
    lows = [y_r < f if bool((y_r < f).any()) else None for f in fc]
    own = torch.tensor([fc.index(int(t)) for t in y[fs]], dtype=torch.long)  # column of own class
    counts = torch.zeros(zp.shape[0], len(alphas), dtype=torch.long)
    for a_i, alpha in enumerate(alphas):
        if len(rs):
            ok = None
            for i in range(len(fc)):
                m = _mix(alpha, zp_r[i], zf_r[i])
                win = m < v_r
                if lows[i] is not None:
                    win |= (m == v_r) & lows[i]
                ok = win if ok is None else ok & win
            counts[:, a_i] += ok.sum(1)
        if len(fs):
            m = torch.stack([_mix(alpha, zp_f[i], zf_f[i]) for i in range(len(fc))])
            my = m.gather(0, own.view(1, 1, -1).expand(1, m.shape[1], -1)).squeeze(0)
            win = (my > v_f) | ((my == v_f) & (y_f < j_f))
            for i, f in enumerate(fc if len(fc) > 1 else []):  # other forget columns
                win &= (own == i) | (m[i] < my) | ((m[i] == my) & (y_f < f))
            counts[:, a_i] += win.sum(1)
    # float32 accuracy, then x100 in double: bit-for-bit ``100.0 * float(mean)`` of PRA._acc
    return (counts.float() / n).double() * 100.0


class _Replay(PRA):
    """A PRA whose ``evaluate`` returns precomputed curves, so ``PRA.sweep`` picks the alpha."""

    def __init__(self, attack: PRA, pf: list[float], pr: list[float]):  # no super(): no embedding
        self.forget_classes = attack.forget_classes
        self.acc_r = attack.acc_r
        self._curves = (pf, pr)

    def shot_prototypes(self, shot_idx: torch.Tensor) -> torch.Tensor:
        return shot_idx

    def evaluate(self, protos, form, alphas):
        return self._curves


@torch.no_grad()
def batched_curves(
    attack: PRA, shots: torch.Tensor, form: str, alphas: Sequence[float], chunk: int = 2_000_000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Proto-Acc_f and Acc*_r curves (R, A) for R shot sets (rows of ``shots``)."""
    if form not in FORMS:
        raise MuError(f"unknown PRA form {form!r}; choose one of {FORMS}")
    nf = len(attack.forget_classes)
    r_all, width = shots.shape
    k = width // nf
    step = max(1, chunk // max(1, len(attack.yr) * nf))
    pf_parts, pr_parts = [], []
    for s in range(0, r_all, step):
        sh = shots[s : s + step]
        protos = attack.ef[sh].view(len(sh), nf, k, -1).mean(2)  # (R, F, d)
        w, b = prototype_head(protos.reshape(len(sh) * nf, -1), form)
        w, b = w.view(len(sh), nf, -1), b.view(len(sh), 1, nf)
        zpf = torch.einsum("nd,rfd->rnf", attack.ef, w) + b
        zpr = torch.einsum("nd,rfd->rnf", attack.er, w) + b
        fc = attack.forget_classes
        pf_parts.append(_batched_accuracy(attack.zf, zpf, attack.yf, fc, alphas))
        pr_parts.append(_batched_accuracy(attack.zr, zpr, attack.yr, fc, alphas))
    return torch.cat(pf_parts), torch.cat(pr_parts)


@dataclass
class RepeatedPRA:
    """Per-repeat results of the repeated attack for one shot count."""

    k: int
    form: str
    repeats: int
    seed: int
    acc_r: float
    proto_acc_f: list[float]  # chosen per repeat
    acc_r_star: list[float]
    alpha: list[float]
    shots: list[list[int]]  # indices into the forget set, one row per repeat

    @property
    def worst_index(self) -> int:
        """The repeat with the highest Proto-Acc_f (the first one, on ties)."""
        return max(range(self.repeats), key=lambda i: (self.proto_acc_f[i], -i))

    def summary(self) -> dict:
        """Worst case (max Proto-Acc_f, its Acc*_r and alpha) and means over repeats."""
        w = self.worst_index
        t = torch.tensor(self.proto_acc_f)
        return {
            "shots": self.k,
            "repeats": self.repeats,
            "worst_proto_acc_f": self.proto_acc_f[w],
            "worst_acc_r_star": self.acc_r_star[w],
            "worst_alpha": self.alpha[w],
            "mean_proto_acc_f": float(t.mean()),
            "std_proto_acc_f": float(t.std(unbiased=False)),
            "mean_acc_r_star": float(torch.tensor(self.acc_r_star).mean()),
            "acc_r": self.acc_r,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def repeat_pra(
    attack: PRA,
    k: int,
    repeats: int = 500,
    seed: int = 0,
    form: str = "l2",
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    tolerance: float = 1.0,
) -> RepeatedPRA:
    """Run PRA ``repeats`` times with fresh k-shot prototypes; alpha per repeat by ``PRA.sweep``."""
    alphas = [check_alpha(a) for a in alphas]
    if not alphas:
        raise MuError("alphas is empty; give at least one value in [0, 1]")
    shots = draw_shots(attack.yf, attack.forget_classes, k, repeats, seed)
    pf, pr = batched_curves(attack, shots, form, alphas)
    chosen: list[PRAResult] = [
        _Replay(attack, pf[i].tolist(), pr[i].tolist()).sweep(shots[i], form, alphas, tolerance)
        for i in range(repeats)
    ]
    return RepeatedPRA(
        k=k,
        form=form,
        repeats=repeats,
        seed=seed,
        acc_r=attack.acc_r,
        proto_acc_f=[c.chosen_proto_acc_f for c in chosen],
        acc_r_star=[c.chosen_acc_r_star for c in chosen],
        alpha=[c.alpha for c in chosen],
        shots=shots.tolist(),
    )


def repeated_table(
    attack: PRA,
    shots: Sequence[int] = PAPER_SHOTS,
    repeats: int = 500,
    seed: int = 0,
    form: str = "l2",
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> tuple[list[dict], dict[int, RepeatedPRA]]:
    """Table 8's rows (one summary per shot count) and the full per-repeat results."""
    full = {k: repeat_pra(attack, k, repeats, seed, form, alphas) for k in shots}
    return [r.summary() for r in full.values()], full
