r"""The square-root route of the fused kernels, where the covariance form would lose digits.

With a vague prior (``C0 = 1e7``) against small observation variances, the covariance update
:math:`R - uu^\top/f` cancels digits. :func:`_filter_member`, the per-member driver of the
kernels, then computes the value by the square-root (QR array) filter
(:func:`_sqrt_head`) for as long as the prior dominates, and hands over to the covariance
form of :mod:`pymc_dlm.kalman.fused.forward` afterwards (:func:`_headed`).

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§6.3 (square-root filtering).
"""

import math

import numpy as np

from pymc_dlm.compat import matrix_view
from pymc_dlm.kalman.constants import CANCELLATION_LIMIT
from pymc_dlm.kalman.fused.density import log_density
from pymc_dlm.kalman.fused.discounting import no_discounting
from pymc_dlm.kalman.fused.forward import _forward, no_moments
from pymc_dlm.kalman.fused.records import Pass
from pymc_dlm.kalman.fused.steps import (
    _borrow,
    _inline,
    _jit,
    _keep_alive,
    _layout,
    _noise_cov,
    _pick,
    _predict,
    _sparse,
    no_record,
)

#: The square-root start hands over to the covariance form after the first step whose
#: forecast variances are within this factor of their noise (at most ~3 digits at stake).
SWITCH_RATIO = 1e3


@_inline
def _triangularize(A):
    r"""Overwrite ``A`` (m, k) with the triangular factor of its QR decomposition, in place.

    Householder reflections. Rows may change sign against LAPACK's factor; the square-root
    filter only uses its products :math:`U^\top U` and ratios in which such signs cancel.
    Rows below ``min(m, k)`` are zeroed.
    """
    m, k = A.shape
    for j in range(min(m, k)):
        norm2 = 0.0
        for i in range(j, m):
            norm2 += A[i, j] * A[i, j]
        if norm2 == 0.0:
            continue
        alpha = -math.sqrt(norm2) if A[j, j] >= 0.0 else math.sqrt(norm2)
        v0 = A[j, j] - alpha
        vtv = norm2 - A[j, j] * A[j, j] + v0 * v0
        A[j, j] = alpha
        for c in range(j + 1, k):
            s = v0 * A[j, c]
            for i in range(j + 1, m):
                s += A[i, j] * A[i, c]
            s *= 2.0 / vtv
            A[j, c] -= s * v0
            for i in range(j + 1, m):
                A[i, c] -= s * A[i, j]
        for i in range(j + 1, m):
            A[i, j] = 0.0
    for i in range(min(m, k), m):
        for c in range(k):
            A[i, c] = 0.0


@_jit
def _sqrt_head(inp, b, switch_ratio):
    r"""Log-likelihood of batch member ``b`` by the square-root (QR array) filter.

    The value route for ill-conditioned problems (vague prior, tiny noise), where the
    covariance form would lose digits: the same array algorithm as
    :mod:`pymc_dlm.kalman.steps` (predict: QR of :math:`[U_C G^\top; L_W^\top]`; update: QR
    of :math:`[[U_V, 0], [U_R F^\top, U_R]]` over the observed components).

    Runs until the end, or stops after the first step whose forecast variances are all within
    ``switch_ratio`` of their noise (:math:`Q_{jj} - h_j \le` ratio :math:`\cdot h_j`: the
    vague prior has been absorbed); with ``switch_ratio = inf`` it runs to the end. Returns
    (log-likelihood so far, next step, m, U) with :math:`C = U^\top U` the filtered
    covariance at that point.
    """
    y, F, G, W_sqrt, obs_sd = inp.y, inp.F, inp.G, inp.W_sqrt, inp.obs_sd
    T, p = y.shape[1], y.shape[2]
    n = G.shape[-1]
    at = _layout(F, G, W_sqrt, obs_sd, b)
    bG, bF, bW, bV, TG, TF, TW, TV = at.bG, at.bF, at.bW, at.bV, at.TG, at.TF, at.TW, at.TV
    L0 = inp.C0[_pick(inp.C0.shape[0], b)]
    pre0 = np.zeros((max(L0.shape[1], n), n))
    pre0[: L0.shape[1]] = L0.T
    _triangularize(pre0)
    U = np.ascontiguousarray(pre0[:n])
    m = inp.m0[_pick(inp.m0.shape[0], b)].copy()
    k = W_sqrt.shape[3]
    # Work arrays, allocated once and used through borrowed views (``compat.borrow``: no
    # reference counting in the loop); the array factorised in the update has q + n rows
    # and columns for q observed components, a view of the first (q + n)^2 entries of ``big``.
    owners = (np.empty(n), np.empty((n + k, n)), np.empty((p, n)), np.empty(2 * p))
    big = np.empty((p + n) * (p + n))
    obs_owner = np.empty(p, dtype=np.int64)
    a, pre, Fo, ez = _borrow(owners[0]), _borrow(owners[1]), _borrow(owners[2]), _borrow(owners[3])
    obs, Ub, mb = _borrow(obs_owner), _borrow(U), _borrow(m)
    total = 0.0
    for t in range(T):
        tG, tW = (t if TG > 1 else 0), (t if TW > 1 else 0)
        # predict: a = G m; U = R of the QR of [U G'; L_W']
        for r in range(n):
            acc = 0.0
            for c in range(n):
                acc += G[bG, tG, r, c] * mb[c]
            a[r] = acc
        for i in range(n):
            for r in range(n):
                acc = 0.0
                for c in range(n):
                    acc += Ub[i, c] * G[bG, tG, r, c]
                pre[i, r] = acc
        for j in range(k):
            for r in range(n):
                pre[n + j, r] = W_sqrt[bW, tW, r, j]
        _triangularize(pre)
        for i in range(n):
            for c in range(n):
                Ub[i, c] = pre[i, c]
        q = 0
        for i in range(p):
            if not math.isnan(y[b, t, i]):
                obs[q] = i
                q += 1
        # A step without observations says nothing about the prior; an infinite ratio means
        # "never stop" (the route of last resort in ``_headed``).
        calm = q > 0 and switch_ratio < math.inf
        if q > 0:
            tF, tV = (t if TF > 1 else 0), (t if TV > 1 else 0)
            for j in range(q):  # observed rows of F, innovations e = y - F a
                acc = y[b, t, obs[j]]
                for c in range(n):
                    Fo[j, c] = F[bF, tF, obs[j], c]
                    acc -= Fo[j, c] * a[c]
                ez[j] = acc
            # update: R of the QR of [[U_V, 0], [U F', U]]
            arr = matrix_view(big, q + n, q + n)
            for r in range(q + n):
                for c in range(q + n):
                    arr[r, c] = 0.0
            for j in range(q):
                arr[j, j] = obs_sd[bV, tV, obs[j]]
            for i in range(n):
                for j in range(q):
                    acc = 0.0
                    for c in range(n):
                        acc += Ub[i, c] * Fo[j, c]
                    arr[q + i, j] = acc
                for c in range(n):
                    arr[q + i, q + c] = Ub[i, c]
            _triangularize(arr)
            logdet = 0.0
            zz = 0.0
            for j in range(q):  # forward substitution with the lower factor U_Q'
                acc = ez[j]
                for i in range(j):
                    acc -= arr[i, j] * ez[p + i]
                ez[p + j] = acc / arr[j, j]
                zz += ez[p + j] * ez[p + j]
                logdet += math.log(abs(arr[j, j]))
                Qjj = 0.0
                for i in range(j + 1):
                    Qjj += arr[i, j] * arr[i, j]
                h = obs_sd[bV, tV, obs[j]] * obs_sd[bV, tV, obs[j]]
                if not (Qjj - h <= switch_ratio * h):
                    calm = False
            for r in range(n):  # a += K z, with the gain block of the factor
                acc = 0.0
                for j in range(q):
                    acc += arr[j, q + r] * ez[p + j]
                a[r] += acc
            for i in range(n):
                for c in range(n):
                    Ub[i, c] = arr[q + i, q + c]
            total += log_density(q, 2.0 * logdet, zz)
        for r in range(n):
            mb[r] = a[r]
        if math.isnan(total):
            break
        if calm and t < T - 1:
            _keep_alive((owners, big, obs_owner))
            return total, t + 1, m, U
    _keep_alive((owners, big, obs_owner))
    if math.isnan(total):
        return -np.inf, T, m, U
    return total, T, m, U


@_inline
def _probe_ratio(inp, b, work):
    r"""Largest :math:`z^\top R_1 z / h` of the first prediction from the prior.

    Above :data:`CANCELLATION_LIMIT` the prior is vague against the noise and the covariance
    form would lose digits from the start: the square-root route then runs first.
    """
    C, a, R, obs_sd = work.C, work.a, work.R, inp.obs_sd
    n, p = inp.G.shape[-1], inp.y.shape[2]
    mb = _layout(inp.F, inp.G, inp.W_sqrt, obs_sd, b)
    L0 = inp.C0[_pick(inp.C0.shape[0], b)]
    for r in range(n):
        for c in range(n):
            acc = 0.0
            for j in range(L0.shape[1]):
                acc += L0[r, j] * L0[c, j]
            C[r, c] = acc
    Gp = _sparse(inp.G[mb.bG, 0])
    WW = np.empty((n, n))
    _noise_cov(inp.W_sqrt, mb.bW, 0, WW)
    _predict(Gp, inp.m0[_pick(inp.m0.shape[0], b)], C, WW, a, R, work.GC)
    Fb = inp.F[mb.bF, 0]
    worst = 0.0
    for i in range(p):
        zRz = 0.0
        for r in range(n):
            if Fb[i, r] != 0.0:
                for c in range(n):
                    zRz += Fb[i, r] * R[r, c] * Fb[i, c]
        h = obs_sd[mb.bV, 0, i] * obs_sd[mb.bV, 0, i]
        if zRz > worst * h:
            worst = zRz / h if h > 0.0 else np.inf
    return worst


@_jit
def _headed(inp, b, store, rec, work, dw, spec):
    """Log-likelihood of member ``b`` when the covariance form alone would lose digits.

    Square-root steps while the prior dominates the noise (the ill-conditioned start of a
    vague prior), then the covariance form from the square-root filter's moments; if that
    meets cancellation again later, the square-root filter runs to the end.

    With ``store``, the record of the backward pass is that of the covariance form: from the
    prior for the square-root steps, then from the square-root filter's moments. The
    gradient is therefore that of the covariance-form recursion, whose value differs from
    the returned one by the covariance form's round-off only.
    """
    T, n = inp.y.shape[1], inp.G.shape[-1]
    m, C = work.m, work.C
    mom = no_moments(n, inp.Pinf_sqrt.shape[2])
    fixed = no_discounting(n)
    head, t0, m_s, U = _sqrt_head(inp, b, SWITCH_RATIO)
    if not (head > -np.inf):
        return -np.inf
    if store:
        first = _forward(inp, b, bool(1), rec, work, dw, mom, spec, int(0), t0, bool(0), fixed)
        first = first.loglik
        if not (first > -np.inf):
            return -np.inf  # no finite record for the gradient
    if t0 >= T:
        return head
    for r in range(n):
        m[r] = m_s[r]
        for c in range(n):
            acc = 0.0
            for k in range(n):
                acc += U[k, r] * U[k, c]
            C[r, c] = acc
    rest = _forward(inp, b, store, rec, work, dw, mom, spec, t0, T, bool(0), fixed)
    if rest.worst > CANCELLATION_LIMIT and rest.loglik > -np.inf:
        return _sqrt_head(inp, b, np.inf)[0]
    return head + rest.loglik


@_jit
def _filter_member(inp, b, store, rec, work, dw, spec):
    """Log-likelihood of member ``b`` (and the record): a :class:`~.records.Pass`.

    The covariance form, with the square-root route for the value where it would lose
    digits (:func:`_headed`): chosen up front when the first prediction is ill-conditioned,
    else after the fact when cancellation is met later. Exact diffuse starts
    (``Pinf_sqrt`` with d > 0 columns) remove the vague prior, the usual source of
    cancellation, and always take the covariance form. Arguments as in ``_forward``.
    """
    T, n, d = inp.y.shape[1], inp.G.shape[-1], inp.Pinf_sqrt.shape[2]
    proper = d == 0
    if proper and _probe_ratio(inp, b, work) > CANCELLATION_LIMIT:
        return Pass(_headed(inp, b, store, rec, work, dw, spec), 0.0, 0, 0, T)
    mom, fixed = no_moments(n, d), no_discounting(n)
    run = _forward(inp, b, store, rec, work, dw, mom, spec, int(0), T, bool(1), fixed)
    if proper and run.worst > CANCELLATION_LIMIT and run.loglik > -np.inf:
        total = _headed(inp, b, bool(0), no_record(n), work, dw, spec)
        return Pass(total, run.worst, run.t_end, run.n_inf, run.t_ss)
    return run
