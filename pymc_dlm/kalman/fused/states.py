r"""Fused numba FFBS: filtered draws, one joint smoothed path and the per-step log-likelihood.

What :func:`pymc_dlm.sample_states` runs for every posterior draw when the fused route applies
(diagonal observation covariance, float64): the same quantities as the scans of
:mod:`pymc_dlm.kalman.sampler` (the definition, which every other case runs), in one compiled
loop that numba caches on disk, so a new model costs no compilation.

Forward pass (R ``dlm`` timing, prior on :math:`\theta_0`): the one forward pass of the
log-likelihood (:func:`~pymc_dlm.kalman.fused.sqrtform._filter_member`: the univariate
covariance filter, exact diffuse steps of :mod:`pymc_dlm.kalman.fused.diffuse` while
:math:`P_\infty \neq 0`, and square-root steps where a vague proper prior would make the
covariance form lose digits), storing the filtered moments :math:`m_t, C_t` and the diffuse
factor :math:`B_t` (``Pinf_f``).

Filtered draws: :math:`\theta_t = m_t + L_t \varepsilon_t`, :math:`L_t L_t^\top = C_t`; states
still diffuse at :math:`t` (nonzero rows of :math:`B_t`) have an improper filtered
distribution and are NaN.

Backward sampling: :func:`~pymc_dlm.kalman.fused.backward.backward_pass`, the recursion that
also gives :func:`pymc_dlm.kalman_smoother` its smoothed moments (see that module for the
conditioning on the next state, exact with a singular W and through the diffuse period).
Filtered draws use the same covariance factor, :func:`~pymc_dlm.kalman.fused.backward.psd_factor`.

References
----------
Carter, C. K. and Kohn, R. (1994). On Gibbs sampling for state space models. *Biometrika* 81,
541–553. Frühwirth-Schnatter, S. (1994). Data augmentation and dynamic linear models. *J. Time
Series Analysis* 15, 183–202. Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by
State Space Methods*, 2nd ed., §4.3, §5.2, §6.4.
"""

import numpy as np

from pymc_dlm.kalman.constants import DIFFUSE_TOL, FAILED, OK
from pymc_dlm.kalman.fused.backward import backward_pass, draw, psd_factor
from pymc_dlm.kalman.fused.backward_sqrt import lower_of_upper
from pymc_dlm.kalman.fused.discounting import no_discounting
from pymc_dlm.kalman.fused.forward import _diffuse_work
from pymc_dlm.kalman.fused.prebuilt import attach
from pymc_dlm.kalman.fused.records import DrawOutputs, Moments, PassBuffers, Work
from pymc_dlm.kalman.fused.sqrtform import _filter_member
from pymc_dlm.kalman.fused.steps import _inline, _jit, _layout, no_record

__all__ = ["ffbs_kernel", "ffbs_into", "forecast_into"]


@_inline
def _filtered_only(fm, fC, fPinf_f, ll_t, fU, n_sqrt):
    """The :class:`~.records.Moments` of :func:`_filter_states` with no predicted moments."""
    n, d = fPinf_f.shape[1], fPinf_f.shape[2]
    return Moments(
        pa=np.empty((0, n)),
        pR=np.empty((0, n, n)),
        pPinf_f=np.empty((0, n, d)),
        fm=fm,
        fC=fC,
        fPinf_f=fPinf_f,
        ll_t=ll_t,
        fU=fU,
        n_sqrt=n_sqrt,
    )


@_jit
def _filter_states(inp, b, mom):
    r"""Forward pass of member ``b``: (diffuse steps, all forecast variances > 0).

    The kernels' one forward pass,
    :func:`~pymc_dlm.kalman.fused.sqrtform._filter_member`, recording moments instead of
    the adjoint's tape, with the accuracy guard of the log-likelihood: where the
    covariance form would lose digits (a proper prior vague against the noise) the steps
    are those of the square-root route. ``mom`` (a :class:`~.records.Moments`) receives the
    filtered moments ``fm``, ``fC``, the filtered diffuse factor ``fPinf_f`` (while diffuse;
    zero it first) and ``ll_t``; when ``mom.pa`` has T rows, also the predicted moments
    ``pa``, ``pR`` (:math:`a_t, R_t`, the finite part :math:`P_*` while diffuse) and the
    predicted diffuse factor ``pPinf_f`` (zero it first). A forecast variance that is not
    positive, or a diffuse part left at the end, gives ``False`` (and moments only up to
    that step).
    """
    T, p = inp.y.shape[1], inp.y.shape[2]
    n, d = inp.G.shape[-1], inp.Pinf_sqrt.shape[2]
    work = Work(
        m=np.empty(n),
        C=np.empty((n, n)),
        a=np.empty(n),
        R=np.empty((n, n)),
        GC=np.empty((n, n)),
        u=np.empty(n),
    )
    rec = no_record(n)
    dw = _diffuse_work(n, d, T, p, False)
    spec = np.zeros(2, dtype=np.int64)  # the general prediction routine
    buf = PassBuffers(rec, work, dw, no_discounting(n))
    run = _filter_member(inp, b, bool(0), buf, spec, mom)
    return run.t_end, run.loglik > -np.inf


@_jit
def ffbs_into(inp, eps_f, eps_s, out, lo, hi):
    """:func:`ffbs_kernel` for batch members ``lo .. hi - 1``, into given output arrays.

    Members are independent, so disjoint ranges can run in parallel threads (no GIL held).
    ``inp`` the :data:`~pymc_dlm.kalman.fused.records.Inputs`, ``eps_f``, ``eps_s`` the
    standard normal draws and ``out`` the :class:`~pymc_dlm.kalman.fused.records.DrawOutputs`
    of :func:`ffbs_kernel`. ``out.status`` (n_batch,) int64 receives
    :data:`~pymc_dlm.kalman.constants.OK` or :data:`~pymc_dlm.kalman.constants.FAILED`
    (NaN draws).
    """
    T = inp.y.shape[1]
    n = inp.G.shape[-1]
    d = inp.Pinf_sqrt.shape[2]
    filt, path, ll_t, status = out.filt, out.path, out.ll_t, out.status
    ms = np.empty((T, n))
    Cs = np.empty((T, n, n))
    Bs = np.zeros((T, n, d))
    Us = np.empty((T, n, n))
    n_sqrt = np.zeros(1, dtype=np.int64)
    L = np.zeros((n, n))
    Ss = np.empty((1, 1, 1))  # no smoothed covariances
    for b in range(lo, hi):
        ll_t[b] = 0.0
        t_end, ok = _filter_states(inp, b, _filtered_only(ms, Cs, Bs, ll_t[b], Us, n_sqrt))
        status[b] = OK
        if not ok:
            status[b] = FAILED
            filt[b] = np.nan
            path[b] = np.nan
            continue
        filtered = (ms, Cs, Bs, Us, n_sqrt[0])
        _filtered_draws(filtered, t_end, eps_f[b], L, filt[b])
        backward_pass(inp.G, inp.W_sqrt, b, filtered, t_end, eps_s[b], (path[b], Ss), bool(0))


@_inline
def _filtered_draws(filtered, t_end, eps, L, filt):
    r"""Draws :math:`m_t + L_t \varepsilon_t` into ``filt`` (T, n); NaN where still diffuse.

    :math:`L_t` is the lower factor of :math:`C_t`, from the square-root filter's
    :math:`U_t` for its steps. State r is still diffuse where row r of :math:`B_t` passes the
    filter's rank test, :math:`\|B_t^\top e_r\| > \tau \|B_t\|_F` (``DIFFUSE_TOL``): an
    exact zero test would take the round-off of a direction that does not touch the state
    for a diffuse one.
    """
    ms, Cs, Bs, Us, n_sqrt = filtered
    T, n, d = ms.shape[0], ms.shape[1], Bs.shape[2]
    tol2 = DIFFUSE_TOL * DIFFUSE_TOL
    for t in range(T):
        if t < n_sqrt:
            lower_of_upper(Us[t], L)
        else:
            psd_factor(Cs[t], L)
        draw(ms[t], L, eps[t], filt[t])
        if t < t_end:
            size = 0.0
            for r in range(n):
                for j in range(d):
                    size += Bs[t, r, j] * Bs[t, r, j]
            for r in range(n):
                row = 0.0
                for j in range(d):
                    row += Bs[t, r, j] * Bs[t, r, j]
                if row > tol2 * size:
                    filt[t, r] = np.nan


@_jit
def ffbs_kernel(inp, eps_f, eps_s):
    """Filtered draws, joint smoothed paths (n_batch, T, n) and step log-likelihoods (n_batch, T).

    ``inp``: a :class:`~.records.Inputs` in the layout of :mod:`pymc_dlm.kalman.fused.kernels`.
    ``eps_f``, ``eps_s`` (n_batch, T, n): standard normal draws for the filtered and the
    smoothed states. ``Pinf_sqrt`` (n_batch, n, d): the orthonormal diffuse factor at step 1
    (then ``m0``, ``C0`` are the predicted moments of step 1, ``C0`` a covariance), or d = 0
    for a proper prior (``C0`` the prior's factor). A member whose forecast variance is not
    positive somewhere gets NaN draws. The fourth output is every member's status
    (:func:`ffbs_into`).
    """
    n_batch, T, _ = inp.y.shape
    n = inp.G.shape[-1]
    filt = np.empty((n_batch, T, n))
    path = np.empty((n_batch, T, n))
    ll_t = np.zeros((n_batch, T))
    status = np.empty(n_batch, dtype=np.int64)
    out = DrawOutputs(filt=filt, path=path, ll_t=ll_t, status=status)
    ffbs_into(inp, eps_f, eps_s, out, int(0), n_batch)
    return filt, path, ll_t, status


@_jit
def forecast_into(inp, future, eps, out, lo, hi):
    r"""Forecast draws of members ``lo .. hi - 1``: future states and observations.

    The filter runs over ``y`` (inputs as in :func:`ffbs_kernel`), then
    :math:`\theta_T = m_T + L_T \varepsilon_0` and, for :math:`h = 1..H`,
    :math:`\theta_{T+h} = G_{T+h}\theta_{T+h-1} + L_{W,T+h}\eta_h`,
    :math:`y_{T+h} = F_{T+h}\theta_{T+h} + \sigma_{T+h} \odot \nu_h`, with the future
    matrices of ``future`` (a :class:`~pymc_dlm.kalman.fused.records.Future`). ``eps``
    (n_batch, n + H (k + p)) holds the standard normal draws
    :math:`(\varepsilon_0, \eta_1, \nu_1, \eta_2, \dots)`. ``out`` (a
    :class:`~pymc_dlm.kalman.fused.records.ForecastOutputs`) receives the draws; a member
    whose filter fails or is still diffuse at T gets NaN. ``out.status`` (n_batch,) as in
    :func:`ffbs_into`.
    """
    Ff, Gf, Wf, sdf = future
    y_out, theta_out, status = out
    T = inp.y.shape[1]
    n = inp.G.shape[-1]
    d = inp.Pinf_sqrt.shape[2]
    H, p = y_out.shape[1], y_out.shape[2]
    k = Wf.shape[3]
    ms = np.empty((T, n))
    Cs = np.empty((T, n, n))
    Bs = np.zeros((T, n, d))
    ll_t = np.empty(T)
    Us = np.empty((T, n, n))
    n_sqrt = np.zeros(1, dtype=np.int64)
    L = np.zeros((n, n))
    theta = np.empty(n)
    nxt = np.empty(n)
    for b in range(lo, hi):
        t_end, ok = _filter_states(inp, b, _filtered_only(ms, Cs, Bs, ll_t, Us, n_sqrt))
        status[b] = OK
        if not ok or t_end > T:
            status[b] = FAILED
            y_out[b] = np.nan
            theta_out[b] = np.nan
            continue
        if n_sqrt[0] >= T:  # the square-root filter's factor of C_T
            lower_of_upper(Us[T - 1], L)
        else:
            psd_factor(Cs[T - 1], L)
        draw(ms[T - 1], L, eps[b, :n], theta)
        ahead = _layout(Ff, Gf, Wf, sdf, b)
        pos = n
        for h in range(H):
            Gh = Gf[ahead.bG, h if ahead.TG > 1 else 0]
            Wh = Wf[ahead.bW, h if ahead.TW > 1 else 0]
            for r in range(n):
                s = 0.0
                for c in range(n):
                    s += Gh[r, c] * theta[c]
                for j in range(k):
                    s += Wh[r, j] * eps[b, pos + j]
                nxt[r] = s
            pos += k
            Fh = Ff[ahead.bF, h if ahead.TF > 1 else 0]
            sh = sdf[ahead.bV, h if ahead.TV > 1 else 0]
            for r in range(n):
                theta[r] = nxt[r]
                theta_out[b, h, r] = nxt[r]
            for i in range(p):
                s = sh[i] * eps[b, pos + i]
                for c in range(n):
                    s += Fh[i, c] * theta[c]
                y_out[b, h, i] = s
            pos += p


# Loaded from the store of prebuilt kernels when it has them (kalman.fused.prebuilt).
attach(ffbs_into, "ffbs_into")
attach(forecast_into, "forecast_into")
