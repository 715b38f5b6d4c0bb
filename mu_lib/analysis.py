"""Computations behind the chapters' figures (kept out of the notebooks so they stay thin).
Needs pandas; UMAP needs umap-learn (book extra)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .attacks.pra import check_alpha
from .attacks.relearn import DEFAULT_RELEARN_LRS, relearn_sweep
from .experiment import (
    RunConfig,
    neighbours,
    original_model,
    ou,
    pra_for,
    resolve,
    split_for,
    store,
    unlearn_config,
    unlearned_model,
)
from .infer import embed_all, predict_logits
from .labels import config_label, method_label
from .metrics import js_div, kl_div, masked_softmax
from .util import resolve_device


def label(cfg: RunConfig) -> str:
    """The display label of a configuration (``Spotter (λ2 = 1)``, ``SalUn + Spotter``)."""
    return config_label(cfg)


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
    return pd.DataFrame(
        [
            {"method": label(cfg), **row}
            for cfg in cfgs
            for row in _relearning_rows(cfg, tuple(shots), epochs, tuple(lrs))
        ]
    )


def _relearning_rows(cfg: RunConfig, shots, epochs: int, lrs) -> list[dict]:
    """One configuration's rows of :func:`relearning_curves`, through the store: the 20 fine-tunings
    and their full-set evaluations are most of Section 3.2's cold time (cpu: about 4 minutes per
    model), and a warm build reads them back."""
    conf = {
        "what": "relearning_curves",
        "unlearned": unlearn_config(cfg),
        "shots": list(shots),
        "epochs": epochs,
        "lrs": [float(v) for v in lrs],
        "pra_form": cfg.pra_form,
        "alphas": [float(a) for a in cfg.alphas],
        "device": resolve_device(cfg.device),  # where _compute_relearning fine-tunes
    }
    return store().cached("results", conf, lambda: {"rows": _compute_relearning(cfg, conf)})["rows"]


def _compute_relearning(cfg: RunConfig, conf: dict) -> list[dict]:
    split = split_for(cfg)
    model, *_ = unlearned_model(cfg)
    attack = pra_for(cfg, model)
    xf, yf = split.forget_train
    rows = []
    for n in conf["shots"]:
        idx = split.shot_indices(n, cfg.seed)
        tuned = relearn_sweep(
            model,
            (xf[idx], yf[idx]),
            split.forget_train,
            split.retain_train,
            conf["lrs"],
            unlearned_acc_r=attack.acc_r,
            epochs=conf["epochs"],
            seed=cfg.seed,
            device=conf["device"],
        )
        pra = attack.sweep(idx, cfg.pra_form, cfg.alphas)
        rows.append(
            {
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
    return rows


def ou_by_radius(cfg: RunConfig, eps_grid: Sequence[float]) -> dict[float, float]:
    """OU@eps (PGD neighbours, JS) of ``cfg``'s unlearned model at each radius, one store entry.
    The same numbers as ``run(cfg, eval_eps=e).metrics["ou_pgd"]`` (one function, one seed)
    without the rest of a run's evaluation: the claims page's radius evidence needs only these.
    """
    p = cfg.prof
    eps = [float(e) for e in eps_grid]
    r = resolve(cfg)
    conf = {  # the unlearned model's configuration already names the seed and the device
        "what": "ou_by_radius",
        "unlearned": r.unlearned,
        "eps": eps,
        "pgd": [p.pgd_step, p.pgd_steps, p.eval_batch],
        "neighbours": cfg.neighbours,
    }

    def build() -> dict:
        model = unlearned_model(r)[0]
        return {"ou": [ou(cfg, model, "pgd", e) for e in eps]}

    return dict(zip(eps, store().cached("results", conf, build)["ou"], strict=True))


def alpha_sweep(cfg: RunConfig, alphas: Sequence[float], form: str | None = None) -> pd.DataFrame:
    """Table 5: Proto-Acc_f and Acc*_r for each alpha (one embedding pass, then matrix products)."""
    alphas = [check_alpha(a) for a in alphas]  # a bad alpha fails before the model is built
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


def fit_umap(emb: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D UMAP (15 neighbours, min_dist 0.1) of ``emb``, seeded, without umap's warnings."""
    import umap

    with warnings.catch_warnings():
        # umap warns that a fixed random_state disables parallelism: n_jobs=1 is what we ask for
        warnings.filterwarnings("ignore", category=UserWarning, module=r"umap(\.|$)")
        warnings.filterwarnings("ignore", message=".*n_jobs.*random_state.*", category=UserWarning)
        reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1)
        threads = torch.get_num_threads()
        try:
            return reducer.fit_transform(emb)
        finally:
            # umap's fit resets numba's thread count to one per core, and numba and torch share
            # the OpenMP runtime: torch then ran two threads in a chapter the book gives one, and
            # two chapters on two cores slowed 2.7x (inference 2,403 -> 889 images/s; Section
            # 3.2's relearning cell took 867 s in a cold build, 152 s once fixed)
            torch.set_num_threads(threads)


def umap_features(cfg: RunConfig, per_class: int = 200, seed: int = 0) -> pd.DataFrame:
    """2-D UMAP of ``embed(x)`` on a class-balanced subsample of the training data (Figures 1, 3)."""
    split = split_for(cfg)
    model = unlearned_model(cfg)[0] if cfg.method != "original" else original_model(cfg)[0]
    rng = np.random.default_rng(seed)
    y = split.y_train.numpy()
    idx = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    )
    emb = embed_all(model, split.x_train[idx]).numpy()
    xy = fit_umap(emb, seed)
    return pd.DataFrame(
        {
            "u1": xy[:, 0],
            "u2": xy[:, 1],
            "label": y[idx],
            "forget": np.isin(y[idx], split.forget_classes),
        }
    )


def plot_umaps(frames: dict[str, pd.DataFrame], title: str = "", class_names=None):
    """UMAP panels, two per row at the page's width; retained classes coloured (legend below the
    panels), forget-class points drawn on top in red."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    cols = min(2, len(frames))
    rows = -(-len(frames) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.6 * rows), squeeze=False)
    cmap = plt.get_cmap("tab10")
    retained = sorted({int(c) for df in frames.values() for c in df.label[~df.forget]})
    for ax, (name, df) in zip(axes.flat, frames.items(), strict=False):
        keep = df[~df.forget]
        ax.scatter(
            keep.u1,
            keep.u2,
            c=[cmap(int(c) % 10) for c in keep.label],
            s=4,
            alpha=0.45,
            linewidths=0,
        )
        f = df[df.forget]
        ax.scatter(f.u1, f.u2, c="red", s=8, linewidths=0)
        ax.set_title(method_label(name), fontsize=12)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(frames) :]:
        ax.axis("off")
    names = class_names or {}
    handles = [Line2D([], [], marker="o", ls="", color="red", label="forget class")]
    handles += [
        Line2D([], [], marker="o", ls="", color=cmap(c % 10), label=str(names.get(c, c)))
        for c in retained
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 6),
        fontsize=10,
        title="retained classes (colour) and the forget class (red)",
        frameon=False,
    )
    if title:
        fig.suptitle(title, fontsize=13)
    fig.tight_layout(rect=(0, 0.12 if rows == 1 else 0.08, 1, 1))
    return fig
