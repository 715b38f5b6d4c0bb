"""Tables (ours beside the paper's) and figures for the book.  Needs pandas and matplotlib
(the ``book`` extra); the core library does not import this module."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pandas as pd

from . import __version__
from .metrics import HEADLINE_METRICS


def figures_dir() -> Path:
    """Folder for figure files: ``$MU_FIGURES_DIR`` or ``book/generated/figures``."""
    d = Path(os.environ.get("MU_FIGURES_DIR", "book/generated/figures"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def results_dir() -> Path:
    """Folder where chapters save their result tables (read by the reproduction report)."""
    d = Path(os.environ.get("MU_RESULTS_DIR", "book/generated/results"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def show_figure(fig, name: str, caption: str | None = None):
    """Save ``fig`` as ``<figures>/<name>.png``, glue it under ``name`` and display it once."""
    import matplotlib.pyplot as plt

    path = figures_dir() / f"{name}.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    try:
        from myst_nb import glue

        glue(name, fig, display=True)
    except Exception:  # outside a notebook kernel: just display
        from IPython.display import display

        display(fig)
    plt.close(fig)
    return path


def save_results(name: str, df: pd.DataFrame, meta: dict | None = None) -> Path:
    """Persist a chapter's table (CSV + JSON metadata) for the reproduction report."""
    d = results_dir()
    df.to_csv(d / f"{name}.csv", index=False)
    (d / f"{name}.json").write_text(json.dumps(meta or {}, indent=2, default=str))
    return d / f"{name}.csv"


def provenance(profile, dataset: str | None = None, device: str | None = None, **extra) -> str:
    """One markdown line naming what produced the numbers on a page."""
    from .train import resolve_device

    name = getattr(profile, "name", profile)
    parts = [f"profile **{name}**"]
    if dataset:
        parts.append(f"dataset **{dataset}**")
    if hasattr(profile, "backbone"):
        parts.append(f"backbone **{profile.backbone}**")
    parts.append(f"device **{resolve_device(device)}**")
    for k, v in extra.items():
        parts.append(f"{k} **{v}**")
    parts.append(f"mu_lib {__version__}, torch on {platform.machine()}")
    return "Produced by " + ", ".join(parts) + "."


def metrics_frame(
    results,
    label_fn=None,
    keys=HEADLINE_METRICS,
):
    """One row per ``experiment.Result`` (label, seed and the chosen metric keys)."""
    rows = []
    for r in results:
        row = {"label": label_fn(r) if label_fn else r.config["method"], "seed": r.config["seed"]}
        row.update({k: r.metrics.get(k) for k in keys})
        rows.append(row)
    return pd.DataFrame(rows)


def mean_std(df: pd.DataFrame, by: str = "label", digits: int = 2) -> pd.DataFrame:
    """Mean and standard deviation over seeds, formatted 'mean ± std' strings per metric."""
    num = [c for c in df.columns if c not in (by, "seed") and pd.api.types.is_numeric_dtype(df[c])]
    g = df.groupby(by, sort=False)[num]
    mean, std = g.mean(), g.std(ddof=0).fillna(0.0)
    out = mean.copy().astype(object)
    for c in num:
        d = 4 if c.startswith("ou") else digits
        out[c] = [f"{m:.{d}f} ± {s:.{d}f}" for m, s in zip(mean[c], std[c], strict=True)]
    return out.reset_index()


def beside_paper(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    on: str | list[str],
    cols: list[str],
    ours_suffix: str = " (ours)",
    paper_suffix: str = " (paper)",
) -> pd.DataFrame:
    """Our numeric columns next to the paper's with the difference (ours - paper)."""
    on = [on] if isinstance(on, str) else on
    merged = ours[on + cols].merge(
        paper[on + cols], on=on, how="left", suffixes=(ours_suffix, paper_suffix)
    )
    out = merged[on].copy()
    for c in cols:
        o, p = merged[c + ours_suffix], merged[c + paper_suffix]
        out[c + ours_suffix] = o
        out[c + paper_suffix] = p
        out[c + " Δ"] = pd.to_numeric(o, errors="coerce") - pd.to_numeric(p, errors="coerce")
    return out


def style_table(df: pd.DataFrame, digits: int = 2):
    """A compact display of a result table (4 decimals for OU columns, learning rates as 3e-04,
    dashes for missing)."""
    fmt = {}
    for c in df.columns:
        if pd.api.types.is_numeric_dtype(df[c]):
            name = str(c).lower()
            if name.startswith("ou") or "ou_" in name or " ou" in name:
                fmt[c] = "{:.4f}"
            elif name == "lr" or name.endswith(" lr") or name.startswith("lr "):
                fmt[c] = "{:.0e}"  # two decimals would print 3e-4 as 0.00
            else:
                fmt[c] = "{:." + str(digits) + "f}"
    return df.style.format(fmt, na_rep="–").hide(axis="index")
