"""Computations behind the chapters' figures (kept out of the notebooks so they stay thin).
Needs pandas; UMAP needs umap-learn (book extra)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .attacks.relearn import DEFAULT_RELEARN_LRS, relearn_sweep
from .experiment import RunConfig, neighbours, original_model, pra_for, split_for, unlearned_model
from .metrics import js_div, kl_div, masked_softmax
from .train import embed_all, predict_logits, resolve_device


def label(cfg: RunConfig) -> str:
    """A short human label for a configuration (e.g. ``spotter (l2=1)`` or ``salun + spotter``)."""
    if cfg.base:
        return f"{cfg.base} + spotter"
    if cfg.method == "spotter" and "lambda2" in cfg.overrides:
        return f"spotter (λ2={cfg.overrides['lambda2']:g})"
    return cfg.method


def per_sample_ou(cfg: RunConfig, kind: str = "pgd", eps: float | None = None) -> pd.DataFrame:
    """Per-neighbour JS and KL between the original's masked softmax and the unlearned softmax."""
    model, *_ = unlearned_model(cfg)
    xp, orig = neighbours(cfg, kind, eps)
    p = masked_softmax(orig.double(), cfg.forget_classes)
    q = torch.softmax(predict_logits(model, xp, cfg.prof.eval_batch).double(), 1)
    return pd.DataFrame({"js": js_div(p, q).numpy(), "kl": kl_div(p, q).numpy()})


def relearning_curves(
    cfgs: Sequence[RunConfig],
    shots: Sequence[int] = (1, 5, 10, 50),
    epochs: int = 1,
    lrs: Sequence[float] = DEFAULT_RELEARN_LRS,
) -> pd.DataFrame:
    """Figure 2: Acc_f after fine-tuning on N forget shots vs Proto-Acc_f of PRA with the same N.

    Both attacks obey the same stealth budget (Acc_r may fall at most one point): PRA picks its
    alpha, fine-tuning its learning rate from ``lrs``.  The strongest rate's result, whatever it
    costs, is kept as well ("any acc_r" columns).
    """
    rows = []
    for cfg in cfgs:
        split = split_for(cfg)
        model, *_ = unlearned_model(cfg)
        attack = pra_for(cfg, model)
        device = resolve_device(cfg.device)
        xf, yf = split.forget_train
        for n in shots:
            idx = split.shot_indices(n, cfg.seed)
            tuned = relearn_sweep(
                model,
                (xf[idx], yf[idx]),
                split.forget_train,
                split.retain_train,
                lrs,
                unlearned_acc_r=attack.acc_r,
                epochs=epochs,
                seed=cfg.seed,
                device=device,
            )
            pra = attack.sweep(idx, cfg.pra_form, cfg.alphas)
            rows.append(
                {
                    "method": label(cfg),
                    "N": n,
                    "unlearned acc_f": attack.acc_f,
                    "unlearned acc_r": attack.acc_r,
                    "relearn acc_f": tuned.chosen_acc_f,
                    "relearn acc_r": tuned.chosen_acc_r,
                    "relearn lr": tuned.lr,
                    f"relearn acc_f (lr {tuned.lrs[-1]:g}, any acc_r)": tuned.acc_f[-1],
                    f"relearn acc_r (lr {tuned.lrs[-1]:g}, any acc_r)": tuned.acc_r[-1],
                    "PRA proto_acc_f": pra.chosen_proto_acc_f,
                    "PRA acc_r_star": pra.chosen_acc_r_star,
                    "PRA alpha": pra.alpha,
                }
            )
    return pd.DataFrame(rows)


def alpha_sweep(cfg: RunConfig, alphas: Sequence[float], form: str | None = None) -> pd.DataFrame:
    """Table 5: Proto-Acc_f and Acc*_r for each alpha (one embedding pass, then matrix products)."""
    split = split_for(cfg)
    model, *_ = unlearned_model(cfg)
    attack = pra_for(cfg, model)
    k = cfg.pra_k or cfg.prof.pra_shots
    idx = split.shot_indices(k, cfg.seed)
    pf, pr = attack.evaluate(attack.shot_prototypes(idx), form or cfg.pra_form, alphas)
    return pd.DataFrame(
        {
            "method": label(cfg),
            "alpha": list(alphas),
            "proto_acc_f": pf,
            "acc_r_star": pr,
            "acc_r": attack.acc_r,
        }
    )


def umap_features(cfg: RunConfig, per_class: int = 200, seed: int = 0) -> pd.DataFrame:
    """2-D UMAP of ``embed(x)`` on a class-balanced subsample of the training data (Figures 1, 3)."""
    import umap

    split = split_for(cfg)
    model = unlearned_model(cfg)[0] if cfg.method != "original" else original_model(cfg)[0]
    rng = np.random.default_rng(seed)
    y = split.y_train.numpy()
    idx = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    )
    emb = embed_all(model, split.x_train[idx]).numpy()
    xy = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1).fit_transform(emb)
    return pd.DataFrame(
        {
            "u1": xy[:, 0],
            "u2": xy[:, 1],
            "label": y[idx],
            "forget": np.isin(y[idx], split.forget_classes),
        }
    )


def plot_umaps(frames: dict[str, pd.DataFrame], title: str = ""):
    """Side-by-side UMAP panels; forget-class points drawn on top in red."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(frames), figsize=(3.6 * len(frames), 3.6), squeeze=False)
    for ax, (name, df) in zip(axes[0], frames.items(), strict=True):
        keep = df[~df.forget]
        ax.scatter(keep.u1, keep.u2, c=keep.label, cmap="tab10", s=3, alpha=0.35, linewidths=0)
        f = df[df.forget]
        ax.scatter(f.u1, f.u2, c="red", s=6, label="forget class", linewidths=0)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(loc="lower left", fontsize=7, markerscale=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
