"""Observation noise, given once on the distribution (never inside components)."""

import numpy as np
import pytensor.tensor as pt

from pymc_dlm.model.checks import (
    as_float_tensor,
    check_sigma,
    constraint,
    known_value,
    static_dim,
)

__all__ = ["observation_constraint", "observation_noise"]


def observation_noise(sigma_obs, obs_cov, n_series, *, time_varying=False):
    """Parse ``sigma_obs`` or ``obs_cov`` into (tensor, is_diagonal).

    ``sigma_obs`` is a scalar or has length ``n_series`` (standard deviations, diagonal V);
    ``obs_cov`` is an (n_series, n_series) positive definite covariance. With
    ``time_varying`` either carries a time axis before its core axes.
    """
    if (sigma_obs is None) == (obs_cov is None):
        raise TypeError(
            "give exactly one of sigma_obs (standard deviations) or obs_cov (a covariance)"
        )
    tv = int(bool(time_varying))
    if sigma_obs is not None:
        sd = check_sigma(sigma_obs, "sigma_obs")
        if tv and sd.ndim < 1:
            raise ValueError("sigma_obs must have a leading time axis when obs_time_varying=True")
        if n_series == 1:
            # One series: every axis but time is a batch axis (a univariate value has no
            # series axis), so sigma_obs of shape (B,) gives B independent series.
            return sd[..., None], True
        if sd.ndim > tv and static_dim(sd, -1) not in (1, n_series):
            raise ValueError(
                f"sigma_obs must be a scalar or have length {n_series} (the number of series), "
                f"got shape {tuple(sd.type.shape)}"
            )
        if sd.ndim == tv:
            sd = sd[..., None]
        return sd * pt.ones(n_series), True
    V = as_float_tensor(obs_cov, "obs_cov", min_ndim=2 + tv)
    if static_dim(V, -1) != n_series or static_dim(V, -2) != n_series:
        raise ValueError(
            f"obs_cov must be ({n_series}, {n_series}) (n_series squared), "
            f"got shape {tuple(V.type.shape)}"
        )
    value = known_value(V)
    if value is not None:
        if not np.all(np.isfinite(value)):
            raise ValueError("obs_cov must be finite")
        if not np.allclose(value, np.swapaxes(value, -1, -2)):
            raise ValueError("obs_cov must be symmetric")
        if np.linalg.eigvalsh(value).min() <= 0:
            raise ValueError("obs_cov must be positive definite")
    return V, False


def observation_constraint(obs, obs_diag, *, time_varying=False):
    """Validity of symbolic standard deviations from :func:`observation_noise`, or ``None``.

    ``sigma_obs`` enters the likelihood only through its square, so a negative symbolic value
    must be flagged as invalid explicitly; the condition is over the batch axes (every series
    and every time step must pass). A symbolic ``obs_cov`` that is not positive definite fails
    its Cholesky factorisation inside the filter instead.
    """
    if not obs_diag:
        return None
    return constraint(obs, low=0.0, core_ndim=1 + int(bool(time_varying)))
