"""The memory of recent modes behind the Laplace log-likelihood's node (warm starts, repeats).

Witnesses: ``kalman_filter(..., family=...)``, whose mode search starts from the data every
time, for the values the model's log-density returns whatever the start; a mode that is a
known linear function of the parameters for the interpolated start; a counter of searches
for the repeated points. Nothing is stored.
"""

import numpy as np
import pymc as pm

import pymc_dlm as dlm
from pymc_dlm.laplace import loglik as laplace_loglik
from pymc_dlm.laplace.mode_memory import ModeMemory

T = 24


def _counts():
    rng = np.random.default_rng(3)
    y = rng.poisson(np.exp(1.0 + np.cumsum(rng.normal(0, 0.1, T)))).astype(float)
    y[5] = np.nan
    return y


def _level(sd):
    return dlm.LocalLevel(sd, m0=1.0, C0=1.0)


def test_values_do_not_depend_on_the_start_and_repeats_search_nothing(monkeypatch):
    y = _counts()
    with pm.Model() as model:
        sd = pm.HalfNormal("sd", 0.3)
        dlm.DLM("y", _level(sd), family="poisson", observed=y)
    logp = model.compile_logp(vars=[model["y"]], jacobian=False)
    searches = []
    search = laplace_loglik.posterior_mode

    def counted(*args, **kwargs):
        searches.append(kwargs["start"])
        return search(*args, **kwargs)

    monkeypatch.setattr(laplace_loglik, "posterior_mode", counted)
    # Along a line (interpolated starts), back (nearest starts) and repeated points.
    sds = [0.1, 0.2, 0.3, 0.05, 0.2, 0.6, 0.3, 0.1]
    for i, value in enumerate(sds):
        before = len(searches)
        got = logp({"sd_log__": np.log(value)})
        expected = float(dlm.kalman_filter(_level(value), y, family="poisson").loglik)
        assert abs(got - expected) < 1e-9 * abs(expected), value
        repeated = value in sds[:i]
        assert len(searches) - before == (0 if repeated else 1), value
    assert searches[0] is None  # the first search starts from the data
    assert all(start is not None for start in searches[1:])


def _recorded(memory, keys, modes, y, offset):
    for key, mode in zip(keys, modes):
        memory.remember(key, y, offset, (mode, None))


def test_start_on_a_line_is_the_interpolated_mode_off_it_the_nearest():
    y, offset = np.arange(4.0), np.zeros(4)
    direction = np.array([1.0, -2.0, 0.5])
    base, slope = np.array([0.3, 1.0, -1.0, 2.0]), np.array([1.0, -1.0, 0.5, 0.25])

    def point(t):
        return np.array([1.0, 2.0, 3.0]) + t * direction

    def mode(t):  # a mode linear in the position along the line
        return base + t * slope

    memory = ModeMemory()
    _recorded(memory, [point(0.0), point(1.0), point(5.0)], [mode(0.0), mode(1.0), mode(5.0)],
              y, offset)  # fmt: skip
    for t in (0.4, 1.7, -0.6):  # between, beyond (within reach) and before the two nearest
        outputs, start = memory.recall(point(t), y, offset)
        assert outputs is None
        np.testing.assert_allclose(start, mode(t), rtol=1e-13, atol=1e-13)
    # Off the line: the mode of the nearest point.
    outputs, start = memory.recall(point(0.9) + np.array([0.0, 0.0, 0.1]), y, offset)
    assert outputs is None and np.array_equal(start, mode(1.0))
    # The very point: its outputs.
    outputs, start = memory.recall(point(5.0), y, offset)
    assert np.array_equal(outputs[0], mode(5.0)) and np.array_equal(start, mode(5.0))


def test_other_data_or_offset_forget_the_modes():
    y, offset = np.array([1.0, np.nan, 3.0]), np.zeros(3)
    memory = ModeMemory()
    key = np.array([0.5, 1.0])
    memory.remember(key, y, offset, (np.ones(3), None))
    assert memory.recall(key, y.copy(), offset)[0] is not None  # NaN equals NaN
    assert memory.recall(key, y + 1.0, offset) == (None, None)
    assert memory.recall(key, y, offset + 1.0) == (None, None)
    assert memory.recall(np.array([0.5, 1.0, 2.0]), y, offset) == (None, None)
    memory.remember(key, y + 1.0, offset, (np.zeros(3), None))  # the new data replace the old
    assert memory.recall(key, y, offset) == (None, None)


def test_threads_sharing_the_memory_get_the_outputs_of_their_own_point():
    # Threads sharing one compiled model share the node's memory: a point found there must
    # come back with its own outputs (here: the point itself) whatever the others record.
    import sys
    import threading

    y, offset = np.zeros(3), np.zeros(3)
    memory = ModeMemory()
    wrong = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(3000):
            key = np.array([float(rng.integers(0, 12)), 1.0])
            outputs, _ = memory.recall(key, y, offset)
            if outputs is None:
                memory.remember(key, y, offset, (key.copy(), None))
            elif not np.array_equal(outputs[0], key):
                wrong.append((key, outputs[0]))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not wrong, wrong[:3]
