"""Block assembly of batched (and possibly time-varying) matrices."""

import pytensor.tensor as pt

__all__ = ["block_diag", "broadcast_leading", "concat_last", "lead_shape"]


def lead_shape(x, k):
    """The first ``k`` entries of ``x.shape``, with statically known 1s as the integer 1.

    ``pt.broadcast_shape`` only treats constant 1s as broadcastable.
    """
    return tuple(1 if x.type.shape[i] == 1 else x.shape[i] for i in range(k))


def broadcast_leading(tensors, core_ndim):
    """Broadcast all axes but the last ``core_ndim`` of each tensor to a common shape."""
    if len(tensors) == 1:
        return list(tensors)
    lead_ndim = max(t.ndim - core_ndim for t in tensors)
    padded = [pt.shape_padleft(t, lead_ndim - (t.ndim - core_ndim)) for t in tensors]
    if lead_ndim == 0:
        return padded
    lead = pt.broadcast_shape(*[lead_shape(t, lead_ndim) for t in padded], arrays_are_shapes=True)
    return [
        pt.broadcast_to(t, (*lead, *(t.shape[i] for i in range(lead_ndim, t.ndim))))
        for t in padded
    ]


def concat_last(tensors, core_ndim):
    """Concatenate along the last axis after broadcasting the leading (batch/time) axes."""
    return pt.concatenate(broadcast_leading(tensors, core_ndim), axis=-1)


def block_diag(tensors):
    """Block-diagonal matrix of (..., r_i, c_i) blocks, broadcasting the leading axes."""
    tensors = broadcast_leading(tensors, 2)
    if len(tensors) == 1:
        return tensors[0]
    rows = []
    for i, t in enumerate(tensors):
        row = []
        for j, u in enumerate(tensors):
            if i == j:
                row.append(t)
            else:
                row.append(pt.zeros((*t.shape[:-1], u.shape[-1]), dtype=t.dtype))
        rows.append(pt.concatenate(row, axis=-1))
    return pt.concatenate(rows, axis=-2)
