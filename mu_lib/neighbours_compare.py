"""OU@eps under the paper's and the authors' evaluation neighbours, and whether the ranking of
methods changes between them (``RunConfig.neighbours``, see ``mu_lib/perturb.py``).

The unlearned models come from the cache (the same runs as the chapters' tables); only the
neighbours differ, so each extra column costs one forward pass per method.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from scipy.stats import kendalltau, spearmanr

from .experiment import RunConfig, ou, unlearned_model
from .labels import method_label

SETTINGS = {"paper": "paper's text", "authors": "authors' notebook"}
KINDS = {"pgd": "PGD", "gauss": "Gaussian"}


def column(kind: str, setting: str) -> str:
    return f"OU@eps {KINDS[kind]} ({SETTINGS[setting]})"


def method_items(methods: Sequence[str], base: RunConfig) -> list[tuple[str, RunConfig]]:
    """(label, config) per method on ``base``'s profile, seed and forget classes, at each method's
    default settings (Spotter with lambda2 = 1, Table 4's row): the runs of Table 1's default view."""
    items = []
    for m in methods:
        over = {"lambda2": 1.0} if m == "spotter" else {}
        lab = method_label(m, lambda2=1.0 if m == "spotter" else None)
        items.append((lab, base.replace(method=m, overrides=over)))
    return items


def ou_both(items: Sequence[tuple[str, RunConfig]]) -> pd.DataFrame:
    """One row per (label, config): OU@eps (JS) with PGD and Gaussian neighbours, each under the
    paper's and the authors' generators."""
    rows = []
    for lab, cfg in items:
        model, _, _, _ = unlearned_model(cfg)
        row = {"method": lab}
        for setting in SETTINGS:
            c = cfg.replace(neighbours=setting)
            for kind in KINDS:
                row[column(kind, setting)] = ou(c, model, kind)
        rows.append(row)
    return pd.DataFrame(rows)


def ranking_change(table: pd.DataFrame, kind: str = "pgd") -> dict:
    """Rank agreement of the methods' OU@eps (``kind``) between the two neighbour settings."""
    a, b = table[column(kind, "paper")], table[column(kind, "authors")]
    ra, rb = a.rank(method="min"), b.rank(method="min")
    n = len(table)
    rho = float(spearmanr(a, b).statistic) if n > 2 else float("nan")
    tau = float(kendalltau(a, b).statistic) if n > 2 else float("nan")
    return {
        "kind": KINDS[kind],
        "methods": n,
        "spearman": rho,
        "kendall": tau,
        "moved": int((ra != rb).sum()),
        "lowest_paper": table.method[a.idxmin()],
        "lowest_authors": table.method[b.idxmin()],
    }


def ranking_sentence(table: pd.DataFrame, kind: str = "pgd") -> str:
    """One sentence, chosen from the numbers, on whether the ranking of methods changes."""
    r = ranking_change(table, kind)
    if r["moved"] == 0:
        verdict = "does not change"
    elif r["spearman"] >= 0.8:
        verdict = "changes little"
    elif r["spearman"] >= 0.4:
        verdict = "changes noticeably"
    else:
        verdict = "changes a lot"
    best = (
        f"{r['lowest_paper']} has the lowest OU@eps under both"
        if r["lowest_paper"] == r["lowest_authors"]
        else f"the lowest OU@eps moves from {r['lowest_paper']} to {r['lowest_authors']}"
    )
    return (
        f"With {r['kind']} neighbours, the ranking of the {r['methods']} methods by OU@eps "
        f"{verdict} between the paper's and the authors' generators (Spearman ρ = "
        f"{r['spearman']:.2f}, Kendall τ = {r['kendall']:.2f}; {r['moved']} of {r['methods']} "
        f"methods change rank); {best}."
    )
