"""Fused numba route of the Kalman log-likelihood (see :mod:`.ops` and :mod:`.kernels`)."""
