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

from typing import NamedTuple

import pytensor
import pytensor.tensor as pt

from pymc_dlm.kalman.linalg import mT
from pymc_dlm.kalman.scanargs import scan_inputs, time_first
from pymc_dlm.kalman.steps import gaussian_logpdf, predict, update
from pymc_dlm.model.blocks import lead_shape

__all__ = [
    "FilterResult",
    "batch_shape",
    "filter_scan",
    "observation_factor",
    "prepare",
    "system_inputs",
]


class FilterResult(NamedTuple):
    r"""Filter output, time on axis -2 (means) or -3 (factors), batch axes in front.

    ``loglik`` (...,): :math:`\log p(y_{1:T})`; ``loglik_t`` (..., T): its one-step terms
    :math:`\log p(y_t | y_{1:t-1})`; ``predicted_mean`` :math:`a_t` (..., T, n);
    ``predicted_factor`` :math:`U_{R,t}` (..., T, n, n); ``filtered_mean`` :math:`m_t`;
    ``filtered_factor`` :math:`U_{C,t}`. Entries are ``None`` when not requested.

    With diffuse states (``system.diffuse`` not ``None``) the factors are those of the finite
    parts :math:`P_{*}` during the diffuse period, and ``predicted_diffuse`` /
    ``filtered_diffuse`` (..., T, n, d) are factors :math:`B_t` of the diffuse parts,
    :math:`P_{\infty,t} = B_t B_t^\top`, exactly zero once the diffuse period is over (they
    are ``None`` for a proper prior). The diffuse filter also gives ``filtered_cov``
    (..., T, n, n), the covariances :math:`P_{*,t|t}` themselves, so that a caller needing
    one of them factors only that one.
    """

    loglik: object
    loglik_t: object
    predicted_mean: object = None
    predicted_factor: object = None
    filtered_mean: object = None
    filtered_factor: object = None
    predicted_diffuse: object = None
    filtered_diffuse: object = None
    filtered_cov: object = None


def _time_last(x, core_ndim):
    return pt.moveaxis(x, 0, x.ndim - core_ndim - 1)


def observation_factor(obs, observed, obs_diag):
    r"""Upper factor :math:`U_V` of the masked observation covariance.

    Masked components get unit variance and no correlation, which makes them drop out of the
    update exactly (see :func:`~pymc_dlm.kalman.steps.gaussian_logpdf`).
    """
    if obs_diag:
        sd = pt.switch(observed, obs, 1.0)
        return sd[..., :, None] * pt.eye(sd.shape[-1])
    both = observed[..., :, None] & observed[..., None, :]
    eye = pt.eye(obs.shape[-1])
    V = pt.switch(both, obs, 0.0) + pt.switch(observed[..., :, None], 0.0, eye)
    return mT(pt.linalg.cholesky(V, lower=True))


def _lead(x, k):
    """The first ``k`` entries of ``x.shape`` (static 1s kept as 1, see ``lead_shape``)."""
    return lead_shape(x, k)


def system_inputs(system):
    """The (name, matrix, core ndim) triples of a system that may vary over time."""
    return [
        ("F", system.F, 2),
        ("G", system.G, 2),
        ("W", system.W_sqrt, 2),
        ("obs", system.obs, 1 if system.obs_diag else 2),
    ]


def batch_shape(system, y=None):
    """Broadcast batch shape of the system matrices (and of data ``y`` (..., T, p))."""
    tv = system.time_varying
    shapes = [] if y is None else [_lead(y, y.ndim - 2)]
    shapes += [
        _lead(system.F, system.F.ndim - 2 - ("F" in tv)),
        _lead(system.G, system.G.ndim - 2 - ("G" in tv)),
        _lead(system.W_sqrt, system.W_sqrt.ndim - 2 - ("W" in tv)),
        _lead(system.obs, system.obs.ndim - (1 if system.obs_diag else 2) - ("obs" in tv)),
        _lead(system.m0, system.m0.ndim - 1),
        _lead(system.C0_sqrt, system.C0_sqrt.ndim - 2),
    ]
    return tuple(pt.broadcast_shape(*shapes, arrays_are_shapes=True))


def prepare(system, y):
    """Batch shape, masked data and the initial carry of the filter.

    ``y`` is (..., T, p) with NaN for missing values.
    """
    batch = batch_shape(system, y)
    n = system.G.type.shape[-1]
    m0 = pt.broadcast_to(system.m0, (*batch, n))
    C0_factor = mT(system.C0_sqrt)
    C0_factor = pt.broadcast_to(C0_factor, (*batch, C0_factor.shape[-2], C0_factor.shape[-1]))
    return batch, m0, C0_factor


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
    A model with diffuse states (``system.diffuse`` not ``None``) runs the exact diffuse
    filter of :mod:`pymc_dlm.kalman.diffuse` instead; its log-likelihood is the diffuse one of
    Durbin & Koopman (2012, §7.2.2), ``-inf`` when the data do not identify every diffuse state.
    """
    if system.diffuse is not None:
        from pymc_dlm.kalman.diffuse import diffuse_filter_scan

        return diffuse_filter_scan(system, y, return_all=return_all)
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

    init_C = pt.specify_shape(C0_factor, (*(None,) * (C0_factor.ndim - 2), n, n))
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
            predicted_mean=_time_last(a, 1),
            predicted_factor=_time_last(R, 2),
            filtered_mean=_time_last(ms, 1),
            filtered_factor=_time_last(Cs, 2),
        )
    return result
