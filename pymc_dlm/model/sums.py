r"""Sums of models (``dlm``'s ``+``): the fields of the superposed StateSpace.

For models :math:`(F_i, G_i, W_i, m_{0,i}, C_{0,i})` of one series, the sum has the states of
every part stacked: :math:`F = [F_1\ F_2\ \cdots]`, :math:`G`, :math:`W` and :math:`C_0`
block-diagonal, :math:`m_0` concatenated (Petris, Petrone & Campagnoli 2009, §3.2; West &
Harrison 1997, §6.2, superposition). A matrix that varies over time in one part gains a time
axis of length 1 in the others.
"""

import numpy as np
import pytensor.tensor as pt

from pymc_dlm.model.blocks import block_diag, concat_last

__all__ = ["block_sum", "unique_labels"]


def block_sum(a, b):
    """Keyword arguments of the StateSpace that superposes StateSpaces ``a`` and ``b``.

    Every sum is built from the leaf blocks at once: nesting block matrices sum after sum
    makes graphs whose rewriting time grows steeply with the number of components.
    """
    if b.n_series != a.n_series:
        raise ValueError(f"cannot add models with {a.n_series} and {b.n_series} series")
    parts = [*a.parts, *b.parts]
    tv = a.time_varying | b.time_varying

    def take(attr, core):
        out = []
        for part in parts:
            t = getattr(part, attr)
            if attr in tv and attr not in part.time_varying:
                t = pt.shape_padaxis(t, -core - 1)
            out.append(t)
        return out

    F = concat_last(take("F", 2), 2)
    labels = unique_labels(a.state_labels + b.state_labels)
    names = unique_labels(tuple(c[0] for c in a.components + b.components))
    offset = a.n_state
    spans = [c[1:] for c in a.components] + [
        (lo + offset, hi + offset) for _, lo, hi in b.components
    ]
    return dict(
        F=pt.specify_shape(F, (*(None,) * (F.ndim - 2), a.n_series, len(labels))),
        G=block_diag(take("G", 2)),
        W=None,
        m0=concat_last(take("m0", 1), 1),
        C0=block_diag(take("C0", 2)),
        time_varying=tuple(sorted(tv)),
        state_labels=labels,
        W_sqrt=block_diag(take("W_sqrt", 2)),
        name=f"{a.name}+{b.name}",
        components=tuple((nm, lo, hi) for nm, (lo, hi) in zip(names, spans)),
        C0_sqrt=block_diag(take("C0_sqrt", 2)),
        parts=tuple(parts),
        diffuse=np.concatenate([part.diffuse for part in parts]),
        constraints=tuple(c for part in parts for c in part.constraints),
        discount=_discounts(parts),
    )


def _discounts(parts):
    """The per-state discount vector of a sum (1 on parts without one), or ``None``."""
    if all(part.discount is None for part in parts):
        return None
    vectors = [pt.ones(part.n_state) if part.discount is None else part.discount for part in parts]
    return concat_last(vectors, 1)


def unique_labels(labels):
    """``labels`` with repeats renamed ``<label>_2``, ``<label>_3``, ... in order."""
    seen, out = {}, []
    for lab in labels:
        if lab in seen:
            seen[lab] += 1
            new = f"{lab}_{seen[lab]}"
            while new in seen:
                seen[lab] += 1
                new = f"{lab}_{seen[lab]}"
            seen[new] = 1
            out.append(new)
        else:
            seen[lab] = 1
            out.append(lab)
    return tuple(out)
