"""The declared structure that the DLM variable ops carry (Gaussian, discounted, family)."""

__all__ = ["resized", "set_structure"]


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


def resized(op, dist, new_size, expand=False):
    """The variable rebuilt with a new batch size (PyMC's ``change_dist_size``).

    For the ops whose last input is the random generator and whose ``structure()`` gives
    the keyword arguments of ``rv_op``; ``expand`` puts ``new_size`` in front of the old
    batch shape.
    """
    if expand:
        old = tuple(dist.shape[i] for i in range(dist.ndim - op.ndim_supp))
        new_size = tuple(new_size) + old
    return op.rv_op(*dist.owner.inputs[:-1], **op.structure(), size=new_size)
