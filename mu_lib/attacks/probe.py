"""Attacks that read the penultimate features without trusting the head: k-NN recovery and a
few-shot linear probe.

Spotter's dispersion loss was built against the prototype attack (PRA), which averages the
attacker's shots.  These two attacks ask whether the forget classes are still separable in the
features by other means.  The attacker holds k labelled shots per forget class (from D_f) and as
many per retained class (from D_r), and the unlearned model's frozen features:

* **k-NN recovery** classifies every remaining example of D_f (and of D_r) by a majority vote of
  its nearest shots, by cosine similarity;
* **linear probe** fits a new linear head (multinomial logistic regression on standardised
  features) on the shots and reports its accuracy on the remaining D_f and D_r.

Shots are left out of the evaluation sets (a shot is its own nearest neighbour).  Both attacks
work on precomputed embeddings, so one embedding pass (e.g. the one PRA already made) serves every
k.  On a model that never saw a class the features still separate it somewhat: the same attack
on the retrained model is the floor against which an unlearned model's number is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .. import MuError

DEFAULT_SHOTS: tuple[int, ...] = (5, 20, 100)
DEFAULT_NEIGHBOURS = 5


def class_shots(y: torch.Tensor, classes: Sequence[int], k: int, seed: int) -> torch.Tensor:
    """Indices of k random examples of each class of ``classes`` (at least one left over)."""
    g = torch.Generator().manual_seed(20_000 + seed)
    out = []
    for c in classes:
        idx = torch.nonzero(y == c).flatten()
        if k < 1 or k >= len(idx):
            raise MuError(
                f"k={k} shots of class {c} is impossible: it has {len(idx)} examples and the "
                f"attack needs one left to evaluate on; choose 1 <= k <= {len(idx) - 1}"
            )
        out.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return torch.cat(out)


def max_shots(yf: torch.Tensor, yr: torch.Tensor, forget_classes: Sequence[int]) -> int:
    """The largest k every forget and retained class can afford (one example left over)."""
    counts = [int((yf == c).sum()) for c in forget_classes]
    counts += [int((yr == c).sum()) for c in torch.unique(yr).tolist()]
    return max(min(counts) - 1, 0)


def _rest(n: int, used: torch.Tensor) -> torch.Tensor:
    keep = torch.ones(n, dtype=torch.bool)
    keep[used] = False
    return keep


def _percent(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float("nan") if len(y) == 0 else 100.0 * float((pred == y).float().mean())


def knn_predict(
    ref: torch.Tensor, ref_y: torch.Tensor, query: torch.Tensor, neighbours: int
) -> torch.Tensor:
    """Majority vote of the ``neighbours`` most cosine-similar reference rows (ties: nearest)."""
    ref_n = torch.nn.functional.normalize(ref.float(), dim=1)
    out = []
    labels = torch.unique(ref_y)
    onehot = (ref_y[:, None] == labels[None, :]).float()
    for i in range(0, len(query), 4096):
        q = torch.nn.functional.normalize(query[i : i + 4096].float(), dim=1)
        sim, idx = (q @ ref_n.T).topk(min(neighbours, len(ref_y)), dim=1)
        votes = onehot[idx].sum(1) + 1e-3 * (onehot[idx] * sim[..., None]).sum(1)
        out.append(labels[votes.argmax(1)])
    return torch.cat(out) if out else ref_y.new_empty(0)


@dataclass
class FeatureAttackResult:
    """One attack at one k: accuracy on the rest of D_f (recovery) and of D_r."""

    attack: str
    k: int
    acc_f: float
    acc_r: float

    def to_dict(self) -> dict:
        return asdict(self)


class FeatureAttacks:
    """k-NN and linear-probe attacks on precomputed features of D_f and D_r.

    ``ef``/``yf``: features and labels of D_f; ``er``/``yr``: of D_r.  Build it from a
    :class:`~mu_lib.attacks.pra.PRA` with :meth:`from_pra` to reuse its embedding pass.
    """

    def __init__(
        self,
        ef: torch.Tensor,
        yf: torch.Tensor,
        er: torch.Tensor,
        yr: torch.Tensor,
        forget_classes: Sequence[int],
    ):
        self.ef, self.yf = ef.float().cpu(), yf.cpu()
        self.er, self.yr = er.float().cpu(), yr.cpu()
        self.forget_classes = [int(c) for c in forget_classes]
        self.retain_classes = sorted(int(c) for c in torch.unique(self.yr).tolist())

    @classmethod
    def from_pra(cls, pra) -> FeatureAttacks:
        return cls(pra.ef, pra.yf, pra.er, pra.yr, pra.forget_classes)

    def max_shots(self) -> int:
        return max_shots(self.yf, self.yr, self.forget_classes)

    def shots(self, k: int, seed: int, forget_idx: torch.Tensor | None = None):
        """Forget shots (``forget_idx`` if given, e.g. PRA's) and k retained shots per class."""
        sf = (
            class_shots(self.yf, self.forget_classes, k, seed) if forget_idx is None else forget_idx
        )
        sr = class_shots(self.yr, self.retain_classes, k, seed)
        return sf, sr

    def _sets(self, sf: torch.Tensor, sr: torch.Tensor):
        ref = torch.cat([self.ef[sf], self.er[sr]])
        ref_y = torch.cat([self.yf[sf], self.yr[sr]])
        rf, rr = _rest(len(self.yf), sf), _rest(len(self.yr), sr)
        return ref, ref_y, (self.ef[rf], self.yf[rf]), (self.er[rr], self.yr[rr])

    def knn(
        self,
        k: int,
        seed: int = 0,
        neighbours: int = DEFAULT_NEIGHBOURS,
        forget_idx: torch.Tensor | None = None,
    ) -> FeatureAttackResult:
        """k-NN recovery with k shots per class as the reference set."""
        if neighbours < 1:
            raise MuError(f"neighbours must be >= 1, got {neighbours}")
        ref, ref_y, (xf, yf), (xr, yr) = self._sets(*self.shots(k, seed, forget_idx))
        nn_k = min(neighbours, k)  # more neighbours than shots per class would outvote them
        acc_f = _percent(knn_predict(ref, ref_y, xf, nn_k), yf)
        acc_r = _percent(knn_predict(ref, ref_y, xr, nn_k), yr)
        return FeatureAttackResult("knn", k, acc_f, acc_r)

    def probe(
        self,
        k: int,
        seed: int = 0,
        C: float = 1.0,
        forget_idx: torch.Tensor | None = None,
    ) -> FeatureAttackResult:
        """Logistic regression on the standardised features of the shots."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        if C <= 0:
            raise MuError(f"the probe's inverse regularisation C must be > 0, got {C}")
        ref, ref_y, (xf, yf), (xr, yr) = self._sets(*self.shots(k, seed, forget_idx))
        scaler = StandardScaler().fit(ref.numpy())
        clf = LogisticRegression(C=C, max_iter=2000)
        clf.fit(scaler.transform(ref.numpy()), ref_y.numpy())

        def predict(x: torch.Tensor) -> torch.Tensor:
            if len(x) == 0:
                return torch.empty(0, dtype=torch.long)
            return torch.from_numpy(np.asarray(clf.predict(scaler.transform(x.numpy()))))

        return FeatureAttackResult("probe", k, _percent(predict(xf), yf), _percent(predict(xr), yr))

    def run(
        self, ks: Sequence[int] = DEFAULT_SHOTS, seed: int = 0, skip_impossible: bool = True
    ) -> list[FeatureAttackResult]:
        """Both attacks at every k of ``ks`` (k larger than the data allows skipped, or an error)."""
        top = self.max_shots()
        out = []
        for k in ks:
            if k > top and skip_impossible:
                continue
            out += [self.knn(k, seed), self.probe(k, seed)]
        return out
