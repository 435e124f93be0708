r"""The filter and smoother at fixed values: the numba kernels, the scans as the fallback.

:func:`~pymc_dlm.kalman_filter` and :func:`~pymc_dlm.kalman_smoother` evaluate the model's
matrices to numpy arrays (:func:`numeric_system`) and run the kernels of
:mod:`pymc_dlm.kalman.fused.moments`: the forward pass of the state draws, recording the
predicted and filtered moments, and the backward pass of
:mod:`pymc_dlm.kalman.fused.backward` in its smoothing mode. The kernels are compiled once
per machine and cached on disk by numba. What depends on the model structure is a small
pytensor graph that lays the numbers out for the kernels
(:func:`~pymc_dlm.kalman.fused.canonical.canonical_inputs`, with the exact diffuse start of step 1
and, for a full observation covariance, the decorrelation the log-likelihood uses); it runs
on the Python linker, compiled once per structure in well under a second and kept in a small
LRU cache, so new parameter values, new data or a new series length compile nothing.

The scans of :mod:`pymc_dlm.kalman` (the square-root filter and smoother, the definition)
run instead, compiled for the structure with :data:`MODE`, when a member's moments need
them: a forecast variance that is not positive, diffuse states that the smoother cannot pin
down through the next state (:math:`G_{t+1} B_t` without full column rank). A proper prior
so vague against the noise that the covariance form would cancel digits (the limit
:data:`~pymc_dlm.kalman.constants.CANCELLATION_LIMIT`) stays with the kernels: their forward
pass takes square-root steps there, as the log-likelihood's does.

The structure (:func:`structure_key`) is everything the graphs depend on besides the
numbers: for each input its number of axes and the static lengths the recursions need (the
core matrix axes, and every axis of length 1, which broadcasts), the declared time-varying
matrices, whether the observation noise is diagonal, the diffuse mask, whether to smooth,
and the scans' backend :data:`MODE`. The time axis and batch axes of length above 1 are left
free.

Measured with ``benchmarks/filter_speed.py`` (monthly CO2, local linear trend +
``Seasonal(12)``, 13 states, T = 526 with 5 missing, exact diffuse start; 2-core machine
shared with other jobs; ``benchmarks/results/2026-12-05_filter_speed_*``), median per call,
smoother / filter: 12.1 / 9.6 ms against statsmodels' 25.6 / 19.6 ms in the same run; 37.5
against 26.5 ms when the model is rebuilt for every call; first call of a structure 1.4 s.
The scans took 130 / 54 ms per call (C backend, 2026-12-04).

BLAS/LAPACK run single-threaded during a call (:mod:`pymc_dlm.kalman.blas_threads`).
"""

import threading
import warnings
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode

from pymc_dlm.kalman.blas_threads import one_blas_thread
from pymc_dlm.kalman.constants import OK
from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.fused.canonical import canonical_inputs, canonical_matrix, decorrelate
from pymc_dlm.kalman.fused.layout import kernel_array
from pymc_dlm.kalman.fused.moments import moment_outputs, moments_into
from pymc_dlm.kalman.fused.observed import one_step_moments
from pymc_dlm.kalman.fused.records import Inputs
from pymc_dlm.kalman.linalg import matvec, mT, outer_factor, stacked_eigh
from pymc_dlm.kalman.smoother import smoother_scan
from pymc_dlm.model.checks import fixed_values
from pymc_dlm.model.notation import PARAMETERS, SystemMatrices, core_ndims
from pymc_dlm.model.priors import diffuse_matrix

__all__ = [
    "CacheInfo",
    "cache_info",
    "clear_cache",
    "kernel_inputs",
    "numeric_system",
    "run",
    "structure_key",
]

#: Run the kernels where they apply (module docstring); ``False`` runs the scans always.
KERNELS = True

#: Backend of the scans (the fallback), (linker, rewrites) (see the module docstring).
BACKEND = ("cvm", "fast_run")

#: The pytensor mode the scans are compiled with; set another to change their backend (it
#: is part of the key).
MODE = Mode(*BACKEND)

#: The kernels' inputs graph is small: the Python linker runs it with nothing to compile (as
#: for the state draws, :mod:`pymc_dlm.postprocess.fused_states`).
INPUTS_MODE = Mode(linker="py", optimizer="fast_run")

#: The inputs' graph for callers that run it many times with new values (the mode search of
#: :mod:`pymc_dlm.laplace.mode`, once per log-density evaluation): compiled once.
FAST_INPUTS_MODE = Mode(linker="cvm", optimizer="fast_run")


#: Number of structures kept compiled (least recently used dropped first).
CACHE_SIZE = 32

#: The numeric inputs of a cached function, in order (the data ``y`` last).
INPUT_NAMES = ("F", "G", "W_sqrt", "obs", "m0", "C0_sqrt", "y")

_CACHE = OrderedDict()
_LOCK = threading.RLock()
_COUNTS = {"hits": 0, "misses": 0}


class CacheInfo(NamedTuple):
    """Cache statistics: calls served by a compiled function, compilations, entries held."""

    hits: int
    misses: int
    size: int


def cache_info():
    """Statistics of the compiled-function cache (like :func:`functools.lru_cache`)."""
    with _LOCK:
        return CacheInfo(_COUNTS["hits"], _COUNTS["misses"], len(_CACHE))


def clear_cache():
    """Drop every compiled function and reset the statistics."""
    with _LOCK:
        _CACHE.clear()
        _COUNTS.update(hits=0, misses=0)


def numeric_system(ss, obs):
    """The model's matrices and the observation noise as numpy arrays, by name.

    Parameters
    ----------
    ss : StateSpace
        A model whose matrices depend on constants and shared data only (checked by the
        caller).
    obs : TensorVariable
        Observation standard deviations or covariance, as returned by
        :func:`~pymc_dlm.model.observation.observation_noise`.

    Returns
    -------
    dict of str to numpy.ndarray
        ``F, G, W_sqrt, obs, m0, C0_sqrt`` (float64), shared data at their current values.
    """
    values = fixed_values([ss.F, ss.G, ss.W_sqrt, obs, ss.m0, ss.C0_sqrt])
    return dict(zip(INPUT_NAMES, values))


def _core_ndim(name, obs_diag):
    """Number of trailing (matrix) axes whose lengths are part of the structure."""
    ranks = dict(zip(PARAMETERS, core_ndims(frozenset(), obs_diag)))
    return ranks.get(name, 0)


def _static_shape(x, core):
    """Static shape of an input: core lengths fixed, other axes free unless of length 1."""
    lead = x.ndim - core
    return tuple(s if i >= lead or s == 1 else None for i, s in enumerate(x.shape))


def structure_key(values, *, time_varying, obs_diag, diffuse, smooth):
    """The cache key: everything the compiled function depends on except the numbers.

    ``values`` maps the names of :data:`INPUT_NAMES` to numpy arrays; ``diffuse`` is the
    boolean mask of diffuse states. The backend :data:`MODE` in use is part of the key.
    """
    shapes = tuple(
        (name, values[name].dtype.str, _static_shape(values[name], _core_ndim(name, obs_diag)))
        for name in INPUT_NAMES
    )
    return (
        shapes,
        tuple(sorted(time_varying)),
        bool(obs_diag),
        tuple(bool(b) for b in np.asarray(diffuse)),
        bool(smooth),
        MODE,
    )


def _system(x, tv, obs_diag, diffuse):
    """The :class:`SystemMatrices` of the symbolic inputs ``x`` of one structure."""
    matrices = [x[name] for name in PARAMETERS]
    return SystemMatrices(*matrices, tv, obs_diag, diffuse_matrix(np.array(diffuse, dtype=bool)))


def _moments(x, tv, obs_diag, diffuse, smooth):
    """The filter's (and smoother's) outputs, by name, as graphs of the inputs ``x``."""
    system = _system(x, tv, obs_diag, diffuse)
    res = filter_scan(system, x["y"], return_all=True)
    F = x["F"] if "F" in tv else pt.shape_padaxis(x["F"], x["F"].ndim - 2)
    R = outer_factor(res.predicted_factor)
    obs = x["obs"]
    V = (obs**2)[..., None, :] * pt.eye(x["F"].type.shape[-2]) if obs_diag else obs
    V = pt.shape_padaxis(V, V.ndim - 2)
    outs = {
        "predicted_mean": res.predicted_mean,
        "predicted_cov": R,
        "forecast_mean": matvec(F, res.predicted_mean),
        "forecast_cov": pt.matmul(pt.matmul(F, R), mT(F)) + V,
        "filtered_mean": res.filtered_mean,
        "filtered_cov": outer_factor(res.filtered_factor),
        "loglik": res.loglik,
    }
    if res.filtered_diffuse is not None:
        outs["predicted_diffuse_cov"] = outer_factor(mT(res.predicted_diffuse))
        outs["filtered_diffuse_cov"] = outer_factor(mT(res.filtered_diffuse))
    if smooth:
        sm = smoother_scan(res, x["G"], x["W_sqrt"], tv)
        outs["smoothed_mean"] = sm.smoothed_mean
        outs["smoothed_cov"] = outer_factor(sm.smoothed_factor)
    return outs


def _build(key):
    """The scan route of one structure: compiled function and output names (the fallback)."""
    shapes, tv, obs_diag, diffuse, smooth, mode = key
    x = _symbols(shapes)
    outs = _moments(x, frozenset(tv), obs_diag, diffuse, smooth)
    inputs = [x[name] for name in INPUT_NAMES]
    outputs = stacked_eigh(list(outs.values()))
    with warnings.catch_warnings():
        # The C backend looks for a BLAS library to link and warns when there is none: the
        # matrices here are small, and the warning says nothing the user can act on.
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        fn = pytensor.function(inputs, outputs, mode=mode, on_unused_input="ignore")
    return fn, tuple(outs)


def _symbols(shapes):
    return {name: pt.tensor(name, dtype=np.dtype(dt).name, shape=sh) for name, dt, sh in shapes}


def _build_inputs(key, mode=None):
    """The kernels' inputs of one structure as a function of the numeric system and data.

    Outputs: the eight kernel inputs (:func:`~pymc_dlm.kalman.fused.canonical.canonical_inputs`,
    after :func:`~pymc_dlm.kalman.fused.canonical.decorrelate` for a full V), the model's own F and
    the observation covariance in the same layout (for the forecast moments), the diffuse
    start's log-Jacobian (batch shape) and the per-step log-Jacobian of the decorrelation
    (batch shape and T, or (1,) without one).
    """
    shapes, tv, obs_diag, diffuse, _, _ = key
    x = _symbols(shapes)
    tv = frozenset(tv)
    system = _system(x, tv, obs_diag, diffuse)
    y = x["y"]
    step_jac = pt.zeros((1,), dtype="float64")
    V = pt.vectorize(pt.diag, "(p)->(p,p)")(x["obs"] ** 2) if obs_diag else x["obs"]
    kernel_system, kernel_y = system, y
    if not obs_diag:
        kernel_system, kernel_y, step_jac = decorrelate(system, y, per_step=True)
    canon, batch, log_jac = canonical_inputs(kernel_system, kernel_y)
    log_jac = pt.broadcast_to(pt.as_tensor_variable(log_jac, dtype="float64"), batch)
    step_jac = pt.broadcast_to(step_jac, (*batch, step_jac.shape[-1]))
    outputs = [
        *canon,
        canonical_matrix(x["F"], 2, batch, "F" in tv),
        canonical_matrix(V, 2, batch, "obs" in tv),
        log_jac,
        step_jac,
    ]
    inputs = [x[name] for name in INPUT_NAMES]
    return pytensor.function(inputs, outputs, mode=mode or INPUTS_MODE, on_unused_input="ignore")


class _Entry:
    """One structure's compiled functions: the kernels' inputs, and the scans when needed."""

    def __init__(self, key):
        self.key = key
        self.inputs = _build_inputs(key)
        self._scan = None
        self._fast_inputs = None

    def fast_inputs(self):
        """The inputs' function compiled (C backend): for callers that run it many times."""
        if self._fast_inputs is None:
            with warnings.catch_warnings():  # as in _build: small matrices, no BLAS needed
                warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
                self._fast_inputs = _build_inputs(self.key, FAST_INPUTS_MODE)
        return self._fast_inputs

    def scan(self):
        if self._scan is None:
            self._scan = _build(self.key)
        return self._scan


def _compiled(key):
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            _COUNTS["hits"] += 1
            return _CACHE[key]
        _COUNTS["misses"] += 1
        entry = _Entry(key)
        _CACHE[key] = entry
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return entry


def _kernel_moments(entry, values, smooth):
    """The moments by the kernels, or ``None`` when a member needs the scans (module doc)."""
    *canon, F, V, log_jac, step_jac = entry.inputs(*(values[name] for name in INPUT_NAMES))
    canon = [kernel_array(c) for c in canon]
    batch = np.shape(log_jac)
    B, T, _ = canon[0].shape
    n, d = canon[2].shape[-1], canon[7].shape[-1]
    out = moment_outputs(B, T, n, d, smooth)
    moments_into(Inputs(*canon), out, 0, B)
    if np.any(out.status != OK):
        return None
    pa, pR = out.pa, out.pR
    f, Q = one_step_moments(F, pa, pR, V)
    res = {
        "predicted_mean": pa,
        "predicted_cov": pR,
        "forecast_mean": f,
        "forecast_cov": Q,
        "filtered_mean": out.fm,
        "filtered_cov": out.fC,
        "loglik": out.ll_t.sum(-1) + log_jac.reshape(-1) + _step_terms(step_jac, B),
    }
    if d:
        res["predicted_diffuse_cov"] = np.matmul(out.pPinf_f, np.swapaxes(out.pPinf_f, -1, -2))
        res["filtered_diffuse_cov"] = np.matmul(out.fPinf_f, np.swapaxes(out.fPinf_f, -1, -2))
    if smooth:
        res["smoothed_mean"], res["smoothed_cov"] = out.sm, out.sC
    return {k: np.reshape(v, (*batch, *np.shape(v)[1:])) for k, v in res.items()}


def kernel_inputs(values, y, *, time_varying, diffuse, function=None, fast=True):
    """The kernels' eight inputs and the diffuse start's log-Jacobian (diagonal noise).

    The layout :func:`run` feeds the kernels with, for callers that run the kernels many
    times on new data and noise with the same system (:mod:`pymc_dlm.kalman.pseudo_smoother`).
    ``function``: the compiled layout of this structure, as returned before in
    ``(canon, log_jac, function)``, which saves finding it again. ``fast``: the layout
    compiled with the C backend (for many calls), else on the Python linker (for a few).
    """
    values = {**values, "y": np.asarray(y, dtype="float64")}
    with _LOCK, one_blas_thread():
        if function is None:
            key = structure_key(
                values, time_varying=time_varying, obs_diag=True, diffuse=diffuse, smooth=True
            )
            entry = _compiled(key)
            function = entry.fast_inputs() if fast else entry.inputs
        *canon, _, _, log_jac, _ = function(*(values[name] for name in INPUT_NAMES))
    return [kernel_array(c) for c in canon], np.asarray(log_jac), function


def _step_terms(step_jac, B):
    """The decorrelation's log-Jacobian summed over time, per member (0 without one)."""
    return np.reshape(step_jac, (B, -1)).sum(-1)


def run(values, y, *, time_varying, obs_diag, diffuse, smooth):
    """Filter (and smooth) data ``y`` (..., T, p) with the numeric system ``values``.

    Parameters
    ----------
    values : dict of str to numpy.ndarray
        The system, as returned by :func:`numeric_system`.
    y : numpy.ndarray, shape (..., T, p)
        Observations, NaN for missing values.
    time_varying : frozenset of str
        The declared time-varying matrices (names of ``F``, ``G``, ``W``).
    obs_diag : bool
        Whether ``values["obs"]`` holds standard deviations (else a covariance).
    diffuse : numpy.ndarray of bool, shape (n,)
        The diffuse states.
    smooth : bool
        Also run the smoother.

    Returns
    -------
    dict of str to numpy.ndarray
        The moments named as in :func:`~pymc_dlm.kalman_filter`'s result. They are new arrays
        (pytensor never returns its internal storage unless asked to), which later calls do
        not touch.
    """
    values = {**values, "y": np.asarray(y, dtype="float64")}
    key = structure_key(
        values, time_varying=time_varying, obs_diag=obs_diag, diffuse=diffuse, smooth=smooth
    )
    with _LOCK, one_blas_thread():
        entry = _compiled(key)
        found = _kernel_moments(entry, values, smooth) if KERNELS else None
        if found is not None:
            return found
        fn, names = entry.scan()
        out = fn(*(values[name] for name in INPUT_NAMES))
        return dict(zip(names, out))
