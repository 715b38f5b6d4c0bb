"""The released models: ridge regression and softmax regression on random Fourier features,
fitted before and after deleting one training point."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ... import MuError
from .common import (
    _as_theta,
    _augment,
    _check_index,
    _check_lam,
    _check_public,
    _flat,
    _one_thread,
    _reg_diag,
)


@dataclass(frozen=True)
class RidgeParams:
    """Ridge fit: ``theta`` is (d+1,) or (d+1, k), last row the intercept."""

    theta: np.ndarray
    lam: float
    reg_intercept: bool = False

    @property
    def w(self) -> np.ndarray:
        return self.theta[:-1]

    @property
    def b(self) -> np.ndarray:
        return self.theta[-1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _augment(_flat(x)) @ self.theta


def second_moment(x: np.ndarray) -> np.ndarray:
    """``E[z z^T]`` of augmented rows ``z = [x, 1]``: the attacker's covariance estimate."""
    x = _check_public(_flat(x))
    z = _augment(x)
    return z.T @ z / len(z)


def ridge_matrix(x: np.ndarray, lam: float, scale: float = 1.0, reg_intercept: bool = False):
    """``scale * Z^T Z + lam D``: the matrix of the normal equations (``scale`` > 1 extrapolates
    a public sample to the training-set size)."""
    lam = _check_lam(lam)
    z = _augment(_flat(x))
    return scale * (z.T @ z) + np.diag(_reg_diag(z.shape[1], lam, reg_intercept))


def fit_ridge(x: np.ndarray, y: np.ndarray, lam: float, reg_intercept: bool = False) -> RidgeParams:
    """Closed-form ridge regression; the intercept is not penalised unless asked (DP needs it)."""
    lam = _check_lam(lam)
    x = _flat(x)
    if len(x) == 0:
        raise MuError("cannot fit ridge regression on 0 points; pass a non-empty training set.")
    y = np.asarray(y, dtype=np.float64)
    if len(y) != len(x):
        raise MuError(f"x has {len(x)} rows but y has {len(y)}; pass one target per row.")
    z = _augment(x)
    a = z.T @ z + np.diag(_reg_diag(z.shape[1], lam, reg_intercept))
    theta = np.linalg.solve(a, z.T @ y)
    return RidgeParams(theta, lam, reg_intercept)


def delete_and_refit_ridge(
    x: np.ndarray, y: np.ndarray, index: int, lam: float, reg_intercept: bool = False
) -> RidgeParams:
    """Exact deletion: the ridge fit on every point but ``index``."""
    x = _flat(x)
    i = _check_index(index, len(x))
    keep = np.arange(len(x)) != i
    return fit_ridge(x[keep], np.asarray(y)[keep], lam, reg_intercept)


@dataclass(frozen=True)
class RFF:
    """Random Fourier features ``sqrt(2/D) cos(x W + b)`` of the RBF kernel
    ``exp(-gamma ||x - x'||^2)``; public (seeded), so the attacker knows them too."""

    weights: np.ndarray  # (d, D)
    offset: np.ndarray  # (D,)
    gamma: float

    @property
    def dim(self) -> int:
        return self.offset.shape[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return math.sqrt(2.0 / self.dim) * np.cos(_flat(x) @ self.weights + self.offset)


def make_rff(in_dim: int, dim: int, gamma: float, seed: int = 0) -> RFF:
    """Draw the feature map (frequencies ~ N(0, 2 gamma I), phases ~ U[0, 2 pi))."""
    if dim <= 0 or gamma <= 0:
        raise MuError(f"dim={dim}, gamma={gamma}: both must be > 0 (e.g. dim=200, gamma=0.05).")
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, math.sqrt(2.0 * gamma), size=(in_dim, dim))
    b = rng.uniform(0.0, 2 * math.pi, size=dim)
    return RFF(w, b, float(gamma))


def random_fourier_features(x: np.ndarray, dim: int, gamma: float, seed: int = 0) -> np.ndarray:
    """Fixed nonlinear features of ``x`` (rows flattened); same seed, same map."""
    x = _flat(x)
    return make_rff(x.shape[1], dim, gamma, seed)(x)


def median_gamma(x: np.ndarray, max_points: int = 300, seed: int = 0) -> float:
    """Median heuristic: ``1 / median ||x_i - x_j||^2`` on a subsample."""
    x = _check_public(_flat(x))
    rng = np.random.default_rng(seed)
    s = x[rng.permutation(len(x))[:max_points]]
    d2 = ((s[:, None, :] - s[None, :, :]) ** 2).sum(-1)
    med = np.median(d2[np.triu_indices(len(s), 1)]) if len(s) > 1 else 1.0
    return 1.0 / med if med > 0 else 1.0


@dataclass(frozen=True)
class SoftmaxParams:
    """Softmax regression ``theta`` (k, D+1): weights and, in the last column, the biases."""

    theta: np.ndarray
    lam: float
    reg_intercept: bool = False

    def logits(self, features: np.ndarray) -> np.ndarray:
        return _augment(_flat(features)) @ self.theta.T

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        z = self.logits(features)
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)


def _softmax_objective(flat: np.ndarray, z: np.ndarray, onehot: np.ndarray, reg: np.ndarray):
    """Summed cross-entropy plus ``(1/2) sum reg * theta^2`` and its gradient (sum, not mean:
    matches the scale of the attack's Hessian)."""
    theta = flat.reshape(onehot.shape[1], z.shape[1])
    logits = z @ theta.T
    m = logits.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(1))
    prob = np.exp(logits - lse[:, None])
    loss = (lse - (logits * onehot).sum(1)).sum() + 0.5 * (reg * theta * theta).sum()
    grad = (prob - onehot).T @ z + reg * theta
    return loss, grad.ravel()


def fit_softmax(
    features: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    lam: float,
    init: SoftmaxParams | np.ndarray | None = None,
    reg_intercept: bool = False,
    max_iter: int = 2000,
    tol: float = 1e-8,
) -> SoftmaxParams:
    """L2-regularised softmax regression solved to optimum (L-BFGS, float64, deterministic).

    Stops when every gradient coordinate is below ``tol``. Warm-starting from the
    before-parameters makes retraining after a deletion converge to the new optimum precisely,
    which the attack relies on (its signal is a parameter change of order 1/n).
    """
    from scipy.optimize import minimize

    lam = _check_lam(lam)
    z = _augment(_flat(features))
    y = np.asarray(y)
    if len(z) == 0 or len(y) != len(z):
        raise MuError(
            f"features ({len(z)} rows) and labels ({len(y)}) must be non-empty and of equal length."
        )
    k, p = int(n_classes), z.shape[1]
    if y.min() < 0 or y.max() >= k:
        raise MuError(f"labels must lie in 0..{k - 1}; got {int(y.min())}..{int(y.max())}.")
    theta0 = np.zeros((k, p)) if init is None else _as_theta(init)
    if theta0.shape != (k, p):
        raise MuError(f"init has shape {theta0.shape}, expected ({k}, {p}).")
    onehot = np.eye(k)[y]
    reg = np.broadcast_to(_reg_diag(p, lam, reg_intercept), (k, p))
    with _one_thread():
        res = minimize(
            _softmax_objective,
            theta0.ravel(),
            args=(z, onehot, reg),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": tol, "ftol": 0.0, "maxcor": 30},
        )
    return SoftmaxParams(res.x.reshape(k, p).copy(), lam, reg_intercept)


def delete_and_retrain_softmax(
    features: np.ndarray,
    y: np.ndarray,
    index: int,
    before: SoftmaxParams,
    n_classes: int,
    **kw,
) -> SoftmaxParams:
    """Exact deletion: retrain without point ``index``, warm-started from ``before``."""
    features = _flat(features)
    i = _check_index(index, len(features))
    keep = np.arange(len(features)) != i
    return fit_softmax(
        features[keep],
        np.asarray(y)[keep],
        n_classes,
        before.lam,
        init=before,
        reg_intercept=before.reg_intercept,
        **kw,
    )


def _softmax_curvature(params: SoftmaxParams, features: np.ndarray) -> np.ndarray:
    """Summed Hessian of the cross-entropy over ``features``, shape (k(D+1), k(D+1)),
    in the row-major order of ``theta``: sum_n (diag p_n - p_n p_n^T) kron z_n z_n^T."""
    z = _augment(_flat(features))
    prob = params.predict_proba(features)
    s = prob[:, :, None] * (np.eye(prob.shape[1])[None] - prob[:, None, :])  # (n, k, k)
    k, p = prob.shape[1], z.shape[1]
    h = np.empty((k, p, k, p))
    for a in range(k):
        ta = (s[:, a, :, None] * z[:, None, :]).reshape(len(z), k * p)
        h[a] = (z.T @ ta).reshape(p, k, p)
    return h.reshape(k * p, k * p)


def softmax_hessian(
    params: SoftmaxParams, features: np.ndarray, n: int | None = None
) -> np.ndarray:
    """Hessian of the training objective, estimated from ``features`` rescaled to ``n`` points
    (``n=None``: no rescaling, i.e. ``features`` are the training data themselves)."""
    features = _check_public(_flat(features))
    h = _softmax_curvature(params, features)
    if n is not None:
        h *= n / len(features)
    k, p = params.theta.shape
    h[np.diag_indices_from(h)] += np.tile(_reg_diag(p, params.lam, params.reg_intercept), k)
    return h
