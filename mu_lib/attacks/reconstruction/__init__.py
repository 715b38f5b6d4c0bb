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

from .attack import (
    NewtonReconstruction,
    RidgeReconstruction,
    baseline_most_changed,
    baseline_public_mean,
    invert_features,
    reconstruct_newton,
    reconstruct_ridge,
)
from .common import cosine
from .experiment import (
    dp_reconstruction_curve,
    load_tabular,
    run_deletion_experiment,
    subsample_images,
    summarize,
)
from .models import (
    RFF,
    RidgeParams,
    SoftmaxParams,
    delete_and_refit_ridge,
    delete_and_retrain_softmax,
    fit_ridge,
    fit_softmax,
    make_rff,
    median_gamma,
    random_fourier_features,
    ridge_matrix,
    second_moment,
    softmax_hessian,
)
from .privacy import gaussian_sigma, privatize, ridge_sensitivity, softmax_sensitivity

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
