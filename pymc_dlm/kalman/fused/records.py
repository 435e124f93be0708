r"""The named structures the fused kernels pass around, declared once.

numba compiles these NamedTuples of arrays as plain tuples (fields are read at compile
time: reading one by name costs nothing). Shapes use n states, p observed components,
T steps, d diffuse columns; a structure that a kernel does not need in full holds arrays
with a length-1 (or 0) axis instead.

Inside the kernels the arrays of these structures are borrowed views
(:data:`pymc_dlm.compat.borrow`: no reference counting when they are passed to helpers);
the functions that allocate them keep the owners alive to the end.

:class:`Inputs` and :class:`Gradients` are generated from
:mod:`~pymc_dlm.kalman.fused.layout` (the inputs' names, and the gradient entry's outputs).
"""

from collections import namedtuple
from typing import NamedTuple

import numpy as np

from pymc_dlm.kalman.fused import layout

__all__ = [
    "Inputs",
    "DiscountInputs",
    "Gradients",
    "Sparse",
    "Member",
    "StepSystem",
    "Pass",
    "Record",
    "Work",
    "DiffuseWork",
    "Moments",
    "MomentOutputs",
    "DrawOutputs",
    "Future",
    "ForecastOutputs",
    "Discounting",
    "PassBuffers",
    "PassKit",
    "Carry",
    "SqrtWork",
    "SqrtBack",
    "AdjointWork",
    "Histories",
    "ScalarBar",
    "AdjointKit",
    "Target",
]

#: The eight kernel inputs (:data:`~pymc_dlm.kalman.fused.layout.INPUTS`: names, ranks and
#: shapes there), one field each.
Inputs = namedtuple("Inputs", layout.NAMES)


class DiscountInputs(NamedTuple):
    """The discounted kernel's inputs beside :data:`Inputs` (:mod:`~.discounted`).

    Their gradients travel in the same structure.
    """

    discount: np.ndarray  #: (1 or B, n): the discount factor of every state (1 elsewhere)
    blocks: np.ndarray  #: (n, n): the 0/1 mask of the discounted blocks
    scale: np.ndarray  #: (1 or B, 3): (n_0, d_0, delta_V) of a learned variance


#: The gradient entry's outputs (:data:`~pymc_dlm.kalman.fused.layout.GRAD`): ``loglik``
#: (n_batch,), then ``d_<input>`` shaped like each input (empty arrays of the inputs' ranks
#: when no gradient is wanted).
Gradients = namedtuple("Gradients", layout.GRAD.outputs)


class Sparse(NamedTuple):
    """Non-zero pattern of a matrix (rows, cols), by rows (see ``steps._sparse``)."""

    cnt: np.ndarray  #: (rows,) int64, the number of non-zeros of each row
    idx: np.ndarray  #: (rows, cols) int64, their columns (first ``cnt[r]`` entries)
    val: np.ndarray  #: (rows, cols), their values


class Member(NamedTuple):
    """Where batch member ``b`` reads each system input (``steps._layout``).

    The batch indices are ``b``, or 0 for an input shared by the batch; the time lengths
    are 1 (constant) or T.
    """

    b: int  #: the member
    bG: int  #: batch index in G
    bF: int  #: batch index in F
    bW: int  #: batch index in W_sqrt
    bV: int  #: batch index in obs_sd
    TG: int  #: time length of G
    TF: int  #: time length of F
    TW: int  #: time length of W_sqrt
    TV: int  #: time length of obs_sd


class StepSystem(NamedTuple):
    """The system matrices of the current step in working form (refilled when they vary)."""

    G: Sparse  #: sparse rows of G_t
    F: Sparse  #: sparse rows of F_t
    WW: np.ndarray  #: (n, n): W_t = W_sqrt W_sqrt' (exactly symmetric)


class Pass(NamedTuple):
    """What the forward pass of one member returns (``forward._forward``)."""

    loglik: float  #: the log-likelihood (-inf where a forecast variance is not > 0)
    worst: float  #: the largest z'Rz / h met (digits lost to cancellation, in log10)
    t_end: int  #: steps of the exact diffuse period (T when a diffuse part is left at the end)
    n_inf: int  #: informative scalars of the diffuse period
    t_ss: int  #: first steady step (the end of the run when the recursion never settles)


class Record(NamedTuple):
    """The forward pass's record for the backward pass (``_forward`` with ``store``).

    Without ``store`` (or when a field is not needed) the arrays have length-1 axes.
    """

    us: np.ndarray  #: (T, p, n): u = R z of every scalar update (M = P_* z while diffuse)
    fs: np.ndarray  #: (T, p): forecast variance f of every scalar update
    vs: np.ndarray  #: (T, p): innovation v of every scalar update
    ms: np.ndarray  #: (T + 1, n): filtered m_{t-1} entering step t (gradients of F, G)
    Cs: np.ndarray  #: (T + 1, n, n): filtered C_{t-1} entering step t (idem)


class Work(NamedTuple):
    """Scratch of the forward pass, overwritten at every step."""

    m: np.ndarray  #: (n,): filtered mean m_{t-1}, then m_t
    C: np.ndarray  #: (n, n): filtered covariance C_{t-1}, then C_t
    a: np.ndarray  #: (n,): predicted mean a_t, updated scalar by scalar
    R: np.ndarray  #: (n, n): predicted covariance R_t, updated scalar by scalar
    GC: np.ndarray  #: (n, n): G_t C_{t-1}
    u: np.ndarray  #: (n,): u = R z of the current scalar


class DiffuseWork(NamedTuple):
    r"""Work arrays of the exact diffuse mode (``forward._diffuse_work``).

    With no diffuse column (d = 0) every array is tiny. The last four fields are the
    per-scalar record of the backward pass (length-1 axes when nothing is recorded).
    """

    Pinf_f: np.ndarray  #: (n, d): factor of P_inf = Pinf_f Pinf_f', updated in place
    Pinf_f_next: np.ndarray  #: (n, d): scratch for G Pinf_f
    K: np.ndarray  #: (n,): gain of the current informative scalar
    ud: np.ndarray  #: (max(d, 1),): Pinf_f' z, then the Householder vector
    Pinf_fv: np.ndarray  #: (n,): Pinf_f times the Householder vector (scaled)
    kinds: np.ndarray  #: (T, p) int8: what each scalar did (SKIPPED, ORDINARY, INFORMATIVE)
    Ks: np.ndarray  #: (max(d, 1), n): gains of the informative scalars, in order
    f_infs: np.ndarray  #: (max(d, 1),): their F_inf
    Pinfs: np.ndarray  #: (T + 1, n, n): P_inf entering every step (gradients of F, G)


class Moments(NamedTuple):
    """Moments recorded by the forward pass for the state draws and ``kalman_filter``.

    ``forward.no_moments`` gives arrays with no entries (nothing recorded). Entries of the
    diffuse factors are written during the diffuse period only (the caller zeroes them).
    """

    pa: np.ndarray  #: (T, n): predicted mean a_t (length 0: not recorded)
    pR: np.ndarray  #: (T, n, n): predicted covariance R_t (P_* while diffuse)
    pPinf_f: np.ndarray  #: (T, n, d): predicted diffuse factor
    fm: np.ndarray  #: (T, n): filtered mean m_t
    fC: np.ndarray  #: (T, n, n): filtered covariance C_t (P_* while diffuse)
    fPinf_f: np.ndarray  #: (T, n, d): filtered diffuse factor
    ll_t: np.ndarray  #: (T,): log-likelihood term of every step (length 0: none recorded)
    fU: np.ndarray  #: (T, n, n): upper factor U_t, C_t = U_t'U_t, of the square-root steps
    n_sqrt: np.ndarray  #: (1,) int64: number of leading steps taken in square-root form


class MomentOutputs(NamedTuple):
    """The outputs of ``moments.moments_into`` for a batch (member axis first).

    Timing as in R ``dlm`` (:mod:`~pymc_dlm.kalman.fused.moments`). The diffuse factors are
    zero outside the diffuse period; ``sm`` and ``sC`` with no member entries (shape
    (0, ...)) skip the smoother.
    """

    pa: np.ndarray  #: (B, T, n): predicted mean a_t
    pR: np.ndarray  #: (B, T, n, n): predicted covariance R_t (the finite part while diffuse)
    pPinf_f: np.ndarray  #: (B, T, n, d): predicted diffuse factor
    fm: np.ndarray  #: (B, T, n): filtered mean m_t
    fC: np.ndarray  #: (B, T, n, n): filtered covariance C_t (the finite part while diffuse)
    fPinf_f: np.ndarray  #: (B, T, n, d): filtered diffuse factor
    ll_t: np.ndarray  #: (B, T): log-likelihood term of every step
    sm: np.ndarray  #: (B or 0, T, n): smoothed mean s_t
    sC: np.ndarray  #: (B or 0, T, n, n): smoothed covariance S_t
    status: np.ndarray  #: (B,) int64: OK, FAILED or NOT_IDENTIFIED


class DrawOutputs(NamedTuple):
    """The outputs of ``states.ffbs_into`` for a batch (member axis first)."""

    filt: np.ndarray  #: (B, T, n): a draw of every filtered state
    path: np.ndarray  #: (B, T, n): a joint draw of the smoothed path
    ll_t: np.ndarray  #: (B, T): log-likelihood term of every step
    status: np.ndarray  #: (B,) int64: OK or FAILED


class Future(NamedTuple):
    """The system of the steps ahead in ``states.forecast_into`` (H: steps, k: noise columns)."""

    F: np.ndarray  #: (B, 1 or H, p, n)
    G: np.ndarray  #: (B, 1 or H, n, n)
    W_sqrt: np.ndarray  #: (B, 1 or H, n, k): the factor of W
    obs_sd: np.ndarray  #: (B, 1 or H, p): observation standard deviations


class ForecastOutputs(NamedTuple):
    """The outputs of ``states.forecast_into`` for a batch (member axis first)."""

    y: np.ndarray  #: (B, H, p): future observations
    theta: np.ndarray  #: (B, H, n): future states
    status: np.ndarray  #: (B,) int64: OK or FAILED


class Discounting(NamedTuple):
    r"""Component discounting and a learned observation variance in the forward pass.

    With ``on`` the prediction is :math:`R_t = P_t + D \circ P_t + W_t`,
    :math:`P_t = G_t C_{t-1} G_t^\top`, :math:`D_{ij} = B_{ij} (1/\delta_i - 1)`
    (West & Harrison 1997, §6.3), and ``C0`` is the filtered covariance at the start (not a
    factor). With ``learned`` (one series, unit scale) every observed scalar has
    :math:`h = 1` and the Student-t term of :mod:`~pymc_dlm.kalman.fused.density`, and the
    carry :math:`(n, d)` starts at ``scale[:2]`` and is discounted by ``scale[2]``
    (West & Harrison 1997, §10.8); a span that starts after step 0 (covariance steps after
    square-root steps) starts it at ``carry``. ``discounting.no_discounting`` gives the
    fixed-W model (``on`` false, tiny arrays). With ``keep`` the forward pass records
    ``Ps``, ``ns`` and ``ds`` for the backward pass (:mod:`~pymc_dlm.kalman.fused.adjoint`),
    which adds the adjoints of the discount factors and of ``scale`` into ``delta_bar`` and
    ``scale_bar``.
    """

    on: bool  #: discounting applies
    learned: bool  #: the observation variance is learned (Student-t terms)
    keep: bool  #: fill the records below
    delta: np.ndarray  #: (n,): the discount factor of every state (1 outside the blocks)
    blocks: np.ndarray  #: (n, n): B, the 0/1 mask of the discounted blocks
    scale: np.ndarray  #: (3,): (n_0, d_0, delta_V) of the learned variance
    P: np.ndarray  #: (n, n): scratch, P_t = G C G'
    Z: np.ndarray  #: (n, n): zeros (the added term of the straight-line sandwich)
    Ps: np.ndarray  #: (T, n, n): P_t of every full step (the steady steps need none)
    ns: np.ndarray  #: (T,): n_{t-1} of the learned variance entering step t
    ds: np.ndarray  #: (T,): d_{t-1} entering step t
    delta_bar: np.ndarray  #: (n,): adjoint of ``delta`` (backward pass)
    scale_bar: np.ndarray  #: (3,): adjoint of ``scale``; during the pass, of (n, d, delta_V)
    carry: np.ndarray  #: (2,): the (n, d) entering a span's first step after step 0


class PassBuffers(NamedTuple):
    """What the forward pass (``forward._forward``) works in besides its inputs."""

    rec: Record  #: the record of the backward pass (``steps.no_record``: none)
    work: Work  #: the scratch, which also holds the moments between two calls
    dw: DiffuseWork  #: the work and record of the diffuse period
    dsc: Discounting  #: discounting and a learned variance (``no_discounting``: fixed W)


class PassKit(NamedTuple):
    """The forward pass's borrowed structures, handed to its per-step helpers."""

    work: Work  #: the scratch
    dw: DiffuseWork  #: the diffuse period's work and record
    rec: Record  #: the record of the backward pass
    sys: StepSystem  #: the current step's system matrices
    dsc: Discounting  #: discounting and a learned variance
    gain: np.ndarray  #: (p, n + 3): the steady steps' gains u, f, 1/f, log(2 pi f)


class Carry(NamedTuple):
    """The running scalars of the forward pass, from one step to the next."""

    total: float  #: the log-likelihood so far
    worst: float  #: the largest z'Rz / h met so far
    n_inf: int  #: informative scalars of the diffuse period so far
    nn: float  #: the learned variance's carry n_t (``Discounting``)
    dd: float  #: and d_t


class SqrtWork(NamedTuple):
    """Scratch of the square-root route (``sqrtform._sqrt_head``), C = U'U."""

    m: np.ndarray  #: (n,): filtered mean m_t
    U: np.ndarray  #: (n, n): upper factor of C_t, then of the prediction R_{t+1}
    a: np.ndarray  #: (n,): predicted mean, then updated
    pre: np.ndarray  #: (n + r + k, n): the prediction's array (r rows of discounting)
    Fo: np.ndarray  #: (p, n): observed rows of F_t
    ez: np.ndarray  #: (2 p,): innovations, then their whitened values
    obs: np.ndarray  #: (p,) int64: indices of the observed components
    big: np.ndarray  #: ((p + n)^2,): storage of the update's array
    Gp: Sparse  #: the non-zero pattern of G_t (refilled at each step when G varies)


class SqrtBack(NamedTuple):
    """Scratch of the backward pass's square-root steps (``backward_sqrt.sqrt_condition``)."""

    UW: np.ndarray  #: (n, n): upper factor of W_{t+1}, U_W'U_W = W_{t+1}
    pre: np.ndarray  #: (max(n, k), n): the array whose QR gives U_W
    arr: np.ndarray  #: (2 n, 2 n): the conditioning's array, then its triangular factor
    w: np.ndarray  #: (2 n,): the innovation x - G m, then its whitened values


class AdjointWork(NamedTuple):
    r"""Scratch of the backward pass (``adjoint.loglik_grad_into``), one set per call.

    Adjoints of the forward quantities are written with a ``bar``.
    """

    Rbar: np.ndarray  #: (n, n): adjoint of R (then of C), kept symmetric
    Pinf_bar: np.ndarray  #: (n, n): adjoint of P_inf
    Rsum: np.ndarray  #: (n, n): sum over time of Rbar (gradient of a constant W_sqrt)
    X: np.ndarray  #: (n, n): scratch of the pull-back G' M G
    Pinf: np.ndarray  #: (n, n): P_inf of the replayed step
    GP: np.ndarray  #: (n, n): G P_inf of the replayed step
    no_WW: np.ndarray  #: (n, n): zeros (the noise added to P_inf)
    WW: np.ndarray  #: (n, n): W = W_sqrt W_sqrt' of the replayed step
    abar: np.ndarray  #: (n,): adjoint of a (then of m)
    ubar: np.ndarray  #: (n,): adjoint of u (M while diffuse); scratch of G' abar
    Ru: np.ndarray  #: (n,): Rbar u
    Kbar: np.ndarray  #: (n,): adjoint of the informative gain (then of M_inf)
    a_hist: np.ndarray  #: (p + 1, n): a before every scalar of the replayed step
    R_hist: np.ndarray  #: (p + 1, n, n): R before every scalar of the replayed step
    Pinf_hist: np.ndarray  #: (p + 1 or 1, n, n): P_inf before every scalar (diffuse)
    ubar_acc: np.ndarray  #: (p, n): adjoints of the gains u reused by the steady steps
    fbar_acc: np.ndarray  #: (p,): adjoints of the f reused by the steady steps
    w_rows: np.ndarray  #: (n,) int64: rows of a constant W_sqrt with a non-zero


class Histories(NamedTuple):
    """The owners of the per-scalar arrays of an :class:`AdjointWork` (same fields)."""

    a_hist: np.ndarray
    R_hist: np.ndarray
    Pinf_hist: np.ndarray
    ubar_acc: np.ndarray
    fbar_acc: np.ndarray
    w_rows: np.ndarray


class ScalarBar(NamedTuple):
    """Adjoints of the quantities of one scalar update (``adjoint_steps``)."""

    vbar: float  #: adjoint of the innovation v (and of y)
    fbar: float  #: adjoint of the forecast variance f (and of h = obs_sd**2)
    finf_bar: float  #: adjoint of F_inf (informative diffuse update; 0 otherwise)


class AdjointKit(NamedTuple):
    """The backward pass's borrowed structures, handed to its per-step helpers."""

    rec: Record  #: the forward pass's record
    work: Work  #: the scratch (the replayed a, R)
    dw: DiffuseWork  #: the diffuse period's record
    dsc: Discounting  #: discounting and a learned variance, with their adjoints
    aw: AdjointWork  #: the adjoints and their scratch
    sys: StepSystem  #: the step's sparse G and F, and W
    H: Sparse  #: sparse rows of G_t' (the pull-backs gather instead of scatter)


class Target(NamedTuple):
    """Where the backward pass of one member adds its gradient."""

    gb: float  #: the member's cotangent g[b]
    want: Inputs  #: the gradients wanted (one boolean per input)
    out: Gradients  #: the gradients, added into
