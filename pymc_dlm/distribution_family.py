r"""A DLM with counts or binary observations as a PyMC distribution.

:class:`pymc_dlm.DLM` builds this variable when ``family=`` names a non-Gaussian family
(:mod:`pymc_dlm.model.family`):

.. math::

    y_t \mid \theta_t \sim p(y_t \mid \eta_t), \quad \eta_t = F_t\theta_t + o_t, \quad
    \theta_t = G_t\theta_{t-1} + w_t, \quad \theta_0 \sim N(m_0, C_0).

Its log-likelihood is the Laplace approximation of :math:`\log p(y_{1:T})` with the states
integrated out around their posterior mode (:mod:`pymc_dlm.laplace.loglik`), with a gradient
that is exact for that approximation. The simulator draws the states forward and then the
observations from the family (prior and posterior predictive sampling).
"""

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.distribution import Distribution, SymbolicRandomVariable
from pymc.distributions.shape_utils import rv_size_is_none
from pytensor.tensor import get_vector_length
from pytensor.tensor.random.basic import binomial, negative_binomial, poisson

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
from pymc_dlm.kalman.simulate import simulate_scan
from pymc_dlm.laplace.loglik import laplace_loglik
from pymc_dlm.model.blocks import lead_shape
from pymc_dlm.model.checks import all_valid, as_float_tensor, fixed_value, static_dim
from pymc_dlm.model.discount import open_interval_constraint
from pymc_dlm.model.family import NegativeBinomial, family_kind
from pymc_dlm.model.notation import SystemMatrices
from pymc_dlm.model.priors import diffuse_matrix
from pymc_dlm.rv_structure import resized, set_structure

__all__ = ["FamilyDLM", "FamilyDLMRV", "family_dist"]

#: Core axes of F, G, W_sqrt, m0, C0_sqrt (without time axes), offset and the parameter.
_CORES = (2, 2, 2, 1, 2, 1, 1)


def _signature(time_varying):
    t = {name: "t," if name in time_varying else "" for name in ("F", "G", "W")}
    return f"({t['F']}p,n),({t['G']}n,n),({t['W']}n,k),(n),(n,c),(o),(q),(),(),[rng]->[rng],(t)"


def _cores(time_varying):
    return tuple(c + (name in time_varying) for c, name in zip(_CORES, "FGW" + "mCoq"))


def _batch(params, cores):
    shapes = [lead_shape(x, x.ndim - c) for x, c in zip(params, cores)]
    return tuple(pt.broadcast_shape(*shapes, arrays_are_shapes=True))


@set_print_name("DLM", "\\operatorname{DLM}")
class FamilyDLMRV(SymbolicRandomVariable):
    """Symbolic random variable of a DLM with a non-Gaussian observation family."""

    def __init__(
        self, *args, time_varying, family_name, state_labels=None, components=None,
        diffuse=None, **kwargs,
    ):  # fmt: skip
        set_structure(
            self,
            time_varying=time_varying,
            obs_diag=True,
            univariate=True,
            state_labels=state_labels,
            components=components,
            diffuse=diffuse,
        )
        self.family_name = family_name
        kwargs.setdefault("extended_signature", _signature(self.time_varying))
        super().__init__(*args, **kwargs)

    def structure(self):
        """The keyword arguments that rebuild a variable of the same structure."""
        return dict(
            time_varying=self.time_varying,
            family_name=self.family_name,
            state_labels=self.state_labels,
            components=self.components,
            diffuse=self.diffuse,
        )

    def system(self, params, obs=None):
        """The :class:`SystemMatrices` of the first five inputs (observation noise ``obs``)."""
        F, G, W_sqrt, m0, C0_sqrt = params
        obs = pt.zeros(1) if obs is None else obs
        return SystemMatrices(
            F, G, W_sqrt, obs, m0, C0_sqrt, self.time_varying, True,
            diffuse_matrix(self.diffuse), None, None,
        )  # fmt: skip

    @classmethod
    def rv_op(
        cls, F, G, W_sqrt, m0, C0_sqrt, offset, param, steps, valid=True, *, time_varying,
        family_name, state_labels=None, components=None, diffuse=None, size=None, rng=None,
    ):  # fmt: skip
        """Build the RV: simulate the states, then the observations from the family."""
        steps = pt.as_tensor(steps, dtype="int64", ndim=0)
        valid = pt.as_tensor(valid, dtype="bool")
        params = [pt.as_tensor(x, dtype="float64") for x in (F, G, W_sqrt, m0, C0_sqrt)]
        offset = pt.as_tensor(offset, dtype="float64")
        param = pt.as_tensor(param, dtype="float64")
        rng = normalize_rng_param(rng)
        size = normalize_size_param(size)
        if not rv_size_is_none(size):
            n = params[1].type.shape[-1]
            size = tuple(size[i] for i in range(get_vector_length(size)))
            params[3] = pt.broadcast_to(params[3], (*size, n))
        op_kwargs = dict(
            time_varying=frozenset(time_varying),
            family_name=family_name,
            state_labels=state_labels,
            components=components,
            diffuse=diffuse,
        )
        rng_in = rng.type()
        inputs = [*params, offset, param, steps, valid]
        inner = [x.type() for x in inputs]
        y, next_rng = _simulate(inner, rng_in, op_kwargs)
        return structured_op(cls, inputs=[*inner, rng_in], outputs=[next_rng, y], **op_kwargs)(
            *inputs, rng
        )

    def rebuild_rv(self, *args, **kwargs):
        """Rebuild with new inputs, keeping the declared structure."""
        return self.rv_op(*args, **self.structure(), **kwargs)


def _simulate(inner, rng, op_kwargs):
    """The simulator's graph: (y, next rng) from the inner inputs."""
    F, G, W_sqrt, m0, C0_sqrt, offset, param, steps, _ = inner
    tv = op_kwargs["time_varying"]
    system = SystemMatrices(F, G, W_sqrt, pt.zeros(1), m0, C0_sqrt, tv, True, None, None, None)
    batch = _batch(inner[:7], _cores(tv))
    rng, signal, _ = simulate_scan(system, steps, batch, rng)
    eta = signal[..., 0] + offset
    name = op_kwargs["family_name"]
    if name == "poisson":
        rng, y = poisson(pt.exp(eta), rng=rng, return_next_rng=True)
    elif name in ("binomial", "bernoulli"):
        n = pt.cast(pt.broadcast_to(param, eta.shape), "int64")
        rng, y = binomial(n, pt.sigmoid(eta), rng=rng, return_next_rng=True)
    else:
        alpha = pt.broadcast_to(param, eta.shape)
        p = pt.sigmoid(pt.log(alpha) - eta)  # alpha / (alpha + mu)
        rng, y = negative_binomial(alpha, p, rng=rng, return_next_rng=True)
    y = pt.cast(y, "float64")
    y = simulation_checks(y, system, steps, op_kwargs["diffuse"])
    return y, rng


class FamilyDLM(Distribution):
    """The distribution :class:`pymc_dlm.DLM` builds for a non-Gaussian family (not public)."""

    rv_type = FamilyDLMRV
    rv_op = FamilyDLMRV.rv_op

    @classmethod
    def dist(cls, params, **kwargs):
        """``params``: the five matrices, offset, parameter, number of steps, validity."""
        return super().dist(params, **kwargs)


register_change_dist_size(FamilyDLMRV)(resized)


@register_logprob(FamilyDLMRV)
def _logp(op, values, *inputs, **kwargs):
    (value,) = values
    params, offset, param, valid = list(inputs[:5]), inputs[5], inputs[6], inputs[8]
    if op.family_name == "negative_binomial":  # alpha <= 0 is invalid: -inf (below)
        param = pt.switch(param > 0.0, param, 1.0)
    params = [pt.switch(pt.isfinite(x), x, 0.0) for x in params]
    loglik = laplace_loglik(op.system(params), value, family_kind(op.family_name), offset, param)
    loglik = pt.switch(pt.isnan(loglik), -np.inf, loglik)
    return pt.switch(valid, loglik, -np.inf)


@register_support_point(FamilyDLMRV)
def _support_point(op, rv, *inputs):
    """Ones of the variable's shape (a count every family can have; never simulated)."""
    params, steps = inputs[:7], inputs[7]
    batch = _batch(params, _cores(op.time_varying))
    return pt.ones((*batch, steps), dtype=rv.dtype)


def family_dist(ss, family, offset, noise, steps, label, kwargs):
    """The variable of a DLM with a non-Gaussian ``family`` (``noise``: the noise arguments)."""
    given = [name for name, value in noise.items() if value not in (None, False)]
    if given:
        raise TypeError(
            f"family={family!r} has no observation noise: drop {', '.join(given)} (got "
            + ", ".join(f"{k}={noise[k]!r}" for k in given)
            + ")"
        )
    if ss.n_series != 1:
        raise ValueError(f"family={family!r} needs one series, got a model of {ss.n_series}")
    if ss.discount is not None:
        raise ValueError(f"family={family!r} does not combine with discounted components yet")
    offset = as_float_tensor(0.0 if offset is None else offset, "offset", max_ndim=None)
    offset = offset[None] if offset.ndim == 0 else offset
    value = fixed_value(offset)
    if value is not None and not np.all(np.isfinite(value)):
        raise ValueError("offset must be finite")
    param = pt.as_tensor_variable(0.0 if family.param is None else family.param, dtype="float64")
    conditions = list(ss.constraints)
    if isinstance(family, NegativeBinomial):
        conditions.append(open_interval_constraint(param))
    param = param[None] if param.ndim == 0 else param
    lengths = {"offset": static_dim(offset, -1), "Binomial(n)": static_dim(param, -1)}
    known = {k: v for k, v in lengths.items() if v not in (None, 1)}
    steps = resolve_steps(ss, steps, kwargs.get("shape"), None, label)
    if known and isinstance(steps, int):
        for name, length in known.items():
            if length != steps:
                raise ValueError(
                    f"{name} must be a scalar or have one value per time step ({steps}), "
                    f"got length {length}"
                )
    return FamilyDLM.dist(
        [ss.F, ss.G, ss.W_sqrt, ss.m0, ss.C0_sqrt, offset, param, steps, all_valid(conditions)],
        time_varying=frozenset(ss.time_varying),
        family_name=family.name,
        state_labels=ss.state_labels,
        components=ss.components,
        diffuse=tuple(ss.diffuse),
        **kwargs,
    )
