r"""The discounted kernel behind one C entry point, called by symbol from graphs.

The same design as :mod:`pymc_dlm.kalman.fused.native` (read its docstring first): the kernel
of :mod:`~pymc_dlm.kalman.fused.discounted` and its adjoint
(:func:`~pymc_dlm.kalman.fused.discounted_adjoint.discounted_loglik_grad_into`) are compiled
once per machine, and cached, as one C function ``void entry(int64 address)``; a model's
graph calls it by name and does not contain it. Before, each new discounted model compiled
the kernel into its own graph, even with warm caches: 14–15 s from a new trend +
``Seasonal(12)`` model to its first value and gradient with a proper prior, now 5.5–6 s
(fixed W: 5 s; ``benchmarks/new_model_compile.py``, 2026-12-06).

The descriptor is :data:`pymc_dlm.kalman.fused.layout.DISCOUNT_GRAD`; its mask holds the
gradients wanted (bits 0-9, in the order of the inputs), whether the variance is learned
(bit 10) and whether the log-likelihood alone is wanted (bit 11: no tape, no backward pass,
and only the log-likelihood's output is described). :func:`register` must run before a
graph calling :func:`call_loglik` or :func:`call_loglik_grad` is compiled or loaded from a
cache; the numba dispatch of the discounted nodes
(:mod:`~pymc_dlm.kalman.fused.discounted_kernel_nodes`) calls it.
"""

import sys

import numba
import numpy as np
from numba import carray

from pymc_dlm import compat
from pymc_dlm.kalman.fused import (
    discounted,
    discounted_adjoint,
    discounted_diffuse,
    layout,
    native,
    prebuilt,
)
from pymc_dlm.kalman.fused.discounted import discounted_loglik
from pymc_dlm.kalman.fused.discounted_adjoint import discounted_loglik_grad_into

__all__ = ["VERSION", "register", "call_loglik", "call_loglik_grad", "LEARNED", "VALUE_ONLY"]

_D = layout.DISCOUNT_GRAD
_N = _D.size
_G = _D.offset("g")
_MASK = _D.need_at
_SPEC = _D.spec_at
_LOGLIK = _D.offset("loglik")
_N_INPUTS = len(layout.DISCOUNT_INPUTS)
#: Bits of the mask beyond the gradients wanted.
LEARNED = 1 << _N_INPUTS
VALUE_ONLY = 1 << (_N_INPUTS + 1)

#: Hash of the kernels' sources (the fixed-W kernels' helpers and the discounted modules)
#: and of this module: part of the entry's name and of its numba cache key.
VERSION = native._source_hash(
    *native.SOURCES, discounted, discounted_adjoint, discounted_diffuse, sys.modules[__name__]
)
_NAME = f"pymc_dlm_discounted_loglik_grad_{VERSION:x}"
_symbol = compat.external_function(_NAME, native._SIG)
_entries = {}


def _generated():
    """Readers and writers of the descriptor, generated from :mod:`~.layout`."""
    namespace = {"carray": carray, "f64_at": native._f64_at, "np": np}
    source = layout.numba_source(_D, record=None)
    exec(compile(source, "<pymc_dlm discounted descriptors>", "exec"), namespace)  # noqa: S102
    jit = numba.njit(nogil=True, inline="always")
    names = ("inputs", "describe", "grad_outputs", "describe_grad_outputs")
    return tuple(jit(namespace[name]) for name in names)


_inputs, _describe, _outputs, _describe_outputs = _generated()


def _make_entry(version):
    def discounted_entry(address):
        d = carray(native._i64_at(address), (_N,))
        y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale = _inputs(d)
        mask = d[_MASK]
        learned = (mask & LEARNED) != 0
        spec = native._spec(d, _SPEC)
        if (mask & VALUE_ONLY) != 0:
            loglik = carray(native._f64_at(d[_LOGLIK]), (y.shape[0],))
            loglik[:] = discounted_loglik(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale,
                                          learned, spec)  # fmt: skip
            return
        g = carray(native._f64_at(d[_G]), (d[_G + 1],))
        need = np.empty(_N_INPUTS, dtype=np.bool_)
        for i in range(_N_INPUTS):
            need[i] = (mask >> i) & 1 == 1
        out = _outputs(d, y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale)
        discounted_loglik_grad_into(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale,
                                    learned, g, need, spec, out)  # fmt: skip
        if version < 0:  # never: keeps ``version`` in the entry's cache key
            out[0][:] = np.nan

    return discounted_entry


def register():
    """Compile (or load from a store or numba's cache) the entry and register its symbol.

    Idempotent; nothing to do when graphs call the kernel directly (the fallback of
    :func:`pymc_dlm.compat.external_function`).
    """
    if _symbol is None or _NAME in _entries:
        return
    with compat.compiler_lock:
        if _NAME not in _entries:
            entry = compat.compile_entry(
                _make_entry(VERSION), native._SIG, prebuilt.STORE, "discounted_entry"
            )
            native.llvm.add_symbol(_NAME, entry.address)
            _entries[_NAME] = entry


def _make_callers(version):
    @numba.njit(cache=True, nogil=True)
    def call_loglik(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, mask, spec0, spec1):
        """The log-likelihood per batch member (B,), by the entry (``mask``: the flags)."""
        out = np.empty(y.shape[0])
        d = np.zeros(_N, dtype=np.int64)
        _describe(d, y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale)
        d[_MASK] = (mask | VALUE_ONLY) if version >= 0 else 0
        d[_LOGLIK] = out.ctypes.data
        d[_SPEC] = spec0
        d[_SPEC + 1] = spec1
        _symbol(d.ctypes.data)
        compat.keep_alive((d, out))
        return out

    @numba.njit(cache=True, nogil=True)
    def call_loglik_grad(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, g, mask, spec0,
                         spec1):  # fmt: skip
        """``(loglik, *gradients)`` by the entry (``mask``: gradients wanted and flags)."""
        out = (
            np.empty(y.shape[0]), np.empty(y.shape), np.empty(F.shape), np.empty(G.shape),
            np.empty(W_sqrt.shape), np.empty(obs_sd.shape), np.empty(m0.shape),
            np.empty(C0.shape), np.empty(disc.shape), np.empty(blocks.shape),
            np.empty(scale.shape),
        )  # fmt: skip
        d = np.zeros(_N, dtype=np.int64)
        _describe(d, y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale)
        d[_G] = g.ctypes.data
        d[_G + 1] = g.shape[0]
        d[_MASK] = mask if version >= 0 else 0
        _describe_outputs(d, out)
        d[_SPEC] = spec0
        d[_SPEC + 1] = spec1
        _symbol(d.ctypes.data)
        compat.keep_alive((d,))
        return out

    return call_loglik, call_loglik_grad


def _make_direct_callers(version):
    # The fallback of calls by symbol name: every graph links the kernel's code.

    @numba.njit(cache=True, nogil=True)
    def call_loglik(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, mask, spec0, spec1):
        """:func:`call_loglik` (by symbol) with the kernel linked in."""
        spec = np.empty(2, dtype=np.int64)
        spec[0] = spec0
        spec[1] = spec1 if version >= 0 else 0
        learned = (mask & LEARNED) != 0
        return discounted_loglik(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, learned,
                                 spec)  # fmt: skip

    @numba.njit(cache=True, nogil=True)
    def call_loglik_grad(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, g, mask, spec0,
                         spec1):  # fmt: skip
        """:func:`call_loglik_grad` (by symbol) with the kernel linked in."""
        spec = np.empty(2, dtype=np.int64)
        spec[0] = spec0
        spec[1] = spec1 if version >= 0 else 0
        need = np.empty(_N_INPUTS, dtype=np.bool_)
        for i in range(_N_INPUTS):
            need[i] = (mask >> i) & 1 == 1
        out = (
            np.empty(y.shape[0]), np.empty(y.shape), np.empty(F.shape), np.empty(G.shape),
            np.empty(W_sqrt.shape), np.empty(obs_sd.shape), np.empty(m0.shape),
            np.empty(C0.shape), np.empty(disc.shape), np.empty(blocks.shape),
            np.empty(scale.shape),
        )  # fmt: skip
        discounted_loglik_grad_into(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale,
                                    (mask & LEARNED) != 0, g, need, spec, out)  # fmt: skip
        return out

    return call_loglik, call_loglik_grad


call_loglik, call_loglik_grad = (
    _make_callers(VERSION) if _symbol is not None else _make_direct_callers(VERSION)
)
