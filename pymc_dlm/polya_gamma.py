r"""Pólya-Gamma augmented FFBS: a Gibbs step for the path of :func:`~pymc_dlm.LatentStates`.

For a logistic (binomial, Bernoulli) or negative-binomial observation of
:math:`\eta_t = F_t\theta_t + o_t`, the likelihood is, up to factors free of :math:`\theta`,
:math:`e^{\kappa_t\psi_t} / (1 + e^{\psi_t})^{b_t}` with :math:`\psi_t = \eta_t - c`:
binomial :math:`b_t = n_t`, :math:`c = 0`; negative binomial (log link)
:math:`b_t = y_t + \alpha`, :math:`c = \log\alpha`; and :math:`\kappa_t = y_t - b_t/2`. With
:math:`\omega_t \sim \mathrm{PG}(b_t, \psi_t)` the conditional of the states is the Gaussian
DLM with pseudo-observations :math:`\kappa_t/\omega_t + c - o_t` of the signal and variances
:math:`1/\omega_t` (Polson, Scott & Windle 2013). One step:

1. :math:`\omega_t \sim \mathrm{PG}(b_t, \psi_t)` at the current path (the ``polyagamma``
   package);
2. :math:`\theta_{1:T}` from that Gaussian DLM by the simulation smoother (mean correction,
   :mod:`pymc_dlm.laplace.importance`), exact with diffuse states;
3. :math:`\theta_0 \mid \theta_1` and the innovations of the non-centred parametrisation:
   :math:`(z_0, \delta, u_1)` from :math:`\theta_1 - G_1 m_0 = G_1 L_0 z_0 + G_1 A\delta +
   L_{W,1} u_1` (:math:`z_0, u_1` standard normal, :math:`\delta` flat) by conditioning on
   the constraint, :math:`z_t = L_{W,t}^+(\theta_t - G_t\theta_{t-1})` plus fresh noise in
   the null space of :math:`L_{W,t}` (which the path does not determine), for t ≥ 2.

The static parameters are left to another step (NUTS): ``pm.sample(step=[pg_step])`` assigns
NUTS to the rest.

References
----------
Polson, N. G., Scott, J. G. and Windle, J. (2013). Bayesian inference for logistic models
using Pólya-Gamma latent variables. *JASA* 108, 1339–1349.
Windle, J., Carvalho, C. M., Scott, J. G. and Sun, L. (2013). Efficient data augmentation in
dynamic models for binary and count data. arXiv:1308.0774.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pymc.model import modelcontext
from pymc.step_methods.compound import BlockedStep, Competence

from pymc_dlm.kalman.pseudo_smoother import PseudoSmoother
from pymc_dlm.laplace.importance import simulate_states
from pymc_dlm.laplace.mode import signal_rows
from pymc_dlm.model.family import Binomial, NegativeBinomial, as_family, check_counts

__all__ = ["PolyaGammaFFBS"]


def _pg(b, c, rng):
    try:
        from polyagamma import random_polyagamma  # noqa: PLC0415 (optional dependency)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "PolyaGammaFFBS needs the polyagamma package: pip install 'pymc-dlm[counts]'"
        ) from err
    return random_polyagamma(b, c, random_state=rng)


def _null_noise(L, rng):
    """Standard normal noise projected on the null space of L (columns)."""
    eps = rng.standard_normal(L.shape[-1])
    return eps - np.linalg.lstsq(L, L @ eps, rcond=None)[0]


class PolyaGammaFFBS(BlockedStep):
    r"""Gibbs step for a non-centred :func:`~pymc_dlm.LatentStates` path (module docstring).

    Parameters
    ----------
    states : TensorVariable
        The path returned by ``LatentStates`` (non-centred) in the current model.
    family : Binomial, "bernoulli" or NegativeBinomial
        The observation family of ``observed`` given :math:`F_t\theta_t + o_t`, the same as
        the likelihood written in the model.
    observed : array_like, shape (T,)
        The counts (NaN: missing).
    offset : array_like, optional
        Known offset :math:`o_t`.
    model : pm.Model, optional
        The model (default: the one in context).
    """

    stats_dtypes_shapes = {}

    def __init__(
        self, states, *, family, observed, offset=None, model=None, rng=None, blocked=True,
    ):  # fmt: skip
        info = getattr(states.tag, "dlm_latent", None)
        if info is None:
            raise TypeError(
                "states must be the path returned by pymc_dlm.LatentStates (non-centred), "
                f"got {states}"
            )
        model = modelcontext(model)
        vars = [model.rvs_to_values[model[name]] for name in info["free"]]
        family = as_family(family)
        if not isinstance(family, (Binomial, NegativeBinomial)):
            raise ValueError(
                "PolyaGammaFFBS needs a logistic or negative-binomial family (Binomial(n), "
                f"'bernoulli', NegativeBinomial(alpha)), got family={family!r}"
            )
        self.vars = vars
        self.info = info
        self.family = family
        ss = info["statespace"]
        self.y = check_counts(family, np.asarray(observed, dtype="float64"), "observed")
        T = info["steps"]
        if self.y.shape != (T,):
            raise ValueError(f"observed must have shape ({T},) like the path, got {self.y.shape}")
        self.offset = np.broadcast_to(np.asarray(0.0 if offset is None else offset, float), (T,))
        self.diffuse = np.asarray(ss.diffuse, dtype=bool)
        self.time_varying = frozenset(ss.time_varying)
        param = pt.as_tensor_variable(family.param, dtype="float64")
        outs = [ss.F, ss.G, ss.W_sqrt, ss.m0, ss.C0_sqrt, param]
        outs = model.replace_rvs_by_values(outs)
        self.inputs = list(model.value_vars)
        self._fn = pytensor.function(self.inputs, outs, on_unused_input="ignore")
        path = model.replace_rvs_by_values([states])[0]
        self._path = pytensor.function(self.inputs, path, on_unused_input="ignore")
        self.rng = np.random.default_rng(rng)

    def _numbers(self, point):
        args = [point[v.name] for v in self.inputs]
        F, G, W, m0, C0, param = (np.asarray(x, dtype="float64") for x in self._fn(*args))
        return dict(F=F, G=G, W_sqrt=W, m0=m0, C0_sqrt=C0), param, self._path(*args)

    def _pseudo(self, eta, param):
        observed = ~np.isnan(self.y)
        y = np.where(observed, self.y, 0.0)
        if isinstance(self.family, NegativeBinomial):
            b, shift = y + param, np.log(param)
        else:
            b, shift = np.broadcast_to(self.family.trials, y.shape).astype(float), 0.0
        psi = eta - shift
        omega = np.ones_like(y)
        omega[observed] = _pg(b[observed], psi[observed], self.rng)
        kappa = y - b / 2.0
        pseudo = np.where(observed, kappa / omega + shift - self.offset, np.nan)
        return pseudo, 1.0 / omega

    def step(self, point):
        """One Gibbs update of the path's free variables."""
        values, param, path = self._numbers(point)
        tv = self.time_varying
        T = self.y.size
        rows = signal_rows(values["F"], "F" in tv)
        eta = np.sum(rows * path, axis=-1) + self.offset
        pseudo, A = self._pseudo(eta, param)
        smoother = PseudoSmoother(values, (T,), time_varying=tv, diffuse=self.diffuse)
        sd = np.sqrt(A)
        theta_plus = simulate_states({**values, "T": T}, tv, (), self.rng)
        y_plus = np.sum(rows * theta_plus, axis=-1) + sd * self.rng.standard_normal(T)
        y_plus = np.where(np.isnan(pseudo), np.nan, y_plus)
        both = np.stack([pseudo, y_plus])
        means, _, _ = smoother.run(both, np.broadcast_to(sd, both.shape))
        theta = means[0] + theta_plus - means[1]
        new = dict(point)
        new.update(self._innovations(values, theta))
        return new, [{}]

    def _innovations(self, values, theta):
        info, tv = self.info, self.time_varying
        G = (
            values["G"]
            if "G" in tv
            else np.broadcast_to(values["G"], (len(theta), *values["G"].shape))
        )
        W = (
            values["W_sqrt"]
            if "W" in tv
            else np.broadcast_to(values["W_sqrt"], (len(theta), *values["W_sqrt"].shape))
        )
        L0, m0 = values["C0_sqrt"], values["m0"]
        A = np.eye(len(m0))[:, self.diffuse]
        c, d, k = L0.shape[1], A.shape[1], W.shape[-1]
        # theta_1 - G_1 m0 = [G_1 L0, W_1] (z0, u) + G_1 A delta
        r = theta[0] - G[0] @ m0
        Mp = np.concatenate([G[0] @ L0, W[0]], axis=1)
        Md = G[0] @ A
        x = self.rng.standard_normal(c + k)
        if d:
            q, _ = np.linalg.qr(Md, mode="complete")
            Q = q[:, d:]
        else:
            Q = np.eye(len(r))
        H = Q.T @ Mp
        x = x + np.linalg.lstsq(H, Q.T @ r - H @ x, rcond=None)[0]
        delta = np.linalg.lstsq(Md, r - Mp @ x, rcond=None)[0] if d else np.zeros(0)
        z0, u1 = x[:c], x[c:]
        zs = np.empty((len(theta), k))
        zs[0] = u1
        for t in range(1, len(theta)):
            e = theta[t] - G[t] @ theta[t - 1]
            zs[t] = np.linalg.lstsq(W[t], e, rcond=None)[0] + _null_noise(W[t], self.rng)
        out = {info["z0"]: z0, info["innovations"]: zs}
        if d:
            out[info["diffuse"]] = delta
        return {self._value_name(k): v for k, v in out.items()}

    def _value_name(self, name):
        return next(v.name for v in self.vars if v.name.startswith(name))

    @staticmethod
    def competence(var, has_grad):  # noqa: D102
        return Competence.INCOMPATIBLE
