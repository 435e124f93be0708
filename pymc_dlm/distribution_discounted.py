r"""The discounted DLM as a PyMC distribution (West & Harrison's practice).

:class:`pymc_dlm.DLM` builds this variable when a component is given by ``discount=`` or the
observation variance by ``obs_var=LearnedVariance(...)``. Its log-likelihood is the filter of
:mod:`pymc_dlm.kalman.discount` run on the value: Gaussian with a known observation variance,
a product of one-step Student-t densities with a learned one; its gradient in every
parameter (the discount factors among them) is pytensor's derivative of that scan.

The simulator draws the model forward for prior and posterior predictive sampling: the state
noise :math:`W_t` follows from the covariances of a series observed at every step (given the
parameters they do not depend on the values). With a learned variance the model is drawn at
unit scale and its deviations from the mean path are multiplied at step t by
:math:`\sqrt{V_t}`: :math:`\phi_0 = 1/V_0 \sim \mathrm{Gamma}(n_0/2, n_0 S_0/2)`, then West &
Harrison's beta-gamma evolution with the variance discount :math:`\delta_V`
(:mod:`pymc_dlm.kalman.variance_path`). With :math:`\delta_V = 1` every :math:`V_t = V_0`
and y is jointly Student-t with :math:`n_0` degrees of freedom. With :math:`\delta_V < 1`
each :math:`y_t` is exactly :math:`t_{\delta_V^t n_0}(f_t, S_0 Q^*_t)`, the k-step forecast
from the prior that West & Harrison's filter makes; the dependence between steps follows the
per-step scaling, the convention of the package's forecast paths (West & Harrison define
variance discounting by its filter, not by a joint model of the variance path).
"""

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.distribution import Distribution, SymbolicRandomVariable
from pymc.distributions.shape_utils import rv_size_is_none
from pytensor.tensor import get_vector_length

from pymc_dlm.arguments import resolve_steps
from pymc_dlm.compat import (
    normalize_rng_param,
    normalize_size_param,
    register_change_dist_size,
    register_logprob,
    register_support_point,
    set_print_name,
    structured_op,
)
from pymc_dlm.forward_checks import simulation_checks
from pymc_dlm.kalman.discount import (
    LearnedScale,
    discount_filter_scan,
    discount_noise_path,
)
from pymc_dlm.kalman.fused.discounted_ops import discounted_loglik_node
from pymc_dlm.kalman.simulate import simulate_scan
from pymc_dlm.kalman.variance_path import scaled_by_precisions
from pymc_dlm.model.blocks import lead_shape
from pymc_dlm.model.checks import all_valid, static_dim
from pymc_dlm.model.discount import LearnedVariance
from pymc_dlm.model.notation import SystemMatrices, core_ndims
from pymc_dlm.model.observation import observation_constraint, observation_noise
from pymc_dlm.model.priors import diffuse_matrix
from pymc_dlm.rv_structure import resized, set_structure

__all__ = ["DiscountedDLM", "DiscountedDLMRV", "discounted_dist"]


def _signature(time_varying, obs_diag, univariate):
    t = {name: "t," if name in time_varying else "" for name in ("F", "G", "W", "obs")}
    obs = f"({t['obs']}p)" if obs_diag else f"({t['obs']}p,p)"
    out = "(t)" if univariate else "(t,p)"
    return (
        f"({t['F']}p,n),({t['G']}n,n),({t['W']}n,k),{obs},(n),(n,c),(n),(),(),(),(),(),"
        f"[rng]->[rng],{out}"
    )


def _batch(params, cores):
    shapes = [lead_shape(x, x.ndim - c) for x, c in zip(params, cores)]
    return tuple(pt.broadcast_shape(*shapes, arrays_are_shapes=True))


@set_print_name("DLM", "\\operatorname{DLM}")
class DiscountedDLMRV(SymbolicRandomVariable):
    """Symbolic random variable of a discounted DLM and/or one with a learned variance."""

    def __init__(
        self,
        *args,
        time_varying,
        obs_diag,
        univariate,
        learned,
        blocks,
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
        self.learned = bool(learned)
        self.blocks = np.asarray(blocks, dtype="float64")
        kwargs.setdefault(
            "extended_signature", _signature(self.time_varying, self.obs_diag, self.univariate)
        )
        super().__init__(*args, **kwargs)

    def structure(self):
        """The keyword arguments that rebuild a variable of the same structure."""
        return dict(
            time_varying=self.time_varying,
            obs_diag=self.obs_diag,
            univariate=self.univariate,
            learned=self.learned,
            blocks=self.blocks,
            state_labels=self.state_labels,
            components=self.components,
            diffuse=self.diffuse,
        )

    def system(self, params):
        """The :class:`SystemMatrices` of the first seven inputs (F ... discount)."""
        F, G, W_sqrt, obs, m0, C0_sqrt, discount = params
        diffuse = diffuse_matrix(self.diffuse)
        return SystemMatrices(
            F, G, W_sqrt, obs, m0, C0_sqrt, self.time_varying, self.obs_diag, diffuse,
            discount, self.blocks,
        )  # fmt: skip

    def cores(self):
        """Core axes of the inputs F, G, W_sqrt, obs, m0, C0_sqrt, discount, n0, S0, dV."""
        return (*core_ndims(self.time_varying, self.obs_diag), 1, 0, 0, 0)

    @classmethod
    def rv_op(
        cls,
        F, G, W_sqrt, obs, m0, C0_sqrt, discount, n0, S0, dV, steps, valid=True,
        *, time_varying, obs_diag, univariate, learned, blocks, state_labels=None,
        components=None, diffuse=None, size=None, rng=None,
    ):  # fmt: skip
        """Build the RV: simulate T steps (see the module's description)."""
        steps = pt.as_tensor(steps, dtype="int64", ndim=0)
        valid = pt.as_tensor(valid, dtype="bool")
        params = [
            pt.as_tensor(x, dtype="float64")
            for x in (F, G, W_sqrt, obs, m0, C0_sqrt, discount, n0, S0, dV)
        ]
        rng = normalize_rng_param(rng)
        size = normalize_size_param(size)
        if not rv_size_is_none(size):
            n = params[1].type.shape[-1]
            size = tuple(size[i] for i in range(get_vector_length(size)))
            params[4] = pt.broadcast_to(params[4], (*size, n))
        op_kwargs = dict(
            time_varying=frozenset(time_varying),
            obs_diag=obs_diag,
            univariate=univariate,
            learned=learned,
            blocks=blocks,
            state_labels=state_labels,
            components=components,
            diffuse=diffuse,
        )
        rng_in = rng.type()
        inner = [x.type() for x in (*params, steps, valid)]
        y, next_rng = _simulate(inner, rng_in, op_kwargs)
        return structured_op(cls, inputs=[*inner, rng_in], outputs=[next_rng, y], **op_kwargs)(
            *params, steps, valid, rng
        )

    def rebuild_rv(self, *args, **kwargs):
        """Rebuild with new inputs, keeping the declared structure."""
        return self.rv_op(*args, **self.structure(), **kwargs)


def _simulate_learned(system, S0, n0, dV, steps, batch, rng):
    r"""Y (..., T, 1) of a learned variance: the unit-scale path, scaled per step (module doc).

    The model at unit scale (C0 and the ``sigma`` blocks' W divided by S0, observation
    variance 1, the discounted blocks' W from that covariance recursion) is drawn, and its
    deviations from the mean path are multiplied at step t by :math:`\sqrt{V_t}`,
    :math:`V_t = 1/\phi_t` (:func:`~pymc_dlm.kalman.variance_path.scaled_by_precisions`).
    """
    tv = system.time_varying
    unit = system._replace(
        W_sqrt=system.W_sqrt / pt.sqrt(S0)[..., None, None],
        C0_sqrt=system.C0_sqrt / pt.sqrt(S0)[..., None, None],
    )
    ones = pt.ones(batch) if batch else pt.constant(1.0)
    W_unit = discount_noise_path(unit, steps, batch, obs_var=ones)
    unit = unit._replace(
        W_sqrt=W_unit, obs=ones[..., None], obs_diag=True, time_varying=(tv - {"obs"}) | {"W"}
    )
    rng, y, theta = simulate_scan(unit, steps, batch, rng)
    n, S, d = (pt.broadcast_to(x, batch) for x in (n0, S0, dV))
    rng, y, _ = scaled_by_precisions(unit, steps, batch, rng, y, theta, n, S, d)
    return y, rng


def _simulate(inner, rng, op_kwargs):
    """The simulator's graph: (y, next rng) from the inner inputs."""
    F, G, W_sqrt, obs, m0, C0_sqrt, discount, n0, S0, dV, steps, _ = inner
    tv, obs_diag = op_kwargs["time_varying"], op_kwargs["obs_diag"]
    system = SystemMatrices(
        F, G, W_sqrt, obs, m0, C0_sqrt, tv, obs_diag, None, discount, op_kwargs["blocks"]
    )
    cores = (*core_ndims(tv, obs_diag), 1, 0, 0, 0)
    batch = _batch(inner[:10], cores)
    if op_kwargs["learned"]:
        y, next_rng = _simulate_learned(system, S0, n0, dV, steps, batch, rng)
    else:
        W = discount_noise_path(system, steps, batch)
        system = system._replace(W_sqrt=W, time_varying=tv | {"W"})
        next_rng, y, _ = simulate_scan(system, steps, batch, rng)
    if op_kwargs["univariate"]:
        y = y[..., 0]
    y = simulation_checks(y, system._replace(time_varying=tv), steps, op_kwargs["diffuse"])
    return y, next_rng


class DiscountedDLM(Distribution):
    """The distribution :class:`pymc_dlm.DLM` builds for discounted models (not public)."""

    rv_type = DiscountedDLMRV
    rv_op = DiscountedDLMRV.rv_op

    @classmethod
    def dist(cls, params, **kwargs):
        """``params``: the ten parameters, the number of steps and the validity flag."""
        return super().dist(params, **kwargs)


register_change_dist_size(DiscountedDLMRV)(resized)


def _safe(op, valid, params):
    """Inputs with invalid values replaced by harmless ones.

    1 for discount factors outside (0, 1] and for non-positive n0 or S0, 0 for non-finite
    entries: the filter and its derivative stay finite where the log-likelihood is ``-inf``
    anyway (``valid`` is False there).
    """
    out = []
    for i, x in enumerate(params):
        if i == 6 or i == 9:  # discount factors in (0, 1]
            x = pt.switch((x > 0.0) & (x <= 1.0), x, 1.0)
        elif i in (7, 8):  # n0, S0 > 0
            x = pt.switch(x > 0.0, x, 1.0)
        out.append(pt.switch(pt.isfinite(x), x, 0.0))
    return out


@register_logprob(DiscountedDLMRV)
def _logp(op, values, *inputs, **kwargs):
    (value,) = values
    params, valid = list(inputs[:10]), inputs[11]
    y = value[..., None] if op.univariate else value
    params = _safe(op, valid, params)
    system = op.system(params[:7])
    learned = LearnedScale(*params[7:10]) if op.learned else None
    # The kernels' nodes and their definitions give -inf, never NaN, at invalid parameters.
    # Checked here, a NaN test of their value would feed their gradient's cotangent, and the
    # value could no longer come from the gradient node's forward pass (``share_forward_pass``).
    loglik = discounted_loglik_node(system, y, learned)
    if loglik is None:
        loglik = discount_filter_scan(system, y, learned).loglik
        loglik = pt.switch(pt.isnan(loglik), -np.inf, loglik)
    return pt.switch(valid, loglik, -np.inf)


@register_support_point(DiscountedDLMRV)
def _support_point(op, rv, *inputs):
    """Zeros of the variable's shape, computed from the inputs (never by simulating)."""
    params, steps = inputs[:10], inputs[10]
    batch = _batch(params, op.cores())
    core = (steps,) if op.univariate else (steps, params[0].shape[-2])
    return pt.zeros((*batch, *core), dtype=rv.dtype)


def discounted_dist(ss, sigma_obs, obs_cov, obs_var, steps, obs_time_varying, label, kwargs):
    """The variable of a discounted model or one with a learned variance."""
    if obs_var is not None:
        if not isinstance(obs_var, LearnedVariance):
            raise TypeError(
                f"obs_var must be a pymc_dlm.LearnedVariance, got {type(obs_var).__name__}"
            )
        if sigma_obs is not None or obs_cov is not None:
            raise TypeError("give exactly one of sigma_obs, obs_cov and obs_var")
        if ss.n_series != 1:
            raise ValueError(
                f"obs_var (a learned variance) needs one series, the model has {ss.n_series}"
            )
        if obs_time_varying:
            raise ValueError("obs_time_varying does not apply to obs_var")
        obs, obs_diag = pt.ones(1), True
        learned = (obs_var.n0, obs_var.S0, obs_var.discount)
        conditions = obs_var.constraints()
    else:
        obs, obs_diag = observation_noise(
            sigma_obs, obs_cov, ss.n_series, time_varying=obs_time_varying
        )
        learned = (1.0, 1.0, 1.0)
        conditions = (observation_constraint(obs, obs_diag, time_varying=obs_time_varying),)
    obs_time = static_dim(obs, -2 if obs_diag else -3) if obs_time_varying else None
    steps = resolve_steps(ss, steps, kwargs.get("shape"), obs_time, label)
    tv = set(ss.time_varying) | ({"obs"} if obs_time_varying else set())
    n = ss.n_state
    discount = pt.ones(n) if ss.discount is None else ss.discount
    blocks = ss.discount_blocks if ss.discount is not None else np.zeros((n, n))
    valid = all_valid((*ss.constraints, *conditions))
    return DiscountedDLM.dist(
        [ss.F, ss.G, ss.W_sqrt, obs, ss.m0, ss.C0_sqrt, discount, *learned, steps, valid],
        time_varying=frozenset(tv),
        obs_diag=obs_diag,
        univariate=ss.n_series == 1,
        learned=obs_var is not None,
        blocks=blocks,
        state_labels=ss.state_labels,
        components=ss.components,
        diffuse=tuple(ss.diffuse),
        **kwargs,
    )
