r"""``kalman_filter`` and ``kalman_smoother`` with a non-Gaussian family, at fixed values.

The mode of the signal is found by the approximating Gaussian model
(:mod:`pymc_dlm.laplace.mode`); the result holds the approximating model's moments at the
mode (filtered, and smoothed for the smoother: ``smoothed_mean`` is then the posterior mode
of the states), its pseudo-observations ``approx_obs`` (:math:`y^*_t`, NaN where ``y`` is
missing) and variances ``approx_var`` (:math:`A_t`), the mode of the linear predictor
``linear_predictor`` (:math:`\hat\eta_t = F_t\hat\theta_t + o_t`), and ``loglik``, the
Laplace log-likelihood (:func:`~pymc_dlm.laplace.mode.laplace_value`), the same number as the
:class:`~pymc_dlm.DLM` log-likelihood with that family.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§10.6–10.7.
"""

import numpy as np
import pytensor.tensor as pt

from pymc_dlm.kalman import fixed_filter
from pymc_dlm.laplace.importance import importance_draws
from pymc_dlm.laplace.mode import ModeNotFound, laplace_value, posterior_mode
from pymc_dlm.model.checks import fixed_value
from pymc_dlm.model.family import check_counts

__all__ = ["family_moments", "family_param", "numeric_offset"]

#: The approximating model's moments reported (its forecasts of y* are left out).
_KEPT = (
    "predicted_mean",
    "predicted_cov",
    "filtered_mean",
    "filtered_cov",
    "smoothed_mean",
    "smoothed_cov",
    "predicted_diffuse_cov",
    "filtered_diffuse_cov",
)


def numeric_offset(offset, shape, name="offset"):
    """``offset`` as float64 numbers broadcast to ``shape`` (..., T); 0 when ``None``."""
    if offset is None:
        return np.zeros(shape)
    value = fixed_value(offset)
    if value is None:
        raise TypeError(f"{name} must be fixed numbers (data), not a symbolic expression")
    value = np.asarray(value, dtype="float64")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite")
    try:
        return np.broadcast_to(value, shape)
    except ValueError as err:
        raise ValueError(
            f"{name} must broadcast to the data's shape {shape} (batch axes, time), "
            f"got shape {value.shape}"
        ) from err


def family_param(family):
    """The family's parameter as numbers (it must be fixed here)."""
    if family.param is None:
        return 0.0
    value = fixed_value(family.param)
    if value is None:
        raise TypeError(
            f"the parameter of family={family!r} must be fixed numbers here; for posterior "
            "draws use pymc_dlm.sample_states"
        )
    return np.asarray(value, dtype="float64")


def family_moments(ss, family, offset, arr, smooth, n_importance=None, random_seed=None):
    """The moments of the approximating model at the mode and the Laplace log-likelihood.

    With ``n_importance`` also the importance-sampling estimate of the exact log-likelihood
    (:mod:`pymc_dlm.laplace.importance`) and its standard error.
    """
    if ss.n_series != 1:
        raise ValueError(f"family={family!r} needs one series, got a model of {ss.n_series}")
    y = check_counts(family, arr[..., 0])
    offset = numeric_offset(offset, y.shape)
    param = family_param(family)
    obs = np.ones(1)
    values = fixed_filter.numeric_system(ss, pt.as_tensor_variable(obs))
    values.pop("obs")
    try:
        mode = posterior_mode(
            values, y, family, offset, param, time_varying=ss.time_varying,
            diffuse=np.asarray(ss.diffuse, dtype=bool),
        )  # fmt: skip
    except ModeNotFound as err:
        raise ValueError(
            f"the posterior mode of the signal under family={family!r} was not found ({err}); "
            "with diffuse states, data that a state can separate (a season with only zeros, "
            "for example) have no finite mode: give those states a proper C0"
        ) from err
    moments = fixed_filter.run(
        {**values, "obs": np.sqrt(mode.noise)[..., None]}, mode.pseudo[..., None],
        time_varying=frozenset(ss.time_varying) | {"obs"}, obs_diag=True,
        diffuse=np.asarray(ss.diffuse, dtype=bool), smooth=True,
    )  # fmt: skip
    out = {k: v for k, v in moments.items() if k in _KEPT}
    if not smooth:
        out.pop("smoothed_mean", None)
        out.pop("smoothed_cov", None)
    out["loglik"] = laplace_value(mode, y, family, offset, param)
    out["linear_predictor"] = mode.signal + offset
    out["approx_obs"] = mode.pseudo
    out["approx_var"] = np.where(np.isnan(y), np.nan, mode.noise)
    if n_importance is not None:
        if isinstance(n_importance, bool) or int(n_importance) != n_importance:
            raise ValueError(f"n_importance must be a positive even integer, got {n_importance}")
        found = importance_draws(
            values, y, family, offset, param, mode, time_varying=ss.time_varying,
            diffuse=np.asarray(ss.diffuse, dtype=bool), n=int(n_importance),
            rng=np.random.default_rng(random_seed), states=False,
        )  # fmt: skip
        out["loglik_importance"] = found.loglik
        out["loglik_importance_se"] = found.loglik_se
    elif random_seed is not None:
        raise TypeError(f"random_seed applies with n_importance, got random_seed={random_seed}")
    return out
