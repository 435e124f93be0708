"""The initial prior and covariance inputs of a :class:`~pymc_dlm.model.statespace.StateSpace`.

Parsing and validation of ``m0``, ``C0`` (a scalar, a vector, a matrix or a keyword), the
diffuse mask, and the factors of fixed covariances. Errors name the argument the user wrote.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Constant, Variable

from pymc_dlm.model.checks import as_float_tensor, check_psd, fixed_value, known_value, static_dim
from pymc_dlm.model.stationary import stationary_cov

__all__ = [
    "check_diffuse_count",
    "check_diffuse_rank",
    "check_finite",
    "covariance_factor",
    "diffuse_mask",
    "diffuse_columns",
    "diffuse_matrix",
    "diffuse_states",
    "given_factor",
    "initial_cov",
    "initial_mean",
    "is_diffuse_keyword",
    "psd_factor",
    "shape_of",
    "stationary_start",
]


def psd_factor(value):
    """A factor L with ``value = L @ L.T`` of a fixed symmetric PSD matrix (by eigh)."""
    w, u = np.linalg.eigh(value)
    return u * np.sqrt(np.clip(w, 0.0, None))[..., None, :]


def covariance_factor(t, value, name):
    """A factor L (L L' = t) of a covariance ``t`` known now (its value ``value``), checked PSD.

    A constant's factor is a constant. Data (a ``pm.Data`` container, a shared variable) keep
    their link: the factor is a graph of them (``eigh``, negative round-off eigenvalues
    clipped), so that ``pm.set_data`` and a forecast's ``new_data`` change it too.
    """
    check_psd(value, name)
    if not isinstance(t, Variable) or isinstance(t, Constant):
        return pt.as_tensor_variable(psd_factor(value))
    w, u = pt.linalg.eigh(t)
    return u * pt.sqrt(pt.clip(w, 0.0, np.inf))[..., None, :]


def _cov_and_factor(x, name, n):
    """Parse a covariance given as a scalar (c*I), a vector (diagonal) or a matrix."""
    t = as_float_tensor(x, name)
    value = known_value(t)
    if t.ndim <= 1:
        if t.ndim == 1 and static_dim(t, -1) != n:
            raise ValueError(
                f"{name} must be a scalar, a vector of length {n} or an ({n}, {n}) matrix, "
                f"got shape {shape_of(t)}"
            )
        if value is not None and (not np.all(np.isfinite(value)) or np.any(value < 0)):
            raise ValueError(f"{name} must hold finite, non-negative variances, got {value}")
        diag = t * pt.ones(n)
        if value is None:
            # A negative symbolic variance is invalid (see StateSpace.constraints). The factor
            # is sqrt(max(c, 0)) with the derivative taken as zero at c <= 0 (the square
            # root's is infinite at 0), so that it stays finite.
            positive = diag > 0
            root = pt.switch(positive, pt.sqrt(pt.switch(positive, diag, 1.0)), 0.0)
            return _batched_diag(diag), _batched_diag(root)
        return _batched_diag(diag), _batched_diag(pt.sqrt(diag))
    if static_dim(t, -1) != n or static_dim(t, -2) != n:
        raise ValueError(
            f"{name} must be a scalar, a vector of length {n} or an ({n}, {n}) matrix, "
            f"got shape {shape_of(t)}"
        )
    if value is not None:
        return t, covariance_factor(t, value, name)
    return t, pt.linalg.cholesky(t, lower=True)


def _batched_diag(v):
    """Diagonal matrices (..., n, n) from vectors (..., n)."""
    n = v.shape[-1]
    return v[..., :, None] * pt.eye(n)


def initial_mean(m0, n, name="m0"):
    """The mean of theta_0 as an (..., n) tensor from a scalar or a vector."""
    t = as_float_tensor(m0, name)
    value = known_value(t)
    if value is not None and not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite, got {value}")
    if t.ndim == 0:
        return t * pt.ones(n)
    if static_dim(t, -1) != n:
        raise ValueError(
            f"{name} must be a scalar or have length {n} (the number of states), "
            f"got shape {shape_of(t)}"
        )
    return t


def initial_cov(C0, n, name="C0"):
    """The covariance of theta_0 and its factor, from a scalar, a vector or a matrix."""
    return _cov_and_factor(C0, name, n)


def shape_of(t):
    """The shape of ``t``: its value's when fixed, else the static one."""
    value = known_value(t)
    return value.shape if value is not None else tuple(t.type.shape)


def check_finite(t, name):
    """Raise when a fixed ``t`` has non-finite entries, naming the argument ``name``."""
    value = known_value(t)
    if value is not None and not np.all(np.isfinite(value)):
        raise ValueError(
            f"{name} must be finite, got {int(np.sum(~np.isfinite(value)))} non-finite entries"
        )


def is_diffuse_keyword(C0):
    """Whether ``C0`` is the keyword ``"diffuse"``."""
    return isinstance(C0, str) and C0 == "diffuse"


def diffuse_mask(diffuse, C0, n):
    """The boolean mask of diffuse states from the ``diffuse`` argument and ``C0``."""
    all_diffuse = isinstance(C0, str) and C0 == "diffuse"
    if diffuse is None or (isinstance(diffuse, (bool, np.bool_)) and not diffuse):
        mask = np.full(n, all_diffuse)
    elif isinstance(diffuse, (bool, np.bool_)):
        mask = np.ones(n, dtype=bool)
    else:
        mask = np.asarray(diffuse)
        if mask.dtype != bool or mask.shape != (n,):
            raise ValueError(
                f"diffuse must be a bool or a boolean sequence of length {n} (one per state), "
                f"got {mask.dtype} array of shape {mask.shape}"
            )
    if all_diffuse and not mask.all():
        raise ValueError("C0='diffuse' makes every state diffuse; do not give a partial diffuse")
    return mask.astype(bool)


def diffuse_columns(mask):
    """The (n, d) unit columns of the diffuse states of a boolean mask (n,), C-contiguous."""
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    return np.ascontiguousarray(np.eye(mask.size)[:, mask])


def diffuse_matrix(mask):
    """The (n, d) selection matrix of a boolean mask as a constant, or ``None``."""
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    return pt.as_tensor_variable(diffuse_columns(mask))


def diffuse_states(diffuse, n):
    """The boolean mask (n,) of a selection matrix (constant, (n, d)) or of None (none)."""
    if diffuse is None:
        return np.zeros(n, dtype=bool)
    return np.any(np.asarray(diffuse.data) != 0.0, axis=1)


def check_diffuse_count(ss, arr, name="y"):
    """Raise when ``arr`` (..., T, p) has fewer observed values than ``ss`` has diffuse states.

    With fewer informative observations than diffuse states the diffuse likelihood is improper
    (its log-likelihood is ``-inf``); this is the static part of that check.
    """
    d = ss.n_diffuse
    count = np.sum(~np.isnan(np.asarray(arr, dtype=float)), axis=(-2, -1))
    if d and np.any(count < d):
        raise ValueError(
            f"the model has {d} diffuse states (C0='diffuse') but {name} has only "
            f"{int(np.min(count))} observed values: at least as many are needed to identify "
            "them; give some states a proper C0 (numbers) or use more data"
        )


def given_factor(C0_sqrt, n):
    """A user's ``C0_sqrt`` (n, k), finite when fixed; returns ``(C0, C0_sqrt)``, C0 its square."""
    L = as_float_tensor(C0_sqrt, "C0_sqrt", min_ndim=2)
    if static_dim(L, -2) != n:
        raise ValueError(f"C0_sqrt must have {n} rows (one per state), got shape {shape_of(L)}")
    check_finite(L, "C0_sqrt")
    return pt.matmul(L, pt.swapaxes(L, -1, -2)), L


def stationary_start(keyword, name, G, W, time_varying, discounted):
    r"""``C0="stationary"``: the stationary covariance, :math:`C_0 = G C_0 G^\top + W`.

    Solved as a pytensor expression (the discrete Lyapunov equation), so it follows
    sampled parameters. Fixed non-stationary G is an error; a sampled one that leaves the
    stationary region makes the covariance invalid and the log-likelihood ``-inf``. Returns
    ``(C0, C0_sqrt, stable)``, ``stable`` the constraint of a sampled G. ``name`` is the
    block's, for the messages; ``discounted``: the block has a discount instead of W.
    """
    if keyword != "stationary":
        raise ValueError(
            f"C0 must be a number, an array, 'diffuse' or 'stationary', got {keyword!r}"
        )
    if {"G", "W"} & time_varying:
        raise ValueError("C0='stationary' needs a time-invariant G and W")
    if discounted:
        raise ValueError(
            f"{name}: C0='stationary' needs the block's W, and a discounted block has "
            "none (its W follows the filter's covariances): give a proper C0 (and m0)"
        )
    G_value = fixed_value(G)
    if G_value is not None and np.max(np.abs(np.linalg.eigvals(G_value)), initial=0.0) >= 1:
        radius = float(np.max(np.abs(np.linalg.eigvals(G_value))))
        raise ValueError(
            f"{name}: C0='stationary' needs a stationary block, but the eigenvalues "
            f"of G reach modulus {radius:.4g} (they must lie inside the unit circle); "
            f"for a non-stationary {name} give C0='diffuse' (a flat prior) or a "
            "proper C0"
        )
    return stationary_cov(G, W)


def check_diffuse_rank(G, diffuse, g_time_varying):
    """A fixed G must map the diffuse directions to independent ones (rank of G A)."""
    if not diffuse.any():
        return
    G = fixed_value(G)
    if G is None:
        return
    G1 = G[..., 0, :, :] if g_time_varying else G
    GA = G1[..., :, diffuse]
    d = int(diffuse.sum())
    ranks = np.linalg.matrix_rank(GA.reshape(-1, *GA.shape[-2:]))
    if np.any(ranks < d):
        raise ValueError(
            f"diffuse states: G_1 maps the {d} diffuse states to a space of rank "
            f"{int(np.min(ranks))}; the exact diffuse filter needs G_1 A of full column "
            "rank (give the states in G's null space a proper C0 instead)"
        )
