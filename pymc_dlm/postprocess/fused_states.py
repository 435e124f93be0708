r"""The fused route of :func:`pymc_dlm.sample_states`: numba FFBS per posterior draw.

For every posterior draw, a small compiled function evaluates the kernels' inputs (the system
matrices in the layout of :mod:`pymc_dlm.kalman.fused.kernels`, with the exact diffuse start
where there is one) and :func:`~pymc_dlm.kalman.fused.states.ffbs_kernel` draws the filtered
states and one joint smoothed path. The kernel is compiled once and cached on disk by numba,
so no model-specific graph is compiled for the states; draws are processed by two threads
(the kernel releases the GIL).

Only the random numbers and the choice of the covariance factor differ from the scan route:
both draw from the same conditional distributions.
"""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode
from pytensor.graph.replace import vectorize_graph

from pymc_dlm.kalman.fused.canonical import (
    canonical_inputs,
    canonical_matrix,
    decorrelate,
    observation_cov,
)
from pymc_dlm.kalman.fused.layout import kernel_array
from pymc_dlm.kalman.fused.records import DrawOutputs, Inputs
from pymc_dlm.kalman.fused.states import ffbs_into
from pymc_dlm.postprocess.over_draws import freeze_shared
from pymc_dlm.postprocess.posterior import system_at
from pymc_dlm.postprocess.progress import chunked

__all__ = [
    "fused_system",
    "fused_draws",
    "over_draws",
    "observed",
    "kernel_inputs",
    "in_threads",
    "members",
]

#: The inputs graph is small and evaluated once per chunk of draws (vectorised): the Python
#: linker runs it with nothing to compile and no C compiler needed (the numba backend would
#: spend seconds to minutes compiling it; C thunks save nothing measurable here and would
#: look for a BLAS library to link).
_SYSTEM_MODE = Mode(linker="py", optimizer="fast_run").excluding("fusion")
_THREADS = 2


def fused_system(target):
    """Compile the kernels' inputs of ``target`` as a function of its variables' draws.

    Returns ``(fn, batched)`` or ``None`` when the fused route does not apply (then the scans
    run). A full observation covariance is decorrelated first
    (:func:`~pymc_dlm.kalman.fused.canonical.decorrelate`). ``fn(*stacked) -> [y, F, G, W, sd, m0,
    C0, Q, F, V, step_jac, log_jac]`` (the second ``F`` and ``V`` are the model's own, for the
    components and the one-step moments) takes the variables with draws stacked on a leading
    axis; ``batched[k]`` says whether
    output ``k`` has that draw axis (outputs that depend on no variable do not). ``log_jac``
    has the target's batch shape (after the draw axis when batched).
    """
    values = [v.type() for v in target.inputs]
    system, y = system_at(target, values), observed(target)
    model, original_F = system, system.F
    step_jac = pt.zeros((1,), dtype="float64")
    if not system.obs_diag:
        # A full V: the kernels run on L^-1 y with L^-1 F and unit noise (the same states);
        # each step's term gains its log-Jacobian.
        system, y, step_jac = decorrelate(system, y, per_step=True)
    found = canonical_inputs(system, y)
    if found is None:
        return None
    canon, batch, log_jac = found
    log_jac = pt.broadcast_to(pt.as_tensor_variable(log_jac, dtype="float64"), batch)
    step_jac = pt.broadcast_to(step_jac, (*batch, step_jac.shape[-1]))
    # The components F_c theta_c are read with the model's own F (the kernels may run on L^-1 F).
    tv = target.op.time_varying
    F = canonical_matrix(original_F, 2, batch, "F" in tv)
    V = canonical_matrix(observation_cov(model), 2, batch, "obs" in tv)
    return over_draws(values, [*canon, F, V, step_jac, log_jac])


def observed(target):
    """The target's data as a (..., T, p) constant (a univariate series gains p = 1)."""
    y = pt.as_tensor_variable(target.data)
    return y[..., None] if target.op.univariate else y


def over_draws(values, outputs):
    """Compile ``outputs`` of one draw's ``values`` as a function of stacked draws.

    Returns ``(fn, batched)``: ``fn(*stacked)`` evaluates the outputs for a leading axis of
    draws (vectorised, one call per chunk); ``batched[k]`` says whether output ``k`` has that
    axis (outputs that depend on no variable do not).
    """
    outputs = freeze_shared(outputs)
    stacked = [pt.tensor(shape=(None, *v.type.shape), dtype=v.type.dtype) for v in values]
    vectorised = vectorize_graph(outputs, dict(zip(values, stacked)))
    batched = [new.ndim == old.ndim + 1 for new, old in zip(vectorised, outputs)]
    with warnings.catch_warnings():
        # Constant folding during the rewrites builds C thunks for constant products, and
        # PyTensor then warns that it found no BLAS library to link: irrelevant to a graph
        # this small, and noise for the user.
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        fn = pytensor.function(stacked, vectorised, mode=_SYSTEM_MODE, on_unused_input="ignore")
    return fn, batched


def members(x, batched, S, B):
    """One kernel input over the S * B members of a chunk (shared inputs keep length 1)."""
    x = np.asarray(x, dtype=np.float64)
    if not batched:
        if x.shape[0] == 1:
            return kernel_array(x)
        x = np.broadcast_to(x, (S, *x.shape))
    x = np.broadcast_to(x, (S, B, *x.shape[2:]))
    return kernel_array(x.reshape(S * B, *x.shape[2:]))


def kernel_inputs(canon, batched, S, B):
    """The kernels' inputs over the S * B members of a chunk of S draws (y tiled)."""
    inputs = [members(x, bt, S, B) for x, bt in zip(canon, batched)]
    if inputs[0].shape[0] != S * B:  # y: one row per member, even when B == 1
        inputs[0] = kernel_array(np.broadcast_to(inputs[0], (S * B, *inputs[0].shape[1:])))
    return inputs


def in_threads(run, M):
    """``run(lo, hi)`` over contiguous ranges of the M members, one per thread (no GIL)."""
    cuts = np.linspace(0, M, min(_THREADS, M) + 1).astype(int)
    with ThreadPoolExecutor(len(cuts) - 1) as pool:
        list(pool.map(run, cuts[:-1], cuts[1:]))


def _components(F, path, components):
    """``F_c theta_c`` per component: (M, T, p, n_comp) from F (M, TF, p, n), path (M, T, n)."""
    out = np.empty((*path.shape[:2], F.shape[2], len(components)))
    for k, (_, a, b) in enumerate(components):
        out[..., k] = np.sum(F[:, :, :, a:b] * path[:, :, None, a:b], axis=-1)
    return out


def _chunk(target, system, values, S, gen):
    fn, batched = system
    *canon, F, _, step_jac, log_jac = fn(*values) if values else fn()
    lead = 1 if batched[-1] else 0
    batch = np.shape(log_jac)[lead:]
    B = int(np.prod(batch))
    inputs = kernel_inputs(canon, batched[: len(canon)], S, B)
    M, T, _ = inputs[0].shape
    n = inputs[2].shape[-1]
    eps_f = gen.standard_normal((M, T, n))
    eps_s = gen.standard_normal((M, T, n))
    filt = np.empty((M, T, n))
    path = np.empty((M, T, n))
    ll = np.empty((M, T))
    status = np.empty(M, dtype=np.int64)
    inp, out = Inputs(*inputs), DrawOutputs(filt=filt, path=path, ll_t=ll, status=status)
    in_threads(lambda lo, hi: ffbs_into(inp, eps_f, eps_s, out, lo, hi), M)
    ll[:, 0] += np.broadcast_to(log_jac, (S, *batch)).reshape(-1)
    if not batched[-2]:
        step_jac = step_jac[None]  # not per draw
    ll += np.broadcast_to(step_jac, (S, *batch, step_jac.shape[-1])).reshape(S * B, -1)
    F = members(F, batched[len(canon)], S, B)
    comp = _components(F, path, target.op.components)
    return [x.reshape(S, *batch, *x.shape[1:]) for x in (filt, path, comp, ll)]


def fused_draws(target, system, draws, n_total, rng, chunk_size, progressbar, description):
    """Filtered states, smoothed paths, components and per-step log-likelihoods of every draw.

    ``system`` is :func:`fused_system`'s result; ``draws`` the target's variables with draws
    stacked on a leading axis (an empty list when the matrices depend on none). Returns
    arrays with a leading draw axis and the target's batch axes, as the scan route does.
    """
    gen = np.random.default_rng(rng.integers(2**63))
    pieces = []
    for lo, hi in chunked(n_total, chunk_size, progressbar, description):
        pieces.append(_chunk(target, system, [v[lo:hi] for v in draws], hi - lo, gen))
    return [np.concatenate(p, axis=0) for p in zip(*pieces)]
