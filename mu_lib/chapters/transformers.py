"""Appendix E: Table 7, Original / Retrain / Spotter on vision transformers, with PRA on the class
token (every backbone's ``embed``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import paper
from ..experiment import RunConfig, run_many
from ..profiles import Profile
from ..report import beside_paper, metrics_frame

# the row of the paper's Table 7 each backbone is compared with
PAPER_MODEL = {"vit_s": "ViT-S", "deit_s": "DeiT-S", "vit_tiny": "ViT-S"}
COLS = ["acc_f", "acc_r", "acc_ft", "acc_rt", "ou", "proto_acc_f", "acc_r_star"]
KEYS = (
    "acc_f", "acc_r", "acc_ft", "acc_rt", "ou_pgd", "proto_acc_f", "acc_r_star", "alpha",
    "dispersion_f",
)  # fmt: skip


def runs(
    profile: Profile,
    backbones: Sequence[str] | None,
    methods: Sequence[str],
    seeds: Sequence[int],
    overrides: dict,
    device: str = "auto",
) -> tuple[pd.DataFrame, list[str]]:
    """Per-seed metrics of every (backbone, method); ``backbones`` None: the profile's."""
    backbones = list(backbones or profile.transformer_backbones)
    configs = [
        RunConfig(
            m, profile=profile.name, seed=s, backbone=b, device=device,
            overrides=dict(overrides) if m == "spotter" else {},
        )
        for b in backbones
        for m in methods
        for s in seeds
    ]  # fmt: skip
    results = run_many(configs, desc="transformer runs")
    df = metrics_frame(results, lambda r: paper.paper_name(r.config["method"]), keys=KEYS)
    df.insert(0, "backbone", [r.config["backbone"] for r in results])
    return df.rename(columns={"ou_pgd": "ou", "label": "method"}), backbones


def table7(df: pd.DataFrame) -> pd.DataFrame:
    ours = (
        df.groupby(["backbone", "method"], sort=False)[COLS + ["dispersion_f"]].mean().reset_index()
    )
    ours.insert(1, "model", ours.backbone.map(PAPER_MODEL))
    table = beside_paper(ours, paper.table(7), ["model", "method"], COLS)
    table.insert(0, "backbone", ours.backbone)
    return table


def reading(table: pd.DataFrame) -> str:
    lines = []
    for b, g in table.groupby("backbone", sort=False):
        g = g.set_index("method")
        if not {"Original", "Spotter"} <= set(g.index):
            continue
        o, s = g.loc["Original"], g.loc["Spotter"]
        r = g.loc["Retrain"] if "Retrain" in g.index else None
        drop = s["acc_rt (ours)"] - o["acc_rt (ours)"]
        line = (
            f"- **{b}** (beside the paper's {PAPER_MODEL.get(b, b)}): Spotter takes Acc_f from "
            f"{o['acc_f (ours)']:.2f}% to {s['acc_f (ours)']:.2f}% (paper {s['acc_f (paper)']:.2f}%) "
            f"and moves Acc_rt by {drop:+.2f} points (paper "
            f"{s['acc_rt (paper)'] - o['acc_rt (paper)']:+.2f}); OU@eps {s['ou (ours)']:.4f} (paper "
            f"{s['ou (paper)']:.4f}); PRA recovers {s['proto_acc_f (ours)']:.2f}% (paper "
            f"{s['proto_acc_f (paper)']:.2f}%)"
        )
        if r is not None:
            line += (
                f", against {r['proto_acc_f (ours)']:.2f}% on the retrained model (paper "
                f"{r['proto_acc_f (paper)']:.2f}%)"
            )
        floor = max(10.0, r["proto_acc_f (ours)"] if r is not None else 0.0)
        checks = {
            "forgets (Acc_f <= 5%)": s["acc_f (ours)"] <= 5,
            "keeps retained test accuracy (drop <= 2 points)": drop >= -2,
            "resists PRA (Proto-Acc_f <= 10% or no more than on the retrained model)": s[
                "proto_acc_f (ours)"
            ]
            <= floor,
        }
        line += ". " + "; ".join(f"{k}: **{'yes' if v else 'no'}**" for k, v in checks.items())
        lines.append(line + ".")
    originals = table.loc[table.method == "Original", "acc_rt (ours)"]
    lines.append(
        f"- Our original transformer reaches {originals.mean():.2f}% test accuracy on the retained "
        "classes. It is trained from scratch on a small stand-in dataset with the CNN's short "
        "schedule, so compare patterns, not levels."
    )
    return "\n".join(lines)


def paper_fit() -> str:
    """How well the paper's own transformers fit CIFAR-10 (its Table 7 originals)."""
    orig = paper.table(7).query("method == 'Original'")

    def span(col: str) -> str:
        lo, hi = round(orig[col].min()), round(orig[col].max())
        return f"about {lo}%" if lo == hi else f"{lo}-{hi}%"

    return f"{span('acc_r')} of their retained training data and {span('acc_rt')} of the test data"


def plot(table: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    x = np.arange(len(table))
    labels = [f"{b}\n{m}" for b, m in zip(table.backbone, table.method, strict=True)]
    panels = [
        ("acc_f", "Acc$_f$ (%)"),
        ("acc_r", "Acc$_r$ (%)"),
        ("proto_acc_f", "Proto-Acc$_f$ (%)"),
    ]
    for ax, (col, title) in zip(axes, panels, strict=True):
        ax.bar(x - 0.2, table[f"{col} (ours)"], 0.4, label="ours")
        ax.bar(x + 0.2, table[f"{col} (paper)"], 0.4, label="paper (CIFAR-10)", color="0.6")
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_title(title)
    handles = axes[0].get_legend_handles_labels()
    fig.legend(*handles, loc="upper center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, 1.1))
    return fig
