"""Shared helpers of the reconstruction attack: input flattening, argument checks, cosine."""

from __future__ import annotations

import math

import numpy as np

from ... import MuError


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
