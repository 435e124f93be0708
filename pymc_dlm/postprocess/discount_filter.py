r"""``kalman_filter`` for discounted models and learned observation variances.

At fixed parameters, the filter of :mod:`pymc_dlm.kalman.discount` run on the data. With a
learned variance the covariances it carries are in units of :math:`V`; here they are
reported at the current estimate: :math:`R_t` and :math:`Q_t` at :math:`S_{t-1}`,
:math:`C_t` at :math:`S_t` (West & Harrison 1997, §4.6, Table 4.3), and the one-step
forecast is Student-t with ``forecast_dof`` :math:`= \delta_V n_{t-1}` degrees of freedom,
location ``forecast_mean`` and squared scale ``forecast_cov``.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt

from pymc_dlm.kalman.discount import LearnedScale, discount_filter_scan
from pymc_dlm.model.discount import LearnedVariance
from pymc_dlm.model.notation import SystemMatrices
from pymc_dlm.model.priors import diffuse_matrix

__all__ = ["discounted_moments"]


def _learned(obs_var):
    if not isinstance(obs_var, LearnedVariance):
        kind = type(obs_var).__name__
        raise TypeError(f"obs_var must be a pymc_dlm.LearnedVariance, got {kind}")
    return LearnedScale(obs_var.n0, obs_var.S0, obs_var.discount)


def discounted_moments(ss, obs, obs_diag, obs_var, arr):
    """The filter's moments (numpy, time on the axis before the core axes) and loglik."""
    n = ss.n_state
    discount = pt.ones(n) if ss.discount is None else ss.discount
    blocks = ss.discount_blocks if ss.discount is not None else np.zeros((n, n))
    learned = None if obs_var is None else _learned(obs_var)
    if learned is not None:
        obs, obs_diag = pt.ones(1), True
    system = SystemMatrices(
        ss.F, ss.G, ss.W_sqrt, obs, ss.m0, ss.C0_sqrt, ss.time_varying, obs_diag,
        diffuse_matrix(ss.diffuse), discount, blocks,
    )  # fmt: skip
    y = pt.as_tensor_variable(arr)
    res = discount_filter_scan(system, y, learned, return_all=True)
    a, R, m, C, B = (
        res.predicted_mean,
        res.predicted_cov,
        res.filtered_mean,
        res.filtered_cov,
        res.filtered_diffuse,
    )
    F = ss.F if "F" in ss.time_varying else ss.F[..., None, :, :]
    f = pt.sum(F * a[..., None, :], axis=-1)
    FRF = pt.matmul(pt.matmul(F, R), pt.swapaxes(F, -1, -2))
    out = {"loglik": res.loglik}
    if learned is None:
        V = obs[..., :, None] ** 2 * np.eye(ss.n_series) if obs_diag else obs
        if "obs" not in ss.time_varying:
            V = V[..., None, :, :]
        out.update(predicted_cov=R, filtered_cov=C, forecast_cov=FRF + V)
    else:
        S = res.scale
        S_prev = pt.concatenate([pt.shape_padright(learned.S0, 1) * pt.ones_like(S[..., :1]),
                                 S[..., :-1]], axis=-1)  # fmt: skip
        dof = res.dof
        n_prev = pt.concatenate([pt.shape_padright(learned.n0, 1) * pt.ones_like(dof[..., :1]),
                                 dof[..., :-1]], axis=-1)  # fmt: skip
        out.update(
            predicted_cov=R * S_prev[..., None, None],
            filtered_cov=C * S[..., None, None],
            forecast_cov=(FRF + 1.0) * S_prev[..., None, None],
            dof=dof,
            scale=S,
            forecast_dof=learned.discount[..., None] * n_prev,
        )
    out.update(predicted_mean=a, filtered_mean=m, forecast_mean=f)
    if ss.n_diffuse:
        out["filtered_diffuse_cov"] = pt.matmul(B, pt.swapaxes(B, -1, -2))
        A = pt.as_tensor(system.diffuse)
        B_prev = pt.concatenate([pt.broadcast_to(A, B[..., :1, :, :].shape), B[..., :-1, :, :]],
                                axis=-3)  # fmt: skip
        GB = pt.matmul(ss.G if "G" in ss.time_varying else ss.G[..., None, :, :], B_prev)
        out["predicted_diffuse_cov"] = pt.matmul(GB, pt.swapaxes(GB, -1, -2))
    names = list(out)
    values = pytensor.function([], [out[k] for k in names], mode="FAST_RUN")()
    return dict(zip(names, values))
