"""The paper's own evidence for each claim, from the tables shipped with the package."""

from __future__ import annotations

from collections.abc import Callable
from statistics import median

from .. import paper as paper_tables
from .checks import BASELINES, PLUG_BASES, _rank_corr


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


def _paper_eps() -> str:
    return "Figure 5(b): baselines' OU@eps falls with eps, Spotter's stays level (no table)"
