"""Reconstructing a deleted training point from the parameters before and after its deletion.

After the setting of Bertran et al. (NeurIPS 2024, "Reconstruction attacks on machine
unlearning"): an attacker sees the parameters of a model before and after the *exact* deletion
(retraining without) one training point and owns public data from the same distribution.

* **Ridge regression with an intercept.** Write ``z = [x, 1]`` and ``A = Z^T Z + lam D`` (``D``
  the identity with the intercept entry zeroed unless the intercept is penalised). Subtracting
  the normal equations of the two fits gives, exactly,
  ``A_rest (theta_before - theta_after) = z_del (y_del - theta_before^T z_del)^T``, where
  ``A_rest`` is built from the remaining training points. The right-hand side is rank one and its
  last coordinate is the residual (because ``z_del[-1] = 1``): dividing by it yields ``x_del``
  with the correct scale and sign, and ``y_del = residual + theta_before^T z_del``. The attacker
  does not know ``A_rest``; ``n * E_public[z z^T] + lam D`` stands in for it.
* **Softmax regression on random Fourier features.** The optimality conditions give, to first
  order, ``H_rest (theta_after - theta_before) ~ grad loss(z_del, y_del; theta_before)`` (a Newton
  step). That gradient is ``(p - onehot(y)) z^T`` with ``z = [phi(x), 1]``: rank one again, its
  bias column fixes the scale of ``phi(x)``, and the single negative entry of ``p - onehot(y)``
  names the label. ``H_rest`` is again estimated on public data.
* **Defence.** Output perturbation (Gaussian or Laplace noise on the released parameters,
  calibrated to an (epsilon, delta) budget) bounds what any attack can recover.

Core dependencies only: numpy and scipy (which scikit-learn brings); torch tensors are accepted
as inputs. Optimisation is float64 L-BFGS, deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .. import MuError

__all__ = [
    "RidgeParams",
    "RidgeReconstruction",
    "RFF",
    "SoftmaxParams",
    "NewtonReconstruction",
    "cosine",
    "second_moment",
    "ridge_matrix",
    "fit_ridge",
    "delete_and_refit_ridge",
    "reconstruct_ridge",
    "make_rff",
    "random_fourier_features",
    "fit_softmax",
    "delete_and_retrain_softmax",
    "softmax_hessian",
    "reconstruct_newton",
    "invert_features",
    "baseline_public_mean",
    "baseline_most_changed",
    "gaussian_sigma",
    "ridge_sensitivity",
    "softmax_sensitivity",
    "privatize",
    "load_tabular",
    "subsample_images",
    "median_gamma",
    "run_deletion_experiment",
    "summarize",
    "dp_reconstruction_curve",
]

# ------------------------------------------------------------------------------------ helpers


def _flat(x) -> np.ndarray:
    """Rows as float64 vectors: images (N, C, H, W) become (N, C*H*W); torch tensors welcome."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        return x[:, None]
    return x.reshape(len(x), int(np.prod(x.shape[1:])))


def _one_thread():
    """BLAS on one thread: these problems are small (a few thousand parameters), and on a busy
    2-core machine multithreaded BLAS was measured 40x slower than one thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(1)


def _augment(x: np.ndarray) -> np.ndarray:
    """Append the constant feature that carries the intercept (the attack's scale anchor)."""
    return np.hstack([x, np.ones((len(x), 1))])


def _check_lam(lam: float) -> float:
    if not (isinstance(lam, (int, float, np.floating)) and math.isfinite(lam) and lam > 0):
        raise MuError(
            f"lam={lam!r}: the ridge / L2 regulariser must be a finite number > 0 "
            "(it makes the fit unique; try lam=1.0)."
        )
    return float(lam)


def _check_public(public_x: np.ndarray) -> np.ndarray:
    if public_x is None or len(public_x) == 0:
        raise MuError(
            "public data is empty: the attacker needs public samples from the training "
            "distribution (pass a non-empty array, e.g. raise public_fraction above 0)."
        )
    return public_x


def _check_index(index: int, n: int) -> int:
    if not (-n <= int(index) < n) or n == 0:
        raise MuError(
            f"deleted index {index} is out of range for a training set of {n} points "
            f"(use an index in 0..{n - 1})."
        )
    return int(index) % n


def _as_theta(theta) -> np.ndarray:
    return np.asarray(getattr(theta, "theta", theta), dtype=np.float64)


def _check_pair(before: np.ndarray, after: np.ndarray) -> None:
    if before.shape != after.shape:
        raise MuError(
            f"parameter shapes differ: before {before.shape} vs after {after.shape}; pass the "
            "parameters of the same model (same features and outputs) before and after deletion."
        )


def _reg_diag(p: int, lam: float, reg_intercept: bool) -> np.ndarray:
    """lam on every weight; on the intercept only if it is penalised (needed for DP)."""
    d = np.full(p, lam)
    if not reg_intercept:
        d[-1] = 0.0
    return d


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two flattened vectors (0 if either is zero)."""
    a = np.ravel(np.asarray(a, dtype=np.float64))
    b = np.ravel(np.asarray(b, dtype=np.float64))
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0 or not (np.isfinite(na) and np.isfinite(nb)):
        return 0.0
    return float(a @ b / (na * nb))


# ------------------------------------------------------------------------------------- ridge


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


@dataclass(frozen=True)
class RidgeReconstruction:
    """What the ridge attack recovers: the input, the target and the before-model residual."""

    x: np.ndarray
    y: np.ndarray
    residual: np.ndarray


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


def reconstruct_ridge(
    theta_before,
    theta_after,
    cov_estimate: np.ndarray,
    lam: float,
    n: int,
    reg_intercept: bool = False,
) -> RidgeReconstruction:
    """Recover the deleted ``(x, y)`` from a ridge parameter difference.

    ``cov_estimate`` is ``E[z z^T]`` of augmented rows (see :func:`second_moment`) and ``n`` the
    number of points the *after* model was trained on; ``n * cov_estimate + lam D`` stands in for
    the normal-equation matrix of the remaining data. With that matrix exact, the recovery is
    exact; with a public estimate it is approximate. For several outputs the rank-one matrix is
    denoised by its leading singular pair before the intercept coordinate fixes scale and sign.
    """
    lam = _check_lam(lam)
    tb, ta = _as_theta(theta_before), _as_theta(theta_after)
    _check_pair(tb, ta)
    p = tb.shape[0]
    cov = np.asarray(cov_estimate, dtype=np.float64)
    if cov.shape != (p, p):
        raise MuError(
            f"cov_estimate has shape {cov.shape} but the parameters need ({p}, {p}): build it "
            "with second_moment(x) on inputs of the model's feature dimension."
        )
    if not n or n <= 0:
        raise MuError(f"n={n}: pass the number of training points of the after-model (> 0).")
    a = n * cov + np.diag(_reg_diag(p, lam, reg_intercept))
    v = a @ (tb - ta)  # = z_del * residual^T (exactly, for the exact matrix)
    # rank-one factor of v (for one output, v itself); several outputs: leading singular vector
    u = v if v.ndim == 1 else np.linalg.svd(v, full_matrices=False)[0][:, 0]
    if not np.isfinite(u).all() or abs(u[-1]) <= 1e-12 * np.abs(u).max(initial=0.0):
        raise MuError(
            "the intercept coordinate of the parameter change is zero: the deleted point had "
            "zero residual (or the parameters did not change); nothing can be recovered."
        )
    z = u / u[-1]  # the intercept entry of z_del is 1: fixes scale and sign
    r = np.asarray(v[-1]) if v.ndim == 1 else v.T @ z / (z @ z)
    y = r + z @ tb
    return RidgeReconstruction(z[:-1], y, r)


# ------------------------------------------------------------------ random Fourier features


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


# ------------------------------------------------------------------------ softmax regression


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


@dataclass(frozen=True)
class NewtonReconstruction:
    """Newton-step attack output: features of the deleted point, its label and the estimated
    loss gradient factor ``p - onehot(y)``."""

    features: np.ndarray
    label: int
    gradient_factor: np.ndarray


def reconstruct_newton(theta_before, theta_after, hessian: np.ndarray) -> NewtonReconstruction:
    """One Newton step: ``hessian @ (theta_after - theta_before)`` approximates the deleted
    point's loss gradient ``(p - onehot(y)) [phi, 1]^T``; its leading singular pair gives both
    factors, the bias coordinate fixes the scale and sign of ``phi``, and the label is the class
    with the most negative gradient coefficient."""
    tb, ta = _as_theta(theta_before), _as_theta(theta_after)
    _check_pair(tb, ta)
    if tb.ndim != 2:
        raise MuError(f"softmax parameters must be a (classes, features+1) matrix, got {tb.shape}.")
    k, p = tb.shape
    h = np.asarray(hessian, dtype=np.float64)
    if h.shape != (k * p, k * p):
        raise MuError(
            f"hessian has shape {h.shape}, expected {(k * p, k * p)}; build it with "
            "softmax_hessian(params_before, public_features, n)."
        )
    g = (h @ (ta - tb).ravel()).reshape(k, p)
    u, s, vt = np.linalg.svd(g, full_matrices=False)
    v = vt[0]
    if v[-1] == 0:
        raise MuError("the bias coordinate of the estimated gradient is zero; nothing to recover.")
    phi = v[:-1] / v[-1]
    c = s[0] * u[:, 0] * v[-1]
    return NewtonReconstruction(phi, int(np.argmin(c)), c)


def invert_features(
    phi: np.ndarray,
    rff: RFF,
    public_x: np.ndarray,
    lam: float = 1e-2,
    steps: int = 50,
    prior: float = 1.0,
    decoder: RidgeParams | None = None,
) -> np.ndarray:
    """Map recovered features back to an input.

    First a linear decoder (ridge from public features to public inputs) gives a starting point
    inside the data's span; then ``steps`` of L-BFGS refine ``x`` so that ``phi(x)`` matches,
    with a pull of weight ``prior`` towards the decoder's output (the cosine features are
    periodic, so unconstrained inversion wanders), and the result is clipped to the public range.
    Pass ``decoder`` (``fit_ridge(rff(public_x), public_x, lam)``) to reuse it across calls.
    """
    public_x = _check_public(_flat(public_x))
    dec = fit_ridge(rff(public_x), public_x, lam) if decoder is None else decoder
    x0 = dec.predict(np.asarray(phi)[None])[0]
    lo, hi = public_x.min(), public_x.max()
    x0 = np.clip(x0, lo, hi)
    if steps <= 0:
        return x0
    from scipy.optimize import minimize

    target = np.asarray(phi, dtype=np.float64)
    scale = float(target @ target) or 1.0
    c = math.sqrt(2.0 / rff.dim)

    def objective(x: np.ndarray):
        u = x @ rff.weights + rff.offset
        diff = c * np.cos(u) - target
        dx = x - x0
        loss = diff @ diff / scale + prior * (dx @ dx) / len(x0)
        grad = rff.weights @ (-2.0 * c * np.sin(u) * diff) / scale + 2 * prior * dx / len(x0)
        return loss, grad

    with _one_thread():
        res = minimize(
            objective,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=[(lo, hi)] * len(x0),
            options={"maxiter": steps},
        )
    return np.clip(res.x, lo, hi)


# ---------------------------------------------------------------------------------- baselines


def baseline_public_mean(public_x: np.ndarray) -> np.ndarray:
    """Guess without looking at the models: the average public sample."""
    public_x = np.asarray(_check_public(public_x), dtype=np.float64)
    return public_x.mean(axis=0)


def baseline_most_changed(
    public_x: np.ndarray,
    predict_before: Callable[[np.ndarray], np.ndarray],
    predict_after: Callable[[np.ndarray], np.ndarray],
    return_index: bool = False,
):
    """Guess the public sample whose prediction moved most (Euclidean norm of the change):
    uses both models but no knowledge of how training works."""
    public_x = _check_public(public_x)
    pb = np.asarray(predict_before(public_x), dtype=np.float64).reshape(len(public_x), -1)
    pa = np.asarray(predict_after(public_x), dtype=np.float64).reshape(len(public_x), -1)
    i = int(np.argmax(np.linalg.norm(pb - pa, axis=1)))
    return (public_x[i], i) if return_index else public_x[i]


# ----------------------------------------------------------------------- differential privacy


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float = 1e-5) -> float:
    """Smallest noise std of the *analytic* Gaussian mechanism (Balle & Wang, 2018) that is
    (epsilon, delta)-DP for L2-sensitivity ``sensitivity``; valid for every epsilon > 0 (the
    classic ``sqrt(2 ln(1.25/delta))`` formula only holds for epsilon < 1)."""
    from scipy.special import log_ndtr, ndtr

    if not (epsilon > 0 and 0 < delta < 1 and sensitivity > 0):
        raise MuError(
            f"epsilon={epsilon}, delta={delta}, sensitivity={sensitivity}: need epsilon > 0, "
            "0 < delta < 1 and sensitivity > 0."
        )

    def privacy_loss(sigma: float) -> float:
        a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
        return float(ndtr(a - b) - np.exp(epsilon + log_ndtr(-a - b)))

    lo, hi = 1e-12 * sensitivity, sensitivity
    while privacy_loss(hi) > delta:
        hi *= 2
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if privacy_loss(mid) > delta:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-9:
            break
    return hi


def ridge_sensitivity(n: int, lam: float, x_bound: float, y_bound: float) -> float:
    """L2-sensitivity of the fully penalised ridge minimiser to adding/removing one point.

    The summed objective is ``lam``-strongly convex, so one point moves the minimiser by at
    most ``|grad loss| / lam``. With ``|x| <= x_bound`` (so ``|z| <= R = sqrt(x_bound^2 + 1)``),
    ``|y| <= y_bound`` and ``|theta| <= y_bound sqrt(n / lam)`` (compare the objective with that
    of ``theta = 0``), the per-point gradient is at most ``(|theta| R + y_bound) R``.
    """
    lam = _check_lam(lam)
    r = math.sqrt(x_bound**2 + 1)
    theta_bound = y_bound * math.sqrt(n / lam)
    return (theta_bound * r + y_bound) * r / lam


def softmax_sensitivity(lam: float, feature_bound: float) -> float:
    """L2-sensitivity of the fully penalised softmax-regression minimiser: the per-point
    gradient ``(p - onehot(y)) z^T`` has norm <= sqrt(2) |z|, and strong convexity divides by
    ``lam``. Random Fourier features have ``|phi|^2 <= 2``, so ``|z| <= sqrt(3)``."""
    lam = _check_lam(lam)
    return math.sqrt(2.0) * math.sqrt(feature_bound**2 + 1) / lam


def privatize(
    theta: np.ndarray,
    sensitivity: float,
    epsilon: float,
    delta: float = 1e-5,
    mechanism: str = "gaussian",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Output perturbation: release ``theta`` plus noise calibrated to the budget.

    ``gaussian``: (epsilon, delta)-DP with the analytic Gaussian mechanism; ``laplace``:
    pure epsilon-DP with per-coordinate scale ``sqrt(p) * sensitivity / epsilon`` (L1
    sensitivity bounded by ``sqrt(p)`` times the L2 one). ``epsilon = inf`` releases as is.
    """
    theta = _as_theta(theta)
    rng = rng if rng is not None else np.random.default_rng(0)
    if epsilon == math.inf:
        return theta.copy()
    if mechanism == "gaussian":
        sigma = gaussian_sigma(sensitivity, epsilon, delta)
        return theta + rng.normal(0.0, sigma, size=theta.shape)
    if mechanism == "laplace":
        if not epsilon > 0:
            raise MuError(f"epsilon={epsilon}: must be > 0.")
        scale = math.sqrt(theta.size) * sensitivity / epsilon
        return theta + rng.laplace(0.0, scale, size=theta.shape)
    raise MuError(f"mechanism={mechanism!r}: use 'gaussian' or 'laplace'.")


def _clip_rows(x: np.ndarray, bound: float) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x * np.minimum(1.0, bound / np.maximum(norms, 1e-300))


# --------------------------------------------------------------------------------- experiment

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
