"""The declared structure that both DLM variable ops carry (``DLMRV``, ``DiscountedDLMRV``)."""

__all__ = ["set_structure"]


def set_structure(op, *, time_varying, obs_diag, univariate, state_labels, components, diffuse):
    """Store the structure of a DLM on its op, normalised.

    Declared time-varying matrices (a frozenset), the diffuse mask (``None`` when no state is
    diffuse), state labels, component spans, and whether the noise is diagonal and the
    series univariate.
    """
    op.time_varying = frozenset(time_varying)
    op.diffuse = None if diffuse is None or not any(diffuse) else tuple(map(bool, diffuse))
    op.state_labels = state_labels
    op.components = components
    op.obs_diag = bool(obs_diag)
    op.univariate = bool(univariate)
