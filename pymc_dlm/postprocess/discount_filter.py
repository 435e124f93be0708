r"""``kalman_filter`` for discounted models and learned observation variances.

At fixed parameters, the kernels' one forward pass run on the data
(:mod:`pymc_dlm.postprocess.discount_moments`: square-root steps where a proper prior is
vague against the noise, as in the log-likelihood; a full observation covariance
decorrelated in front of it, as there); the scan of :mod:`pymc_dlm.kalman.discount` (the
definition) runs instead when a member's log-likelihood is -inf. With a
learned variance the covariances it carries are in units of :math:`V`; here they are
reported at the current estimate: :math:`R_t` and :math:`Q_t` at :math:`S_{t-1}`,
:math:`C_t` at :math:`S_t` (West & Harrison 1997, §4.6, Table 4.3), and the one-step
forecast is Student-t with ``forecast_dof`` :math:`= \delta_V n_{t-1}` degrees of freedom,
location ``forecast_mean`` and squared scale ``forecast_cov``.

The smoother: given the parameters the discount's :math:`W_t` are functions of the filtered
covariances, which depend on which values are observed, not on the values; the model is then
a DLM with these known, time-varying :math:`W_t`, and the smoother of
:mod:`pymc_dlm.kalman.fixed_filter` (with its exact diffuse start) gives
:math:`E[\theta_t | y_{1:T}]` and its covariance exactly. With a learned static variance
(:math:`\delta_V = 1`) it runs at unit scale and the smoothed covariances are reported at
:math:`S_T`: :math:`\theta_t | y_{1:T}` is Student-t with :math:`n_T` degrees of freedom,
location ``smoothed_mean`` and scale matrix ``smoothed_cov`` (West & Harrison 1997, §4.7).
With a variance discount below 1 the means are the same unit-scale smoother's and each
covariance is reported at West & Harrison's smoothed estimate ``smoothed_scale``
(:func:`smoothed_scale`, §10.8): their convention, exact at t = T only.
"""

import functools
from typing import NamedTuple

import numpy as np
import pytensor
import pytensor.tensor as pt

from pymc_dlm.kalman import fixed_filter
from pymc_dlm.kalman.discount import LearnedScale, discount_filter_scan, discount_noise_factors
from pymc_dlm.model.checks import fixed_values
from pymc_dlm.model.discount import LearnedVariance
from pymc_dlm.postprocess.discount_moments import kernel_moments, symbolic_system

__all__ = ["discounted_moments"]


def _learned(obs_var):
    if not isinstance(obs_var, LearnedVariance):
        kind = type(obs_var).__name__
        raise TypeError(f"obs_var must be a pymc_dlm.LearnedVariance, got {kind}")
    return LearnedScale(obs_var.n0, obs_var.S0, obs_var.discount)


def discounted_moments(ss, obs, obs_diag, obs_var, arr, smooth=False):
    """The filter's moments (numpy, time on the axis before the core axes) and loglik.

    The graph is compiled once per structure (shapes, declared time variation, diffuse
    states, discounted blocks, learned or known variance) and kept: a grid of parameter
    values runs the compiled filter, it does not compile again.
    """
    n = ss.n_state
    discount = pt.ones(n) if ss.discount is None else ss.discount
    blocks = ss.discount_blocks if ss.discount is not None else np.zeros((n, n))
    learned = None if obs_var is None else _learned(obs_var)
    if learned is not None:
        obs, obs_diag = pt.ones(1), True
    scale = (1.0, 1.0, 1.0) if learned is None else tuple(learned)
    params = (ss.F, ss.G, ss.W_sqrt, obs, ss.m0, ss.C0_sqrt, discount, *scale)
    values = fixed_values(params)  # the caller checked that none is symbolic
    arr = np.asarray(arr, dtype="float64")
    key = _Structure(
        tuple(v.shape for v in values),
        arr.shape,
        frozenset(ss.time_varying),
        bool(obs_diag),
        tuple(bool(x) for x in ss.diffuse),
        blocks.tobytes(),
        learned is not None,
        ss.n_series,
        bool(smooth),
    )
    out = kernel_moments(key, values, arr)
    if out is None:  # a member the kernel cannot filter: the scan gives the moments
        fn, names = _compiled(key)
        out = dict(zip(names, fn(*values, arr)))
    if smooth:
        out.update(_smoothed(ss, values, arr, obs_diag, out))
    return out


class _Structure(NamedTuple):
    shapes: tuple
    y_shape: tuple
    time_varying: frozenset
    obs_diag: bool
    diffuse: tuple
    blocks: bytes
    learned: bool
    n_series: int
    smooth: bool


@functools.lru_cache(maxsize=32)
def _compiled(key):
    """The scan's filter of one structure, compiled: ``(function, output names)``."""
    inputs, y, system, learned = symbolic_system(key)
    F, G, _, obs, _, C0_sqrt, _, _, S0, _ = inputs
    tv = key.time_varying
    res = discount_filter_scan(system, y, learned, return_all=True)
    a, R, m, C, B = (
        res.predicted_mean,
        res.predicted_cov,
        res.filtered_mean,
        res.filtered_cov,
        res.filtered_diffuse,
    )
    F_t = F if "F" in tv else F[..., None, :, :]
    f = pt.sum(F_t * a[..., None, :], axis=-1)
    FRF = pt.matmul(pt.matmul(F_t, R), pt.swapaxes(F_t, -1, -2))
    out = {"loglik": res.loglik}
    if learned is None:
        V = obs[..., :, None] ** 2 * np.eye(key.n_series) if key.obs_diag else obs
        if "obs" not in tv:
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
    if key.smooth:
        C0 = pt.matmul(C0_sqrt, pt.swapaxes(C0_sqrt, -1, -2))
        C0 = C0 if learned is None else C0 / S0[..., None, None]
        out["noise_factor"] = discount_noise_factors(system, C0, res.filtered_cov, learned)
    if any(key.diffuse):
        out["filtered_diffuse_cov"] = pt.matmul(B, pt.swapaxes(B, -1, -2))
        A = pt.as_tensor(system.diffuse)
        B_prev = pt.concatenate([pt.broadcast_to(A, B[..., :1, :, :].shape), B[..., :-1, :, :]],
                                axis=-3)  # fmt: skip
        GB = pt.matmul(G if "G" in tv else G[..., None, :, :], B_prev)
        out["predicted_diffuse_cov"] = pt.matmul(GB, pt.swapaxes(GB, -1, -2))
    names = list(out)
    fn = pytensor.function(
        [*inputs, y], [out[k] for k in names], mode="FAST_RUN", on_unused_input="ignore"
    )
    return fn, names


def _smoothed(ss, values, arr, obs_diag, out):
    """Smoothed moments: the fixed-W smoother with the filter's :math:`W_t` (module doc)."""
    F, G, _, obs, m0, C0_sqrt, _, _, S0, dV = values
    learned = "scale" in out
    if learned:  # unit scale: the sigma blocks' noise is divided by S0 in the noise factors
        C0_sqrt = C0_sqrt / np.sqrt(S0)[..., None, None]
    system = {"F": F, "G": G, "W_sqrt": out.pop("noise_factor"), "obs": obs, "m0": m0,
              "C0_sqrt": C0_sqrt}  # fmt: skip
    res = fixed_filter.run(
        system, arr, time_varying=frozenset(ss.time_varying) | {"W"}, obs_diag=obs_diag,
        diffuse=np.asarray(ss.diffuse, dtype=bool), smooth=True,
    )  # fmt: skip
    cov = res["smoothed_cov"]
    if learned:
        scale = smoothed_scale(out["dof"], out["scale"], dV)
        cov = cov * scale[..., None, None]
        return {"smoothed_mean": res["smoothed_mean"], "smoothed_cov": cov,
                "smoothed_scale": scale}  # fmt: skip
    return {"smoothed_mean": res["smoothed_mean"], "smoothed_cov": cov}


def smoothed_scale(n, S, discount):
    r"""West & Harrison's smoothed estimate :math:`S_t(T) = 1/E[\phi_t | y_{1:T}]` (..., T).

    From the filter's :math:`n_t`, :math:`S_t` (..., T) and :math:`\delta_V` (batch shape):
    :math:`E[\phi_T] = 1/S_T`, :math:`E[\phi_t] = \delta_V E[\phi_{t+1}] + (1 - \delta_V)/S_t`
    (the mean of the backward draw of
    :func:`~pymc_dlm.postprocess.discount_states.precision_path`). With
    :math:`\delta_V = 1` every :math:`S_t(T) = S_T`.
    """
    dV = np.asarray(discount, dtype="float64")[..., None]
    dV = np.broadcast_to(dV, (*np.shape(S)[:-1], 1))[..., 0]
    E = np.empty(np.shape(S))
    E[..., -1] = 1.0 / S[..., -1]
    for t in range(np.shape(S)[-1] - 2, -1, -1):
        E[..., t] = dV * E[..., t + 1] + (1.0 - dV) / S[..., t]
    return 1.0 / E
