r"""The filter and smoother at fixed values, compiled once per model structure.

:func:`~pymc_dlm.kalman_filter` and :func:`~pymc_dlm.kalman_smoother` run the scans of
:mod:`pymc_dlm.kalman` (the definition, the very code of the :class:`~pymc_dlm.DLM`
log-likelihood) on numbers. The scan graph is built from symbolic *inputs* for the system
matrices and the data, compiled once for each model **structure** and kept in a small LRU
cache; a call evaluates the model's matrices to numpy arrays (:func:`numeric_system`) and feeds
them to the cached function. New parameter values, new data or a new series length on the same
structure compile nothing.

The structure (:func:`structure_key`) is everything the graph depends on besides the numbers:
for each input its number of axes and the static lengths the recursions need (the core matrix
axes, and every axis of length 1, which broadcasts), the declared time-varying matrices,
whether the observation noise is diagonal, the diffuse mask, whether to smooth, and the
backend :data:`MODE`. The time axis and batch axes of length above 1 are left free.

Backend. :data:`MODE` is pytensor's C virtual machine with the ``fast_run`` rewrites. Measured
with ``benchmarks/filter_speed.py`` (monthly CO2, local linear trend + ``Seasonal(12)``, 13
states, T = 526 with 5 missing, exact diffuse start; 2-core machine, pytensor without a BLAS
library; ``benchmarks/results/2026-12-04_filter_speed_*``), smoother / filter:

=====================  ==================  ==================  =====================
backend                first call, empty   first call, new     per call (statsmodels
                       on-disk caches      structure           22-25 / 19-21 ms)
=====================  ==================  ==================  =====================
C (``cvm``), chosen    74 s / 1.8 s        3.4 s               130 / 54 ms
Python (``py``)        50 s / 0.5 s        2.1 s               163 / 78 ms
numba                  137 s / 16 s        74 s                48 / 31 ms
=====================  ==================  ==================  =====================

The C modules compiled on the first use are shared by every later structure and process (the
Python backend compiles C too: the scans' inner steps use C thunks, as the uncached code
before did); numba compiles each new structure for about a minute, so a session that tries a
few models would spend minutes compiling for a gain of about 80 ms per smoother call. For long
loops over parameter values of one model, set this module's ``MODE`` to
``pytensor.compile.mode.Mode("numba", "fast_run")`` (numba's on-disk cache then makes later
processes start in seconds).

BLAS/LAPACK run single-threaded during a call (``threadpoolctl``, a dependency of PyMC): every
operation is on (n, n) matrices with n of a few tens, and with both cores busy OpenBLAS's
threads made the C backend 5 times slower (644 against 119 ms per smoother call, measured once
during development).
"""

import threading
import warnings
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import applys_between
from pytensor.tensor.blockwise import Blockwise
from pytensor.tensor.linalg import Eigh
from threadpoolctl import ThreadpoolController

from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.linalg import matvec, mT, outer_factor
from pymc_dlm.kalman.smoother import smoother_scan
from pymc_dlm.model.notation import SystemMatrices
from pymc_dlm.model.statespace import diffuse_matrix

__all__ = ["CacheInfo", "cache_info", "clear_cache", "numeric_system", "run", "structure_key"]

#: Backend of the cached functions, (linker, rewrites) (see the module docstring).
BACKEND = ("cvm", "fast_run")

#: The pytensor mode compiled with; set another to change backend (it is part of the key).
MODE = Mode(*BACKEND)

#: One-shot evaluation of the model's constant matrices: Python backend, no rewrites.
EVAL_MODE = Mode(linker="py", optimizer=None)

#: Number of structures kept compiled (least recently used dropped first).
CACHE_SIZE = 32

#: The numeric inputs of a cached function, in order (the data ``y`` last).
INPUT_NAMES = ("F", "G", "W_sqrt", "obs", "m0", "C0_sqrt", "y")

_CACHE = OrderedDict()
_LOCK = threading.RLock()
_COUNTS = {"hits": 0, "misses": 0}
_THREADS = None


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
    tensors = [ss.F, ss.G, ss.W_sqrt, obs, ss.m0, ss.C0_sqrt]
    values = pytensor.function([], tensors, mode=EVAL_MODE)()
    return {k: np.asarray(v, dtype="float64") for k, v in zip(INPUT_NAMES, values)}


def _core_ndim(name, obs_diag):
    """Number of trailing (matrix) axes whose lengths are part of the structure."""
    core = {"F": 2, "G": 2, "W_sqrt": 2, "obs": 1 if obs_diag else 2, "m0": 1, "C0_sqrt": 2}
    return core.get(name, 0)


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


def _moments(x, tv, obs_diag, diffuse, smooth):
    """The filter's (and smoother's) outputs, by name, as graphs of the inputs ``x``."""
    system = SystemMatrices(
        x["F"],
        x["G"],
        x["W_sqrt"],
        x["obs"],
        x["m0"],
        x["C0_sqrt"],
        tv,
        obs_diag,
        diffuse_matrix(np.array(diffuse, dtype=bool)),
    )
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
    """Compile the function of one structure; returns (function, output names)."""
    shapes, tv, obs_diag, diffuse, smooth, mode = key
    x = {name: pt.tensor(name, dtype=np.dtype(dt).name, shape=sh) for name, dt, sh in shapes}
    outs = _moments(x, frozenset(tv), obs_diag, diffuse, smooth)
    inputs = [x[name] for name in INPUT_NAMES]
    outputs = _stacked_eigh(list(outs.values()))
    with warnings.catch_warnings():
        # The C backend looks for a BLAS library to link and warns when there is none: the
        # matrices here are small, and the warning says nothing the user can act on.
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        fn = pytensor.function(inputs, outputs, mode=mode, on_unused_input="ignore")
    return fn, tuple(outs)


def _stacked_eigh(outputs):
    """Batched ``eigh`` in one numpy call instead of a Python loop over the batch.

    The diffuse filter factors its covariances with ``eigh`` on every time step; pytensor's
    Python implementation of a batched op loops over the batch. ``numpy.linalg.eigh`` is a
    gufunc that loops in C over the same LAPACK routine family (``syevd``).
    """
    replace = {}
    for node in applys_between([], outputs):
        op = node.op
        if isinstance(op, Blockwise) and isinstance(op.core_op, Eigh) and len(node.inputs) == 1:
            eigh = Blockwise(op.core_op, op.signature, gufunc_spec=("numpy.linalg.eigh", 1, 2))
            new = eigh(*node.inputs)
            replace.update(zip(node.outputs, new))
    return graph_replace(outputs, replace) if replace else outputs


def _compiled(key):
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            _COUNTS["hits"] += 1
            return _CACHE[key]
        _COUNTS["misses"] += 1
        entry = _build(key)
        _CACHE[key] = entry
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return entry


def _one_blas_thread():
    """Run BLAS/LAPACK single-threaded: every call is on small matrices (module docstring)."""
    global _THREADS
    if _THREADS is None:
        _THREADS = ThreadpoolController()
    return _THREADS.limit(limits=1, user_api="blas")


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
    with _LOCK, _one_blas_thread():
        fn, names = _compiled(key)
        out = fn(*(values[name] for name in INPUT_NAMES))
        return dict(zip(names, out))
