"""The defence: output perturbation calibrated to an (epsilon, delta) budget, with the
sensitivity bounds of both models."""

from __future__ import annotations

import math

import numpy as np

from ... import MuError
from .common import _as_theta, _check_lam


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
