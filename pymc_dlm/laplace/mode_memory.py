r"""The modes found at recent parameter values: repeated points and warm starts for NUTS.

NUTS evaluates the Laplace log-likelihood along leapfrog trajectories. Two facts of that
pattern make a memory of the last few searches pay:

* every iteration of PyMC's sampler evaluates its starting point again, a point already
  evaluated in the previous trajectory: with the same inputs (bitwise), the search's outputs
  are returned again, with no smoother run;
* a tree grows in both directions from its starting point, so the parameter value nearest
  to the new one is often not the last one evaluated: the search starts from the mode found
  at the nearest recorded value (Euclidean distance over the state model's inputs and the
  family's parameter), whose Newton step from there is the first-order predictor of the new
  mode (Durbin & Koopman 2012, §10.6).

The search's answer does not depend on its start beyond its tolerance
(:data:`pymc_dlm.laplace.mode.TOL`): the mode is unique for the log-concave families.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§10.6.
"""

from collections import deque

import numpy as np

__all__ = ["ModeMemory"]

#: Searches remembered per shape of the data.
SIZE = 8


class ModeMemory:
    """The outputs of the last :data:`SIZE` successful searches, per shape of the data.

    The searches remembered for one shape share their data and offset: a search with other
    data or another offset (a ``pm.Data`` changed between fits) forgets the others. Threads
    that share one compiled model (and so this memory) may record and recall at once: every
    entry pairs a point with its outputs, and a recall reads a copy of the entries.
    """

    def __init__(self, size=SIZE):
        self.size = size
        self._groups = {}

    @staticmethod
    def key(matrices, param):
        """The point of parameter space: every input of the state model and the parameter."""
        parts = [np.ravel(np.asarray(m, dtype="float64")) for m in matrices]
        parts.append(np.ravel(np.asarray(param, dtype="float64")))
        return np.concatenate(parts)

    def _group(self, key, y, offset):
        group = self._groups.get(y.shape)
        if group is None or not group.holds(key, y, offset):
            return None
        return group

    def recall(self, key, y, offset):
        """The outputs of a search at these very inputs, and a start for a new search.

        Returns ``(outputs, start)``: ``outputs`` None unless a recorded search had these
        inputs; ``start`` None without a recorded search on the same data. The start is the
        mode at the nearest recorded point, or, where the new point lies on the line through
        the two nearest (as along a leapfrog trajectory of one parameter), the modes' linear
        interpolation or extrapolation there.
        """
        group = self._group(key, y, offset)
        # A copy of the entries taken at once: another thread may record a search meanwhile
        # (threads sharing one compiled model); each entry pairs a point with its outputs.
        entries = list(group.entries) if group is not None else []
        if not entries:
            return None, None
        points = np.stack([point for point, _ in entries])
        distances = np.sum((points - key) ** 2, axis=1)
        order = np.argsort(distances, kind="stable")
        nearest = order[0]
        outputs = entries[nearest][1]
        if distances[nearest] == 0.0 and np.array_equal(points[nearest], key):
            return outputs, outputs[0]
        first = (distances[nearest], points[nearest], outputs[0])
        if len(order) == 1:
            return None, first[2]
        second = order[1]
        return None, _on_line(key, first, (None, points[second], entries[second][1][0]))

    def remember(self, key, y, offset, outputs):
        """Record the outputs of a search (arrays the caller does not modify afterwards)."""
        group = self._group(key, y, offset)
        if group is None:
            group = self._groups[y.shape] = _Group(key.shape, y, offset, self.size)
        group.entries.append((key, outputs))


class _Group:
    """Searches on one data set: ``(point, outputs)`` pairs, oldest first."""

    def __init__(self, key_shape, y, offset, size):
        self.key_shape = key_shape
        self.y = y.copy()
        self.offset = np.array(offset)
        self.entries = deque(maxlen=size)

    def holds(self, key, y, offset):
        """Whether a search at ``key`` on ``y``, ``offset`` belongs here."""
        return (
            key.shape == self.key_shape
            and np.array_equal(self.y, y, equal_nan=True)
            and np.array_equal(self.offset, offset)
        )


#: Largest distance from the line through the two nearest points, relative to the distance
#: to the nearest, at which the modes are interpolated along it.
COLLINEAR = 1e-6

#: Largest step along that line, in units of the distance between the two points.
REACH = 2.0


def _on_line(key, first, second):
    """The mode at ``key`` interpolated from the two nearest ``(distance², point, mode)``."""
    dist1, p1, s1 = first
    _, p2, s2 = second
    direction = p2 - p1
    length = float(direction @ direction)
    if length == 0.0:
        return s1
    along = float((key - p1) @ direction) / length
    off_line = dist1 - along * along * length
    if abs(along) > REACH or off_line > COLLINEAR**2 * dist1:
        return s1
    return s1 + along * (s2 - s1)
