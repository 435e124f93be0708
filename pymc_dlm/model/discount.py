r"""Discount factors (West & Harrison 1997, §6.3) and a learned observation variance (§4.6).

Component discounting replaces a block's state noise by a fraction of its own predicted
uncertainty. With :math:`P_t = G_t C_{t-1} G_t^\top` and a block :math:`b` (the states of one
component) discounted by :math:`\delta_b \in (0, 1]`,

.. math::

    W_t[b, b] = (1/\delta_b - 1)\, P_t[b, b], \qquad W_t[b, b'] = 0 \ (b \ne b'),

so that :math:`R_t = P_t + W_t` inflates the block's covariance by :math:`1/\delta_b`. Blocks
given by ``sigma`` keep :math:`W = \sigma^2` (or its factor). :math:`\delta = 1` is a block
without noise. Here the discount of every state is stored as a vector (one entry per state,
1 on states that are not discounted) together with the component spans.

With exact diffuse states (``C0="diffuse"``), the discount acts on the finite part of
:math:`P_t` only; the diffuse part evolves as :math:`G P_\infty G^\top`, so the likelihood of
:math:`\delta` does not depend on the scale of the flat prior.

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed.,
§4.6 (unknown observation variance), §6.3 (component discounting), §10.8 (variance
discounting).
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import graph_inputs

from pymc_dlm.model.checks import as_float_tensor, fixed_value

__all__ = [
    "LearnedVariance",
    "batch_parameters",
    "check_discount",
    "discount_blocks",
    "open_interval_constraint",
]


def open_interval_constraint(t, *, high=None, core_ndim=0):
    """Validity ``0 < t`` (and ``t <= high``) of a symbolic parameter, or ``None`` if fixed."""
    if all(isinstance(v, Constant) for v in graph_inputs([t])):
        return None
    ok = pt.gt(t, 0.0)
    if high is not None:
        ok = ok & pt.le(t, high)
    if core_ndim:
        ok = pt.all(ok, axis=tuple(range(-core_ndim, 0)))
    return ok


def _check_fixed(t, name, *, high=None):
    value = fixed_value(t)
    if value is None:
        return
    bad = ~np.isfinite(value) | (value <= 0)
    if high is not None:
        bad |= value > high
    if np.any(bad):
        bound = "in (0, 1]" if high == 1.0 else "positive"
        raise ValueError(f"{name} must be {bound}, got {np.asarray(value)[bad].ravel()[:3]}")


def check_discount(delta, name="discount"):
    r"""A discount factor :math:`\delta \in (0, 1]`: a float, an array or a PyMC variable.

    Fixed values outside :math:`(0, 1]` raise here; symbolic ones are judged by
    :func:`open_interval_constraint` in the log-likelihood (``-inf`` outside).
    """
    t = as_float_tensor(delta, name)
    _check_fixed(t, name, high=1.0)
    return t


def discount_blocks(components, discount):
    r"""The (n, n) 0/1 mask of the discounted blocks: 1 where two states share one.

    ``components`` are a StateSpace's ``(name, lo, hi)`` spans; ``discount`` is ``None`` or
    the per-state discount vector, whose entries are 1 off the discounted blocks (there the
    mask is inert: the factor :math:`1/\delta - 1` is 0).
    """
    if discount is None:
        return None
    n = max(hi for _, _, hi in components)
    mask = np.zeros((n, n))
    for _, lo, hi in components:
        mask[lo:hi, lo:hi] = 1.0
    return mask


def batch_parameters(ss, obs_var):
    """``(name, tensor, core ndim)`` of the discount and learned-variance parameters.

    Their leading axes declare batch axes like those of the system matrices.
    """
    out = [] if ss.discount is None else [("discount", ss.discount, 1)]
    if isinstance(obs_var, LearnedVariance):
        out += [
            ("obs_var's n0", obs_var.n0, 0),
            ("obs_var's S0", obs_var.S0, 0),
            ("obs_var's discount", obs_var.discount, 0),
        ]
    return out


class LearnedVariance:
    r"""An unknown observation variance learned by conjugate updating (W&H §4.6, §10.8).

    The precision :math:`\phi = 1/V` has the prior :math:`\phi \sim
    \mathrm{Gamma}(n_0/2,\ n_0 S_0/2)` (shape, rate): :math:`S_0` is a prior point estimate
    of :math:`V` worth :math:`n_0` observations. Every covariance of the model is scaled by
    :math:`V`: a ``C0`` or ``sigma`` given by the user is its value at :math:`V = S_0`, and is
    multiplied by :math:`V / S_0`; discounted blocks are scale free. Given the data up to
    :math:`t-1` the one-step forecast of :math:`y_t` is Student-t with
    :math:`\delta_V n_{t-1}` degrees of freedom,

    .. math::

        n_t = \delta_V n_{t-1} + 1, \quad d_t = \delta_V d_{t-1} + S_{t-1} e_t^2 / Q_t,
        \quad S_t = d_t / n_t,

    with :math:`d_0 = n_0 S_0`. ``discount`` is :math:`\delta_V`: 1 keeps :math:`V` static;
    below 1 it lets the variance drift (W&H's variance discounting, a random walk of
    :math:`\log \phi_t` through beta shocks).

    Pass it as ``obs_var=`` to :class:`pymc_dlm.DLM` in place of ``sigma_obs``. One series
    (a univariate observation) only.

    Parameters
    ----------
    n0 : float or TensorVariable
        Prior degrees of freedom, positive.
    S0 : float or TensorVariable
        Prior point estimate of the observation variance, positive.
    discount : float or TensorVariable
        Variance discount :math:`\delta_V \in (0, 1]`, default 1.

    References
    ----------
    West & Harrison (1997), §4.6 (Table 4.3) and §10.8.
    """

    def __init__(self, n0, S0, discount=1.0):
        self.n0 = as_float_tensor(n0, "n0")
        self.S0 = as_float_tensor(S0, "S0")
        _check_fixed(self.n0, "n0")
        _check_fixed(self.S0, "S0")
        self.discount = check_discount(discount, "discount")

    def constraints(self):
        """Validity of the symbolic parameters (positive n0, S0; discount in (0, 1])."""
        conds = (
            open_interval_constraint(self.n0),
            open_interval_constraint(self.S0),
            open_interval_constraint(self.discount, high=1.0),
        )
        return tuple(c for c in conds if c is not None)

    def __repr__(self):
        """Short form for printed models."""
        return "LearnedVariance(n0, S0, discount)"
