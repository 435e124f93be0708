"""Base class of components: plain objects holding parameters, building a StateSpace."""

import functools

import numpy as np
import pytensor.tensor as pt

from pymc_dlm.model.checks import (
    as_float_tensor,
    check_sigma,
    constraint,
    known_value,
    static_dim,
)
from pymc_dlm.model.discount import check_discount
from pymc_dlm.model.statespace import StateSpace, as_statespace

__all__ = ["Component", "diag_factor", "int_param", "sigma_vector"]


class Component:
    """A named building block of a DLM.

    Subclasses keep their parameters as attributes and implement :meth:`build`, returning
    the :class:`~pymc_dlm.StateSpace` of the block. Components add with ``+`` like R
    ``dlm``'s models; observation noise is never part of a component.
    """

    name = "component"
    #: Number of trailing axes of ``self.sigma`` that are not batch axes.
    sigma_core_ndim = 0
    #: The block's discount factor (West & Harrison's component discounting), or ``None``.
    discount = None

    def __init_subclass__(cls, **kwargs):
        """Build every component when it is created, so bad input fails where it was written.

        A wrong ``m0``/``C0`` (a negative variance, a wrong shape) or a non-stationary fixed
        block under ``C0="stationary"`` raises in the component's constructor, not later
        when the model is used.
        """
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def init_and_build(self, *args, **kw):
            init(self, *args, **kw)
            if type(self) is cls:
                _ = self.statespace

        cls.__init__ = init_and_build

    def build(self) -> StateSpace:  # pragma: no cover - abstract
        """Return the block's StateSpace."""
        raise NotImplementedError

    @property
    def statespace(self) -> StateSpace:
        """The block's :class:`~pymc_dlm.StateSpace` (built once)."""
        if getattr(self, "_statespace", None) is None:
            self._statespace = self.build()
        return self._statespace

    @property
    def state_labels(self):
        """Names of the block's states."""
        return self.statespace.state_labels

    @property
    def n_state(self):
        """Number of states of the block."""
        return self.statespace.n_state

    def __add__(self, other):
        """Superpose with another component or StateSpace (R dlm's ``+``)."""
        return self.statespace + as_statespace(other, "the operand of +")

    def __radd__(self, other):
        """Support ``sum([...])``, which starts from 0."""
        if other == 0:
            return self.statespace
        return as_statespace(other, "the operand of +") + self.statespace

    def _make(self, F, G, W_sqrt, labels, time_varying=()):
        return StateSpace(
            F,
            G,
            None,
            self.m0,
            self.C0,
            time_varying=time_varying,
            state_labels=labels,
            name=self.name,
            W_sqrt=W_sqrt if self.discount is None else None,
            constraints=self._constraints(),
            discount=self.discount,
        )

    def _noise(self, sigma, discount, names=("sigma",), default=None):
        """Exactly one of the standard deviation(s) ``sigma`` and ``discount``.

        Stores the discount factor (validated: a float in (0, 1] or a symbolic value) and
        returns what the block is built with: ``sigma``, or zeros when the block is
        discounted (its noise then follows the filter's covariances). ``default`` is the
        ``sigma`` of a block given neither (``None``: one of them is required).
        """
        sigmas = sigma if len(names) > 1 else (sigma,)
        given = [s is not None for s in sigmas]
        label = " and ".join(names)
        if discount is not None:
            if any(given):
                raise TypeError(
                    f"{type(self).__name__}: give {label} (standard deviations) or discount "
                    "(a discount factor), not both"
                )
            self.discount = check_discount(discount, "discount")
            return tuple(0.0 for _ in names) if len(names) > 1 else 0.0
        if not all(given):
            if default is not None:
                return default
            missing = [n for n, g in zip(names, given) if not g]
            raise TypeError(
                f"{type(self).__name__} needs {label} (standard deviations of the state noise) "
                f"or discount (a discount factor in (0, 1]); {', '.join(missing)} not given"
            )
        return sigma

    def _constraints(self):
        """Validity conditions of the symbolic parameters (see ``StateSpace.constraints``).

        A standard deviation must be non-negative: ``W`` holds only its square, so without
        this a negative value would pass for its absolute value.
        """
        ok = constraint(self.sigma, low=0.0, core_ndim=self.sigma_core_ndim)
        return () if ok is None else (ok,)


def int_param(x, name, *, minimum, maximum=None):
    """A fixed integer structural parameter (period, order, harmonics)."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer, float, np.floating)):
        raise TypeError(f"{name} must be a fixed integer, got {type(x).__name__}")
    if float(x) != int(x):
        raise ValueError(f"{name} must be an integer, got {x}")
    x = int(x)
    if x < minimum or (maximum is not None and x > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be {bound}, got {x}")
    return x


def sigma_vector(sigma, name, length):
    """Standard deviations with a last axis of ``length`` (a scalar is repeated)."""
    t = check_sigma(sigma, name)
    if t.ndim == 0:
        return t * pt.ones(length)
    if static_dim(t, -1) not in (length, 1):
        value = known_value(t)
        shape = value.shape if value is not None else tuple(t.type.shape)
        raise ValueError(f"{name} must be a scalar or have length {length}, got shape {shape}")
    return t * pt.ones(length)


def diag_factor(sigmas):
    """Diagonal factor matrices (..., n, n) from standard deviations (..., n)."""
    return sigmas[..., :, None] * pt.eye(sigmas.shape[-1])


def unit_row(n, index=0):
    """The (1, n) observation row selecting one state."""
    row = np.zeros((1, n))
    row[0, index] = 1.0
    return row


def scalar_param(x, name):
    """A scalar (possibly batched) real parameter."""
    return as_float_tensor(x, name)
