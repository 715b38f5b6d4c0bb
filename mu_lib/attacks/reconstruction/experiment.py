"""The experiment driver: data sets, repeated deletions from one original model, the attack and
its baselines on each, with or without differential privacy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ... import MuError
from .attack import (
    baseline_most_changed,
    baseline_public_mean,
    invert_features,
    reconstruct_newton,
    reconstruct_ridge,
)
from .common import _augment, _check_lam, _check_public, _flat, _one_thread, cosine
from .models import (
    RidgeParams,
    SoftmaxParams,
    delete_and_refit_ridge,
    delete_and_retrain_softmax,
    fit_ridge,
    fit_softmax,
    make_rff,
    median_gamma,
    second_moment,
    softmax_hessian,
)
from .privacy import _clip_rows, privatize, ridge_sensitivity, softmax_sensitivity

TABULAR = ("diabetes", "breast-cancer")


def load_tabular(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A scikit-learn tabular data set, features standardised (the model owner's
    preprocessing; the attack works in that space). diabetes: float targets (regression);
    breast-cancer: int64 labels (two classes)."""
    from sklearn import datasets

    if name == "diabetes":
        x, y = datasets.load_diabetes(return_X_y=True)
        y = y.astype(np.float64)
    elif name == "breast-cancer":
        x, y = datasets.load_breast_cancer(return_X_y=True)
        y = y.astype(np.int64)
    else:
        raise MuError(f"tabular data set {name!r} unknown; choose one of {TABULAR}.")
    x = (x - x.mean(0)) / x.std(0)
    return x.astype(np.float64), y


def subsample_images(
    x: np.ndarray, y: np.ndarray, n: int | None = None, factor: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``n`` random images and average-pool them by ``factor`` (28x28 -> 14x14 with 2):
    keeps the chapter's attacks (which scale with the squared input or feature dimension) fast."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 4:
        raise MuError(f"images must be (N, C, H, W); got shape {x.shape}.")
    if n is not None and n < len(x):
        keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
        x, y = x[keep], y[keep]
    if factor > 1:
        nb, c, h, w = x.shape
        if h % factor or w % factor:
            raise MuError(f"factor={factor} must divide the image size {h}x{w}.")
        x = x.reshape(nb, c, h // factor, factor, w // factor, factor).mean((3, 5))
    return x, y


def _is_classification(y: np.ndarray) -> bool:
    return np.issubdtype(np.asarray(y).dtype, np.integer)


def run_deletion_experiment(
    x: np.ndarray,
    y: np.ndarray,
    n_trials: int = 20,
    kind: str = "ridge",
    public_fraction: float = 0.3,
    seed: int = 0,
    lam: float = 10.0,
    n_features: int = 200,
    gamma: float | None = None,
    max_train: int | None = None,
    invert_steps: int = 50,
    dp_epsilon: float | None = None,
    dp_delta: float = 1e-5,
    mechanism: str = "gaussian",
    keep_vectors: bool = False,
) -> list[dict]:
    """Delete ``n_trials`` random training points one at a time (each from the same original
    model) and attack each deletion; return one record per trial.

    ``x`` rows are flattened; a random ``public_fraction`` becomes the attacker's public data,
    the rest (at most ``max_train`` points) the training set. ``lam`` is the L2 penalty of the
    summed objective; the larger it is relative to the data term, the better the public estimate
    of the curvature, hence the attack (the penalty is known exactly, the data term is not).
    ``kind="ridge"``: ridge regression on the raw inputs (one-hot targets when ``y`` holds
    integer labels); ``kind="logistic"``: softmax regression on ``n_features`` random Fourier
    features (``gamma=None``: median heuristic on public data).

    Records hold cosines of the attack (``cos_recon``, public estimate; ``cos_exact``, exact
    matrix of the remaining data) and of the two baselines, in the space the attack
    reconstructs (inputs for ridge, features for logistic; logistic also has ``*_input`` cosines
    after :func:`invert_features`, unless ``invert_steps < 0``), and whether the label was
    recovered (for a real-valued target: within 0.1 standard deviations). With ``dp_epsilon``
    (``math.inf``: no noise) both released models are perturbed, each with budget
    ``(dp_epsilon, dp_delta)``; fits then penalise the intercept and inputs / targets are
    clipped to bounds taken from the public data. ``keep_vectors`` adds the deleted point, the
    reconstruction and the most-changed public sample (flattened inputs) to each record.
    """
    return _experiment(
        x, y, n_trials=n_trials, kind=kind, public_fraction=public_fraction, seed=seed, lam=lam,
        n_features=n_features, gamma=gamma, max_train=max_train, invert_steps=invert_steps,
        epsilons=[dp_epsilon], delta=dp_delta, mechanism=mechanism, keep=keep_vectors,
    )  # fmt: skip


def _experiment(
    x, y, *, n_trials, kind, public_fraction, seed, lam, n_features, gamma, max_train,
    invert_steps, epsilons, delta, mechanism, keep,
) -> list[dict]:  # fmt: skip
    """Shared driver: the fits are made once and attacked under every budget in ``epsilons``
    (all ``None``: no privacy; otherwise all numbers)."""
    if kind not in ("ridge", "logistic"):
        raise MuError(f"kind={kind!r}: use 'ridge' or 'logistic'.")
    lam = _check_lam(lam)
    if not 0 < public_fraction < 1:
        raise MuError(f"public_fraction={public_fraction}: must lie strictly between 0 and 1.")
    dp = epsilons[0] is not None
    if any((e is not None) != dp for e in epsilons):
        raise MuError("mix of None and numbers in epsilons; use math.inf for 'no noise'.")
    for e in epsilons:
        if dp and not e > 0:
            raise MuError(f"dp_epsilon={e}: must be > 0 (math.inf for no noise).")
    xf = _flat(x)
    y = np.asarray(y)
    if len(xf) != len(y):
        raise MuError(f"x has {len(xf)} rows but y has {len(y)}; pass one label per row.")
    if kind == "logistic" and not _is_classification(y):
        raise MuError(
            "kind='logistic' needs integer class labels; use kind='ridge' for real-valued targets."
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(xf))
    n_pub = int(round(public_fraction * len(xf)))
    pub, tr = perm[:n_pub], perm[n_pub:]
    if max_train is not None:
        tr = tr[:max_train]
    _check_public(xf[pub])
    if n_trials > len(tr):
        raise MuError(f"n_trials={n_trials} exceeds the {len(tr)} training points; use fewer.")
    deleted = rng.choice(len(tr), size=n_trials, replace=False)
    split = (xf[pub], xf[tr], y[pub], y[tr], deleted)
    # one noise stream per budget, the same for every budget: the curves differ only by scale
    noise = [np.random.default_rng(seed + 1) for _ in epsilons]
    priv = (epsilons, delta, mechanism, noise) if dp else None
    with _one_thread():
        if kind == "ridge":
            return _ridge_trials(*split, lam, priv, keep)
        return _logistic_trials(*split, lam, n_features, gamma, seed, invert_steps, priv, keep)


def _ridge_trials(x_pub, x_tr, y_pub, y_tr, deleted, lam, priv, keep):
    classify = _is_classification(y_tr)
    dp = priv is not None
    n_cls = int(max(y_tr.max(), y_pub.max()) + 1) if classify else 0
    t_tr = np.eye(n_cls)[y_tr] if classify else y_tr.astype(np.float64)
    y_scale = np.std(y_tr) if not classify else 1.0
    epsilons, sens = [None], None
    if dp:  # bounds from public data only, then clip the private data to them
        epsilons, delta, mech, noise = priv
        xb = float(np.linalg.norm(x_pub, axis=1).max())
        yb = 1.0 if classify else float(np.abs(y_pub).max())
        x_tr = _clip_rows(x_tr, xb)
        if not classify:
            t_tr = np.clip(t_tr, -yb, yb)
        sens = ridge_sensitivity(len(x_tr), lam, xb, yb)

    def release(theta: np.ndarray, j: int) -> np.ndarray:
        return privatize(theta, sens, epsilons[j], delta, mech, noise[j]) if dp else theta

    before = fit_ridge(x_tr, t_tr, lam, reg_intercept=dp)
    theta_b = [release(before.theta, j) for j in range(len(epsilons))]
    pred_pub = [RidgeParams(tb, lam, dp).predict(x_pub) for tb in theta_b]
    n_after = len(x_tr) - 1
    cov_pub = second_moment(x_pub)
    mean_pub = baseline_public_mean(x_pub)
    gram_all = _augment(x_tr).T @ _augment(x_tr)
    records = []
    for t, i in enumerate(deleted):
        after = delete_and_refit_ridge(x_tr, t_tr, i, lam, reg_intercept=dp)
        z_i = np.append(x_tr[i], 1.0)
        cov_exact = (gram_all - np.outer(z_i, z_i)) / n_after
        for j, eps in enumerate(epsilons):
            theta_a = release(after.theta, j)
            rec = reconstruct_ridge(theta_b[j], theta_a, cov_pub, lam, n_after, dp)
            rec_exact = reconstruct_ridge(theta_b[j], theta_a, cov_exact, lam, n_after, dp)
            changed = baseline_most_changed(
                x_pub, lambda _, j=j: pred_pub[j], RidgeParams(theta_a, lam, dp).predict
            )
            if classify:
                label = int(np.argmax(rec.y))
                ok, ok_exact = label == y_tr[i], int(np.argmax(rec_exact.y)) == y_tr[i]
            else:
                label = float(rec.y)
                ok = abs(label - float(t_tr[i])) <= 0.1 * y_scale
                ok_exact = abs(float(rec_exact.y) - float(t_tr[i])) <= 0.1 * y_scale
            r = {
                "trial": t,
                "index": int(i),
                "kind": "ridge",
                "space": "input",
                "cos_recon": cosine(rec.x, x_tr[i]),
                "cos_exact": cosine(rec_exact.x, x_tr[i]),
                "cos_mean": cosine(mean_pub, x_tr[i]),
                "cos_most_changed": cosine(changed, x_tr[i]),
                "label_true": int(y_tr[i]) if classify else float(y_tr[i]),
                "label_recovered": label,
                "label_ok": bool(ok),
                "label_ok_exact": bool(ok_exact),
                "epsilon": math.inf if eps is None else float(eps),
            }
            if keep:
                r.update(x_deleted=x_tr[i].copy(), x_recon=rec.x, x_most_changed=changed)
            records.append(r)
    return records


def _logistic_trials(
    x_pub, x_tr, y_pub, y_tr, deleted, lam, n_features, gamma, seed, invert_steps, priv, keep
):  # fmt: skip
    dp = priv is not None
    n_cls = int(max(y_tr.max(), y_pub.max()) + 1)
    gamma = median_gamma(x_pub, seed=seed) if gamma is None else gamma
    rff = make_rff(x_tr.shape[1], n_features, gamma, seed)
    f_tr, f_pub = rff(x_tr), rff(x_pub)  # |phi|^2 <= 2: no clipping needed for DP
    epsilons, sens = [None], None
    if dp:
        epsilons, delta, mech, noise = priv
        sens = softmax_sensitivity(lam, math.sqrt(2.0))

    def release(theta: np.ndarray, j: int) -> SoftmaxParams:
        if dp:
            theta = privatize(theta, sens, epsilons[j], delta, mech, noise[j])
        return SoftmaxParams(theta, lam, dp)

    before = fit_softmax(f_tr, y_tr, n_cls, lam, reg_intercept=dp)
    n_after = len(f_tr) - 1
    rel_b = [release(before.theta, j) for j in range(len(epsilons))]
    h_pub = [softmax_hessian(rb, f_pub, n_after) for rb in rel_b]  # at the released params
    prob_pub = [rb.predict_proba(f_pub) for rb in rel_b]
    h_train = softmax_hessian(before, f_tr) if not dp else None
    prob_tr = before.predict_proba(f_tr)
    decoder = fit_ridge(f_pub, x_pub, 1e-2) if invert_steps >= 0 else None
    mean_f, mean_x = baseline_public_mean(f_pub), baseline_public_mean(x_pub)
    records = []
    for t, i in enumerate(deleted):
        after = delete_and_retrain_softmax(f_tr, y_tr, i, before, n_cls)
        for j, eps in enumerate(epsilons):
            rel_a = release(after.theta, j)
            rec = reconstruct_newton(rel_b[j], rel_a, h_pub[j])
            r = {
                "trial": t,
                "index": int(i),
                "kind": "logistic",
                "space": "features",
                "cos_recon": cosine(rec.features, f_tr[i]),
            }
            if h_train is not None:  # Hessian of exactly the remaining training data
                zi, pi = np.append(f_tr[i], 1.0), prob_tr[i]
                h_rest = h_train - np.kron(np.diag(pi) - np.outer(pi, pi), np.outer(zi, zi))
                rec_exact = reconstruct_newton(rel_b[j], rel_a, h_rest)
                r["cos_exact"] = cosine(rec_exact.features, f_tr[i])
            _, m = baseline_most_changed(  # on public features: same argmax, no recomputation
                f_pub, lambda _, j=j: prob_pub[j], rel_a.predict_proba, return_index=True
            )
            r["cos_mean"] = cosine(mean_f, f_tr[i])
            r["cos_most_changed"] = cosine(f_pub[m], f_tr[i])
            if decoder is not None:
                x_rec = invert_features(
                    rec.features, rff, x_pub, steps=invert_steps, decoder=decoder
                )
                r["cos_recon_input"] = cosine(x_rec, x_tr[i])
                r["cos_mean_input"] = cosine(mean_x, x_tr[i])
                r["cos_most_changed_input"] = cosine(x_pub[m], x_tr[i])
            r.update(
                label_true=int(y_tr[i]),
                label_recovered=rec.label,
                label_ok=rec.label == int(y_tr[i]),
                epsilon=math.inf if eps is None else float(eps),
            )
            if keep:
                r.update(x_deleted=x_tr[i].copy(), x_most_changed=x_pub[m].copy())
                if decoder is not None:
                    r["x_recon"] = x_rec
            records.append(r)
    return records


def summarize(records: Sequence[dict]) -> dict:
    """Means of the cosine and label fields of a list of trial records (pandas-free)."""
    out: dict = {"n_trials": len(records)}
    if not records:
        return out
    for key in records[0]:
        vals = [r.get(key) for r in records]
        if key.startswith("cos_") or all(isinstance(v, (bool, np.bool_)) for v in vals):
            out[key] = float(np.mean(vals))
    return out


def dp_reconstruction_curve(
    x: np.ndarray,
    y: np.ndarray,
    epsilons: Sequence[float],
    kind: str = "ridge",
    n_trials: int = 10,
    seed: int = 0,
    public_fraction: float = 0.3,
    lam: float = 10.0,
    dp_delta: float = 1e-5,
    mechanism: str = "gaussian",
    **kw,
) -> list[dict]:
    """Mean reconstruction cosine (with baselines and label accuracy) for each privacy budget
    per release (``math.inf``: the same private fit released without noise).

    The fits, the split and the deleted points are shared by all budgets, and so are the noise
    draws up to their scale, so the curve's shape reflects the budget and not resampling.
    Other keywords go to the experiment as in :func:`run_deletion_experiment`; inversion to
    pixels is skipped unless ``invert_steps`` is given.
    """
    if len(epsilons) == 0:
        raise MuError("epsilons is empty; pass budgets such as [0.1, 1, 10, math.inf].")
    opts = {"n_features": 200, "gamma": None, "max_train": None, "invert_steps": -1}
    if set(kw) - set(opts):
        raise MuError(f"unknown options {sorted(set(kw) - set(opts))}; allowed: {sorted(opts)}.")
    recs = _experiment(
        x, y, n_trials=n_trials, kind=kind, public_fraction=public_fraction, seed=seed, lam=lam,
        epsilons=[float(e) for e in epsilons], delta=dp_delta, mechanism=mechanism, keep=False,
        **{**opts, **kw},
    )  # fmt: skip
    out = []
    for eps in epsilons:
        sel = [r for r in recs if r["epsilon"] == float(eps)]
        s = summarize(sel)
        s["epsilon"] = float(eps)
        s["cos_recon_std"] = float(np.std([r["cos_recon"] for r in sel]))
        out.append(s)
    return out
