r"""State and observation intercepts, as one constant state appended to a model.

The model with intercepts

.. math::

    y_t = F_t \theta_t + d_t + v_t, \qquad \theta_t = G_t \theta_{t-1} + c_t + w_t

is the intercept-free DLM of the augmented state :math:`\theta^+_t = (\theta_t, \kappa_t)`
with :math:`\kappa_0 = 1` known exactly (zero prior variance, zero noise):

.. math::

    F^+_t = \begin{pmatrix} F_t & d_t \end{pmatrix}, \qquad
    G^+_t = \begin{pmatrix} G_t & c_t \\ 0 & 1 \end{pmatrix}, \qquad
    W^+_t = \begin{pmatrix} W_t & 0 \\ 0 & 0 \end{pmatrix}, \qquad
    m^+_0 = \begin{pmatrix} m_0 \\ 1 \end{pmatrix}, \qquad
    C^+_0 = \begin{pmatrix} C_0 & 0 \\ 0 & 0 \end{pmatrix},

so :math:`\kappa_t = 1` for every t and the two models have the same distribution of
:math:`(\theta_{0:T}, y_{1:T})`. Every computation (log-likelihood and its gradient in
:math:`c_t, d_t`, filter, smoother, FFBS, forecasts, simulation) is therefore exact without
a change to the recursions; the price is one more state. The constant state is a component of
its own, labelled ``<name>_intercept``: its contribution to :math:`y_t` is :math:`d_t`.
Timing as for the other matrices (R ``dlm``): :math:`c_t` enters the transition to
:math:`\theta_t`, t = 1..T, like :math:`G_t`; statsmodels' ``state_intercept`` at index t
is our :math:`c_{t+1}`.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§3.1 and §4.3 (the intercepts :math:`d_t, c_t`) and §6.2 (constants as states).
"""

import numpy as np
import pytensor.tensor as pt

from pymc_dlm.model.blocks import block_diag, concat_last
from pymc_dlm.model.checks import as_float_tensor, known_value, static_dim

__all__ = ["INTERCEPT_NAMES", "with_intercepts"]

#: The intercepts' names, as they may appear in ``time_varying``.
INTERCEPT_NAMES = ("obs_intercept", "state_intercept")


def _vector(x, name, length, time_varying):
    """An intercept as a float tensor (..., [T,] length); a scalar is broadcast.

    For one series (``length`` 1) a time-varying intercept may also be given as (..., T).
    """
    t = as_float_tensor(x, name)
    core = 1 + time_varying
    if t.ndim == 0 and not time_varying:
        return t * pt.ones(length)
    if time_varying and length == 1 and t.ndim >= 1 and static_dim(t, -1) != 1:
        t = t[..., None]  # one series: (..., T) is (..., T, 1)
    if t.ndim < core or static_dim(t, -1) != length:
        shape = tuple(t.type.shape) if known_value(t) is None else known_value(t).shape
        axes = f"(T, {length})" if time_varying else f"({length},)"
        raise ValueError(
            f"{name} must have shape {axes}{' (declared time-varying)' if time_varying else ''}"
            f" or leading batch axes before it, got shape {shape}"
        )
    value = known_value(t)
    if value is not None and not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite")
    return t


def _with_time_axis(x, core, T):
    """Give ``x`` (..., core) a time axis of length T before its core axes."""
    x = pt.shape_padaxis(x, x.ndim - core)
    return pt.broadcast_to(x, (*x.shape[: x.ndim - core - 1], T, *x.shape[x.ndim - core :]))


def with_intercepts(F, G, W_sqrt, m0, C0, C0_sqrt, time_varying, d, c, d_tv, c_tv):
    """The augmented matrices (module docstring); returns them and the new time-varying set.

    ``d`` (..., [T,] p) and ``c`` (..., [T,] n) are tensors or ``None`` (no intercept);
    ``d_tv``/``c_tv`` say whether they carry a time axis.
    """
    p, n = static_dim(F, -2), static_dim(G, -1)
    tv = set(time_varying)
    F_tv, G_tv = "F" in tv, "G" in tv
    d = pt.zeros(p) if d is None else _vector(d, "obs_intercept", p, d_tv)
    c = pt.zeros(n) if c is None else _vector(c, "state_intercept", n, c_tv)
    if d_tv and not F_tv:
        F = _with_time_axis(F, 2, d.shape[-2])
    elif F_tv and not d_tv:
        d = _with_time_axis(d, 1, F.shape[-3])
    if c_tv and not G_tv:
        G = _with_time_axis(G, 2, c.shape[-2])
    elif G_tv and not c_tv:
        c = _with_time_axis(c, 1, G.shape[-3])
    F_plus = concat_last([F, d[..., None]], 2)
    G_top = concat_last([G, c[..., None]], 2)
    bottom = pt.concatenate([pt.zeros(n), pt.ones(1)])
    bottom = pt.broadcast_to(bottom, (*G_top.shape[:-2], 1, n + 1))
    G_plus = pt.concatenate([G_top, bottom], axis=-2)
    zero = pt.zeros((1, 1))
    W_plus = block_diag([W_sqrt, _padded(zero, W_sqrt, "W" in tv)])
    m0_plus = concat_last([m0, pt.ones(1)], 1)
    C0_plus = block_diag([C0, zero])
    C0_sqrt_plus = block_diag([C0_sqrt, zero])
    tv |= {"F"} if (d_tv or F_tv) else set()
    tv |= {"G"} if (c_tv or G_tv) else set()
    F_plus = pt.specify_shape(F_plus, (*(None,) * (F_plus.ndim - 2), p, n + 1))
    G_plus = pt.specify_shape(G_plus, (*(None,) * (G_plus.ndim - 2), n + 1, n + 1))
    return F_plus, G_plus, W_plus, m0_plus, C0_plus, C0_sqrt_plus, frozenset(tv)


def _padded(block, like, time_varying):
    """``block`` with a time axis of length 1 when ``like`` is time-varying (broadcasts)."""
    return pt.shape_padleft(block) if time_varying else block
