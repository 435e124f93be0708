r"""The DLM as a PyMC distribution.

Anatomy of PyMC's own time series (``pymc/distributions/timeseries.py``, GARCH11): a
:class:`~pymc.distributions.distribution.SymbolicRandomVariable` whose inner graph simulates the
DLM forward with an RNG-threaded scan; a ``Distribution`` whose ``dist`` validates; and
module-level registrations of the log-likelihood (the Kalman filter run on the *value*), the
support point and size changes.
"""

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.distribution import Distribution, SymbolicRandomVariable
from pymc.distributions.shape_utils import rv_size_is_none
from pytensor.tensor import get_vector_length

from pymc_dlm.arguments import (
    check_batch,
    check_dims,
    declared_batch,
    dim_lengths,
    resolve_steps,
    steps_from_dims,
)
from pymc_dlm.compat import (
    normalize_rng_param,
    normalize_size_param,
    register_change_dist_size,
    register_logprob,
    register_support_point,
    set_print_name,
    structured_op,
)
from pymc_dlm.distribution_discounted import discounted_dist
from pymc_dlm.distribution_family import family_dist
from pymc_dlm.forward_checks import simulation_checks
from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.fused.ops import fused_loglik
from pymc_dlm.kalman.prepare import batch_shape
from pymc_dlm.kalman.simulate import simulate_scan
from pymc_dlm.model.checks import all_valid, finite_where_invalid, static_dim
from pymc_dlm.model.data import as_observations
from pymc_dlm.model.family import as_family, check_counts
from pymc_dlm.model.notation import PARAMETERS, SystemMatrices, core_ndims
from pymc_dlm.model.observation import observation_constraint, observation_noise
from pymc_dlm.model.priors import check_diffuse_count, diffuse_matrix
from pymc_dlm.model.statespace import as_statespace
from pymc_dlm.rv_structure import set_structure

__all__ = ["DLM", "DLMRV"]


def _signature(time_varying, obs_diag, univariate):
    t = {name: "t," if name in time_varying else "" for name in ("F", "G", "W", "obs")}
    obs = f"({t['obs']}p)" if obs_diag else f"({t['obs']}p,p)"
    out = "(t)" if univariate else "(t,p)"
    return f"({t['F']}p,n),({t['G']}n,n),({t['W']}n,k),{obs},(n),(n,c),(),(),[rng]->[rng],{out}"


@set_print_name("DLM", "\\operatorname{DLM}")
class DLMRV(SymbolicRandomVariable):
    """Symbolic random variable of a dynamic linear model (simulated by a scan)."""

    def __init__(
        self,
        *args,
        time_varying,
        obs_diag,
        univariate,
        state_labels=None,
        components=None,
        diffuse=None,
        **kwargs,
    ):
        set_structure(
            self,
            time_varying=time_varying,
            obs_diag=obs_diag,
            univariate=univariate,
            state_labels=state_labels,
            components=components,
            diffuse=diffuse,
        )
        kwargs.setdefault(
            "extended_signature", _signature(self.time_varying, self.obs_diag, self.univariate)
        )
        super().__init__(*args, **kwargs)

    @staticmethod
    def parameters(rv):
        """The model's parameters of DLM variable ``rv``, in the order of ``PARAMETERS``.

        The one place that reads the variable's inputs by position:
        :data:`pymc_dlm.model.notation.PARAMETERS` (F, G, W_sqrt, obs, m0, C0_sqrt) come
        first, then the number of steps, the validity flags and the random generator.
        """
        return list(rv.owner.inputs[: len(PARAMETERS)])

    def system(self, params):
        """The :class:`SystemMatrices` of ``params`` (in the order of ``PARAMETERS``)."""
        diffuse = diffuse_matrix(self.diffuse)
        return SystemMatrices(*params, self.time_varying, self.obs_diag, diffuse)

    @classmethod
    def rv_op(
        cls,
        F,
        G,
        W_sqrt,
        obs,
        m0,
        C0_sqrt,
        steps,
        valid=True,
        *,
        time_varying,
        obs_diag,
        univariate,
        state_labels=None,
        components=None,
        diffuse=None,
        size=None,
        rng=None,
    ):
        """Build the RV: simulate T steps from the model's matrices.

        ``valid`` (boolean, over batch axes) is where the parameters satisfy the model's
        constraints; it does not enter the simulation, only the log-likelihood.
        """
        steps = pt.as_tensor(steps, dtype="int64", ndim=0)
        valid = pt.as_tensor(valid, dtype="bool")
        params = [pt.as_tensor(x, dtype="float64") for x in (F, G, W_sqrt, obs, m0, C0_sqrt)]
        F, G, W_sqrt, obs, m0, C0_sqrt = params
        rng = normalize_rng_param(rng)
        system = SystemMatrices(F, G, W_sqrt, obs, m0, C0_sqrt, frozenset(time_varying), obs_diag)
        size = normalize_size_param(size)
        if not rv_size_is_none(size):
            n = G.type.shape[-1]
            size = tuple(size[i] for i in range(get_vector_length(size)))
            m0 = pt.broadcast_to(m0, (*size, n))
            system = system._replace(m0=m0)

        rng_in = rng.type()
        inner = [x.type() for x in (F, G, W_sqrt, obs, system.m0, C0_sqrt, steps, valid)]
        inner_system = SystemMatrices(*inner[:6], system.time_varying, obs_diag)
        next_rng, y, _ = simulate_scan(inner_system, inner[6], batch_shape(inner_system), rng_in)
        if univariate:
            y = y[..., 0]
        y = simulation_checks(y, inner_system, inner[6], diffuse)
        return structured_op(
            cls,
            inputs=[*inner, rng_in],
            outputs=[next_rng, y],
            time_varying=time_varying,
            obs_diag=obs_diag,
            univariate=univariate,
            state_labels=state_labels,
            components=components,
            diffuse=diffuse,
        )(F, G, W_sqrt, obs, system.m0, C0_sqrt, steps, valid, rng)

    def rebuild_rv(self, *args, **kwargs):
        """Rebuild with new inputs, keeping the declared structure."""
        return self.rv_op(
            *args,
            time_varying=self.time_varying,
            obs_diag=self.obs_diag,
            univariate=self.univariate,
            state_labels=self.state_labels,
            components=self.components,
            diffuse=self.diffuse,
            **kwargs,
        )


class DLM(Distribution):
    r"""Dynamic linear model with a Kalman-filter log-likelihood.

    .. math::

        y_t = F_t \theta_t + v_t,\ v_t \sim N(0, V_t);\quad
        \theta_t = G_t \theta_{t-1} + w_t,\ w_t \sim N(0, W_t);\quad
        \theta_0 \sim N(m_0, C_0).

    The log-likelihood is :math:`\log p(y_{1:T})` with the states integrated out by a
    square-root Kalman filter run on the value: the full Gaussian log-likelihood including
    every :math:`\tfrac12 \log 2\pi`, under the proper prior on :math:`\theta_0` (the prior
    is at time 0, one step before the first observation, as in R ``dlm``). It equals R
    ``dlm``'s ``-dlmLL(y, mod) - 0.5 * n_observed * log(2*pi)``.

    Parameters
    ----------
    name : str
        Variable name.
    model : Component or StateSpace
        The state model, e.g. ``LocalLevel(sigma) + Seasonal(12, sigma_s)``.
    sigma_obs : float, array_like or TensorVariable, optional
        Observation noise standard deviation(s): a scalar or one per series (diagonal V).
    obs_cov : array_like or TensorVariable, optional
        Full observation noise covariance V (p, p). Give exactly one of ``sigma_obs``,
        ``obs_cov`` and ``obs_var``.
    obs_var : LearnedVariance, optional
        An unknown observation variance learned by conjugate updating (one series): the
        log-likelihood is then a product of one-step Student-t densities
        (:class:`pymc_dlm.LearnedVariance`, West & Harrison 1997, §4.6).
    steps : int, optional
        Number of time steps T, when neither ``observed``, ``shape``/``dims`` nor a
        time-varying matrix gives it.
    obs_time_varying : bool
        ``sigma_obs``/``obs_cov`` carry a time axis before their core axes.
    observed : array_like, optional
        Data of shape (..., T) for one series, (..., T, p) for several; leading axes are
        independent series (batch). NaN marks a missing value and is handled exactly inside
        the filter (no imputation); ``inf`` is an error.
    **kwargs
        ``dims``, ``shape``, ``size`` and the rest as for any PyMC distribution.

    Notes
    -----
    Batch axes (independent series with batched parameters) lead; the log-likelihood is one
    value per series. Missing values contribute exactly zero; a partially missing row uses its
    observed components only.

    Symbolic parameters outside their valid range give a log-likelihood of ``-inf`` with a
    zero gradient, never NaN: a negative standard deviation (of a component or of
    ``sigma_obs``) or variance, a damping outside [0, 1], a ``G`` with an eigenvalue of
    modulus one or more under ``C0="stationary"`` (see ``StateSpace.constraints``). Each
    batch member is judged on its own parameters.

    References
    ----------
    Petris, Petrone & Campagnoli (2009), §2.7 and §4.1; Durbin & Koopman (2012), §7.2.

    ``family=`` (``"poisson"``, ``"bernoulli"``, :class:`~pymc_dlm.NegativeBinomial`,
    :class:`~pymc_dlm.Binomial`; ``"gaussian"`` is the model above) puts counts or binary
    data on the latent DLM, :math:`y_t \sim p(y_t \mid F_t\theta_t + o_t)` with a known
    ``offset`` :math:`o_t`; the log-likelihood is then the Laplace approximation of
    :mod:`pymc_dlm.distribution_family`.

    Components given by ``discount=`` (West & Harrison's component discounting) or a
    learned observation variance give a variable whose log-likelihood is the discounted
    filter of :mod:`pymc_dlm.kalman.discount` (:mod:`pymc_dlm.distribution_discounted`).
    """

    rv_type = DLMRV
    rv_op = DLMRV.rv_op

    def __new__(cls, name, model, *args, observed=None, **kwargs):
        """Register the variable; NaN in ``observed`` stays inside the likelihood."""
        if args:
            raise TypeError("DLM takes the model positionally and everything else by keyword")
        if observed is not None:
            ss = as_statespace(model)
            batch = declared_batch(ss, kwargs)
            arr, _ = as_observations(observed, ss.n_series, "observed", ss.n_time, batch)
            check_diffuse_count(ss, arr, "observed")
            check_batch(ss, arr.shape[:-2], kwargs)
            if ss.n_series == 1:
                arr = arr[..., 0]
            family = as_family(kwargs.get("family", "gaussian"))
            if family is not None:  # trials per step line up with the time axis
                check_counts(family, arr, "observed")
            check_dims(kwargs.get("dims"), arr.shape)
            # A constant, not a numpy array: PyMC would otherwise impute the NaNs.
            observed = pt.as_tensor_variable(arr)
            if kwargs.get("steps") is None:
                kwargs["steps"] = arr.shape[-1] if ss.n_series == 1 else arr.shape[-2]
                kwargs["_steps_label"] = "observed"
        elif kwargs.get("shape") is None and kwargs.get("dims"):
            ss = as_statespace(model)
            lengths = dim_lengths(kwargs["dims"])
            core = 1 if ss.n_series == 1 else 2
            if lengths is not None and len(lengths) >= core:
                check_batch(ss, lengths[:-core], kwargs, "dims")
            if kwargs.get("steps") is None:
                kwargs["steps"] = steps_from_dims(ss, kwargs["dims"])
        return super().__new__(cls, name, model, observed=observed, **kwargs)

    @classmethod
    def dist(
        cls,
        model,
        *,
        sigma_obs=None,
        obs_cov=None,
        steps=None,
        obs_time_varying=False,
        obs_var=None,
        family="gaussian",
        offset=None,
        **kwargs,
    ):
        """Create the unregistered variable (see the class docstring)."""
        steps_label = kwargs.pop("_steps_label", "steps")
        ss = as_statespace(model)
        family = as_family(family)
        if family is not None:
            noise = dict(sigma_obs=sigma_obs, obs_cov=obs_cov, obs_var=obs_var)
            noise["obs_time_varying"] = obs_time_varying
            return family_dist(ss, family, offset, noise, steps, steps_label, kwargs)
        if offset is not None:
            raise TypeError(
                "offset applies to a non-Gaussian family (family='poisson', ...), got "
                "family='gaussian'"
            )
        if obs_var is not None or ss.discount is not None:
            return discounted_dist(
                ss, sigma_obs, obs_cov, obs_var, steps, obs_time_varying, steps_label, kwargs
            )
        obs, obs_diag = observation_noise(
            sigma_obs, obs_cov, ss.n_series, time_varying=obs_time_varying
        )
        obs_time = None
        if obs_time_varying:
            obs_time = static_dim(obs, -2 if obs_diag else -3)
        steps = resolve_steps(ss, steps, kwargs.get("shape"), obs_time, steps_label)
        tv = set(ss.time_varying) | ({"obs"} if obs_time_varying else set())
        valid = all_valid(
            (*ss.constraints, observation_constraint(obs, obs_diag, time_varying=obs_time_varying))
        )
        return super().dist(
            [ss.F, ss.G, ss.W_sqrt, obs, ss.m0, ss.C0_sqrt, steps, valid],
            time_varying=frozenset(tv),
            obs_diag=obs_diag,
            univariate=ss.n_series == 1,
            state_labels=ss.state_labels,
            components=ss.components,
            diffuse=tuple(ss.diffuse),
            **kwargs,
        )


@register_change_dist_size(DLMRV)
def _change_dlm_size(op, dist, new_size, expand=False):
    if expand:
        old = tuple(dist.shape[i] for i in range(dist.ndim - op.ndim_supp))
        new_size = tuple(new_size) + old
    F, G, W_sqrt, obs, m0, C0_sqrt, steps, valid, _ = dist.owner.inputs
    return op.rv_op(
        F,
        G,
        W_sqrt,
        obs,
        m0,
        C0_sqrt,
        steps,
        valid,
        time_varying=op.time_varying,
        obs_diag=op.obs_diag,
        univariate=op.univariate,
        state_labels=op.state_labels,
        components=op.components,
        diffuse=op.diffuse,
        size=new_size,
    )


@register_logprob(DLMRV)
def _dlm_logp(op, values, F, G, W_sqrt, obs, m0, C0_sqrt, steps, valid, rng, **kwargs):
    (value,) = values
    y = value[..., None] if op.univariate else value
    params = finite_where_invalid(valid, (F, G, W_sqrt, obs, m0, C0_sqrt), _core_ndims(op))
    system = op.system(params)
    # The fused kernels (proper and exact diffuse starts); None where they do not apply
    # (float32): then the scan definition runs.
    loglik = fused_loglik(system, y)  # NaN-free already: -inf at invalid parameters
    if loglik is None:
        loglik = filter_scan(system, y).loglik
        # Invalid parameters (e.g. a covariance that is not positive definite) give -inf.
        loglik = pt.switch(pt.isnan(loglik), -np.inf, loglik)
    # Parameters outside the model's constraints (a negative standard deviation, a
    # non-stationary G under C0="stationary") are invalid: -inf, and a zero derivative.
    return pt.switch(valid, loglik, -np.inf)


def _core_ndims(op):
    """Core axes of the op's six parameters (:func:`pymc_dlm.model.notation.core_ndims`)."""
    return core_ndims(op.time_varying, op.obs_diag)


@register_support_point(DLMRV)
def _dlm_support_point(op, rv, F, G, W_sqrt, obs, m0, C0_sqrt, steps, valid, rng):
    """Zeros of the variable's shape, computed from the inputs (never by simulating)."""
    cores = _core_ndims(op)
    params = (F, G, W_sqrt, obs, m0, C0_sqrt)
    shapes = [tuple(x.shape[i] for i in range(x.ndim - c)) for x, c in zip(params, cores)]
    batch = tuple(pt.broadcast_shape(*shapes, arrays_are_shapes=True)) if any(shapes) else ()
    core = (steps,) if op.univariate else (steps, F.shape[-2])
    return pt.zeros((*batch, *core), dtype=rv.dtype)
