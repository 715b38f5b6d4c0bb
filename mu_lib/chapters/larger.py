"""Appendix D: Table 6 on larger and identity datasets (Tiny-ImageNet, CASIA-WebFace), or on the
stand-ins of profiles that cannot read them offline (the profile's dataset and digits written as an
identity folder, read back through the face loader)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import paper
from ..data import get_dataset_info, register_digits_identities
from ..experiment import RunConfig, run_many
from ..profiles import Profile
from ..report import beside_paper, metrics_frame
from ..scenarios import pick_classes

TINY, FACES = "Tiny-ImageNet (forget 10 classes)", "CASIA-WebFace (forget 500 classes)"
PAPER_ROW = {"tinyimagenet": TINY, "casia-webface": FACES}
COLS = ["acc_f", "acc_r", "ou", "proto_acc_f", "acc_r_star"]
KEYS = ("acc_f", "acc_r", "acc_ft", "acc_rt", "ou_pgd", "proto_acc_f", "acc_r_star", "alpha")
STAND_IN_FORGET = 3  # classes forgotten at once on a 10-class stand-in (Appendix H's 30% set)


def rows_spec(profile: Profile, datasets: Sequence | None) -> list[tuple[str, int, str]]:
    """(our dataset, classes to forget, the paper row it stands beside).  ``datasets`` None: the
    profile's ``larger_datasets`` when it has them, else the two stand-ins."""
    if datasets is None:
        if profile.larger_datasets:
            datasets = [[d, n] for d, n in profile.larger_datasets]
        else:
            datasets = [
                [profile.dataset, STAND_IN_FORGET, TINY],
                [register_digits_identities(), STAND_IN_FORGET, FACES],
            ]
    return [(d[0], int(d[1]), d[2] if len(d) > 2 else PAPER_ROW.get(d[0], FACES)) for d in datasets]


def runs(
    profile: Profile, spec, methods: Sequence[str], seeds: Sequence[int], device: str = "auto"
) -> tuple[pd.DataFrame, dict[str, tuple[str, int, tuple[int, ...]]]]:
    """Per-seed metrics of every (dataset, method), and per dataset (paper row, classes, forgotten)."""
    configs, row_of = [], {}
    for ds, n, paper_row in spec:
        k = get_dataset_info(ds).num_classes
        fc = pick_classes(k, n)
        configs += [
            RunConfig(m, dataset=ds, profile=profile.name, seed=s, forget_classes=fc, device=device)
            for m in methods
            for s in seeds
        ]
        row_of[ds] = (paper_row, k, fc)
    results = run_many(configs, desc="appendix D runs")
    df = metrics_frame(results, lambda r: paper.paper_name(r.config["method"]), keys=KEYS)
    df.insert(0, "our_dataset", [r.config["dataset"] for r in results])
    return df.rename(columns={"ou_pgd": "ou", "label": "method"}), row_of


def describe(row_of: dict) -> str:
    return "; ".join(
        f"{ds} ({k} classes, forgetting {len(fc)}: {list(fc)}) beside {row}"
        for ds, (row, k, fc) in row_of.items()
    )


def table6(df: pd.DataFrame, row_of: dict) -> pd.DataFrame:
    """Seed means beside the paper's Table 6 row each dataset stands beside."""
    ours = (
        df.groupby(["our_dataset", "method"], sort=False)[COLS + ["acc_ft", "acc_rt"]]
        .mean()
        .reset_index()
    )
    ours.insert(0, "dataset", ours.our_dataset.map(lambda d: row_of[d][0]))
    table = beside_paper(ours, paper.table(6), ["dataset", "method"], COLS)
    table.insert(1, "our_dataset", ours.our_dataset)
    return table.merge(
        ours[["our_dataset", "method", "acc_ft", "acc_rt"]], on=["our_dataset", "method"]
    )


def reading(table: pd.DataFrame, row_of: dict) -> str:
    lines = []
    for ds, g in table.groupby("our_dataset", sort=False):
        g = g.set_index("method")
        if not {"Original", "DELETE", "Spotter"} <= set(g.index):
            continue
        o, d, s = g.loc["Original"], g.loc["DELETE"], g.loc["Spotter"]
        lines.append(
            f"- **{ds}** (beside {row_of[ds][0]}): Acc_f after Spotter {s['acc_f (ours)']:.2f}% "
            f"(DELETE {d['acc_f (ours)']:.2f}%; paper {s['acc_f (paper)']:.2f}% / "
            f"{d['acc_f (paper)']:.2f}%). Acc_r moves by "
            f"{s['acc_r (ours)'] - o['acc_r (ours)']:+.2f} points with Spotter and "
            f"{d['acc_r (ours)'] - o['acc_r (ours)']:+.2f} with DELETE (paper "
            f"{s['acc_r (paper)'] - o['acc_r (paper)']:+.2f} / "
            f"{d['acc_r (paper)'] - o['acc_r (paper)']:+.2f}). OU@eps {s['ou (ours)']:.4f} vs "
            f"{d['ou (ours)']:.4f} (paper {s['ou (paper)']:.4f} vs {d['ou (paper)']:.4f}): "
            "Spotter over-unlearns "
            + ("less" if s["ou (ours)"] < d["ou (ours)"] else "**not less**")
            + f" than DELETE. Proto-Acc_f {s['proto_acc_f (ours)']:.2f}% vs "
            f"{d['proto_acc_f (ours)']:.2f}% (paper {s['proto_acc_f (paper)']:.2f}% vs "
            f"{d['proto_acc_f (paper)']:.2f}%): PRA recovers "
            + ("less" if s["proto_acc_f (ours)"] < d["proto_acc_f (ours)"] else "**not less**")
            + " after Spotter."
        )
    return "\n".join(lines)


def plot(table: pd.DataFrame):
    import matplotlib.pyplot as plt

    groups = list(table.groupby("our_dataset", sort=False))
    fig, axes = plt.subplots(len(groups), 3, figsize=(12, 3.0 * len(groups)), squeeze=False)
    panels = [
        ("acc_r", "Acc$_r$ (%)"),
        ("ou", "OU@$\\varepsilon$ (JS)"),
        ("proto_acc_f", "Proto-Acc$_f$ (%)"),
    ]
    for i, (ds, g) in enumerate(groups):
        x = np.arange(len(g))
        for ax, (col, title) in zip(axes[i], panels, strict=True):
            # the original and retrained models are not unlearned: no OU (the paper omits it too)
            keep = ~g.method.isin(["Original", "Retrain"]) if col == "ou" else np.ones(len(g), bool)
            ax.bar(x - 0.2, g[f"{col} (ours)"].where(keep), 0.4, label="ours")
            ax.bar(x + 0.2, g[f"{col} (paper)"].where(keep), 0.4, label="paper", color="0.6")
            ax.set_xticks(x, g.method, fontsize=7)
            ax.set_title(f"{title}: {ds}", fontsize=9)
    handles = axes[0, 0].get_legend_handles_labels()
    fig.legend(*handles, loc="upper center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, 1.05))
    return fig
