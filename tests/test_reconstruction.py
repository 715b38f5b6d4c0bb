"""Reconstruction of a deleted point from the parameter difference (mu_lib.attacks.reconstruction).

The settings below are those of notebooks/x2_reconstruction.md, so "beats the baselines on
every data set of the chapter" is checked on the chapter's own configuration.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mu_lib import MuError
from mu_lib.attacks import reconstruction as rc
from mu_lib.data import load_raw

LAM = 10.0  # the chapter's default penalty
PUBLIC = 0.3


def _mean(records, key):
    return float(np.mean([r[key] for r in records]))


@pytest.fixture(scope="module")
def digits():
    x, y = load_raw("digits", train=True)
    return np.asarray(x), np.asarray(y)


def _fashion():
    try:
        x, y = load_raw("fashion-mnist", True)
    except MuError as e:  # not installed on this machine
        pytest.skip(str(e))
    return rc.subsample_images(x, y, n=3000, factor=2, seed=0)


def _dataset(name, digits):
    if name == "digits":
        return digits
    if name == "fashion-mnist":
        return _fashion()
    return rc.load_tabular(name)


# ----------------------------------------------------------------------------------- ridge


@pytest.mark.parametrize("name", ["breast-cancer", "diabetes", "digits"])
def test_ridge_exact_matrix_recovers_point_and_target(name, digits):
    x, y = _dataset(name, digits)
    x = x.reshape(len(x), -1).astype(np.float64)
    classify = name != "diabetes"
    t = np.eye(int(y.max()) + 1)[y] if classify else y
    before = rc.fit_ridge(x, t, LAM)
    for i in (0, 17, len(x) - 1):
        after = rc.delete_and_refit_ridge(x, t, i, LAM)
        rest = np.delete(x, i, axis=0)
        rec = rc.reconstruct_ridge(before, after, rc.second_moment(rest), LAM, len(rest))
        assert rc.cosine(rec.x, x[i]) > 0.999
        np.testing.assert_allclose(rec.x, x[i], atol=1e-6 * (1 + np.abs(x[i]).max()))
        np.testing.assert_allclose(rec.y, t[i], rtol=1e-6, atol=1e-6)
        if classify:
            assert int(np.argmax(rec.y)) == y[i]


def test_ridge_scalar_target_sign_and_scale():
    """Scalar target: the intercept coordinate must fix the sign (a negated guess fails)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 5)) + 2.0
    y = x @ rng.normal(size=5) + rng.normal(size=200)
    before, after = rc.fit_ridge(x, y, 1.0), rc.delete_and_refit_ridge(x, y, 7, 1.0)
    rec = rc.reconstruct_ridge(before, after, rc.second_moment(np.delete(x, 7, 0)), 1.0, 199)
    np.testing.assert_allclose(rec.x, x[7], rtol=1e-8)
    assert abs(float(rec.y) - y[7]) < 1e-8
    # the attacker's direction alone (without the intercept anchor) is only known up to sign
    assert rc.cosine(-rec.x, x[7]) < -0.999


@pytest.mark.parametrize("name", ["breast-cancer", "diabetes", "digits", "fashion-mnist"])
def test_ridge_public_estimate_beats_baselines(name, digits):
    x, y = _dataset(name, digits)
    recs = rc.run_deletion_experiment(
        x, y, n_trials=20, kind="ridge", public_fraction=PUBLIC, seed=0, lam=LAM
    )
    recon = _mean(recs, "cos_recon")
    assert recon > _mean(recs, "cos_mean") + 0.02
    assert recon > _mean(recs, "cos_most_changed") + 0.02
    assert _mean(recs, "cos_exact") > 0.999
    assert recon < 0.9999  # public data only approximates the remaining training data


# ------------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("name", ["breast-cancer", "digits"])
def test_newton_softmax_recovers_label_and_beats_mean(name, digits):
    x, y = _dataset(name, digits)
    recs = rc.run_deletion_experiment(
        x, y, n_trials=8, kind="logistic", public_fraction=PUBLIC, seed=1, lam=LAM
    )
    assert _mean(recs, "label_ok") >= 0.75
    assert _mean(recs, "cos_recon") > _mean(recs, "cos_mean") + 0.1
    assert _mean(recs, "cos_recon_input") > _mean(recs, "cos_mean_input")
    assert _mean(recs, "cos_exact") > 0.99


def test_newton_step_on_hand_built_gradient():
    """The Newton attack reads phi and the label off a rank-one gradient exactly."""
    rng = np.random.default_rng(0)
    k, d = 4, 6
    phi = rng.normal(size=d)
    p = np.array([0.1, 0.6, 0.2, 0.1])
    g = np.outer(p - np.eye(k)[1], np.append(phi, 1.0))
    h = np.diag(rng.uniform(1, 3, size=k * (d + 1)))
    before = rng.normal(size=(k, d + 1))
    after = before + np.linalg.solve(h, g.ravel()).reshape(k, d + 1)
    rec = rc.reconstruct_newton(before, after, h)
    np.testing.assert_allclose(rec.features, phi, rtol=1e-9)
    assert rec.label == 1
    np.testing.assert_allclose(rec.gradient_factor, p - np.eye(k)[1], atol=1e-12)


def test_random_fourier_features_approximate_rbf_kernel():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    f = rc.random_fourier_features(x, 4000, 0.5, seed=2)
    k = np.exp(-0.5 * ((x[:, None] - x[None]) ** 2).sum(-1))
    assert np.abs(f @ f.T - k).max() < 0.1
    np.testing.assert_array_equal(f, rc.random_fourier_features(x, 4000, 0.5, seed=2))


# ------------------------------------------------------------------------------ baselines


def test_baselines():
    pub = np.array([[0.0, 1.0], [2.0, 0.0], [4.0, 4.0]])
    np.testing.assert_allclose(rc.baseline_public_mean(pub), [2.0, 5.0 / 3.0])
    before = lambda q: q.sum(1)  # noqa: E731
    after = lambda q: q.sum(1) + np.array([0.1, -3.0, 1.0])  # noqa: E731
    np.testing.assert_array_equal(rc.baseline_most_changed(pub, before, after), pub[1])


# ---------------------------------------------------------------------- differential privacy


def test_gaussian_sigma_analytic():
    s1 = rc.gaussian_sigma(1.0, 1.0, 1e-5)
    assert 3.6 < s1 < 3.9  # below the classic sqrt(2 ln(1.25/delta)) = 4.84
    sig = [rc.gaussian_sigma(1.0, e, 1e-5) for e in (0.1, 1, 10, 100)]
    assert np.all(np.diff(sig) < 0)
    assert rc.gaussian_sigma(2.0, 1.0, 1e-5) == pytest.approx(2 * s1, rel=1e-6)


@pytest.mark.parametrize(
    "name,kind,lam", [("digits", "logistic", 100.0), ("breast-cancer", "ridge", 1000.0)]
)
def test_dp_noise_destroys_reconstruction(name, kind, lam, digits):
    x, y = _dataset(name, digits)
    curve = rc.dp_reconstruction_curve(
        x, y, [0.1, 1.0, 1e6, math.inf], kind=kind, n_trials=8, seed=0, lam=lam
    )
    cos = [c["cos_recon"] for c in curve]
    assert cos[3] > 0.9  # no noise: the attack works on the fully penalised fit too
    assert cos[2] > cos[0] + 0.5  # a clear gap between a huge and a small budget
    assert cos[1] < curve[1]["cos_mean"]  # at epsilon = 1 the attack is worse than guessing
    assert cos[0] < 0.3


def test_privatize_mechanisms():
    theta = np.zeros((3, 4))
    rng = np.random.default_rng(0)
    g = rc.privatize(theta, 1.0, 1.0, mechanism="gaussian", rng=rng)
    lap = rc.privatize(theta, 1.0, 1.0, mechanism="laplace", rng=rng)
    assert g.shape == lap.shape == theta.shape and np.abs(g).max() > 0 and np.abs(lap).max() > 0
    np.testing.assert_array_equal(rc.privatize(theta, 1.0, math.inf), theta)
    with pytest.raises(MuError, match="gaussian"):
        rc.privatize(theta, 1.0, 1.0, mechanism="uniform")


# --------------------------------------------------------------------------------- errors


def test_errors():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    before = rc.fit_ridge(x, y, 1.0)
    cov = rc.second_moment(x)
    with pytest.raises(MuError, match="shapes differ"):
        rc.reconstruct_ridge(before.theta, before.theta[:-1], cov, 1.0, 29)
    with pytest.raises(MuError, match="shapes differ"):
        rc.reconstruct_newton(np.zeros((3, 5)), np.zeros((2, 5)), np.eye(15))
    with pytest.raises(MuError, match="cov_estimate"):
        rc.reconstruct_ridge(before, before, np.eye(3), 1.0, 29)
    with pytest.raises(MuError, match="public data is empty"):
        rc.baseline_public_mean(np.empty((0, 3)))
    with pytest.raises(MuError, match="public data is empty"):
        rc.second_moment(np.empty((0, 3)))
    with pytest.raises(MuError, match="public data is empty"):
        rc.baseline_most_changed(np.empty((0, 3)), lambda q: q, lambda q: q)
    for lam in (0.0, -1.0, math.nan):
        with pytest.raises(MuError, match="lam="):
            rc.fit_ridge(x, y, lam)
    with pytest.raises(MuError, match="lam="):
        rc.reconstruct_ridge(before, before, cov, 0.0, 29)
    with pytest.raises(MuError, match="lam="):
        rc.fit_softmax(x, (y > 0).astype(int), 2, 0.0)
    with pytest.raises(MuError, match="out of range"):
        rc.delete_and_refit_ridge(x, y, 30, 1.0)
    f = rc.random_fourier_features(x, 8, 0.5)
    sm = rc.fit_softmax(f, (y > 0).astype(int), 2, 1.0)
    with pytest.raises(MuError, match="out of range"):
        rc.delete_and_retrain_softmax(f, (y > 0).astype(int), -31, sm, 2)
    with pytest.raises(MuError, match="zero residual"):  # nothing was deleted
        rc.reconstruct_ridge(before, before, cov, 1.0, 29)
    with pytest.raises(MuError, match="n_trials"):
        rc.run_deletion_experiment(x, y, n_trials=100)
    with pytest.raises(MuError, match="public_fraction"):
        rc.run_deletion_experiment(x, y, n_trials=2, public_fraction=0.0)
