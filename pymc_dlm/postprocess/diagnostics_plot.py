r"""A four-panel residual plot (R ``dlm``'s ``tsdiag``, statsmodels' ``plot_diagnostics``).

matplotlib is imported when the function runs, not with the package (a sampler's worker
processes import ``pymc_dlm`` and never plot), and ``matplotlib.pyplot`` only when a new
figure has to be made.
"""

import numpy as np
import xarray as xr
from scipy import special

from pymc_dlm.postprocess.diagnostics import acf

__all__ = ["plot_diagnostics"]


def _series(resid):
    """(time values, residuals, time label) of a one-series residual array."""
    if isinstance(resid, xr.DataArray):
        if resid.ndim != 1:
            raise ValueError(
                "resid must be one series (time,); select one with .sel or .isel, "
                f"got dims {resid.dims}"
            )
        dim = resid.dims[0]
        t = resid[dim].values if dim in resid.coords else np.arange(resid.size)
        return t, np.asarray(resid.values, dtype=float), dim
    x = np.asarray(resid, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"resid must be one series (T,), got shape {x.shape}")
    return np.arange(1, x.size + 1), x, "time"


def plot_diagnostics(resid, *, lags=10, fig=None):
    r"""Plot standardized residuals: time series, density, normal QQ plot and correlogram.

    The panels are (1) the residuals over time; (2) their histogram with a Gaussian kernel
    density estimate and the N(0, 1) density; (3) a normal QQ plot, the sorted residuals
    against :math:`\Phi^{-1}((i - 0.5)/n)`, with the line y = x; (4) the sample
    autocorrelations :math:`r_1, \dots, r_K` (:func:`~pymc_dlm.postprocess.diagnostics.acf`)
    with the bands :math:`\pm 1.96/\sqrt n` of white noise. Missing values (NaN) are left
    out, n being the number present.

    Parameters
    ----------
    resid : xarray.DataArray or array_like, shape (T,)
        Standardized residuals of one series, e.g. from
        :func:`~pymc_dlm.postprocess.diagnostics.standardized_residuals`; for several series
        or a batch, select one (``resid.sel(series=...)``).
    lags : int
        Number of lags K in the correlogram.
    fig : matplotlib.figure.Figure, optional
        Figure to draw into (it gets four new axes). By default a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with its four axes in the order above.

    References
    ----------
    Durbin & Koopman (2012), §2.12; Petris, Petrone & Campagnoli (2009), ch. 2 (``tsdiag``).
    """
    t, x, dim = _series(resid)
    present = x[~np.isnan(x)]
    n = present.size
    if isinstance(lags, bool) or not isinstance(lags, (int, np.integer)):
        raise TypeError(f"lags must be a positive integer, got {lags!r}")
    if lags < 1:
        raise ValueError(f"lags must be a positive integer, got {lags}")
    if n < 3 or lags >= n:
        raise ValueError(
            f"resid must hold more non-missing values ({n}) than lags ({lags}), and at least 3"
        )
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2).ravel()

    ax = axes[0]
    ax.plot(t, x, color="C0", linewidth=0.8, marker="o", markersize=2)
    ax.axhline(0.0, color="k", linewidth=0.6)
    ax.set(title="Standardized residuals", xlabel=dim)

    ax = axes[1]
    grid = np.linspace(min(present.min(), -3.0), max(present.max(), 3.0), 200)
    ax.hist(present, bins="auto", density=True, color="C0", alpha=0.4, label="histogram")
    if np.ptp(present) > 0:
        ax.plot(grid, _gaussian_kde(present, grid), color="C0", label="KDE")
    ax.plot(grid, _std_normal_pdf(grid), color="k", linestyle="--", label="N(0, 1)")
    ax.set(title="Density")
    ax.legend(fontsize="small")

    ax = axes[2]
    theory = special.ndtri((np.arange(1, n + 1) - 0.5) / n)  # standard normal quantiles
    ax.plot(theory, np.sort(present), "o", color="C0", markersize=3)
    lim = [min(theory[0], present.min()), max(theory[-1], present.max())]
    ax.plot(lim, lim, color="k", linewidth=0.8)
    ax.set(title="Normal QQ plot", xlabel="theoretical quantiles", ylabel="sample quantiles")

    ax = axes[3]
    k = np.arange(1, lags + 1)
    r = acf(x, lags)
    ax.vlines(k, 0.0, r, color="C0")
    ax.plot(k, r, "o", color="C0", markersize=3)
    band = 1.96 / np.sqrt(n)
    ax.axhspan(-band, band, color="C0", alpha=0.15, linewidth=0)
    ax.axhline(0.0, color="k", linewidth=0.6)
    ax.set(title="Correlogram", xlabel="lag", ylabel="autocorrelation")
    return fig


def _std_normal_pdf(x):
    return np.exp(-0.5 * x**2) / np.sqrt(2.0 * np.pi)


def _gaussian_kde(x, grid):
    """Gaussian kernel density of ``x`` on ``grid``, Scott's bandwidth (scipy's default)."""
    h = np.std(x, ddof=1) * len(x) ** (-1.0 / 5.0)
    return _std_normal_pdf((grid[:, None] - x[None, :]) / h).sum(axis=1) / (len(x) * h)
