r"""The steady-state route of the forward pass: the frozen gains of a settled recursion.

With time-invariant F, G, W and V and no missing value from some step on (past the diffuse
period), the covariance recursion of :func:`~.forward._forward` does not depend on the
data. Once the filtered covariance :math:`C_t` equals :math:`C_{t-1}` to
:data:`~pymc_dlm.kalman.constants.STEADY_TOL` (relative), the steps from ``t_ss = t + 1``
on reuse the gains :math:`u_i, f_i` of step t (kept by :func:`_keep_gain`, completed by
:func:`_freeze`) and update only the mean (:func:`_steady_steps`): :math:`O(n)` per
observation instead of :math:`O(n^2)`. The backward pass differentiates exactly this
computation (``adjoint_steps._steady_adjoint``). Recorded moments (state draws, forecasts,
the fixed-parameter filters and smoothers) take the route too: the steady steps record
their means and terms, and the covariances :math:`R_{t_{ss}-1}` and :math:`C_{t_{ss}-1}` of
the settled step for every later step (equal to the recursion's to ``STEADY_TOL``).

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§4.3.4 (steady state).
"""

import math

from pymc_dlm.kalman.fused.density import constant_part, log_density_at
from pymc_dlm.kalman.fused.discounting import _student_step
from pymc_dlm.kalman.fused.records import Carry
from pymc_dlm.kalman.fused.steps import _copy_state, _inline, _predict_mean

__all__ = []  # private to the kernels


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
def _keep_gain(gain, i, u, f):
    """Keep u and f of scalar i as the gains of the steady steps."""
    n = u.shape[0]
    for r in range(n):
        gain[i, r] = u[r]
    gain[i, n] = f


@_inline
def _freeze(gain, n):
    """Complete the frozen gains of the steady steps: 1/f and log(2 pi f) of every scalar."""
    for i in range(gain.shape[0]):
        gain[i, n + 1] = 1.0 / gain[i, n]
        gain[i, n + 2] = constant_part(1, math.log(gain[i, n]))


@_inline
def _steady_steps(y, mb, kit, span, store, carry, mom):
    """Steps ``t_ss .. t1 - 1`` of ``span`` with the frozen gains: the mean only, in place.

    ``carry``: the :class:`~.records.Carry` entering step ``t_ss``; returns the new one.
    ``mom``: the :class:`~.records.Moments` of :func:`~.forward._forward`; where it keeps
    moments, the steps record a, m and their terms, and the settled step's R and C.
    """
    work, rec, sys, dsc, gain = kit.work, kit.rec, kit.sys, kit.dsc, kit.gain
    m, a = work.m, work.a
    total, worst, n_inf, nn, dd = carry
    dV = dsc.scale[2]
    F_cnt, F_idx, F_val = sys.F.cnt, sys.F.idx, sys.F.val
    n, p = m.shape[0], y.shape[2]
    keep_moments, keep_predicted = mom.ll_t.shape[0] == y.shape[1], mom.pa.shape[0] == y.shape[1]
    for t in range(span[0], span[1]):
        if dsc.keep:
            dsc.ns[t], dsc.ds[t] = nn, dd
        _predict_mean(sys.G, m, a)
        if keep_predicted:
            _copy_state(a, mom.pR[span[0] - 1], mom.pa[t], mom.pR[t])
        step = 0.0
        for i in range(p):
            v = y[mb.b, t, i]
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
            else:
                ll = log_density_at(gain[i, n + 2], v * vf)
            total += ll
            step += ll
        for r in range(n):
            m[r] = a[r]
        if keep_moments:
            mom.ll_t[t] = step
            _copy_state(m, mom.fC[span[0] - 1], mom.fm[t], mom.fC[t])
    return Carry(total, worst, n_inf, nn, dd)
