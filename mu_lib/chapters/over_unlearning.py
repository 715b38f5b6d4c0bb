"""Section 3.1: OU@eps, a worked example, its value on real models beside the paper's, and where
the divergence sits (per-neighbour JS)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import metrics, paper
from ..analysis import label, per_sample_ou
from ..experiment import RunConfig, neighbours, run

PAPER_ROW = {"delete": "DELETE", "spotter": "Spotter (lambda2=0.1)"}


def worked_example() -> pd.DataFrame:
    """Three classes, forget class 0: the masked original, a model that keeps its 2:1 ratio on the
    retained classes and one that pushes the mass elsewhere."""
    z = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    target = metrics.masked_softmax(z, [0])
    good = torch.tensor([[0.0, 2 / 3, 1 / 3]])
    shifted = torch.tensor([[0.0, 0.2, 0.8]])
    return pd.DataFrame(
        {
            "distribution": ["masked original", "well unlearned", "over-unlearned"],
            "p": [t.numpy().round(3).tolist() for t in (target, good, shifted)],
            "JS to masked original": [
                0.0,
                float(metrics.js_div(target, good)),
                float(metrics.js_div(target, shifted)),
            ],
        }
    )


def compared(base: RunConfig) -> list[RunConfig]:
    return [
        base.replace(method="delete"),
        base.replace(method="spotter", overrides={"lambda2": 0.1}),
    ]


def ou_table(base: RunConfig) -> tuple[pd.DataFrame, float]:
    """OU@eps of the masked original (0 by construction: checks the metric), DELETE and Spotter
    (lambda2 = 0.1), beside the paper's CIFAR-10 values; returns (table, the masked original's)."""
    _, orig_logits = neighbours(base, "pgd")
    fc = base.forget_classes
    ideal = metrics.ou_from_logits(orig_logits, metrics.masked_logits(orig_logits, fc), fc)
    t1 = paper.table(1).query("dataset == 'CIFAR-10'").set_index("method").ou
    rows = [{"model": "original, forget logits = -inf", "OU@eps (PGD, JS)": ideal}]
    for c in compared(base):
        m = run(c).metrics
        rows.append(
            {
                "model": label(c),
                "OU@eps (PGD, JS)": m["ou_pgd"],
                "OU@eps (PGD, KL)": m["ou_pgd_kl"],
                "OU@eps (Gaussian, JS)": m["ou_gauss"],
                "Acc_f": m["acc_f"],
                "Acc_rt": m["acc_rt"],
                "OU@eps paper (CIFAR-10)": t1[PAPER_ROW[c.method]],
            }
        )
    return pd.DataFrame(rows), ideal


def reading(table: pd.DataFrame, ideal: float) -> str:
    d, s = table["OU@eps (PGD, JS)"].iloc[1:3]
    pd_, ps = table["OU@eps paper (CIFAR-10)"].iloc[1:3]
    ref = f"({ps:.4f} vs {pd_:.4f} on CIFAR-10)"
    return (
        f"The masked original has OU@ε = {ideal:.1f} exactly. DELETE's OU@ε is {d:.4f} and "
        f"Spotter's is {s:.4f}: "
        + (
            f"Spotter over-unlearns less than DELETE, as in the paper {ref}."
            if s < d
            else f"here Spotter does **not** beat DELETE, which differs from the paper {ref}."
        )
    )


def js_histogram(base: RunConfig):
    """Per-neighbour JS divergence of each compared model, on one set of bins."""
    import matplotlib.pyplot as plt

    js = {label(c): per_sample_ou(c).js for c in compared(base)}
    top = max(float(v.max()) for v in js.values()) or 1.0
    bins = np.linspace(0, top, 41)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, v in js.items():
        ax.hist(v, bins=bins, alpha=0.55, label=name, log=True)
    ax.set_xlabel("JS(masked original || unlearned) per PGD neighbour")
    ax.set_ylabel("count (log)")
    ax.legend()
    return fig
