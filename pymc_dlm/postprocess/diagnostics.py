r"""Residual diagnostics: standardized one-step forecast errors and tests on them.

R ``dlm``'s ``residuals``/``tsdiag``, KFAS's ``rstandard`` and statsmodels'
``standardized_forecasts_error`` with ``test_serial_correlation``, ``test_normality`` and
``test_heteroskedasticity``. If the model is right, the standardized one-step forecast errors
:math:`L_t^{-1}(y_t - f_t)` are independent N(0, I) (Durbin & Koopman 2012, §2.12).
The tests here are written with numpy and scipy; statsmodels serves only as a test oracle.

Missing residuals (NaN) are handled as follows: the sample autocorrelations use the pairs of
residuals that are both present (statsmodels' ``acf(..., missing="conservative")``); the
normality and heteroskedasticity tests use the residuals that are present, in time order.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§2.12 (diagnostic checking), §5.2 (the exact initial Kalman filter).
Petris, G., Petrone, S. and Campagnoli, P. (2009). *Dynamic Linear Models with R*, ch. 2 (the
innovation process and model checking: ``residuals``, ``tsdiag``).
Harvey, A. C. (1989). *Forecasting, Structural Time Series Models and the Kalman Filter*,
§5.4 (the H(h) test).
Ljung, G. M. and Box, G. E. P. (1978). On a measure of lack of fit in time series models.
*Biometrika* 65, 297–303.
Jarque, C. M. and Bera, A. K. (1980). Efficient tests for normality, homoscedasticity and
serial independence of regression residuals. *Economics Letters* 6, 255–259.
"""

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

__all__ = [
    "acf",
    "cholesky_each",
    "diffuse_steps",
    "residual_tests",
    "standardize",
    "standardized_residuals",
]


def standardize(y, f, Q, diffuse):
    r"""Standardized errors :math:`L_t^{-1}(y_t - f_t)` over the observed components.

    ``y``, ``f`` (..., T, p), ``Q`` (..., T, p, p), ``diffuse`` (..., T) bool or None.
    Components that are missing, and whole time steps flagged in ``diffuse``, give NaN; so
    does a time step whose :math:`Q_t` restricted to its observed components is not positive
    definite.
    """
    observed = ~np.isnan(y)
    if diffuse is not None:
        observed = observed & ~np.asarray(diffuse, dtype=bool)[..., None]
    e = np.where(observed, y - f, 0.0)
    # Missing components get unit variance and no correlation: the Cholesky factor of what is
    # left is that of the observed block, and they drop out (as in the filter).
    both = observed[..., :, None] & observed[..., None, :]
    Qm = np.where(both, Q, np.eye(y.shape[-1]))
    L, ok = cholesky_each(Qm)
    z = np.linalg.solve(L, e[..., None])[..., 0]  # L triangular; numpy loops over the stack in C
    return np.where(observed & ok[..., None], z, np.nan)


def cholesky_each(Q):
    """Lower Cholesky factors of a stack (..., p, p); the identity, flagged False, where one fails.

    Returns ``(L, ok)``, ``ok`` (...) bool.
    """
    try:
        return np.linalg.cholesky(Q), np.ones(Q.shape[:-2], dtype=bool)
    except np.linalg.LinAlgError:
        pass
    flat = Q.reshape(-1, *Q.shape[-2:])
    L = np.broadcast_to(np.eye(Q.shape[-1]), flat.shape).copy()
    ok = np.zeros(len(flat), dtype=bool)
    for i, q in enumerate(flat):
        try:
            L[i], ok[i] = np.linalg.cholesky(q), True
        except np.linalg.LinAlgError:
            pass
    return L.reshape(Q.shape), ok.reshape(Q.shape[:-2])


def diffuse_steps(filtered):
    r"""Time steps of the exact diffuse period at which data met the diffuse part (..., T).

    True where the update at time t changed :math:`P_\infty`, which happens exactly where
    :math:`F_t P_{\infty,t} F_t^\top`, over the observed components, is nonzero (at the
    filter's rank tolerance). ``None`` for a model without diffuse states.
    """
    if "predicted_diffuse_cov" not in filtered:
        return None
    pred = filtered["predicted_diffuse_cov"].values
    filt = filtered["filtered_diffuse_cov"].values
    return np.any(pred != filt, axis=(-2, -1))


def standardized_residuals(filtered):
    r"""Standardized one-step forecast errors of a filtered model (``residuals`` in R ``dlm``).

    .. math::

        e_t = y_t - f_t, \qquad \tilde e_t = L_t^{-1} e_t, \qquad Q_t = L_t L_t^\top,

    with :math:`L_t` the lower Cholesky factor of the one-step forecast covariance; for one
    series :math:`\tilde e_t = e_t / \sqrt{Q_t}`. For a partly missing row, :math:`e_t` and
    :math:`Q_t` are restricted to the observed components (NaN in the missing ones).
    Under the model, the :math:`\tilde e_t` are independent N(0, I). With a learned
    observation variance (``forecast_dof`` in ``filtered``) :math:`e_t / \sqrt{Q_t}` is
    Student-t with :math:`\nu_t` degrees of freedom and is mapped to the normal quantile of
    the same probability, :math:`\Phi^{-1}(T_{\nu_t}(e_t / \sqrt{Q_t}))`, so that the
    residuals are N(0, 1) under the model in every case.

    Parameters
    ----------
    filtered : xarray.Dataset
        The result of :func:`~pymc_dlm.kalman_filter` or :func:`~pymc_dlm.kalman_smoother`.

    Returns
    -------
    xarray.DataArray
        ``standardized_residual`` with the dims and coordinates of ``filtered["observed"]``:
        ``(..., time)`` for one series, ``(..., time, series)`` for several.

    Notes
    -----
    Missing values give NaN, and so do the time steps of the exact diffuse period
    (``C0="diffuse"``) where the diffuse part of the forecast variance,
    :math:`F_t P_{\infty,t} F_t^\top` over the observed components, is nonzero: there
    :math:`Q_t` is infinite and only its finite part is stored. For one series without
    missing values these are the first d time steps, d the number of diffuse states.
    The Dataset carries what this rule needs without F: such a step, and only such a step,
    changes :math:`P_\infty` (``filtered_diffuse_cov`` differs from ``predicted_diffuse_cov``,
    Durbin & Koopman 2012, §5.2). statsmodels excludes the first ``nobs_diffuse`` time
    steps (those where :math:`P_\infty \ne 0`) from its tests, which is the same set unless an
    observation in the diffuse period is missing or carries no information on the diffuse
    states; such an observation keeps a residual here, from its proper forecast variance.

    References
    ----------
    Durbin & Koopman (2012), §2.12.1 and §5.2; Petris, Petrone & Campagnoli (2009), ch. 2.
    """
    if not isinstance(filtered, xr.Dataset):
        raise TypeError(
            "filtered must be the xarray.Dataset of pymc_dlm.kalman_filter or kalman_smoother, "
            f"got {type(filtered).__name__}"
        )
    needed = {"observed", "forecast_mean", "forecast_cov"}
    if "predicted_diffuse_cov" in filtered:
        needed.add("filtered_diffuse_cov")
    missing = sorted(needed - set(filtered.data_vars))
    if missing:
        raise ValueError(
            "filtered must be the Dataset of pymc_dlm.kalman_filter or kalman_smoother; "
            f"it lacks {missing}"
        )
    obs = filtered["observed"]
    y, f, Q = obs.values, filtered["forecast_mean"].values, filtered["forecast_cov"].values
    univariate = filtered["forecast_cov"].ndim == obs.ndim
    if univariate:
        y, f, Q = y[..., None], f[..., None], Q[..., None, None]
    z = standardize(y, f, Q, diffuse_steps(filtered))
    if "forecast_dof" in filtered:  # a learned variance: Student-t forecasts, mapped to N(0, 1)
        dof = filtered["forecast_dof"].values[..., None]
        z = np.sign(z) * -special.ndtri(special.stdtr(dof, -np.abs(z)))
    out = xr.DataArray(z[..., 0] if univariate else z, dims=obs.dims, coords=obs.coords)
    out.name = "standardized_residual"
    out.attrs["description"] = (
        "standardized one-step forecast errors L_t^-1 (y_t - f_t), Q_t = L_t L_t'; NaN for "
        "missing values and the diffuse period"
    )
    return out


def acf(x, nlags):
    r"""Sample autocorrelations :math:`r_1, \dots, r_K` of a series with NaN for missing values.

    .. math::

        r_k = \frac{\sum_t \tilde x_t \tilde x_{t+k}}{\sum_t \tilde x_t^2},

    :math:`\tilde x_t = x_t - \bar x` where present and 0 where missing (Parzen 1963; the
    pairs with both values present; statsmodels' ``missing="conservative"``).
    """
    present = ~np.isnan(x)
    xc = np.where(present, x - np.mean(x[present]), 0.0)
    denom = np.sum(xc**2)
    return np.array([np.sum(xc[k:] * xc[:-k]) / denom for k in range(1, nlags + 1)])


def _ljung_box(x, lags):
    r"""Ljung-Box :math:`Q(k) = n(n+2)\sum_{j \le k} r_j^2/(n-j)`, :math:`\chi^2_k` p-value."""
    n = int(np.sum(~np.isnan(x)))
    r = acf(x, max(lags))
    q = n * (n + 2) * np.cumsum(r**2 / (n - np.arange(1, len(r) + 1)))
    stat = q[np.asarray(lags) - 1]
    return stat, special.chdtrc(lags, stat)  # chi-square survival function


def _jarque_bera(x):
    r"""JB :math:`= \tfrac n6 (S^2 + (K-3)^2/4)`, its :math:`\chi^2_2` p-value, S and K."""
    c = x - x.mean()
    m2, m3, m4 = (np.mean(c**k) for k in (2, 3, 4))
    skew, kurt = m3 / m2**1.5, m4 / m2**2
    jb = len(x) / 6.0 * (skew**2 + (kurt - 3.0) ** 2 / 4.0)
    return jb, special.chdtrc(2, jb), skew, kurt


def _heteroskedasticity(x):
    r"""H :math:`= \sum_{\text{last } h} x^2 / \sum_{\text{first } h} x^2`, two-sided F(h, h)."""
    h = int(np.round(len(x) / 3))
    H = np.sum(x[-h:] ** 2) / np.sum(x[:h] ** 2)
    p = 2.0 * min(special.fdtr(h, h, H), special.fdtrc(h, h, H))  # F(h, h) cdf, survival
    return H, p


def _check_lags(lags, n):
    if lags is None:
        return list(range(1, min(10, n // 5) + 1)) or [1]
    if isinstance(lags, (int, np.integer)) and not isinstance(lags, bool):
        lags = list(range(1, int(lags) + 1))
    elif np.iterable(lags) and not isinstance(lags, (str, bytes)):
        lags = list(lags)
    else:
        raise TypeError(f"lags must be a positive integer or a list of them, got {lags!r}")
    bad = [k for k in lags if isinstance(k, bool) or not isinstance(k, (int, np.integer))]
    if bad or not lags or min(lags) < 1 or max(lags) >= n:
        raise ValueError(
            f"lags must be positive integers below the {n} residuals present, got {lags!r}"
        )
    return [int(k) for k in lags]


def _one_series(x, lags):
    present = x[~np.isnan(x)]
    n = len(present)
    if n < 6:
        raise ValueError(f"resid must hold at least 6 non-missing values per series, got {n}")
    lags = _check_lags(lags, n)
    lb, lb_p = _ljung_box(x, lags)
    jb, jb_p, skew, kurt = _jarque_bera(present)
    H, H_p = _heteroskedasticity(present)
    rows = [("ljung_box", k, s, p) for k, s, p in zip(lags, lb, lb_p)]
    rows += [("jarque_bera", None, jb, jb_p), ("skew", None, skew, np.nan)]
    rows += [("kurtosis", None, kurt, np.nan), ("heteroskedasticity", None, H, H_p)]
    frame = pd.DataFrame(rows, columns=["test", "lag", "statistic", "p_value"])
    frame["lag"] = frame["lag"].astype("Int64")
    return frame.set_index("test")


def residual_tests(resid, lags=None):
    r"""Ljung-Box, Jarque-Bera and heteroskedasticity tests of standardized residuals.

    * **Ljung-Box** (serial correlation): :math:`Q(k) = n(n+2)\sum_{j=1}^k r_j^2/(n-j)`,
      compared with :math:`\chi^2_k`, for each lag k in ``lags``; :math:`r_j` from
      :func:`acf`.
    * **Jarque-Bera** (normality): :math:`JB = \tfrac n6 \left(S^2 + \tfrac14(K-3)^2\right)`
      with the sample skewness S and kurtosis K (moment estimators, K = 3 for a normal),
      compared with :math:`\chi^2_2`. S and K are reported too.
    * **Heteroskedasticity** (Harvey's H(h)): :math:`H = \sum_{t > n-h} \tilde e_t^2 /
      \sum_{t \le h} \tilde e_t^2` over the n residuals present, in time order, with
      h = round(n/3); two-sided p-value :math:`2\min(P(F \le H), P(F \ge H))`,
      :math:`F \sim F(h, h)`.

    Parameters
    ----------
    resid : array_like or xarray.DataArray, shape (T,) or (T, p)
        Standardized residuals, e.g. from :func:`standardized_residuals`; NaN marks missing
        ones (the diffuse period included). A second axis holds several series.
    lags : int or list of int, optional
        Lags of the Ljung-Box test: k = 1..``lags`` for an integer. Default
        ``min(10, n // 5)``, n the number of residuals present (statsmodels' default).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``test``: one ``"ljung_box"`` row per lag, then ``"jarque_bera"``,
        ``"skew"``, ``"kurtosis"`` and ``"heteroskedasticity"``; columns ``lag``,
        ``statistic`` (the value, for skew and kurtosis) and ``p_value``. With several series
        the index has an outer level ``series``.

    Notes
    -----
    statsmodels' ``test_heteroskedasticity`` splits the time steps after the diffuse period
    into thirds and drops the missing values within each third; here the thirds are taken of
    the residuals present. The two agree when no value is missing after the diffuse period.
    statsmodels' Ljung-Box gives NaN for a series with missing values; here the
    autocorrelations use the pairs present.

    References
    ----------
    Ljung & Box (1978); Jarque & Bera (1980); Harvey (1989), §5.4; Durbin & Koopman (2012),
    §2.12.
    """
    series_dim, labels = None, None
    if isinstance(resid, xr.DataArray):
        if resid.ndim == 2:
            series_dim = resid.dims[1]
            labels = resid[series_dim].values if series_dim in resid.coords else None
        resid = resid.values
    x = np.asarray(resid, dtype=float)
    if x.ndim not in (1, 2):
        raise ValueError(
            "resid must be one series (T,) or several (T, p); select one batch member first "
            f"(e.g. .isel), got shape {x.shape}"
        )
    if x.ndim == 1:
        return _one_series(x, lags)
    labels = list(range(x.shape[1])) if labels is None else list(labels)
    frames = {label: _one_series(x[:, i], lags) for i, label in enumerate(labels)}
    return pd.concat(frames, names=[series_dim or "series"])
