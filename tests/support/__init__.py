"""Helpers shared by the tests, imported as ``tests.support.<module>``; no test module here.

* ``oracles``: the independent reference implementations (see ``tests/README.md``);
* ``fixed_posterior``: posteriors held at fixed values, and the trend + seasonal fit;
* ``vague_prior``: the vague-prior trend + seasonal case of the mpmath and fused tests.
"""
