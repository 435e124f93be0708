r"""The latent state path of a DLM as a PyMC variable (``LatentStates``).

:func:`LatentStates` puts the DLM's state equation and initial prior on a path
:math:`\theta_{1:T}` (T, n) inside a PyMC model, so that any PyMC likelihood can sit on
:math:`F_t\theta_t` (Student-t, zero-inflated, Gamma, ...):

.. math::

    \theta_0 = m_0 + L_0 z_0 + A\delta, \qquad \theta_t = G_t\theta_{t-1} + L_{W,t} z_t,

with :math:`C_0 = L_0 L_0^\top` (the proper part), :math:`A` the selection of the diffuse
states and :math:`\delta` flat (improper), :math:`W_t = L_{W,t} L_{W,t}^\top`.

* **Non-centred** (the default): the free variables are the standard normal innovations
  :math:`z_0` (one per column of :math:`L_0`), :math:`z_{1:T}` (one per column of
  :math:`L_W`: a singular W has fewer, and its null directions move deterministically) and
  the flat :math:`\delta`; the path is a ``pm.Deterministic`` computed by a scan. Exact for
  any W, C0, and diffuse and stationary starts.
* **Centred** (``centered=True``): the path itself is the free variable, with the log-density
  :math:`\log N(\theta_1; a_1, R_1) + \sum_{t \ge 2} \log N(\theta_t; G_t\theta_{t-1}, W_t)`,
  :math:`a_1 = G_1 m_0`, :math:`R_1 = G_1 C_0 G_1^\top + W_1`. It needs a proper prior and W
  (and :math:`R_1`) of full rank; a fixed singular one is refused when the variable is built.

References
----------
Papaspiliopoulos, O., Roberts, G. O. and Sköld, M. (2007). A general framework for the
parametrization of hierarchical models. *Statistical Science* 22, 59–73 (centred and
non-centred parametrisations).
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, §4.
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.linalg import solve_triangular

from pymc_dlm.kalman.linalg import matvec, mT
from pymc_dlm.kalman.scanargs import time_first
from pymc_dlm.model.checks import fixed_value
from pymc_dlm.model.statespace import as_statespace

__all__ = ["LatentStates"]


def _steps(ss, steps):
    if ss.n_time is not None:
        if steps is not None and steps != ss.n_time:
            raise ValueError(
                f"steps must match the model's time-varying matrices ({ss.n_time} steps), "
                f"got {steps}"
            )
        return ss.n_time
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer (the length T), got {steps!r}")
    return int(steps)


def _at(x, tv):
    """The matrix as a sequence over time (T, ...) or a fixed matrix."""
    return time_first(x, 2) if tv else x


def LatentStates(name, model, *, steps=None, dims=None, centered=False):  # noqa: N802
    r"""The state path :math:`\theta_{1:T}` of ``model``, a variable of the model in context.

    Parameters
    ----------
    name : str
        Name of the path variable, shape (T, n).
    model : Component or StateSpace
        The state model (F is not used: put any likelihood on ``F θ`` yourself).
    steps : int, optional
        Number of time steps T, unless a time-varying matrix gives it.
    dims : tuple of str, optional
        Dims of the path, (time, state).
    centered : bool
        The path itself as the free variable (see the module docstring); default
        non-centred (standard normal innovations).

    Returns
    -------
    TensorVariable
        The path (T, n): a ``pm.Deterministic`` of the innovations (non-centred) or the free
        variable itself (centred).
    """
    ss = as_statespace(model)
    if ss.batch_ndim:
        raise ValueError(f"LatentStates takes a model without batch axes, got {ss.batch_ndim}")
    if not isinstance(centered, bool):
        raise TypeError(f"centered must be True or False, got {centered!r}")
    T = _steps(ss, steps)
    if centered:
        return _centered(name, ss, T, dims)
    n = ss.n_state
    tv = ss.time_varying
    k = ss.W_sqrt.type.shape[-1]
    c = ss.C0_sqrt.type.shape[-1]
    z0 = pm.Normal(f"{name}_z0", 0.0, 1.0, shape=(c,))
    zs = pm.Normal(f"{name}_innovations", 0.0, 1.0, shape=(T, k))
    theta0 = ss.m0 + matvec(ss.C0_sqrt, z0)
    if ss.diffuse.any():
        d = int(ss.diffuse.sum())
        delta = pm.Flat(f"{name}_diffuse", shape=(d,))
        theta0 = theta0 + matvec(pt.as_tensor_variable(ss.diffuse_selection()), delta)
    G = _at(ss.G, "G" in tv)
    W = _at(ss.W_sqrt, "W" in tv)
    seqs = [zs] + [x for x, key in ((G, "G"), (W, "W")) if key in tv]
    fixed = [x for x, key in ((G, "G"), (W, "W")) if key not in tv]

    def step(z, *args):
        args = list(args)
        G_t = args.pop(0) if "G" in tv else None
        W_t = args.pop(0) if "W" in tv else None
        theta = args.pop(0)
        G_t = args.pop(0) if G_t is None else G_t
        W_t = args.pop(0) if W_t is None else W_t
        return pt.specify_shape(matvec(G_t, theta) + matvec(W_t, z), (n,))

    path = pytensor.scan(
        step,
        sequences=seqs,
        outputs_info=[pt.specify_shape(theta0, (n,))],
        non_sequences=fixed,
        strict=True,
        return_updates=False,
    )
    out = pm.Deterministic(name, path, dims=dims)
    free = [f"{name}_z0", f"{name}_innovations"] + (
        [f"{name}_diffuse"] if ss.diffuse.any() else []
    )
    out.tag.dlm_latent = dict(
        statespace=ss,
        steps=T,
        free=free,
        z0=f"{name}_z0",
        innovations=f"{name}_innovations",
        diffuse=f"{name}_diffuse",
    )
    return out


def _chol(cov, label):
    value = fixed_value(cov)
    if value is not None and np.linalg.eigvalsh(value).min(initial=np.inf) <= 0:
        raise ValueError(
            f"LatentStates(centered=True) needs {label} of full rank, got a singular one; "
            "use the non-centred default, which is exact for a singular W"
        )
    return pt.linalg.cholesky(cov, lower=True)


def _gauss(e, L):
    """Log-density N(e; 0, L L') row by row (e (..., n), L (..., n, n) lower)."""
    white = solve_triangular(L, e[..., None], lower=True)[..., 0]
    logdet = pt.sum(pt.log(pt.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    n = e.shape[-1]
    return -0.5 * pt.sum(white**2, axis=-1) - logdet - 0.5 * n * np.log(2 * np.pi)


def _centered(name, ss, T, dims):
    if ss.diffuse.any():
        raise ValueError(
            "LatentStates(centered=True) needs a proper prior on every state, got diffuse "
            f"states {list(np.asarray(ss.state_labels)[ss.diffuse])}; use the non-centred "
            "default, which takes diffuse starts"
        )
    tv = ss.time_varying
    G, W_sqrt = _at(ss.G, "G" in tv), _at(ss.W_sqrt, "W" in tv)
    W = pt.matmul(W_sqrt, mT(W_sqrt))
    G1 = G[0] if "G" in tv else G
    W1 = W[0] if "W" in tv else W
    C0 = pt.matmul(ss.C0_sqrt, mT(ss.C0_sqrt))
    L1 = _chol(pt.matmul(pt.matmul(G1, C0), mT(G1)) + W1, "R_1 = G C0 G' + W")
    LW = _chol(W, "W")
    a1 = matvec(G1, ss.m0)

    def logp(value, *_):
        first = _gauss(value[0] - a1, L1)
        G_rest = G[1:] if "G" in tv else G
        pred = matvec(G_rest, value[:-1])
        L_rest = LW[1:] if "W" in tv else LW
        return first + pt.sum(_gauss(value[1:] - pred, L_rest))

    def support_point(rv, size, *_):
        return pt.zeros((T, ss.n_state))

    return pm.CustomDist(
        name, logp=logp, support_point=support_point, shape=(T, ss.n_state), dims=dims
    )
