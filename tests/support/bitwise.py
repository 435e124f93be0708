"""Two compiled log-density functions of one model that must agree to the last bit."""

import numpy as np
from pymc.blocking import DictToArrayBijection


def assert_bitwise_equal(model, fast, general, rng):
    """``fast`` and ``general`` (``logp_dlogp_function``s of ``model``) give the same bits.

    At the initial point and at a point moved by U(-0.5, 0.5) on the unconstrained scale;
    the log-density must be finite there.
    """
    ip = model.initial_point()
    q0 = DictToArrayBijection.map({v.name: ip[v.name] for v in model.value_vars}).data
    for q in (q0, q0 + rng.uniform(-0.5, 0.5, size=q0.shape)):
        a_logp, a_grad = fast(q)
        b_logp, b_grad = general(q)
        assert np.isfinite(a_logp)
        assert a_logp == b_logp
        assert np.array_equal(a_grad, b_grad)
