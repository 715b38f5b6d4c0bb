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
from statistics import median
from typing import Any

import numpy as np

from . import MuError
from . import paper as paper_tables

HOLDS_AT, PARTLY_AT = 0.8, 0.3

# Table 1's baselines (every method of the paper that is not Original, Retrain or Spotter).
BASELINES = (
    "random_label",
    "neggrad",
    "boundary_shrink",
    "boundary_expand",
    "salun",
    "l2ul",
    "delete",
    "fisher",
    "unsc",
)
PLUG_BASES = ("salun", "delete", "unsc")  # Table 2


@dataclass(frozen=True)
class Variant:
    """One row of evidence: a method, optionally plugged into a base, with overrides."""

    key: str
    method: str
    base: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()


SPOTTER_01 = Variant("spotter_l01", "spotter", overrides=(("lambda2", 0.1),))
SPOTTER_1 = Variant("spotter_l1", "spotter", overrides=(("lambda2", 1.0),))
TABLE1_VARIANTS = (
    Variant("original", "original"),
    *(Variant(m, m) for m in BASELINES),
    SPOTTER_01,
    SPOTTER_1,
)
RETRAIN = Variant("retrain", "retrain")
PLUGGED = tuple(Variant(f"{b}+spotter", "spotter", base=b) for b in PLUG_BASES)


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


# ----------------------------------------------------------------------------- unit helpers


def _have(unit: dict, *keys: str) -> bool:
    return all(k in unit for k in keys)


def _baselines(unit: dict) -> list[str]:
    return [m for m in BASELINES if m in unit]


def _rank_corr(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


# ----------------------------------------------------------------------------- paper evidence


def _paper1(dataset: str) -> dict[str, dict]:
    return {r["method"]: r for r in paper_tables.table_rows(1) if r["dataset"] == dataset}


def _paper_baselines(dataset: str) -> dict[str, dict]:
    rows = _paper1(dataset)
    return {m: rows[paper_tables.PAPER_NAMES[m]] for m in BASELINES}


def _per_dataset(fn: Callable[[str], str]) -> Callable[[], str]:
    return lambda: "; ".join(f"{d}: {fn(d)}" for d in ("CIFAR-10", "CIFAR-100"))


def _paper_pra_baselines(d: str) -> str:
    b = _paper_baselines(d)
    return f"median baseline Proto-Acc_f {median(r['proto_acc_f'] for r in b.values()):.1f}%"


def _paper_spotter1(d: str) -> str:
    r = _paper1(d)["Spotter (lambda2=1)"]
    o = _paper1(d)["Original"]
    return (
        f"Acc_f {r['acc_f']:.2f}, Proto-Acc_f {r['proto_acc_f']:.2f}, "
        f"Acc_rt {r['acc_rt'] - o['acc_rt']:+.2f} vs original"
    )


def _paper_lowest_pra(d: str) -> str:
    b = _paper_baselines(d)
    best = min(b, key=lambda m: b[m]["proto_acc_f"])
    s = _paper1(d)["Spotter (lambda2=1)"]["proto_acc_f"]
    return f"Spotter {s:.2f}% vs best baseline {b[best]['method']} {b[best]['proto_acc_f']:.2f}%"


def _paper_low_ou(d: str) -> str:
    b = _paper_baselines(d)
    s = _paper1(d)["Spotter (lambda2=1)"]["ou"]
    below = [r["method"] for r in b.values() if r["ou"] < s]
    return f"baselines below Spotter (lambda2=1): {', '.join(below) or 'none'}"


def _paper_lambda2(d: str) -> str:
    r = _paper1(d)
    a, b = r["Spotter (lambda2=0.1)"], r["Spotter (lambda2=1)"]
    return (
        f"Proto-Acc_f {a['proto_acc_f']:.2f} -> {b['proto_acc_f']:.2f}, "
        f"Acc_rt {a['acc_rt']:.2f} -> {b['acc_rt']:.2f}"
    )


def _paper_gauss_rank(d: str) -> str:
    rows = [r for r in paper_tables.table_rows(4) if r["dataset"] == d]
    return f"rank correlation {_rank_corr([r['ou_pgd'] for r in rows], [r['ou_gaussian'] for r in rows]):.2f}"


def _paper_boundary_expand(d: str) -> str:
    b = _paper_baselines(d)["boundary_expand"]
    return f"OU@eps {b['ou']:.4f}, Proto-Acc_f {b['proto_acc_f']:.2f}%"


def _paper_retain_leak(d: str) -> str:
    b = _paper_baselines(d)
    return ", ".join(
        f"{b[m]['method']} Acc_r {b[m]['acc_r']:.2f} / Proto-Acc_f {b[m]['proto_acc_f']:.2f}"
        for m in ("delete", "unsc")
    )


def _paper_plug(what: str) -> Callable[[], str]:
    def text() -> str:
        rows = paper_tables.table_rows(2)
        return "; ".join(
            f"{r['method']} ({r['dataset']}) {r[what + '_before']:.4g} -> {r[what + '_after']:.4g}"
            for r in rows
            if r["dataset"] == "CIFAR-10"
        )

    return text


def _paper_sequential() -> str:
    rows = paper_tables.table_rows(9)
    return (
        f"{len(rows)} rounds: max Acc_f {max(r['acc_f'] for r in rows):.2f}, "
        f"max Proto-Acc_f {max(r['proto_acc_f'] for r in rows):.2f}, "
        f"min Acc_r {min(r['acc_r'] for r in rows):.2f}"
    )


def _paper_ratio() -> str:
    rows = paper_tables.table_rows(10)
    return ", ".join(
        f"{r['forget_fraction']}: Acc_f {r['acc_f']:.2f} / Proto-Acc_f {r['proto_acc_f']:.2f}"
        for r in rows
    )


def paper_table1_unit(dataset: str) -> dict[str, dict]:
    """The paper's own Table 1 (+ Table 4's Gaussian OU, Table 2's plug-ins) as one unit, so that
    every Table 1 claim is also checked against the paper's published numbers."""
    rows = _paper1(dataset)
    gauss = {
        r["method"]: r["ou_gaussian"] for r in paper_tables.table_rows(4) if r["dataset"] == dataset
    }
    keys = {v: k for k, v in paper_tables.PAPER_NAMES.items()}
    keys.update({"Spotter (lambda2=0.1)": "spotter_l01", "Spotter (lambda2=1)": "spotter_l1"})
    unit = {}
    for name, r in rows.items():
        if name in keys:
            unit[keys[name]] = {
                **r,
                "ou_pgd": r["ou"] or 0.0,
                "ou_gauss": gauss.get(name, r["ou"] or 0.0),
            }
    for r in paper_tables.table_rows(2):
        base = r["method"].split(" + ")[0]
        if r["dataset"] == dataset and base in keys and keys[base] in PLUG_BASES:
            unit[f"{keys[base]}+spotter"] = {
                "proto_acc_f": r["proto_acc_f_after"],
                "ou_pgd": r["ou_after"],
            }
    return unit


def paper_verdict(claim: Claim) -> str:
    """Whether the claim's per-unit check passes on the paper's own Table 1 numbers."""
    if claim.family != "table1":
        return ""
    out = []
    for d in ("CIFAR-10", "CIFAR-100"):
        r = claim.per_unit(paper_table1_unit(d))
        out.append(f"{d}: " + ("-" if r is None else "yes" if r[1] else "no"))
    return ", ".join(out)


def _paper_eps() -> str:
    return "Figure 5(b): baselines' OU@eps falls with eps, Spotter's stays level (no table)"


# ----------------------------------------------------------------------------- per-unit checks
# Table 1 units: {variant key: metrics dict}.  Thresholds live in the claim's ``threshold`` text
# and in these functions only.


def _pra_restores(u: dict):
    bs = _baselines(u)
    if len(bs) < 3:
        return None
    m = median(u[b]["proto_acc_f"] for b in bs)
    return m, m >= 50.0


def _spotter1_resists(u: dict):
    if not _have(u, "spotter_l1", "original"):
        return None
    s, o = u["spotter_l1"], u["original"]
    ok = s["acc_f"] <= 1.0 and s["proto_acc_f"] <= 10.0 and s["acc_rt"] >= o["acc_rt"] - 2.0
    return s["proto_acc_f"], ok


def _spotter1_lowest_pra(u: dict):
    bs = _baselines(u)
    if not bs or "spotter_l1" not in u:
        return None
    gap = min(u[b]["proto_acc_f"] for b in bs) - u["spotter_l1"]["proto_acc_f"]
    return gap, gap >= 0.0


def _spotter_low_ou(u: dict):
    bs = [b for b in _baselines(u) if b != "boundary_expand"]
    if not bs or "spotter_l1" not in u:
        return None
    below = sum(u[b]["ou_pgd"] < u["spotter_l1"]["ou_pgd"] for b in bs)
    return float(below), below == 0


def _lambda2_lowers_pra(u: dict):
    if not _have(u, "spotter_l01", "spotter_l1"):
        return None
    d = u["spotter_l01"]["proto_acc_f"] - u["spotter_l1"]["proto_acc_f"]
    return d, d > 0.0


def _lambda2_costs_little(u: dict):
    if not _have(u, "spotter_l01", "spotter_l1"):
        return None
    d = u["spotter_l01"]["acc_rt"] - u["spotter_l1"]["acc_rt"]
    return d, d <= 5.0


def _gauss_ranks_alike(u: dict):
    ms = [m for m in (*BASELINES, "spotter_l01", "spotter_l1") if m in u]
    if len(ms) < 4:
        return None
    r = _rank_corr([u[m]["ou_pgd"] for m in ms], [u[m]["ou_gauss"] for m in ms])
    return r, r >= 0.7


def _boundary_expand(u: dict):
    bs = _baselines(u)
    if "boundary_expand" not in bs or len(bs) < 3:
        return None
    be = u["boundary_expand"]
    lowest = be["ou_pgd"] <= min(u[b]["ou_pgd"] for b in bs)
    return be["proto_acc_f"], lowest and be["proto_acc_f"] >= 80.0


def _retain_methods_leak(u: dict):
    if not _have(u, "delete", "unsc", "original"):
        return None
    o = u["original"]
    ok = all(
        u[m]["acc_r"] >= o["acc_r"] - 1.0 and u[m]["proto_acc_f"] >= 30.0
        for m in ("delete", "unsc")
    )
    return min(u[m]["proto_acc_f"] for m in ("delete", "unsc")), ok


def _plug_lowers(metric: str, bound: float | None):
    def check(u: dict):
        pairs = [(b, f"{b}+spotter") for b in PLUG_BASES if _have(u, b, f"{b}+spotter")]
        if not pairs:
            return None
        after = [u[p][metric] for _, p in pairs]
        ok = all(u[p][metric] < u[b][metric] for b, p in pairs)
        if bound is not None:
            ok = ok and max(after) <= bound
        return max(after), ok

    return check


def _retrain_floor(u: dict):
    if "retrain" not in u:
        return None
    p = u["retrain"]["proto_acc_f"]
    return p, p >= 10.0


def _eps_shape(u: dict):
    """Eps units: {variant: {eps: ou_pgd}}.  Baselines fall from the smallest to the largest eps
    by more (relative) than Spotter (lambda2 = 1) does."""
    if "spotter_l1" not in u:
        return None
    bs = [b for b in PLUG_BASES if b in u]
    if not bs:
        return None

    def rel_drop(curve: dict) -> float:
        e = sorted(curve)
        return (curve[e[0]] - curve[e[-1]]) / max(curve[e[0]], 1e-12)

    base_drop = median(rel_drop(u[b]) for b in bs)
    spot_drop = rel_drop(u["spotter_l1"])
    return base_drop - spot_drop, base_drop > 0 and spot_drop < base_drop


def _sequential_round(row: dict):
    ok = row["acc_f"] <= 1.0 and row["proto_acc_f"] <= 10.0 and row["acc_r_drop"] <= 2.0
    return row["proto_acc_f"], ok


def _ratio_row(row: dict):
    ok = row["acc_f"] <= 1.0 and row["proto_acc_f"] <= 10.0
    return row["proto_acc_f"], ok


# ----------------------------------------------------------------------------- the registry

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


# ----------------------------------------------------------------------------- evidence


def _config(v: Variant, profile: str, seed: int, cls: int, device: str, **kw):
    from .experiment import RunConfig

    return RunConfig(
        method=v.method,
        base=v.base,
        overrides=dict(v.overrides),
        profile=profile,
        seed=seed,
        forget_classes=(cls,),
        device=device,
        **kw,
    )


def table1_units(
    pairs: Sequence[tuple[int, int]],
    profile: str | None = None,
    retrain: bool = False,
    plugged: bool = True,
    device: str = "auto",
) -> list[dict[str, dict]]:
    """One unit per (seed, forget class): every Table 1 variant's metrics, through the cache."""
    from .experiment import run
    from .train import progress

    variants = [*TABLE1_VARIANTS, *(PLUGGED if plugged else ()), *((RETRAIN,) if retrain else ())]
    jobs = [(p, v) for p in pairs for v in variants]
    units: dict[tuple[int, int], dict] = {p: {} for p in pairs}
    for (seed, cls), v in progress(jobs, desc="claims evidence", total=len(jobs)):
        units[seed, cls][v.key] = run(_config(v, profile, seed, cls, device)).metrics
    return [units[p] for p in pairs]


def eps_units(
    pairs: Sequence[tuple[int, int]],
    eps_grid: Sequence[float] = (0.01, 0.03, 0.1, 0.3),
    profile: str | None = None,
    device: str = "auto",
) -> list[dict[str, dict[float, float]]]:
    """One unit per pair: OU@eps (PGD) at each test radius for the plug bases and Spotter."""
    from .experiment import run
    from .train import progress

    variants = [*(Variant(b, b) for b in PLUG_BASES), SPOTTER_1]
    jobs = [(p, v, e) for p in pairs for v in variants for e in eps_grid]
    units: dict[tuple[int, int], dict] = {p: {v.key: {} for v in variants} for p in pairs}
    for (seed, cls), v, e in progress(jobs, desc="claims eps", total=len(jobs)):
        res = run(_config(v, profile, seed, cls, device, eval_eps=float(e)))
        units[seed, cls][v.key][float(e)] = res.metrics["ou_pgd"]
    return [units[p] for p in pairs]


def sequential_units(rows: Sequence[dict], original_acc_r: float) -> list[dict]:
    """Rounds of :func:`mu_lib.scenarios.sequential` as units (Acc_r drop against the original)."""
    return [{**r, "acc_r_drop": original_acc_r - r["acc_r"]} for r in rows]


def scoreboard(vs: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [v.row() for v in vs]


def scenario_units(
    profile: str | None, seeds: Sequence[int], rounds: int | None = None, device: str = "auto"
) -> dict[str, list[dict]]:
    """Sequential rounds and forget-ratio fractions of Spotter (lambda1 0.7, lambda2 1), the same
    configurations as the Appendix G and H chapters, so their cached runs are shared."""
    from .experiment import RunConfig, run
    from .profiles import get_profile
    from .scenarios import forget_ratio, non_default_overrides, sequential

    p = get_profile(profile)
    dataset = p.claims_dataset
    over = non_default_overrides("spotter", {"lambda1": 0.7, "lambda2": 1.0})
    seq, ratio = [], []
    for s in seeds:
        cfg = RunConfig(
            "spotter", dataset=dataset, profile=p.name, seed=s, overrides=over, device=device
        )
        acc_r = run(cfg.replace(method="original", overrides={})).metrics["acc_r"]
        seq += sequential_units(sequential(cfg, rounds), acc_r)
        ratio += forget_ratio(cfg)
    return {"sequential": seq, "ratio": ratio}


def evidence(
    profile: str | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    eps_pairs: int = 3,
    retrain: bool = False,
    scenario_seeds: Sequence[int] | None = None,
    device: str = "auto",
) -> dict[str, list]:
    """Every family of evidence for :func:`verdicts` (None: the profile's pairs and seeds)."""
    from .profiles import get_profile

    p = get_profile(profile)
    pairs = list(pairs) if pairs is not None else p.claims_pairs()
    ev = {
        "table1": table1_units(pairs, p.name, retrain=retrain, device=device),
        "eps": eps_units(pairs[:eps_pairs], profile=p.name, device=device),
    }
    seeds = list(scenario_seeds) if scenario_seeds is not None else p.chapter_seeds()
    ev.update(scenario_units(p.name, seeds, device=device))
    return ev
