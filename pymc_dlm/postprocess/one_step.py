r"""The one-step-ahead predictive of a DLM at every posterior draw, and draws from it.

At a draw :math:`\psi` of the static parameters the Kalman filter gives the one-step
forecast :math:`y_t | y_{1:t-1}, \psi \sim N(f_t, Q_t)`, :math:`f_t = F_t a_t`,
:math:`Q_t = F_t R_t F_t^\top + V_t` (West & Harrison 1997, §4.3; Student-t with a learned
variance, §4.6). With an exact diffuse start it is improper where :math:`F_t` sees a
diffuse direction of the prediction, :math:`F_t B_t \ne 0` at the filter's rank tolerance
(:func:`~pymc_dlm.kalman.diffuse.seen_diffuse`; Durbin & Koopman 2012, §5.2).

* :func:`fixed_one_step`: :math:`f_t, Q_t` of a model with a fixed W over every draw, by
  the kernels' forward pass (:func:`~pymc_dlm.kalman.fused.moments.moments_into`, a chunk
  of draws at once; a full V decorrelated in front of it, the moments the model's);
  :func:`one_step_over_draws`, the filter of :func:`~pymc_dlm.kalman.filter.filter_scan`
  (the definition) on pytensor's Python linker, for a chunk the kernels do not take;
* :func:`one_step_draws`: replicates :math:`y^{rep}_t \sim p(y_t | y_{1:t-1}, \psi)` from
  those moments, NaN where the predictive is improper. Drawing from the moments rather than
  pushing a filtered draw of :math:`\theta_{t-1}` through :math:`G_t` and :math:`F_t` keeps
  the times where :math:`F_t G_t` does not see the diffuse part of :math:`\theta_{t-1}`
  (a filtered draw is NaN in every state a diffuse direction touches).

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed., §4.3,
§4.6. Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*,
2nd ed., §5.2.
"""

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode
from pytensor.graph.replace import vectorize_graph

from pymc_dlm.kalman import fixed_filter
from pymc_dlm.kalman.constants import OK
from pymc_dlm.kalman.diffuse import seen_diffuse as pt_seen_diffuse
from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.fused.moments import moment_outputs, moments_into
from pymc_dlm.kalman.fused.observed import one_step_moments, seen_diffuse
from pymc_dlm.kalman.fused.records import Inputs
from pymc_dlm.kalman.linalg import matvec, mT, outer_factor
from pymc_dlm.model.notation import PARAMETERS, core_ndims
from pymc_dlm.postprocess.fused_states import (
    fused_system,
    in_threads,
    kernel_inputs,
    members,
    over_draws,
)
from pymc_dlm.postprocess.over_draws import freeze_shared
from pymc_dlm.postprocess.posterior import system_at
from pymc_dlm.postprocess.progress import chunked

__all__ = [
    "fixed_one_step",
    "fixed_one_step_replicates",
    "improper_steps",
    "one_step_draws",
    "one_step_over_draws",
]

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


def _filter_over_draws(target):
    """``(stacked, system, res)``: the filter scan of ``target`` over a leading axis of draws.

    ``stacked`` the symbolic inputs (draws first), ``system`` the matrices with that axis,
    ``res`` the :class:`~pymc_dlm.kalman.prepare.FilterResult`.
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
    return stacked, system, filter_scan(system, y[None], return_all=True)


def _function(inputs, outputs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        return pytensor.function(inputs, outputs, mode=_MODE, on_unused_input="ignore")


def one_step_over_draws(target):
    r"""``fn(*stacked) -> (f, Q, updated, improper)`` of a fixed-W target over draws.

    ``f`` (S, ..., T, p), ``Q`` (S, ..., T, p, p); ``updated`` (S, ..., T): the update at t
    changed :math:`P_\infty` (observed data met the diffuse part: the residuals' diffuse
    steps, :func:`~pymc_dlm.postprocess.diagnostics.diffuse_steps`); ``improper``
    (S, ..., T): :math:`F_t` sees the predicted diffuse factor, observed or not. S is the
    number of draws, or 1 when the matrices depend on no variable.
    """
    stacked, system, res = _filter_over_draws(target)
    tv = system.time_varying
    F = system.F if "F" in tv else system.F[..., None, :, :]
    obs = system.obs
    V = (obs**2)[..., None, :] * pt.eye(obs.shape[-1]) if system.obs_diag else obs
    V = V if "obs" in tv else V[..., None, :, :]
    f = matvec(F, res.predicted_mean)
    Q = pt.matmul(pt.matmul(F, outer_factor(res.predicted_factor)), mT(F)) + V
    if res.predicted_diffuse is None:
        updated = improper = pt.zeros_like(f[..., 0], dtype="bool")
    else:
        updated = pt.any(pt.neq(res.predicted_diffuse, res.filtered_diffuse), axis=(-2, -1))
        improper = pt_seen_diffuse(F, res.predicted_diffuse)
    return _function(stacked, [f, Q, updated, improper])


def improper_steps(target, draws, n_total):
    r"""The times whose one-step predictive is improper at some draw (*batch, T) bool.

    :math:`F_t` sees the predicted diffuse factor :math:`B_t` (the module doc), from the
    kernels' forward pass (:func:`~pymc_dlm.kalman.fused.moments.moments_into`) at the
    draw's F and G. :math:`B_t` follows from F, G and which values are missing only (the
    discount, the noise and the proper part of the prior do not touch it; the pass runs with
    unit observation noise), so when neither F nor G depends on the target's variables the
    first draw tells; else every draw runs. All False without diffuse states.
    """
    op = target.op
    y = target.data[..., None] if op.univariate else target.data
    found = np.zeros(y.shape[:-1], dtype=bool)
    if op.diffuse is None:
        return found
    values = [v.type() for v in target.inputs]
    system = system_at(target, values)
    fn, batched = over_draws(values, list(system[:6]))
    every = batched[0] or batched[1]  # F or G depends on a variable
    tv = frozenset(system.time_varying) - {"obs"}
    for s in range(n_total if every else min(n_total, 1)):
        mats = fn(*[v[s : s + 1] for v in draws])
        numeric = {k: x[0] if b else x for k, x, b in zip(PARAMETERS, mats, batched)}
        numeric["obs"] = np.ones(y.shape[-1])
        canon, log_jac, _ = fixed_filter.kernel_inputs(
            numeric, y, time_varying=tv, diffuse=np.asarray(op.diffuse, dtype=bool), fast=False
        )
        inp = Inputs(*canon)
        (M, T, _), n, d = inp.y.shape, inp.G.shape[-1], inp.Pinf_sqrt.shape[-1]
        out = moment_outputs(M, T, n, d, smooth=False)
        moments_into(inp, out, 0, M)
        found |= seen_diffuse(inp.F, out.pPinf_f).reshape(*np.shape(log_jac), T)
    return found


def one_step_draws(f, Q, dof, improper, gen):
    r"""Draws of the one-step predictive (..., T, p): :math:`f_t + L_t \varepsilon_t`.

    ``f`` (..., T, p), ``Q`` (..., T, p, p) with :math:`Q_t = L_t L_t^\top`, ``dof`` (..., T)
    the degrees of freedom (infinite: normal; finite: Student-t,
    :math:`N(0, 1) / \sqrt{\chi^2_\nu / \nu}`) or None for normal, ``improper`` (..., T)
    the times drawn as NaN. ``Q`` at an improper time need not be positive definite.
    """
    Q = np.where(improper[..., None, None], np.eye(Q.shape[-1]), Q)
    L = np.linalg.cholesky(0.5 * (Q + np.swapaxes(Q, -1, -2)))
    draw = np.matmul(L, gen.standard_normal(f.shape)[..., None])[..., 0]
    if dof is not None:
        finite = np.isfinite(dof)
        nu = np.where(finite, dof, 1.0)
        draw = draw / np.where(finite, np.sqrt(gen.chisquare(nu) / nu), 1.0)[..., None]
    return np.where(improper[..., None], np.nan, f + draw)


def _kernel_chunk(system, values, S):
    r"""``(f, Q, updated, improper)`` of S draws by the kernels, (S, *batch, ...), and redo.

    ``system``: :func:`~pymc_dlm.postprocess.fused_states.fused_system`'s result. The
    forward pass (:func:`~pymc_dlm.kalman.fused.moments.moments_into`) gives
    :math:`a_t, R_t` and the diffuse factors; the moments are the model's, :math:`F_t a_t`
    and :math:`F_t R_t F_t^\top + V_t`, whatever the kernel ran on (a full V decorrelated).
    ``redo``: the draws (indices into the S) with a member whose status is not OK, for the
    scans.
    """
    fn, batched = system
    *canon, F, V, _, log_jac = fn(*values) if values else fn()
    batch = np.shape(log_jac)[1 if batched[-1] else 0 :]
    B, k = int(np.prod(batch)), len(canon)
    inp = Inputs(*kernel_inputs(canon, batched[:k], S, B))
    (M, T, _), n, d = inp.y.shape, inp.G.shape[-1], inp.Pinf_sqrt.shape[-1]
    out = moment_outputs(M, T, n, d, smooth=False)
    in_threads(lambda lo, hi: moments_into(inp, out, lo, hi), M)
    F, V = members(F, batched[k], S, B), members(V, batched[k + 1], S, B)
    f, Q = one_step_moments(F, out.pa, out.pR, V)
    updated = improper = np.zeros((M, T), dtype=bool)
    if d:
        updated = np.any(out.pPinf_f != out.fPinf_f, axis=(-2, -1))
        improper = seen_diffuse(inp.F, out.pPinf_f)
    redo = np.flatnonzero(np.any((out.status != OK).reshape(S, B), axis=1))
    return [x.reshape(S, *batch, *x.shape[1:]) for x in (f, Q, updated, improper)], redo


def fixed_one_step(target, draws, n_total, chunk_size, progressbar, description):
    r"""``(f, Q, updated, improper)`` of a fixed-W target at every draw (S, *batch, T, ...).

    As :func:`one_step_over_draws` says, by the kernels' forward pass where it applies
    (float64), by that filter scan for the draws of a chunk where a member's status is not
    OK (the kernels' accuracy guard could not hold), or for every draw where the kernels do
    not apply.
    """
    system = fused_system(target)
    scan = None
    y = target.data[..., None] if target.op.univariate else target.data
    pieces = []
    for lo, hi in chunked(n_total, chunk_size, progressbar, description):
        values = [v[lo:hi] for v in draws]
        redo = np.arange(hi - lo)
        if system is not None:
            found, redo = _kernel_chunk(system, values, hi - lo)
        if scan is None and redo.size:
            scan = one_step_over_draws(target)
        if system is None:
            found = scan(*values)
        shape = (hi - lo, *np.broadcast_shapes(found[0].shape[1:], y.shape))
        shapes = [shape, (*shape, shape[-1]), shape[:-1], shape[:-1]]
        found = [np.broadcast_to(x, s) for x, s in zip(found, shapes)]
        if system is not None and redo.size:
            again = scan(*[v[redo] for v in values])
            found = [np.array(x) for x in found]
            for x, z in zip(found, again):
                x[redo] = np.broadcast_to(z, x[redo].shape)
        pieces.append(found)
    return [np.concatenate(p, axis=0) for p in zip(*pieces)]


def fixed_one_step_replicates(target, draws, n_total, rng, chunk_size, progressbar):
    """One-step replicates (S, *batch, T, p) of a fixed-W target at every draw (module doc)."""
    description = f"posterior_predictive: {target.name}"
    f, Q, _, improper = fixed_one_step(target, draws, n_total, chunk_size, progressbar,
                                       description)  # fmt: skip
    return one_step_draws(f, Q, None, improper, np.random.default_rng(rng.integers(2**63)))
