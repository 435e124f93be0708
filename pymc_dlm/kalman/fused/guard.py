r"""The accuracy guard's first probe: whether a proper prior is vague against the noise.

The covariance update :math:`R - uu^\top/f` of one scalar loses about :math:`\log_{10}` of
:math:`z^\top R z / h` in digits (:data:`~pymc_dlm.kalman.constants.CANCELLATION_LIMIT`).
:func:`_probe_ratio` computes that ratio for the first prediction from the prior, before any
step is taken, so that :func:`~pymc_dlm.kalman.fused.sqrtform._filter_member` can start with
square-root steps instead of finding the loss after the fact.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§6.3 (square-root filtering), §6.4 (univariate treatment).
"""

import numpy as np

from pymc_dlm.kalman.fused.steps import _inline, _layout, _noise_cov, _pick, _predict, _sparse

__all__ = []  # private to the kernels


@_inline
def _probe_ratio(inp, b, work, dsc):
    r"""Largest :math:`z^\top R_1 z / h` of the first prediction from the prior.

    Above :data:`CANCELLATION_LIMIT` the prior is vague against the noise and the covariance
    form would lose digits from the start: the square-root route then runs first. With
    discounting (``dsc.on``) ``C0`` is a covariance and :math:`R_1` the discounted
    prediction; with a learned variance :math:`h = 1`.
    """
    C, a, R, obs_sd = work.C, work.a, work.R, inp.obs_sd
    n, p = inp.G.shape[-1], inp.y.shape[2]
    mb = _layout(inp.F, inp.G, inp.W_sqrt, obs_sd, b)
    C0 = inp.C0[_pick(inp.C0.shape[0], b)]
    for r in range(n):
        for c in range(n):
            if dsc.on:
                C[r, c] = C0[r, c]
                continue
            acc = 0.0
            for j in range(C0.shape[1]):
                acc += C0[r, j] * C0[c, j]
            C[r, c] = acc
    Gp = _sparse(inp.G[mb.bG, 0])
    WW = np.zeros((n, n))
    if not dsc.on:
        _noise_cov(inp.W_sqrt, mb.bW, 0, WW)
    _predict(Gp, inp.m0[_pick(inp.m0.shape[0], b)], C, WW, a, R, work.GC)
    if dsc.on:  # R = P + D∘P + W from P = G C0 G'
        _noise_cov(inp.W_sqrt, mb.bW, 0, WW)
        for r in range(n):
            fr = 1.0 / dsc.delta[r] - 1.0
            for c in range(n):
                R[r, c] += dsc.blocks[r, c] * fr * R[r, c] + WW[r, c]
    Fb = inp.F[mb.bF, 0]
    worst = 0.0
    for i in range(p):
        zRz = 0.0
        for r in range(n):
            if Fb[i, r] != 0.0:
                for c in range(n):
                    zRz += Fb[i, r] * R[r, c] * Fb[i, c]
        sd = 1.0 if dsc.learned else obs_sd[mb.bV, 0, i]
        h = sd * sd
        if zRz > worst * h:
            worst = zRz / h if h > 0.0 else np.inf
    return worst
