"""The paper's claims as code: each claim is judged on many units of evidence, not one.

A *unit* is one independent piece of evidence: for the Table 1 claims one (seed, forget class)
pair with every method's metrics on it; for the sequential claim one round; for the forget-ratio
claim one fraction.  A claim turns a unit into ``(value, holds)`` (``None`` when the unit lacks
what the claim needs), and :func:`judge` aggregates: the mean of ``value`` with a 95% interval,
and the count of units where the claim holds.

The verdict rule, stated once: a claim **holds** when it holds on at least 80% of the units,
**partly** when on at least 30%, and **fails** otherwise; **n/a** when no unit could be judged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import MuError
from .checks import (
    BASELINES as BASELINES,
)
from .checks import (
    PLUG_BASES as PLUG_BASES,
)
from .checks import (
    _boundary_expand,
    _eps_shape,
    _gauss_ranks_alike,
    _lambda2_costs_little,
    _lambda2_lowers_pra,
    _plug_lowers,
    _pra_restores,
    _ratio_row,
    _retain_methods_leak,
    _retrain_floor,
    _sequential_round,
    _spotter1_lowest_pra,
    _spotter1_resists,
    _spotter_low_ou,
)
from .published import (
    _paper1,
    _paper_boundary_expand,
    _paper_eps,
    _paper_gauss_rank,
    _paper_lambda2,
    _paper_low_ou,
    _paper_lowest_pra,
    _paper_plug,
    _paper_pra_baselines,
    _paper_ratio,
    _paper_retain_leak,
    _paper_sequential,
    _paper_spotter1,
    _per_dataset,
    paper_table1_unit,
)

HOLDS_AT, PARTLY_AT = 0.8, 0.3


@dataclass(frozen=True)
class Claim:
    """One claim of the paper.  ``per_unit`` maps a unit to ``(value, holds)`` or ``None``."""

    id: str
    section: str  # where the paper states it
    chapter: str  # the book chapter that shows it
    statement: str  # our paraphrase
    value: str  # what ``value`` measures, with its unit
    threshold: str  # when one unit counts as holding
    family: str  # which evidence it reads: "table1", "eps", "sequential", "ratio"
    per_unit: Callable[[Any], tuple[float, bool] | None]
    paper: Callable[[], str]  # the paper's own evidence, from the shipped tables


@dataclass
class Verdict:
    claim: Claim
    status: str
    n: int
    n_hold: int
    mean: float | None
    lo: float | None
    hi: float | None
    values: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        c = self.claim
        return {
            "claim": c.id,
            "section": c.section,
            "statement": c.statement,
            "paper": c.paper(),
            "paper passes": paper_verdict(c),
            "measure": c.value,
            "holds when": c.threshold,
            "mean": self.mean,
            "95% CI": None if self.lo is None else (self.lo, self.hi),
            "holds on": f"{self.n_hold} of {self.n}",
            "verdict": self.status,
            "chapter": c.chapter,
        }


def interval(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """Mean and 95% t-interval of ``values`` (no interval for fewer than two)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return None, None, None
    m = float(v.mean())
    if len(v) < 2:
        return m, None, None
    from scipy.stats import t

    half = float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def status_of(n_hold: int, n: int) -> str:
    """The verdict rule (see module docstring)."""
    if n == 0:
        return "n/a"
    frac = n_hold / n
    return "holds" if frac >= HOLDS_AT else "partly" if frac >= PARTLY_AT else "fails"


def judge(claim: Claim, units: Iterable[Any]) -> Verdict:
    judged = [r for r in (claim.per_unit(u) for u in units) if r is not None]
    values = [float(v) for v, _ in judged]
    n_hold = sum(bool(h) for _, h in judged)
    mean, lo, hi = interval(values)
    return Verdict(claim, status_of(n_hold, len(judged)), len(judged), n_hold, mean, lo, hi, values)


def paper_verdict(claim: Claim) -> str:
    """Whether the claim's per-unit check passes on the paper's own Table 1 numbers."""
    if claim.family != "table1":
        return ""
    out = []
    for d in ("CIFAR-10", "CIFAR-100"):
        r = claim.per_unit(paper_table1_unit(d))
        out.append(f"{d}: " + ("-" if r is None else "yes" if r[1] else "no"))
    return ", ".join(out)


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "pra_restores_baselines",
        "3.2, Table 1",
        "s3_2_relearning",
        "Five shots of PRA restore the forget class of most baselines",
        "median Proto-Acc_f of the baselines (%)",
        "median >= 50%",
        "table1",
        _pra_restores,
        _per_dataset(_paper_pra_baselines),
    ),
    Claim(
        "spotter_resists_pra",
        "5.2, Table 1",
        "s5_2_main_results",
        "Spotter (lambda2 = 1) forgets, keeps retained accuracy and leaves PRA almost nothing",
        "Proto-Acc_f of Spotter (lambda2 = 1) (%)",
        "Acc_f <= 1, Proto-Acc_f <= 10, Acc_rt >= original - 2",
        "table1",
        _spotter1_resists,
        _per_dataset(_paper_spotter1),
    ),
    Claim(
        "spotter_lowest_pra",
        "5.2, Table 1",
        "s5_2_main_results",
        "Spotter (lambda2 = 1) is the strongest defence against PRA of all methods",
        "lowest baseline Proto-Acc_f minus Spotter's (points)",
        "gap >= 0",
        "table1",
        _spotter1_lowest_pra,
        _per_dataset(_paper_lowest_pra),
    ),
    Claim(
        "spotter_lowest_ou",
        "5.2, Table 1",
        "s5_2_main_results",
        "Spotter over-unlearns less than every baseline but Boundary Expand",
        "baselines other than Boundary Expand with lower OU@eps than Spotter (lambda2 = 1)",
        "none",
        "table1",
        _spotter_low_ou,
        _per_dataset(_paper_low_ou),
    ),
    Claim(
        "boundary_expand_low_ou_high_pra",
        "5.2, Table 1",
        "s5_2_main_results",
        "Boundary Expand has the lowest OU@eps of the baselines yet PRA reverses it",
        "Proto-Acc_f of Boundary Expand (%)",
        "lowest baseline OU@eps and Proto-Acc_f >= 80%",
        "table1",
        _boundary_expand,
        _per_dataset(_paper_boundary_expand),
    ),
    Claim(
        "retain_methods_leak",
        "5.2, Table 1",
        "s5_2_main_results",
        "UNSC and DELETE keep retained accuracy but leak prototype information",
        "lower Proto-Acc_f of DELETE and UNSC (%)",
        "both: Acc_r >= original - 1 and Proto-Acc_f >= 30%",
        "table1",
        _retain_methods_leak,
        _per_dataset(_paper_retain_leak),
    ),
    Claim(
        "lambda2_lowers_pra",
        "5.4, Tables 1 and 3",
        "s5_4_ablations",
        "Raising lambda2 from 0.1 to 1 lowers Proto-Acc_f",
        "Proto-Acc_f at lambda2 0.1 minus at 1 (points)",
        "difference > 0",
        "table1",
        _lambda2_lowers_pra,
        _per_dataset(_paper_lambda2),
    ),
    Claim(
        "lambda2_costs_few_points",
        "5.4, Table 3",
        "s5_4_ablations",
        "The stronger dispersion costs at most a few points of Acc_rt",
        "Acc_rt at lambda2 0.1 minus at 1 (points)",
        "difference <= 5",
        "table1",
        _lambda2_costs_little,
        _per_dataset(_paper_lambda2),
    ),
    Claim(
        "gaussian_pgd_rank_alike",
        "Appendix A, Table 4",
        "appA_gaussian_ou",
        "Gaussian and PGD neighbours rank methods alike by OU@eps",
        "Spearman correlation of the two OU@eps over methods",
        "correlation >= 0.7",
        "table1",
        _gauss_ranks_alike,
        _per_dataset(_paper_gauss_rank),
    ),
    Claim(
        "retrain_pra_floor",
        "Appendix B, Tables 1 and 5",
        "appB_pra",
        "PRA also lifts a retrained model that never saw the class (the floor any method faces)",
        "Proto-Acc_f of Retrain (%)",
        "Proto-Acc_f >= 10%",
        "table1",
        _retrain_floor,
        lambda: "; ".join(
            f"{d}: {_paper1(d)['Retrain']['proto_acc_f']:.2f}%" for d in ("CIFAR-10", "CIFAR-100")
        ),
    ),
    Claim(
        "plugin_neutralises_pra",
        "5.2, Table 2",
        "s5_2_main_results",
        "Spotter plugged into SalUn, DELETE or UNSC lowers Proto-Acc_f to near 0",
        "highest Proto-Acc_f after plugging (%)",
        "every base lower after, and all <= 10%",
        "table1",
        _plug_lowers("proto_acc_f", 10.0),
        _paper_plug("proto_acc_f"),
    ),
    Claim(
        "plugin_lowers_ou",
        "5.2, Table 2",
        "s5_2_main_results",
        "Spotter plugged into SalUn, DELETE or UNSC lowers their OU@eps",
        "highest OU@eps after plugging",
        "every base lower after",
        "table1",
        _plug_lowers("ou_pgd", None),
        _paper_plug("ou"),
    ),
    Claim(
        "ou_eps_shape",
        "5.4, Figure 5(b)",
        "s5_4_ablations",
        "Baselines' OU@eps falls as the test radius grows while Spotter's stays level",
        "median relative fall of the baselines minus Spotter's",
        "baselines fall, Spotter falls less",
        "eps",
        _eps_shape,
        _paper_eps,
    ),
    Claim(
        "sequential_stays_forgotten",
        "Appendix G, Table 9",
        "appG_sequential",
        "Sequential Spotter keeps every forgotten class forgotten and safe from PRA",
        "Proto-Acc_f per round (%)",
        "Acc_f <= 1, Proto-Acc_f <= 10, Acc_r within 2 of the original",
        "sequential",
        _sequential_round,
        _paper_sequential,
    ),
    Claim(
        "forget_ratio_holds",
        "Appendix H, Table 10",
        "appH_forget_ratio",
        "Spotter forgets 10-50% of the classes completely with low Proto-Acc_f",
        "Proto-Acc_f per fraction (%)",
        "Acc_f <= 1 and Proto-Acc_f <= 10",
        "ratio",
        _ratio_row,
        _paper_ratio,
    ),
)


def get_claim(claim_id: str) -> Claim:
    for c in CLAIMS:
        if c.id == claim_id:
            return c
    raise MuError(f"unknown claim {claim_id!r}; choose one of {[c.id for c in CLAIMS]}")


def verdicts(evidence: dict[str, list], claims: Sequence[Claim] = CLAIMS) -> list[Verdict]:
    """Judge every claim on ``evidence[claim.family]`` (a missing family gives n/a)."""
    return [judge(c, evidence.get(c.family, [])) for c in claims]


def scoreboard(vs: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [v.row() for v in vs]
