r"""Posterior draws of a DLM with a non-Gaussian family: states, forecasts, IS correction.

For every posterior draw of the static parameters :math:`\psi` the model's matrices are
evaluated to numbers (one compiled function per variable), the mode of the signal is found
(:mod:`pymc_dlm.laplace.mode`, each search starting from the previous draw's mode), and
``n_importance`` draws of the states come from the approximating model's simulation smoother
with their importance weights (:mod:`pymc_dlm.laplace.importance`):

* :func:`family_state_draws`: one path :math:`\theta_{1:T}` per posterior draw, resampled
  in proportion to the weights (sampling importance resampling: exact as ``n_importance``
  grows; the effective sample size of each draw's weights is returned as a diagnostic);
* :func:`family_replicates`: observations drawn from the family given that path (the
  forecasts of :mod:`pymc_dlm.postprocess.family_forecast` continue it);
* :func:`importance_correct`: per posterior draw, the log-ratio of the importance-sampling
  estimate of :math:`p(y \mid \psi)` (unbiased) to the Laplace approximation that NUTS
  sampled, Pareto-smoothed (PSIS) over the draws. Expectations weighted by these weights
  are consistent for the exact posterior (the importance-sampling correction of Vihola,
  Helske & Franks 2020).

References
----------
Vihola, M., Helske, J. and Franks, J. (2020). Importance sampling type estimators based on
approximate marginal Markov chain Monte Carlo. *Scand. J. Statistics* 47, 1339–1376.
Vehtari, A. et al. (2024). Pareto smoothed importance sampling. *JMLR* 25(72).
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§11.4–11.5.
"""

import numpy as np
import scipy.special

from pymc_dlm.laplace.importance import importance_draws, resample
from pymc_dlm.laplace.mode import ModeNotFound, laplace_value, posterior_mode, signal_rows
from pymc_dlm.model.family import as_family, family_kind
from pymc_dlm.postprocess.over_draws import compile_at_draw
from pymc_dlm.postprocess.posterior import dlm_parameters
from pymc_dlm.postprocess.progress import chunked

__all__ = [
    "check_family",
    "counts_on_path",
    "draw_counts",
    "family_replicates",
    "family_state_draws",
    "importance_at_draws",
    "resampled_paths",
    "stacked",
]

_NAMES = ("F", "G", "W_sqrt", "m0", "C0_sqrt")


class _Draws:
    """The target's numbers at each posterior draw, and the mode search across draws."""

    def __init__(self, target, draws, states=True):
        self.states = states
        self.target = target
        self.draws = draws
        self.fn = compile_at_draw(target, dlm_parameters(target.rv))
        self.family = family_kind(target.op.family_name)
        self.y = np.asarray(target.data, dtype="float64")
        self.diffuse = self._diffuse_mask()
        self._start = None

    def _diffuse_mask(self):
        n = len(self.target.op.state_labels)
        mask = self.target.op.diffuse
        return np.zeros(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)

    def at(self, i):
        """(values, offset, param) at draw ``i``."""
        out = self.fn(*[d[i] for d in self.draws])
        values = {k: np.asarray(v, dtype="float64") for k, v in zip(_NAMES, out[:5])}
        offset = np.broadcast_to(np.asarray(out[5], dtype="float64"), self.y.shape)
        return values, offset, np.asarray(out[6], dtype="float64")

    def mode(self, values, offset, param):
        """The mode at these numbers (warm start from the last one; cold when that fails)."""
        for start in (self._start, None):
            try:
                found = posterior_mode(
                    values, self.y, self.family, offset, param,
                    time_varying=self.target.op.time_varying, diffuse=self.diffuse,
                    start=start, states=self.states,
                )  # fmt: skip
            except ModeNotFound:
                if start is None:
                    raise
                continue
            self._start = found.signal
            return found
        raise AssertionError("unreachable")


def check_family(targets, family):
    """``family=`` given to a post-processing function must be the model's (``None``: any)."""
    if family is None:
        return
    wanted = as_family(family)
    for target in targets:
        have = getattr(target.op, "family_name", "gaussian")
        name = "gaussian" if wanted is None else wanted.name
        if name != have:
            raise ValueError(
                f"family must be the family of {target.name!r} in the model ({have!r}), got "
                f"{family!r}; the family is set on pymc_dlm.DLM(..., family=...)"
            )


def _each_draw(target, draws, n_total, progressbar, description, states=True):
    """Yield (index, values, offset, param, mode) over the posterior draws."""
    state = _Draws(target, draws, states)
    for lo, hi in chunked(n_total, max(1, n_total // 20), progressbar, description):
        for i in range(lo, hi):
            values, offset, param = state.at(i if state.draws else 0)
            yield i, state, values, offset, param, state.mode(values, offset, param)


def resampled_paths(target, draws, n_total, rng, n_importance, progressbar, label):
    """Yield ``(i, values, offset, param, family, rows, path, weights)`` per posterior draw.

    ``values`` are the model's matrices at the draw, ``path`` one state path resampled from
    ``n_importance`` importance draws, ``weights`` their normalised weights and ``rows`` the
    rows of F (time axis included).
    """
    for i, state, values, offset, param, mode in _each_draw(
        target, draws, n_total, progressbar, f"{label}: {target.name}"
    ):
        found = importance_draws(
            values, state.y, state.family, offset, param, mode,
            time_varying=target.op.time_varying, diffuse=state.diffuse, n=n_importance, rng=rng,
        )  # fmt: skip
        rows = signal_rows(values["F"], "F" in target.op.time_varying)
        weights = scipy.special.softmax(found.log_weights, axis=0)
        yield i, values, offset, param, state.family, rows, resample(found, rng), weights


def stacked(out, i, n_total, value):
    """Store ``value`` as entry ``i`` of an array of ``n_total`` created on first use."""
    if out is None:
        out = np.empty((n_total, *np.shape(value)))
    out[i] = value
    return out


def family_state_draws(target, draws, n_total, rng, n_importance, progressbar=False):
    r"""One state path per posterior draw, its components and the weights' ESS.

    Returns paths (S, batch..., T, n), component contributions :math:`F_{c,t}\theta_{c,t}`
    (S, batch..., T, 1, n_comp) and the effective sample size of each draw's weights.
    """
    paths, ess, comps = None, None, None
    for i, _, _, _, _, rows, path, weights in resampled_paths(
        target, draws, n_total, rng, n_importance, progressbar, "sample_states"
    ):
        spans = target.op.components
        comp = np.stack([np.sum((rows * path)[..., lo:hi], axis=-1) for _, lo, hi in spans], -1)
        paths = stacked(paths, i, n_total, path)
        comps = stacked(comps, i, n_total, comp[..., None, :])
        ess = stacked(ess, i, n_total, 1.0 / np.sum(weights**2, axis=0))
    return paths, comps, ess


def family_replicates(target, draws, n_total, rng, n_importance, progressbar=False):
    """Replicated data (S, batch..., T): counts drawn given a state path per posterior draw."""
    out = None
    for i, _, offset, param, family, rows, path, _ in resampled_paths(
        target, draws, n_total, rng, n_importance, progressbar, "posterior_predictive"
    ):
        out = stacked(out, i, n_total, counts_on_path(family, rows, path, offset, param, rng))
    return out


def counts_on_path(family, rows, path, offset, param, rng, window=slice(None)):
    """Observations drawn given a state path (..., T, n), at the times ``window``."""
    eta = np.sum(rows * path, axis=-1) + offset
    param = np.broadcast_to(param, eta.shape)
    return draw_counts(family.name, eta[..., window], param[..., window], rng)


def draw_counts(name, eta, param, rng):
    """Observations of family ``name`` at linear predictor ``eta`` (floats; param: n or alpha)."""
    if name == "poisson":
        draw = rng.poisson(np.exp(eta))
    elif name in ("binomial", "bernoulli"):
        n = np.broadcast_to(param, np.shape(eta)).astype(np.int64)
        draw = rng.binomial(n, scipy.special.expit(eta))
    else:
        alpha = np.broadcast_to(param, np.shape(eta))
        draw = rng.negative_binomial(alpha, scipy.special.expit(np.log(alpha) - eta))
    return np.asarray(draw, dtype="float64")


def importance_at_draws(target, draws, n_total, rng, n_importance, progressbar=False):
    """Laplace and importance-sampling log-likelihoods (S,) with standard errors (S,)."""
    laplace = np.empty(n_total)
    exact = np.empty(n_total)
    se = np.empty(n_total)
    for i, state, values, offset, param, mode in _each_draw(
        target, draws, n_total, progressbar, f"importance_correct: {target.name}", states=False
    ):
        found = importance_draws(
            values, state.y, state.family, offset, param, mode,
            time_varying=target.op.time_varying, diffuse=state.diffuse, n=n_importance, rng=rng,
            states=False,
        )  # fmt: skip
        laplace[i] = np.sum(laplace_value(mode, state.y, state.family, offset, param))
        exact[i] = np.sum(found.loglik)
        se[i] = np.sqrt(np.sum(found.loglik_se**2))
    return laplace, exact, se
