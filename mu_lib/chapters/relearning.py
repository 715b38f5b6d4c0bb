"""Section 3.2: Figure 1 (UMAP of unlearned features) and Figure 2 (fine-tuning relearning vs PRA
under the same stealth budget), with a reading that cites the paper's Table 1."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .. import paper
from ..experiment import RunConfig, split_for
from ..profiles import Profile

MODELS = (("original", {}), ("retrain", {}), ("delete", {}), ("spotter", {"lambda2": 1.0}))


def configs(base: RunConfig) -> list[RunConfig]:
    return [base.replace(method=m, overrides=o) for m, o in MODELS]


def usable_shots(base: RunConfig, shots: Sequence[int]) -> tuple[int, ...]:
    """The shot counts the forget set can supply."""
    n_forget = len(split_for(base).forget_train[1]) // len(base.forget_classes)
    return tuple(n for n in shots if n <= n_forget)


def umap_points(profile: Profile, per_class: int) -> int:
    return min(per_class, profile.umap_cap) if profile.umap_cap else per_class


def plot_figure2(curves: pd.DataFrame, shots: Sequence[int]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    panels = [
        (axes[0], "relearn acc_f", "(a) fine-tuning on N shots (Acc_r -1 at most)"),
        (axes[1], "PRA proto_acc_f", "(b) PRA with N shots (Acc_r -1 at most)"),
    ]
    for ax, col, title in panels:
        for (name, g), mark in zip(curves.groupby("method", sort=False), "osD^v", strict=False):
            ax.plot(g.N, g[col], marker=mark, alpha=0.8, label=name)  # markers: lines at 0 overlap
        ax.set_xscale("log")
        ax.set_xticks(list(shots), [str(n) for n in shots])  # the N that ran, not 10^0, 10^1
        ax.minorticks_off()
        ax.set_xlabel("N forget examples")
        ax.set_title(title)
    axes[0].set_ylabel("accuracy on the forget set (%)")
    axes[1].legend(fontsize=8)
    return fig


def reading(curves: pd.DataFrame, shots: Sequence[int]) -> str:
    k = 5 if 5 in shots else shots[-1]
    at = curves[curves.N == k].set_index("method")
    lines = [f"With N = {k} shots:", ""]
    for m, r in at.iterrows():
        lines.append(
            f"* **{m}**: Acc_f {r['unlearned acc_f']:.1f}% → fine-tuned {r['relearn acc_f']:.1f}% "
            f"(lr {r['relearn lr']:g}, Acc_r {r['unlearned acc_r']:.1f} → {r['relearn acc_r']:.1f}%), "
            f"PRA {r['PRA proto_acc_f']:.1f}% (Acc*_r {r['PRA acc_r_star']:.1f}%, α = {r['PRA alpha']:.1f})"
        )
    if "DELETE" in at.index:
        d = at.loc["DELETE"]
        ref = paper.table(1).query("dataset == 'CIFAR-10'").set_index("method").loc["DELETE"]
        cited = f"{ref.acc_f:.0f} → {ref.proto_acc_f:.0f}% on CIFAR-10"
        lines.append("")
        lines.append(
            (
                f"PRA brings DELETE's forget class back well above its unlearned accuracy, as in "
                f"the paper ({cited})."
                if d["PRA proto_acc_f"] > d["unlearned acc_f"] + 20
                else f"PRA recovers little of DELETE's forget class here; the paper reports {cited}."
            )
            + (
                " Within the same budget, fine-tuning restores less of DELETE's forget class than "
                "PRA, as the paper finds for fine-tuning relearning."
                if d["relearn acc_f"] < d["PRA proto_acc_f"]
                else " Within the same budget, fine-tuning restores at least as much of DELETE's "
                "forget class as PRA here, unlike the paper's Figure 2a."
            )
        )
    return "\n".join(lines)
