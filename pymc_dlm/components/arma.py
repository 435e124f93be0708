r"""Autoregressive moving-average and cycle components (``dlmModARMA``, Harvey's cycle).

ARMA(p, q) with :math:`r = \max(p, q + 1)` states:

.. math::

    G = \begin{pmatrix} \phi_1 & 1 & & \\ \vdots & & \ddots & \\ \phi_{r-1} & & & 1\\
    \phi_r & 0 & \cdots & 0 \end{pmatrix},\quad F = (1, 0, \dots, 0),\quad
    W = \sigma^2 R R^\top,\ R = (1, \psi_1, \dots, \psi_{r-1})^\top,

with :math:`\phi_i = 0` for :math:`i > p` and :math:`\psi_j = 0` for :math:`j > q`.

Damped stochastic cycle with frequency :math:`\lambda = 2\pi/\text{period}` and damping
:math:`\rho`: :math:`G = \rho \begin{pmatrix}\cos\lambda & \sin\lambda \\ -\sin\lambda &
\cos\lambda\end{pmatrix}`, :math:`F = (1, 0)`, :math:`W = \sigma^2 I_2`.

References
----------
Petris, Petrone & Campagnoli (2009), §3.2.5; Harvey (1989), *Forecasting, Structural Time
Series Models and the Kalman Filter*, §2.3.
"""

import numpy as np
import pytensor.tensor as pt

from pymc_dlm.components.base import Component, unit_row
from pymc_dlm.model.checks import (
    as_float_tensor,
    check_sigma,
    constraint,
    known_value,
    static_dim,
)

__all__ = ["AR", "ARMA", "Cycle"]


def _coefficients(x, name):
    t = as_float_tensor(x, name, max_ndim=None)
    value = known_value(t)  # before t[None], which is an expression rather than a constant
    if value is not None and not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite, got {value}")
    if t.ndim == 0:
        t = t[None]
    k = static_dim(t, -1)
    if k is None:
        raise ValueError(f"{name} must have a known length, got shape {tuple(t.type.shape)}")
    return t, int(k)


def _pad(t, length):
    k = t.type.shape[-1]
    if k == length:
        return t
    zeros = pt.zeros((*t.shape[:-1], length - k))
    return pt.concatenate([t, zeros], axis=-1)


class ARMA(Component):
    r"""ARMA(p, q) process as a block of states, ``dlmModARMA(ar, ma, sigma2)``.

    Parameters
    ----------
    ar : float, array_like or TensorVariable
        Autoregressive coefficients :math:`\phi_1, \dots, \phi_p` (may be empty).
    ma : float, array_like or TensorVariable
        Moving-average coefficients :math:`\psi_1, \dots, \psi_q` (may be empty).
    sigma : float or TensorVariable
        Standard deviation of the innovations.
    discount : float or TensorVariable, optional
        A discount factor :math:`\delta \in (0, 1]` for the whole block in place of
        ``sigma`` (West & Harrison's component discounting, :mod:`pymc_dlm.model.discount`).
        A discounted block has no stationary covariance: give a proper ``C0``.
    m0, C0
        Prior of the states at time 0; default ``C0="stationary"`` (the stationary
        covariance; ``"diffuse"`` or numbers also work).
    name : str
        Component name, default ``"arma"``.
    """

    name = "arma"

    def __init__(self, ar, ma, sigma=None, *, discount=None, m0=0.0, C0="stationary", name=None):
        if name is not None:
            self.name = name
        self.ar, self.p = _coefficients(ar, "ar") if not _is_empty(ar) else (None, 0)
        self.ma, self.q = _coefficients(ma, "ma") if not _is_empty(ma) else (None, 0)
        if self.p == 0 and self.q == 0:
            raise ValueError("ARMA needs at least one ar or ma coefficient")
        self.sigma = check_sigma(self._noise(sigma, discount), "sigma")
        self.m0, self.C0 = m0, C0

    def build(self):
        """Companion-form transition, rank-one state noise."""
        r = max(self.p, self.q + 1)
        first = np.zeros(r)
        first[0] = 1.0
        shift = np.eye(r, k=1)
        if self.p:
            G = _pad(self.ar, r)[..., :, None] * first + shift
        else:
            G = shift
        R = (
            pt.concatenate([pt.ones((*self.ma.shape[:-1], 1)), self.ma], -1)
            if self.q
            else pt.ones(1)
        )
        W_sqrt = (self.sigma[..., None] * _pad(R, r))[..., :, None]
        labels = [f"{self.name}_{i + 1}" for i in range(r)]
        return self._make(unit_row(r), G, W_sqrt, labels)


def _is_empty(x):
    if x is None:
        return True
    if isinstance(x, (list, tuple)) and len(x) == 0:
        return True
    return isinstance(x, np.ndarray) and x.size == 0


class AR(ARMA):
    r"""Autoregressive process AR(p), ``dlmModARMA(ar = rho)``.

    Parameters
    ----------
    rho : float, array_like or TensorVariable
        Autoregressive coefficient(s) :math:`\phi_1, \dots, \phi_p`.
    sigma : float or TensorVariable
        Standard deviation of the innovations.
    discount : float or TensorVariable, optional
        A discount factor :math:`\delta \in (0, 1]` for the whole block in place of
        ``sigma`` (West & Harrison's component discounting, :mod:`pymc_dlm.model.discount`).
        A discounted block has no stationary covariance: give a proper ``C0``.
    m0, C0
        Prior of the states at time 0; default ``C0="stationary"`` (the stationary
        covariance; ``"diffuse"`` or numbers also work).
    name : str
        Component name, default ``"ar"``.
    """

    name = "ar"

    def __init__(self, rho, sigma=None, *, discount=None, m0=0.0, C0="stationary", name=None):
        if _is_empty(rho):
            raise ValueError("rho must hold at least one autoregressive coefficient")
        super().__init__(rho, [], sigma, discount=discount, m0=m0, C0=C0, name=name)


class Cycle(Component):
    r"""Damped stochastic cycle (Harvey's trigonometric cycle).

    Parameters
    ----------
    period : float or TensorVariable
        Period of the cycle in time steps (:math:`\lambda = 2\pi / \text{period}`); fixed
        values must be at least 2 (symbolic ones below 2 give a log-likelihood of ``-inf``).
    damping : float or TensorVariable
        Damping factor :math:`\rho`; fixed values must lie in [0, 1] (symbolic ones
        outside it give a log-likelihood of ``-inf``).
    sigma : float or TensorVariable
        Standard deviation of both states' noise.
    discount : float or TensorVariable, optional
        A discount factor :math:`\delta \in (0, 1]` for the whole block in place of
        ``sigma`` (West & Harrison's component discounting, :mod:`pymc_dlm.model.discount`).
        A discounted block has no stationary covariance: give a proper ``C0``.
    m0, C0
        Prior of the states at time 0; default ``C0="stationary"`` (the stationary
        covariance; ``"diffuse"`` or numbers also work).
    name : str
        Component name, default ``"cycle"``.
    """

    name = "cycle"

    def __init__(
        self, period, damping, sigma=None, *, discount=None, m0=0.0, C0="stationary", name=None
    ):
        if name is not None:
            self.name = name
        self.period = as_float_tensor(period, "period")
        value = known_value(self.period)
        if value is not None and (not np.all(np.isfinite(value)) or np.any(value < 2)):
            raise ValueError(f"period must be a finite number >= 2, got {value}")
        self.damping = as_float_tensor(damping, "damping")
        value = known_value(self.damping)
        if value is not None and (
            np.any(~np.isfinite(value)) or np.any(value < 0) or np.any(value > 1)
        ):
            raise ValueError(f"damping must lie in [0, 1], got {value}")
        self.sigma = check_sigma(self._noise(sigma, discount), "sigma")
        self.m0, self.C0 = m0, C0

    def build(self):
        """Damped rotation by 2π/period."""
        lam = 2 * np.pi / self.period
        c, s = pt.cos(lam), pt.sin(lam)
        rot = pt.stack([pt.stack([c, s], -1), pt.stack([-s, c], -1)], -2)
        G = self.damping[..., None, None] * rot
        W_sqrt = self.sigma[..., None, None] * np.eye(2)
        return self._make(unit_row(2), G, W_sqrt, [self.name, f"{self.name}_aux"])

    def _constraints(self):
        """Symbolic ``sigma >= 0``, ``0 <= damping <= 1`` and ``period >= 2``."""
        ok = (constraint(self.damping, low=0.0, high=1.0), constraint(self.period, low=2.0))
        return super()._constraints() + tuple(c for c in ok if c is not None)
