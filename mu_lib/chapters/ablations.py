"""Section 5.4: Table 3 (lambda1 x lambda2) and Figure 5 (the PGD radius in training and in
evaluation), with the paper's statements about them checked on our numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from .. import paper
from ..experiment import RunConfig, ou, run_many, unlearned_model
from ..profiles import Profile
from ..report import beside_paper
from ..unlearn import METHODS
from ..util import progress

TABLE3_COLS = ["acc_ft", "acc_rt", "ou", "proto_acc_f"]


@dataclass
class Ablations:
    """The grid of the page; ``Profile.grid_cap`` shortens every list (smoke: two values)."""

    profile: Profile
    seeds: list[int]
    lambda1s: list[float]
    lambda2s: list[float]
    eps_train_grid: list[float]
    eps_grid: list[float]
    bases: list[str]
    device: str = "auto"
    missing: list[str] = field(default_factory=list)

    def __post_init__(self):
        cap = self.profile.grid_cap
        if cap:
            self.lambda1s, self.eps_train_grid = self.lambda1s[:cap], self.eps_train_grid[:cap]
            # keep lambda2 = 0 (L_sim off) and the paper's 1 when the grid is cut
            kept = [v for v in self.lambda2s if v in (0.0, 1.0)]
            self.lambda2s = kept if len(kept) >= 2 else self.lambda2s[:cap]
            self.eps_grid, self.bases = self.eps_grid[: cap + 1], self.bases[: cap - 1 or 1]
        self.missing = [b for b in self.bases if b not in METHODS]
        self.bases = [b for b in self.bases if b in METHODS]

    def cfg(self, method: str = "spotter", base: str | None = None, seed: int = 0, **over):
        return RunConfig(
            method=method,
            base=base,
            profile=self.profile.name,
            seed=seed,
            overrides=over,
            device=self.device,
        )

    @property
    def spotters(self) -> list[str | None]:
        """Standalone Spotter, then each base + Spotter."""
        return [None, *self.bases]


def spotter_name(base: str | None) -> str:
    """The paper's row label (the join key with its tables)."""
    return paper.paper_name("spotter", base)


def table3(a: Ablations) -> pd.DataFrame:
    """Table 3, ours beside the paper's (seed means), for Spotter and SalUn + Spotter."""
    bases = [None] + (["salun"] if "salun" in a.bases else [])
    grid = [
        (b, l1, l2, s) for b in bases for l1 in a.lambda1s for l2 in a.lambda2s for s in a.seeds
    ]
    results = run_many(
        [a.cfg(base=b, seed=s, lambda1=l1, lambda2=l2) for b, l1, l2, s in grid], desc="table 3"
    )
    rows = [
        {
            "method": spotter_name(b),
            "lambda1": l1,
            "lambda2": l2,
            **{k: r.metrics["ou_pgd" if k == "ou" else k] for k in TABLE3_COLS},
        }
        for (b, l1, l2, _), r in zip(grid, results, strict=True)
    ]
    keys = ["method", "lambda1", "lambda2"]
    ours = pd.DataFrame(rows).groupby(keys, sort=False).mean().reset_index()
    return beside_paper(ours, paper.table(3), keys, TABLE3_COLS)


def _model(c: RunConfig):
    return unlearned_model(c)[0]


def fig5a(a: Ablations) -> tuple[pd.DataFrame, dict[str, float]]:
    """OU@eps at the profile's radius for Spotter variants trained with each ``eps_o``, and each
    base without Spotter (seed means)."""
    eval_eps = a.profile.pgd_eps
    rows = []
    for b in progress(a.spotters, desc="figure 5a"):
        for e in a.eps_train_grid:
            for s in a.seeds:
                c = a.cfg(base=b, seed=s, eps_o=e)
                rows.append(
                    {"method": spotter_name(b), "eps_o": e, "ou": ou(c, _model(c), "pgd", eval_eps)}
                )
    without = {}
    for b in a.bases:
        vals = [
            ou(c, _model(c), "pgd", eval_eps) for c in (a.cfg(method=b, seed=s) for s in a.seeds)
        ]
        without[paper.paper_name(b)] = sum(vals) / len(vals)
    frame = pd.DataFrame(rows).groupby(["method", "eps_o"], sort=False).ou.mean().reset_index()
    return frame, without


def fig5b(a: Ablations) -> pd.DataFrame:
    """OU@eps at each evaluation radius for the default models, with and without Spotter."""
    rows = []
    runs = [(spotter_name(b), True, dict(base=b)) for b in a.spotters]
    runs += [(paper.paper_name(b), False, dict(method=b)) for b in a.bases]
    for name, spotter, kw in progress(runs, desc="figure 5b"):
        for s in a.seeds:
            c = a.cfg(seed=s, **kw)
            model = _model(c)
            rows += [
                {"method": name, "spotter": spotter, "eps": e, "ou": ou(c, model, "pgd", e)}
                for e in a.eps_grid
            ]
    return (
        pd.DataFrame(rows).groupby(["method", "spotter", "eps"], sort=False).ou.mean().reset_index()
    )


def statements(
    a: Ablations, t3: pd.DataFrame, f5a: pd.DataFrame, without: dict[str, float], f5b: pd.DataFrame
) -> pd.DataFrame:
    """The paper's statements about Table 3 and Figure 5, each checked on our numbers."""
    out = []

    def check(text: str, holds: bool, evidence: str) -> None:
        out.append(
            {"paper's statement": text, "holds here": bool(holds), "evidence (ours)": evidence}
        )

    top = max(a.lambda2s)
    for m, g in t3.groupby("method", sort=False):
        g = g.set_index(["lambda1", "lambda2"])
        l1s = sorted(g.index.get_level_values(0).unique())
        lower = [x for x in l1s if x < 1.0]
        if 1.0 in l1s and lower:
            no_o = [g.loc[(1.0, l2), "ou (ours)"] for l2 in a.lambda2s]
            with_o = [min(g.loc[(l1, l2), "ou (ours)"] for l1 in lower) for l2 in a.lambda2s]
            check(
                f"{m}: without L_o (lambda1 = 1) OU is higher than with it",
                all(x > y for x, y in zip(no_o, with_o, strict=True)),
                "OU at lambda1 = 1 vs best lambda1 < 1, per lambda2: "
                + ", ".join(f"{x:.4f} vs {y:.4f}" for x, y in zip(no_o, with_o, strict=True)),
            )
        if 0.0 in a.lambda2s and top > 0:
            p0 = g.xs(0.0, level=1)["proto_acc_f (ours)"]
            p_hi = g.xs(top, level=1)["proto_acc_f (ours)"]
            check(
                f"{m}: L_sim (lambda2 > 0) suppresses Proto-Acc_f",
                (p_hi < p0).all(),
                f"Proto-Acc_f at lambda2 = 0: {p0.round(1).tolist()}; at {top:g}: {p_hi.round(1).tolist()}",
            )
            cost = (
                g.xs(0.0, level=1)["acc_rt (ours)"] - g.xs(top, level=1)["acc_rt (ours)"]
            ).mean()
            check(
                f"{m}: a larger lambda2 costs a few points of Acc_rt",
                0 <= cost <= 10,
                f"mean Acc_rt drop from lambda2 = 0 to {top:g}: {cost:.2f} points",
            )
    for b in a.bases:
        name, sub = paper.paper_name(b), f5a[f5a.method == spotter_name(b)]
        check(
            f"{spotter_name(b)}: OU stays below {name} alone at every training radius (5a)",
            (sub.ou < without[name]).all(),
            f"max OU over radii {sub.ou.max():.4f} vs {without[name]:.4f} without Spotter",
        )
    for b in a.spotters:
        sub = f5a[f5a.method == spotter_name(b)].sort_values("eps_o")
        check(
            f"{spotter_name(b)}: OU grows with the training radius (5a)",
            sub.ou.iloc[-1] > sub.ou.iloc[0],
            f"OU at eps_o = {sub.eps_o.iloc[0]:g}: {sub.ou.iloc[0]:.4f}; "
            f"at {sub.eps_o.iloc[-1]:g}: {sub.ou.iloc[-1]:.4f}",
        )
    for b in a.bases:
        base = f5b[f5b.method == paper.paper_name(b)].sort_values("eps")
        spot = f5b[f5b.method == spotter_name(b)].sort_values("eps")
        check(
            f"{paper.paper_name(b)} alone: OU falls as the evaluation radius grows (5b)",
            base.ou.iloc[-1] < base.ou.iloc[0],
            "OU per radius: "
            + ", ".join(f"{e:g}: {o:.4f}" for e, o in zip(base.eps, base.ou, strict=True)),
        )
        check(
            f"{spotter_name(b)}: below {paper.paper_name(b)} alone at every evaluation radius (5b)",
            (spot.ou.values < base.ou.values).all(),
            "ratio Spotter / base per radius: "
            + ", ".join(f"{r:.2f}" for r in spot.ou.values / base.ou.values),
        )
    return pd.DataFrame(out)


def summary(checks: pd.DataFrame, t3: pd.DataFrame) -> str:
    line = f"**{int(checks['holds here'].sum())} of {len(checks)}** of the paper's statements hold on this profile."
    low = t3[t3["acc_rt (ours)"] < 50]
    if len(low):
        line += (
            f" **Caution:** {len(low)} of the {len(t3)} Table 3 models keep less than 50% Acc_rt "
            f"(lowest {low['acc_rt (ours)'].min():.1f}%): they have lost the retained classes too, "
            "and OU and Proto-Acc_f of such models say little about targeted forgetting."
        )
    return line


def plot_fig5(frame: pd.DataFrame, x: str, bases: Sequence[str], without=None, xlabel: str = ""):
    """Figure 5a (``without``: each base's OU as a dotted level) or 5b (dotted base curves)."""
    import matplotlib.pyplot as plt

    from ..labels import method_label

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for j, b in enumerate([None, *bases]):
        sub = frame[frame.method == spotter_name(b)]
        ax.plot(sub[x], sub.ou, "o-", color=f"C{j}", label=method_label(spotter_name(b)))
        if b is None:
            continue
        name = paper.paper_name(b)
        label = f"{method_label(b)} (no Spotter)"
        if without is not None:
            ax.axhline(without[name], color=f"C{j}", ls=":", lw=1.2, label=label)
        else:
            sub = frame[frame.method == name]
            ax.plot(sub[x], sub.ou, "o:", color=f"C{j}", mfc="none", label=label)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"OU@$\varepsilon$")
    ax.legend(fontsize=7)
    return fig
