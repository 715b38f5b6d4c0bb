"""The attacks: the deleted point from the parameter difference (exact for ridge, a Newton step
for softmax regression), features back to inputs, and the two public-data baselines."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ... import MuError
from .common import _as_theta, _check_lam, _check_pair, _check_public, _flat, _one_thread, _reg_diag
from .models import RFF, RidgeParams, fit_ridge


@dataclass(frozen=True)
class RidgeReconstruction:
    """What the ridge attack recovers: the input, the target and the before-model residual."""

    x: np.ndarray
    y: np.ndarray
    residual: np.ndarray


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
