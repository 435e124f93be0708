"""Sequences and non-sequences of the recursions' scans, split by declared time variation."""

from typing import NamedTuple

import pytensor.tensor as pt

__all__ = ["ScanInputs", "scan_inputs", "time_first"]


def time_first(x, core_ndim):
    """Move the time axis (just before the ``core_ndim`` core axes) to the front."""
    return pt.moveaxis(x, x.ndim - core_ndim - 1, 0)


class ScanInputs(NamedTuple):
    """Named scan sequences and non-sequences, and how to unpack the step's arguments."""

    seq_names: list
    sequences: list
    fixed_names: list
    fixed: list

    def unpack(self, args, n_carry):
        """Split a step's arguments into ({name: matrix}, carried values)."""
        k = len(self.seq_names)
        mats = dict(zip(self.seq_names, args[:k]))
        mats.update(zip(self.fixed_names, args[k + n_carry :]))
        return mats, list(args[k : k + n_carry])


def scan_inputs(sequences, matrices, time_varying, offset=0):
    """Declare ``sequences`` (name -> time-first tensor) and matrices (name, value, core ndim).

    A matrix declared time-varying becomes a sequence (from time index ``offset``), any other a
    non-sequence passed whole to every step.
    """
    seq_names, seqs = list(sequences), list(sequences.values())
    fixed_names, fixed = [], []
    for name, value, core in matrices:
        if name in time_varying:
            seq_names.append(name)
            seqs.append(time_first(value, core)[offset:])
        else:
            fixed_names.append(name)
            fixed.append(value)
    return ScanInputs(seq_names, seqs, fixed_names, fixed)
