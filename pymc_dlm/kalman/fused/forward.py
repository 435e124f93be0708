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
diffuse period, and no stored moments): once the filtered covariance settles, the steps
reuse its gains and update only the mean (:mod:`~pymc_dlm.kalman.fused.steady`). The
backward pass differentiates exactly this computation: the adjoints of the reused gains
are summed and passed to the step that made them.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§4.3, §5.2, §6.4 (univariate treatment).
"""

import math

import numpy as np

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
)
from pymc_dlm.kalman.fused.records import (
    Carry,
    DiffuseWork,
    Moments,
    Pass,
    PassKit,
    StepSystem,
)
from pymc_dlm.kalman.fused.specialize import call_address
from pymc_dlm.kalman.fused.steady import _freeze, _keep_gain, _last_missing, _steady_steps
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
def _diffuse_scalar(kit, t, i, yi, h, n_inf, store):
    """One scalar of the diffuse period: (f, v, loglik term, n_inf), recorded with ``store``.

    ``kit``: the pass's :class:`~.records.PassKit` (borrowed views: no reference counting).
    """
    work, dw = kit.work, kit.dw
    moments, scratch = (work.R, work.a, dw.Pinf_f), (work.u, dw.K, dw.ud, dw.Pinf_fv)
    kind, f, v, f_inf, ll = diffuse_update(moments, kit.sys.F, i, yi, h, scratch)
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
def _record_scalar(rec, t, i, u, f, v):
    """Keep u, f, v of scalar i of step t for the backward pass."""
    for r in range(u.shape[0]):
        rec.us[t, i, r] = u[r]
    rec.fs[t, i] = f
    rec.vs[t, i] = v


@_inline
def _system_at(F, G, W_sqrt, mb, t, sys, start):
    """Step t's sparse F and G and its noise covariance W in ``sys`` (those varying in time).

    ``start``: the first step of a diffuse start, whose prediction is made outside (no W).
    """
    if mb.TG > 1:
        _sparse_into(G[mb.bG, t], sys.G)
    if mb.TF > 1:
        _sparse_into(F[mb.bF, t], sys.F)
    if mb.TW > 1 and not start:
        _noise_cov(W_sqrt, mb.bW, t, sys.WW)


@_inline
def _observe(y, obs_sd, mb, t, carry, kit, flags):
    """The updates by the observed scalars of step t: (new ``Carry``, the step's term).

    ``carry``: the :class:`~.records.Carry` entering the step; ``kit``: the pass's borrowed
    structures (:class:`~.records.PassKit`); ``flags``: (store, steady, active). A step with
    no observation still discounts the learned variance's carry.
    """
    work, dw, rec, sys, dsc, gain = kit
    store, steady, active = flags
    total, worst, n_inf, nn, dd = carry
    dV = dsc.scale[2]
    tV = t if mb.TV > 1 else 0
    step = 0.0
    observed = False
    for i in range(y.shape[2]):
        yi = y[mb.b, t, i]
        if math.isnan(yi):
            if active and store:
                dw.kinds[t, i] = SKIPPED
            continue
        observed = True
        h = 1.0 if dsc.learned else obs_sd[mb.bV, tV, i] * obs_sd[mb.bV, tV, i]
        if active:
            k = n_inf
            f, v, ll, n_inf = _diffuse_scalar(kit, t, i, yi, h, n_inf, store)
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
    return Carry(total, worst, n_inf, nn, dd), step


@_jit
def _forward(inp, b, buf, mom, spec, span, store, steady):
    r"""Filter batch member ``b``: a :class:`~.records.Pass` (log-likelihood, worst ratio, ...).

    Runs steps ``t0 .. t1 - 1`` of ``span = (t0, t1)``; with ``t0 > 0`` it starts from
    ``buf.work.m``, ``buf.work.C`` (and ``buf.dsc.carry``). Stops at the first -inf. The
    ratio is the largest :math:`z^\top R z / h` met: the covariance update :math:`R -
    uu^\top/f` loses about :math:`\log_{10}` of it in digits. ``inp``: the
    :class:`~.records.Inputs`; ``buf``: the :class:`~.records.PassBuffers`.

    With ``store``, keeps u, f, v of every update in ``buf.rec`` and, when ``rec.ms`` has
    T + 1 rows, the filtered moments entering every step. With diffuse states (module
    docstring), ``t_end`` is the number of steps of the diffuse period and ``n_inf`` the
    number of informative scalars; a diffuse part left at the end gives -inf. ``steady``
    allows the steady-state route (module docstring); ``t_ss = t1`` when it is not taken.
    ``spec`` (int64, 2): the straight-line sandwiches of a constant G (``specialize``) or 0.

    ``mom`` (a :class:`~.records.Moments`, :func:`no_moments` for none): when ``mom.ll_t``
    has T entries, every step's term and filtered moments (with the factor of
    :math:`P_\infty` while diffuse; the caller zeroes it) are recorded, and when ``mom.pa``
    has T rows the predicted ones (by the steady steps too, ``steady._steady_steps``).
    """
    # Borrowed views (no reference counting in the loops) of the buffers and the local
    # arrays; the inputs and moments may be strided: their arrays are bound once here.
    rec, work, dw, dsc = _borrow_buffers(buf)
    y, F, G, W_sqrt = inp.y, inp.F, inp.G, inp.W_sqrt
    t0, t1 = span
    T, p, n = y.shape[1], y.shape[2], G.shape[-1]
    mb = _layout(F, G, W_sqrt, inp.obs_sd, b)
    pa, pR, pPinf_f, fm, fC = mom.pa, mom.pR, mom.pPinf_f, mom.fm, mom.fC
    fPinf_f, ll_t = mom.fPinf_f, mom.ll_t
    keep_moments, keep_predicted = ll_t.shape[0] == T, pa.shape[0] == T
    diffuse = inp.Pinf_sqrt.shape[2] > 0
    if t0 == 0:
        _start(inp, b, work, dw, diffuse, diffuse or dsc.on)
    active = diffuse and t0 == 0
    t_end = int(0)
    owners, sys = _step_system(inp, mb, n)
    predict_at = spec[0] if mb.TG == 1 and G.shape[0] == 1 else 0
    steady = steady and not rec.ms.shape[0] > 1
    steady = steady and mb.TG == 1 and mb.TF == 1 and mb.TW == 1 and mb.TV == 1
    last_nan = _last_missing(y, b, t0, t1) if steady else t0 - 1
    gains = np.empty((p if steady else 1, n + 3))  # u, f, 1/f, log(2 pi f) of every scalar
    kit = PassKit(work, dw, rec, sys, dsc, _borrow(gains))
    carry = _first_carry(dsc, t0)
    t_ss = t1
    for t in range(t0, t1):
        step_diffuse = active
        if rec.ms.shape[0] > 1:
            _record_entering(rec, dw, work, t, active)
        start = diffuse and t == 0 and not dsc.on
        if mb.TG > 1 or mb.TF > 1 or mb.TW > 1:  # (strided arrays: counted references)
            _system_at(F, G, W_sqrt, mb, t, sys, start)
        _predict_step(sys, work, dw, predict_at, active, start, dsc)
        if dsc.keep:
            _keep_discounted(dsc, t, carry.nn, carry.dd)
        if keep_predicted:
            _copy_moments(work.a, work.R, dw.Pinf_f, (pa[t], pR[t], pPinf_f[t]), active)
        carry, step = _observe(y, inp.obs_sd, mb, t, carry, kit, (store, steady, active))
        if not (carry.total > -np.inf):
            return Pass(-np.inf, carry.worst, t_end, carry.n_inf, t_ss)
        if keep_moments:
            ll_t[t] = step
            _copy_moments(work.a, work.R, dw.Pinf_f, (fm[t], fC[t], fPinf_f[t]), active)
        if active and not any_nonzero(dw.Pinf_f):
            active = False
            t_end = t + 1
        frozen = steady and not step_diffuse and t > last_nan and t > t0
        frozen = frozen and _settled(work.R, work.C)
        # The filtered moments become the next step's input. Copied, not swapped: arrays
        # rebound in the loop are reference-counted (atomically) wherever a helper reads
        # them, which cost more than this copy (see ``_copy_state``).
        _copy_state(work.a, work.R, work.m, work.C)
        if frozen:
            t_ss = t + 1
            _freeze(kit.gain, n)
            break
    carry = _steady_steps(y, mb, kit, (t_ss, t1), store, carry, mom)
    _keep_alive((owners, gains))
    if active:  # fewer informative observations than diffuse states: improper
        return Pass(-np.inf, carry.worst, T, carry.n_inf, t_ss)
    total = carry.total if carry.total > -np.inf else -np.inf
    return Pass(total, carry.worst, t_end, carry.n_inf, t_ss)


@_inline
def _first_carry(dsc, t0):
    """The :class:`~.records.Carry` entering step ``t0``, with nothing summed yet.

    The learned variance's (n, d) is that of the start (``dsc.scale``) at ``t0 = 0``, else
    the one handed over by square-root steps (``dsc.carry``).
    """
    entry = dsc.scale if t0 == 0 else dsc.carry
    return Carry(0.0, 0.0, int(0), entry[0], entry[1])  # typed (see steps._inline)


@_inline
def _copy_moments(a, R, Pinf_f, into, diffuse):
    """Copy a, R (and the factor ``Pinf_f`` when ``diffuse``) into the arrays ``into``."""
    _copy_state(a, R, into[0], into[1])
    if diffuse:
        _copy_matrix(Pinf_f, into[2])


@_inline
def _step_system(inp, mb, n):
    """Sparse F and G of time 0 and the noise covariance W: (owners, borrowed StepSystem)."""
    G_pattern, F_pattern = _sparse(inp.G[mb.bG, 0]), _sparse(inp.F[mb.bF, 0])
    WW = np.empty((n, n))
    sys = StepSystem(G=borrow_sparse(G_pattern), F=borrow_sparse(F_pattern), WW=_borrow(WW))
    _noise_cov(inp.W_sqrt, mb.bW, 0, sys.WW)
    return (G_pattern, F_pattern, WW), sys


@_inline
def _borrow_buffers(buf):
    """Borrowed views of the :class:`~.records.PassBuffers` ``buf``: (rec, work, dw, dsc)."""
    rec, work = borrow_record(buf.rec), borrow_work(buf.work)
    return rec, work, borrow_diffuse_work(buf.dw), borrow_discounting(buf.dsc)


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
        fU=np.empty((0, n, n)),
        n_sqrt=np.empty(0, dtype=np.int64),
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
