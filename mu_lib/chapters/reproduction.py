"""The reproduction report: every saved number that has a published counterpart, beside it, and
per table what the comparison can mean (the same setting as the paper's, or a stand-in whose
pattern only compares)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..labels import STANDS_IN, stand_ins
from ..profiles import Profile

OURS, PAPER, DIFF = " (ours)", " (paper)", " Δ"
PAPER_BACKBONE = "resnet18"


def load_tables(directory: Path) -> dict[str, tuple[pd.DataFrame, dict]]:
    """Every table a chapter saved (``report.save_results``): name -> (frame, metadata)."""
    out = {}
    for csv in sorted(Path(directory).glob("*.csv")):
        meta_path = csv.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        out[csv.stem] = (pd.read_csv(csv), meta)
    return out


def _cell(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:g}"
    return str(v)


def side_by_side(tables: dict[str, tuple[pd.DataFrame, dict]]) -> pd.DataFrame:
    """One row per (table, row, metric) with both our value and the paper's."""
    rows = []
    for name, (df, _) in tables.items():
        # the row's keys are the columns before the first paired one (``beside_paper`` puts them
        # first); columns appended after the pairs are extra measurements, not keys
        first = next((i for i, c in enumerate(df.columns) if c.endswith(OURS)), len(df.columns))
        keys = [c for c in df.columns[:first] if c != STANDS_IN]
        metrics = [c[: -len(OURS)] for c in df.columns if c.endswith(OURS)]
        for m in (m for m in metrics if m + PAPER in df.columns):
            for _, r in df.iterrows():
                rows.append(
                    {
                        "table": name,
                        "row": ", ".join(t for t in (_cell(r[k]) for k in keys) if t),
                        "metric": m,
                        "ours": pd.to_numeric(r[m + OURS], errors="coerce"),
                        "paper": pd.to_numeric(r[m + PAPER], errors="coerce"),
                        "stands in for": r.get(STANDS_IN, None),
                    }
                )
    report = pd.DataFrame(
        rows, columns=["table", "row", "metric", "ours", "paper", "stands in for"]
    )
    report["difference"] = report.ours - report.paper
    return report.dropna(subset=["paper", "ours"])


def rounded(report: pd.DataFrame) -> pd.DataFrame:
    """Four significant digits in the number columns (the interactive table shows raw values)."""
    out = report.copy()
    for c in ("ours", "paper", "difference"):
        if c in out:
            out[c] = pd.to_numeric(out[c], errors="coerce").map(
                lambda v: float(f"{v:.4g}") if pd.notna(v) else v
            )
    return out


def same_setting(profile: Profile) -> bool:
    """Whether the profile runs the paper's own datasets and backbone (numbers compare)."""
    return profile.backbone == PAPER_BACKBONE and all(
        ours == paper for paper, ours in stand_ins(profile).items()
    )


def comparability(report: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Per table: how many numbers pair up and what they can say.  In the paper's setting the
    mean |difference| means something; on a stand-in only the pattern does, measured by the
    Spearman correlation of ours and the paper's over the rows of each metric (>= 3 rows)."""
    same = same_setting(profile)
    out = []
    for table, g in report.groupby("table", sort=True):
        corr = [
            m.ours.corr(m.paper, method="spearman")
            for _, m in g.groupby("metric")
            if len(m) >= 3 and m.ours.nunique() > 1 and m.paper.nunique() > 1
        ]
        corr = [c for c in corr if not math.isnan(c)]
        row = {
            "table": table,
            "numbers": len(g),
            "comparable": "numbers" if same else "pattern only",
        }
        row["mean |Δ|"] = float(g.difference.abs().mean()) if same else None
        row["rank correlation (median over metrics)"] = (
            float(pd.Series(corr).median()) if corr else None
        )
        out.append(row)
    return pd.DataFrame(out)


def deviations(profile: Profile, metas: dict[str, dict]) -> pd.DataFrame:
    """Why our numbers differ from the paper's: the profile's choices, then each table's notes."""
    ins = stand_ins(profile)
    same = same_setting(profile)
    notes = {
        "data": ", ".join(f"{ours} for {paper}" for paper, ours in ins.items())
        + ("" if same else ": the absolute numbers are not comparable, only their pattern is."),
        "model": f"backbone `{profile.backbone}`"
        + ("" if same else " in place of ResNet-18, for a book that builds on two CPU cores."),
        "schedule": f"the original trains for {profile.train_epochs} epochs on "
        + (f"at most {profile.train_per_class}" if profile.train_per_class else "all")
        + " training images per class.",
        "hyperparameters": "every method's setting is chosen by one rule on seeds and classes the "
        "book does not report (the tuning protocol page); they were not tuned to match the paper.",
        "PRA form": "unless a table says otherwise, PRA uses the cosine prototype form (as the "
        "paper) with 5 shots, and alpha is the strongest attack within 1 point of Acc_r.",
    }
    for name, meta in metas.items():
        for key in ("stand_in", "deviation", "note"):
            if meta.get(key):
                notes[f"{name}: {key}"] = meta[key]
    return pd.DataFrame({"deviation": list(notes), "reason": list(notes.values())})
