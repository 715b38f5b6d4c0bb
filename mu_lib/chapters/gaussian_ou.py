"""Appendix A: Table 4, OU@eps with PGD and with Gaussian neighbours for every method, and whether
the two rank the methods alike (ours and, from its Table 4, the paper's).  The runs are Table 1's
default-protocol runs (Spotter at lambda2 = 1), served from the cache."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .. import paper
from ..main_results import Group, configs, method_rows, run_rows
from ..report import beside_paper

COLS = ["ou_pgd", "ou_gaussian"]
RANK_OK = 0.7  # a Spearman correlation at least this counts as "ranks alike"


def runs(
    groups: dict[str, Group], methods: Sequence[str], device: str = "auto"
) -> tuple[pd.DataFrame, list]:
    """Per-seed OU@eps (PGD and Gaussian) of every method in each column group, and the
    (label, group, config) items that produced them."""
    items = []
    for g in groups.values():
        rows = method_rows(methods, (1.0,), g.profile, "default")
        items += configs(rows, g, device=device)
    frame = run_rows(items, "table 4").rename(columns={"ou_gauss": "ou_gaussian"})
    frame["method"] = frame["method"].str.replace(r"Spotter \(lambda2=1\)", "Spotter", regex=True)
    return frame[["method", "dataset", "seed", *COLS]], items


def table4(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """Seed means of one column group beside the paper's Table 4 rows of that dataset."""
    ours = frame[frame.dataset == group].groupby("method", sort=False)[COLS].mean().reset_index()
    ref = paper.table(4).query("dataset == @group")
    return beside_paper(ours, ref, "method", COLS)


def _rho(a, b) -> float:
    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def rank_correlations(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    out = []
    for group, t in tables.items():
        ref = paper.table(4).query("dataset == @group")
        paired = t.dropna(subset=["ou_pgd (paper)"])
        out.append(
            {
                "dataset": group,
                "methods (ours)": len(t),
                "Spearman PGD vs Gaussian (ours)": _rho(
                    t["ou_pgd (ours)"], t["ou_gaussian (ours)"]
                ),
                "Spearman PGD vs Gaussian (paper)": _rho(ref.ou_pgd, ref.ou_gaussian),
                "methods (paper)": len(ref),
                "Spearman ours vs paper (PGD-OU)": _rho(
                    paired["ou_pgd (ours)"], paired["ou_pgd (paper)"]
                ),
            }
        )
    return pd.DataFrame(out)


def reading(corr: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> str:
    lines = []
    for _, r in corr.iterrows():
        ours = r["Spearman PGD vs Gaussian (ours)"]
        lines.append(
            f"- {r['dataset']} column: our rank correlation is {ours:.2f} against the paper's "
            f"{r['Spearman PGD vs Gaussian (paper)']:.2f} ({'also high' if ours >= RANK_OK else 'lower'}); "
            f"our PGD-OU ranking against the paper's: {r['Spearman ours vs paper (PGD-OU)']:.2f}."
        )
        t = tables[r["dataset"]]
        ref = paper.table(4).query("dataset == @r.dataset")
        lines.append(
            f"  Gaussian-OU exceeds PGD-OU for {int((t['ou_gaussian (ours)'] > t['ou_pgd (ours)']).sum())} "
            f"of {len(t)} methods here (paper: {int((ref.ou_gaussian > ref.ou_pgd).sum())} of {len(ref)})."
        )
    holds = bool(np.all(corr["Spearman PGD vs Gaussian (ours)"] >= RANK_OK))
    lines.append(
        "\nThe paper's conclusion, that the two neighbourhoods give consistent rankings, "
        + (
            "holds here as well."
            if holds
            else "does not hold in every column here; see the table above."
        )
    )
    return "\n".join(lines)
