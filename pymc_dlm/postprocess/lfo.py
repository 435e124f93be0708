r"""Leave-future-out cross-validation (LFO-CV), exact and approximated by PSIS.

LFO-CV scores a time-series model by how well it predicts each block of observations
:math:`y_{i+1:i+M}` from the past :math:`y_{1:i}` only, for every forecast origin
:math:`i = L, \dots, T - M`:

.. math::

    \mathrm{elpd}_{\mathrm{LFO}} = \sum_{i=L}^{T-M} \log p(y_{i+1:i+M} \mid y_{1:i}),
    \qquad
    p(y_{i+1:i+M} \mid y_{1:i}) = \int p(y_{i+1:i+M} \mid y_{1:i}, \psi)\,
    p(\psi \mid y_{1:i})\, d\psi .

A DLM integrates its states out exactly: at fixed static parameters :math:`\psi` the Kalman
filter gives the one-step densities :math:`\ell_t(\psi) = \log p(y_t \mid y_{1:t-1}, \psi)`
(:func:`~pymc_dlm.sample_states` with ``log_likelihood=True``), and by the chain rule
:math:`\log p(y_{i+1:i+M} \mid y_{1:i}, \psi) = \sum_{t=i+1}^{i+M} \ell_t(\psi)`.

Exact LFO-CV fits the model on :math:`y_{1:i}` at every origin. The approximation (Bürkner,
Gabry & Vehtari, 2020) fits it at :math:`i^\star` and reuses the draws
:math:`\psi^{(s)} \sim p(\psi \mid y_{1:i^\star})` at later origins with importance ratios

.. math::

    r_i^{(s)} = \frac{p(\psi^{(s)} \mid y_{1:i})}{p(\psi^{(s)} \mid y_{1:i^\star})}
    \propto \prod_{t=i^\star+1}^{i} p(y_t \mid y_{1:t-1}, \psi^{(s)}),

Pareto-smoothed into normalised weights :math:`w_i^{(s)}` (PSIS, Vehtari et al., 2024), so that
:math:`\log p(y_{i+1:i+M} \mid y_{1:i}) \approx \log \sum_s w_i^{(s)}
\exp \sum_{t=i+1}^{i+M} \ell_t(\psi^{(s)})`. When the Pareto shape estimate :math:`\hat k` of
the ratios exceeds a threshold, the weights are unreliable: the model is refit on
:math:`y_{1:i}` and the ratios restart from 1.

References
----------
Bürkner, P.-C., Gabry, J. & Vehtari, A. (2020). Approximate leave-future-out cross-validation
for Bayesian time series models. *J. Stat. Comput. Simul.* 90(14), 2499-2523, §3.
Vehtari, A., Simpson, D., Gelman, A., Yao, Y. & Gabry, J. (2024). Pareto smoothed importance
sampling. *J. Mach. Learn. Res.* 25(72), 1-58.
"""

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pymc as pm
import xarray as xr
from pytensor.graph.basic import Constant
from scipy.special import logsumexp

from pymc_dlm.distribution import DLMRV
from pymc_dlm.distribution_discounted import DiscountedDLMRV
from pymc_dlm.postprocess.states import one_step_terms

__all__ = ["LFODifference", "LFOResult", "compare_lfo", "lfo"]


@dataclass(frozen=True, repr=False)
class LFOResult:
    r"""Result of :func:`lfo`.

    Attributes
    ----------
    elpd : float
        :math:`\mathrm{elpd}_{\mathrm{LFO}}`, the sum of ``elpd_i``.
    se : float
        Standard error of ``elpd``, :math:`\sqrt{n}\,\mathrm{sd}(\mathrm{elpd}_i)` over the
        n scored origins (ddof 0, as ArviZ).
    elpd_i : xarray.DataArray
        :math:`\log p(y_{i+1:i+M} \mid y_{1:i})` per scored origin, labelled by the DLM's
        time coordinate of the first predicted observation :math:`y_{i+1}`.
    pareto_k : xarray.DataArray
        Pareto :math:`\hat k` of the importance weights used at each origin; NaN where the
        model was fit at that origin (no weights), ``-inf`` where the ratios were all equal.
    fits : numpy.ndarray
        Training length i of every model fit, in order: the first is ``min_train`` (or the
        first origin with an observed block), each later one a refit.
    min_train, horizon : int
        The arguments of :func:`lfo`.
    k_threshold : float
        The refit threshold (NaN for ``exact=True``).
    n_draws : int
        Posterior draws per fit.
    """

    elpd: float
    se: float
    elpd_i: xr.DataArray
    pareto_k: xr.DataArray
    fits: np.ndarray
    min_train: int
    horizon: int
    k_threshold: float
    n_draws: int

    def __repr__(self):  # noqa: D105
        return (
            f"LFOResult(elpd={self.elpd:.3f}, se={self.se:.3f}, origins={self.elpd_i.size}, "
            f"horizon={self.horizon}, fits={self.fits.size}, n_draws={self.n_draws})"
        )


class LFODifference(NamedTuple):
    """:func:`compare_lfo`'s result: ``elpd_diff`` (first minus second) and its ``se``."""

    elpd_diff: float
    se: float


def lfo(
    model_fn,
    y,
    *,
    min_train,
    horizon=1,
    k_threshold=0.7,
    exact=False,
    sample_kwargs=None,
    random_seed=None,
    progressbar=False,
):
    r"""Leave-future-out cross-validation of a DLM, exact or approximated by PSIS.

    Parameters
    ----------
    model_fn : callable
        ``model_fn(y_train)`` returns a ``pm.Model`` with exactly one observed
        :class:`~pymc_dlm.DLM` whose ``observed`` is ``y_train``: an array shaped like ``y``,
        equal to it up to the training cut and NaN (missing) after it, so that time-varying
        inputs keep their length T.
    y : array_like
        The whole series, time on the first axis: (T,), or (T, ...) with the remaining axes in
        the DLM's order (batch axes, then series). NaN marks a missing value.
    min_train : int
        L, the length of the shortest training series; the first origin. With diffuse
        states, take L at least the number of observations that identify them.
    horizon : int
        M, the number of observations predicted jointly from each origin.
    k_threshold : float
        Refit when the Pareto :math:`\hat k` of the importance ratios exceeds this (0.7 as in
        Bürkner et al. 2020; lower refits more often). Ignored when ``exact``.
    exact : bool
        Fit the model at every origin (the brute-force reference) instead of reweighting.
    sample_kwargs : dict, optional
        Keyword arguments of ``pm.sample`` (``draws``, ``tune``, ``chains``, ...), except
        ``model`` and ``random_seed``.
    random_seed : int or numpy Generator, optional
        Seeds every fit (one derived seed per fit).
    progressbar : bool
        Progress bars of ``pm.sample`` and :func:`~pymc_dlm.sample_states`.

    Returns
    -------
    LFOResult
        Totals, pointwise values, Pareto :math:`\hat k` and the fits made.

    Notes
    -----
    Origins whose block :math:`y_{i+1:i+M}` is entirely missing are not scored. With
    batch axes the blocks are scored jointly over the batch (the batch shares
    :math:`\psi`). The weights use :math:`r_{\mathrm{eff}} = 1`, as in Bürkner et al.

    References
    ----------
    Bürkner, Gabry & Vehtari (2020), §3 (Algorithm in §3.2); Vehtari et al. (2024).
    """
    if not callable(model_fn):
        raise TypeError(f"model_fn must be callable, got {type(model_fn).__name__}")
    y = _check_series(y)
    T = y.shape[0]
    horizon = _check_int(horizon, "horizon", 1, max(T - 1, 1))
    min_train = _check_int(min_train, "min_train", 1, T - horizon)
    if isinstance(k_threshold, bool) or not isinstance(k_threshold, (int, float, np.number)):
        raise TypeError(f"k_threshold must be a number, got {k_threshold!r}")
    if math.isnan(k_threshold):
        raise ValueError("k_threshold must be a number, got nan")
    if not isinstance(exact, bool):
        raise TypeError(f"exact must be True or False, got {exact!r}")
    kwargs = dict(sample_kwargs or {})
    clash = sorted({"model", "random_seed"} & set(kwargs))
    if clash:
        raise ValueError(f"sample_kwargs must not set {clash}: lfo sets them")
    kwargs.setdefault("progressbar", progressbar)
    observed = ~np.isnan(y).reshape(T, -1).all(axis=1)
    origins = [i for i in range(min_train, T - horizon + 1) if observed[i : i + horizon].any()]
    if not origins:
        raise ValueError(f"y must have an observed value after min_train={min_train}")
    full = model_fn(y)
    name = _dlm_name(full, y, "model_fn(y)")
    seeds = np.random.default_rng(random_seed)

    def fit(cut):
        y_train = y.copy()
        y_train[cut:] = np.nan
        model = model_fn(y_train)
        _dlm_name(model, y_train, f"model_fn(y_train) (training length {cut})")
        idata = pm.sample(model=model, random_seed=int(seeds.integers(2**31)), **kwargs)
        if not isinstance(idata, xr.DataTree):
            raise ValueError("sample_kwargs must let pm.sample return a DataTree")
        # Every one-step term, none left out (missing observations give exactly 0).
        ll, labels = one_step_terms(
            idata, full, name, progressbar=progressbar, random_seed=int(seeds.integers(2**31))
        )
        per_time = ll.reshape(ll.shape[0], -1, ll.shape[-1]).sum(axis=1)
        return per_time, labels

    cut = origins[0]
    ll, time = fit(cut)
    fits = [cut]
    elpd, ks = np.zeros(len(origins)), np.full(len(origins), np.nan)
    for n, i in enumerate(origins):
        log_w = None
        if i > cut and not exact:
            log_w, ks[n] = _psis(ll[:, cut:i].sum(axis=1))
        if i > cut and (exact or ks[n] > k_threshold):
            cut, (ll, _) = i, fit(i)
            fits.append(cut)
            log_w, ks[n] = None, np.nan
        if log_w is None:
            log_w = np.full(ll.shape[0], -np.log(ll.shape[0]))
        elpd[n] = logsumexp(log_w + ll[:, i : i + horizon].sum(axis=1))
    dim = time.dims[0]
    coords = {dim: time.values[origins]}  # positions when the time dim has no coordinate
    return LFOResult(
        elpd=float(elpd.sum()),
        se=float(np.sqrt(elpd.size * np.var(elpd))),
        elpd_i=xr.DataArray(elpd, dims=(dim,), coords=coords, name="elpd_lfo"),
        pareto_k=xr.DataArray(ks, dims=(dim,), coords=coords, name="pareto_k"),
        fits=np.asarray(fits, dtype=int),
        min_train=min_train,
        horizon=horizon,
        k_threshold=float("nan") if exact else float(k_threshold),
        n_draws=ll.shape[0],
    )


def compare_lfo(a, b):
    r"""Difference of two models' LFO-CV elpd, with its standard error.

    Parameters
    ----------
    a, b : LFOResult
        Results of :func:`lfo` on the same series, with the same ``min_train`` and
        ``horizon`` (the same scored origins).

    Returns
    -------
    LFODifference
        ``elpd_diff`` :math:`= \sum_i (\mathrm{elpd}_{a,i} - \mathrm{elpd}_{b,i})`, positive
        when ``a`` predicts better, and ``se`` :math:`= \sqrt{n}\,\mathrm{sd}(\mathrm{elpd}_{a,i}
        - \mathrm{elpd}_{b,i})` (ddof 0, as ``arviz_stats.compare``).

    References
    ----------
    Vehtari, Gelman & Gabry (2017). Practical Bayesian model evaluation using leave-one-out
    cross-validation and WAIC. *Stat. Comput.* 27(5), 1413-1432, §5.2.
    """
    for arg, res in (("a", a), ("b", b)):
        if not isinstance(res, LFOResult):
            raise TypeError(f"{arg} must be an LFOResult (lfo's result), got {type(res).__name__}")
    labels_a, labels_b = (np.asarray(r.elpd_i[r.elpd_i.dims[0]].values) for r in (a, b))
    same = a.horizon == b.horizon and np.array_equal(labels_a, labels_b)
    if not same:
        raise ValueError(
            "b must score the same origins as a (same series, min_train and horizon), got "
            f"{b.elpd_i.size} origins with horizon {b.horizon} against {a.elpd_i.size} "
            f"with horizon {a.horizon}"
        )
    diff = a.elpd_i.values - b.elpd_i.values
    return LFODifference(float(diff.sum()), float(np.sqrt(diff.size * np.var(diff))))


def _psis(log_ratios):
    """Normalised Pareto-smoothed log weights and k-hat; ``(None, inf)`` when unusable."""
    if not np.all(np.isfinite(log_ratios)):
        return None, np.inf
    n = log_ratios.size
    if np.all(log_ratios == log_ratios[0]):
        return np.full(n, -np.log(n)), -np.inf
    # Imported here, when LFO runs, not at `import pymc_dlm`: arviz_stats brings in
    # scipy.stats, about 0.5 s of import time that no other part of the package needs.
    from arviz_stats.base import array_stats

    try:
        # psislw takes minus the log ratios (as LOO's -log-likelihood); r_eff = 1.
        log_w, k = array_stats.psislw(-log_ratios, r_eff=1.0)
    except ValueError:  # e.g. a tail of equal values: no Pareto fit
        return None, np.inf
    k = float(k)
    if not (np.all(np.isfinite(log_w)) and math.isfinite(k)):
        return None, np.inf
    return log_w - logsumexp(log_w), k


def _check_series(y):
    try:
        y = np.array(y, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"y must be a numeric array, got {type(y).__name__}") from err
    if y.ndim == 0 or y.shape[0] < 2:
        raise ValueError(f"y must have time on its first axis, of length >= 2, got {y.shape}")
    if np.isinf(y).any():
        raise ValueError("y must be finite or NaN (missing), got inf")
    return y


def _check_int(value, name, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}] for this y, got {value}")
    return int(value)


def _dlm_name(model, y, what):
    """Name of the model's one observed DLM, after checking its data is ``y``."""
    if not isinstance(model, pm.Model):
        raise TypeError(f"model_fn must return a pymc.Model; {what} is {type(model).__name__}")
    dlms = [
        rv
        for rv in model.observed_RVs
        if rv.owner is not None and isinstance(rv.owner.op, (DLMRV, DiscountedDLMRV))
    ]
    if len(dlms) != 1:
        raise ValueError(
            "model_fn must return a model with exactly one observed pymc_dlm.DLM; "
            f"{what} has {[rv.name for rv in dlms]}"
        )
    rv = dlms[0]
    value = model.rvs_to_values[rv]  # DLM stores its data as a constant
    data = np.asarray(value.data if isinstance(value, Constant) else value.eval())
    data = np.moveaxis(data, -1 if rv.owner.op.univariate else -2, 0)
    if data.shape != y.shape or not np.array_equal(data, y, equal_nan=True):
        raise ValueError(
            f"model_fn must observe its argument in the DLM {rv.name!r}: {what} observes data "
            f"of shape {data.shape} (time first) that differs from the argument {y.shape}"
        )
    return rv.name
