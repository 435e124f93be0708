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
from pymc_dlm.kalman.fused.discounted import discounting
from pymc_dlm.kalman.fused.forward import _forward, no_moments
from pymc_dlm.kalman.fused.records import Gradients, Inputs
from pymc_dlm.kalman.fused.steps import _jit, _keep_alive, _pick, borrow_discounting

__all__ = ["discounted_loglik_grad"]


@_jit
def discounted_loglik_grad(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, Pinf_sqrt,
                           learned, g, need, spec):  # fmt: skip
    """``(loglik, *gradients)``: gradients of ``sum_b g[b] loglik[b]`` shaped like the inputs.

    ``spec`` (int64, 2): the straight-line sandwiches of a constant G, or zeros
    (:func:`~pymc_dlm.kalman.fused.discounted.forward`).

    ``need`` (10 booleans, in the order of the inputs) skips the costly gradients nobody uses
    (those of y, F, G and W_sqrt); the gradients of the discount factors and of ``scale``
    are always computed, that of ``blocks`` is zero. A member whose log-likelihood is not
    finite gets zero gradients.
    """
    B, T, p = y.shape
    n = G.shape[-1]
    d_disc, d_blocks, d_scale = np.zeros(disc.shape), np.zeros(blocks.shape), np.zeros(scale.shape)
    out = Gradients(
        loglik=np.zeros(B), d_y=np.zeros(y.shape), d_F=np.zeros(F.shape),
        d_G=np.zeros(G.shape), d_W_sqrt=np.zeros(W_sqrt.shape), d_obs_sd=np.zeros(obs_sd.shape),
        d_m0=np.zeros(m0.shape), d_C0=np.zeros(C0.shape), d_Pinf_sqrt=np.zeros((1, n, 0)),
    )  # fmt: skip
    if T > 0:
        inp = Inputs(y=y, F=F, G=G, W_sqrt=W_sqrt, obs_sd=obs_sd, m0=m0, C0=C0,
                     Pinf_sqrt=Pinf_sqrt)  # fmt: skip
        _members(inp, disc, blocks, scale, learned, g, need, spec, out, d_disc, d_scale)
    return (out.loglik, out.d_y, out.d_F, out.d_G, out.d_W_sqrt, out.d_obs_sd, out.d_m0,
            out.d_C0, d_disc, d_blocks, d_scale)  # fmt: skip


@_jit
def _members(inp, disc, blocks, scale, learned, g, need, spec, out, d_disc, d_scale):
    """The forward and backward pass of every member, into ``out``, ``d_disc``, ``d_scale``."""
    y = inp.y
    T, p, n, d = y.shape[1], y.shape[2], inp.G.shape[-1], inp.Pinf_sqrt.shape[2]
    want = Inputs(y=need[0], F=need[1], G=need[2], W_sqrt=need[3], obs_sd=need[4] and not learned,
                  m0=need[5], C0=need[6], Pinf_sqrt=False)  # fmt: skip
    owners, rec, dw, work, aw = backward_work(inp, want, T, p, 13)
    sq = owners[2]  # rows 11, 12: the discounting's P and zeros
    sq[12][:, :] = 0.0
    tapes = (np.empty((T, n, n)), np.empty(T), np.empty(T), np.zeros((2, max(n, 3))))
    for b in range(y.shape[0]):
        dsc = discounting(disc, blocks, scale, learned, b, bool(1), sq[11], sq[12], tapes[0],
                          tapes[1], tapes[2], tapes[3])  # fmt: skip
        dsc = borrow_discounting(dsc)
        run = _forward(inp, b, bool(1), rec, work, dw, no_moments(n, d), spec, int(0), T,
                       bool(1), dsc)  # fmt: skip
        out.loglik[b] = run.loglik
        gb = g[_pick(g.shape[0], b)]
        if not math.isfinite(run.loglik) or gb == 0.0:
            continue
        tapes[3][:, :] = 0.0
        _backward(inp, b, gb, want, run, rec, work, dw, aw, out, spec, dsc)
        bd, bs = _pick(disc.shape[0], b), _pick(scale.shape[0], b)
        for r in range(n):
            d_disc[bd, r] += gb * dsc.delta_bar[r]
        if learned:
            for k in range(3):
                d_scale[bs, k] += gb * dsc.scale_bar[k]
    _keep_alive((owners, tapes))
