r"""The Laplace log-likelihood of a DLM with non-Gaussian observations, as a graph.

With :math:`\hat s` the posterior mode of the signal (:mod:`pymc_dlm.laplace.mode`) and the
approximating Gaussian model there (pseudo-observations :math:`y^*`, variances :math:`A`),

.. math::

    \hat\ell(\psi) = \sum_t \big[\log p(y_t \mid \hat\eta_t) - \log N(y^*_t; \hat s_t, A_t)\big]
    + \log g_\psi(y^*),

where :math:`\log g_\psi` is the Gaussian DLM log-likelihood of :math:`y^*` with observation
variances :math:`A_t` (the fused kernels; exact diffuse starts; missing values contribute 0).
This is the Laplace approximation :math:`\log p(y\mid\hat s) + \log p_\psi(\hat s) +
\tfrac k2 \log 2\pi - \tfrac12 \log|H|` of :math:`\log p(y)` (Durbin & Koopman 2012, §10.7).

The gradient is exact for this approximation. The mode comes from a node with no gradient
(:class:`LaplaceMode`); its dependence on the parameters enters through terms that count in
the derivative only (:data:`~pymc_dlm.laplace.stop_gradient.gradient_only`: implicit
differentiation at the mode, :math:`d\hat s/d\psi = H^{-1}\partial_\psi \nabla_s \log p`):

* for the state model's parameters, :math:`c^\top d\hat s/d\psi` is the derivative of
  :math:`c^\top E_{g,\psi}[s \mid y^*]` at fixed :math:`y^*, A`, and
  :math:`c^\top A\, \nabla_{y^*}\log g_\psi(y^*) = \tfrac12[\log g_\psi(y^* + Ac) -
  \log g_\psi(y^* - Ac)]` exactly, since :math:`\log g_\psi` is quadratic in :math:`y^*`;
* for the family's parameter :math:`\alpha`, :math:`c^\top d\hat s/d\alpha =
  w^\top \partial_\alpha \ell'(\hat\eta)` with :math:`w = H^{-1}c`.

The three Gaussian log-likelihoods run as one batched node. Where neither the family's
parameter nor the offset depends on a model parameter (the Poisson and Bernoulli families,
the binomial with known trials, a fixed dispersion), :math:`y^*` and :math:`A` are constants
of the gradient, :math:`w` is not needed, and two suffice: :math:`\log g_\psi` is quadratic
in its data, so with :math:`u = Ac`

.. math::

    \log g_\psi(y^*) + \tfrac12\big[\log g_\psi(y^* + u) - \log g_\psi(y^* - u)\big]
    = -\tfrac13 \log g_\psi(y^* + 3u) + \tfrac43 \log g_\psi(y^* + \tfrac32 u)

for every :math:`\psi` (both sides are :math:`a + b + 0\cdot q` for
:math:`\log g_\psi(y^* + tu) = a + bt + qt^2`). In both routes the value
:math:`\log g(y^*)` comes from the mode search's last smoother run and the Gaussian
log-likelihoods count in the derivative only, so the compiled function runs them in the
kernels' gradient node alone (no forward pass for their value). The mode search runs on the
numba kernels from every backend: in numba's object mode in numba graphs, through a host
callback in JAX graphs (:mod:`pymc_dlm.laplace.jax_mode`), where JAX's own derivative of
the rest of the graph is the gradient above. The derivative in :math:`y^*`
(which moves with :math:`\alpha`) is :math:`\partial \log g/\partial y^*_t = -\ell'(\hat\eta_t)`
at the mode, given explicitly.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§10.6–10.7.
Kristensen, K. et al. (2016). TMB: automatic differentiation and Laplace approximation.
*J. Statistical Software* 70(5) (the gradient of a Laplace approximation by implicit
differentiation at the mode).
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply, Constant
from pytensor.graph.op import Op
from pytensor.graph.traversal import graph_inputs
from pytensor.tensor.random.type import RandomType

from pymc_dlm.compat import register_object_mode
from pymc_dlm.kalman.blas_threads import one_blas_thread
from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.fused.ops import fused_loglik
from pymc_dlm.laplace.jax_mode import register_when_jax_loads
from pymc_dlm.laplace.mode import ModeNotFound, posterior_mode
from pymc_dlm.laplace.mode_memory import ModeMemory
from pymc_dlm.laplace.stop_gradient import gradient_only, stop_gradient
from pymc_dlm.model.checks import known_value
from pymc_dlm.model.family import PYTENSOR, family_kind
from pymc_dlm.model.notation import SystemMatrices
from pymc_dlm.model.priors import diffuse_states

__all__ = ["LaplaceMode", "laplace_loglik"]

_MODE_INPUTS = ("F", "G", "W_sqrt", "m0", "C0_sqrt")


class LaplaceMode(Op):
    r"""The mode of the signal and the terms of the exact gradient; no derivative of its own.

    Inputs ``F, G, W_sqrt, m0, C0_sqrt, y, offset, param``; outputs (each like ``y``): the
    mode :math:`\hat s`, the slope :math:`c`, :math:`w = H^{-1}c` (zero without ``solve``),
    :math:`y^*`, :math:`A` (:class:`~pymc_dlm.laplace.mode.Mode`), and the approximating
    model's log-likelihood :math:`\log g(y^*)` (batch shape). Where the search fails every
    output is NaN. A call at the inputs of one of the last searches returns its outputs
    again; otherwise the search starts from the mode found at the nearest recorded inputs
    (:class:`~pymc_dlm.laplace.mode_memory.ModeMemory`), and a failed warm start is retried
    from the data.
    """

    __props__ = ("family_name", "time_varying", "diffuse", "solve")

    def __init__(self, family_name, time_varying, diffuse, solve=True):
        self.family_name = family_name
        self.time_varying = frozenset(time_varying)
        self.diffuse = tuple(bool(b) for b in diffuse)
        self.solve = bool(solve)
        self._memory = ModeMemory()

    def make_node(self, *inputs):
        """Five outputs of the type of ``y`` (input 5) and one of its batch shape."""
        inputs = [pt.as_tensor_variable(x) for x in inputs]
        y = inputs[5]
        batch = pt.tensor(dtype=y.type.dtype, shape=y.type.shape[:-1])
        return Apply(self, inputs, [*(y.type() for _ in range(5)), batch.type()])

    def perform(self, node, inputs, outputs):
        """Search the mode (warm start first); NaN outputs when it fails."""
        *matrices, y, offset, param = inputs
        values = dict(zip(_MODE_INPUTS, (np.asarray(m, dtype="float64") for m in matrices)))
        y = np.asarray(y, dtype="float64")
        offset = np.broadcast_to(offset, y.shape)
        shapes = (y.shape,) * 5 + (y.shape[:-1],)
        key = ModeMemory.key(matrices, param)
        fields, start = self._memory.recall(key, y, offset)
        if fields is None:
            fields = self._search(values, y, offset, param, start)
            if fields is not None:
                self._memory.remember(key, y, offset, fields)
        if fields is None:
            for out, shape in zip(outputs, shapes):
                out[0] = np.full(shape, np.nan)
            return
        for out, value, shape in zip(outputs, fields, shapes):
            out[0] = np.array(np.broadcast_to(value, shape), dtype="float64", order="C")

    def _search(self, values, y, offset, param, start):
        """The outputs of a search from ``start``, else from the data; None if both fail."""
        family = family_kind(self.family_name)
        with one_blas_thread():  # one limit for the search's smoother runs
            for first in (start, None) if start is not None else (None,):
                try:
                    found = posterior_mode(
                        values, y, family, offset, param, time_varying=self.time_varying,
                        diffuse=np.asarray(self.diffuse, dtype=bool), start=first,
                        states=False, solve=self.solve,
                    )  # fmt: skip
                except (ModeNotFound, np.linalg.LinAlgError, FloatingPointError):
                    continue
                return (found.signal, found.slope, found.solve, found.pseudo,
                        found.noise, np.asarray(found.loglik_gaussian))  # fmt: skip
        return None

    def connection_pattern(self, node):
        """No output depends differentiably on an input (see the module docstring)."""
        return [[False] * len(node.outputs) for _ in node.inputs]

    def L_op(self, inputs, outputs, output_grads):
        """Disconnected: the graph of :func:`laplace_loglik` carries the derivative."""
        return [disconnected_type() for _ in inputs]


# On purpose in numba's object mode: the search calls the filter's own compiled kernels.
register_object_mode(LaplaceMode)
register_when_jax_loads(LaplaceMode)


def laplace_loglik(system, y, family, offset, param):
    r"""The Laplace log-likelihood of ``y`` (..., T), one series, as a graph (module doc).

    ``system`` is the state model (its ``obs`` is ignored); ``family`` a
    :class:`~pymc_dlm.model.family.Family`; ``offset`` broadcastable to ``y``; ``param`` the
    family's parameter (a tensor: trials or dispersion; 0 for the Poisson). Returns the
    log-likelihood per series (batch shape), ``-inf`` where the mode search fails.
    """
    y = pt.as_tensor_variable(y)
    offset = pt.broadcast_to(pt.as_tensor_variable(offset, dtype="float64"), y.shape)
    param = pt.as_tensor_variable(param, dtype="float64")
    fixed = _free_of_parameters(offset, param)
    op = LaplaceMode(family.name, system.time_varying, _diffuse_mask(system), solve=not fixed)
    signal, slope, solve, pseudo_c, noise_c, gauss_c = op(
        system.F, system.G, system.W_sqrt, system.m0, system.C0_sqrt, y, offset, param
    )
    found = pt.all(pt.isfinite(signal), axis=-1)
    keep = found[..., None]
    signal, slope, solve = (pt.switch(keep, x, 0.0) for x in (signal, slope, solve))
    pseudo_c, noise_c = pt.switch(keep, pseudo_c, 0.0), pt.switch(keep, noise_c, 1.0)
    observed, y0 = _observed(y)
    eta = signal + offset
    d = family.derivatives(y0, eta, param, PYTENSOR)
    noise = pt.switch(observed, -1.0 / d.second, 1.0)
    # Missing steps: NaN only where it marks a missing value for the filter (stacked_y);
    # elsewhere 0, since a reverse-mode 0 * NaN would poison the gradient (JAX).
    pseudo = pt.switch(observed, signal + noise * d.first, 0.0)
    exact = family.logpdf(y0, eta, param, PYTENSOR)
    resid = pt.switch(observed, pseudo - signal, 0.0)
    approx_obs = -0.5 * (pt.log(2.0 * np.pi * noise) + resid**2 / noise)
    direct = pt.sum(pt.switch(observed, exact - approx_obs, 0.0), axis=-1)
    shift = noise_c * slope
    sd_c = pt.sqrt(noise_c)
    if fixed:
        # y*, A constants of the gradient: two log-likelihoods (module doc), the value from
        # the mode search.
        logliks = _gaussian_logliks(
            system, [pseudo_c + 3.0 * shift, pseudo_c + 1.5 * shift], [sd_c, sd_c]
        )
        combined = (-logliks[0] + 4.0 * logliks[1]) / 3.0
        loglik = direct + pt.switch(found, gauss_c, 0.0) + gradient_only(combined)
        return pt.switch(found, loglik, -np.inf)
    # The approximating model's log-likelihood at y* (derivative in A by the filter, in y* by
    # the mode's identity), and at y* +- A c (fixed inputs: the implicit term).
    logliks = _gaussian_logliks(
        system, [pseudo_c, pseudo_c + shift, pseudo_c - shift], [pt.sqrt(noise), sd_c, sd_c]
    )
    pseudo_known = pt.switch(observed, pseudo_c, 0.0)
    d_pseudo = pt.switch(observed, -d.first, 0.0)
    y_star_term = pt.sum(
        pt.switch(observed, stop_gradient(d_pseudo) * (pseudo - pseudo_known), 0.0), axis=-1
    )
    implicit = 0.5 * (logliks[1] - logliks[2]) + pt.sum(
        pt.switch(observed, solve * d.first, 0.0), axis=-1
    )
    # The value of log g(y*) from the mode search, as in the fixed route: the three
    # log-likelihoods count in the derivative only.
    derivative = gradient_only(logliks[0] + y_star_term + implicit)
    loglik = direct + pt.switch(found, gauss_c, 0.0) + derivative
    return pt.switch(found, loglik, -np.inf)


def _gaussian_logliks(system, ys, sds):
    """The state model's Gaussian log-likelihoods of the data ``ys`` with noise sds ``sds``.

    One batched node: the leading axis of the result runs over ``ys``.
    """
    stacked_y = pt.stack(ys)[..., None]
    shape = ys[0].shape
    stacked_sd = pt.stack([pt.broadcast_to(sd, shape) for sd in sds])
    gauss_system = SystemMatrices(
        system.F, system.G, system.W_sqrt, stacked_sd[..., None], system.m0, system.C0_sqrt,
        frozenset(system.time_varying) | {"obs"}, True, system.diffuse, None, None,
    )  # fmt: skip
    loglik = fused_loglik(gauss_system, stacked_y)
    if loglik is None:
        loglik = filter_scan(gauss_system, stacked_y).loglik
    return loglik


def _free_of_parameters(*variables):
    """Whether the variables are functions of constants and data only.

    A model parameter enters a graph through a root that is neither a constant nor a shared
    data variable (a value variable), or through a random variable, whose generator is a
    shared variable of random type.
    """
    for var in graph_inputs(variables):
        if isinstance(var, Constant):
            continue
        if not isinstance(var, SharedVariable) or isinstance(var.type, RandomType):
            return False
    return True


def _observed(y):
    """The mask of observed steps and ``y`` with 0 at the missing ones.

    For data known when the graph is built (observed data), both are constants: rewrites
    may otherwise see through ``switch(observed, y, 0)`` to the NaN of ``y``, harmless in
    the value but a 0 * NaN in a reverse-mode derivative (JAX's autodiff of the graph).
    """
    known = known_value(y)
    if known is None:
        observed = ~pt.isnan(y)
        return observed, pt.switch(observed, y, 0.0)
    observed = ~np.isnan(known)
    return pt.as_tensor(observed), pt.as_tensor(np.where(observed, known, 0.0))


def _diffuse_mask(system):
    return tuple(bool(v) for v in diffuse_states(system.diffuse, system.G.type.shape[-1]))
