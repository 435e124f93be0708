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
from pymc_dlm.kalman.fused.discounting import unrecorded
from pymc_dlm.kalman.fused.discounting_sqrt import (
    discount_rows,
    discount_rows_count,
    learned_terms,
    upper_of_covariance,
)
from pymc_dlm.kalman.fused.forward import _forward
from pymc_dlm.kalman.fused.guard import _probe_ratio
from pymc_dlm.kalman.fused.head_record import head_moments, record_head
from pymc_dlm.kalman.fused.householder import _triangularize, _triangularize_update
from pymc_dlm.kalman.fused.records import Pass, PassBuffers, SqrtWork
from pymc_dlm.kalman.fused.steps import (
    _borrow,
    _inline,
    _jit,
    _keep_alive,
    _layout,
    _pick,
    _sparse,
    _sparse_into,
    borrow_sparse,
    no_record,
)

#: The square-root start hands over to the covariance form after the first step whose
#: forecast variances are within this factor of their noise (at most ~3 digits at stake).
SWITCH_RATIO = 1e3


@_inline
def _sqrt_predict(G, W_sqrt, at, t, sw, dsc):
    r"""Prediction of the square-root filter: ``sw.a`` and ``sw.U`` of step t.

    :math:`a = G m`; :math:`U` the triangular factor of the QR of :math:`[U G^\top; L_W^\top]`
    (the filtered factor in ``sw.U`` becomes the predicted one), with the rows of the
    discounted blocks between them when ``dsc.on`` (:mod:`~.discounting_sqrt`); columns of
    :math:`L_W` that are zero add no row.
    """
    m, U, a, pre, Gp = sw.m, sw.U, sw.a, sw.pre, sw.Gp
    tW = t if at.TW > 1 else 0
    n, k = U.shape[0], W_sqrt.shape[3]
    if at.TG > 1:
        _sparse_into(G[at.bG, t], Gp)
    cnt, idx, val = Gp.cnt, Gp.idx, Gp.val
    for r in range(n):  # a = G m and the rows U G', by the non-zeros of G's rows
        acc = 0.0
        for j in range(cnt[r]):
            acc += val[r, j] * m[idx[r, j]]
        a[r] = acc
    for i in range(n):
        for r in range(n):
            acc = 0.0
            for j in range(cnt[r]):
                acc += U[i, idx[r, j]] * val[r, j]
            pre[i, r] = acc
    row = discount_rows(dsc, pre, n)
    for j in range(k):  # the columns of L_W that are not zero
        nonzero = False
        for r in range(n):
            pre[row, r] = W_sqrt[at.bW, tW, r, j]
            nonzero = nonzero or pre[row, r] != 0.0
        if nonzero:
            row += 1
    _triangularize(pre[:row])
    for i in range(n):
        for c in range(n):
            U[i, c] = pre[i, c]


@_inline
def _observed_rows(inp, at, t, sw):
    """The number q of observed components of step t.

    Their indices, rows of F and innovations :math:`e = y - F a` go to ``sw.obs``, ``sw.Fo``
    and ``sw.ez[:q]``.
    """
    y, F = inp.y, inp.F
    tF = t if at.TF > 1 else 0
    q = 0
    for i in range(y.shape[2]):
        if not math.isnan(y[at.b, t, i]):
            sw.obs[q] = i
            q += 1
    for j in range(q):
        acc = y[at.b, t, sw.obs[j]]
        for c in range(sw.a.shape[0]):
            sw.Fo[j, c] = F[at.bF, tF, sw.obs[j], c]
            acc -= sw.Fo[j, c] * sw.a[c]
        sw.ez[j] = acc
    return q


@_inline
def _update_array(obs_sd, at, tV, sw, q, learned):
    r"""The update's array :math:`[[U_V, 0], [U F^\top, U]]`, (q + n, q + n), in ``sw.big``.

    With a ``learned`` variance the observation variances are 1 (unit scale).
    """
    U, Fo, obs = sw.U, sw.Fo, sw.obs
    n = U.shape[0]
    arr = matrix_view(sw.big, q + n, q + n)
    for r in range(q + n):
        for c in range(q + n):
            arr[r, c] = 0.0
    for j in range(q):
        arr[j, j] = 1.0 if learned else obs_sd[at.bV, tV, obs[j]]
    for i in range(n):
        for j in range(q):
            acc = 0.0
            for c in range(n):
                acc += U[i, c] * Fo[j, c]
            arr[q + i, j] = acc
        for c in range(n):
            arr[q + i, q + c] = U[i, c]
    return arr


@_inline
def _sqrt_update(inp, at, t, sw, q, switch_ratio, dsc, carry):
    r"""Update of the square-root filter by the q observed components of step t.

    The R factor of the QR of the update array (:func:`_update_array`) holds
    :math:`U_Q` (the factor of the forecast covariance), the gain block and the filtered
    factor. Returns (log-density of the innovations, calm, n, d): calm when every forecast
    variance is within ``switch_ratio`` of its noise, :math:`Q_{jj} - h_j \le`
    ratio :math:`\cdot h_j`; with a learned variance (``dsc.learned``) the terms are the
    Student-t ones and ``carry``, the (n, d) entering the step, is updated
    (:func:`~.discounting_sqrt.learned_terms`).
    """
    obs_sd, ez, obs, a, U = inp.obs_sd, sw.ez, sw.obs, sw.a, sw.U
    n, p = U.shape[0], inp.y.shape[2]
    tV = t if at.TV > 1 else 0
    arr = _update_array(obs_sd, at, tV, sw, q, dsc.learned)
    _triangularize_update(arr, q)
    logdet = 0.0
    zz = 0.0
    calm = True
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
        sd = 1.0 if dsc.learned else obs_sd[at.bV, tV, obs[j]]
        h = sd * sd
        if not (Qjj - h <= switch_ratio * h):
            calm = False
    for r in range(n):  # a += K z, with the gain block of the factor
        acc = 0.0
        for j in range(q):
            acc += arr[j, q + r] * ez[p + j]
        a[r] += acc
    for i in range(n):
        for c in range(n):
            U[i, c] = arr[q + i, q + c]
    if dsc.learned:
        total, nn, dd = learned_terms(arr, ez[p:], q, carry, dsc.scale[2])
        return total, calm, nn, dd
    return log_density(q, 2.0 * logdet, zz), calm, carry[0], carry[1]


@_inline
def _sqrt_work(inp, b, dsc):
    r"""The :class:`~.records.SqrtWork` of member ``b``, started from the prior.

    ``m = m0`` and ``U`` the triangular factor of :math:`C_0`: the QR of :math:`L_0^\top`,
    or, with discounting (``C0`` a covariance), its Cholesky factor (NaN when ``C0`` is not
    positive semi-definite).
    """
    n, p, k = inp.G.shape[-1], inp.y.shape[2], inp.W_sqrt.shape[3]
    C0 = inp.C0[_pick(inp.C0.shape[0], b)]
    U = np.empty((n, n))
    if dsc.on:
        upper_of_covariance(C0, U)
    else:
        pre0 = np.zeros((max(C0.shape[1], n), n))
        pre0[: C0.shape[1]] = C0.T
        _triangularize(pre0)
        U[:, :] = pre0[:n]
    return SqrtWork(
        m=inp.m0[_pick(inp.m0.shape[0], b)].copy(),
        U=U,
        a=np.empty(n),
        pre=np.empty((n + discount_rows_count(dsc, n) + k, n)),
        Fo=np.empty((p, n)),
        ez=np.empty(2 * p),
        obs=np.empty(p, dtype=np.int64),
        big=np.empty((p + n) * (p + n)),
        Gp=_sparse(inp.G[_pick(inp.G.shape[0], b), 0]),
    )


@_inline
def borrow_sqrt_work(sw):
    """Borrowed views of the arrays of a :class:`~pymc_dlm.kalman.fused.records.SqrtWork`."""
    return SqrtWork(
        m=_borrow(sw.m),
        U=_borrow(sw.U),
        a=_borrow(sw.a),
        pre=_borrow(sw.pre),
        Fo=_borrow(sw.Fo),
        ez=_borrow(sw.ez),
        obs=_borrow(sw.obs),
        big=_borrow(sw.big),
        Gp=borrow_sparse(sw.Gp),
    )


@_inline
def _keep_factored(mean, U, into_mean, into_cov):
    r"""Copy ``mean`` and the covariance :math:`U^\top U` of the factor ``U`` into the arrays."""
    n = mean.shape[0]
    for r in range(n):
        into_mean[r] = mean[r]
        for c in range(r + 1):
            acc = 0.0
            for k in range(n):
                acc += U[k, r] * U[k, c]
            into_cov[r, c] = acc
            into_cov[c, r] = acc


@_jit
def _sqrt_head(inp, b, switch_ratio, mom, dsc):
    r"""Log-likelihood of batch member ``b`` by the square-root (QR array) filter.

    The route for ill-conditioned problems (vague prior, tiny noise), where the
    covariance form would lose digits: the same array algorithm as
    :mod:`pymc_dlm.kalman.steps` (predict: QR of :math:`[U_C G^\top; L_W^\top]`; update: QR
    of :math:`[[U_V, 0], [U_R F^\top, U_R]]` over the observed components).

    Runs until the end, or stops after the first step whose forecast variances are all within
    ``switch_ratio`` of their noise (:math:`Q_{jj} - h_j \le` ratio :math:`\cdot h_j`: the
    vague prior has been absorbed); with ``switch_ratio = inf`` it runs to the end. Returns
    (log-likelihood so far, next step, m, U) with :math:`C = U^\top U` the filtered
    covariance at that point. ``mom`` (a :class:`~.records.Moments`) records what
    ``forward._forward`` records, for the steps run: the terms and the filtered moments
    when ``mom.ll_t`` has T entries, the predicted ones when ``mom.pa`` has T rows, the
    covariances as products of the factors (symmetric and positive semi-definite); the
    filtered factors :math:`U_t` when ``mom.fU`` has T rows, and the number of steps run
    in ``mom.n_sqrt`` when it has an entry. ``dsc``: the
    :class:`~.records.Discounting` (:mod:`~.discounting_sqrt`); a learned variance's carry
    after the steps run goes to ``dsc.carry``, and with ``dsc.keep`` the carry entering
    every step to ``dsc.ns``, ``dsc.ds``.
    """
    T = inp.y.shape[1]
    at = _layout(inp.F, inp.G, inp.W_sqrt, inp.obs_sd, b)
    owner = _sqrt_work(inp, b, dsc)
    # Borrowed views (``compat.borrow``: no reference counting in the loop).
    sw = borrow_sqrt_work(owner)
    keep_moments, keep_predicted = mom.ll_t.shape[0] == T, mom.pa.shape[0] == T
    keep_factors = mom.fU.shape[0] == T
    total = 0.0
    t_next = T
    carry = (dsc.scale[0], dsc.scale[1])
    for t in range(T):
        _sqrt_predict(inp.G, inp.W_sqrt, at, t, sw, dsc)
        if dsc.keep:  # the learned variance's carry entering step t
            dsc.ns[t], dsc.ds[t] = carry
        if keep_predicted:
            _keep_factored(sw.a, sw.U, mom.pa[t], mom.pR[t])
        q = _observed_rows(inp, at, t, sw)
        # A step without observations says nothing about the prior; an infinite ratio means
        # "never stop" (the route of last resort in ``_headed``).
        calm = q > 0 and switch_ratio < math.inf
        term = 0.0
        if q > 0:
            term, calm_here, nn, dd = _sqrt_update(inp, at, t, sw, q, switch_ratio, dsc, carry)
            carry = (nn, dd)
            total += term
            calm = calm and calm_here
        else:  # a step with no observation discounts the learned variance's carry
            carry = (dsc.scale[2] * carry[0], dsc.scale[2] * carry[1])
        for r in range(sw.m.shape[0]):
            sw.m[r] = sw.a[r]
        if keep_moments:
            mom.ll_t[t] = term
            _keep_factored(sw.m, sw.U, mom.fm[t], mom.fC[t])
        if keep_factors:
            mom.fU[t] = sw.U
        if math.isnan(total):
            break
        if calm and t < T - 1:
            t_next = t + 1
            break
    _keep_alive(owner)
    dsc.carry[0], dsc.carry[1] = carry
    if mom.n_sqrt.shape[0] > 0:
        mom.n_sqrt[0] = t_next
    if math.isnan(total):
        return -np.inf, T, owner.m, owner.U
    return total, t_next, owner.m, owner.U


@_jit
def _headed(inp, b, store, buf, spec, mom):
    """``(log-likelihood, t_ss)`` of member ``b`` when the covariance form alone would lose digits.

    Square-root steps while the prior dominates the noise (the ill-conditioned start of a
    vague prior), then the covariance form from the square-root filter's moments, with the
    steady route (``t_ss``: its first step, T when not taken); if that meets cancellation
    again later, the square-root filter runs to the end. ``mom`` (a
    :class:`~.records.Moments`) receives the moments of the steps as they were computed.

    With ``store`` (whose callers record no moments), the record of the backward pass is
    that of covariance steps started from the square-root filter's moments, step by step
    over the square-root steps (:func:`~.head_record.record_head`), then from the handed-over
    moments: the gradient is the derivative of the steps at the points the value was
    computed at. (A learned variance's carry entering each step is kept whenever ``store``
    is: the discounted kernels pass one flag as both.)
    """
    T, n, d = inp.y.shape[1], inp.G.shape[-1], inp.Pinf_sqrt.shape[2]
    m, C = buf.work.m, buf.work.C
    head_mom = head_moments(T, n, d) if store else mom
    head, t0, m_s, U = _sqrt_head(inp, b, SWITCH_RATIO, head_mom, buf.dsc)
    if not (head > -np.inf):
        return -np.inf, T
    if store and not record_head(inp, b, buf, spec, head_mom, t0):
        return -np.inf, T  # no finite record for the gradient
    if t0 >= T:
        return head, T
    # m, C (and a learned variance's carry, in ``buf.dsc.carry``) of the square-root steps
    _keep_factored(m_s, U, m, C)
    rest = _forward(inp, b, buf, mom, spec, (t0, T), store, bool(1))
    if rest.worst > CANCELLATION_LIMIT and rest.loglik > -np.inf:
        return _sqrt_head(inp, b, np.inf, mom, buf.dsc)[0], rest.t_ss
    return head + rest.loglik, rest.t_ss


@_jit
def _filter_member(inp, b, store, buf, spec, mom):
    """Log-likelihood of member ``b`` (and the record or the moments): a :class:`~.records.Pass`.

    The one forward pass of the kernels, for the value, the gradient's record (``store``)
    and the moments of the state draws, forecasts and fixed-parameter filters (``mom``, a
    :class:`~.records.Moments`; ``forward.no_moments`` for none). The covariance form, with
    the square-root route where it would lose digits (:func:`_headed`): chosen up front when
    the first prediction is ill-conditioned, else after the fact when cancellation is met
    later (the moments are then those of the square-root route too, ``mom.n_sqrt`` the
    number of its leading steps and ``mom.fU`` their factors). Exact diffuse starts
    (``Pinf_sqrt`` with d > 0 columns) remove the vague prior, the usual source of
    cancellation, and always take the covariance form. Arguments as in ``_forward``;
    ``buf.dsc`` gives discounting and a learned variance (``no_discounting``: fixed W).
    """
    T, n, d = inp.y.shape[1], inp.G.shape[-1], inp.Pinf_sqrt.shape[2]
    proper = d == 0
    if mom.n_sqrt.shape[0] > 0:
        mom.n_sqrt[0] = 0  # the covariance form throughout, unless the guard fires below
    if proper and _probe_ratio(inp, b, buf.work, buf.dsc) > CANCELLATION_LIMIT:
        total, t_ss = _headed(inp, b, store, buf, spec, mom)
        return Pass(total, 0.0, 0, 0, t_ss)
    run = _forward(inp, b, buf, mom, spec, (int(0), T), store, bool(1))
    if proper and run.worst > CANCELLATION_LIMIT and run.loglik > -np.inf:
        # the gradient's record (and the discounting's) stays that of the run above
        dsc = unrecorded(buf.dsc) if store else buf.dsc  # re-recorded for the moments
        value_only = PassBuffers(no_record(n), buf.work, buf.dw, dsc)
        total = _headed(inp, b, bool(0), value_only, spec, mom)[0]
        return Pass(total, run.worst, run.t_end, run.n_inf, run.t_ss)
    return run
