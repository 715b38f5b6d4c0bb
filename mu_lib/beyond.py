"""Chapter x3_beyond_pra: every method of Table 1 against attacks it was not built against.

For each Table 1 run (the same cached unlearned models as ``s5_2_main_results``), the attacker
holds k shots per class (k = 5, 20, 100) and runs PRA (the paper's attack, stealthy alpha), k-NN
recovery and a linear probe on the frozen penultimate features (``attacks.probe``).  PRA and the
feature attacks use the same forget shots.  One embedding pass per model serves every attack and
k; the rows are cached with the model's result key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from . import MuError
from .attacks.probe import DEFAULT_SHOTS, FeatureAttacks
from .experiment import RunConfig, pra_for, result_key, split_for, store, unlearned_model
from .labels import config_label
from .util import progress

ATTACKS = {"pra": "PRA", "knn": "k-NN recovery", "probe": "linear probe"}
VIEW_NAMES = {"default": "default protocol", "pra": "tuned against PRA"}
UNTUNED = ("original", "retrain")
# Version of the rows computed here: bump when the attacks change so the cache is not reused.
ROWS_VERSION = 1


def available_views() -> list[str]:
    """Views of Table 1's hyperparameters the library holds (``default``; ``pra``: tuned
    against PRA, where the tuning protocol's choices are installed)."""
    try:
        from .tuned import VIEWS
    except ImportError:
        return ["default"]
    return list(VIEWS)


def chosen(profile: str, method: str, view: str) -> dict[str, Any]:
    """The hyperparameters of ``method`` in ``view`` ({}: the method's defaults)."""
    if view not in available_views():
        raise MuError(f"unknown view {view!r}; this library holds {available_views()}")
    if method in UNTUNED:
        return {}
    try:
        from .tuned import chosen as tuned_chosen
    except ImportError:
        return {}
    return tuned_chosen(profile, method, view)


def table1_configs(
    methods: Sequence[str],
    spotter_lambda2: Sequence[float],
    profile: str,
    forget_classes: Sequence[int],
    seeds: Sequence[int],
    view: str = "default",
    device: str = "auto",
) -> list[RunConfig]:
    """Table 1's runs for one view (Spotter once per lambda2)."""
    out = []
    for m in methods:
        over = chosen(profile, m, view)
        variants = [{**over, "lambda2": l2} for l2 in spotter_lambda2] if m == "spotter" else [over]
        for o in variants:
            for s in seeds:
                out.append(
                    RunConfig(method=m, profile=profile, seed=s, forget_classes=tuple(forget_classes),
                              overrides=o, device=device)
                )  # fmt: skip
    return out


def attack_rows(cfg: RunConfig, ks: Sequence[int] = DEFAULT_SHOTS) -> list[dict[str, Any]]:
    """PRA, k-NN and probe at every k for ``cfg``'s unlearned model (cached)."""
    ks = [int(k) for k in ks]
    key = {"what": "beyond_pra", "version": ROWS_VERSION, "run": result_key(cfg), "ks": ks}

    def build() -> dict:
        model = unlearned_model(cfg)[0]
        split = split_for(cfg)
        pra = pra_for(cfg, model)
        fa = FeatureAttacks.from_pra(pra)
        top = min(fa.max_shots(), min(int((pra.yf == c).sum()) for c in pra.forget_classes) - 1)
        rows = []
        for k in ks:
            if k > top:
                continue
            shots = split.shot_indices(k, cfg.seed)
            p = pra.sweep(shots, cfg.pra_form, cfg.alphas)
            rows.append(dict(attack="pra", k=k, acc_f=p.chosen_proto_acc_f,
                             acc_r=p.chosen_acc_r_star))  # fmt: skip
            for r in (
                fa.knn(k, cfg.seed, forget_idx=shots),
                fa.probe(k, cfg.seed, forget_idx=shots),
            ):
                rows.append(r.to_dict())
        return {"rows": rows, "acc_f": pra.acc_f, "acc_r": pra.acc_r}

    res = store().cached("results", key, build)
    return [
        {"method": config_label(cfg), "seed": cfg.seed, "unlearned_acc_f": res["acc_f"], **r}
        for r in res["rows"]
    ]


def run_attacks(
    configs_by_view: dict[str, list[RunConfig]], ks: Sequence[int] = DEFAULT_SHOTS
) -> pd.DataFrame:
    """One line per (view, method, seed, attack, k)."""
    rows = []
    items = [(v, c) for v, cs in configs_by_view.items() for c in cs]
    for view, cfg in progress(items, desc="beyond PRA", total=len(items)):
        rows += [{"view": view, **r} for r in attack_rows(cfg, ks)]
    return pd.DataFrame(rows)


def forget_table(df: pd.DataFrame, view: str) -> pd.DataFrame:
    """Methods x (attack, k): forget accuracy the attack recovers (mean over seeds)."""
    sub = df[df["view"] == view]
    order = list(dict.fromkeys(sub["method"]))
    t = sub.pivot_table(index="method", columns=["attack", "k"], values="acc_f", aggfunc="mean")
    t = t.reindex(order)
    t = t[[c for a in ATTACKS for c in t.columns if c[0] == a]]
    t.columns = [f"{ATTACKS[a]} k={k}" for a, k in t.columns]
    unl = sub.groupby("method", sort=False)["unlearned_acc_f"].mean()
    t.insert(0, "Acc_f (no attack)", unl.reindex(order))
    return t.reset_index()


def is_baseline(label: str) -> bool:
    low = label.lower()
    return "spotter" not in low and low not in ("original", "retrain")


def verdict(df: pd.DataFrame, view: str, margin: float = 5.0) -> tuple[str, pd.DataFrame]:
    """Does Spotter's advantage over the baselines survive each attack?  For every (attack, k):
    the best Spotter row's recovered accuracy, the baselines' median, how many baselines it beats
    by ``margin`` points, and the retrain floor.  Returns the reading and its table."""
    sub = df[df["view"] == view]
    mean = sub.groupby(["method", "attack", "k"], sort=False)["acc_f"].mean().reset_index()
    out = []
    for (attack, k), g in mean.groupby(["attack", "k"], sort=False):
        spot = g[g["method"].str.lower().str.contains("spotter")]
        base = g[g["method"].map(is_baseline)]
        floor = g.loc[g["method"].str.lower() == "retrain", "acc_f"]
        if spot.empty or base.empty:
            continue
        best = spot.loc[spot["acc_f"].idxmin()]
        beaten = int((base["acc_f"] >= best["acc_f"] + margin).sum())
        out.append({
            "attack": ATTACKS[attack], "k": int(k), "spotter": best["method"],
            "spotter_acc_f": float(best["acc_f"]), "baselines_median": float(base["acc_f"].median()),
            "baselines_beaten": beaten, "baselines": len(base),
            "retrain_floor": float(floor.iloc[0]) if len(floor) else np.nan,
        })  # fmt: skip
    table = pd.DataFrame(out)
    if table.empty:
        return "No Spotter row and baseline rows to compare.", table
    table["survives"] = table["baselines_beaten"] > table["baselines"] / 2
    # Where Spotter does no better than the baselines, say whether it is still at the level of a
    # model that never saw the class (then no method could do much better under that attack).
    table["at_retrain_floor"] = table["spotter_acc_f"] <= table["retrain_floor"] + margin
    lines = []
    for attack in ATTACKS.values():
        t = table[table["attack"] == attack]
        if t.empty:
            continue
        parts = "; ".join(
            f"k={r.k}: Spotter {r.spotter_acc_f:.1f}% vs baselines' median "
            f"{r.baselines_median:.1f}% (beats {r.baselines_beaten} of {r.baselines}), retrain "
            f"floor {r.retrain_floor:.1f}%"
            for r in t.itertuples()
        )
        held = t[t["survives"]]["k"].tolist()
        if len(held) == len(t):
            word = "survives at every k"
        elif held:
            word = f"survives only at k = {', '.join(map(str, held))}"
        else:
            word = "does not survive"
        lines.append(f"- **{attack}**: Spotter's advantage {word} ({parts}).")
    other = table[table["attack"] != ATTACKS["pra"]]
    if other.empty:
        return "Only PRA was run, so this page cannot say.\n\n" + "\n".join(lines), table
    held = [f"{r.attack} at k={r.k}" for r in other.itertuples() if r.survives]
    lost = other[~other["survives"]]
    if not held:
        head = "No: Spotter's advantage over the baselines does not survive the attacks it was not trained against."
    elif lost.empty:
        head = "Yes: Spotter's advantage over the baselines survives the attacks it was not trained against."
    else:
        head = (
            "Only in part: Spotter's advantage over the baselines survives "
            f"{', '.join(held)}, and not the other {len(lost)} attack settings it was not trained "
            "against."
        )
    if not lost.empty:
        if lost["at_retrain_floor"].all():
            head += (
                " Where it is lost, Spotter is recovered no more than the retrained model "
                f"(within {margin:g} points), which never saw the class: these attacks read the "
                "class from features that any network trained on the other classes has."
            )
        else:
            bad = [f"{r.attack} at k={r.k}" for r in lost.itertuples() if not r.at_retrain_floor]
            head += (
                f" Under {', '.join(bad)} Spotter leaks more than {margin:g} points above the "
                "retrained model."
            )
    return head + "\n\n" + "\n".join(lines), table


def figure(df: pd.DataFrame, view: str):
    """Recovered forget accuracy against k, one panel per attack, one line per method."""
    import matplotlib.pyplot as plt

    sub = df[df["view"] == view]
    mean = sub.groupby(["method", "attack", "k"], sort=False)["acc_f"].mean().reset_index()
    fig, axes = plt.subplots(1, len(ATTACKS), figsize=(4.2 * len(ATTACKS), 3.6), sharey=True)
    methods = list(dict.fromkeys(sub["method"]))
    for ax, (attack, name) in zip(axes, ATTACKS.items(), strict=True):
        for i, m in enumerate(methods):
            g = mean[(mean["method"] == m) & (mean["attack"] == attack)].sort_values("k")
            spot = "spotter" in m.lower()
            style = dict(lw=2.4, marker="o") if spot else dict(lw=1, marker=".", alpha=0.7)
            if m.lower() == "retrain":
                style = dict(lw=1.5, ls="--", color="k", marker=".")
            ax.plot(g["k"], g["acc_f"], label=m, color=style.pop("color", f"C{i % 10}"), **style)
        ax.set(xscale="log", xlabel="shots per class k", title=name)
        ax.set_xticks(sorted(mean["k"].unique()), [str(k) for k in sorted(mean["k"].unique())])
    axes[0].set_ylabel("forget accuracy after the attack (%)")
    axes[-1].legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig
