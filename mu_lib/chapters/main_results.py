"""Section 5.2's page: Table 1 in both views, Table 2, Figure 3 and the reading, from the runs of
``mu_lib.main_results``."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import paper, tuned
from ..experiment import RunConfig
from ..main_results import (
    AUTHORS,
    COLS,
    METRICS,
    VIEWS,
    Group,
    Row,
    configs,
    groups_for,
    label_of,
    plug_row,
)
from ..profiles import Profile, get_profile
from ..report import beside_paper, mean_std, style_table


def setup(profile: str, seeds, max_seeds, forget_classes, many_seeds):
    """(profile, seeds this page runs, column groups, the stand-in sentence)."""
    p = get_profile(profile)
    if max_seeds == "auto":  # the profile decides (cpu: one seed)
        max_seeds = p.book_seeds
    run_seeds = list(p.seeds if seeds is None else seeds)[:max_seeds]
    groups, stand_in = groups_for(p, forget_classes, run_seeds, many_seeds)
    return p, run_seeds, groups, stand_in


# --------------------------------------------------------------------------- tables


def table1(runs: pd.DataFrame, group: str, view: str) -> pd.DataFrame:
    """Ours (mean, or mean ± 95% interval over seeds) beside the paper's Table 1, one view."""
    paper1 = paper.table(1).query("dataset == @group")
    sub = runs.query("dataset == @group and view == @view").drop(columns=["dataset", "view"])
    sub = sub.rename(columns={"ou_pgd": "ou"})
    num = sub.groupby("method", sort=False)[COLS].mean().reset_index()
    # the authors'-settings rows sit beside the paper's Spotter rows
    num_p = num.assign(method=num["method"].str.replace(AUTHORS, "", regex=False))
    side = beside_paper(num_p, paper1, "method", COLS)
    side["method"] = num["method"]
    pm = mean_std(sub[["method", "seed"] + COLS], by="method").set_index("method")
    for c in COLS:  # mean ± interval in our column; the difference uses the mean
        side[c + " (ours)"] = side["method"].map(pm[c])
    side.insert(
        1, "settings", side["method"].map(sub.groupby("method", sort=False)["settings"].first())
    )
    return side


def views_compared(runs: pd.DataFrame, group: str) -> pd.DataFrame:
    """Per method, the two views side by side: settings, Acc_rt and Proto-Acc_f."""
    sub = runs.query("dataset == @group and not method.str.endswith(@AUTHORS)", engine="python")
    mean = sub.groupby(["view", "method"], sort=False)[["acc_f", "acc_rt", "ou_pgd", "proto_acc_f"]]
    mean = mean.mean()
    sett = sub.groupby(["view", "method"], sort=False)["settings"].first()
    out = []
    for m in sub.query("view == 'default'")["method"].unique():
        row = {"method": m}
        for view in VIEWS:
            row[f"{view}: settings"] = sett.get((view, m))
            for c in ("acc_f", "acc_rt", "ou_pgd", "proto_acc_f"):
                row[f"{view}: {c}"] = mean[c].get((view, m))
        out.append(row)
    return pd.DataFrame(out)


def proto_rank(runs: pd.DataFrame, group: str, view: str, label: str) -> tuple[int, int]:
    """(rank, of how many) of ``label`` by Proto-Acc_f among the unlearning methods of a view
    (1: lowest Proto-Acc_f; Original, Retrain and the authors'-settings rows not counted)."""
    sub = runs.query("dataset == @group and view == @view")
    t = sub.groupby("method", sort=False)["proto_acc_f"].mean()
    keep = [m for m in t.index if m not in ("Original", "Retrain") and not m.endswith(AUTHORS)]
    t = t[keep].sort_values(kind="stable")
    return int(list(t.index).index(label)) + 1, len(t)


def table2_shown(t2: pd.DataFrame) -> pd.DataFrame:
    def arrow(a, b, d):
        return [f"{x:.{d}f} → {y:.{d}f}" for x, y in zip(a, b, strict=True)]

    return t2.assign(
        **{
            "OU@ε (ours)": arrow(t2["ou before"], t2["ou after"], 4),
            "Proto-Acc_f (ours)": arrow(t2["proto before"], t2["proto after"], 2),
        }
    )[["method", "dataset", "settings (both)", "acc_ft", "acc_rt", "paper acc_rt", "OU@ε (ours)",
       "paper ou", "Proto-Acc_f (ours)", "paper proto", "acc_r_star"]]  # fmt: skip


# --------------------------------------------------------------------------- reading


def story(runs: pd.DataFrame, group: str, spotter_lambda2: Sequence[float]) -> list[str]:
    """The page's reading of one column group, computed from the runs."""
    from scipy.stats import spearmanr

    paper1 = paper.table(1)
    t = runs.query("dataset == @group and view == 'default'")
    t = t.groupby("method", sort=False)[METRICS].mean()
    spot = [paper.paper_name("spotter", lambda2=l2) for l2 in spotter_lambda2]
    spot = [m for m in spot if m in t.index]
    base = [
        m for m in t.index if m not in ("Original", "Retrain", *spot) and not m.endswith(AUTHORS)
    ]
    every = base + spot
    lines = []
    forgot = [m for m in every if t.loc[m, "acc_f"] <= 5]
    missed = [m for m in every if m not in forgot]
    lines.append(
        f"Default protocol: {len(forgot)} of {len(every)} unlearning methods bring Acc_f to 5% or "
        "below" + (f" (not: {', '.join(missed)})" if missed else "") + "."
    )
    restored = [m for m in base if t.loc[m, "proto_acc_f"] >= 50]
    verdict = "holds" if len(restored) > len(base) / 2 else "does not hold"
    lines.append(
        f"PRA restores the forget class (Proto-Acc_f ≥ 50%) on {len(restored)} of {len(base)} "
        f"baselines ({', '.join(restored) or 'none'}): the paper's 'most baselines' {verdict} here."
    )
    s1 = paper.paper_name("spotter", lambda2=1.0)
    if s1 in t.index:
        for view, name in VIEWS.items():
            r, n = proto_rank(runs, group, view, s1)
            p = runs.query("dataset == @group and view == @view and method == @s1")["proto_acc_f"]
            lines.append(
                f"{name.capitalize()}: Spotter (λ2 = 1) leaves Proto-Acc_f at {p.mean():.2f}%, "
                f"rank {r} of {n} methods by Proto-Acc_f (1 = the lowest)."
            )
        a = t.loc[s1 + AUTHORS] if s1 + AUTHORS in t.index else None
        if a is not None:
            lines.append(
                f"At the authors' settings Spotter (λ2 = 1) has Acc_f {a['acc_f']:.2f}%, Acc_rt "
                f"{a['acc_rt']:.2f}%, Proto-Acc_f {a['proto_acc_f']:.2f}% (paper: "
                f"{float(paper1.query('dataset == @group').set_index('method').loc[s1, 'proto_acc_f']):.2f}%)."
            )
    pp = paper1.query("dataset == @group").set_index("method")
    common = [m for m in every if m in pp.index and pd.notna(pp.loc[m, "ou"])]
    if len(common) > 2:
        rho = spearmanr(t.loc[common, "ou_pgd"], pp.loc[common, "ou"].astype(float)).statistic
        lines.append(
            f"Rank agreement of OU@ε with the paper's column (Spearman, {len(common)} methods): "
            f"{rho:.2f}."
        )
    return lines


def pra_tuning_story(runs: pd.DataFrame, group: str) -> str:
    """How many baselines the PRA-tuned view brings below Proto-Acc_f 10%, against the default."""
    cmp = views_compared(runs, group)
    cmp = cmp[~cmp["method"].isin(["Original", "Retrain"])]
    low = {v: cmp.loc[cmp[f"{v}: proto_acc_f"] <= 10, "method"].tolist() for v in VIEWS}
    return (
        f"Proto-Acc_f ≤ 10%: {len(low['default'])} of {len(cmp)} methods under the default "
        f"protocol ({', '.join(low['default']) or 'none'}), {len(low['pra'])} when each is tuned "
        f"against PRA ({', '.join(low['pra']) or 'none'})."
    )


# --------------------------------------------------------------------------- Figure 3


def figure3(
    group: Group, plug_bases: Sequence[str], seed: int, points: int = 600, device: str = "auto"
):
    """UMAP of penultimate features: the bases and the original (top), the bases with Spotter
    and Spotter alone (bottom); forget images red, retained grey."""
    import matplotlib.pyplot as plt

    from ..analysis import fit_umap
    from ..experiment import split_for, unlearned_model
    from ..infer import embed_all
    from ..labels import method_label

    split = split_for(RunConfig(profile=group.profile, dataset=group.dataset,
                                forget_classes=group.forget))  # fmt: skip
    rng = np.random.default_rng(0)
    xf, xr = split.forget_train[0], split.retain_train[0]
    xf, xr = xf[rng.permutation(len(xf))[:points]], xr[rng.permutation(len(xr))[:points]]
    top = [Row(label_of(b), b, None, tuned.chosen(group.profile, b)) for b in plug_bases]
    top.append(Row("Original", "original"))
    s1 = tuned.chosen(group.profile, "spotter")
    bottom = [plug_row(b) for b in plug_bases]
    bottom.append(Row(paper.paper_name("spotter", lambda2=1.0), "spotter", None,
                      {**s1, "lambda2": 1.0}))  # fmt: skip
    fig, axes = plt.subplots(2, len(top), figsize=(3.2 * len(top), 6.4), squeeze=False)
    for i, rows in enumerate((top, bottom)):
        for j, row in enumerate(rows):
            ((_, _, cfg),) = configs([row], group, [seed], device=device)
            model = unlearned_model(cfg)[0]
            emb = np.concatenate([embed_all(model, xr).numpy(), embed_all(model, xf).numpy()])
            ax = axes[i, j]
            ax.set_title(method_label(row.label), fontsize=9), ax.set_xticks([]), ax.set_yticks([])
            if not np.isfinite(emb).all():  # a run that diverged has no features to project
                ax.text(0.5, 0.5, "diverged (non-finite features)", ha="center", va="center",
                        fontsize=8)  # fmt: skip
                continue
            xy = fit_umap(emb, seed=0)  # the same UMAP, without umap's UserWarnings on the page
            ax.scatter(*xy[: len(xr)].T, s=3, c="0.7", label="retained")
            ax.scatter(*xy[len(xr) :].T, s=3, c="tab:red", label="forget")
    axes[0, 0].legend(loc="best", fontsize=7, markerscale=3)
    fig.suptitle(f"UMAP of penultimate features on {group.dataset} (seed {seed})")
    return fig


# Table 1 in two parts that each fit a 1400 px page (one table of 21 numbers per row did not).
PARTS = {
    "accuracies": ["acc_f", "acc_r", "acc_ft", "acc_rt"],
    "over-unlearning and PRA": ["ou", "proto_acc_f", "acc_r_star"],
}


def table1_parts(t1: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``table1``'s columns split into ``PARTS`` (each with the method; the settings with the
    narrower second part)."""
    out = {}
    for i, (name, metrics) in enumerate(PARTS.items()):
        keep = ["method"] + (["settings"] if i == 1 else [])
        keep += [c for c in t1.columns if c.rsplit(" ", 1)[0] in metrics]
        out[name] = t1[keep]
    return out


def table1_shown(runs: pd.DataFrame, groups: dict[str, Group], view: str, profile: Profile) -> list:
    """What the page displays for one view of Table 1, per column group (the PRA view adds the two
    views side by side and their reading)."""
    from IPython.display import Markdown

    out: list = []
    for g in groups:
        out.append(Markdown(f"**{g} column** (ours on {groups[g].dataset})"))
        for name, part in table1_parts(table1(runs, g, view)).items():
            out += [Markdown(f"*{name}*"), style_table(part, profile=profile)]
        if view == "pra":
            out += [
                Markdown("The two views side by side:"),
                style_table(views_compared(runs, g), profile=profile),
                Markdown(pra_tuning_story(runs, g)),
            ]
    return out


# --------------------------------------------------------------------------- small readings


def bn_note(bn_table: pd.DataFrame) -> str:
    """Which runs diverged once BatchNorm was frozen, and why that can happen ('' if none)."""
    bad = bn_table.loc[~bn_table["OU (BN frozen)"].astype(float).map(np.isfinite), "method"]
    if bad.empty:
        return ""
    return (
        f"A dash in the frozen column means the run diverged (non-finite outputs): "
        f"{', '.join(bad)}. Their learning rates were chosen with BatchNorm in train mode, which "
        "re-normalises activations at every step; with the statistics frozen the same step can "
        "blow up."
    )


def unlearn_seconds(runs: pd.DataFrame, plugged: pd.DataFrame) -> pd.DataFrame:
    """Mean (and spread) of the unlearning step's seconds per method, default view, CIFAR-10 column."""
    both = pd.concat([runs.query("view == 'default'"), plugged]).query("dataset == 'CIFAR-10'")
    secs = both.groupby("method", sort=False)["unlearn_s"].agg(["mean", "std"]).reset_index()
    return secs.rename(columns={"mean": "unlearn seconds (mean)"})


def plug_summary(t2: pd.DataFrame) -> str:
    """How often plugging Spotter in lowered OU@eps and Proto-Acc_f."""
    dou = int((t2["ou after"] < t2["ou before"]).sum())
    dproto = int((t2["proto after"] < t2["proto before"]).sum())
    return (
        f"Plugging Spotter in lowers OU@ε for {dou} of {len(t2)} base/dataset pairs and "
        f"Proto-Acc_f for {dproto} of {len(t2)} (the paper: all of them)."
    )


def reading(runs, groups, spotter_lambda2, t2: pd.DataFrame, t_start: float) -> str:
    """The page's closing reading: the story of each column, Table 2's tally, the time taken."""
    parts = []
    for g in groups:
        lines = story(runs, g, spotter_lambda2)
        parts.append(
            f"**{g} column ({groups[g].dataset})**\n\n" + "\n".join(f"- {s}" for s in lines)
        )
    parts.append(plug_summary(t2))
    parts.append(f"The chapter took {time.perf_counter() - t_start:.0f} s.")
    return "\n\n".join(parts)
