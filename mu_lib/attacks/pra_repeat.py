"""Repeated PRA (paper Appendix F, Table 8): the attack rerun R times with fresh random shots.

The paper reruns PRA 500 times per shot count on SalUn + Spotter and reports the highest
Proto-Acc_f it saw: an attacker who cannot pick shots from a weak pocket of the forget class
might still be lucky.  We report that worst case (with the Acc*_r of the same repeat) and the
mean over repeats.

Every repeat is ``PRA.sweep`` itself (the main tables' attack: same prototype head, same alpha
rule, cosine form by default), on embeddings computed once per model, so Appendix F and the
main tables cannot disagree on what the attack is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from .. import MuError
from .pra import DEFAULT_ALPHAS, FORMS, PRA, check_alpha

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


def sweep_shot_sets(
    attack: PRA,
    shots: torch.Tensor,
    form: str = "cos",
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    tolerance: float = 1.0,
    seed: int = 0,
) -> RepeatedPRA:
    """``PRA.sweep`` on every row of ``shots`` (indices into the forget set, k per class)."""
    if form not in FORMS:
        raise MuError(f"unknown PRA form {form!r}; choose one of {FORMS}")
    alphas = [check_alpha(a) for a in alphas]
    if not alphas:
        raise MuError("alphas is empty; give at least one value in [0, 1]")
    chosen = [attack.sweep(row, form, alphas, tolerance) for row in shots]
    return RepeatedPRA(
        k=shots.shape[1] // max(len(attack.forget_classes), 1),
        form=form,
        repeats=len(shots),
        seed=seed,
        acc_r=attack.acc_r,
        proto_acc_f=[c.chosen_proto_acc_f for c in chosen],
        acc_r_star=[c.chosen_acc_r_star for c in chosen],
        alpha=[c.alpha for c in chosen],
        shots=shots.tolist(),
    )


def repeat_pra(
    attack: PRA,
    k: int,
    repeats: int = 500,
    seed: int = 0,
    form: str = "cos",
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    tolerance: float = 1.0,
) -> RepeatedPRA:
    """Run PRA ``repeats`` times with fresh k-shot prototypes (``draw_shots`` under ``seed``)."""
    shots = draw_shots(attack.yf, attack.forget_classes, k, repeats, seed)
    return sweep_shot_sets(attack, shots, form, alphas, tolerance, seed)


def pooled_summary(runs: Sequence[RepeatedPRA]) -> dict:
    """One shot count over several models (seeds): the worst draw of all of them (the first,
    on ties, in the order given) with its Acc*_r, and the means over every draw."""
    if not runs or len({r.k for r in runs}) != 1:
        raise MuError("pooled_summary needs at least one run, all with the same shot count")
    pf = [v for r in runs for v in r.proto_acc_f]
    ar = [v for r in runs for v in r.acc_r_star]
    w = max(range(len(pf)), key=lambda i: (pf[i], -i))
    return {
        "shots": runs[0].k,
        "worst_proto_acc_f": pf[w],
        "worst_acc_r_star": ar[w],
        "mean_proto_acc_f": float(torch.tensor(pf).mean()),
        "mean_acc_r_star": float(torch.tensor(ar).mean()),
    }


def repeated_table(
    attacks: Mapping[int, PRA],
    shots: Sequence[int] = PAPER_SHOTS,
    repeats: int = 500,
    form: str = "cos",
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    tolerance: float = 1.0,
) -> tuple[list[dict], list[dict], dict[tuple[int, int], RepeatedPRA]]:
    """Table 8 from one attack per seed (``{seed: PRA}``; the seed also seeds the draws).

    Returns the pooled rows (one per shot count, over all seeds), the per-seed rows and the
    full per-repeat results keyed by (seed, shots).
    """
    full = {
        (s, k): repeat_pra(a, k, repeats, s, form, alphas, tolerance)
        for s, a in attacks.items()
        for k in shots
    }
    pooled = [pooled_summary([full[s, k] for s in attacks]) for k in shots]
    per_seed = [{"seed": s, **r.summary()} for (s, _), r in full.items()]
    return pooled, per_seed, full
