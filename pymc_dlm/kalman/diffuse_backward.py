r"""Backward recursions through an exact diffuse start: smoothing and backward sampling.

Steps after the diffuse period are the ordinary ones of the callers
(:mod:`pymc_dlm.kalman.smoother`, :mod:`pymc_dlm.kalman.sampler`); during the diffuse period
:func:`diffuse_backward_step` conditions the filtered state, augmented with the next noise,
on the next state's ``n`` scalars one at a time with the diffuse filter's exact scalar update
(:func:`pymc_dlm.kalman.diffuse.scalar_step`). :func:`backward_pass` runs the two periods as
two scans.

References
----------
Durbin & Koopman (2012), §5.3 (diffuse smoothing) and §4.9 (simulation smoothing);
Koopman (1997).
"""

import pytensor
import pytensor.tensor as pt

from pymc_dlm.kalman.diffuse import DIFFUSE_TOL, ScalarStep, diffuse_active, scalar_step
from pymc_dlm.kalman.linalg import triangularize
from pymc_dlm.kalman.scanargs import time_first
from pymc_dlm.model.blocks import broadcast_leading

__all__ = ["backward_pass", "diffuse_backward_step"]


def diffuse_backward_step(m, U, B, x, G, W_factor, tol=DIFFUSE_TOL, gain=True):
    r"""Moments of :math:`\theta_t | \theta_{t+1} = x, y_{1:t}` with a partly diffuse filter.

    The augmented vector :math:`\zeta = (\theta_t, w_{t+1})` (mean :math:`(m_t, 0)`, finite
    covariance :math:`\mathrm{diag}(P_{*,t|t}, W_{t+1})`, diffuse factor :math:`(B_t; 0)`) is
    conditioned on the ``n`` noiseless scalars :math:`x_i = G_{i\cdot}\theta_t + w_i` with
    :func:`scalar_step`. The result is proper when :math:`G_{t+1} B_t` has full column rank.
    With more than :data:`UNROLL_MAX` states the ``n`` steps run in a scan, so that the
    compiled graph does not grow with ``n``; ``gain=False`` skips the gain (FFBS needs none).

    Returns
    -------
    mean : (..., n)
        :math:`E[\theta_t | x, y_{1:t}]`.
    cov_factor : (..., n, n)
        Upper factor of :math:`\mathrm{Cov}[\theta_t | x, y_{1:t}]`.
    gain : (..., n, n) or None
        :math:`J = \partial\, \mathrm{mean} / \partial x` (``None`` when ``gain=False``).
    """
    n = G.type.shape[-1]
    zeros_n = pt.zeros_like(m)
    a = pt.concatenate([m, zeros_n], axis=-1)
    U, W_factor = broadcast_leading([U, W_factor], 2)
    top = pt.concatenate([U, pt.zeros_like(U)], axis=-1)
    bottom = pt.concatenate([pt.zeros_like(W_factor), W_factor], axis=-1)
    Uz = pt.concatenate([top, bottom], axis=-2)
    Bz = pt.concatenate([B, pt.zeros_like(B)], axis=-2)
    H = pt.concatenate(broadcast_leading([G, pt.eye(n)], 2), axis=-1)
    # The carries of the scan below need the full batch shape (x may add batch axes).
    a, Uz, Bz, x, H = broadcast_leading([a[..., None, :], Uz, Bz, x[..., None, :], H], 2)
    a, x = a[..., 0, :], x[..., 0, :]
    tracked = None
    if gain:
        shape = (*(a.shape[i] for i in range(a.ndim - 1)), 2 * n, n)
        tracked = pt.zeros(shape, dtype=a.dtype)
    cur = ScalarStep(a, Uz, Bz, None, tracked)
    if n <= UNROLL_MAX:
        for i in range(n):
            cur = _noiseless_step(cur, x[..., i], H[..., i, :], tol, i)
    else:
        cur = _noiseless_scan(cur, x, H, tol)
    J = None if cur.tracked is None else cur.tracked[..., :n, :]
    return cur.mean[..., :n], triangularize(cur.cov_factor[..., :, :n]), J


#: Up to this many states the noiseless steps of :func:`diffuse_backward_step` are unrolled;
#: beyond, they run in a scan (a compiled graph whose size does not grow with the states).
UNROLL_MAX = 2


def _noiseless_step(cur, x_i, h_i, tol, index):
    zero = pt.zeros_like(x_i)
    return scalar_step(
        cur.mean,
        cur.cov_factor,
        cur.diffuse,
        x_i,
        h_i,
        zero,
        pt.eq(zero, 0.0),
        tol,
        tracked=cur.tracked,
        index=index,
    )


def _noiseless_scan(cur, x, H, tol):
    r"""The ``n`` noiseless steps of :func:`diffuse_backward_step` as a scan over the rows.

    The columns of the gain-tracking matrix are kept rotated so that the current scalar
    :math:`x_i` is column 0 (:func:`scalar_step` with ``index=0``), then rotated by one: after
    ``n`` steps they are back in order.
    """
    gain = cur.tracked is not None

    def step(x_i, h_i, a, Uz, Bz, *tracked):
        new = _noiseless_step(ScalarStep(a, Uz, Bz, None, *tracked), x_i, h_i, tol, 0)
        out = [
            pt.specify_shape(new.mean, a.type.shape),
            pt.specify_shape(new.cov_factor, Uz.type.shape),
            pt.specify_shape(new.diffuse, Bz.type.shape),
        ]
        if gain:
            rolled = pt.roll(new.tracked, -1, axis=-1)
            out.append(pt.specify_shape(rolled, tracked[0].type.shape))
        return out

    init = [cur.mean, cur.cov_factor, cur.diffuse] + ([cur.tracked] if gain else [])
    outs = pytensor.scan(
        step,
        sequences=[pt.moveaxis(x, -1, 0), pt.moveaxis(H, -2, 0)],
        outputs_info=init,
        return_updates=False,
    )
    outs = [o[-1] for o in outs]
    return ScalarStep(outs[0], outs[1], outs[2], None, outs[3] if gain else None)


def backward_pass(filtered, G, W_factor, time_varying, regular_step, diffuse_step, init, z=None):
    r"""Run a backward recursion in two scans: the proper part, then the diffuse period.

    ``nd`` time steps (the longest over the batch) have a nonzero filtered :math:`P_\infty`.
    Steps ``t = T-1 .. nd+1`` (1-based) call ``regular_step(m, C, G, W, carry, *z)`` and steps
    ``t = nd .. 1`` call ``diffuse_step(m, C, B, G, W, carry, *z)``, with the filtered moments
    of time ``t``, ``G, W`` of time ``t + 1`` and the optional per-step noise ``z`` (..., T,
    n). Both return the new carry (a list of tensors) for time ``t``. Returns the carries for
    ``t = 1..T``, time first, the last being ``init``.
    """
    m = time_first(filtered.filtered_mean, 1)
    C = time_first(filtered.filtered_factor, 2)
    B = time_first(filtered.filtered_diffuse, 2)
    T = m.shape[0]
    active = pt.any(diffuse_active(B).reshape((T, -1)), axis=1)
    nd = pt.minimum(pt.sum(active), T - 1)
    zs = [] if z is None else [time_first(z, 1)]

    def scan(step, data, lo, hi, start):
        seqs, fixed, names = [], [], []
        for name, x in (("G", G), ("W", W_factor)):
            if name in time_varying:
                seqs.append(time_first(x, 2)[lo:hi])
                names.append(name)
            else:
                fixed.append(x)
        n_data, n_carry = len(data), len(start)

        def inner(*args):
            k = n_data + len(names)
            given = dict(zip(names, args[n_data:k]))
            rest = list(args[k + n_carry :])
            G_t = given["G"] if "G" in given else rest.pop(0)
            W_t = given["W"] if "W" in given else rest.pop(0)
            carry = list(args[k : k + n_carry])
            main, noise = list(args[: n_data - len(zs)]), list(args[n_data - len(zs) : n_data])
            out = step(*main, G_t, W_t, carry, *noise)
            return [pt.specify_shape(o, c.type.shape) for o, c in zip(out, carry)]

        out = pytensor.scan(
            inner,
            sequences=[*data, *seqs],
            outputs_info=list(start),
            non_sequences=fixed,
            go_backwards=True,
            strict=True,
            return_updates=False,
        )
        out = out if isinstance(out, (list, tuple)) else [out]
        return [o[::-1] for o in out]

    later = scan(regular_step, [m[nd:-1], C[nd:-1], *(x[nd:-1] for x in zs)], nd + 1, T, init)
    later = [pt.concatenate([x, s[None]], axis=0) for x, s in zip(later, init)]
    start = [x[0] for x in later]
    early = scan(diffuse_step, [m[:nd], C[:nd], B[:nd], *(x[:nd] for x in zs)], 1, nd + 1, start)
    return [pt.concatenate([e, x], axis=0) for e, x in zip(early, later)]
