"""Helpers shared by the tests, imported as ``tests.support.<module>``; no test module here.

* ``oracles``: the independent reference implementations (see ``tests/README.md``);
* ``fixed_posterior``: posteriors held at fixed values, and the trend + seasonal fit;
* ``vague_prior``: the vague-prior trend + seasonal case of the mpmath and fused tests;
* ``discount_oracles``: the independent oracles of the discounting / learned-variance tests;
* ``discount_cases``: the models (package and oracle side) and series those tests share.
"""
