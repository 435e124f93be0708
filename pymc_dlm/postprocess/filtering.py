"""Numerical filtering and smoothing at fixed parameter values (``dlmFilter``/``dlmSmooth``).

Runs the very same scan code as the :class:`~pymc_dlm.DLM` log-likelihood and returns the
moments as an :class:`xarray.Dataset`. The scans are compiled once per model structure and
reused (:mod:`pymc_dlm.kalman.fixed_filter`).
"""

import numpy as np
import pytensor.tensor as pt
import xarray as xr
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import ancestors, graph_inputs
from pytensor.tensor.random.type import RandomGeneratorType

from pymc_dlm.kalman import fixed_filter
from pymc_dlm.model.data import as_observations, declared_batch_ndim
from pymc_dlm.model.discount import LearnedVariance, batch_parameters
from pymc_dlm.model.family import as_family
from pymc_dlm.model.notation import SERIES_DIM, SERIES_DIM2, STATE_DIM, STATE_DIM2, TIME_DIM
from pymc_dlm.model.observation import observation_noise
from pymc_dlm.model.priors import check_diffuse_count
from pymc_dlm.model.statespace import as_statespace
from pymc_dlm.postprocess.discount_filter import discounted_moments
from pymc_dlm.postprocess.family_filter import family_moments

__all__ = ["kalman_filter", "kalman_smoother"]


def _check_not_random(named):
    """Refuse parameters that are random variables: each call would draw new values."""
    for label, tensors in named.items():
        for v in ancestors([t for t in tensors if t is not None]):
            if isinstance(getattr(v, "type", None), RandomGeneratorType):
                raise TypeError(
                    f"{label} must have fixed numeric values, but it depends on a random "
                    "variable (for example pm.HalfNormal.dist or a model's variable), which "
                    "would give a different result on every call. Give numbers here; for "
                    "posterior draws use pymc_dlm.sample_states(idata, model)."
                )


def _check_fixed(tensors):
    """Refuse model matrices that depend on free symbolic inputs (not numbers or data)."""
    free = [
        v
        for v in graph_inputs(tensors)
        if not isinstance(v, (Constant, SharedVariable)) and v.owner is None
    ]
    if free:
        names = sorted({str(v.name or v) for v in free})
        raise TypeError(
            "kalman_filter and kalman_smoother need fixed parameter values; these are "
            f"symbolic: {names}. Use pymc_dlm.sample_states for posterior draws."
        )


def _run(
    model, y, sigma_obs, obs_cov, smooth, dims=None, obs_var=None, family=None, offset=None,
    importance=None,
):  # fmt: skip
    ss = as_statespace(model)
    family = as_family(family)
    if family is not None:
        return _run_family(
            ss, y, (sigma_obs, obs_cov, obs_var), family, offset, smooth, dims, importance
        )
    if importance is not None and any(v is not None for v in importance):
        raise TypeError(
            "n_importance and random_seed apply to a non-Gaussian family (family='poisson', "
            f"...), got family='gaussian' and n_importance={importance[0]}"
        )
    if offset is not None:
        raise TypeError(
            "offset applies to a non-Gaussian family (family='poisson', ...), got family="
            "'gaussian'"
        )
    discounted = obs_var is not None or ss.discount is not None
    if obs_var is not None and not isinstance(obs_var, LearnedVariance):
        raise TypeError(
            f"obs_var must be a pymc_dlm.LearnedVariance, got {type(obs_var).__name__}"
        )
    if obs_var is not None:
        if sigma_obs is not None or obs_cov is not None:
            raise TypeError("give exactly one of sigma_obs, obs_cov and obs_var")
        if ss.n_series != 1:
            raise ValueError(f"obs_var (a learned variance) needs one series, got {ss.n_series}")
        obs, obs_diag = pt.ones(1), True
    else:
        obs, obs_diag = observation_noise(sigma_obs, obs_cov, ss.n_series)
    _check_not_random(
        {
            "model": [ss.F, ss.G, ss.W_sqrt, ss.m0, ss.C0_sqrt],
            "sigma_obs" if obs_diag else "obs_cov": [obs],
        }
    )
    extra = batch_parameters(ss, obs_var)
    batch = declared_batch_ndim(ss, obs, obs_diag, dims=dims, extra=extra)
    arr, index = as_observations(y, ss.n_series, "y", ss.n_time, batch)
    dims = _check_dims_arg(dims, arr, ss.n_series)
    check_diffuse_count(ss, arr)
    _check_fixed([ss.F, ss.G, ss.W_sqrt, obs, ss.m0, ss.C0_sqrt])
    if discounted:
        extra = [] if ss.discount is None else [ss.discount]
        if obs_var is not None:
            extra += [obs_var.n0, obs_var.S0, obs_var.discount]
        _check_not_random({"discount or obs_var": extra})
        _check_fixed(extra)
        values = discounted_moments(ss, obs, obs_diag, obs_var, arr, smooth)
    else:
        values = fixed_filter.run(
            fixed_filter.numeric_system(ss, obs),
            arr,
            time_varying=ss.time_varying,
            obs_diag=obs_diag,
            diffuse=ss.diffuse,
            smooth=smooth,
        )
    if "filtered_diffuse_cov" in values and np.any(values["filtered_diffuse_cov"][..., -1, :, :]):
        raise ValueError(
            f"the data do not identify the model's {ss.n_diffuse} diffuse states (C0='diffuse'): "
            "the diffuse part of the state covariance is still nonzero at the last time step, so "
            "the likelihood is improper; give some states a proper C0 or use more data"
        )
    return _dataset(values, ss, arr, index, dims)


def _run_family(ss, y, noise, family, offset, smooth, dims, importance):
    sigma_obs, obs_cov, obs_var = noise
    if sigma_obs is not None or obs_cov is not None or obs_var is not None:
        raise TypeError(
            f"family={family!r} has no observation noise: drop sigma_obs, obs_cov and obs_var "
            f"(got sigma_obs={sigma_obs!r}, obs_cov={obs_cov!r}, obs_var={obs_var!r})"
        )
    if ss.discount is not None:
        raise ValueError(f"family={family!r} does not combine with discounted components yet")
    _check_not_random({"model": [ss.F, ss.G, ss.W_sqrt, ss.m0, ss.C0_sqrt]})
    batch = declared_batch_ndim(ss, pt.ones(1), True, dims=dims)
    arr, index = as_observations(y, ss.n_series, "y", ss.n_time, batch)
    dims = _check_dims_arg(dims, arr, ss.n_series)
    check_diffuse_count(ss, arr)
    _check_fixed([ss.F, ss.G, ss.W_sqrt, ss.m0, ss.C0_sqrt])
    n_importance, random_seed = importance or (None, None)
    values = family_moments(ss, family, offset, arr, smooth, n_importance, random_seed)
    ds = _dataset(values, ss, arr, index, dims)
    ds.attrs["loglik_convention"] = (
        f"Laplace approximation of log p(y) under family={family!r} (Durbin & Koopman 2012, "
        "10.7): log p(y | mode) - log g(y* | mode) + the approximating Gaussian model's "
        + ("exact diffuse " if ss.n_diffuse else "")
        + "log-likelihood of y*"
    )
    return ds


def _check_dims_arg(dims, arr, n_series):
    """``dims``: one name per axis of ``y`` (batch axes, time[, series]); ``None`` allowed."""
    if dims is None:
        return None
    dims = (dims,) if isinstance(dims, str) else tuple(dims)
    ndim = arr.ndim - (n_series == 1)
    if len(dims) != ndim or not all(isinstance(d, str) for d in dims):
        raise ValueError(
            f"dims must name each of the {ndim} axes of y (batch axes, then time"
            f"{'' if n_series == 1 else ', then series'}), got {dims}"
        )
    return dims


def _dataset(values, ss, arr, index, dims=None):
    batch = [f"batch_{i}" for i in range(arr.ndim - 2)]
    if dims is not None:
        batch = list(dims[: arr.ndim - 2])
    T = arr.shape[-2]
    time = np.asarray(index) if index is not None and len(index) == T else np.arange(1, T + 1)
    coords = {TIME_DIM: time, STATE_DIM: list(ss.state_labels), STATE_DIM2: list(ss.state_labels)}
    uni = ss.n_series == 1
    dims = {
        "predicted_mean": (TIME_DIM, STATE_DIM),
        "predicted_cov": (TIME_DIM, STATE_DIM, STATE_DIM2),
        "filtered_mean": (TIME_DIM, STATE_DIM),
        "filtered_cov": (TIME_DIM, STATE_DIM, STATE_DIM2),
        "smoothed_mean": (TIME_DIM, STATE_DIM),
        "smoothed_cov": (TIME_DIM, STATE_DIM, STATE_DIM2),
        "forecast_mean": (TIME_DIM,) if uni else (TIME_DIM, SERIES_DIM),
        "forecast_cov": (TIME_DIM,) if uni else (TIME_DIM, SERIES_DIM, SERIES_DIM2),
        "loglik": (),
        "predicted_diffuse_cov": (TIME_DIM, STATE_DIM, STATE_DIM2),
        "filtered_diffuse_cov": (TIME_DIM, STATE_DIM, STATE_DIM2),
        "dof": (TIME_DIM,),
        "scale": (TIME_DIM,),
        "forecast_dof": (TIME_DIM,),
        "smoothed_scale": (TIME_DIM,),
        "linear_predictor": (TIME_DIM,),
        "approx_obs": (TIME_DIM,),
        "approx_var": (TIME_DIM,),
        "loglik_importance": (),
        "loglik_importance_se": (),
    }
    data = {}
    for name, value in values.items():
        value = np.asarray(value)
        if uni and name == "forecast_mean":
            value = value[..., 0]
        if uni and name == "forecast_cov":
            value = value[..., 0, 0]
        lead = batch[: value.ndim - len(dims[name])]
        data[name] = ((*lead, *dims[name]), value)
    observed = arr[..., 0] if uni else arr
    data["observed"] = ((*batch, TIME_DIM) if uni else (*batch, TIME_DIM, SERIES_DIM), observed)
    ds = xr.Dataset(data, coords=coords)
    if ss.n_diffuse:
        ds.attrs["loglik_convention"] = (
            "exact diffuse log-likelihood (Durbin & Koopman 2012, 7.2.2; statsmodels with exact "
            "diffuse initialisation) incl. 0.5*log(2*pi) per observed value; flat prior on the "
            "diffuse states of theta_0 (KFAS's logLik = this + 0.5*d*log(2*pi))"
        )
    else:
        ds.attrs["loglik_convention"] = (
            "full Gaussian log-likelihood incl. 0.5*log(2*pi) per observed value, proper prior "
            "on theta_0 (= R dlm's -dlmLL - 0.5*n_obs*log(2*pi))"
        )
    return ds


def kalman_filter(
    model,
    y,
    *,
    sigma_obs=None,
    obs_cov=None,
    dims=None,
    obs_var=None,
    family="gaussian",
    offset=None,
    n_importance=None,
    random_seed=None,
):
    r"""Kalman filter at fixed parameter values (R ``dlm``'s ``dlmFilter``).

    Parameters
    ----------
    model : Component or StateSpace
        The DLM, with fixed (numeric) parameters.
    y : array_like, shape (..., T) or (..., T, 1) for one series, (..., T, p) for p
        Observations (numpy array, list, pandas Series or DataFrame, xarray DataArray); NaN
        marks a missing value. A pandas index or an xarray coordinate becomes the time
        coordinate. Batch axes exist only when declared, by ``dims`` or by parameters with
        leading batch axes (the rule of :mod:`pymc_dlm.model.data`, shared with
        :class:`~pymc_dlm.DLM`); undeclared extra axes are an error.
    sigma_obs : float or array_like, optional
        Observation noise standard deviation(s) (diagonal :math:`V`).
    obs_cov : array_like, optional
        Full observation noise covariance :math:`V` (p, p), positive definite.
    dims : sequence of str, optional
        A name for every axis of ``y`` (batch axes, then time, then series for several
        series). Declares the batch axes, which are named so in the result.
    obs_var : LearnedVariance, optional
        A learned observation variance (one series) in place of ``sigma_obs``/``obs_cov``.
    family : str or Family
        The observation family: ``"gaussian"`` (the default, with ``sigma_obs``,
        ``obs_cov`` or ``obs_var``), ``"poisson"``, ``"bernoulli"``,
        :class:`~pymc_dlm.NegativeBinomial` or :class:`~pymc_dlm.Binomial` (one series;
        no observation noise argument).
    offset : float or array_like, optional
        Known offset :math:`o_t` of the linear predictor :math:`\eta_t = F_t\theta_t + o_t`
        of a non-Gaussian family (for example a log exposure), broadcast against ``y``.
    n_importance : int, optional
        With a non-Gaussian family: also estimate the exact log-likelihood by importance
        sampling with this many (an even number) draws of the approximating model's
        simulation smoother, half of them antithetic (:mod:`pymc_dlm.laplace.importance`).
    random_seed : int or numpy.random.Generator, optional
        Seed of those draws.

    Returns
    -------
    xarray.Dataset
        ``predicted_mean``/``predicted_cov`` (:math:`a_t, R_t`), ``forecast_mean``/
        ``forecast_cov`` (:math:`f_t, Q_t`), ``filtered_mean``/``filtered_cov``
        (:math:`m_t, C_t`) over dims ``time`` (t = 1..T), ``state``, ``state2`` (and
        ``series``/``series2`` for several series), ``observed`` and the scalar ``loglik``:
        :math:`\log p(y_{1:T})` including every :math:`\tfrac12\log 2\pi`, under the proper
        prior on :math:`\theta_0`; with diffuse states (``C0="diffuse"``) the exact diffuse
        log-likelihood, and ``predicted_diffuse_cov``/``filtered_diffuse_cov``
        (:math:`P_{\infty}`) besides, the other covariances being the finite parts
        :math:`P_*` during the diffuse period (as statsmodels reports them).

        A model with discounted components or ``obs_var`` runs the filter of
        :mod:`pymc_dlm.kalman.discount`. With ``obs_var`` the one-step forecast is Student-t:
        ``forecast_mean`` is its location, ``forecast_cov`` its squared scale and
        ``forecast_dof`` (:math:`\delta_V n_{t-1}`) its degrees of freedom; ``dof``
        (:math:`n_t`) and ``scale`` (:math:`S_t`, the point estimate of :math:`V`) are the
        variance's posterior, and the covariances are given at the current estimate
        (:mod:`pymc_dlm.postprocess.discount_filter`).

        With a non-Gaussian ``family``, ``loglik`` is the Laplace approximation of
        :math:`\log p(y_{1:T})` and the moments are those of the approximating Gaussian
        model at the posterior mode, with ``linear_predictor``, ``approx_obs`` and
        ``approx_var`` besides (:mod:`pymc_dlm.postprocess.family_filter`); with
        ``n_importance``, ``loglik_importance`` (the importance-sampling estimate of
        :math:`\log p(y_{1:T})`) and its Monte Carlo standard error ``loglik_importance_se``.

    Notes
    -----
    Square-root covariance filter: :math:`a_t = G_t m_{t-1}`, :math:`R_t = G_t C_{t-1} G_t^\top
    + W_t`, :math:`f_t = F_t a_t`, :math:`Q_t = F_t R_t F_t^\top + V_t`,
    :math:`m_t = a_t + R_t F_t^\top Q_t^{-1}(y_t - f_t)`, :math:`C_t = R_t - R_t F_t^\top
    Q_t^{-1} F_t R_t`, computed by orthogonal triangularizations.

    References
    ----------
    Petris, Petrone & Campagnoli (2009), §2.7 (``dlmFilter``); Durbin & Koopman (2012), §4.3.
    """
    return _run(
        model,
        y,
        sigma_obs,
        obs_cov,
        smooth=False,
        dims=dims,
        obs_var=obs_var,
        family=family,
        offset=offset,
        importance=(n_importance, random_seed),
    )


def kalman_smoother(
    model,
    y,
    *,
    sigma_obs=None,
    obs_cov=None,
    dims=None,
    obs_var=None,
    family="gaussian",
    offset=None,
):
    r"""Kalman filter and RTS smoother at fixed values (R ``dlm``'s ``dlmSmooth``).

    Same arguments as :func:`kalman_filter`; the result adds ``smoothed_mean`` and
    ``smoothed_cov``, :math:`s_t = E[\theta_t | y_{1:T}]` and its covariance, for t = 1..T.

    A discounted model is smoothed exactly given its parameters: the discount's
    :math:`W_t` follow from the filter's covariances, and the model is then a DLM with known
    time-varying :math:`W_t`. With ``obs_var`` (a static variance, ``discount=1``)
    :math:`\theta_t | y_{1:T}` is Student-t with :math:`n_T` (the last ``dof``) degrees of
    freedom: ``smoothed_mean`` is its location and ``smoothed_cov`` its scale matrix, at the
    final estimate :math:`S_T` of :math:`V` (West & Harrison 1997, §4.7). With a variance
    discount below 1 the covariances are at West & Harrison's smoothed estimates of the
    variance, returned as ``smoothed_scale`` (§10.8; their convention, exact at t = T).

    References
    ----------
    Durbin & Koopman (2012), §4.4; Särkkä (2013), §8.2.
    """
    return _run(
        model,
        y,
        sigma_obs,
        obs_cov,
        smooth=True,
        dims=dims,
        obs_var=obs_var,
        family=family,
        offset=offset,
    )
