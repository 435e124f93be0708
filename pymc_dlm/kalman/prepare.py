r"""What every filter scan needs before its first step: batch shape, inputs, the result type.

Shared by the square-root filter (:mod:`pymc_dlm.kalman.filter`), the exact diffuse filter
(:mod:`pymc_dlm.kalman.diffuse`), the covariance-form definition of the gradient
(:mod:`pymc_dlm.kalman.covariance`) and the simulator (:mod:`pymc_dlm.kalman.simulate`).
"""

from typing import NamedTuple

import pytensor.tensor as pt

from pymc_dlm.kalman.linalg import mT
from pymc_dlm.model.blocks import lead_shape
from pymc_dlm.model.notation import PARAMETERS, core_ndims

__all__ = [
    "FilterResult",
    "batch_shape",
    "observation_factor",
    "prepare",
    "system_inputs",
    "time_last",
]


class FilterResult(NamedTuple):
    r"""Filter output, time on axis -2 (means) or -3 (factors), batch axes in front.

    ``loglik`` (...,): :math:`\log p(y_{1:T})`; ``loglik_t`` (..., T): its one-step terms
    :math:`\log p(y_t | y_{1:t-1})`; ``predicted_mean`` :math:`a_t` (..., T, n);
    ``predicted_factor`` :math:`U_{R,t}` (..., T, n, n); ``filtered_mean`` :math:`m_t`;
    ``filtered_factor`` :math:`U_{C,t}`. Entries are ``None`` when not requested.

    With diffuse states (``system.diffuse`` not ``None``) the factors are those of the finite
    parts :math:`P_{*}` during the diffuse period, and ``predicted_diffuse`` /
    ``filtered_diffuse`` (..., T, n, d) are factors :math:`B_t` of the diffuse parts,
    :math:`P_{\infty,t} = B_t B_t^\top`, exactly zero once the diffuse period is over (they
    are ``None`` for a proper prior). The diffuse filter also gives ``filtered_cov``
    (..., T, n, n), the covariances :math:`P_{*,t|t}` themselves, so that a caller needing
    one of them factors only that one.
    """

    loglik: object
    loglik_t: object
    predicted_mean: object = None
    predicted_factor: object = None
    filtered_mean: object = None
    filtered_factor: object = None
    predicted_diffuse: object = None
    filtered_diffuse: object = None
    filtered_cov: object = None


def time_last(x, core_ndim):
    """Move the leading time axis of a scan output back in front of the core axes."""
    return pt.moveaxis(x, 0, x.ndim - core_ndim - 1)


def observation_factor(obs, observed, obs_diag):
    r"""Upper factor :math:`U_V` of the masked observation covariance.

    Masked components get unit variance and no correlation, which makes them drop out of the
    update exactly (see :func:`~pymc_dlm.kalman.steps.gaussian_logpdf`).
    """
    if obs_diag:
        sd = pt.switch(observed, obs, 1.0)
        return sd[..., :, None] * pt.eye(sd.shape[-1])
    both = observed[..., :, None] & observed[..., None, :]
    eye = pt.eye(obs.shape[-1])
    V = pt.switch(both, obs, 0.0) + pt.switch(observed[..., :, None], 0.0, eye)
    return mT(pt.linalg.cholesky(V, lower=True))


def _lead(x, k):
    """The first ``k`` entries of ``x.shape`` (static 1s kept as 1, see ``lead_shape``)."""
    return lead_shape(x, k)


def system_inputs(system):
    """The (name, matrix, core ndim) triples of a system that may vary over time.

    The core ranks are :func:`~pymc_dlm.model.notation.core_ndims`' without the time axis.
    """
    ranks = core_ndims(frozenset(), system.obs_diag)
    keys = ("F", "G", "W", "obs")
    return [
        (key, getattr(system, name), ranks[i])
        for i, (key, name) in enumerate(zip(keys, PARAMETERS))
    ]


def batch_shape(system, y=None):
    """Broadcast batch shape of the system matrices (and of data ``y`` (..., T, p))."""
    shapes = [] if y is None else [_lead(y, y.ndim - 2)]
    ranks = core_ndims(system.time_varying, system.obs_diag)
    for name, core in zip(PARAMETERS, ranks):
        x = getattr(system, name)
        shapes.append(_lead(x, x.ndim - core))
    return tuple(pt.broadcast_shape(*shapes, arrays_are_shapes=True))


def prepare(system, y):
    """Batch shape, masked data and the initial carry of the filter.

    ``y`` is (..., T, p) with NaN for missing values.
    """
    batch = batch_shape(system, y)
    n = system.G.type.shape[-1]
    m0 = pt.broadcast_to(system.m0, (*batch, n))
    C0_factor = mT(system.C0_sqrt)
    C0_factor = pt.broadcast_to(C0_factor, (*batch, C0_factor.shape[-2], C0_factor.shape[-1]))
    return batch, m0, C0_factor
