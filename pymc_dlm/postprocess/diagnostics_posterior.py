r"""Standardized one-step forecast errors at every posterior draw.

For each posterior draw :math:`\psi` of the static parameters, the Kalman filter is run at
:math:`\psi` and the one-step forecast errors are standardized,
:math:`\tilde e_t(\psi) = L_t(\psi)^{-1}(y_t - f_t(\psi))` with :math:`Q_t(\psi) = L_t L_t^\top`
(:func:`~pymc_dlm.postprocess.diagnostics.standardized_residuals` at fixed values). Their
posterior distribution, or the tests of
:func:`~pymc_dlm.postprocess.diagnostics.residual_tests` per draw, check the model as the
residuals of one fit do (Gelman, Meng & Stern 1996 on checks with realized discrepancies).

The filter runs on all draws of a chunk at once (a leading batch axis of the system matrices)
and is evaluated by pytensor's Python linker: no numba compilation for the model.

References
----------
Durbin & Koopman (2012), §2.12; Gelman, A., Meng, X.-L. and Stern, H. (1996). Posterior
predictive assessment of model fitness via realized discrepancies. *Statistica Sinica* 6,
733–807.
"""

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pytensor.compile.mode import Mode
from pytensor.graph.replace import vectorize_graph

from pymc_dlm.distribution_discounted import DiscountedDLMRV
from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.linalg import matvec, mT, outer_factor
from pymc_dlm.model.notation import PARAMETERS, core_ndims
from pymc_dlm.postprocess.diagnostics import standardize
from pymc_dlm.postprocess.discount_predictive import discounted_residuals
from pymc_dlm.postprocess.over_draws import freeze_shared
from pymc_dlm.postprocess.posterior import start_run, system_at
from pymc_dlm.postprocess.progress import chunked

__all__ = ["posterior_residuals"]

#: The filter over a chunk of draws is evaluated by the Python linker (no numba compilation);
#: each step is a handful of numpy calls on arrays with a leading draw axis. ("fast_run"
#: rewrites fail at evaluation here: an int8 shape constant overflows under the Python linker.)
_MODE = Mode(linker="py", optimizer="fast_compile")


def _with_draw_axis(new, old, core, n_batch):
    """``new`` (the vectorised ``old``) as (draws or 1, 1.., batch of ``old``, core)."""
    if new.ndim == old.ndim:
        new = new[None]
    for _ in range(n_batch - (old.ndim - core)):
        new = pt.expand_dims(new, 1)
    return pt.specify_shape(new, (None,) * (new.ndim - core) + old.type.shape[old.ndim - core :])


def _compile_moments(target):
    r"""``fn(*stacked) -> (f, Q, diffuse)`` of the target over a leading axis of draws.

    ``f`` (S, ..., T, p), ``Q`` (S, ..., T, p, p) and the diffuse-period flags (S, ..., T),
    S being the number of draws, or 1 when the matrices depend on no variable.
    """
    op = target.op
    values = [v.type() for v in target.inputs]
    system = system_at(target, values)
    tv = system.time_varying
    old = freeze_shared(list(system[:6]))
    stacked = [pt.tensor(shape=(None, *v.type.shape), dtype=v.type.dtype) for v in values]
    new = vectorize_graph(old, dict(zip(values, stacked))) if values else old
    cores = core_ndims(tv, system.obs_diag)
    y = pt.as_tensor_variable(target.data)
    y = y[..., None] if op.univariate else y
    n_batch = y.ndim - 2
    mats = [_with_draw_axis(x, o, c, n_batch) for x, o, c in zip(new, old, cores)]
    system = system._replace(**dict(zip(PARAMETERS, mats)))
    res = filter_scan(system, y[None], return_all=True)
    F = system.F if "F" in tv else system.F[..., None, :, :]
    obs = system.obs
    V = (obs**2)[..., None, :] * pt.eye(obs.shape[-1]) if system.obs_diag else obs
    V = V if "obs" in tv else V[..., None, :, :]
    f = matvec(F, res.predicted_mean)
    Q = pt.matmul(pt.matmul(F, outer_factor(res.predicted_factor)), mT(F)) + V
    if res.predicted_diffuse is None:
        diffuse = pt.zeros_like(f[..., 0], dtype="bool")
    else:  # the update at t changed P_inf: F P_inf F' was nonzero (diagnostics.diffuse_steps)
        diffuse = pt.any(pt.neq(res.predicted_diffuse, res.filtered_diffuse), axis=(-2, -1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        return pytensor.function(stacked, [f, Q, diffuse], mode=_MODE, on_unused_input="ignore")


def _residuals(target, fn, draws, n_total, chunk_size, progressbar):
    """Standardized residuals (S, ..., T, p) of every draw, evaluated in chunks."""
    op = target.op
    y = target.data[..., None] if op.univariate else target.data
    pieces = []
    for lo, hi in chunked(n_total, chunk_size, progressbar, f"residuals: {target.name}"):
        f, Q, diffuse = fn(*[v[lo:hi] for v in draws])
        shape = np.broadcast_shapes(f.shape[1:], y.shape)
        f = np.broadcast_to(f, (hi - lo, *shape))
        Q = np.broadcast_to(Q, (hi - lo, *shape, shape[-1]))
        diffuse = np.broadcast_to(diffuse, (hi - lo, *shape[:-1]))
        pieces.append(standardize(np.broadcast_to(y, f.shape), f, Q, diffuse))
    return np.concatenate(pieces, axis=0)


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
            fn = _compile_moments(target)
            z = _residuals(target, fn, draws[target.name], S, chunk_size, progressbar)
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
