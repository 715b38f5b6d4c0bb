"""Section 5.2's runs (Table 1, its BatchNorm-frozen repeat, Table 2); ``chapters.main_results``
shows them.

Table 1 comes in the two views of the tuning protocol (``mu_lib.tuning``): ``default`` (every
method forgets with the least change) and ``pra`` (every method at its grid point with the lowest
Proto-Acc_f within the retained-accuracy budget), plus Spotter at the authors' own settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import Diverged, paper, tuned
from .data import get_dataset_info
from .experiment import RunConfig, run
from .profiles import PROFILES, Profile
from .unlearn import build_method
from .util import progress

METRICS = ["acc_f", "acc_r", "acc_ft", "acc_rt", "ou_pgd", "ou_gauss", "proto_acc_f", "acc_r_star"]
COLS = ["acc_f", "acc_r", "acc_ft", "acc_rt", "ou", "proto_acc_f", "acc_r_star"]
VIEWS = {"default": "default protocol", "pra": "tuned against PRA"}
# The authors' notebook: SGD lr 1e-4, batch 128, 10 epochs, BatchNorm frozen (momentum 0.9 and
# weight decay 5e-4 are the dataclass defaults).
AUTHORS_SPOTTER = {"lr": 1e-4, "batch_size": 128, "epochs": 10, "bn_mode": "eval"}
AUTHORS = " (authors' settings)"
# not in the paper: SCRUB, and the forget-row step of Fisher Forgetting's code on its own
LABELS = {"scrub": "SCRUB", "head_mask": "Head masking"}
UNTUNED = ("original", "retrain", "head_mask")  # nothing to tune


@dataclass(frozen=True)
class Row:
    """One line of a table: its label and the run that fills it."""

    label: str
    method: str
    base: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def label_of(method: str) -> str:
    return LABELS.get(method, paper.paper_name(method))


def method_rows(
    methods: Sequence[str], spotter_lambda2: Sequence[float], profile: str, view: str = "default"
) -> list[Row]:
    """Table 1's rows for one view: each method at the setting the protocol chose for ``view``
    (Spotter once per lambda2, at the rate chosen for it)."""
    rows = []
    for m in methods:
        chosen = {} if m in UNTUNED else tuned.chosen(profile, m, view)
        if m == "spotter":
            rows += [
                Row(paper.paper_name("spotter", lambda2=l2), m, None, {**chosen, "lambda2": l2})
                for l2 in spotter_lambda2
            ]
        else:
            rows.append(Row(label_of(m), m, None, chosen))
    return rows


def authors_rows(spotter_lambda2: Sequence[float]) -> list[Row]:
    """Spotter at the authors' settings (whatever the protocol chose)."""
    return [
        Row(paper.paper_name("spotter", lambda2=l2) + AUTHORS, "spotter", None,
            {**AUTHORS_SPOTTER, "lambda2": l2})
        for l2 in spotter_lambda2
    ]  # fmt: skip


def plug_row(base: str) -> Row:
    """Spotter plugged into ``base``: the base's loss and every optimisation setting of the base."""
    return Row(paper.paper_name("spotter", base=base), "spotter", base, {})


def settings(profile: str, row: Row) -> str:
    """The optimisation settings a row runs with, for the tables (lr, batch, epochs, BN)."""
    if row.method in UNTUNED:
        return (
            ""
            if row.method == "original"
            else "no settings"
            if row.method == "head_mask"
            else ("the original's training recipe")
        )
    p = PROFILES[profile]
    hp = build_method(row.method, p.name, row.overrides, p.unlearn_epochs, base=row.base).hp
    if row.method == "fisher":
        return f"alpha {hp.alpha:.0e}"
    return f"lr {hp.lr:.0e}, batch {hp.batch_size}, {hp.epochs} ep, BN {hp.bn_mode}"


# --------------------------------------------------------------------------- dataset groups


@dataclass
class Group:
    """One column group of Table 1: the profile's stand-in for CIFAR-10 or CIFAR-100."""

    name: str
    dataset: str
    profile: str
    forget: tuple[int, ...]
    seeds: tuple[int, ...]


def groups_for(
    P: Profile,
    forget_classes: Sequence[int],
    seeds: Sequence[int],
    many_seeds: int | None,
) -> tuple[dict[str, Group], str]:
    """The two column groups and a sentence saying what stands in for what."""

    def cut(s, n):
        return tuple(s if n is None else s[:n])

    forget = tuple(int(c) for c in forget_classes)
    many_info = get_dataset_info(P.dataset_many)
    if many_info.num_classes >= 100:  # the paper forgets 10 random classes of CIFAR-100
        rng = np.random.default_rng(0)
        many_forget = tuple(sorted(int(c) for c in rng.choice(100, 10, replace=False)))
        many_run_seeds = tuple(seeds)
    else:
        many_forget, many_run_seeds = forget, cut(tuple(seeds), many_seeds)
    # A second dataset that is another profile's own dataset runs with that profile's settings
    # (original model, unlearning batch and epochs, settings tuned on that dataset).
    many_profile = next((q for q in PROFILES.values() if q.dataset == P.dataset_many), P)
    groups = {
        "CIFAR-10": Group("CIFAR-10", P.dataset, P.name, forget, tuple(seeds)),
        "CIFAR-100": Group(
            "CIFAR-100", P.dataset_many, many_profile.name, many_forget, many_run_seeds
        ),
    }
    text = (
        f"On profile **{P.name}** the CIFAR-10 column is computed on **{P.dataset}** (forgetting "
        f"class(es) {list(forget)}, seeds {list(seeds)}) and the CIFAR-100 column on "
        f"**{P.dataset_many}** (forgetting {list(many_forget)}, seeds {list(many_run_seeds)})."
    )
    if many_profile.name != P.name:
        text += (
            f" The {P.dataset_many} column runs with the **{many_profile.name}** profile's "
            f"settings (its forget set has about a hundred images: batches of "
            f"{many_profile.unlearn_batch}, settings chosen on {P.dataset_many} by the same "
            "protocol)."
        )
    if many_info.num_classes < 100:
        text += (
            f" {P.dataset_many} has {many_info.num_classes} classes, not 100: this column is a "
            "second small dataset standing in for CIFAR-100; it says whether the story repeats "
            "on other data, not what happens with many classes."
        )
    if len(seeds) < len(P.seeds):
        text += (
            f" This page runs {len(seeds)} of the profile's {len(P.seeds)} seeds (`max_seeds`); "
            "`-p max_seeds None` runs them all."
        )
    return groups, text


# --------------------------------------------------------------------------- runs


def configs(
    rows: Sequence[Row],
    group: Group,
    seeds: Sequence[int] | None = None,
    extra: dict[str, Any] | None = None,
    device: str = "auto",
) -> list[tuple[Row, str, RunConfig]]:
    out = []
    for row in rows:
        for s in seeds or group.seeds:
            cfg = RunConfig(
                method=row.method,
                base=row.base,
                profile=group.profile,
                dataset=group.dataset,
                seed=s,
                forget_classes=group.forget,
                overrides={**row.overrides, **(extra or {})},
                device=device,
            )
            out.append((row, group.name, cfg))
    return out


def run_rows(
    items: Sequence[tuple[Row, str, RunConfig]], desc: str, view: str = ""
) -> pd.DataFrame:
    """Run (or load) every item; one line per run with its metrics (NaN where a run diverged,
    with ``diverged`` True)."""
    out = []
    for row, group, cfg in progress(items, desc=desc, total=len(items)):
        try:
            r = run(cfg)
            metrics, secs, bad = r.metrics, r.timings.get("unlearn", 0.0), False
        except Diverged:
            metrics, secs, bad = {}, float("nan"), True
        out.append(
            {
                "view": view,
                "method": row.label,
                "dataset": group,
                "seed": cfg.seed,
                "settings": settings(cfg.prof.name, row),
                "unlearn_s": secs,
                "diverged": bad,
                **{k: metrics.get(k, float("nan")) for k in METRICS},
            }
        )
    return pd.DataFrame(out)


def table1_runs(
    groups: dict[str, Group],
    methods: Sequence[str],
    spotter_lambda2: Sequence[float],
    device: str = "auto",
) -> pd.DataFrame:
    """Every run of Table 1: both views, and Spotter at the authors' settings (in the default
    view's table).  Runs shared by both views are computed once (the cache)."""
    frames = []
    for view in VIEWS:
        for g in groups.values():
            rows = method_rows(methods, spotter_lambda2, g.profile, view)
            if view == "default" and "spotter" in methods:
                rows += authors_rows(spotter_lambda2)
            frames.append(run_rows(configs(rows, g, device=device), f"table 1 ({view})", view))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- runs of the other tables


def bn_frozen_table(
    runs: pd.DataFrame,
    groups: dict[str, Group],
    methods: Sequence[str],
    spotter_lambda2: Sequence[float],
    seeds: int | None,
    device: str = "auto",
) -> pd.DataFrame:
    """OU@eps of each method (default view) at its reference BatchNorm mode and with BN frozen."""
    g = groups["CIFAR-10"]
    fz_seeds = g.seeds if seeds is None else g.seeds[:seeds]
    frozen_rows, reuse = [], []
    p = PROFILES[g.profile]
    for row in method_rows(methods, spotter_lambda2, g.profile):
        if row.method in UNTUNED:
            continue
        bn = build_method(row.method, p.name, row.overrides, p.unlearn_epochs).hp.bn_mode
        (frozen_rows if bn == "train" else reuse).append(row)
    frozen = run_rows(configs(frozen_rows, g, fz_seeds, {"bn_mode": "eval"}, device), "bn frozen")
    kept = runs.query("dataset == @g.name and view == 'default' and seed in @fz_seeds")
    default_ou = kept.groupby("method", sort=False)["ou_pgd"].mean()
    frozen_ou = frozen.groupby("method", sort=False)["ou_pgd"].mean() if len(frozen) else {}
    labels = [r.label for r in frozen_rows + reuse]
    out = pd.DataFrame(
        {
            "method": labels,
            "bn_mode (reference)": ["train"] * len(frozen_rows) + ["eval"] * len(reuse),
        }
    )
    out["OU (reference BN)"] = out["method"].map(default_ou)
    same = {r.label: default_ou[r.label] for r in reuse}  # already frozen: the Table 1 run
    out["OU (BN frozen)"] = out["method"].map({**dict(frozen_ou), **same})
    paper_ou = paper.table(1).query("dataset == @g.name").set_index("method")["ou"]
    out["OU paper"] = out["method"].map(paper_ou)
    out["frozen − reference"] = out["OU (BN frozen)"] - out["OU (reference BN)"]
    return out


def table2(
    runs: pd.DataFrame,
    groups: dict[str, Group],
    plug_bases: Sequence[str],
    device: str = "auto",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spotter plugged into each base with the base's own optimisation settings: before (the
    base's default-view Table 1 run) and after.  Returns (raw runs, the table)."""
    items = [it for g in groups.values() for it in configs([plug_row(b) for b in plug_bases], g,
                                                           device=device)]  # fmt: skip
    plugged = run_rows(items, "table 2", "default")
    paper2 = paper.table(2)
    out = []
    for group in groups:
        before = runs.query("dataset == @group and view == 'default'")
        before = before.groupby("method", sort=False)
        after = plugged.query("dataset == @group").groupby("method", sort=False)
        bm, am = before[METRICS].mean(), after[METRICS].mean()
        for b in plug_bases:
            lab, pre = paper.paper_name("spotter", base=b), label_of(b)
            row = paper2.query("dataset == @group and method == @lab")
            pv = row.iloc[0] if len(row) else None
            out.append(
                {
                    "method": lab,
                    "dataset": group,
                    "settings (both)": after["settings"].first().get(lab),
                    "acc_ft": am.loc[lab, "acc_ft"],
                    "acc_rt": am.loc[lab, "acc_rt"],
                    "ou before": bm.loc[pre, "ou_pgd"],
                    "ou after": am.loc[lab, "ou_pgd"],
                    "proto before": bm.loc[pre, "proto_acc_f"],
                    "proto after": am.loc[lab, "proto_acc_f"],
                    "acc_r_star": am.loc[lab, "acc_r_star"],
                    "paper ou": None if pv is None else f"{pv.ou_before:.4f} → {pv.ou_after:.4f}",
                    "paper proto": None
                    if pv is None
                    else f"{pv.proto_acc_f_before:.2f} → {pv.proto_acc_f_after:.2f}",
                    "paper acc_rt": None if pv is None else pv.acc_rt,
                }
            )
    return plugged, pd.DataFrame(out)
