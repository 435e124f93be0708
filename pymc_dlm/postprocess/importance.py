r"""Importance-sampling correction of NUTS run on the Laplace log-likelihood.

NUTS on a :class:`~pymc_dlm.DLM` with a non-Gaussian ``family`` samples the posterior under
the Laplace approximation :math:`\hat p(y \mid \psi)`. Reweighting each draw by
:math:`\tilde p(y \mid \psi) / \hat p(y \mid \psi)`, with :math:`\tilde p` the unbiased
importance-sampling estimate of the exact likelihood (:mod:`pymc_dlm.laplace.importance`),
gives weighted expectations that converge to the exact posterior's (Vihola, Helske & Franks
2020, the IS-type estimator of approximate MCMC). The weights are Pareto-smoothed over the
draws (PSIS, ArviZ's ``psislw``) and their Pareto :math:`\hat k` is reported: above 0.7 the
weighted estimates are unreliable (the approximation is too far from the exact posterior, or
``n_importance`` too small).

Use: ``w = np.exp(out["importance"]["log_weight"])`` sums to 1 over chains and draws;
``(out.posterior["sigma"] * w).sum(("chain", "draw"))`` is the corrected posterior mean.

References
----------
Vihola, M., Helske, J. and Franks, J. (2020). *Scand. J. Statistics* 47, 1339–1376.
Vehtari, A., Simpson, D., Gelman, A., Yao, Y. and Gabry, J. (2024). Pareto smoothed
importance sampling. *JMLR* 25(72).
"""

import arviz_stats  # noqa: F401 (registers the DataArray accessor ``.azstats``)
import numpy as np
import scipy.special
import xarray as xr

from pymc_dlm.distribution_family import FamilyDLMRV
from pymc_dlm.postprocess.family_posterior import importance_at_draws
from pymc_dlm.postprocess.posterior import start_run

__all__ = ["importance_correct"]


def importance_correct(
    idata, model=None, *, var_names=None, n_importance=100, random_seed=None, progressbar=True
):
    r"""Importance weights that correct a Laplace-likelihood posterior to the exact one.

    Parameters
    ----------
    idata : xarray.DataTree
        Result of ``pm.sample`` on a model with a :class:`~pymc_dlm.DLM` of a non-Gaussian
        ``family``. Not modified.
    model : pm.Model, optional
        The model (default: the one in context).
    var_names : str or list of str, optional
        The DLM variables whose likelihoods are corrected (default: every observed one with
        a non-Gaussian family); their log-weights add.
    n_importance : int
        Importance draws (an even number, half antithetic) per posterior draw.
    random_seed : int or numpy Generator, optional
        Seed of the importance draws.
    progressbar : bool
        Show progress.

    Returns
    -------
    xarray.DataTree
        A copy of ``idata`` with an ``importance`` group over ``(chain, draw)``:
        ``log_weight`` (Pareto-smoothed, normalised: the weights sum to 1), ``log_ratio``
        (the raw :math:`\log\tilde p - \log\hat p`), ``loglik_laplace``,
        ``loglik_importance`` and ``loglik_importance_se``; its attribute ``pareto_k`` is
        the smoothing's :math:`\hat k` (NaN when there are too few draws to fit the tail;
        the weights are then only normalised).
    """
    if isinstance(n_importance, bool) or int(n_importance) != n_importance or n_importance < 2:
        raise ValueError(f"n_importance must be a positive even integer, got {n_importance!r}")
    run = start_run(idata, model, var_names, random_seed, 250, allow_family=True)
    targets = [t for t in run.targets if isinstance(t.op, FamilyDLMRV)]
    if not targets:
        names = [t.name for t in run.targets]
        raise ValueError(
            "importance_correct needs a DLM with a non-Gaussian family (family='poisson', ...), "
            f"got only Gaussian ones: {names}"
        )
    S = run.n_chain * run.n_draw
    laplace, exact, se2 = np.zeros(S), np.zeros(S), np.zeros(S)
    for target in targets:
        la, ex, se = importance_at_draws(
            target, run.draws[target.name], S, run.rng, int(n_importance), progressbar
        )
        laplace, exact, se2 = laplace + la, exact + ex, se2 + se**2
    shape = (run.n_chain, run.n_draw)
    coords = {"chain": run.post["chain"].values, "draw": run.post["draw"].values}

    def array(x):
        return xr.DataArray(x.reshape(shape), dims=("chain", "draw"), coords=coords)

    ratio = array(exact - laplace)
    try:
        smoothed, khat = ratio.azstats.psislw(dim=["chain", "draw"])
    except (ValueError, IndexError):  # too few draws to fit the Pareto tail: normalised only
        smoothed = ratio - scipy.special.logsumexp(ratio.values)
        khat = np.nan
    group = xr.Dataset(
        {
            "log_weight": smoothed,
            "log_ratio": ratio,
            "loglik_laplace": array(laplace),
            "loglik_importance": array(exact),
            "loglik_importance_se": array(np.sqrt(se2)),
        }
    )
    group.attrs["pareto_k"] = float(khat)
    group.attrs["n_importance"] = int(n_importance)
    out = idata.copy()
    out["importance"] = group
    return out
