r"""The backward pass of the fused kernels: the exact reverse-mode gradient.

:func:`loglik_grad_into` runs the forward pass of every batch member with its record
(:func:`~pymc_dlm.kalman.fused.sqrtform._filter_member`), then the adjoint of exactly that
recursion backwards in time (:func:`_backward`); the rules are listed in
:mod:`pymc_dlm.kalman.fused.kernels`, and the adjoints of one scalar update and of one
prediction are in :mod:`~pymc_dlm.kalman.fused.adjoint_steps`.

References
----------
Giles, M. (2008). Collected matrix derivative results for forward and reverse mode
algorithmic differentiation. In *Advances in Automatic Differentiation*, 35–44.
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§7.3.3 (score).
"""

import math

import numpy as np

from pymc_dlm.kalman.constants import INFORMATIVE, SKIPPED
from pymc_dlm.kalman.fused.adjoint_steps import (
    _count_informative,
    _count_observed,
    _dF_informative,
    _dF_ordinary,
    _dG_step,
    _input_adjoints,
    _noise_adjoint_step,
    _noise_rows,
    _ordinary_adjoint,
    _pull_back_mean,
    _pull_back_step,
    _replay_step,
    _scalar_gradients,
    _steady_adjoint,
    _sym_outer_add,
)
from pymc_dlm.kalman.fused.diffuse import informative_adjoint
from pymc_dlm.kalman.fused.discounting import no_discounting
from pymc_dlm.kalman.fused.discounting_adjoint import _carry_adjoint, _discount_adjoint
from pymc_dlm.kalman.fused.forward import _diffuse_work, no_moments
from pymc_dlm.kalman.fused.records import (
    AdjointKit,
    AdjointWork,
    Gradients,
    Histories,
    Inputs,
    PassBuffers,
    Record,
    StepSystem,
    Target,
)
from pymc_dlm.kalman.fused.sqrtform import _filter_member
from pymc_dlm.kalman.fused.steps import (
    _borrow,
    _inline,
    _jit,
    _keep_alive,
    _layout,
    _pick,
    _sparse,
    _sparse_into,
    borrow_diffuse_work,
    borrow_discounting,
    borrow_gradients,
    borrow_inputs,
    borrow_record,
    borrow_sparse,
    borrow_work,
    scratch_work,
)

__all__ = ["backward_work", "grad_outputs", "loglik_grad_into", "loglik_grad_kernel"]


@_jit
def loglik_grad_kernel(inp, g, need):
    """Log-likelihood (n_batch,) and gradients of ``sum_b g[b] * loglik[b]`` w.r.t. the inputs.

    ``inp``: a :class:`~pymc_dlm.kalman.fused.records.Inputs`; ``need`` (8 booleans, in the
    order of the inputs) skips the gradients nobody uses.
    Returns a :class:`~pymc_dlm.kalman.fused.records.Gradients` ``(loglik, d_y, d_F, ...,
    d_Pinf_sqrt)``, gradients shaped like the inputs (zeros where skipped). A batch member
    whose log-likelihood is not finite gets zero gradients (the log-likelihood is -inf
    there; NUTS rejects the point). In the diffuse mode (``Pinf_sqrt`` with d > 0 columns,
    see :mod:`~pymc_dlm.kalman.fused.forward`) ``d_C0`` is the gradient with respect to the
    covariance :math:`P_{*,1}` (symmetric), not a factor.
    """
    out = grad_outputs(inp)
    loglik_grad_into(inp, g, need, np.zeros(2, dtype=np.int64), out)
    return out


@_jit
def grad_outputs(inp):
    """Uninitialised outputs of :func:`loglik_grad_into`: loglik (n_batch,), then one per input."""
    return Gradients(
        loglik=np.empty(inp.y.shape[0]),
        d_y=np.empty(inp.y.shape),
        d_F=np.empty(inp.F.shape),
        d_G=np.empty(inp.G.shape),
        d_W_sqrt=np.empty(inp.W_sqrt.shape),
        d_obs_sd=np.empty(inp.obs_sd.shape),
        d_m0=np.empty(inp.m0.shape),
        d_C0=np.empty(inp.C0.shape),
        d_Pinf_sqrt=np.empty(inp.Pinf_sqrt.shape),
    )


@_inline
def _wanted(need):
    """The ``need`` flags (one per input, in the order of ``layout.NAMES``) by name."""
    return Inputs(
        y=need[0],
        F=need[1],
        G=need[2],
        W_sqrt=need[3],
        obs_sd=need[4],
        m0=need[5],
        C0=need[6],
        Pinf_sqrt=need[7],
    )


@_inline
def _zero_gradients(out):
    """Set every gradient of ``out`` to zero (not the log-likelihood)."""
    out.d_y[...] = 0.0
    out.d_F[...] = 0.0
    out.d_G[...] = 0.0
    out.d_W_sqrt[...] = 0.0
    out.d_obs_sd[...] = 0.0
    out.d_m0[...] = 0.0
    out.d_C0[...] = 0.0
    out.d_Pinf_sqrt[...] = 0.0


@_inline
def _histories(n, p, keep_Pinf):
    """The per-scalar arrays of the backward pass (:class:`~.records.Histories`)."""
    return Histories(
        a_hist=np.empty((p + 1, n)),
        R_hist=np.empty((p + 1, n, n)),
        Pinf_hist=np.empty((p + 1 if keep_Pinf else 1, n, n)),
        ubar_acc=np.empty((p, n)),
        fbar_acc=np.empty(p),
        w_rows=np.empty(n, dtype=np.int64),
    )


@_inline
def _adjoint_work(sq, vec, hist):
    """Borrowed views: the :class:`~.records.AdjointWork` of the backward pass.

    Its matrices and vectors are views of ``sq`` (11, n, n) and ``vec`` (7, n) (one
    allocation each: an allocation and its release cost about 25 ns, as much as a few steps
    of a small model); the per-scalar arrays those of ``hist`` (:func:`_histories`).
    """
    return AdjointWork(
        Rbar=_borrow(sq[3]),
        Pinf_bar=_borrow(sq[4]),
        Rsum=_borrow(sq[10]),
        X=_borrow(sq[5]),
        Pinf=_borrow(sq[6]),
        GP=_borrow(sq[7]),
        no_WW=_borrow(sq[8]),
        WW=_borrow(sq[9]),
        abar=_borrow(vec[3]),
        ubar=_borrow(vec[4]),
        Ru=_borrow(vec[5]),
        Kbar=_borrow(vec[6]),
        a_hist=_borrow(hist.a_hist),
        R_hist=_borrow(hist.R_hist),
        Pinf_hist=_borrow(hist.Pinf_hist),
        ubar_acc=_borrow(hist.ubar_acc),  # adjoints of the gains reused by the steady steps
        fbar_acc=_borrow(hist.fbar_acc),
        w_rows=_borrow(hist.w_rows),
    )


@_inline
def backward_work(inp, want, T_rec, p_rec, n_sq):
    """What the forward pass records and the backward pass works in, for every member.

    Returns ``(owners, rec, dw, work, aw)``: the :class:`~.records.Record` of T_rec steps of
    p_rec scalars (with the filtered moments of every step when the gradient of F or G is
    wanted), the diffuse work, the scratch work and the :class:`~.records.AdjointWork`, all
    borrowed views; ``owners`` holds their memory and goes to ``_keep_alive`` at the end of
    the caller. The scratch has ``n_sq`` >= 11 (n, n) matrices, those from row 11 on free
    for the caller (``owners[2][11:]``).
    """
    T, p, n = inp.y.shape[1], inp.y.shape[2], inp.G.shape[-1]
    d = inp.Pinf_sqrt.shape[2]
    keep_states = want.F or want.G
    owners_rec = Record(
        us=np.empty((T_rec, p_rec, n)),
        fs=np.empty((T_rec, p_rec)),
        vs=np.empty((T_rec, p_rec)),
        ms=np.empty((T + 1, n)) if keep_states else np.empty((1, n)),
        Cs=np.empty((T + 1, n, n)) if keep_states else np.empty((1, n, n)),
    )
    dw_owner = _diffuse_work(n, d, T_rec, p_rec, keep_states)
    sq = np.empty((n_sq, n, n))
    vec = np.empty((7, n))
    hist = _histories(n, p, d > 0 and want.F)
    aw = _adjoint_work(sq, vec, hist)
    aw.no_WW[:, :] = 0.0
    rec, dw = borrow_record(owners_rec), borrow_diffuse_work(dw_owner)
    return (owners_rec, dw_owner, sq, vec, hist), rec, dw, scratch_work(vec, sq), aw


@_jit
def loglik_grad_into(inp, g, need, spec, out):
    """:func:`loglik_grad_kernel` writing into ``out`` (a ``Gradients``), C-contiguous.

    Every output is overwritten (zeros where a gradient is skipped). With no gradient
    wanted (``need`` all false) only ``out.loglik`` is written: the value route of the
    kernels (:func:`~pymc_dlm.kalman.fused.kernels.loglik_kernel` and the value nodes), one
    compiled build for both. ``spec`` (int64, 2): the straight-line sandwiches of a constant
    G (see ``forward._forward``), or zeros.
    """
    # Borrowed views throughout (``compat.borrow``): the drivers called below take some
    # thirty arrays each, whose reference counts would otherwise be updated at every call.
    inp = borrow_inputs(inp)
    g, spec = _borrow(g), _borrow(spec)
    out = borrow_gradients(out)
    want = _wanted(need)
    n_batch, T, p = inp.y.shape
    n = inp.G.shape[-1]
    out.loglik[:] = 0.0
    # With no gradient wanted this is the log-likelihood alone: no record, no backward
    # pass, and the gradient outputs are not touched (their addresses may be null).
    record = want.y or want.F or want.G or want.W_sqrt or want.obs_sd
    record = record or want.m0 or want.C0 or want.Pinf_sqrt
    if record:
        _zero_gradients(out)
    T_rec, p_rec = (T, p) if record else (1, 1)
    owners, rec, dw, work, aw = backward_work(inp, want, T_rec, p_rec, 11)
    fixed = no_discounting(n)
    buf = PassBuffers(rec, work, dw, fixed)
    none = no_moments(n, inp.Pinf_sqrt.shape[2])
    for b in range(n_batch):
        gb = g[_pick(g.shape[0], b)]
        run = _filter_member(inp, b, record, buf, spec, none)
        out.loglik[b] = run.loglik
        if not record or not math.isfinite(run.loglik) or gb == 0.0:
            continue
        _backward(inp, b, Target(gb, want, out), run, buf, aw, spec)
    _keep_alive(owners)


@_inline
def _backward(inp, b, tgt, run, buf, aw, spec):
    """Add ``tgt.gb`` times the gradient of member ``b``'s log-likelihood to ``tgt.out``.

    The adjoint of the forward pass ``run`` recorded in ``buf`` (a
    :class:`~.records.PassBuffers`), backwards in time: for every step, the steady step's
    or the scalar updates' adjoints in reverse order (:func:`_scalars_adjoint`), then the
    prediction's (:func:`_prediction_adjoint`). ``tgt``: the :class:`~.records.Target`.
    With discounting on (``buf.dsc``), the adjoints of the discount factors and of the
    learned variance's ``scale`` (not multiplied by ``gb``) are left in ``dsc.delta_bar``
    and ``dsc.scale_bar``, which the caller zeroes.
    """
    G, want, dsc = inp.G, tgt.want, buf.dsc
    T = inp.y.shape[1]
    mb = _layout(inp.F, G, inp.W_sqrt, inp.obs_sd, b)
    _clear_adjoints(aw)
    n_rows = _noise_rows(inp.W_sqrt, mb.bW, aw.w_rows)  # rows of L_W with a non-zero
    pull_back_at = spec[1] if G.shape[1] == 1 and G.shape[0] == 1 else 0
    # Only the gradients of y and m0: the adjoints of the means alone (no covariance's).
    means_only = not (want.F or want.G or want.W_sqrt or want.obs_sd or want.C0)
    means_only = means_only and not want.Pinf_sqrt and not dsc.on
    owners, kit = _adjoint_kit(inp, mb, buf, aw)
    n_inf = run.n_inf
    for t in range(T - 1, -1, -1):
        in_diffuse = t < run.t_end
        if t < T - 1 and (mb.TG > 1 or mb.TF > 1):
            _patterns_at(inp, mb, t, kit)
        if t >= run.t_ss:  # a steady step (see ``forward``)
            _steady_adjoint(kit, b, t, tgt)
            _pull_back_mean(kit.H, aw.abar, aw.ubar)
            continue
        flags = (in_diffuse, t == run.t_ss - 1, means_only)
        n_inf = _scalars_adjoint(inp, mb, t, kit, tgt, flags, n_inf)
        if inp.Pinf_sqrt.shape[2] > 0 and t == 0 and not dsc.on:
            continue  # the diffuse start is step 1's prediction (discounted: time 0's)
        flags = (in_diffuse, means_only, pull_back_at, n_rows)
        _prediction_adjoint(inp, mb, t, kit, tgt, flags)
    _input_adjoints(inp, mb, tgt, aw, n_rows, dsc)
    _keep_alive(owners)


@_inline
def _clear_adjoints(aw):
    """Zero the adjoints that the backward pass of one member accumulates."""
    aw.abar[:] = 0.0
    aw.Rbar[:, :] = 0.0
    aw.Rsum[:, :] = 0.0
    aw.Pinf_bar[:, :] = 0.0
    aw.ubar_acc[:, :] = 0.0
    aw.fbar_acc[:] = 0.0


@_inline
def _adjoint_kit(inp, mb, buf, aw):
    r"""The :class:`~.records.AdjointKit` of member ``mb.b`` and the owners of its patterns.

    The patterns are those of the last step, made before the loop (arrays first bound
    inside a loop are reference-counted at every iteration); ``H`` holds the rows of
    :math:`G^\top` (the columns of G).
    """
    T = inp.y.shape[1]
    G_last = inp.G[mb.bG, T - 1 if mb.TG > 1 else 0]
    G_pattern, H_pattern = _sparse(G_last), _sparse(G_last.T)
    F_pattern = _sparse(inp.F[mb.bF, T - 1 if mb.TF > 1 else 0])
    sys = StepSystem(G=borrow_sparse(G_pattern), F=borrow_sparse(F_pattern), WW=aw.WW)
    # Borrowed views: the kit goes to helpers at every step (the arrays of a structure that
    # are not borrowed would be reference-counted at every call).
    rec, work, dw = borrow_record(buf.rec), borrow_work(buf.work), borrow_diffuse_work(buf.dw)
    kit = AdjointKit(rec, work, dw, borrow_discounting(buf.dsc), aw, sys, borrow_sparse(H_pattern))
    return (G_pattern, H_pattern, F_pattern), kit


@_inline
def _patterns_at(inp, mb, t, kit):
    """Step t's sparse G, G' and F in ``kit`` (those varying in time)."""
    if mb.TG > 1:
        _sparse_into(inp.G[mb.bG, t], kit.sys.G)
        _sparse_into(inp.G[mb.bG, t].T, kit.H)
    if mb.TF > 1:
        _sparse_into(inp.F[mb.bF, t], kit.sys.F)


@_inline
def _scalars_adjoint(inp, mb, t, kit, tgt, flags, n_inf):
    """The adjoints of step t's scalar updates, the last first; returns the new ``n_inf``.

    ``flags``: (in_diffuse, reused, means_only): ``reused`` for the step whose gains the
    steady steps reused. ``n_inf`` counts the informative scalars not yet reversed; the
    step's are ``dw.Ks[first_inf:n_inf]``.
    """
    y, b = inp.y, mb.b
    rec, dw, dsc, aw, Fz = kit.rec, kit.dw, kit.dsc, kit.aw, kit.sys.F
    want, out = tgt.want, tgt.out
    in_diffuse, reused, means_only = flags
    first_inf = _count_informative(y, b, t, dw.kinds, n_inf) if in_diffuse else n_inf
    if want.F:  # re-run the step to recover a and R (and P_inf) before every update
        _replay_step(inp, mb, t, in_diffuse, kit, first_inf)
    j_obs = _count_observed(y, b, t)
    if dsc.learned and j_obs == 0:
        _carry_adjoint(dsc, t)
    tF = t if mb.TF > 1 else 0
    for i in range(y.shape[2] - 1, -1, -1):
        if math.isnan(y[b, t, i]):
            continue
        j_obs -= 1
        kind = dw.kinds[t, i] if in_diffuse else 1
        if kind == SKIPPED:
            continue
        if kind == INFORMATIVE:
            if dsc.learned:  # the carry's discount (the term is Gaussian)
                _carry_adjoint(dsc, t)
            n_inf -= 1
            bars = informative_adjoint(aw, rec, dw, Fz, t, i, n_inf)
            _scalar_gradients(inp, mb, t, i, tgt, bars)
            if want.F:
                _dF_informative(kit, t, i, j_obs, bars, n_inf, tgt.gb, out.d_F[mb.bF, tF, i])
            continue
        bars = _ordinary_adjoint(rec, aw, Fz, t, i, reused, means_only, dsc)
        _scalar_gradients(inp, mb, t, i, tgt, bars)
        if means_only:
            continue
        if want.F:
            _dF_ordinary(rec, aw, t, i, j_obs, bars, tgt.gb, out.d_F[mb.bF, tF, i])
        _sym_outer_add(aw.Rbar, aw.ubar, Fz, i)
    return n_inf


@_inline
def _prediction_adjoint(inp, mb, t, kit, tgt, flags):
    """The adjoint of step t's prediction: a = G m, R = G C G' + W (P_inf = G P_inf G').

    ``flags``: (in_diffuse, means_only, pull_back_at, n_rows): ``pull_back_at`` the address
    of the straight-line pull-back of a constant G (or 0), ``n_rows`` the rows of
    :math:`L_W` with a non-zero (``adjoint_steps._noise_rows``).
    """
    in_diffuse, means_only, pull_back_at, n_rows = flags
    aw, dsc = kit.aw, kit.dsc
    if tgt.want.W_sqrt:
        _noise_adjoint_step(inp.W_sqrt, mb, t, aw, tgt.gb, tgt.out.d_W_sqrt, n_rows)
    if dsc.on:  # R = P + D∘P + W: Rbar becomes the adjoint of P
        _discount_adjoint(dsc, t, aw.Rbar)
    if tgt.want.G:
        _dG_step(inp, mb, t, in_diffuse, kit, tgt.gb, tgt.out.d_G)
    if means_only:
        _pull_back_mean(kit.H, aw.abar, aw.ubar)
    else:
        _pull_back_step(kit.H, aw, pull_back_at, in_diffuse)
