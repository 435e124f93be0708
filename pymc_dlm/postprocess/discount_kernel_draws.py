r"""State draws of discounted DLMs by the numba kernels: the route of ``sample_states``.

Given the parameters :math:`\psi`, the discount's state noise

.. math::

    W_t = D \circ (G_t C_{t-1} G_t^\top) + L_W L_W^\top

is a function of the filtered covariances, which depend on which values are observed, not on
the values: the model is then a DLM with known, time-varying :math:`W_t`, and
forward-filtering backward-sampling with those :math:`W_t` draws exactly from
:math:`p(\theta_{1:T} | y_{1:T}, \psi)` (West & Harrison 1997, §6.3; Carter & Kohn 1994). For
every chunk of posterior draws:

1. a small graph on the Python linker lays the draws out as the discounted kernel's ten
   inputs (:func:`~pymc_dlm.kalman.fused.discounted_ops.discounted_inputs`);
2. the kernels' one forward pass with the discounting
   (:func:`~pymc_dlm.postprocess.discount_moments.run_kernel`: square-root steps where a
   proper prior is vague against the noise) gives every :math:`C_t`, every step's
   log-likelihood term and, with a learned variance, :math:`(n_t, d_t)`;
3. :math:`W_t` is formed from the :math:`C_{t-1}`
   (:func:`~pymc_dlm.postprocess.discount_moments.noise_factors`), and the FFBS kernel of the
   fixed-W models (:func:`~pymc_dlm.kalman.fused.states.ffbs_into`, with its exact diffuse
   start) draws the filtered states and one joint path of that DLM.

With a learned variance the kernels run at unit scale and the standard normal draws are
divided by :math:`\sqrt{\phi}` as in :mod:`pymc_dlm.postprocess.discount_states` (which holds
the derivation): :math:`\phi_t \sim \mathrm{Ga}(n_t/2, d_t/2)` for the filtered draws,
and the precision path of :func:`precision_path` for the joint path. The one-step terms are
the discounted filter's (Student-t with a learned variance).

The scans of :mod:`pymc_dlm.postprocess.discount_states` (the definition, the pytensor
backend) run instead for a dtype other than float64. A full observation covariance
:math:`V_t = L_t L_t^\top` is decorrelated in front of the kernels (:func:`now_outputs`):
they run on :math:`L_t^{-1} y_t` with :math:`L_t^{-1} F_t` and unit noise, which has the same
states, and each step's log density gains :math:`-\log|L_t|` over its observed components.
The model's :math:`F_t` and :math:`V_t` travel beside the kernel's inputs (a :class:`Chunk`)
for what is said in the space of the observations: components, replicates, forecasts.

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed., §4.6,
§6.3, §10.8. Carter, C. K. and Kohn, R. (1994). On Gibbs sampling for state space models.
*Biometrika* 81, 541–553.
"""

from typing import NamedTuple

import numpy as np
import pytensor.tensor as pt

from pymc_dlm.kalman import fixed_filter
from pymc_dlm.kalman.constants import OK
from pymc_dlm.kalman.discount import LearnedScale
from pymc_dlm.kalman.fused.canonical import canonical_matrix, decorrelate
from pymc_dlm.kalman.fused.discounted_ops import discounted_inputs, float64
from pymc_dlm.kalman.fused.layout import kernel_array
from pymc_dlm.kalman.fused.records import DiscountInputs, DrawOutputs, Inputs
from pymc_dlm.kalman.fused.states import ffbs_into
from pymc_dlm.model.priors import psd_factor
from pymc_dlm.postprocess.discount_moments import (
    kernel_structures,
    learned_path,
    model_cov,
    noise_factors,
    run_kernel,
)
from pymc_dlm.postprocess.fused_states import (
    _components,
    in_threads,
    kernel_inputs,
    members,
    observed,
    over_draws,
)
from pymc_dlm.postprocess.posterior import params_at
from pymc_dlm.postprocess.progress import chunked

__all__ = [
    "Chunk",
    "KernelDraws",
    "chunk_inputs",
    "fixed_inputs",
    "kernel_draws",
    "kernel_paths",
    "kernel_system",
    "N_NOW",
    "lay_out",
    "batch_shape",
    "n_members",
    "over_chunks",
    "now_outputs",
    "precision_path",
]


class KernelDraws(NamedTuple):
    """The draws of :func:`kernel_paths` for M members (member axis first)."""

    filt: np.ndarray  #: (M, T, n): a draw of every filtered state, NaN while diffuse
    path: np.ndarray  #: (M, T, n): a joint draw of the states
    ll_t: np.ndarray  #: (M, T): the discounted filter's one-step log densities
    V: np.ndarray  #: (M, T): the variance the path was drawn with, or None (known variance)


#: The number of outputs of :func:`now_outputs`.
N_NOW = 13


def kernel_system(target):
    """The kernel's inputs of a discounted ``target`` as a function of its variables' draws.

    Returns ``(fn, batched)`` of :func:`~pymc_dlm.postprocess.fused_states.over_draws`:
    ``fn(*stacked) -> [ten canonical inputs, F, V, step_jac]`` (:func:`now_outputs`), or
    ``None`` when the kernels do not apply (a dtype other than float64).
    """
    values = [v.type() for v in target.inputs]
    outputs = now_outputs(target, values)
    return None if outputs is None else over_draws(values, outputs)


def now_outputs(target, values):
    """The kernel's inputs at one draw ``values`` (symbolic), or None (:func:`kernel_system`).

    The ten canonical inputs, the model's F and V (p, p) in the same layout, and the
    log-Jacobian of each step (batch shape, T): a full observation covariance is decorrelated
    (:func:`~pymc_dlm.kalman.fused.canonical.decorrelate`: the kernel runs on
    :math:`L_t^{-1} y_t`, the states and their moments are the model's, and each step's log
    density gains that term), else zeros (1,). With a learned variance V is the unit scale's.
    """
    op = target.op
    params = params_at(target, values)
    system = op.system(params[:7])
    learned = LearnedScale(*params[7:10]) if op.learned else None
    y, model = observed(target), system
    step_jac = pt.zeros((1,), dtype="float64")
    if not system.obs_diag and learned is None and float64(system, y):
        system, y, step_jac = decorrelate(system, y, per_step=True)
    found = discounted_inputs(system, y, learned)
    if found is None:
        return None
    canon, _, batch = found
    F = canonical_matrix(model.F, 2, batch, "F" in op.time_varying)
    V = model_cov(model, learned)
    V = canonical_matrix(V, 2, batch, "obs" in op.time_varying and learned is None)
    step_jac = pt.broadcast_to(step_jac, (*batch, step_jac.shape[-1]))
    return [*canon, F, V, step_jac.reshape((-1, step_jac.shape[-1]))]


def precision_path(gen, n, d, discount):
    r"""A draw of :math:`\phi_{1:T} | y_{1:T}` (M, T) for West & Harrison's variance discount.

    From the filter's :math:`n_t, d_t` (M, T) and :math:`\delta_V` (M,):
    :math:`\phi_T \sim \mathrm{Ga}(n_T/2, d_T/2)`, then backwards
    :math:`\phi_t = \delta_V \phi_{t+1} + Y_t`,
    :math:`Y_t \sim \mathrm{Ga}((1 - \delta_V) n_t / 2, d_t / 2)` (the derivation is that of
    :func:`pymc_dlm.postprocess.discount_states.precision_path`, the scans' version;
    West & Harrison 1997, §10.8). With :math:`\delta_V = 1` every :math:`\phi_t = \phi_T`.
    """
    dV = np.broadcast_to(discount, n.shape[:1])[:, None]
    phi = np.empty(n.shape)
    phi[:, -1] = gen.gamma(0.5 * n[:, -1], 2.0 / d[:, -1])
    discounted = np.broadcast_to(dV < 1.0, n.shape)
    Y = gen.gamma(np.where(discounted, 0.5 * (1.0 - dV) * n, 1.0), 2.0 / d)
    Y = np.where(discounted, Y, 0.0)
    for t in range(n.shape[1] - 2, -1, -1):
        phi[:, t] = dV[:, 0] * phi[:, t + 1] + Y[:, t]
    return phi


def _fixed_values(inp, W_sqrt):
    """The numeric system of the DLM with these ``W_sqrt`` (M, T, n, k), for ``fixed_filter``.

    ``(values, time_varying)``: the kernel's layout read back as model matrices (a time
    axis of length 1 is dropped and the matrix declared constant), the prior's factor from
    its covariance.
    """
    tv = {"W"}
    values = {"W_sqrt": W_sqrt, "m0": inp.m0, "C0_sqrt": psd_factor(inp.C0)}
    for name, x in (("F", inp.F), ("G", inp.G), ("obs", inp.obs_sd)):
        if x.shape[1] == 1:
            values[name] = x[:, 0]
        else:
            values[name] = x
            tv.add(name)
    # Every matrix with the member axis: the layout graph then broadcasts nothing (its
    # broadcast of a length-1 axis overflows an int8 constant on the Python linker).
    M = W_sqrt.shape[0]
    return {k: np.broadcast_to(x, (M, *x.shape[1:])) for k, x in values.items()}, frozenset(tv)


def fixed_inputs(inp, dinp, out, diffuse):
    """The fixed-W kernels' :class:`Inputs` of the DLM with the discount's :math:`W_t`.

    ``out``: :func:`~pymc_dlm.postprocess.discount_moments.run_kernel`'s moments of ``inp``,
    ``dinp``; ``diffuse``: the boolean mask (n,) of diffuse states. Returns ``(inputs,
    failed)``, ``failed`` (M,) the members whose forward pass failed (their W_t are formed
    from zeros: their draws are to be discarded).
    """
    failed = out.status != OK
    C = np.where(failed[:, None, None, None], 0.0, out.fC)
    values, tv = _fixed_values(inp, noise_factors(inp, dinp, C))
    canon, _, _ = fixed_filter.kernel_inputs(
        values, inp.y, time_varying=tv, diffuse=diffuse, fast=False
    )
    return Inputs(*canon), failed


def kernel_paths(inp, dinp, learned, diffuse, eps, gen):
    """Filtered draws, a joint path, one-step terms and the variance: a :class:`KernelDraws`.

    ``inp``, ``dinp``: the discounted kernel's inputs for M members
    (:func:`~pymc_dlm.postprocess.discount_moments.kernel_structures`); ``learned``:
    whether the variance is learned; ``diffuse``: the boolean mask (n,) of diffuse states;
    ``eps`` (2, M, T, n): standard normal draws for the filtered states and the path (the
    draws are affine in them); ``gen``: a numpy Generator for a learned variance's
    precisions. A member whose filter fails (a forecast variance
    that is not positive, diffuse states left at the end) gets NaN draws and terms.
    """
    out, carry = run_kernel(inp, dinp, learned)
    eps_f, eps_s = eps
    V = None
    if learned:
        n_t, S_t, _, _ = learned_path(inp, dinp, out, carry)
        d_t = n_t * S_t
        ok = np.isfinite(d_t) & (d_t > 0.0)
        n_t, d_t = np.where(ok, n_t, 1.0), np.where(ok, d_t, 1.0)
        phi_t = gen.gamma(0.5 * n_t, 2.0 / d_t)
        phi = precision_path(gen, n_t, d_t, dinp.scale[:, 2])
        eps_f = eps_f / np.sqrt(phi_t)[..., None]
        eps_s = eps_s / np.sqrt(phi)[..., None]
        V = 1.0 / phi
    fixed, failed = fixed_inputs(inp, dinp, out, diffuse)
    M, T, n = eps_f.shape
    draws = DrawOutputs(
        filt=np.empty((M, T, n)), path=np.empty((M, T, n)), ll_t=np.empty((M, T)),
        status=np.empty(M, dtype=np.int64),
    )  # fmt: skip
    eps_f, eps_s = np.ascontiguousarray(eps_f), np.ascontiguousarray(eps_s)
    in_threads(lambda lo, hi: ffbs_into(fixed, eps_f, eps_s, draws, lo, hi), M)
    failed |= draws.status != OK
    ll_t = np.where(failed[:, None], np.nan, out.ll_t)
    for x in (draws.filt, draws.path):
        x[failed] = np.nan
    return KernelDraws(draws.filt, draws.path, ll_t, V)


class Chunk(NamedTuple):
    """The kernel's inputs for the M = S * B members of a chunk of S draws."""

    inp: Inputs  #: the discounted kernel's inputs (``kernel_structures``)
    dinp: DiscountInputs  #: its discount inputs
    F: np.ndarray  #: (1 or M, 1 or T, p, n): the model's F
    V: np.ndarray  #: (1 or M, 1 or T, p, p): the model's V (the unit scale's if learned)
    diffuse: np.ndarray  #: (n,) bool: the diffuse states
    step_jac: np.ndarray  #: (1 or M, 1 or T): each step's log-Jacobian of a decorrelation
    ahead: tuple = ()  #: the arrays after the first :data:`N_NOW` outputs (a forecast's)


def chunk_inputs(target, system, values, S):
    """The kernel's inputs for S draws: a :class:`Chunk`.

    ``system``: :func:`kernel_system`'s result; ``values``: the target's variables with S
    draws stacked on a leading axis (an empty list when it has none).
    """
    fn, batched = system
    return lay_out(target, fn(*values) if values else fn(), batched, S)


def lay_out(target, outs, batched, S):
    """:func:`chunk_inputs` from the evaluated outputs ``outs``.

    The first :data:`N_NOW` are :func:`now_outputs`'; any after them are laid out over the
    members too, as the chunk's ``ahead``.
    """
    *canon, F, V, step_jac = outs[:N_NOW]
    op = target.op
    B = n_members(target)
    # Every input has a member axis first but the discounted blocks' mask (n, n).
    laid = kernel_inputs(canon[:8] + canon[9:], batched[:8] + batched[9:10], S, B)
    laid.insert(8, kernel_array(canon[8]))
    inp, dinp = kernel_structures(laid, op.diffuse or ())
    n = inp.G.shape[-1]
    diffuse = np.zeros(n, dtype=bool) if op.diffuse is None else np.array(op.diffuse)
    F, V, step_jac = (members(x, b, S, B) for x, b in zip((F, V, step_jac), batched[10:N_NOW]))
    ahead = tuple(members(x, b, S, B) for x, b in zip(outs[N_NOW:], batched[N_NOW:]))
    return Chunk(inp, dinp, F, V, diffuse, step_jac, ahead)


def batch_shape(target):
    """The batch axes of ``target``'s data (before its time axis)."""
    time_axis = -1 if target.op.univariate else -2
    return target.data.shape[: target.data.ndim + time_axis]


def n_members(target):
    """B: the number of series of ``target`` (the product of its batch axes)."""
    return int(np.prod(batch_shape(target)))


def over_chunks(target, system, draws, chunking, run):
    """``run(chunk)``'s arrays (M, ...) for every chunk of draws, as (S, *batch, ...).

    ``chunk`` a :class:`Chunk` (:func:`chunk_inputs`); ``draws`` the target's variables
    with draws stacked on a leading axis; ``chunking``: ``(n_total, chunk_size,
    progressbar, description)``. The arrays of the chunks are concatenated.
    """
    n_total, chunk_size, progressbar, description = chunking
    batch = batch_shape(target)
    pieces = []
    for lo, hi in chunked(n_total, chunk_size, progressbar, description):
        arrays = run(chunk_inputs(target, system, [v[lo:hi] for v in draws], hi - lo))
        pieces.append([x.reshape(hi - lo, *batch, *x.shape[1:]) for x in arrays])
    return [np.concatenate(p, axis=0) for p in zip(*pieces)]


def kernel_draws(target, system, draws, n_total, rng, chunk_size, progressbar, description):
    """Filtered states, paths, components and one-step terms of every draw.

    ``system``: :func:`kernel_system`'s result; ``draws``: the target's variables with draws
    stacked on a leading axis. Returns ``[filtered, paths, components, terms]``, arrays with
    a leading draw axis and the target's batch axes (as the scans' route).
    """
    gen = np.random.default_rng(rng.integers(2**63))
    op = target.op

    def run(chunk):
        M, T, _ = chunk.inp.y.shape
        eps = gen.standard_normal((2, M, T, chunk.inp.G.shape[-1]))
        res = kernel_paths(chunk.inp, chunk.dinp, op.learned, chunk.diffuse, eps, gen)
        comp = _components(chunk.F, res.path, op.components)
        return [res.filt, res.path, comp, res.ll_t + chunk.step_jac]

    return over_chunks(target, system, draws, (n_total, chunk_size, progressbar, description),
                       run)  # fmt: skip
