r"""The moments of ``kalman_filter`` for discounted models, by the numba kernels.

:func:`kernel_moments` lays the numeric system out as the discounted kernel's ten inputs
(:func:`~pymc_dlm.kalman.fused.discounted_ops.discounted_inputs`, a small graph run on the
Python linker, compiled once per structure), runs
:func:`~pymc_dlm.kalman.fused.discounted_moments.discounted_moments_into` (the kernels' one
forward pass with its accuracy guard: square-root steps where a proper prior is vague
against the noise) and forms the outputs of
:func:`~pymc_dlm.postprocess.discount_filter.discounted_moments` from its records, in numpy.

With a learned variance the kernel runs at unit scale and records the carry
:math:`(n_{t-1}, d_{t-1})` entering every step; the carry after the last step is that
step's update (West & Harrison 1997, §4.6, §10.8): :math:`n_T = \delta_V n_{T-1} + 1`,
:math:`d_T = \delta_V d_{T-1} + e_T^2 / Q_T` with :math:`Q_T = F_T R_T F_T^\top + 1` for an
observed, non-diffuse last step, else the discount alone. The noise of the smoother,
:math:`W_t = D \circ (G_t C_{t-1} G_t^\top) + L_W L_W^\top`, is formed from the recorded
:math:`C_{t-1}` (:func:`noise_factors`).

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed.,
§4.6, §6.3, §10.8.
"""

import functools

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode

from pymc_dlm.kalman.constants import OK
from pymc_dlm.kalman.discount import LearnedScale
from pymc_dlm.kalman.fused.canonical import canonical_matrix, decorrelate, observation_cov
from pymc_dlm.kalman.fused.discounted_kernel_nodes import diffuse_factor
from pymc_dlm.kalman.fused.discounted_moments import discounted_moments_into
from pymc_dlm.kalman.fused.discounted_ops import discounted_inputs
from pymc_dlm.kalman.fused.layout import kernel_array
from pymc_dlm.kalman.fused.moments import moment_outputs
from pymc_dlm.kalman.fused.observed import one_step_moments, seen_diffuse
from pymc_dlm.kalman.fused.records import DiscountInputs, Inputs
from pymc_dlm.model.notation import SystemMatrices
from pymc_dlm.model.priors import diffuse_matrix, psd_factor

__all__ = [
    "kernel_moments",
    "kernel_outputs",
    "kernel_structures",
    "learned_path",
    "model_cov",
    "noise_factors",
    "run_kernel",
    "symbolic_system",
]

#: The layout graph is small: the Python linker runs it with nothing to compile.
LAYOUT_MODE = Mode(linker="py", optimizer="fast_run")


def kernel_moments(key, values, y):
    """The filter's outputs by the kernel, or ``None`` when a member needs the scan.

    ``key``: the structure (``discount_filter._Structure``); ``values``: the numeric
    parameters in the order of ``discount_filter.discounted_moments``; ``y`` (..., T, p).
    ``None`` when a member's log-likelihood is -inf (the scan then gives the moments up to
    the end). A full observation covariance is decorrelated in front of the kernel (the
    log-likelihood gains each step's log-Jacobian; the forecast moments are the model's).
    """
    layout = _layout(key)
    if layout is None:
        return None
    *canon, F, V, log_jac, batch = layout(*values, y)
    canon = [kernel_array(c) for c in canon]
    batch = tuple(int(b) for b in batch)
    mask = key.diffuse if any(key.diffuse) else ()
    inp, dinp = kernel_structures(canon, mask)
    out, carry = run_kernel(inp, dinp, key.learned)
    if np.any(out.status != OK):
        return None
    res = kernel_outputs(inp, dinp, out, carry, key.learned, (F, V))
    res["loglik"] = res["loglik"] + log_jac
    if key.smooth:
        res["noise_factor"] = noise_factors(inp, dinp, out.fC)
    return {k: np.reshape(v, (*batch, *np.shape(v)[1:])) for k, v in res.items()}


def kernel_structures(canon, mask):
    """The kernel's :class:`Inputs` and :class:`DiscountInputs` from its ten canonical arrays.

    ``mask``: the diffuse states (boolean, n), or ``()`` without any.
    """
    inp = Inputs(*canon[:7], Pinf_sqrt=kernel_array(diffuse_factor(mask)))
    return inp, DiscountInputs(*canon[7:10])


def run_kernel(inp, dinp, learned):
    """Run the forward pass on every member: ``(moments, (ns, ds))``.

    ``moments`` a :class:`~pymc_dlm.kalman.fused.records.MomentOutputs` (no smoothed part),
    ``ns``, ``ds`` (B, T) the learned variance's carry entering every step.
    """
    B, T, _ = inp.y.shape
    n, d = inp.G.shape[-1], inp.Pinf_sqrt.shape[2]
    out = moment_outputs(B, T, n, d, smooth=False)
    ns, ds = np.empty((B, T)), np.empty((B, T))
    discounted_moments_into(inp, dinp, learned, out, ns, ds)
    return out, (ns, ds)


def symbolic_system(key):
    """Symbolic inputs of one structure: ``(parameters, y, system, learned)``.

    ``parameters`` in the order of ``discount_filter.discounted_moments``' numeric values,
    ``system`` their :class:`~pymc_dlm.model.notation.SystemMatrices`, ``learned`` a
    :class:`~pymc_dlm.kalman.discount.LearnedScale` or None.
    """
    inputs = [pt.tensor(shape=shape, dtype="float64") for shape in key.shapes]
    y = pt.tensor(shape=key.y_shape, dtype="float64")
    F, G, W_sqrt, obs, m0, C0_sqrt, discount, n0, S0, dV = inputs
    n = len(key.diffuse)
    blocks = np.frombuffer(key.blocks, dtype="float64").reshape(n, n)
    system = SystemMatrices(
        F, G, W_sqrt, obs, m0, C0_sqrt, key.time_varying, key.obs_diag,
        diffuse_matrix(key.diffuse), discount, blocks,
    )  # fmt: skip
    learned = LearnedScale(n0, S0, dV) if key.learned else None
    return inputs, y, system, learned


@functools.lru_cache(maxsize=32)
def _layout(key):
    """The compiled layout of one structure: numeric parameters and y to the ten inputs."""
    inputs, y, model, learned = symbolic_system(key)
    system, log_jac = model, pt.zeros((), dtype="float64")
    if not key.obs_diag:  # decorrelated, as for the log-density (canonical.decorrelate)
        system, y_kernel, log_jac = decorrelate(model, y)
    else:
        y_kernel = y
    found = discounted_inputs(system, y_kernel, learned)
    if found is None:
        return None
    canon, _, batch = found
    tv = key.time_varying
    F = canonical_matrix(model.F, 2, batch, "F" in tv)
    V = canonical_matrix(model_cov(model, learned), 2, batch, "obs" in tv and not learned)
    log_jac = pt.broadcast_to(log_jac, batch).reshape((-1,))
    shape = pt.stack([pt.as_tensor(b, dtype="int64") for b in batch]) if batch else []
    shape = pt.as_tensor(shape, dtype="int64")
    outputs = [*canon, F, V, log_jac, shape]
    return pytensor.function([*inputs, y], outputs, mode=LAYOUT_MODE, on_unused_input="ignore")


def model_cov(system, learned=None):
    """The observation covariance V (..., [T,] p, p) of ``system`` (the identity if learned)."""
    if learned is not None:
        return pt.eye(system.F.shape[-2], dtype="float64")
    return observation_cov(system)


def kernel_outputs(inp, dinp, out, carry, learned, observation=None):
    """The outputs of one run, member axis first (the module docstring's formulas).

    ``observation``: the model's ``(F, V)`` (1 or B, 1 or T, p, n) and (..., p, p) for the
    forecast moments when the kernel ran on decorrelated data; by default the kernel's.
    """
    a, R, m, C = out.pa, out.pR, out.fm, out.fC
    F = inp.F if observation is None else observation[0]
    f, FRF = one_step_moments(F, a, R, 0.0)
    res = {"loglik": out.ll_t.sum(-1)}
    if learned:
        n, S, n_prev, S_prev = learned_path(inp, dinp, out, carry)
        dV = np.broadcast_to(dinp.scale[:, 2], (a.shape[0],))
        res.update(
            predicted_cov=R * S_prev[..., None, None],
            filtered_cov=C * S[..., None, None],
            forecast_cov=(FRF + 1.0) * S_prev[..., None, None],
            dof=n,
            scale=S,
            forecast_dof=dV[:, None] * n_prev,
        )
    else:
        V = inp.obs_sd[..., :, None] ** 2 * np.eye(inp.y.shape[2])
        V = V if observation is None else observation[1]
        res.update(predicted_cov=R, filtered_cov=C, forecast_cov=FRF + V)
    res.update(predicted_mean=a, filtered_mean=m, forecast_mean=f)
    if inp.Pinf_sqrt.shape[2]:
        Bp, Bf = out.pPinf_f, out.fPinf_f
        res["filtered_diffuse_cov"] = np.matmul(Bf, np.swapaxes(Bf, -1, -2))
        res["predicted_diffuse_cov"] = np.matmul(Bp, np.swapaxes(Bp, -1, -2))
    return res


def learned_path(inp, dinp, out, carry):
    """``(n_t, S_t, n_{t-1}, S_{t-1})`` (B, T) of a learned variance from the recorded carry.

    ``out`` and ``carry`` as returned by :func:`run_kernel` (the module doc's formulas).
    """
    ns, ds = carry
    B, T, _ = inp.y.shape
    dV = np.broadcast_to(dinp.scale[:, 2], (B,))
    last = T - 1
    y = inp.y[:, last, 0]
    F = np.broadcast_to(inp.F, (B, T, *inp.F.shape[2:]))[:, last]
    f, Q = one_step_moments(F, out.pa[:, last], out.pR[:, last], 1.0)
    e, Q = y - f[:, 0], Q[:, 0, 0]
    ordinary = ~np.isnan(y)
    if inp.Pinf_sqrt.shape[2]:  # an informative diffuse last step discounts only
        ordinary &= ~seen_diffuse(F, out.pPinf_f[:, last])
    n_last = dV * ns[:, last] + ordinary
    d_last = dV * ds[:, last] + np.where(ordinary, e * e / np.where(ordinary, Q, 1.0), 0.0)
    n = np.concatenate([ns[:, 1:], n_last[:, None]], axis=1)
    d = np.concatenate([ds[:, 1:], d_last[:, None]], axis=1)
    return n, d / n, ns, ds / ns


def noise_factors(inp, dinp, C):
    r"""Factors :math:`L_t` (B, T, n, n), :math:`L_t L_t^\top = W_t`, of the discount's noise.

    :math:`W_t = D \circ (G_t C_{t-1} G_t^\top) + L_W L_W^\top` from the kernel's inputs
    (unit scale with a learned variance) and its filtered covariances ``C`` (B, T, n, n),
    :math:`C_0` the start (the finite parts with diffuse states); by ``eigh``, for the
    smoother at fixed values.
    """
    B, T, _ = inp.y.shape
    n = inp.G.shape[-1]
    start = np.broadcast_to(inp.C0[:, None], (B, 1, n, n))
    C_prev = np.concatenate([start, C[:, :-1]], axis=1)
    G = inp.G
    P = np.matmul(np.matmul(G, C_prev), np.swapaxes(G, -1, -2))
    factor = (1.0 / dinp.discount - 1.0)[:, None, :, None] * dinp.blocks
    L = inp.W_sqrt
    W = factor * P + np.matmul(L, np.swapaxes(L, -1, -2))
    return psd_factor(0.5 * (W + np.swapaxes(W, -1, -2)))
