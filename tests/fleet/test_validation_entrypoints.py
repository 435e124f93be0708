"""Input checks of fit_many: every bad argument is refused before any series is fitted.

The store is not even created. No sampling happens here.
"""

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import pymc_dlm as dlm


def _data():
    return pd.DataFrame({"id": ["a"] * 5 + ["b"] * 5, "y": np.arange(10.0)})


def _model_fn(frame):
    with pm.Model() as model:
        dlm.DLM("y", dlm.LocalLevel(1.0), sigma_obs=1.0, observed=frame["y"].to_numpy())
    return model


def _no_dlm(frame):
    with pm.Model() as model:
        pm.Normal("mu")
    return model


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"data": {"id": [1]}}, TypeError, "data must be a pandas DataFrame"),
        ({"by": "series"}, KeyError, "by: .*'series'"),
        ({"by": []}, TypeError, "by must be"),
        ({"model_fn": "not callable"}, TypeError, "model_fn must be callable"),
        ({"model_fn": lambda frame: None}, TypeError, "model_fn must return a pm.Model"),
        ({"model_fn": _no_dlm}, ValueError, "model_fn must return a model with exactly one DLM"),
        ({"store": 3}, TypeError, "store must be"),
        ({"sample_kwargs": {"random_seed": 1}}, ValueError, "sample_kwargs must not set"),
        ({"forecast_steps": -1}, ValueError, "forecast_steps"),
        ({"random_seed": 1.5}, ValueError, "random_seed"),
        ({"client": object()}, TypeError, "client must be"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path, kwargs, error, match):
    store = tmp_path / "fits.zarr"
    args = {"data": _data(), "model_fn": _model_fn, "by": "id", "store": str(store)}
    args.update(kwargs)
    data, model_fn = args.pop("data"), args.pop("model_fn")
    with pytest.raises(error, match=match):
        dlm.fit_many(data, model_fn, progressbar=False, **args)
    assert not store.exists()
