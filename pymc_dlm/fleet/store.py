"""One zarr store of fitted series: a group per series, complete or absent.

Layout of a store ``<root>`` (a local path or any fsspec URL)::

    <root>/                 zarr group (the store's root)
    <root>/<name>/          one series' DataTree, written by ``DataTree.to_zarr``
    <root>.summary.csv      the last summary of fit_many (beside the store, not in it)

``<name>`` is :func:`~pymc_dlm.fleet.seeds.group_name` of the series key. A series is
*complete* when its group's attributes hold :data:`MARKER`, the series' summary row as JSON.
The marker is written last, after every array of the DataTree: a group without it (left by a
process that died while writing) counts as absent, and the next run overwrites it. The marker
is removed again when the tree is read back, so :func:`load_fit` returns the fit as it was.
Everything is written with ``consolidated=False``: the series groups are written separately,
and a consolidated index of the root would go stale after each.
"""

import math

import xarray as xr

from pymc_dlm.fleet.seeds import as_key, encode_key, group_name

__all__ = ["FleetStore", "load_fit", "MARKER"]

#: Attribute of a series group holding its summary row; present only once it is complete.
MARKER = "pymc_dlm_fleet"


def _json_value(value):
    """A summary value JSON can hold (NaN and infinities as None)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class FleetStore:
    """The store of a fleet at ``root``, a local path or an fsspec URL.

    Parameters
    ----------
    root : str or os.PathLike
        Where the zarr store lives. Created (as an empty zarr group) by :meth:`create`.
    storage_options : dict, optional
        Passed to fsspec and zarr (credentials, endpoints).
    """

    def __init__(self, root, storage_options=None):
        self.root = str(root).rstrip("/")
        self.storage_options = dict(storage_options or {})

    def _zarr_kwargs(self):
        return {"storage_options": self.storage_options} if self.storage_options else {}

    def url(self, key):
        """The URL of the group of series ``key``."""
        return f"{self.root}/{group_name(key)}"

    def create(self):
        """Create the root group if it does not exist yet."""
        import zarr

        zarr.open_group(self.root, mode="a", **self._zarr_kwargs())

    def completed(self):
        """``{encoded key: summary row}`` of every complete series in the store."""
        import zarr

        try:
            root = zarr.open_group(self.root, mode="r", **self._zarr_kwargs())
        except FileNotFoundError:
            return {}
        rows = {}
        for _, group in root.groups():
            marker = group.attrs.get(MARKER)
            if marker is not None:
                rows[marker["key_encoded"]] = marker["row"]
        return rows

    def row(self, key):
        """The stored summary row of series ``key``, or None if it is not complete."""
        import zarr

        try:
            group = zarr.open_group(self.url(key), mode="r", **self._zarr_kwargs())
        except FileNotFoundError:
            return None
        marker = group.attrs.get(MARKER)
        return None if marker is None else marker["row"]

    def write(self, key, tree, row):
        """Write ``tree`` as the group of series ``key``, then mark it complete with ``row``."""
        import zarr

        url = self.url(key)
        tree.to_zarr(url, mode="w", consolidated=False, **self._zarr_kwargs())
        marker = {
            "key_encoded": encode_key(key).decode(),
            "row": {k: _json_value(v) for k, v in row.items()},
        }
        group = zarr.open_group(url, mode="r+", **self._zarr_kwargs())
        group.attrs.update({MARKER: marker})

    def read(self, key):
        """The DataTree of series ``key``, loaded into memory, without the marker."""
        if self.row(key) is None:
            raise KeyError(f"key: series {as_key(key)!r} is not complete in store {self.root!r}")
        kwargs = {"storage_options": self.storage_options} if self.storage_options else {}
        with xr.open_datatree(self.url(key), engine="zarr", consolidated=False, **kwargs) as t:
            tree = t.load()
        tree.attrs.pop(MARKER, None)
        return tree

    @property
    def summary_url(self):
        """Where the summary table is written: ``<root>.summary.csv``, beside the store."""
        return f"{self.root}.summary.csv"

    def write_summary(self, frame):
        """Write the summary DataFrame as CSV beside the store (through fsspec)."""
        import fsspec

        with fsspec.open(self.summary_url, "w", **self.storage_options) as f:
            frame.to_csv(f, index=False)


def load_fit(store, key, *, storage_options=None):
    """Read one series' fit back from a store written by :func:`fit_many`.

    Parameters
    ----------
    store : str or os.PathLike
        The store given to :func:`fit_many`: a local path or an fsspec URL.
    key : scalar or tuple
        The series' value of ``by`` (a tuple when ``by`` names several columns).
    storage_options : dict, optional
        Passed to fsspec and zarr.

    Returns
    -------
    xarray.DataTree
        The groups of the fit (``posterior``, ``sample_stats``, ``observed_data`` ... and the
        ``predictions`` of a forecast), loaded into memory, with the values, dtypes and
        attributes the fit had before it was written.

    Raises
    ------
    KeyError
        If the series is absent from the store or was not written completely.
    """
    return FleetStore(store, storage_options).read(key)
