r"""Plots of sampled states, components and forecasts, with highest-density bands.

The functions read the DataTrees made by :func:`~pymc_dlm.sample_states` (its ``posterior``
holds ``<name>_filtered_state``, ``<name>_smoothed_state`` and ``<name>_components``) and by
:func:`~pymc_dlm.forecast` (its ``predictions`` group holds ``<name>``). Each panel shows the
posterior mean over ``(chain, draw)`` and a highest-density interval (HDI) band computed
separately at every time point. Only matplotlib is used, imported when a function runs (not
with the package: a sampler's worker processes import ``pymc_dlm`` and never plot), and
``matplotlib.pyplot`` only when a function has to create a figure. Each function returns the
axes it drew on.

With batch dimensions (several independent series), ``sel`` picks one series, for example
``sel={"region": "north"}``. A multivariate model also needs its series dimension in ``sel``
for the components and the forecast.
"""

from collections.abc import Mapping

import numpy as np
import xarray as xr

__all__ = ["plot_components", "plot_forecast", "plot_states"]

_SAMPLE_DIMS = ("chain", "draw")
_KINDS = ("smoothed", "filtered")


def _hdi(draws, prob):
    r"""Narrowest interval containing a fraction ``prob`` of the draws (along the last axis).

    This is ArviZ's ``hdi(method="nearest")``. With the n draws sorted,
    :math:`x_{(1)} \le \dots \le x_{(n)}` and :math:`k = \min(\lfloor p n \rfloor, n - 1)`,
    the interval is :math:`[x_{(i)}, x_{(i+k)}]` for the i that minimises
    :math:`x_{(i+k)} - x_{(i)}` (the first such i on ties).

    Returns
    -------
    lower, upper : numpy.ndarray
        Arrays with the shape of ``draws`` without its last axis.
    """
    x = np.sort(np.asarray(draws, dtype=float), axis=-1)
    n = x.shape[-1]
    k = min(int(np.floor(prob * n)), n - 1)
    i = np.argmin(x[..., k:] - x[..., : n - k], axis=-1)[..., None]
    return np.take_along_axis(x, i, -1)[..., 0], np.take_along_axis(x, i + k, -1)[..., 0]


def _mean_and_bands(da, probs):
    """Posterior mean and HDI bounds over (chain, draw) of a DataArray with (chain, draw, t)."""
    x = da.transpose(..., *_SAMPLE_DIMS).values
    x = x.reshape(*x.shape[:-2], -1)
    return x.mean(axis=-1), [_hdi(x, p) for p in probs]


def _check_prob(prob, argname):
    if isinstance(prob, bool) or not isinstance(prob, (int, float, np.integer, np.floating)):
        raise TypeError(f"{argname} must be a probability in (0, 1], got {prob!r}")
    if not 0 < prob <= 1:
        raise ValueError(f"{argname} must be a probability in (0, 1], got {prob!r}")
    return float(prob)


def _check_levels(levels):
    if isinstance(levels, (str, bytes)) or not np.iterable(levels):
        raise TypeError(
            f"levels must be a sequence of probabilities in (0, 1], e.g. (0.5, 0.8), "
            f"got {levels!r}"
        )
    return [_check_prob(p, "levels") for p in levels]


def _check_var_name(var_name):
    if not isinstance(var_name, str):
        raise TypeError(
            f"var_name must be the name (str) of a DLM variable, got {type(var_name).__name__}"
        )


def _band_label(prob):
    return f"{100 * prob:g}% HDI"


def _group(idata, group, hint):
    if not isinstance(idata, xr.DataTree):
        raise TypeError(f"idata must be an xarray.DataTree, got {type(idata).__name__}")
    if group not in idata.children:
        raise ValueError(
            f"idata must have a '{group}' group ({hint}), got groups {sorted(idata.children)}"
        )
    return idata[group].to_dataset()


def _observed(idata, var_name):
    """Return the observed data of ``var_name`` (NaN = missing), or None if absent."""
    if "observed_data" in idata.children and var_name in idata["observed_data"].data_vars:
        return idata["observed_data"][var_name]
    return None


def _posterior_var(idata, var_name, suffix):
    """``posterior[<var_name><suffix>]``, with an error saying what is missing."""
    _check_var_name(var_name)
    post = _group(idata, "posterior", "run pm.sample and then pymc_dlm.sample_states")
    key = f"{var_name}{suffix}"
    if key in post.data_vars:
        return post[key]
    tag = "_smoothed_state"
    known = sorted(v[: -len(tag)] for v in post.data_vars if v.endswith(tag))
    if var_name in known or _observed(idata, var_name) is not None:
        raise ValueError(
            f"the posterior has no {key!r}: run pymc_dlm.sample_states(idata, model) and plot "
            "the DataTree it returns"
        )
    raise ValueError(
        f"var_name must be a DLM variable with sampled states in idata {known} (if none, run "
        f"pymc_dlm.sample_states first), got {var_name!r}"
    )


def _check_sel(sel, *arrays):
    if sel is None:
        return {}
    if not isinstance(sel, Mapping):
        raise ValueError(f"sel must be a dict mapping dimension names to labels, got {sel!r}")
    dims = sorted({d for a in arrays if a is not None for d in a.dims} - set(_SAMPLE_DIMS))
    unknown = [k for k in sel if k not in dims]
    if unknown:
        raise ValueError(f"sel must select among the dimensions {dims}, got {unknown}")
    return dict(sel)


def _pick(da, sel, keep, what):
    """Apply the relevant part of ``sel``; every dimension of ``da`` outside ``keep`` must go."""
    here = {k: v for k, v in sel.items() if k in da.dims}
    try:
        da = da.sel(here)
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"sel: {here} does not select from {what}: {err}") from None
    extra = [d for d in da.dims if d not in keep]
    if extra:
        example = {d: da[d].values[0].item() if d in da.coords else 0 for d in extra}
        raise ValueError(
            f"{what} holds several series (dimension(s) {extra}); pass sel= with one label "
            f"per dimension to pick one, e.g. sel={example}"
        )
    return da


def _with_time(da, time_dim, obs):
    """Give ``da`` the observed data's time coordinate when it has none of its own."""
    if time_dim in da.coords or obs is None or time_dim not in obs.coords:
        return da
    if obs.sizes[time_dim] != da.sizes[time_dim]:
        return da
    return da.assign_coords({time_dim: obs[time_dim].values})


def _time(da, time_dim):
    return da[time_dim].values if time_dim in da.coords else np.arange(da.sizes[time_dim])


def _panels(ax, n, height=2.0):
    """``n`` stacked axes: new ones when ``ax`` is None, else ``ax`` checked for its count."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(
            n, 1, sharex=True, squeeze=False, figsize=(8, 1.0 + height * n), layout="constrained"
        )
        return axes[:, 0], True
    axes = np.array(ax, dtype=object).ravel()
    if axes.size != n:
        raise ValueError(f"ax: {n} axes are needed (one per panel), got {axes.size}")
    return axes, False


def _draw_band(ax, t, mean, band, prob, color, label_mean):
    lo, hi = band
    ax.fill_between(t, lo, hi, color=color, alpha=0.3, linewidth=0, label=_band_label(prob))
    ax.plot(t, mean, color=color, linewidth=1.5, label=label_mean)


def _draw_data(ax, t, y):
    ax.plot(t, y, color="k", linewidth=0.7, marker="o", markersize=2.5, label="observed")


def plot_states(
    idata,
    var_name,
    *,
    states=None,
    kind="smoothed",
    hdi_prob=0.94,
    sel=None,
    ax=None,
    observed=True,
):
    r"""Posterior mean and HDI band of sampled states, one panel per state.

    Parameters
    ----------
    idata : xarray.DataTree
        Result of :func:`~pymc_dlm.sample_states`.
    var_name : str
        Name of the DLM variable, e.g. ``"flow"``.
    states : str or list of str, optional
        State labels to plot, e.g. ``"level"`` (default: every state).
    kind : {"smoothed", "filtered"}
        ``"smoothed"`` plots draws of :math:`\theta_t | y_{1:T}` (FFBS), ``"filtered"`` draws
        of :math:`\theta_t | y_{1:t}`.
    hdi_prob : float
        Probability of the highest-density band, computed at every time point.
    sel : dict, optional
        One label per batch dimension, to pick one series when there are several.
    ax : matplotlib.axes.Axes or sequence of Axes, optional
        One axes per plotted state. By default a new figure is made.
    observed : bool
        Overlay the observed data on the ``"level"`` panel (univariate models only).

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        The panels, one per state, in the order of ``states``.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    hdi_prob = _check_prob(hdi_prob, "hdi_prob")
    if not isinstance(observed, (bool, np.bool_)):
        raise TypeError(f"observed must be True or False, got {observed!r}")
    da = _posterior_var(idata, var_name, f"_{kind}_state")
    time_dim, state_dim = da.dims[-2], da.dims[-1]
    labels = [str(s) for s in da[state_dim].values]
    chosen = labels if states is None else [states] if isinstance(states, str) else list(states)
    unknown = [s for s in chosen if s not in labels]
    if unknown or not chosen:
        raise ValueError(f"states must be among the states {labels}, got {unknown or chosen}")
    obs = _observed(idata, var_name)
    da = _with_time(da, time_dim, obs)
    if not observed or (obs is not None and not set(obs.dims) <= set(da.dims)):
        obs = None  # not asked for, or several series per time point: nothing to overlay
    sel = _check_sel(sel, da, obs)
    da = _pick(da, sel, (*_SAMPLE_DIMS, time_dim, state_dim), f"{var_name}_{kind}_state")
    axes, new = _panels(ax, len(chosen))
    t = _time(da, time_dim)
    for panel, label in zip(axes, chosen):
        mean, (band,) = _mean_and_bands(da.sel({state_dim: label}), [hdi_prob])
        _draw_band(panel, t, mean, band, hdi_prob, "C0", "posterior mean")
        if label == "level" and obs is not None:
            y = _pick(obs, sel, (time_dim,), f"observed_data[{var_name!r}]")
            _draw_data(panel, _time(y, time_dim), y.values)
        panel.set_ylabel(label)
        panel.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel(time_dim)
    if new:
        axes[0].figure.suptitle(f"{var_name}: {kind} states")
    return axes


def plot_components(idata, var_name, *, hdi_prob=0.94, sel=None, ax=None):
    r"""Posterior mean and HDI band of each component, after a panel with their sum and the data.

    The components are :math:`F_{c,t}\theta_{c,t}` along the smoothed paths drawn by
    :func:`~pymc_dlm.sample_states`; their sum is the signal :math:`F_t\theta_t`, whose band is
    computed from the summed draws.

    Parameters
    ----------
    idata : xarray.DataTree
        Result of :func:`~pymc_dlm.sample_states`.
    var_name : str
        Name of the DLM variable.
    hdi_prob : float
        Probability of the highest-density bands.
    sel : dict, optional
        One label per batch dimension (and the series dimension of a multivariate model).
    ax : sequence of matplotlib.axes.Axes, optional
        One axes per component plus one for the sum. By default a new figure is made.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        The panels: the sum with the data first, then one per component.
    """
    hdi_prob = _check_prob(hdi_prob, "hdi_prob")
    da = _posterior_var(idata, var_name, "_components")
    time_dim = _posterior_var(idata, var_name, "_smoothed_state").dims[-2]
    comp_dim = da.dims[-1]
    obs = _observed(idata, var_name)
    da = _with_time(da, time_dim, obs)
    sel = _check_sel(sel, da, obs)
    da = _pick(da, sel, (*_SAMPLE_DIMS, time_dim, comp_dim), f"{var_name}_components")
    names = [str(c) for c in da[comp_dim].values]
    axes, new = _panels(ax, len(names) + 1)
    t = _time(da, time_dim)
    mean, (band,) = _mean_and_bands(da.sum(comp_dim), [hdi_prob])
    _draw_band(axes[0], t, mean, band, hdi_prob, "C0", "sum of components")
    if obs is not None:
        y = _pick(obs, sel, (time_dim,), f"observed_data[{var_name!r}]")
        _draw_data(axes[0], _time(y, time_dim), y.values)
    axes[0].set_ylabel(var_name)
    axes[0].legend(loc="best", fontsize="small")
    for panel, name in zip(axes[1:], names):
        mean, (band,) = _mean_and_bands(da.sel({comp_dim: name}), [hdi_prob])
        _draw_band(panel, t, mean, band, hdi_prob, "C1", "posterior mean")
        panel.set_ylabel(name)
    axes[-1].set_xlabel(time_dim)
    if new:
        axes[0].figure.suptitle(f"{var_name}: components")
    return axes


def plot_forecast(idata, var_name, *, hdi_prob=0.94, levels=(0.5, 0.8), sel=None, ax=None):
    """Observed data followed by the forecast fan: mean and nested HDI bands.

    Parameters
    ----------
    idata : xarray.DataTree
        Result of :func:`~pymc_dlm.forecast`, with a ``predictions`` group. Its
        ``observed_data`` group, if present, is drawn before the forecast.
    var_name : str
        Name of the DLM variable.
    hdi_prob : float
        Probability of the outermost band.
    levels : sequence of float
        Probabilities of the inner bands, drawn inside the ``hdi_prob`` band (``()`` for one
        band only).
    sel : dict, optional
        One label per batch dimension (and the series dimension of a multivariate model).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. By default a new figure is made.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on. The time axis continues the data's, with integer or datetime
        coordinates alike.
    """
    _check_var_name(var_name)
    hdi_prob = _check_prob(hdi_prob, "hdi_prob")
    probs = sorted({hdi_prob, *_check_levels(levels)}, reverse=True)
    pred = _group(idata, "predictions", "run pymc_dlm.forecast and plot the DataTree it returns")
    names = [v for v in pred.data_vars if not v.endswith("_forecast_state")]
    if var_name not in names:
        raise ValueError(
            f"var_name must be a variable of the predictions group {names}, got {var_name!r}"
        )
    fc = pred[var_name]
    state = f"{var_name}_forecast_state"
    time_dim = pred[state].dims[-2] if state in pred.data_vars else fc.dims[-1]
    obs = _observed(idata, var_name)
    sel = _check_sel(sel, fc, obs)
    fc = _pick(fc, sel, (*_SAMPLE_DIMS, time_dim), f"predictions[{var_name!r}]")
    new = ax is None
    if new:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
    if obs is not None:
        y = _pick(obs, sel, (time_dim,), f"observed_data[{var_name!r}]")
        _draw_data(ax, _time(y, time_dim), y.values)
    t = _time(fc, time_dim)
    mean, bands = _mean_and_bands(fc, probs)
    # Opaque shades, widest band lightest, so that the legend shows what the plot shows.
    shades = np.linspace(0.25, 0.6, len(probs)) if len(probs) > 1 else [0.35]
    from matplotlib.colors import to_rgb

    for prob, (lo, hi), shade in zip(probs, bands, shades):
        color = shade * np.array(to_rgb("C1")) + (1 - shade)
        ax.fill_between(t, lo, hi, color=color, linewidth=0, label=_band_label(prob))
    ax.plot(t, mean, color="C1", linewidth=1.5, label="forecast mean")
    ax.set_xlabel(time_dim)
    ax.set_ylabel(var_name)
    ax.legend(loc="best", fontsize="small")
    if new:
        ax.set_title(f"{var_name}: forecast")
    return ax
