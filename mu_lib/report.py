"""Tables (ours beside the paper's) and figures for the book.  Needs pandas and matplotlib
(the ``book`` extra); the core library does not import this module."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pandas as pd

from . import __version__
from .chapter_reuse import note_written
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


def show_figure(fig, name: str, caption: str | None = None) -> None:
    """Save ``fig`` as ``<figures>/<name>.png``, glue it under ``name`` and display it once.
    Returns nothing, so a chapter's last line prints no path."""
    import matplotlib.pyplot as plt

    path = figures_dir() / f"{name}.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    note_written(path)
    try:
        from myst_nb import glue

        glue(name, fig, display=True)
    except Exception:  # outside a notebook kernel: just display
        from IPython.display import display

        display(fig)
    plt.close(fig)


def code_version() -> str:
    """``git describe --always --dirty`` of the checkout the library runs from, else ``unknown``."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def result_provenance(meta: dict) -> dict:
    """What produced a saved table: profile, real datasets (and the paper's they stand in for),
    seeds, library version and commit, torch version."""
    import torch

    from .labels import dataset_label, stand_ins
    from .profiles import get_profile

    prof = get_profile(meta.get("profile"))
    out = {
        "profile": prof.name,
        "datasets": {"ours": dataset_label(prof.dataset), "stands in for": "CIFAR-10"},
        "datasets_many": {"ours": dataset_label(prof.dataset_many), "stands in for": "CIFAR-100"},
        "stand_ins": stand_ins(prof),
        "backbone": prof.backbone,
        "mu_lib": __version__,
        "commit": code_version(),
        "torch": torch.__version__,
    }
    if meta.get("dataset"):
        out["dataset"] = dataset_label(meta["dataset"])
    for k in ("seed", "seeds"):
        if k in meta:
            out[k] = meta[k]
    return out


def save_results(name: str, df: pd.DataFrame, meta: dict | None = None) -> None:
    """Persist a chapter's table (CSV + JSON metadata) for the reproduction report.  The CSV
    names the real dataset beside the paper's it stands in for (``labels.relabel_frame``); the
    JSON carries ``provenance`` (profile, datasets, seeds, version, commit)."""
    from .labels import relabel_frame

    meta = dict(meta or {})
    meta["provenance"] = result_provenance(meta)
    d = results_dir()
    relabel_frame(df, meta["provenance"]["profile"]).to_csv(d / f"{name}.csv", index=False)
    (d / f"{name}.json").write_text(json.dumps(meta, indent=2, default=str))
    note_written(d / f"{name}.csv", d / f"{name}.json")


def provenance(profile, dataset: str | None = None, device: str | None = None, **extra) -> str:
    """One markdown line naming what produced the numbers on a page."""
    from .labels import dataset_label, stand_ins
    from .util import resolve_device

    name = getattr(profile, "name", profile)
    parts = [f"profile **{name}**"]
    if dataset:
        # reversed: where one dataset stands in for both columns (smoke), it is the CIFAR-10 one
        pairs = reversed(stand_ins(profile).items()) if hasattr(profile, "name") else []
        paper_of = {v: k for k, v in pairs}
        shown = []
        for d in str(dataset).split(" / "):
            real = dataset_label(d)
            paper = paper_of.get(real)
            shown.append(real if paper in (None, real) else f"{real} (stands in for {paper})")
        parts.append(f"dataset **{' / '.join(shown)}**")
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


def ci95_halfwidth(std: float, n: int) -> float:
    """Half-width of the t-based 95% interval of a mean of ``n`` values with sample std ``std``."""
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1) * std / n**0.5) if n > 1 else float("nan")


def mean_std(df: pd.DataFrame, by: str = "label", digits: int = 2) -> pd.DataFrame:
    """Mean over seeds per metric, as strings: 'mean ± h' with h the half-width of a 95% t
    interval and a column ``n`` when more than one seed ran; the plain mean when one did (a
    '± 0.00' would claim a precision one run cannot show)."""
    num = [c for c in df.columns if c not in (by, "seed") and pd.api.types.is_numeric_dtype(df[c])]
    g = df.groupby(by, sort=False)[num]
    mean, std, count = g.mean(), g.std(ddof=1), g.count()
    out = mean.copy().astype(object)
    several = bool((count.max(axis=1) > 1).any()) if len(count) else False
    for c in num:
        d = 4 if c.startswith("ou") else digits
        cells = []
        for m, s, n in zip(mean[c], std[c], count[c], strict=True):
            if pd.isna(m):
                cells.append("–")
            elif n > 1:
                cells.append(f"{m:.{d}f} ± {ci95_halfwidth(s, int(n)):.{d}f}")
            else:
                cells.append(f"{m:.{d}f}")
        out[c] = cells
    if several:
        out.insert(0, "n", count.max(axis=1).astype(int))
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


# Columns that hold counts (printed without decimals even when stored as floats).
INTEGER_COLUMNS = {"n", "N", "shots", "k", "seed", "seeds", "count", "epochs", "round", "classes"}


def interactive_table(df: pd.DataFrame, page_length: int = 25):
    """A long table the reader can sort and filter (itables, with its JavaScript embedded in the
    page, so it works offline), carrying a static copy that shows where JavaScript does not run;
    the plain styled table where itables is not installed.  Use it once per page: each call
    embeds the DataTables bundle."""
    try:
        from itables import javascript as itj
        from itables import options
    except ImportError:
        return df.style.hide(axis="index")
    from IPython.display import HTML

    table = itj.to_html_datatable(
        df, connected=False, pageLength=page_length, showIndex=False, classes="display compact"
    )
    return HTML(itj.generate_init_offline_itables_html(options.dt_bundle) + table)


def style_table(df: pd.DataFrame, digits: int = 2, profile=None):
    """A compact display of a result table (4 decimals for OU columns, learning rates as 3e-04,
    whole numbers as integers, dashes for missing; methods named by ``labels.method_label`` and,
    given ``profile``, the real dataset beside the paper's it stands in for)."""
    from .labels import relabel_frame

    df = relabel_frame(df, profile)
    fmt = {}
    for c in df.columns:
        if pd.api.types.is_numeric_dtype(df[c]):
            name = str(c).lower()
            if name.startswith("ou") or "ou_" in name or " ou" in name:
                fmt[c] = "{:.4f}"
            elif name == "lr" or name.endswith(" lr") or name.startswith("lr "):
                fmt[c] = "{:.0e}"  # two decimals would print 3e-4 as 0.00
            elif pd.api.types.is_integer_dtype(df[c]) or name in INTEGER_COLUMNS:
                fmt[c] = "{:.0f}"  # counts and shot numbers: "10", not "10.00"
            else:
                fmt[c] = "{:." + str(digits) + "f}"
    df, fmt = _group_beside_paper(df, fmt)
    return df.style.format(fmt, na_rep="–").hide(axis="index")


_SIDES = ((" (ours)", "ours"), (" (paper)", "paper"), (" Δ", "Δ"))


def _group_beside_paper(df: pd.DataFrame, fmt: dict) -> tuple[pd.DataFrame, dict]:
    """A header row grouping each metric's ours / paper / Δ columns (``beside_paper``'s layout):
    the metric's name once over its three columns, instead of it repeated in every header."""
    if not any(str(c).endswith(_SIDES[0][0]) for c in df.columns):
        return df, fmt
    names = {}
    for c in df.columns:
        side = next(((str(c)[: -len(s)], name) for s, name in _SIDES if str(c).endswith(s)), None)
        names[c] = side or (str(c), "")
    out = df.copy()
    out.columns = pd.MultiIndex.from_tuples([names[c] for c in df.columns])
    return out, {names[c]: f for c, f in fmt.items()}
