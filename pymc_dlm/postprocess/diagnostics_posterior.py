r"""Standardized one-step forecast errors at every posterior draw.

For each posterior draw :math:`\psi` of the static parameters, the Kalman filter is run at
:math:`\psi` and the one-step forecast errors are standardized,
:math:`\tilde e_t(\psi) = L_t(\psi)^{-1}(y_t - f_t(\psi))` with :math:`Q_t(\psi) = L_t L_t^\top`
(:func:`~pymc_dlm.postprocess.diagnostics.standardized_residuals` at fixed values). Their
posterior distribution, or the tests of
:func:`~pymc_dlm.postprocess.diagnostics.residual_tests` per draw, check the model as the
residuals of one fit do (Gelman, Meng & Stern 1996 on checks with realized discrepancies).

The one-step moments of a model with a fixed W are those of
:func:`~pymc_dlm.postprocess.one_step.fixed_one_step` (the kernels' forward pass over the
draws of a chunk; no numba compilation for the model).

References
----------
Durbin & Koopman (2012), §2.12; Gelman, A., Meng, X.-L. and Stern, H. (1996). Posterior
predictive assessment of model fitness via realized discrepancies. *Statistica Sinica* 6,
733–807.
"""

import numpy as np
import xarray as xr

from pymc_dlm.distribution_discounted import DiscountedDLMRV
from pymc_dlm.postprocess.diagnostics import standardize
from pymc_dlm.postprocess.discount_predictive import discounted_residuals
from pymc_dlm.postprocess.one_step import fixed_one_step
from pymc_dlm.postprocess.posterior import start_run

__all__ = ["posterior_residuals"]


def _residuals(target, draws, n_total, chunk_size, progressbar):
    """Standardized residuals (S, ..., T, p) of every draw of a fixed-W target."""
    y = target.data[..., None] if target.op.univariate else target.data
    f, Q, diffuse, _ = fixed_one_step(target, draws, n_total, chunk_size, progressbar,
                                      f"residuals: {target.name}")  # fmt: skip
    return standardize(np.broadcast_to(y, f.shape), f, Q, diffuse)


def posterior_residuals(
    idata, model=None, *, var_names=None, thin=1, chunk_size=250, progressbar=True
):
    r"""Standardized one-step forecast errors for every posterior draw.

    For each draw :math:`\psi` of the parameters,
    :math:`\tilde e_t(\psi) = L_t(\psi)^{-1} (y_t - f_t(\psi))` with :math:`f_t, Q_t =
    L_t L_t^\top` the one-step forecast mean and covariance of the filter at :math:`\psi`:
    the values :func:`~pymc_dlm.postprocess.diagnostics.standardized_residuals` gives for
    ``kalman_filter`` at :math:`\psi`, with the same NaN for missing values and for the
    diffuse period. For a discounted model or a learned variance the filter is that of
    :mod:`pymc_dlm.kalman.discount`, and Student-t errors are mapped to the normal quantile
    of the same probability (:mod:`pymc_dlm.postprocess.discount_predictive`).

    Parameters
    ----------
    idata : xarray.DataTree
        Result of ``pm.sample`` with a ``posterior`` group. It is not modified.
    model : pm.Model, optional
        The model (default: the one in context).
    var_names : str or list of str, optional
        DLM variables to process (default: every observed :class:`~pymc_dlm.DLM`).
    thin : int
        Keep every ``thin``-th draw of each chain.
    chunk_size : int
        Number of draws filtered together.
    progressbar : bool
        Show progress over chunks of draws.

    Returns
    -------
    xarray.Dataset
        One variable per DLM variable ``<name>``, with dims ``(chain, draw, *batch, <time
        dim>)`` for one series and ``(chain, draw, *batch, <time dim>, <series dim>)`` for
        several, the coordinates of the model (and of the kept draws).

    References
    ----------
    Durbin & Koopman (2012), §2.12; Gelman, Meng & Stern (1996).
    """
    run = start_run(idata, model, var_names, None, chunk_size, thin=thin, allow_discounted=True)
    post, draws, n_chain, n_draw = run.post, run.draws, run.n_chain, run.n_draw
    out = {}
    for target in run.targets:
        S = n_chain * n_draw
        if isinstance(target.op, DiscountedDLMRV):
            z = discounted_residuals(target, draws[target.name], S, run.rng, chunk_size,
                                     progressbar)  # fmt: skip
        else:
            z = _residuals(target, draws[target.name], S, chunk_size, progressbar)
        z = z[..., 0] if target.op.univariate else z
        dims = ("chain", "draw", *target.dims)
        coords = {d: v for d, v in target.coords.items() if d in target.dims}
        coords.update(chain=post["chain"].values, draw=post["draw"].values)
        da = xr.DataArray(z.reshape(n_chain, n_draw, *z.shape[1:]), dims=dims, coords=coords)
        da.attrs["description"] = (
            "standardized one-step forecast errors L_t^-1 (y_t - f_t) at each posterior draw; "
            "NaN for missing values and the diffuse period"
        )
        out[target.name] = da
    return xr.Dataset(out)
