r"""The vocabulary of pymc_dlm, declared once.

The model is West & Harrison's dynamic linear model, written as R's ``dlm`` writes it
(Petris, Petrone & Campagnoli 2009, ch. 2):

.. math::

    y_t = F_t \theta_t + v_t, \quad v_t \sim N(0, V_t), \\
    \theta_t = G_t \theta_{t-1} + w_t, \quad w_t \sim N(0, W_t), \\
    \theta_0 \sim N(m_0, C_0),

for :math:`t = 1, \dots, T`. The prior is on :math:`\theta_0`, at time 0, *before* the first
observation. Batch axes (independent series) go in front of everything; a time-varying matrix
carries a time axis just before its two matrix axes.

======  ========================================  ==================  =====================
Symbol  Long name                                  Shape               Durbin & Koopman
======  ========================================  ==================  =====================
F       observation (design) matrix                (p, n)              Z
G       state transition matrix                    (n, n)              T
V       observation noise covariance               (p, p)              H
W       state noise covariance                     (n, n)              R Q R'
m0      mean of the initial state theta_0           (n,)                a1 = G m0
C0      covariance of the initial state theta_0     (n, n)              P1 = G C0 G' + W
======  ========================================  ==================  =====================

``p`` is the number of series (``n_series``) and ``n`` the number of states (``n_state``).
statsmodels and KFAS place the initial prior on :math:`\alpha_1`, the state at the time of the
first observation; the two right-most entries give the translation.

Filter and smoother outputs follow ``dlm``'s names:

==========  ==================  ======================================  ============
dlm         long name here      meaning                                 dims
==========  ==================  ======================================  ============
a_t, R_t    predicted_mean/cov  E, Cov[theta_t | y_1:t-1]               time, state
f_t, Q_t    forecast_mean/cov   E, Cov[y_t | y_1:t-1]                   time, series
m_t, C_t    filtered_mean/cov   E, Cov[theta_t | y_1:t]                 time, state
s_t, S_t    smoothed_mean/cov   E, Cov[theta_t | y_1:T]                 time, state
==========  ==================  ======================================  ============

References
----------
Petris, G., Petrone, S. and Campagnoli, P. (2009). *Dynamic Linear Models with R*. Springer.
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed.
"""

from typing import NamedTuple

#: The distribution's parameters in their order, and the time-varying key of each.
PARAMETERS = ("F", "G", "W_sqrt", "obs", "m0", "C0_sqrt")
_TIME_KEY = {"F": "F", "G": "G", "W_sqrt": "W", "obs": "obs"}


def core_ndims(time_varying, obs_diag):
    """Core axes of each parameter (its time axis included when declared); the rest are batch.

    F, G, W_sqrt and a full ``obs`` (V) are matrices, diagonal ``obs`` (standard deviations) and
    m0 are vectors, C0_sqrt is a matrix without a time axis. Returns a tuple in the order of
    :data:`PARAMETERS`.
    """
    base = {"F": 2, "G": 2, "W_sqrt": 2, "obs": 1 if obs_diag else 2, "m0": 1, "C0_sqrt": 2}
    return tuple(base[name] + (_TIME_KEY.get(name) in time_varying) for name in PARAMETERS)


TIME_DIM = "time"
STATE_DIM = "state"
STATE_DIM2 = "state2"
SERIES_DIM = "series"
SERIES_DIM2 = "series2"


class SystemMatrices(NamedTuple):
    r"""Everything the Kalman recursions need, as tensors, in factored form.

    Attributes
    ----------
    F : (..., [T,] p, n)
        Observation matrix :math:`F_t`.
    G : (..., [T,] n, n)
        Transition matrix :math:`G_t`.
    W_sqrt : (..., [T,] n, k)
        A factor of the state noise covariance, :math:`W_t = L_W L_W^\top` (need not be square).
    obs : (..., [T,] p) or (..., [T,] p, p)
        Observation noise: standard deviations (diagonal :math:`V_t`) or the covariance
        :math:`V_t` itself, as declared by ``obs_diag``.
    m0 : (..., n)
        Mean of :math:`\theta_0`.
    C0_sqrt : (..., n, c)
        A factor of the initial covariance, :math:`C_0 = L_0 L_0^\top`.
    time_varying : frozenset of str
        Which of ``"F"``, ``"G"``, ``"W"``, ``"obs"`` carry a time axis.
    obs_diag : bool
        Whether ``obs`` holds standard deviations (True) or a covariance matrix (False).
    diffuse : (n, d) or None
        Exact diffuse initialisation: a fixed (numpy) selection matrix :math:`A` whose ``d``
        columns are the unit vectors of the diffuse states, so that :math:`\theta_0 = m_0 + A
        \delta + L_0 \eta` with :math:`\delta` flat (improper) and ``C0_sqrt`` zero on the
        diffuse rows. ``None`` when no state is diffuse: then the ordinary (proper-prior)
        filter runs, and a model is diffuse exactly when this field is not ``None``.
    discount : (..., n) or None
        Discount factors :math:`\delta` per state (1 off the discounted blocks), or ``None``
        for a model without discounting (:mod:`pymc_dlm.model.discount`).
    blocks : (n, n) or None
        The fixed 0/1 mask of the discounted blocks (1 where two states share a component).
    """

    F: object
    G: object
    W_sqrt: object
    obs: object
    m0: object
    C0_sqrt: object
    time_varying: frozenset
    obs_diag: bool
    diffuse: object = None
    discount: object = None
    blocks: object = None
