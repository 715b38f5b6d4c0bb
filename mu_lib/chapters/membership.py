"""Extension X1: membership recall (MRA) against every unlearning method, its recall table, the
label histograms and bars, and readings computed from the table (no published numbers exist)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..attacks.mra import SETTINGS, MRAHparams
from ..experiment import RunConfig
from ..labels import method_label
from ..mra_experiment import PUBLIC_SIZE, recall_experiment
from ..profiles import Profile

WANTED = (
    "retrain",
    "delete",
    "spotter",
    "random_label",
    "neggrad",
    "salun",
    "boundary_shrink",
    "unsc",
)
# (result key of the label histogram, column of the recall table)
KINDS = (
    ("unlearned", "unlearned"),
    ("distill", "plain distillation"),
    ("prior_matched", "prior-matched teacher"),
    ("mra", "MRA query-only"),
)
BAR_COLS = ["unlearned", "plain distillation", "prior-matched teacher", "MRA query-only"]
BAR_COLS.append("MRA white-box")
FORGOT_BELOW = 5.0  # % on D_f under which a method counts as having forgotten


def registered(methods: Sequence[str] | None, profile: Profile | None = None) -> list[str]:
    """The methods asked for (default ``WANTED``) that are registered; by default capped at
    ``profile.grid_cap`` (smoke: retrain and DELETE, one exact and one approximate method, so the
    test runs every cell, reading included, on 4 attacks instead of 16)."""
    from ..unlearn import METHODS

    wanted = list(methods or WANTED)
    if methods is None and profile is not None and profile.grid_cap:
        wanted = wanted[: profile.grid_cap]
    return [m for m in wanted if m in METHODS]


def public_pool(profile: Profile, public_size: int | None) -> int:
    return PUBLIC_SIZE.get(profile.name, 500) if public_size is None else int(public_size)


def run_all(profile: Profile, seed: int, methods, hp: MRAHparams, public_size) -> dict:
    """``recall_experiment`` of every method in both settings, keyed (method, setting)."""
    return {
        (m, s): recall_experiment(
            RunConfig(method=m, profile=profile.name, seed=seed), s, hp, public_size
        )
        for m in methods
        for s in SETTINGS
    }


def recall_table(res: dict, methods: Sequence[str]) -> pd.DataFrame:
    """One row per method: recall on D_f of each approach (%), gains and attack times."""
    rows = []
    for m in methods:
        q = {k: np.nan if v is None else v for k, v in res[m, "query_only"].items()}
        w = {k: np.nan if v is None else v for k, v in res[m, "white_box"].items()}
        rows.append(
            {
                "method": m,
                "unlearned": q["unlearned_acc"],
                "plain distillation": q["distill_acc"],
                "prior-matched teacher": q["prior_matched_acc"],
                "MRA query-only": q["mra_acc"],
                "MRA white-box": w["mra_acc"],
                "white-box student": w["student_acc"],
                "paper": np.nan,  # abstract only: no published numbers
                "Δ query-only − unlearned": q["mra_acc"] - q["unlearned_acc"],
                "Δ query-only − plain distillation": q["mra_acc"] - q["distill_acc"],
                "rounds (query-only)": " → ".join(f"{a:.1f}" for a in q["round_acc"]),
                "attack s (query-only / white-box)": f"{q['secs']:.0f} / {w['secs']:.0f}",
                "note": "; ".join(
                    f"{s.replace('_', '-')}: attack diverged ({r['diverged']})"
                    for s, r in (("query_only", q), ("white_box", w))
                    if isinstance(r.get("diverged"), str)
                ),
            }
        )
    return pd.DataFrame(rows).round(2)


def forget_class(res: dict, methods: Sequence[str]) -> int:
    return next(int(c) for m in methods for c in res[m, "query_only"]["per_class"])


def plot_label_hist(res: dict, methods: Sequence[str]):
    import matplotlib.pyplot as plt

    forget = forget_class(res, methods)
    ncol = min(4, len(methods))
    nrow = int(np.ceil(len(methods) / ncol))
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), sharey=True, squeeze=False
    )
    width = 0.8 / len(KINDS)
    for ax, m in zip(axes.flat, methods, strict=False):
        hist = res[m, "query_only"]["label_hist"]
        ax.set_title(method_label(m))
        if not hist:  # the attack diverged: nothing to show
            ax.text(0.5, 0.5, "attack diverged", ha="center", va="center", fontsize=8)
            continue
        classes = np.arange(len(hist["mra"]))
        for j, (key, name) in enumerate(KINDS):
            ax.bar(classes + (j - 1.5) * width, hist[key], width, label=name, color=f"C{j}")
        ax.axvspan(forget - 0.45, forget + 0.45, color="grey", alpha=0.15)
        ax.set_xticks(classes)
        ax.set_xlabel("assigned class (shaded: forgotten)")
    for ax in axes.flat[len(methods) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("share of D_f")
    fig.legend(
        *axes[0, 0].get_legend_handles_labels(),
        loc="upper center",
        ncol=len(KINDS),
        bbox_to_anchor=(0.5, 1.04),
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def plot_recall_bars(df: pd.DataFrame, forget: int):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(df)), 3.2))
    x = np.arange(len(df))
    for j, c in enumerate(BAR_COLS):
        ax.bar(x + (j - 2) * 0.16, df[c], 0.16, label=c, color=f"C{j}")
    ax.set_xticks(x, [method_label(m) for m in df.method], rotation=20)
    ax.set_ylabel(f"recall on D_f (%), class {forget}")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=len(BAR_COLS), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig


def _names(rows: pd.DataFrame) -> str:
    return ", ".join(method_label(m) for m in rows.method) or "none"


def reading(df: pd.DataFrame) -> str:
    forgot = df[df["unlearned"] < FORGOT_BELOW]
    beats_own = forgot[forgot["MRA query-only"] > forgot["unlearned"] + 10]
    beats_kd = forgot[forgot["MRA query-only"] > forgot["plain distillation"] + 10]
    wb_better = df[df["MRA white-box"] > df["MRA query-only"] + 2]
    rounds_hurt = df[df["MRA query-only"] < df["prior-matched teacher"] - 2]
    best = df.loc[df["MRA query-only"].idxmax()]
    worst = forgot.loc[forgot["MRA query-only"].idxmin()] if len(forgot) else best
    return "\n".join(
        [
            f"- {len(forgot)} of {len(df)} methods leave the unlearned model below "
            f"{FORGOT_BELOW:.0f}% on D_f. On {len(beats_own)} of them ({_names(beats_own)}), "
            "query-only MRA gets more than 10 points of recall above the model's own "
            f"predictions, and on {len(beats_kd)} more than 10 points above plain distillation.",
            f"- Plain distillation recalls at most {df['plain distillation'].max():.1f}%: a "
            "student that copies a noisy labeller copies its noise too.",
            f"- The highest query-only recall is {best['MRA query-only']:.1f}% "
            f"({method_label(best['method'])}); the lowest among the methods that forgot is "
            f"{worst['MRA query-only']:.1f}% ({method_label(worst['method'])}).",
            f"- White-box beats query-only by more than 2 points on {len(wb_better)} method(s) "
            f"({_names(wb_better)}).",
            "- Query-only MRA ends more than 2 points *below* the prior-matched teacher (our "
            f"option, no training) on {len(rounds_hurt)} method(s) ({_names(rounds_hurt)}): "
            "there the class-balance prior, which the reference attack does not have, recalls "
            "more than the reference's rounds.",
        ]
        + [
            f"- On {method_label(r.method)} the attack's own fine-tuning diverged at the "
            f"reference's learning rates ({r.note}): no recall is reported for it, which is a "
            "failed attack, not evidence that the model resists it."
            for r in df.itertuples()
            if getattr(r, "note", "")
        ]
    )


def against_abstract(df: pd.DataFrame) -> str:
    """The abstract's claim (high recall across approximate methods) checked on ``df``, and
    retraining from scratch set against the approximate methods."""
    forgot = df[df["unlearned"] < FORGOT_BELOW]
    approx = forgot[forgot.method != "retrain"]
    share = (approx["MRA query-only"] > 50).mean() if len(approx) else float("nan")
    msg = [
        f"- Query-only MRA recovers more than half of D_f for {share:.0%} of the approximate "
        f"methods that forgot (mean recall {approx['MRA query-only'].mean():.1f}% against "
        f"{approx['unlearned'].mean():.1f}% for their own predictions)."
    ]
    if "retrain" in set(df.method):
        r = df.set_index("method").loc["retrain"]
        less = r["MRA query-only"] < approx["MRA query-only"].mean()
        msg.append(
            f"- Retrain: {r['MRA query-only']:.1f}% query-only, {r['MRA white-box']:.1f}% "
            f"white-box, {r['prior-matched teacher']:.1f}% for the prior-matched teacher. "
            + (
                "Less than the approximate methods' mean: exact unlearning leaves less to recall."
                if less
                else "Not less than the approximate methods' mean: on this profile even a model "
                "that never saw the class ranks its images highest on the unused output."
            )
        )
    return "\n".join(msg)
