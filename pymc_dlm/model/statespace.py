r"""The StateSpace container: any DLM given by its system matrices.

A :class:`StateSpace` holds :math:`F, G, W, m_0, C_0` as float64 tensors (numpy input becomes
constants; PyMC random variables and expressions stay symbolic), their square-root factors, the
declared time-varying matrices, human-readable state labels and the list of summed components.
"""

from dataclasses import dataclass, field

import numpy as np
import pytensor.tensor as pt

from pymc_dlm.model.blocks import concat_last
from pymc_dlm.model.checks import (
    as_constraints,
    as_float_tensor,
    constraint,
    known_value,
    state_labels,
    static_dim,
)
from pymc_dlm.model.discount import check_discount, discount_blocks, open_interval_constraint
from pymc_dlm.model.intercepts import INTERCEPT_NAMES, with_intercepts
from pymc_dlm.model.notation import SystemMatrices
from pymc_dlm.model.priors import (
    check_diffuse_rank,
    check_finite,
    covariance_factor,
    diffuse_mask,
    diffuse_matrix,
    given_factor,
    initial_cov,
    initial_mean,
    is_diffuse_keyword,
    psd_factor,
    shape_of,
    stationary_start,
)
from pymc_dlm.model.sums import block_sum, unique_labels

__all__ = ["StateSpace", "as_statespace", "initial_mean", "initial_cov", "psd_factor"]

_TV_NAMES = ("F", "G", "W")


@dataclass(eq=False)
class StateSpace:
    r"""A dynamic linear model given by its system matrices.

    .. math::

        y_t = F_t \theta_t + v_t, \qquad \theta_t = G_t \theta_{t-1} + w_t,
        \qquad w_t \sim N(0, W_t), \qquad \theta_0 \sim N(m_0, C_0).

    The prior is on :math:`\theta_0`, one step before the first observation (R ``dlm``'s
    timing). The observation noise :math:`V_t` is not part of the model: it is given once, on
    :class:`pymc_dlm.DLM` or :func:`pymc_dlm.kalman_filter`.

    Parameters
    ----------
    F : array_like or TensorVariable, shape (..., [T,] p, n)
        Observation matrix, ``p`` series by ``n`` states (``dlm``'s ``FF``).
    G : array_like or TensorVariable, shape (..., [T,] n, n)
        Transition matrix (``GG``).
    W : array_like or TensorVariable, shape (..., [T,] n, n), optional
        State noise covariance (``W``). May be singular. A symbolic ``W`` is factored by
        Cholesky and must then be positive definite; give ``W_sqrt`` for a singular one.
    discount : float or TensorVariable, optional
        A discount factor :math:`\delta \in (0, 1]` in place of ``W``: the whole block's
        noise is :math:`W_t = (1/\delta - 1) G_t C_{t-1} G_t^\top` (West & Harrison 1997,
        §6.3; :mod:`pymc_dlm.model.discount`). Leading axes are batch axes. Give exactly one
        of ``W``, ``W_sqrt`` and ``discount``.
    m0 : float or array_like, shape (..., n)
        Mean of :math:`\theta_0`.
    C0 : float, vector, matrix, ``"diffuse"`` or ``"stationary"``
        Covariance of :math:`\theta_0`: ``c`` means :math:`c I`, a vector a diagonal, or a full
        symmetric positive semi-definite matrix (R ``dlm``'s proper prior; ``dlm`` uses
        ``1e7``). ``"diffuse"`` (the default) gives every state an improper flat prior, handled
        by the exact diffuse Kalman filter (Durbin & Koopman 2012, ch. 5); ``m0`` is then
        ignored by the filter. ``"stationary"`` solves :math:`C_0 = G C_0 G^\top + W`
        (stationary blocks only).
    time_varying : iterable of {"F", "G", "W"}
        The matrices that carry a time axis just before their matrix axes. Declared, never
        guessed from the number of dimensions.
    state_labels : sequence of str, optional
        Names of the states (default ``state_1``, ...).
    name : str
        The component name used in decompositions.
    W_sqrt : array_like or TensorVariable, shape (..., [T,] n, k), optional
        A factor of ``W`` (``W = W_sqrt @ W_sqrt.T``), used instead of factoring ``W``.
    C0_sqrt : array_like or TensorVariable, shape (..., n, k), optional
        A factor of the initial covariance (``C0 = C0_sqrt @ C0_sqrt.T``), used instead of
        ``C0`` (which it then replaces).
    diffuse : bool or sequence of bool, optional
        Which states have a diffuse (improper flat) initial prior; the others keep
        ``m0``/``C0`` (whose rows and columns of diffuse states are ignored). ``True`` means
        all of them, the same as ``C0="diffuse"``. Sums of models concatenate the masks.
    constraints : sequence of TensorVariable of bool, optional
        Conditions on symbolic parameters that valid values satisfy, each over (a broadcastable
        part of) the batch axes; where one fails the log-likelihood of :class:`pymc_dlm.DLM`
        is ``-inf``. Components add theirs (standard deviations non-negative, a damping in
        [0, 1]); ``C0="stationary"`` adds the stationarity of ``G``. Sums concatenate them.
    obs_intercept : array_like or TensorVariable, shape (..., [T,] p), optional
        :math:`d_t` in :math:`y_t = F_t \theta_t + d_t + v_t` (KFAS's and statsmodels'
        ``obs_intercept``); time-varying when ``time_varying`` names ``"obs_intercept"``.
    state_intercept : array_like or TensorVariable, shape (..., [T,] n), optional
        :math:`c_t` in :math:`\theta_t = G_t \theta_{t-1} + c_t + w_t`, for t = 1..T like
        :math:`G_t`; time-varying when ``time_varying`` names ``"state_intercept"``. With
        ``C0="stationary"`` the stationary mean :math:`(I - G)^{-1} c` is not implied: give
        it as ``m0``.

    Notes
    -----
    With diffuse states :math:`A` (the unit columns of the diffuse states),
    :math:`\theta_0 = m_0 + A\delta + L_0\eta` with :math:`\delta` flat. In Durbin & Koopman's
    timing (prior on :math:`\alpha_1 = \theta_1`) this is :math:`a_1 = G_1 m_0`,
    :math:`P_{\infty,1} = G_1 A A^\top G_1^\top` and :math:`P_{*,1} = G_1 C_{0*} G_1^\top + W_1`,
    where :math:`C_{0*}` is ``C0`` with the diffuse rows and columns set to zero: the
    state at the first observation is diffuse in the directions :math:`G_1 A` and carries the
    finite part :math:`W_1` besides. :math:`G_1 A` must have full column rank.

    Intercepts are carried by one more state, constant at 1, appended after the model's
    states and labelled ``<name>_intercept`` (:mod:`pymc_dlm.model.intercepts`): the result
    has ``n + 1`` states, and the same likelihood, states and forecasts as the model with
    :math:`d_t` and :math:`c_t`.

    References
    ----------
    Petris, Petrone & Campagnoli (2009), *Dynamic Linear Models with R*, §2.3 and §3.2.
    """

    F: object
    G: object
    W: object = None
    m0: object = 0.0
    C0: object = "diffuse"
    time_varying: tuple = ()
    state_labels: tuple = None
    name: str = "statespace"
    W_sqrt: object = None
    components: tuple = field(default=None)
    C0_sqrt: object = field(default=None, repr=False)
    parts: tuple = field(default=None, repr=False)
    diffuse: object = None
    constraints: tuple = ()
    obs_intercept: object = None
    state_intercept: object = None
    discount: object = None

    def __post_init__(self):
        """Convert, validate and factor the matrices."""
        tv = (
            tuple(self.time_varying)
            if not isinstance(self.time_varying, str)
            else (self.time_varying,)
        )
        bad = [x for x in tv if x not in _TV_NAMES + INTERCEPT_NAMES]
        if bad:
            raise ValueError(
                f"time_varying must name some of {_TV_NAMES + INTERCEPT_NAMES}, got {bad}"
            )
        intercepts_tv = {x for x in tv if x in INTERCEPT_NAMES}
        tv = tuple(x for x in tv if x in _TV_NAMES)
        self.time_varying = frozenset(tv)
        F = as_float_tensor(self.F, "F", min_ndim=2 + ("F" in tv))
        G = as_float_tensor(self.G, "G", min_ndim=2 + ("G" in tv))
        n = static_dim(G, -1)
        p = static_dim(F, -2)
        if n is None or static_dim(G, -2) is None or p is None or static_dim(F, -1) is None:
            raise ValueError(
                "the number of states and series must be known when the model is built: give "
                "F and G as numpy arrays, random variables with shape= (for example "
                "pm.Normal('G', shape=(2, 2))) or with dims, or pin them with pt.specify_shape"
            )
        # Core lengths known only through the model's coordinates (dims): pin them.
        if None in F.type.shape[-2:]:
            F = pt.specify_shape(F, (*F.type.shape[:-2], p, n))
        if None in G.type.shape[-2:]:
            G = pt.specify_shape(G, (*G.type.shape[:-2], n, n))
        if static_dim(G, -2) != n:
            raise ValueError(f"G must be square (n_state, n_state), got shape {shape_of(G)}")
        if static_dim(F, -1) != n:
            raise ValueError(
                f"F must have {n} columns (the number of states in G), got shape {shape_of(F)}"
            )
        self.n_state, self.n_series = int(n), int(p)
        for name, t in (("F", F), ("G", G)):
            value = known_value(t)
            if value is not None and not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be finite")
        self.F, self.G = F, G
        self.constraints = as_constraints(self.constraints)
        self._set_discount()
        self._set_noise()
        self.m0 = initial_mean(self.m0, n)
        if self.C0_sqrt is not None and self.parts is None and is_diffuse_keyword(self.C0):
            self.C0 = None  # a given factor replaces C0, the default "diffuse" included
        self.diffuse = diffuse_mask(self.diffuse, self.C0, n)
        if isinstance(self.C0, str) and self.C0 == "diffuse":
            self.C0 = pt.as_tensor_variable(np.zeros((n, n)))
            self.C0_sqrt = pt.as_tensor_variable(np.zeros((n, n)))
        elif isinstance(self.C0, str):
            self.C0, self.C0_sqrt, stable = stationary_start(
                self.C0, self.name, self.G, self.W, self.time_varying, self.discount is not None
            )
            self.constraints += (stable,)
        elif self.C0_sqrt is not None and self.parts is None:
            self.C0, self.C0_sqrt = given_factor(self.C0_sqrt, n)
        elif self.C0_sqrt is None:
            C0 = as_float_tensor(self.C0, "C0")
            if C0.ndim <= 1:  # variances: a symbolic one must be non-negative
                ok = constraint(C0, low=0.0, core_ndim=C0.ndim)
                self.constraints += () if ok is None else (ok,)
            self.C0, self.C0_sqrt = initial_cov(C0, n)
        if self.diffuse.any() and self.parts is None:
            keep = pt.as_tensor_variable((~self.diffuse).astype("float64"))
            self.C0 = self.C0 * keep[:, None] * keep[None, :]
            self.C0_sqrt = self.C0_sqrt * keep[:, None]
        self._check_time_lengths()
        if self.parts is None:
            check_diffuse_rank(self.G, self.diffuse, "G" in self.time_varying)
        self.state_labels = state_labels(self.state_labels, n)
        if self.components is None:
            self.components = ((str(self.name), 0, n),)
        if self.parts is None:
            self._add_intercepts(intercepts_tv)
            self.parts = (self,)
        elif self.obs_intercept is not None or self.state_intercept is not None:
            raise ValueError("obs_intercept and state_intercept belong to the models summed")

    def _add_intercepts(self, time_varying):
        """Append the constant state that carries the intercepts (:mod:`.intercepts`)."""
        d, c = self.obs_intercept, self.state_intercept
        if d is None and c is None:
            if time_varying:
                raise ValueError(
                    f"time_varying names {sorted(time_varying)}, but no intercept is given"
                )
            return
        d_tv, c_tv = "obs_intercept" in time_varying, "state_intercept" in time_varying
        for name, value, declared in (("obs_intercept", d, d_tv), ("state_intercept", c, c_tv)):
            if value is None and declared:
                raise ValueError(f"time_varying names {name!r}, but {name} is not given")
        F, G, W_sqrt, m0, C0, C0_sqrt, tv = with_intercepts(
            self.F,
            self.G,
            self.W_sqrt,
            self.m0,
            self.C0,
            self.C0_sqrt,
            self.time_varying,
            d,
            c,
            d_tv,
            c_tv,
        )
        n = self.n_state
        self.F, self.G, self.W_sqrt, self.m0, self.C0, self.C0_sqrt = F, G, W_sqrt, m0, C0, C0_sqrt
        self.W = pt.matmul(W_sqrt, pt.swapaxes(W_sqrt, -1, -2))
        self.time_varying = tv
        self.n_state = n + 1
        self.diffuse = np.append(self.diffuse, False)
        label = f"{self.name}_intercept"
        self.state_labels = unique_labels(self.state_labels + (label,))
        self.components = (*self.components, (label, n, n + 1))
        if self.discount is not None:
            self.discount = concat_last([self.discount, pt.ones(1)], 1)
        self._check_time_lengths()

    def _set_discount(self):
        """A leaf's ``discount``: validated, one entry per state, and a zero ``W_sqrt``."""
        if self.discount is None or self.parts is not None:
            return  # none, or a sum's per-state vector (already checked in its parts)
        if self.W is not None or self.W_sqrt is not None:
            raise TypeError(
                f"{self.name}: give the state noise as W (or W_sqrt) or as discount, not both"
            )
        if "W" in self.time_varying:
            raise ValueError(f"{self.name}: time_varying names 'W', but discount replaces W")
        delta = check_discount(self.discount, "discount")
        ok = open_interval_constraint(delta, high=1.0)
        self.constraints += () if ok is None else (ok,)
        n = self.n_state
        self.discount = delta[..., None] * pt.ones(n)
        self.W_sqrt = pt.as_tensor_variable(np.zeros((n, n)))

    @property
    def discount_blocks(self):
        """The (n, n) mask of the discounted blocks, or ``None`` without discounting."""
        return discount_blocks(self.components, self.discount)

    def _set_noise(self):
        n, tv = self.n_state, self.time_varying
        core = 2 + ("W" in tv)
        if self.W_sqrt is not None:
            L = as_float_tensor(self.W_sqrt, "W_sqrt", min_ndim=core)
            if static_dim(L, -2) != n:
                raise ValueError(f"W_sqrt must have {n} rows, got shape {shape_of(L)}")
            check_finite(L, "W_sqrt")
            self.W_sqrt = L
            self.W = pt.matmul(L, pt.swapaxes(L, -1, -2))
            return
        if self.W is None:
            raise TypeError(
                "StateSpace needs W (the state noise covariance), W_sqrt or discount (a "
                "discount factor in (0, 1])"
            )
        W = as_float_tensor(self.W, "W", min_ndim=core)
        if static_dim(W, -1) != n or static_dim(W, -2) != n:
            raise ValueError(f"W must be ({n}, {n}) (n_state, n_state), got shape {shape_of(W)}")
        value = known_value(W)
        if value is not None:
            self.W_sqrt = covariance_factor(W, value, "W")
        else:
            self.W_sqrt = pt.linalg.cholesky(W, lower=True)
        self.W = W

    @property
    def n_diffuse(self):
        """Number of states with a diffuse (improper flat) initial prior."""
        return int(self.diffuse.sum())

    def diffuse_selection(self):
        """The (n, d) selection matrix of the diffuse states, or ``None`` if there are none."""
        if not self.diffuse.any():
            return None
        return np.eye(self.n_state)[:, self.diffuse]

    def _check_time_lengths(self):
        lengths = {}
        for name in self.time_varying:
            t = getattr(self, name)
            lengths[name] = static_dim(t, -3)
        known = {k: v for k, v in lengths.items() if v is not None}
        if len(set(known.values())) > 1:
            raise ValueError(
                f"time-varying matrices disagree on the number of time steps: {known}"
            )
        self.n_time = next(iter(known.values()), None)

    # -- algebra ---------------------------------------------------------------------------
    def __add__(self, other):
        """Superpose two models (``dlm``'s ``+``): F side by side, G, W, C0 block-diagonal."""
        other = as_statespace(other, "the operand of +")
        return StateSpace(**block_sum(self, other))

    def __radd__(self, other):
        """Support ``sum([...])``, which starts from 0."""
        if other == 0:
            return self
        return as_statespace(other) + self

    @property
    def statespace(self):
        """Return the model itself (components answer with the StateSpace they build)."""
        return self

    @property
    def batch_ndim(self):
        """Number of leading batch axes of the system matrices."""
        return max(
            self.F.ndim - 2 - ("F" in self.time_varying),
            self.G.ndim - 2 - ("G" in self.time_varying),
            self.W_sqrt.ndim - 2 - ("W" in self.time_varying),
            self.m0.ndim - 1,
            self.C0_sqrt.ndim - 2,
            -1 if self.discount is None else self.discount.ndim - 1,
        )


def as_statespace(obj, name="model"):
    """The :class:`StateSpace` of a component, a sum of components or a StateSpace."""
    ss = getattr(obj, "statespace", None)
    if isinstance(ss, StateSpace):
        return ss
    raise TypeError(f"{name} must be a pymc_dlm component or StateSpace, got {type(obj).__name__}")


def system_matrices(ss, obs, *, obs_diag, obs_time_varying=False):
    """Bundle a StateSpace and its observation noise for the Kalman recursions."""
    tv = set(ss.time_varying) | ({"obs"} if obs_time_varying else set())
    return SystemMatrices(
        ss.F,
        ss.G,
        ss.W_sqrt,
        obs,
        ss.m0,
        ss.C0_sqrt,
        frozenset(tv),
        obs_diag,
        diffuse_matrix(ss.diffuse),
        ss.discount,
        ss.discount_blocks,
    )
