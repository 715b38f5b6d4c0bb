"""Appendices G and H: sequential unlearning (Table 9) and forgetting a growing share of the
classes (Table 10), beside the paper's CIFAR-100 numbers, with readings computed from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import paper
from ..data import get_dataset_info
from ..experiment import RunConfig
from ..profiles import Profile
from ..report import beside_paper
from ..scenarios import Sequential, forget_ratio, non_default_overrides, paper_rounds

SEQ_COLS = [
    "acc_f",
    "acc_f_new",
    "acc_r",
    "acc_ft",
    "acc_rt",
    "ou",
    "ou_original",
    "proto_acc_f",
    "acc_r_star",
]
SEQ_PAPER_COLS = ["acc_f", "acc_r", "ou", "proto_acc_f", "acc_r_star"]
RATIO_COLS = ["acc_f", "acc_r", "acc_ft", "acc_rt", "ou", "ou_gauss", "proto_acc_f", "acc_r_star"]


@dataclass
class Setting:
    """What both appendices share: profile, seeds, dataset, method and Spotter's weights."""

    profile: Profile
    seeds: list[int]
    dataset: str | None
    method: str
    lambda1: float
    lambda2: float
    device: str = "auto"

    def __post_init__(self):
        self.dataset = self.dataset or self.profile.claims_dataset

    def cfg(self, seed: int) -> RunConfig:
        over = {"lambda1": self.lambda1, "lambda2": self.lambda2}
        over = non_default_overrides(self.method, over) if self.method == "spotter" else {}
        return RunConfig(
            self.method,
            dataset=self.dataset,
            profile=self.profile.name,
            seed=seed,
            overrides=over,
            device=self.device,
        )

    @property
    def num_classes(self) -> int:
        return get_dataset_info(self.dataset).num_classes


# ----------------------------------------------------------------------------- Appendix G


def sequential_runs(
    s: Setting, rounds: int | None, order_seed: int, forget_data: str
) -> tuple[pd.DataFrame, list[int], int]:
    """Per-seed rows of every round, the class order and the number of rounds."""
    rounds = rounds or paper_rounds(s.num_classes)
    runs = {
        seed: Sequential(s.cfg(seed), order_seed=order_seed, forget_data=forget_data)
        for seed in s.seeds
    }
    order = list(runs[s.seeds[0]].order[:rounds])
    per_seed = pd.DataFrame([row for seed in s.seeds for row in runs[seed].run(rounds)])
    return per_seed, order, rounds


def paper_table9() -> pd.DataFrame:
    t9 = paper.table(9)
    t9["round"] = t9["round"].astype(int)
    return t9


def table9(per_seed: pd.DataFrame, order: Sequence[int]) -> pd.DataFrame:
    """Seed means per round beside the paper's Table 9 (joined on the round number)."""
    ours = per_seed.groupby("round", sort=True)[SEQ_COLS].mean().reset_index()
    table = beside_paper(ours, paper_table9(), "round", SEQ_PAPER_COLS)
    table.insert(1, "forget_class", list(order))
    return table.merge(ours[["round", "acc_f_new", "ou_original", "acc_ft", "acc_rt"]], on="round")


def sequential_reading(table: pd.DataFrame, rounds: int, num_classes: int) -> str:
    t9 = paper_table9()
    o = lambda c: table[f"{c} (ours)"]  # noqa: E731
    first, last = table.iloc[0], table.iloc[-1]
    trend = table[table["round"] < num_classes - 1]  # the last possible round is degenerate
    ou_trend = (
        trend["ou (ours)"].corr(trend["round"], method="spearman") if len(trend) > 2 else np.nan
    )
    p_trend = t9["ou"].corr(t9["round"], method="spearman")
    lines = [
        f"- **Forgetting.** Acc_f over all forgotten classes stays at or below {o('acc_f').max():.2f}% "
        f"(paper: at most {t9.acc_f.max():.2f}%); the round's own class at or below "
        f"{table.acc_f_new.max():.2f}%. "
        + (
            "Earlier classes stay forgotten."
            if o("acc_f").max() <= 5
            else "Some earlier class comes back above 5%."
        ),
        f"- **Retained accuracy.** Acc_r goes from {first['acc_r (ours)']:.2f}% after round 1 to "
        f"{last['acc_r (ours)']:.2f}% after round {int(last['round'])} (paper: "
        f"{t9.acc_r.iloc[0]:.2f}% to {t9.acc_r.iloc[-1]:.2f}%); test accuracy on the retained "
        f"classes from {first.acc_rt:.2f}% to {last.acc_rt:.2f}%.",
        f"- **Over-unlearning.** Per-request OU@eps ranges from {o('ou').min():.4f} to "
        f"{o('ou').max():.4f} (paper {t9.ou.min():.4f} to {t9.ou.max():.4f}); Spearman correlation "
        f"with the round number {ou_trend:+.2f} without a degenerate last round (paper "
        f"{p_trend:+.2f}), so it "
        + (
            "decreases over the rounds, as in the paper."
            if ou_trend < 0
            else "does not decrease over the rounds, unlike the paper."
        )
        + f" Measured against the first model, the accumulated OU goes from "
        f"{first.ou_original:.4f} to {last.ou_original:.4f}.",
        f"- **Relearning.** Proto-Acc_f, attacking every forgotten class at once, stays at or below "
        f"{o('proto_acc_f').max():.2f}% (paper: at most {t9.proto_acc_f.max():.2f}%), with Acc*_r "
        f"between {o('acc_r_star').min():.2f}% and {o('acc_r_star').max():.2f}%.",
    ]
    if rounds == num_classes - 1:
        lines.append(
            f"- After round {rounds} a single class is left. Its Acc_r is 100% and its OU@eps 0 by "
            "construction (a softmax masked down to one class is one-hot), so the last round says "
            "nothing about Spotter; the trends above are best read without it."
        )
    return "\n".join(lines)


def plot_rounds(table: pd.DataFrame, title: str):
    import matplotlib.pyplot as plt

    t9 = paper_table9()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    ax = axes[0]
    for c, lab in [
        ("acc_f (ours)", "Acc$_f$ (all forgotten)"),
        ("acc_f_new", "Acc$_f$ (round's class)"),
        ("acc_r (ours)", "Acc$_r$"),
        ("acc_r_star (ours)", "Acc$^*_r$"),
    ]:
        ax.plot(table["round"], table[c], "o-", label=lab)
    ax.plot(t9["round"], t9["acc_r"], "k--", lw=1, label="paper Acc$_r$")
    ax.set_ylabel("%")
    ax.set_title("accuracies")
    ax = axes[1]
    ax.plot(table["round"], table["ou (ours)"], "o-", label="ours: vs round's teacher")
    ax.plot(table["round"], table["ou_original"], "s-", label="ours: vs first model")
    ax.plot(t9["round"], t9["ou"], "k--", lw=1, label="paper")
    ax.set_title("OU@$\\varepsilon$ (JS)")
    ax = axes[2]
    ax.plot(table["round"], table["proto_acc_f (ours)"], "o-", label="ours")
    ax.plot(t9["round"], t9["proto_acc_f"], "k--", lw=1, label="paper")
    ax.set_title("Proto-Acc$_f$ (%)")
    for ax in axes:
        ax.set_xlabel("round")
        ax.legend(fontsize=7)
    fig.suptitle(title, y=1.03)
    return fig


# ----------------------------------------------------------------------------- Appendix H


def ratio_runs(s: Setting, fractions: Sequence[float], order_seed: int) -> pd.DataFrame:
    rows = []
    for seed in s.seeds:
        rows += forget_ratio(s.cfg(seed), fractions, order_seed=order_seed)
    return pd.DataFrame(rows).rename(columns={"ou_pgd": "ou"})


def table10(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Seed means per setting beside the paper's Table 10 (joined on "10%", "30%", ...)."""
    ours = per_seed.groupby("setting", sort=False)[RATIO_COLS].mean().reset_index()
    classes = [str(r) for r in per_seed.drop_duplicates("setting").forget_classes]
    t10 = paper.table(10).rename(columns={"forget_fraction": "setting"})
    table = beside_paper(
        ours, t10, "setting", ["acc_f", "acc_r", "ou", "proto_acc_f", "acc_r_star"]
    )
    table.insert(1, "forget_classes", classes)
    return table.merge(ours[["setting", "acc_ft", "acc_rt", "ou_gauss"]], on="setting")


def ratio_reading(table: pd.DataFrame) -> str:
    t = table.set_index("setting")
    ou_ours, ou_paper = t["ou (ours)"], t["ou (paper)"]
    falls = bool((np.diff(ou_ours.values) < 0).all())

    def listed(col: str, fmt: str) -> str:
        return ", ".join(f"{i} {v:{fmt}}" for i, v in t[col].items())

    def paper_listed(col: str, fmt: str) -> str:
        return ", ".join(f"{v:{fmt}}" for v in t[col])

    return "\n".join(
        [
            f"- **Forgetting.** Acc_f is at most {t['acc_f (ours)'].max():.2f}% in every setting "
            f"(paper: {t['acc_f (paper)'].max():.2f}%)"
            + (
                "; forgetting stays complete as the share grows."
                if t["acc_f (ours)"].max() <= 1
                else "."
            ),
            f"- **Retained accuracy.** Acc_r: {listed('acc_r (ours)', '.2f')} (paper: "
            f"{paper_listed('acc_r (paper)', '.2f')}); on test data: {paper_listed('acc_rt', '.2f')}.",
            f"- **Over-unlearning.** OU@eps: {listed('ou (ours)', '.4f')} (paper: "
            f"{', '.join(f'{v:.4f}' for v in ou_paper)}). "
            + (
                "It falls as more classes are forgotten, as in the paper."
                if falls
                else "It does not fall steadily as more classes are forgotten, unlike the paper."
            ),
            f"- **Relearning.** Proto-Acc_f: {listed('proto_acc_f (ours)', '.2f')} (paper: "
            f"{paper_listed('proto_acc_f (paper)', '.2f')}), with Acc*_r "
            f"{paper_listed('acc_r_star (ours)', '.2f')}.",
        ]
    )


def plot_ratio(table: pd.DataFrame, dataset: str):
    import matplotlib.pyplot as plt

    from ..labels import dataset_label

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    x = np.arange(len(table))
    panels = [
        ("acc_r", "Acc$_r$ (%)"),
        ("ou", "OU@$\\varepsilon$ (JS)"),
        ("proto_acc_f", "Proto-Acc$_f$ (%)"),
    ]
    for ax, (col, title) in zip(axes, panels, strict=True):
        ax.bar(x - 0.2, table[f"{col} (ours)"], 0.4, label=f"ours ({dataset_label(dataset)})")
        ax.bar(x + 0.2, table[f"{col} (paper)"], 0.4, label="paper (CIFAR-100)", color="0.6")
        ax.set_xticks(x, table.setting)
        ax.set_title(title)
        ax.set_xlabel("classes forgotten")
    handles = axes[0].get_legend_handles_labels()
    fig.legend(*handles, loc="upper center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, 1.1))
    return fig
