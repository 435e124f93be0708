r"""The gradient of the discounted kernel: the kernels' one forward and one backward pass.

:func:`discounted_loglik_grad` runs, for every batch member,
:func:`pymc_dlm.kalman.fused.forward._forward` with the member's
:class:`~pymc_dlm.kalman.fused.records.Discounting` (keeping the record), then
:func:`pymc_dlm.kalman.fused.adjoint._backward`, the adjoint of exactly that computation
(Giles 2008), which differentiates the discounted prediction and the Student-t terms with
their carry through :mod:`~pymc_dlm.kalman.fused.discounting_adjoint`. The inputs are those of
:mod:`~pymc_dlm.kalman.fused.discounted`.

References
----------
Giles, M. (2008). Collected matrix derivative results for forward and reverse mode
algorithmic differentiation. In *Advances in Automatic Differentiation*, 35-44.
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, §4.6, §6.3.
"""

import math

import numpy as np

from pymc_dlm.kalman.fused.adjoint import _backward, backward_work
from pymc_dlm.kalman.fused.discounted import Tape, discounting
from pymc_dlm.kalman.fused.forward import no_moments
from pymc_dlm.kalman.fused.native import contiguous
from pymc_dlm.kalman.fused.records import (
    DiscountInputs,
    Gradients,
    Inputs,
    PassBuffers,
    Target,
)
from pymc_dlm.kalman.fused.sqrtform import _filter_member
from pymc_dlm.kalman.fused.steps import (
    _jit,
    _keep_alive,
    _pick,
    borrow_discounting,
    borrow_gradients,
    borrow_inputs,
)

__all__ = ["discounted_loglik_grad"]


@_jit
def discounted_loglik_grad(inp, dinp, learned, g, need, spec):
    """``(loglik, *gradients)``: gradients of ``sum_b g[b] loglik[b]`` shaped like the inputs.

    The gradients in the order of the inputs y to C0 (of ``inp``), then of ``dinp``'s
    discount, blocks and scale. ``spec`` (int64, 2): the straight-line sandwiches of a
    constant G, or zeros (:func:`~pymc_dlm.kalman.fused.discounted.forward`).

    ``need`` (10 booleans, in that order) skips the costly gradients nobody uses (those of
    y, F, G and W_sqrt); the gradients of the discount factors and of ``scale`` are always
    computed, that of ``blocks`` is zero. A member whose log-likelihood is not finite gets
    zero gradients.
    """
    B, T = inp.y.shape[0], inp.y.shape[1]
    n = inp.G.shape[-1]
    grads = DiscountInputs(
        discount=np.zeros(dinp.discount.shape), blocks=np.zeros(dinp.blocks.shape),
        scale=np.zeros(dinp.scale.shape),
    )  # fmt: skip
    out = Gradients(
        loglik=np.zeros(B), d_y=np.zeros(inp.y.shape), d_F=np.zeros(inp.F.shape),
        d_G=np.zeros(inp.G.shape), d_W_sqrt=np.zeros(inp.W_sqrt.shape),
        d_obs_sd=np.zeros(inp.obs_sd.shape), d_m0=np.zeros(inp.m0.shape),
        d_C0=np.zeros(inp.C0.shape), d_Pinf_sqrt=np.zeros((1, n, 0)),
    )  # fmt: skip
    if T > 0:
        _members(inp, dinp, learned, g, need, spec, out, grads)
    return (out.loglik, out.d_y, out.d_F, out.d_G, out.d_W_sqrt, out.d_obs_sd, out.d_m0,
            out.d_C0, grads.discount, grads.blocks, grads.scale)  # fmt: skip


@_jit
def _members(inp, dinp, learned, g, need, spec, out, grads):
    """The forward and backward pass of every member, into ``out`` and ``grads``."""
    # Borrowed views (no reference counting at the passes' steps) of C-contiguous inputs
    # (``contiguous`` copies only those that are not) and of the outputs.
    held = contiguous(inp)
    inp, out = borrow_inputs(held), borrow_gradients(out)
    y = inp.y
    T, p, n, d = y.shape[1], y.shape[2], inp.G.shape[-1], inp.Pinf_sqrt.shape[2]
    want = Inputs(y=need[0], F=need[1], G=need[2], W_sqrt=need[3], obs_sd=need[4] and not learned,
                  m0=need[5], C0=need[6], Pinf_sqrt=False)  # fmt: skip
    owners, rec, dw, work, aw = backward_work(inp, want, T, p, 13)
    sq = owners[2]  # rows 11, 12: the discounting's P and zeros
    sq[12][:, :] = 0.0
    records = Tape(us=np.empty((1, 1, 1)), fs=np.empty((1, 1)), vs=np.empty((1, 1)),
                   Ps=np.empty((T, n, n)), ns=np.empty(T), ds=np.empty(T))  # fmt: skip
    bars = np.zeros((2, max(n, 5)))
    for b in range(y.shape[0]):
        dsc = discounting(dinp, learned, b, bool(1), (sq[11], sq[12], bars), records)
        dsc = borrow_discounting(dsc)
        buf = PassBuffers(rec, work, dw, dsc)
        run = _filter_member(inp, b, bool(1), buf, spec, no_moments(n, d))
        out.loglik[b] = run.loglik
        gb = g[_pick(g.shape[0], b)]
        if not math.isfinite(run.loglik) or gb == 0.0:
            continue
        bars[:, :] = 0.0
        _backward(inp, b, Target(gb, want, out), run, buf, aw, spec)
        bd, bs = _pick(dinp.discount.shape[0], b), _pick(dinp.scale.shape[0], b)
        for r in range(n):
            grads.discount[bd, r] += gb * dsc.delta_bar[r]
        if learned:
            for k in range(3):
                grads.scale[bs, k] += gb * dsc.scale_bar[k]
    _keep_alive((owners, records, bars, held))
