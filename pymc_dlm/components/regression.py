r"""Regression on covariates with static or random-walk coefficients (``dlmModReg``).

.. math::

    y_t = x_t^\top \beta_t + v_t, \qquad \beta_t = \beta_{t-1} + w_t,
    \quad w_t \sim N(0, \operatorname{diag}(\sigma^2)),

so :math:`F_t = x_t^\top` is time-varying, :math:`G = I`. With :math:`\sigma = 0` the
coefficients are static: their posterior is the Bayesian regression's. The coefficients are
*states*, drawn by :func:`pymc_dlm.sample_states`, not static parameters.

References
----------
Petris, Petrone & Campagnoli (2009), §3.3.3 (``dlmModReg(X, addInt = FALSE)``).
"""

import numpy as np
import pytensor.tensor as pt

from pymc_dlm.components.base import Component, diag_factor, sigma_vector
from pymc_dlm.model.checks import as_float_tensor, known_value, static_dim

__all__ = ["Regression"]


class Regression(Component):
    r"""Dynamic (or static) regression on the columns of ``X``.

    Parameters
    ----------
    X : array_like, ``pm.Data`` or TensorVariable, shape (T, k) or (T,)
        Covariates, one row per time step. NaN is not allowed: regressors cannot be missing
        (``pm.Data`` refuses NaN when created; :func:`pymc_dlm.sample_states` and
        :func:`pymc_dlm.forecast` refuse NaN that ``pm.set_data`` put in one). Keep the
        observed rows in a ``pm.Data`` container and give the future rows to
        :func:`pymc_dlm.forecast` as ``new_data={name: X_future}``: ``forecast`` refuses a
        container that ``pm.set_data`` has set to future values.
    sigma : float, array_like or TensorVariable
        Standard deviation(s) of the coefficients' random-walk noise, scalar or length ``k``.
        ``0`` (the default) gives static coefficients.
    discount : float or TensorVariable, optional
        A discount factor :math:`\delta \in (0, 1]` for the whole block in place of
        ``sigma`` (West & Harrison's component discounting, :mod:`pymc_dlm.model.discount`).
    m0, C0
        Prior of the coefficients at time 0; default ``C0="diffuse"`` (exact diffuse
        initialisation, ``m0`` then unused).
    labels : sequence of str, optional
        Names of the coefficients (default ``"<name>_1"``, ...).
    name : str
        Component name, default ``"regression"``.
    """

    name = "regression"
    sigma_core_ndim = 1  # one standard deviation per state

    def __init__(
        self, X, sigma=None, *, discount=None, m0=0.0, C0="diffuse", labels=None, name=None
    ):
        if name is not None:
            self.name = name
        X = as_float_tensor(X, "X", min_ndim=1)
        value = known_value(X)
        if value is not None and not np.all(np.isfinite(value)):
            raise ValueError(
                "X must be finite (no NaN or inf): regressors cannot be missing; "
                f"got {int(np.sum(~np.isfinite(value)))} non-finite value(s)"
            )
        if X.ndim == 1:
            X = X[:, None]
        k = static_dim(X, -1)
        if k is None or k < 1:
            shape = tuple(X.type.shape)
            raise ValueError(f"X must have a known number of columns, at least 1, got {shape}")
        self.X = pt.specify_shape(X, (*(None,) * (X.ndim - 1), k))
        self.k = int(k)
        self.sigma = sigma_vector(self._noise(sigma, discount, default=0.0), "sigma", self.k)
        self.m0, self.C0 = m0, C0
        if labels is None:
            labels = [f"{self.name}_{i + 1}" for i in range(self.k)]
        labels = [str(x) for x in labels]
        if len(labels) != self.k:
            raise ValueError(
                f"labels must have {self.k} entries (columns of X), got {len(labels)}"
            )
        self.labels = labels

    def build(self):
        """Time-varying observation row x_t, identity transition."""
        F = self.X[..., None, :]
        return self._make(F, np.eye(self.k), diag_factor(self.sigma), self.labels, ("F",))
