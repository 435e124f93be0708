"""Plots on hand-built DataTrees whose means and HDIs are known, and the command-line demo.

Witnesses: the draws at every time point are ``base_t + offsets`` with offsets ``(i / 10)^2``,
i = 0..99 (shuffled over chain and draw). Their mean is ``base_t + 32.835`` (the sum of squares
formula) and, the gaps between sorted offsets growing with i, the narrowest interval holding
90 of them (k = floor(0.9 * 100) = 90 steps) is ``[0, 9.0^2] = [0, 81]``. For general draws the
HDI helper is checked against ArviZ's own implementation.
"""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

import pymc_dlm as dlm  # noqa: E402
from pymc_dlm.postprocess.plots import _hdi  # noqa: E402

T, H = 8, 4
OFFSETS = (np.arange(100) / 10.0) ** 2
OFFSET_MEAN = (99 * 100 * 199 / 6) / 100 / 100  # mean of (i/10)^2 = 32.835
HDI90 = (0.0, 81.0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _draws(base):
    """(chain=2, draw=50, *base.shape): base + shuffled offsets, the same shuffle everywhere."""
    off = np.random.default_rng(1).permutation(OFFSETS).reshape(2, 50)
    base = np.asarray(base, dtype=float)
    return off.reshape(2, 50, *([1] * base.ndim)) + base


def _tree(time=None, future=None, batch=False, with_states=True, with_forecast=True):
    time = np.arange(1, T + 1) if time is None else time
    future = np.arange(T + 1, T + H + 1) if future is None else future
    level, slope = np.linspace(100.0, 200.0, T), -np.arange(T, dtype=float)
    states = _draws(np.stack([level, slope], axis=-1))  # (2, 50, T, 2)
    comps = _draws(np.stack([level, np.full(T, 5.0)], axis=-1))
    comps[..., 1] = 5.0  # the regression component is constant: the sum is level + 5 + offsets
    y = level + np.random.default_rng(2).normal(size=T)
    y[3] = np.nan
    lead, obs_dims = ("chain", "draw"), ("time",)
    if batch:  # two series: the second is the first plus 1000
        states = np.stack([states, states + 1000.0], axis=2)
        comps = np.stack([comps, comps + 1000.0], axis=2)
        y = np.stack([y, y + 1000.0])
        lead, obs_dims = ("chain", "draw", "region"), ("region", "time")
    coords = {"time": time, "x_state": ["level", "slope"], "x_component": ["level", "regression"]}
    if batch:
        coords["region"] = ["north", "south"]
    post = {"sigma": xr.DataArray(np.ones((2, 50)), dims=("chain", "draw"))}
    if with_states:
        for kind, shift in (("smoothed", 0.0), ("filtered", 10.0)):
            post[f"x_{kind}_state"] = (lead + ("time", "x_state"), states + shift)
        post["x_components"] = (lead + ("time", "x_component"), comps)
    groups = {
        "posterior": xr.Dataset(post, coords=coords),
        "observed_data": xr.Dataset({"x": (obs_dims, y)}, coords={k: coords[k] for k in obs_dims}),
    }
    if with_forecast:
        fc = _draws(np.linspace(200.0, 230.0, H))
        fc_state = _draws(np.stack([np.linspace(200.0, 230.0, H), np.zeros(H)], axis=-1))
        if batch:
            fc, fc_state = np.stack([fc, fc + 1000], axis=2), np.stack([fc_state, fc_state], 2)
        pcoords = {"time": future, "x_state": ["level", "slope"]}
        if batch:
            pcoords["region"] = ["north", "south"]
        groups["predictions"] = xr.Dataset(
            {
                "x": (lead + ("time",), fc),
                "x_forecast_state": (lead + ("time", "x_state"), fc_state),
            },
            coords=pcoords,
        )
    return xr.DataTree.from_dict(groups), level, y


def _line(ax, label):
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return line


def _band(ax, label):
    """(lower, upper) per x of the fill_between polygon labelled ``label``."""
    (coll,) = [c for c in ax.collections if c.get_label() == label]
    verts = coll.get_paths()[0].vertices
    xs = np.unique(verts[:, 0])
    return xs, np.array(
        [[verts[verts[:, 0] == x, 1].min(), verts[verts[:, 0] == x, 1].max()] for x in xs]
    )


def test_hdi_matches_hand_computation_and_arviz():
    rng = np.random.default_rng(0)
    lo, hi = _hdi(rng.permutation(OFFSETS), 0.9)
    assert (lo, hi) == HDI90
    from arviz_stats.base import array_stats

    x = rng.gamma(2.0, size=(5, 3, 401))
    for prob in (0.5, 0.94, 1.0):
        lo, hi = _hdi(x, prob)
        np.testing.assert_array_equal(np.stack([lo, hi], -1), array_stats.hdi(x, prob, axis=-1))


def test_plot_states_mean_band_and_data():
    tree, level, y = _tree()
    axes = dlm.plot_states(tree, "x", hdi_prob=0.9)
    assert len(axes) == 2 and all(isinstance(a, matplotlib.axes.Axes) for a in axes)
    assert [a.get_ylabel() for a in axes] == ["level", "slope"]
    mean = _line(axes[0], "posterior mean")
    np.testing.assert_array_equal(mean.get_xdata(), np.arange(1, T + 1))
    np.testing.assert_allclose(mean.get_ydata(), level + OFFSET_MEAN, rtol=1e-12)
    np.testing.assert_allclose(
        _line(axes[1], "posterior mean").get_ydata(), -np.arange(T) + OFFSET_MEAN, rtol=1e-12
    )
    xs, band = _band(axes[0], "90% HDI")
    np.testing.assert_array_equal(xs, np.arange(1, T + 1))
    np.testing.assert_allclose(band, level[:, None] + np.array(HDI90), rtol=1e-12)
    np.testing.assert_array_equal(_line(axes[0], "observed").get_ydata(), y)  # NaN kept as a gap
    assert not [ln for ln in axes[1].get_lines() if ln.get_label() == "observed"]


def test_plot_states_selection_kind_and_given_axes():
    tree, level, _ = _tree()
    fig, ax = plt.subplots()
    out = dlm.plot_states(tree, "x", states="level", kind="filtered", ax=ax, observed=False)
    assert list(out) == [ax]
    np.testing.assert_allclose(
        _line(ax, "posterior mean").get_ydata(), level + 10.0 + OFFSET_MEAN, rtol=1e-12
    )
    assert len(ax.get_lines()) == 1


def test_time_coordinate_taken_from_observed_data():
    """pm.sample's posterior carries no coordinate for the data's time dim; the data do."""
    years = np.arange(1871, 1871 + T)
    tree, level, _ = _tree(time=years)
    post = tree["posterior"].to_dataset().drop_vars("time")
    tree = xr.DataTree.from_dict({"posterior": post, "observed_data": tree["observed_data"]})
    for axes in (dlm.plot_states(tree, "x"), dlm.plot_components(tree, "x")):
        for label in ("posterior mean", "sum of components", "observed"):
            for line in [ln for ln in axes[0].get_lines() if ln.get_label() == label]:
                np.testing.assert_array_equal(line.get_xdata(), years)


def test_plot_states_errors():
    tree, _, _ = _tree()
    with pytest.raises(ValueError, match="kind"):
        dlm.plot_states(tree, "x", kind="predicted")
    with pytest.raises(ValueError, match="var_name"):
        dlm.plot_states(tree, "nope")
    with pytest.raises(ValueError, match="states"):
        dlm.plot_states(tree, "x", states=["level", "trend"])
    with pytest.raises(ValueError, match="hdi_prob"):
        dlm.plot_states(tree, "x", hdi_prob=1.5)
    with pytest.raises(ValueError, match="ax"):
        dlm.plot_states(tree, "x", ax=plt.subplots()[1])  # two states, one axes
    with pytest.raises(ValueError, match="sel"):
        dlm.plot_states(tree, "x", sel={"region": "north"})  # no such dimension
    bare, _, _ = _tree(with_states=False)
    with pytest.raises(ValueError, match="sample_states"):
        dlm.plot_states(bare, "x")
    with pytest.raises(TypeError, match="DataTree"):
        dlm.plot_states(bare["posterior"].to_dataset(), "x")


def test_batched_series_need_sel():
    tree, level, y = _tree(batch=True)
    for plot in (dlm.plot_states, dlm.plot_components, dlm.plot_forecast):
        with pytest.raises(ValueError, match=r"region.*sel="):
            plot(tree, "x")
    with pytest.raises(ValueError, match="sel"):
        dlm.plot_states(tree, "x", sel={"region": "east"})
    axes = dlm.plot_states(tree, "x", sel={"region": "south"})
    np.testing.assert_allclose(
        _line(axes[0], "posterior mean").get_ydata(), level + 1000 + OFFSET_MEAN, rtol=1e-12
    )
    np.testing.assert_array_equal(_line(axes[0], "observed").get_ydata(), y[1])
    axes = dlm.plot_components(tree, "x", sel={"region": "north"})
    np.testing.assert_allclose(
        _line(axes[0], "sum of components").get_ydata(), level + 5 + OFFSET_MEAN, rtol=1e-12
    )
    ax = dlm.plot_forecast(tree, "x", sel={"region": "south"})
    np.testing.assert_allclose(
        _line(ax, "forecast mean").get_ydata(), np.linspace(1200, 1230, H) + OFFSET_MEAN
    )


def test_plot_components_sum_and_panels():
    tree, level, y = _tree()
    axes = dlm.plot_components(tree, "x", hdi_prob=0.9)
    assert len(axes) == 3
    assert [a.get_ylabel() for a in axes] == ["x", "level", "regression"]
    np.testing.assert_allclose(
        _line(axes[0], "sum of components").get_ydata(), level + 5 + OFFSET_MEAN, rtol=1e-12
    )
    _, band = _band(axes[0], "90% HDI")  # the band of the summed draws
    np.testing.assert_allclose(band, level[:, None] + 5 + np.array(HDI90), rtol=1e-12)
    np.testing.assert_array_equal(_line(axes[0], "observed").get_ydata(), y)
    np.testing.assert_allclose(_line(axes[2], "posterior mean").get_ydata(), np.full(T, 5.0))
    _, band = _band(axes[2], "90% HDI")
    np.testing.assert_allclose(band, 5.0)
    with pytest.raises(ValueError, match="sample_states"):
        dlm.plot_components(_tree(with_states=False)[0], "x")


def test_plot_forecast_fan_integer_time():
    tree, level, y = _tree()
    ax = dlm.plot_forecast(tree, "x", hdi_prob=0.9, levels=(0.5, 0.8))
    assert isinstance(ax, matplotlib.axes.Axes)
    obs = _line(ax, "observed")
    np.testing.assert_array_equal(obs.get_xdata(), np.arange(1, T + 1))
    np.testing.assert_array_equal(obs.get_ydata(), y)
    mean = _line(ax, "forecast mean")
    np.testing.assert_array_equal(mean.get_xdata(), np.arange(T + 1, T + H + 1))
    np.testing.assert_allclose(mean.get_ydata(), np.linspace(200, 230, H) + OFFSET_MEAN)
    assert [c.get_label() for c in ax.collections] == ["90% HDI", "80% HDI", "50% HDI"]
    _, band = _band(ax, "90% HDI")
    np.testing.assert_allclose(band, np.linspace(200, 230, H)[:, None] + np.array(HDI90))
    _, inner = _band(ax, "50% HDI")
    assert np.all(inner[:, 0] >= band[:, 0]) and np.all(inner[:, 1] <= band[:, 1])


def test_plot_forecast_datetime_time_and_errors():
    dates = pd.date_range("2000-01-01", periods=T + H, freq="MS")
    tree, _, _ = _tree(time=dates[:T], future=dates[T:])
    ax = dlm.plot_forecast(tree, "x", levels=())
    assert [c.get_label() for c in ax.collections] == ["94% HDI"]
    lo, hi = ax.get_xlim()
    assert lo <= mdates.date2num(dates[0]) and hi >= mdates.date2num(dates[-1])
    with pytest.raises(ValueError, match="var_name"):
        dlm.plot_forecast(tree, "y")
    with pytest.raises(ValueError, match="levels"):
        dlm.plot_forecast(tree, "x", levels=(0.5, 0.0))
    with pytest.raises(ValueError, match="predictions"):
        dlm.plot_forecast(_tree(with_forecast=False)[0], "x")


@pytest.mark.parametrize("argv", [[], ["bogus"]])
def test_cli_without_a_known_command_exits_2(argv, capsys):
    from pymc_dlm.demo import main

    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    assert "usage: python -m pymc_dlm" in capsys.readouterr().err


def test_python_m_pymc_dlm_exits_2():
    res = subprocess.run(
        [sys.executable, "-m", "pymc_dlm"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2
    assert "usage:" in res.stderr and "demo" in res.stderr


@pytest.mark.slow
def test_demo_writes_png(tmp_path, capsys):
    from pymc_dlm.demo import main

    out = tmp_path / "x.png"
    assert (
        main(
            [
                "demo",
                "--draws",
                "50",
                "--tune",
                "50",
                "--chains",
                "1",
                "--out",
                str(out),
                "--seed",
                "1",
            ]
        )
        == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed
    assert "sigma_level" in printed and "sigma_obs" in printed
