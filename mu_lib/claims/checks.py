"""Per-unit checks of the claims: a unit in, ``(value, holds)`` or ``None`` out.  The thresholds
live here and in each claim's ``threshold`` text only."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

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


def _have(unit: dict, *keys: str) -> bool:
    return all(k in unit for k in keys)


def _baselines(unit: dict) -> list[str]:
    return [m for m in BASELINES if m in unit]


def _rank_corr(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


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
