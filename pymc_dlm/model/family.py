r"""Observation families for counts and binary data on a latent DLM.

The state equation and prior are the DLM's; the observation is

.. math::

    y_t \mid \theta_t \sim p(y_t \mid \eta_t), \qquad \eta_t = F_t \theta_t + o_t,

with a known offset :math:`o_t` (for example a log exposure). Each family gives its
log-density :math:`\ell(\eta) = \log p(y \mid \eta)` and the first three derivatives in
:math:`\eta`, written once for numpy and pytensor (the namespaces ``NUMPY`` and ``PYTENSOR``):

* Poisson, log link: :math:`\ell = y\eta - e^\eta - \log y!`.
* Binomial with known trials :math:`n`, logit link (Bernoulli: :math:`n = 1`):
  :math:`\ell = \log\binom{n}{y} + y\eta - n \log(1 + e^\eta)`.
* Negative binomial, log link, PyMC's ``NegativeBinomial(mu, alpha)``
  (:math:`\mathrm{Var} = \mu + \mu^2/\alpha`):
  :math:`\ell = \log\Gamma(y+\alpha) - \log\Gamma(\alpha) - \log y! + \alpha\log\alpha + y\eta
  - (y+\alpha)\log(\alpha + e^\eta)`.

The binomial and negative binomial share one form: with :math:`q = \sigma(\eta - c)` and a
weight :math:`b` (:math:`c = 0, b = n` for the binomial, :math:`c = \log\alpha, b = y + \alpha`
for the negative binomial), :math:`\ell' = y - bq`, :math:`\ell'' = -bq(1-q)` and
:math:`\ell''' = -bq(1-q)(1-2q)`. Every family is log-concave in :math:`\eta`.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§9.3 (exponential family observations), §10.6 (the mode by the approximating model).
"""

from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytensor.tensor as pt
import scipy.special
from pytensor.compile.sharedvalue import SharedVariable

from pymc_dlm.model.checks import as_float_tensor, fixed_value

__all__ = [
    "Binomial",
    "Derivatives",
    "Family",
    "NegativeBinomial",
    "NUMPY",
    "PYTENSOR",
    "as_family",
    "check_counts",
    "family_kind",
]

#: Elementwise functions of numpy (numeric mode search, fixed-value filters).
NUMPY = SimpleNamespace(
    exp=np.exp,
    log=np.log,
    gammaln=scipy.special.gammaln,
    softplus=lambda x: np.logaddexp(0.0, x),
    sigmoid=scipy.special.expit,
    where=np.where,
)

#: The same functions in pytensor (the log-likelihood graph).
PYTENSOR = SimpleNamespace(
    exp=pt.exp,
    log=pt.log,
    gammaln=pt.gammaln,
    softplus=pt.softplus,
    sigmoid=pt.sigmoid,
    where=pt.switch,
)


class Derivatives(NamedTuple):
    r""":math:`\ell'(\eta)`, :math:`\ell''(\eta)` and :math:`\ell'''(\eta)`, elementwise."""

    first: object
    second: object
    third: object


class Family:
    """An observation family: its name, its parameter (or None) and its density.

    Subclasses define :meth:`logpdf` and :meth:`derivatives` for a namespace ``ns``
    (:data:`NUMPY` or :data:`PYTENSOR`); ``param`` is the family's parameter as the caller
    holds it (a number, an array or a tensor).
    """

    name = "family"
    param = None

    def logpdf(self, y, eta, param, ns):
        r""":math:`\log p(y \mid \eta)`, elementwise."""
        raise NotImplementedError

    def derivatives(self, y, eta, param, ns):
        """The :class:`Derivatives` of :meth:`logpdf` in ``eta``."""
        raise NotImplementedError

    def start(self, y, param):
        """A starting linear predictor from the data alone (NaN where y is missing)."""
        raise NotImplementedError

    def __repr__(self):  # noqa: D105
        return self.name


class _Poisson(Family):
    name = "poisson"

    def logpdf(self, y, eta, param, ns):
        """See :meth:`Family.logpdf`."""
        return y * eta - ns.exp(eta) - ns.gammaln(y + 1.0)

    def derivatives(self, y, eta, param, ns):
        """See :meth:`Family.derivatives`."""
        mu = ns.exp(eta)
        return Derivatives(y - mu, -mu, -mu)

    def start(self, y, param):
        """See :meth:`Family.start`."""
        return np.log(y + 0.5)


def _logistic_derivatives(y, eta, shift, weight, ns):
    q = ns.sigmoid(eta - shift)
    second = -weight * q * (1.0 - q)
    return Derivatives(y - weight * q, second, second * (1.0 - 2.0 * q))


class Binomial(Family):
    """Binomial counts out of known ``n`` trials, logit link (``n = 1``: Bernoulli).

    Parameters
    ----------
    n : int, array_like of int or pm.Data
        Number of trials, positive; a scalar or one per time step (shape (T,), broadcast
        against the data). A ``pm.Data`` stays in the model's graph, so that
        :func:`~pymc_dlm.forecast` can take its future values in ``new_data``.

    Attributes
    ----------
    param : numpy.ndarray or TensorVariable
        The trials as the model's graph takes them.
    trials : numpy.ndarray
        Their values now (float64), for the checks of the data.
    """

    name = "binomial"

    def __init__(self, n):
        value = fixed_value(n) if not isinstance(n, (int, np.integer)) else np.asarray(n)
        if value is None:
            raise TypeError("Binomial(n): n (the number of trials) must be fixed numbers")
        value = np.asarray(value)
        if not np.all(np.isfinite(value)) or np.any(value < 1) or np.any(value != np.round(value)):
            raise ValueError(
                f"Binomial(n): n (the number of trials) must be positive integers, got {value}"
            )
        self.trials = value.astype("float64")
        self.param = n if isinstance(n, SharedVariable) else self.trials

    def logpdf(self, y, eta, param, ns):
        """See :meth:`Family.logpdf`."""
        n = param
        choose = ns.gammaln(n + 1.0) - ns.gammaln(y + 1.0) - ns.gammaln(n - y + 1.0)
        return choose + y * eta - n * ns.softplus(eta)

    def derivatives(self, y, eta, param, ns):
        """See :meth:`Family.derivatives`."""
        return _logistic_derivatives(y, eta, 0.0, param, ns)

    def start(self, y, param):
        """See :meth:`Family.start`."""
        p = (y + 0.5) / (param + 1.0)
        return np.log(p) - np.log1p(-p)

    def __repr__(self):  # noqa: D105
        return f"Binomial(n={self.trials if self.trials.ndim == 0 else '...'})"


class _Bernoulli(Binomial):
    name = "bernoulli"

    def __init__(self):
        self.trials = np.asarray(1.0)
        self.param = self.trials

    def __repr__(self):  # noqa: D105
        return "bernoulli"


class NegativeBinomial(Family):
    r"""Negative binomial counts, log link, PyMC's ``NegativeBinomial(mu, alpha)``.

    :math:`\mathrm{Var}(y) = \mu + \mu^2/\alpha`; :math:`\alpha \to \infty` is the Poisson.

    Parameters
    ----------
    alpha : float or TensorVariable
        Dispersion, positive; may be a PyMC variable (sampled with the other parameters).
    """

    name = "negative_binomial"

    def __init__(self, alpha):
        self.param = as_float_tensor(alpha, "NegativeBinomial(alpha)", max_ndim=0)
        value = fixed_value(self.param)
        if value is not None and (not np.all(np.isfinite(value)) or np.any(value <= 0)):
            raise ValueError(f"NegativeBinomial(alpha): alpha must be positive, got {value}")

    def logpdf(self, y, eta, param, ns):
        """See :meth:`Family.logpdf`."""
        alpha = param
        return (
            ns.gammaln(y + alpha)
            - ns.gammaln(alpha)
            - ns.gammaln(y + 1.0)
            + alpha * ns.log(alpha)
            + y * eta
            - (y + alpha) * (ns.log(alpha) + ns.softplus(eta - ns.log(alpha)))
        )

    def derivatives(self, y, eta, param, ns):
        """See :meth:`Family.derivatives`."""
        return _logistic_derivatives(y, eta, ns.log(param), y + param, ns)

    def start(self, y, param):
        """See :meth:`Family.start`."""
        return np.log(y + 0.5)

    def __repr__(self):  # noqa: D105
        return "NegativeBinomial(alpha)"


def family_kind(name):
    """A family of the given :attr:`Family.name` whose parameter is passed separately."""
    kinds = {
        "poisson": _Poisson,
        "bernoulli": _Bernoulli,
        "binomial": Binomial,
        "negative_binomial": NegativeBinomial,
    }
    return object.__new__(kinds[name])


def as_family(family, name="family"):
    """The :class:`Family` of ``family=``: a name or an instance; ``None`` for "gaussian"."""
    if isinstance(family, Family):
        return family
    if isinstance(family, str):
        key = family.lower()
        if key == "gaussian":
            return None
        if key == "poisson":
            return _Poisson()
        if key == "bernoulli":
            return _Bernoulli()
        if key in ("binomial", "negative_binomial", "negativebinomial"):
            raise ValueError(
                f"{name}={family!r} needs its parameter: give pymc_dlm.Binomial(n) or "
                f"pymc_dlm.NegativeBinomial(alpha), got the name {family!r} alone"
            )
    raise ValueError(
        f"{name} must be 'gaussian', 'poisson', 'bernoulli', pymc_dlm.NegativeBinomial(alpha) "
        f"or pymc_dlm.Binomial(n), got {family!r}"
    )


def check_counts(family, y, name="y"):
    """Refuse data the family cannot have produced (NaN marks a missing value)."""
    y = np.asarray(y, dtype="float64")
    seen = y[~np.isnan(y)]
    if np.any(np.isinf(seen)):
        raise ValueError(f"{name} must be finite (NaN marks a missing value)")
    bad = seen[(seen < 0) | (seen != np.round(seen))]
    if bad.size:
        raise ValueError(
            f"{name} must hold non-negative integer counts for family={family!r}, got {bad[0]}"
        )
    if isinstance(family, Binomial):
        n = np.broadcast_to(family.trials, y.shape)[~np.isnan(y)]
        over = seen > n
        if np.any(over):
            raise ValueError(
                f"{name} must not exceed the number of trials of family={family!r}, got "
                f"{seen[over][0]:g} successes out of {n[over][0]:g}"
            )
    return y
