r"""Posterior predictive replicates that condition on the data.

``pm.sample_posterior_predictive`` re-simulates a DLM from its initial state, which a model
with diffuse states cannot do (the simulator refuses it). Replicates for predictive checks
are drawn here instead, for every posterior draw :math:`\psi^{(s)}`:

* ``kind="smoothed"``: :math:`\theta_{1:T} \sim p(\theta_{1:T} | y_{1:T}, \psi)` by FFBS, then
  :math:`y^{rep}_t = F_t\theta_t + v_t`, :math:`v_t \sim N(0, V_t)`: replicates of the data
  given the states (Gelman, Meng & Stern 1996, replications with the latent path kept).
* ``kind="one_step"``: :math:`y^{rep}_t \sim N(f_t, Q_t)`, the one-step-ahead predictive
  :math:`p(y_t | y_{1:t-1}, \psi)` of the filter at :math:`\psi` (West & Harrison 1997,
  §4.3; :mod:`pymc_dlm.postprocess.one_step`). Where that predictive is improper (an
  observation that sees a diffuse direction, in the diffuse period of an exact diffuse
  start) the replicate is NaN; such times are left out of both groups (listed in the
  attributes).

Discounted models and learned variances: :mod:`pymc_dlm.postprocess.discount_predictive`
(Student-t one-step replicates with a learned variance; the smoothed replicates draw V and
the path jointly).

References
----------
Gelman, Meng & Stern (1996), *Statistica Sinica* 6, 733-807; West & Harrison (1997), §4.3;
Petris, Petrone & Campagnoli (2009), §4.4.
"""

import numpy as np
import xarray as xr

from pymc_dlm.distribution_discounted import DiscountedDLMRV
from pymc_dlm.distribution_family import FamilyDLMRV
from pymc_dlm.model.notation import PARAMETERS, core_ndims
from pymc_dlm.postprocess.discount_predictive import discounted_replicates
from pymc_dlm.postprocess.family_posterior import family_replicates
from pymc_dlm.postprocess.fused_states import over_draws
from pymc_dlm.postprocess.one_step import fixed_one_step_replicates
from pymc_dlm.postprocess.posterior import start_run, system_at
from pymc_dlm.postprocess.progress import chunked
from pymc_dlm.postprocess.states import draw_paths

__all__ = [
    "observation_over_draws",
    "posterior_predictive",
    "replicates",
    "replicates_over_draws",
]

_KINDS = ("smoothed", "one_step")
_F_AND_OBS = (PARAMETERS.index("F"), PARAMETERS.index("obs"))


def observation_over_draws(target):
    """Compiled per-draw evaluation of F and obs (V or its standard deviations)."""
    values = [v.type() for v in target.inputs]
    system = system_at(target, values)
    return over_draws(values, [system.F, system.obs])


def _normalise(x, batched, S, n_batch, core, tv):
    """(S, *1, *param batch, T|1, *core) from one evaluated matrix."""
    x = np.asarray(x, dtype=np.float64)
    if not batched:
        x = x[None]
    if not tv:
        x = np.expand_dims(x, x.ndim - core)
    pad = n_batch - (x.ndim - 2 - core)
    x = x.reshape(x.shape[0], *(1,) * pad, *x.shape[1:])
    return np.broadcast_to(x, (S, *x.shape[1:]))


def _mv(A, x):
    """Batched matrix-vector product ``A @ x`` over the last axes."""
    return np.matmul(A, x[..., None])[..., 0]


def _noise(obs, obs_diag, gen, shape):
    eps = gen.standard_normal(shape)
    if obs_diag:
        return obs * eps
    return _mv(np.linalg.cholesky(obs), eps)


def replicates(target, mats, smooth, gen):
    r"""Replicates :math:`F_t \theta_t + v_t` (S, *batch, T, p) of one chunk of paths."""
    op = target.op
    tv = op.time_varying
    S, n_batch = smooth.shape[0], smooth.ndim - 3
    # Core axes of F and obs without time (time_varying empty), and whether each has time.
    cores = [core_ndims(frozenset(), op.obs_diag)[i] for i in _F_AND_OBS]
    timed = [core_ndims(tv, op.obs_diag)[i] > c for i, c in zip(_F_AND_OBS, cores)]
    F, obs = (
        _normalise(x, bt, S, n_batch, core, has_time)
        for (x, bt), core, has_time in zip(mats, cores, timed)
    )
    signal = _mv(F, smooth)
    return signal + _noise(obs, op.obs_diag, gen, signal.shape)


def replicates_over_draws(target, draws, smooth, rng, chunk_size):
    """Replicates (S, *batch, T, p) of every draw's path, chunk by chunk (:func:`replicates`)."""
    fn, batched = observation_over_draws(target)
    gen = np.random.default_rng(rng.integers(2**63))
    pieces = []
    for lo, hi in chunked(smooth.shape[0], chunk_size, False, ""):
        mats = list(zip(fn(*[v[lo:hi] for v in draws]), batched))
        pieces.append(replicates(target, mats, smooth[lo:hi], gen))
    return np.concatenate(pieces, axis=0)


def posterior_predictive(
    idata,
    model=None,
    *,
    kind="smoothed",
    var_names=None,
    random_seed=None,
    progressbar=True,
    chunk_size=250,
    extend_inferencedata=False,
    n_importance=100,
):
    r"""Posterior predictive replicates of the observed DLM variables, given the data.

    Parameters
    ----------
    idata : xarray.DataTree
        Result of ``pm.sample`` (a ``posterior`` group).
    model : pm.Model, optional
        The model (default: the one in context).
    kind : {"smoothed", "one_step"}
        ``"smoothed"``: :math:`y^{rep}_t = F_t\theta_t + v_t` with the states drawn jointly
        from :math:`p(\theta_{1:T} | y_{1:T}, \psi)` (FFBS). ``"one_step"``: draws of the
        one-step-ahead predictive :math:`p(y_t | y_{1:t-1}, \psi) = N(f_t, Q_t)`.
    var_names : str or list of str, optional
        DLM variables (default: every observed :class:`~pymc_dlm.DLM`).
    random_seed : int or numpy Generator, optional
        Seed for reproducible draws.
    progressbar : bool
        Show progress over chunks of draws.
    chunk_size : int
        Number of draws per chunk.
    extend_inferencedata : bool
        Add the groups to ``idata`` in place (as PyMC's ``extend_inferencedata``) and return
        it, instead of returning a new tree.
    n_importance : int
        For a DLM with a non-Gaussian ``family`` (``kind="smoothed"`` only): importance draws
        per posterior draw, from which the state path is resampled
        (:func:`~pymc_dlm.sample_states`); the replicates are drawn from the family given it.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior_predictive`` (``<name>`` with dims ``(chain, draw, *dims)``, the
        observed variable's dims) and ``observed_data``, ready for ``az.plot_ppc_dist``,
        ``az.plot_ppc_pit`` and ``az.summary``. With ``kind="one_step"``, times whose
        one-step predictive is improper (the diffuse period) are left out of both groups and
        listed in the variable's ``dropped_times`` attribute.

    Notes
    -----
    Missing observations get replicates too (the model's predictive at that time); the
    ``observed_data`` group keeps them as NaN.

    References
    ----------
    Gelman, Meng & Stern (1996); West & Harrison (1997), §4.3.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    run = start_run(
        idata,
        model,
        var_names,
        random_seed,
        chunk_size,
        flags={"extend_inferencedata": extend_inferencedata},
        allow_discounted=True,
        allow_family=True,
    )
    n_chain, n_draw, rng = run.n_chain, run.n_draw, run.rng
    S = n_chain * n_draw
    reps, observed = {}, {}
    for target in run.targets:
        values = run.draws[target.name]
        if isinstance(target.op, FamilyDLMRV):
            if kind != "smoothed":
                raise NotImplementedError(
                    f"posterior_predictive(kind={kind!r}) of {target.name!r} (a non-Gaussian "
                    "family): only kind='smoothed' is available for these models yet"
                )
            rep = family_replicates(target, values, S, rng, n_importance, progressbar)[..., None]
        elif isinstance(target.op, DiscountedDLMRV):
            rep = discounted_replicates(target, values, kind, S, rng, chunk_size, progressbar)
        elif kind == "one_step":
            rep = fixed_one_step_replicates(target, values, S, rng, chunk_size, progressbar)
        else:
            _, smooth, _, _ = draw_paths(
                target, values, S, rng, chunk_size, progressbar,
                f"posterior_predictive: {target.name}",
            )  # fmt: skip
            rep = replicates_over_draws(target, values, smooth, rng, chunk_size)
        reps[target.name], observed[target.name] = _to_xarray(target, rep, n_chain, n_draw)
        if kind == "one_step":
            time_dim = target.dims[-1 if target.op.univariate else -2]
            reps[target.name], observed[target.name] = _drop_improper(
                reps[target.name], observed[target.name], time_dim
            )
    out = idata if extend_inferencedata else xr.DataTree()
    for group, variables in (("posterior_predictive", reps), ("observed_data", observed)):
        if extend_inferencedata and group in idata.children:
            out[group] = idata[group].to_dataset().assign(variables)
        else:
            out[group] = xr.Dataset(variables)
    return out


def _to_xarray(target, rep, n_chain, n_draw):
    """Replicates and data as DataArrays over the observed variable's dims."""
    uni = target.op.univariate
    data = np.asarray(target.data, dtype=np.float64)
    rep = rep[..., 0] if uni else rep
    rep = np.broadcast_to(rep, (rep.shape[0], *data.shape))
    rep = rep.reshape(n_chain, n_draw, *data.shape)
    coords = {d: v for d, v in target.coords.items() if d in target.dims}
    da = xr.DataArray(rep, dims=("chain", "draw", *target.dims), coords=coords)
    obs = xr.DataArray(data, dims=target.dims, coords=coords)
    return da, obs


def _drop_improper(rep, obs, time_dim):
    """Leave out times whose one-step predictive is improper (NaN replicates)."""
    others = [d for d in rep.dims if d != time_dim]
    improper = rep.isnull().any(others)
    if not bool(improper.any()):
        return rep, obs
    keep = ~improper.values
    dropped = rep[time_dim].values[~keep] if time_dim in rep.coords else np.flatnonzero(~keep)
    rep, obs = rep.isel({time_dim: keep}), obs.isel({time_dim: keep})
    rep.attrs["dropped_times"] = [str(t) for t in dropped]
    rep.attrs["dropped_reason"] = "improper one-step predictive (diffuse period)"
    return rep, obs
