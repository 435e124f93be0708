r"""Seasonal components: dummy form (``dlmModSeas``) and Fourier form (``dlmModTrig``).

Dummy form with period :math:`s`, :math:`s-1` states:

.. math::

    G = \begin{pmatrix} -1 & -1 & \cdots & -1 \\ 1 & & & \\ & \ddots & & \\ & & 1 & 0
    \end{pmatrix}, \quad F = (1, 0, \dots, 0),
    \quad W = \operatorname{diag}(\sigma^2, 0, \dots, 0).

Fourier form with harmonics :math:`j = 1..q`, :math:`\omega_j = 2\pi j / s`: a block
:math:`\begin{pmatrix}\cos\omega_j & \sin\omega_j\\ -\sin\omega_j & \cos\omega_j\end{pmatrix}`
observed through :math:`(1, 0)` per harmonic; when :math:`s` is even and :math:`q = s/2`
the last harmonic (:math:`\omega = \pi`) is a single state with :math:`G = -1`, :math:`F = 1`.
:math:`W = \sigma^2 I`.

References
----------
Petris, Petrone & Campagnoli (2009), §3.2.3; West & Harrison (1997), ch. 8.
"""

import numpy as np
import pytensor.tensor as pt

from pymc_dlm.components.base import Component, diag_factor, int_param, unit_row
from pymc_dlm.model.checks import check_sigma

__all__ = ["Fourier", "Seasonal"]


class Seasonal(Component):
    r"""Seasonal effects in dummy (sum-to-zero) form, ``dlmModSeas(period)``.

    Parameters
    ----------
    period : int
        Number of seasons, at least 2. The block has ``period - 1`` states.
    sigma : float or TensorVariable
        Standard deviation of the noise on the first state (the current season's effect);
        the other states are noiseless, as in ``dlm``.
    discount : float or TensorVariable, optional
        A discount factor :math:`\delta \in (0, 1]` for the whole block in place of
        ``sigma`` (West & Harrison's component discounting, :mod:`pymc_dlm.model.discount`).
    m0, C0
        Prior of the states at time 0; default ``C0="diffuse"`` (exact diffuse
        initialisation, ``m0`` then unused).
    name : str
        Component name, default ``"seasonal"``.
    """

    name = "seasonal"

    def __init__(self, period, sigma=None, *, discount=None, m0=0.0, C0="diffuse", name=None):
        self.period = int_param(period, "period", minimum=2)
        self.sigma = check_sigma(self._noise(sigma, discount), "sigma")
        self.m0, self.C0 = m0, C0
        if name is not None:
            self.name = name

    def build(self):
        """Dummy-seasonal transition with noise on the first state."""
        n = self.period - 1
        G = np.eye(n, k=-1)
        G[0, :] = -1.0
        first = np.zeros((n, 1))
        first[0, 0] = 1.0
        W_sqrt = self.sigma[..., None, None] * first
        labels = [f"{self.name}_{i + 1}" for i in range(n)]
        return self._make(unit_row(n), G, W_sqrt, labels)


class Fourier(Component):
    r"""Seasonality as a sum of harmonics, ``dlmModTrig(s=period, q=harmonics)``.

    Parameters
    ----------
    period : float
        Length of the cycle in time steps (``s``), greater than or equal to 2.
    harmonics : int
        Number of harmonics ``q``, between 1 and ``period / 2``.
    sigma : float or TensorVariable
        Standard deviation of every state's noise (:math:`W = \sigma^2 I`).
    discount : float or TensorVariable, optional
        A discount factor :math:`\delta \in (0, 1]` for the whole block in place of
        ``sigma`` (West & Harrison's component discounting, :mod:`pymc_dlm.model.discount`).
    m0, C0
        Prior of the states at time 0; default ``C0="diffuse"`` (exact diffuse
        initialisation, ``m0`` then unused).
    name : str
        Component name, default ``"fourier"``.
    """

    name = "fourier"

    def __init__(
        self, period, harmonics, sigma=None, *, discount=None, m0=0.0, C0="diffuse", name=None
    ):
        if isinstance(period, bool) or not isinstance(
            period, (int, float, np.integer, np.floating)
        ):
            raise TypeError(f"period must be a fixed number, got {type(period).__name__}")
        if not np.isfinite(period) or period < 2:
            raise ValueError(f"period must be a finite number >= 2, got {period}")
        self.period = float(period)
        self.harmonics = int_param(harmonics, "harmonics", minimum=1)
        if self.harmonics > self.period / 2:
            raise ValueError(
                f"harmonics must be at most period / 2 = {self.period / 2:g}, got {self.harmonics}"
            )
        self.sigma = check_sigma(self._noise(sigma, discount), "sigma")
        self.m0, self.C0 = m0, C0
        if name is not None:
            self.name = name

    @property
    def nyquist(self):
        """Whether the last harmonic is the one-state Nyquist harmonic."""
        return self.harmonics * 2 == self.period

    def build(self):
        """Block-diagonal rotations, one per harmonic."""
        blocks, F, labels = [], [], []
        for j in range(1, self.harmonics + 1):
            if self.nyquist and j == self.harmonics:
                blocks.append(np.array([[-1.0]]))
                F.append(1.0)
                labels.append(f"{self.name}_{j}")
                continue
            w = 2 * np.pi * j / self.period
            c, s = np.cos(w), np.sin(w)
            blocks.append(np.array([[c, s], [-s, c]]))
            F.extend([1.0, 0.0])
            labels.extend([f"{self.name}_{j}_cos", f"{self.name}_{j}_sin"])
        n = len(F)
        G = np.zeros((n, n))
        i = 0
        for b in blocks:
            k = b.shape[0]
            G[i : i + k, i : i + k] = b
            i += k
        W_sqrt = diag_factor(self.sigma[..., None] * pt.ones(n))
        return self._make(np.array([F]), G, W_sqrt, labels)
