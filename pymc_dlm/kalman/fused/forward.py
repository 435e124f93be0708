r"""The forward pass of the fused kernels: the covariance-form filter of one batch member.

The recursion, the array layout and the structure exploited are described in
:mod:`pymc_dlm.kalman.fused.kernels`; the per-step routines are in
:mod:`~pymc_dlm.kalman.fused.steps`. This module holds :func:`_forward`, the loop over time
that also keeps the record of the backward pass (:mod:`pymc_dlm.kalman.fused.adjoint`) or
the moments of the state draws, split into one inlined helper per block of a step.

Exact diffuse mode (``Pinf_sqrt`` has d > 0 columns): ``m0``, ``C0`` are the *predicted*
moments :math:`a_1, P_{*,1}` (``C0`` a covariance, not a factor) and
:math:`P_{\infty,1} = P_{\infty,1}^{1/2} P_{\infty,1}^{1/2\top}`; step 1 does not predict.
The factor of :math:`P_\infty` is carried in ``DiffuseWork.Pinf_f`` and the per-scalar
record of the backward pass (kinds, gains, :math:`F_\infty`, and :math:`P_\infty` entering
every diffuse step) in the other fields of :class:`~pymc_dlm.kalman.fused.records.DiffuseWork`.

Discounting (:class:`~pymc_dlm.kalman.fused.records.Discounting`, West & Harrison 1997,
§6.3, §10.8; steps in :mod:`~pymc_dlm.kalman.fused.discounting`): the prediction adds
:math:`D \circ P_t` to :math:`P_t = G_t C_{t-1} G_t^\top` (the finite part while diffuse;
the diffuse part stays :math:`G P_\infty G^\top`), ``C0`` is a covariance (the finite part
at time 0 with diffuse states), and a learned variance gives every observed scalar
:math:`h = 1`, the Student-t term and the carry :math:`(n, d)`.

Steady state (time-invariant F, G, W and V, no missing value from there on, past the
diffuse period, and no stored moments): the covariance recursion does not depend on the
data. Once the filtered covariance :math:`C_t` equals :math:`C_{t-1}` to
:data:`~pymc_dlm.kalman.fused.steps.STEADY_TOL` (relative), the steps from ``t_ss = t + 1``
on reuse the gains :math:`u_i, f_i` of step t and update only the mean, :math:`O(n)` per
observation instead of :math:`O(n^2)`. The backward pass differentiates exactly this
computation: the adjoints of the reused :math:`u_i, f_i` are summed and passed to step t.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§4.3, §5.2, §6.4 (univariate treatment).
"""

import math

import numpy as np

from pymc_dlm.kalman.fused.density import constant_part, log_density_at
from pymc_dlm.kalman.fused.diffuse import (
    INFORMATIVE,
    SKIPPED,
    any_nonzero,
    diffuse_update,
    outer_factor,
    predict_factor,
)
from pymc_dlm.kalman.fused.discounting import (
    _discounted_prediction,
    _keep_discounted,
    _learned_diffuse,
    _learned_update,
    _student_step,
)
from pymc_dlm.kalman.fused.records import DiffuseWork, Moments, Pass, StepSystem
from pymc_dlm.kalman.fused.specialize import call_address
from pymc_dlm.kalman.fused.steps import (
    _borrow,
    _copy_matrix,
    _copy_state,
    _inline,
    _innovation,
    _jit,
    _keep_alive,
    _layout,
    _noise_cov,
    _pick,
    _predict,
    _predict_mean,
    _settled,
    _sparse,
    _sparse_into,
    _update,
    borrow_diffuse_work,
    borrow_discounting,
    borrow_record,
    borrow_sparse,
    borrow_work,
)

__all__ = ["no_moments"]


@_inline
def _start(inp, b, work, dw, diffuse, cov):
    """``m = m0``, ``C = C0 C0'`` (``C0`` when ``cov``); ``Pinf_f = Pinf_sqrt`` if diffuse."""
    m, C = work.m, work.C
    m0, C0 = inp.m0, inp.C0
    bm0, bC0 = _pick(m0.shape[0], b), _pick(C0.shape[0], b)
    n, c0 = m.shape[0], C0.shape[2]
    for r in range(n):
        m[r] = m0[bm0, r]
        for c in range(n):
            if cov:
                C[r, c] = C0[bC0, r, c]
                continue
            acc = 0.0
            for j in range(c0):
                acc += C0[bC0, r, j] * C0[bC0, c, j]
            C[r, c] = acc
    if diffuse:
        dw.Pinf_f[:, :] = inp.Pinf_sqrt[_pick(inp.Pinf_sqrt.shape[0], b)]


@_inline
def _last_missing(y, b, t0, t1):
    """The last step in ``t0 .. t1 - 1`` with a missing value (``t0 - 1`` if none)."""
    last_nan = t0 - 1
    for t in range(t1 - 1, t0 - 1, -1):
        if last_nan >= t0:
            break
        for i in range(y.shape[2]):
            if math.isnan(y[b, t, i]):
                last_nan = t
                break
    return last_nan


@_inline
def _predict_step(sys, work, dw, predict_at, active, start, dsc):
    """Step t's prediction a, R (and the diffuse factor when ``active``) from ``sys``.

    ``start``: the first step of a diffuse start, already predicted (a, R = m, C).
    ``dsc``: the :class:`~.records.Discounting` (module docstring).
    """
    m, C, a, R = work.m, work.C, work.a, work.R
    if start:
        _copy_state(m, C, a, R)  # the start is already the prediction of step 1
        return
    if dsc.on:
        _discounted_prediction(sys, work, dsc, predict_at)
    elif predict_at != 0:  # R = G C G' + WW, straight-line (bitwise the same)
        _predict_mean(sys.G, m, a)
        call_address(predict_at, C.ctypes.data, R.ctypes.data, sys.WW.ctypes.data)
    else:
        _predict(sys.G, m, C, sys.WW, a, R, work.GC)
    if active:
        predict_factor(sys.G, dw.Pinf_f, dw.Pinf_f_next)
        _copy_matrix(dw.Pinf_f_next, dw.Pinf_f)


@_jit
def _diffuse_scalar(work, dw, Fz, i, yi, h, t, n_inf, store):
    """One scalar of the diffuse period: (f, v, loglik term, n_inf), recorded with ``store``."""
    kind, f, v, f_inf, ll = diffuse_update(
        work.R, work.a, dw.Pinf_f, Fz, i, yi, h, work.u, dw.K, dw.ud, dw.Pinf_fv
    )
    if store:
        dw.kinds[t, i] = kind
        if kind == INFORMATIVE:
            dw.Ks[n_inf] = dw.K
            dw.f_infs[n_inf] = f_inf
    if kind == INFORMATIVE:
        n_inf += 1
    return f, v, ll, n_inf


@_inline
def _record_entering(rec, dw, work, t, active):
    """Keep the filtered moments (and P_inf while ``active``) entering step t (gradients)."""
    _copy_state(work.m, work.C, rec.ms[t], rec.Cs[t])
    if active:
        outer_factor(dw.Pinf_f, dw.Pinfs[t])


@_inline
def _keep_gain(gain, i, u, f):
    """Keep u and f of scalar i as the gains of the steady steps."""
    n = u.shape[0]
    for r in range(n):
        gain[i, r] = u[r]
    gain[i, n] = f


@_inline
def _record_scalar(rec, t, i, u, f, v):
    """Keep u, f, v of scalar i of step t for the backward pass."""
    for r in range(u.shape[0]):
        rec.us[t, i, r] = u[r]
    rec.fs[t, i] = f
    rec.vs[t, i] = v


@_inline
def _freeze(gain, n):
    """Complete the frozen gains of the steady steps: 1/f and log(2 pi f) of every scalar."""
    for i in range(gain.shape[0]):
        gain[i, n + 1] = 1.0 / gain[i, n]
        gain[i, n + 2] = constant_part(1, math.log(gain[i, n]))


@_inline
def _steady_steps(y, b, sys, work, rec, gain, t_ss, t1, store, total, dsc, nn, dd):
    """Steps ``t_ss .. t1 - 1`` with the frozen gains: the mean only, in place; the new total.

    ``nn, dd``: the learned variance's carry entering step ``t_ss`` (``dsc.learned``).
    """
    m, a = work.m, work.a
    dV = dsc.scale[2]
    F_cnt, F_idx, F_val = sys.F.cnt, sys.F.idx, sys.F.val
    n, p = m.shape[0], y.shape[2]
    for t in range(t_ss, t1):
        if dsc.keep:
            dsc.ns[t], dsc.ds[t] = nn, dd
        _predict_mean(sys.G, m, a)
        for i in range(p):
            v = y[b, t, i]
            for j in range(F_cnt[i]):
                v -= F_val[i, j] * a[F_idx[i, j]]
            f = gain[i, n]
            vf = v * gain[i, n + 1]
            for r in range(n):
                a[r] += gain[i, r] * vf
            if store:
                for r in range(n):
                    rec.us[t, i, r] = gain[i, r]
                rec.fs[t, i] = f
                rec.vs[t, i] = v
            if dsc.learned:
                ll, nn, dd = _student_step(nn, dd, dV, v * vf, f)
                total += ll
            else:
                total += log_density_at(gain[i, n + 2], v * vf)
        for r in range(n):
            m[r] = a[r]
    return total


@_jit
def _forward(inp, b, store, rec, work, dw, mom, spec, t0, t1, steady, dsc):
    r"""Filter batch member ``b``: a :class:`~.records.Pass` (log-likelihood, worst ratio, ...).

    Runs steps ``t0 .. t1 - 1``; with ``t0 > 0`` it starts from the moments already in
    ``work.m``, ``work.C``. Stops at the first -inf. The ratio is the largest
    :math:`z^\top R z / h` met: the covariance update :math:`R - uu^\top/f` loses about
    :math:`\log_{10}` of it in digits. ``inp``: the :class:`~.records.Inputs`; ``work``: the
    :class:`~.records.Work` scratch; ``dw``: the :class:`~.records.DiffuseWork`.

    With ``store``, keeps u, f, v of every update in ``rec`` (a :class:`~.records.Record`)
    and, when ``rec.ms`` has T + 1 rows, the filtered moments entering every step. With
    diffuse states (module docstring), ``t_end`` is the number of steps of the diffuse
    period and ``n_inf`` the number of informative scalars; a diffuse part left at the end
    gives -inf. ``steady`` allows the steady-state route (module docstring); ``t_ss = t1``
    when it is not taken. ``spec`` (int64, 2): addresses of the straight-line sandwiches of
    a constant G (:mod:`~pymc_dlm.kalman.fused.specialize`), or zeros; used only for a G
    shared by the batch and time-invariant.

    ``mom`` (a :class:`~.records.Moments`, :func:`no_moments` when none is wanted): when
    ``mom.ll_t`` has T entries, every step's log-likelihood term and filtered moments (the
    finite part and the factor while diffuse) are recorded; when ``mom.pa`` has T rows, the
    predicted ones too. The caller zeroes the diffuse factors. Recording turns the
    steady-state route off.

    ``dsc``: a :class:`~.records.Discounting` (``no_discounting``: fixed W); with ``keep``
    it receives P_t and the carry. A discounted diffuse start is at time 0 (step 1 predicts).
    """
    # Borrowed views (no reference counting in the loops): the arguments' arrays, and the
    # local ones, which are kept alive to the end. The inputs and the moments may be
    # strided and are not borrowed: their arrays are bound once here (a structure passed to
    # a helper inside the loops would count the references of all its arrays at every call).
    rec, work, dw = borrow_record(rec), borrow_work(work), borrow_diffuse_work(dw)
    dsc = borrow_discounting(dsc)
    y, F, G, W_sqrt, obs_sd = inp.y, inp.F, inp.G, inp.W_sqrt, inp.obs_sd
    pa, pR, pPinf_f, fm, fC, fPinf_f = mom.pa, mom.pR, mom.pPinf_f, mom.fm, mom.fC, mom.fPinf_f
    ll_t = mom.ll_t
    T, p, n = y.shape[1], y.shape[2], G.shape[-1]
    mb = _layout(F, G, W_sqrt, obs_sd, b)
    keep_states = rec.ms.shape[0] > 1
    keep_moments = ll_t.shape[0] == T
    keep_predicted = pa.shape[0] == T
    diffuse = inp.Pinf_sqrt.shape[2] > 0
    if t0 == 0:
        _start(inp, b, work, dw, diffuse, diffuse or dsc.on)
    nn, dd, dV = dsc.scale[0], dsc.scale[1], dsc.scale[2]
    active = diffuse and t0 == 0
    t_end = int(0)
    n_inf = int(0)  # typed, not a literal (see steps._inline)
    G_pattern, F_pattern, WW_owner = _sparse(G[mb.bG, 0]), _sparse(F[mb.bF, 0]), np.empty((n, n))
    sys = StepSystem(G=borrow_sparse(G_pattern), F=borrow_sparse(F_pattern), WW=_borrow(WW_owner))
    _noise_cov(W_sqrt, mb.bW, 0, sys.WW)
    predict_at = spec[0] if mb.TG == 1 and G.shape[0] == 1 else 0
    total = 0.0
    worst = 0.0
    steady = steady and not (keep_states or keep_moments)
    steady = steady and mb.TG == 1 and mb.TF == 1 and mb.TW == 1 and mb.TV == 1
    last_nan = _last_missing(y, b, t0, t1) if steady else t0 - 1
    # Gains of the steady steps: u, f, 1/f and log(2 pi f) of every scalar.
    gains = np.empty((p if steady else 1, n + 3))
    gain = _borrow(gains)
    frozen = False
    t_ss = t1
    for t in range(t0, t1):
        step_diffuse = active
        if keep_states:
            _record_entering(rec, dw, work, t, active)
        if mb.TG > 1:
            _sparse_into(G[mb.bG, t], sys.G)
        if mb.TF > 1:
            _sparse_into(F[mb.bF, t], sys.F)
        start = diffuse and t == 0 and not dsc.on
        if mb.TW > 1 and not start:
            _noise_cov(W_sqrt, mb.bW, t, sys.WW)
        _predict_step(sys, work, dw, predict_at, active, start, dsc)
        if dsc.keep:
            _keep_discounted(dsc, t, nn, dd)
        if keep_predicted:
            _copy_state(work.a, work.R, pa[t], pR[t])
            if active:
                _copy_matrix(dw.Pinf_f, pPinf_f[t])
        tV = t if mb.TV > 1 else 0
        step = 0.0
        observed = False
        for i in range(p):
            yi = y[b, t, i]
            if math.isnan(yi):
                if active and store:
                    dw.kinds[t, i] = SKIPPED
                continue
            observed = True
            h = 1.0 if dsc.learned else obs_sd[mb.bV, tV, i] * obs_sd[mb.bV, tV, i]
            if active:
                k = n_inf
                f, v, ll, n_inf = _diffuse_scalar(work, dw, sys.F, i, yi, h, t, n_inf, store)
                if dsc.learned:
                    ll, nn, dd = _learned_diffuse(n_inf > k, f, v, ll, nn, dd, dV)
            elif dsc.learned:
                f, v = _innovation(work.R, work.a, sys.F, i, yi, h, work.u)
                ll, nn, dd = _learned_update(work, f, v, nn, dd, dV)
            else:
                f, v, ll = _update(work.R, work.a, sys.F, i, yi, h, work.u)
            if steady:
                _keep_gain(gain, i, work.u, f)
            if store:
                _record_scalar(rec, t, i, work.u, f, v)
            total += ll
            step += ll
            if f - h > worst * h:
                worst = (f - h) / h if h > 0.0 else np.inf
        if dsc.learned and not observed:
            nn, dd = dV * nn, dV * dd
        if not (total > -np.inf):
            return Pass(-np.inf, worst, t_end, n_inf, t_ss)
        if keep_moments:
            ll_t[t] = step
            _copy_state(work.a, work.R, fm[t], fC[t])
            if active:
                _copy_matrix(dw.Pinf_f, fPinf_f[t])
        if active and not any_nonzero(dw.Pinf_f):
            active = False
            t_end = t + 1
        if steady and not step_diffuse and t > last_nan and t > t0 and _settled(work.R, work.C):
            frozen = True
            t_ss = t + 1
            _freeze(gain, n)
        # The filtered moments become the next step's input. Copied, not swapped: arrays
        # rebound in the loop are reference-counted (atomically) wherever a helper reads
        # them, which cost more than this copy (see ``_copy_state``).
        _copy_state(work.a, work.R, work.m, work.C)
        if frozen:
            break
    total = _steady_steps(y, b, sys, work, rec, gain, t_ss, t1, store, total, dsc, nn, dd)
    _keep_alive((G_pattern, F_pattern, WW_owner, gains))
    if active:  # fewer informative observations than diffuse states: improper
        return Pass(-np.inf, worst, T, n_inf, t_ss)
    if not (total > -np.inf):
        return Pass(-np.inf, worst, t_end, n_inf, t_ss)
    return Pass(total, worst, t_end, n_inf, t_ss)


@_inline
def no_moments(n, d):
    """The ``mom`` argument of :func:`_forward` that records no moments."""
    return Moments(
        pa=np.empty((0, n)),
        pR=np.empty((0, n, n)),
        pPinf_f=np.empty((0, n, d)),
        fm=np.empty((0, n)),
        fC=np.empty((0, n, n)),
        fPinf_f=np.empty((0, n, d)),
        ll_t=np.empty(0),
    )


@_inline
def _diffuse_work(n, d, T, p, keep_states):
    """Work arrays of the diffuse mode (a :class:`~.records.DiffuseWork`); tiny when d = 0."""
    rows = T if d > 0 else 1
    return DiffuseWork(
        Pinf_f=np.zeros((n, d)),
        Pinf_f_next=np.zeros((n, d)),
        K=np.zeros(n),
        ud=np.zeros(max(d, 1)),
        Pinf_fv=np.zeros(n),
        kinds=np.zeros((rows, p if d > 0 else 1), dtype=np.int8),
        Ks=np.zeros((max(d, 1), n)),
        f_infs=np.zeros(max(d, 1)),
        Pinfs=np.zeros((T + 1 if (keep_states and d > 0) else 1, n, n)),
    )
