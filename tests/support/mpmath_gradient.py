"""Gradients of the log-likelihood at 60 digits: central differences of an mpmath filter.

The witness of ``tests/kernels/test_vague_gradient.py``. The filter is the textbook
covariance recursion (Petris et al. 2009, Prop. 2.2; West & Harrison 1997, §6.3 for the
discounted prediction R = P + D∘P + W, P = G C G') for one series with a time-invariant F
and G, evaluated with mpmath at ``dps`` significant digits on parameters that are mpmath
numbers, so that a central difference with step 1e-25 is exact to far more digits than a
float64 gradient has (its truncation error is O(h²) = 1e-50, its round-off 1e-60 / 1e-25).
Nothing here imports pymc_dlm or pytensor.
"""

import mpmath
import numpy as np

__all__ = ["Scales", "mpmath_loglik_scales", "mpmath_gradient"]


class Scales:
    """A model whose noise is given by scales: W = diag(w²) and V = obs², with discounts.

    ``F`` (n,), ``G`` (n, n), ``C0`` a scalar (C0·I), ``m0`` zero; ``noise_states`` the
    states whose noise sd is a parameter (in order), ``discount_block`` the states of one
    discounted block (W zero there) or None.
    """

    def __init__(self, F, G, C0, noise_states, discount_block=None):
        self.F = np.asarray(F, dtype=float).ravel()
        self.G = np.asarray(G, dtype=float)
        self.C0 = float(C0)
        self.noise_states = tuple(noise_states)
        self.discount_block = None if discount_block is None else tuple(discount_block)


def mpmath_loglik_scales(model, y, obs, noise, delta=None, dps=60):
    """Log-likelihood (an mpf) at observation sd ``obs``, state sds ``noise``, discount ``delta``.

    ``delta`` applies to ``model.discount_block`` (unused without one).
    """
    with mpmath.workdps(dps):
        n = model.G.shape[0]
        G = mpmath.matrix(model.G.tolist())
        F = mpmath.matrix([model.F.tolist()])
        W = mpmath.zeros(n)
        for i, s in zip(model.noise_states, noise, strict=True):
            W[i, i] = s**2
        m, C = mpmath.zeros(n, 1), mpmath.eye(n) * mpmath.mpf(model.C0)
        ll = mpmath.mpf(0)
        for yt in y:
            a, P = G * m, G * C * G.T
            R = P + W
            if model.discount_block is not None:
                for i in model.discount_block:
                    for j in model.discount_block:
                        R[i, j] += (1 / delta - 1) * P[i, j]
            q = (F * R * F.T)[0] + obs**2
            e = mpmath.mpf(float(yt)) - (F * a)[0]
            K = R * F.T / q
            m, C = a + K * e, R - K * (F * R)
            C = (C + C.T) / 2
            ll -= (mpmath.log(2 * mpmath.pi) + mpmath.log(q) + e**2 / q) / 2
        return ll


def mpmath_gradient(fn, point, h="1e-25", dps=60):
    """Central differences of ``fn(*point)`` in every argument, as floats."""
    with mpmath.workdps(dps):
        x = [mpmath.mpf(v) for v in point]
        step = mpmath.mpf(h)
        grad = []
        for i in range(len(x)):
            up, down = list(x), list(x)
            up[i] += step
            down[i] -= step
            grad.append(float((fn(*up) - fn(*down)) / (2 * step)))
        return np.array(grad)
