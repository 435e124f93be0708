"""Series keys and the seeds derived from them, independent of the schedule.

A series is named by its values in the ``by`` columns, always held as a tuple (a single
column gives a 1-tuple). The key is encoded canonically (:func:`encode_key`), hashed with
SHA-256, and the digest joins the user's ``random_seed`` in a :class:`numpy.random.SeedSequence`
(:func:`series_seeds`). Python's ``hash`` is not used: it is salted per process, so two
workers would derive different seeds for the same series.
"""

import datetime
import hashlib
import json
import re
from typing import NamedTuple

import numpy as np

__all__ = ["as_key", "encode_key", "group_name", "series_seeds", "SeriesSeeds"]


def _plain(value):
    """A numpy or pandas scalar as the Python scalar it holds."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def as_key(key):
    """The tuple form of a series key: a scalar becomes a 1-tuple, numpy scalars Python ones."""
    if isinstance(key, list):
        key = tuple(key)
    if not isinstance(key, tuple):
        key = (key,)
    return tuple(_plain(v) for v in key)


def _encode_value(value):
    """One key value as a (type tag, text) pair that is the same in every process."""
    # bool before int: bool is a subclass of int, and True must not equal the key 1.
    if value is None:
        return ["none", ""]
    if isinstance(value, bool):
        return ["bool", str(value)]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, float):
        return ["float", value.hex()]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, (datetime.datetime, datetime.date)):  # pandas Timestamp included
        return ["datetime", value.isoformat()]
    raise TypeError(
        f"by: series key values must be str, int, float, bool, None or datetimes; got "
        f"{value!r} of type {type(value).__name__}"
    )


def encode_key(key):
    """Canonical bytes of a series key: JSON of its (type, text) pairs, in order."""
    pairs = [_encode_value(v) for v in as_key(key)]
    return json.dumps(pairs, ensure_ascii=True, separators=(",", ":")).encode()


def group_name(key):
    """The store group of a series: a readable slug of its key and 12 hex digits of its hash.

    The slug keeps letters, digits, ``.``, ``-`` and ``_`` of each value (others become
    ``_``), values joined by ``__``, at most 60 characters; the hash makes names unique.
    """
    digest = hashlib.sha256(encode_key(key)).hexdigest()[:12]
    slug = "__".join(re.sub(r"[^A-Za-z0-9._-]", "_", str(v)) for v in as_key(key))
    return f"{slug[:60].lstrip('.')}-{digest}"


class SeriesSeeds(NamedTuple):
    """Seeds of one series: for ``pm.sample``, ``sample_states`` and ``forecast``."""

    sample: int
    states: int
    forecast: int


def series_seeds(random_seed, key):
    """The seeds of series ``key`` under ``random_seed``; the same in every process.

    Parameters
    ----------
    random_seed : int or sequence of int
        The run's seed (non-negative integers).
    key : scalar or tuple
        The series' values of the ``by`` columns.

    Returns
    -------
    SeriesSeeds
        Three integers below 2**63, from three children of
        ``SeedSequence(random_seed, spawn_key=<SHA-256 words of the key>)``.
    """
    digest = hashlib.sha256(encode_key(key)).digest()
    words = tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4))
    root = np.random.SeedSequence(random_seed, spawn_key=words)
    ints = [int(child.generate_state(1, np.uint64)[0] >> np.uint64(1)) for child in root.spawn(3)]
    return SeriesSeeds(*ints)
