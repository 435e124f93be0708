r"""Polynomial trends: local level, local linear trend and higher orders (``dlmModPoly``).

.. math::

    G = \begin{pmatrix} 1 & 1 & & \\ & 1 & \ddots & \\ & & \ddots & 1 \\ & & & 1\end{pmatrix},
    \quad F = (1, 0, \dots, 0), \quad W = \operatorname{diag}(\sigma_1^2, \dots, \sigma_k^2).

References
----------
Petris, Petrone & Campagnoli (2009), §3.2.1; West & Harrison (1997), ch. 7.
"""

import numpy as np
import pytensor.tensor as pt

from pymc_dlm.components.base import Component, diag_factor, int_param, sigma_vector, unit_row
from pymc_dlm.model.checks import check_sigma

__all__ = ["LocalLevel", "LocalLinearTrend", "Polynomial"]

_LABELS = ("level", "slope", "curvature")


class Polynomial(Component):
    r"""Polynomial trend of order ``order`` (``dlm``'s ``dlmModPoly(order)``).

    Parameters
    ----------
    order : int
        Number of states (1: local level, 2: local linear trend, ...).
    sigma : float, array_like or TensorVariable
        Standard deviations of the state noise, one per state (length ``order``; a scalar is
        used for every state). A zero gives a state without noise.
    discount : float or TensorVariable, optional
        A discount factor :math:`\delta \in (0, 1]` for the whole block in place of
        ``sigma`` (West & Harrison's component discounting, :mod:`pymc_dlm.model.discount`).
    m0, C0
        Prior of :math:`\theta_0` (see :class:`~pymc_dlm.StateSpace`); default
        ``C0="diffuse"`` (exact diffuse initialisation, ``m0`` then unused).
    name : str
        Component name in decompositions.
    """

    name = "trend"
    sigma_core_ndim = 1  # one standard deviation per state

    def __init__(self, order, sigma=None, *, discount=None, m0=0.0, C0="diffuse", name=None):
        self.order = int_param(order, "order", minimum=1)
        sigma = self._noise(sigma, discount)
        self.sigma = sigma_vector(sigma, "sigma", self.order)
        self.m0, self.C0 = m0, C0
        if name is not None:
            self.name = name

    def build(self):
        """Jordan-block transition, first state observed."""
        k = self.order
        G = np.eye(k) + np.eye(k, k=1)
        labels = list(_LABELS[:k]) + [f"trend_{i}" for i in range(3, k)]
        return self._make(unit_row(k), G, diag_factor(self.sigma), labels)


class LocalLevel(Polynomial):
    r"""Local level (random walk plus noise), ``dlmModPoly(1)``.

    :math:`\theta_t = \theta_{t-1} + w_t`, :math:`w_t \sim N(0, \sigma^2)`.

    Parameters
    ----------
    sigma : float, array_like or TensorVariable
        Standard deviation of the level's noise.
    discount : float or TensorVariable, optional
        A discount factor in (0, 1] in place of ``sigma``.
    m0, C0
        Prior of the level at time 0; default ``C0="diffuse"`` (exact diffuse
        initialisation, ``m0`` then unused).
    name : str
        Component name, default ``"level"``.
    """

    name = "level"

    def __init__(self, sigma=None, *, discount=None, m0=0.0, C0="diffuse", name=None):
        if discount is not None or sigma is None:
            self._noise(sigma, discount)  # exactly one of the two
            super().__init__(1, discount=discount, m0=m0, C0=C0, name=name)
            return
        # One standard deviation per series: leading axes of ``sigma`` are batch axes.
        super().__init__(1, check_sigma(sigma, "sigma")[..., None], m0=m0, C0=C0, name=name)


class LocalLinearTrend(Polynomial):
    r"""Local linear trend, ``dlmModPoly(2)``: a level and a slope, both random walks.

    Parameters
    ----------
    sigma_level, sigma_slope : float, array_like or TensorVariable
        Standard deviations of the level and slope noises (zero allowed).
    discount : float or TensorVariable, optional
        One discount factor in (0, 1] for the (level, slope) block, in place of the two
        standard deviations.
    m0, C0
        Prior of (level, slope) at time 0; default ``C0="diffuse"`` (exact diffuse
        initialisation, ``m0`` then unused).
    name : str
        Component name, default ``"trend"``.
    """

    def __init__(
        self, sigma_level=None, sigma_slope=None, *, discount=None, m0=0.0, C0="diffuse", name=None
    ):
        if discount is not None or sigma_level is None or sigma_slope is None:
            self._noise((sigma_level, sigma_slope), discount, ("sigma_level", "sigma_slope"))
            super().__init__(2, discount=discount, m0=m0, C0=C0, name=name)
            return
        level = check_sigma(sigma_level, "sigma_level")
        slope = check_sigma(sigma_slope, "sigma_slope")
        level, slope = pt.broadcast_arrays(level, slope)
        super().__init__(2, pt.stack([level, slope], axis=-1), m0=m0, C0=C0, name=name)
