"""Nothing lost: DataTrees from ``sample_states`` and ``forecast`` survive netCDF and Zarr.

The model and data are those of ``tests/postprocess/test_states.py``, built by
``tests/support/fixed_posterior.py`` (a local linear trend with a noiseless slope plus a dummy
seasonal, monthly datetime coordinates, two missing values); the "posterior" holds one fixed
value per draw and only a few draws, and the draws are evaluated on pytensor's Python backend,
to keep the test fast.
The input DataTree also carries attributes on the root and on its groups, as ``pm.sample``'s
result does.

Every group, variable, dimension, coordinate (the datetime ones included, for the data and for
the forecast horizon) and attribute must come back identical (``xarray.testing.assert_identical``
per group, plus explicit dtype checks of the datetime coordinates).
"""

import numpy as np
import pandas as pd
import pytensor
import pytest
import xarray as xr

import pymc_dlm as dlm
from tests.support.fixed_posterior import trend_seasonal_data, trend_seasonal_fit

N_CHAIN, N_DRAW = 2, 5
STEPS = 4


@pytest.fixture(scope="module")
def trees():
    attrs = {"created_at": "2026-11-24T00:00:00", "sampling_time": 1.5, "tuning_steps": 10}
    model, idata = trend_seasonal_fit(trend_seasonal_data(), N_CHAIN, N_DRAW, attrs=attrs)
    observed = idata["observed_data"].to_dataset()
    observed["y"].attrs["units"] = "flow"
    idata["observed_data"] = observed
    idata.attrs["inference_library"] = "pymc"
    # Python-backend compilation: seconds instead of minutes of numba JIT; the DataTree
    # assembly under test is the same whatever backend evaluates the draws.
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        states = dlm.sample_states(
            idata, model, random_seed=1, progressbar=False, log_likelihood=True
        )
        fc = dlm.forecast(states, model, steps=STEPS, random_seed=2, progressbar=False)
    return {"sample_states": states, "forecast": fc}


def _write_read(tree, tmp_path, fmt):
    if fmt == "netcdf":
        path = tmp_path / "tree.nc"
        tree.to_netcdf(path, engine="h5netcdf")
        with xr.open_datatree(path, engine="h5netcdf") as back:
            return back.load()
    pytest.importorskip("zarr")
    path = tmp_path / "tree.zarr"
    tree.to_zarr(path)
    with xr.open_datatree(path, engine="zarr") as back:
        return back.load()


@pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")
@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
@pytest.mark.parametrize("which", ["sample_states", "forecast"])
def test_datatree_roundtrip_is_identical(trees, tmp_path, fmt, which):
    tree = trees[which]
    back = _write_read(tree, tmp_path, fmt)
    assert sorted(back.children) == sorted(tree.children)
    assert back.attrs == tree.attrs
    for group in tree.children:
        ours, theirs = tree[group].to_dataset(), back[group].to_dataset()
        xr.testing.assert_identical(theirs, ours)
        for name, coord in ours.coords.items():
            assert theirs[name].dtype.kind == coord.dtype.kind, (group, name)
            if np.issubdtype(coord.dtype, np.datetime64):
                np.testing.assert_array_equal(theirs[name].values, coord.values)
        for name, var in ours.data_vars.items():
            assert theirs[name].dtype == var.dtype, (group, name)


def test_trees_hold_what_the_roundtrip_must_keep(trees):
    """The round trip above is not vacuous: the trees have the groups and datetimes at stake."""
    states, fc = trees["sample_states"], trees["forecast"]
    assert {"posterior", "observed_data", "log_likelihood"} <= set(states.children)
    post = states["posterior"]
    for var in ("y_filtered_state", "y_smoothed_state", "y_components"):
        assert var in post.data_vars
        assert post[var].attrs["description"]
    assert post["month"].dtype.kind == "M"
    assert states["posterior"].attrs["tuning_steps"] == 10
    pred = fc["predictions"]
    assert pred["month"].dtype.kind == "M"
    expected = pd.date_range("2021-09-01", periods=STEPS, freq="MS")
    np.testing.assert_array_equal(pred["month"].values, expected.values)
    assert {"y", "y_forecast_state"} <= set(pred.data_vars)
