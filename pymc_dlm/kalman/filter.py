r"""The Kalman filter as a ``pytensor.scan`` over time (square-root form).

Timing (R ``dlm``): the prior :math:`\theta_0 \sim N(m_0, C_0)` sits at time 0; step
:math:`t = 1..T` predicts :math:`\theta_t` (:math:`a_t, R_t`), forecasts :math:`y_t`
(:math:`f_t, Q_t`) and conditions on it (:math:`m_t, C_t`). Missing values (NaN in ``y``)
are handled exactly: a missing component's row of F is zeroed and its noise decoupled, so it
contributes exactly 0 to the log-likelihood and nothing to the update.

References
----------
Durbin & Koopman (2012), §4.3 (filter), §4.10 (missing observations), §7.2 (likelihood).
Kailath, Sayed & Hassibi (2000), *Linear Estimation*, ch. 12 (array algorithms).
"""

import pytensor
import pytensor.tensor as pt

from pymc_dlm.kalman.linalg import triangularize
from pymc_dlm.kalman.prepare import (
    FilterResult,
    observation_factor,
    prepare,
    system_inputs,
    time_last,
)
from pymc_dlm.kalman.scanargs import scan_inputs, time_first
from pymc_dlm.kalman.steps import gaussian_logpdf, predict, update
from pymc_dlm.kalman.univariate import univariate_filter_scan

__all__ = ["filter_scan"]


def _square(C0_factor, n):
    r"""An upper factor (..., n, n) of :math:`C_0` from one (..., k, n) with any k.

    A ``C0_sqrt`` (n, k) with k < n gets rows of zeros, one with k > n is triangularized:
    :math:`U^\top U` is unchanged either way.
    """
    k = C0_factor.type.shape[-2]
    if k is not None and k < n:
        zeros = pt.zeros((*C0_factor.shape[:-2], n - k, n), dtype=C0_factor.dtype)
        return pt.concatenate([C0_factor, zeros], axis=-2)
    if k is not None and k > n:
        return triangularize(C0_factor)
    return C0_factor


def filter_scan(system, y, *, return_all=False):
    r"""Run the square-root Kalman filter over ``y``.

    Parameters
    ----------
    system : SystemMatrices
        The model, with observation noise (see :mod:`pymc_dlm.model.notation`).
    y : TensorVariable (..., T, p)
        Observations; NaN marks a missing value.
    return_all : bool
        Also return predicted and filtered moments (for the numerical filter and smoother).

    Returns
    -------
    FilterResult

    Notes
    -----
    A model with diffuse states (``system.diffuse`` not ``None``) runs the univariate filter
    of :mod:`pymc_dlm.kalman.univariate` (exact diffuse initialisation) instead; its
    log-likelihood is the diffuse one of Durbin & Koopman (2012, §7.2.2), ``-inf`` when the
    data do not identify every diffuse state.
    """
    if system.discount is not None:
        raise ValueError(
            "a discounted system runs pymc_dlm.kalman.discount.discount_filter_scan, whose W_t "
            "follow the filter's covariances; filter_scan would ignore the discount"
        )
    if system.diffuse is not None:
        return univariate_filter_scan(system, y, return_all=return_all)
    tv = system.time_varying
    _, m0, C0_factor = prepare(system, y)
    n = system.G.type.shape[-1]
    observed = ~pt.isnan(y)
    y0 = pt.switch(observed, y, 0.0)

    inputs = scan_inputs(
        {"y": time_first(y0, 1), "observed": time_first(observed, 1)},
        system_inputs(system),
        tv,
    )

    def step(*args):
        mats, (m, C_factor) = inputs.unpack(args, 2)
        pred = predict(m, C_factor, mats["G"], mats["W"])
        obs_mask = mats["observed"]
        F = pt.switch(obs_mask[..., :, None], mats["F"], 0.0)
        V_factor = observation_factor(mats["obs"], obs_mask, system.obs_diag)
        upd = update(pred.mean, pred.cov_factor, mats["y"], F, V_factor)
        n_obs = pt.sum(obs_mask, axis=-1)
        ll = gaussian_logpdf(upd.white, upd.forecast_factor, n_obs)
        new_m = pt.specify_shape(upd.mean, m.type.shape)
        new_C = pt.specify_shape(upd.cov_factor, C_factor.type.shape)
        out = [new_m, new_C, ll]
        if return_all:
            out += [pred.mean, pred.cov_factor]
        return out

    init_C = pt.specify_shape(_square(C0_factor, n), (*(None,) * (C0_factor.ndim - 2), n, n))
    m0 = pt.specify_shape(m0, (*(None,) * (m0.ndim - 1), n))
    outputs_info = [m0, init_C, None] + ([None, None] if return_all else [])
    outs = pytensor.scan(
        step,
        sequences=inputs.sequences,
        outputs_info=outputs_info,
        non_sequences=inputs.fixed,
        strict=True,
        return_updates=False,
    )
    ms, Cs, lls = outs[:3]
    loglik_t = pt.moveaxis(lls, 0, -1)
    result = FilterResult(pt.sum(loglik_t, axis=-1), loglik_t)
    if return_all:
        a, R = outs[3:]
        result = result._replace(
            predicted_mean=time_last(a, 1),
            predicted_factor=time_last(R, 2),
            filtered_mean=time_last(ms, 1),
            filtered_factor=time_last(Cs, 2),
        )
    return result
