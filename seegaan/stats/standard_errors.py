"""Welch (Behrens–Fisher) studentisation of the decoded difference, by the delta method (issue #11).

Arrays in, arrays out (NumPy only). The permutation test of the decoded difference ``G(w(t_k)) - G(w(t_0))``
is exact under exchangeability, but with unequal group sizes *and* unequal spread its unstudentised null
is too narrow for the smaller, more variable group (Janssen 1997; Chung & Romano 2013). Dividing every
map -- the observed one and every null one -- by *its own* Welch standard error keeps the test exact under
exchangeability and makes it asymptotically valid under unequal variances (PALM's v statistic, Winkler
et al. 2014). The decoded difference is a nonlinear function of the two group means; its standard error
is taken from the **linearised images** ``u_i = J (w_i - w̄)`` (J the decoder Jacobian, the delta
method), so a permutation only changes which images are summed in which group: the SE of a whole batch
of permutations is two or four matrix products ``(nb x n) @ (n x M)``.

Functions
---------
finite_difference_step
    The relative step of the central differences (fp32 decoders: cube root of the unit roundoff).
jacobian
    ``J`` (M, D) at one latent, or (K, M, D) at each of K latents, by central differences along axes.
linearise
    ``u`` (n, M) -- or (K, n, M) with one J per trajectory step -- from a decode callable.
class_mean_terms
    Per-step linearised images -> the two per-image contributions (group A, group B) for class-mean.
group_indicator
    Which *latent* sits in group B under each permutation row (the plan conventions, see below).
iter_welch_se / welch_se
    Per-permutation Welch SE maps (and Welch–Satterthwaite df) from group sums, streamed in batches.
t_to_z
    Welch t through its own df onto the normal scale (PALM's v -> z) before the max over pixels.
iter_slope_se / slope_se
    Numeric feature, ``linear`` trajectory: HC0/HC2/HC3 (or cluster-robust CR0/CR2/CR3) SE of the slope
    of the *permuted* regression, from three matrix products per batch (DiCiccio & Romano 2017).
iter_smoother_se / smoother_se
    Numeric feature, any penalised fit (``gam``): the sandwich SE of every step's difference with the
    residuals and leverages of the permuted fit (one small fit per permutation row, vectorised over pixels).
feature_per_latent
    The feature value every *latent* is paired with under each permutation row (scheme-aware).
iter_hc_se / hc_se
    Superseded (kept for comparison): HC0 with the null model's residuals; not calibrated (docs/welch.md).
inverse_se
    ``1 / se`` with 0 where the SE is 0 (the pixel cannot be tested, as the engine does for SD 0).

Permutation conventions (:mod:`seegaan.permutation`)
----------------------------------------------------
``image`` / ``whole-block``: row ``idx`` says which image's latent image ``i`` receives (``W[idx]``);
image ``i`` keeps its group ``g[i]``, so the latent of image ``j = idx[i]`` is counted in group ``g[i]``:
``g_perm[idx] = g`` (a scatter). ``patient-label``: row ``idx`` says which image's *label* image ``i``
receives; latents stay, so latent ``i`` is in group ``g[idx[i]]``: ``g_perm = g[idx]`` (a gather; group
sizes may change from row to row when patients have different numbers of images). The identity row
``arange(n)`` gives the observed assignment under every scheme.

Memory of the SE streaming: O(batch x M) (x K for per-step J) plus the linearised images themselves
(n x M, or 2 x K x n x M for per-step J).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
from scipy import special

EPS32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32, 2**-24
SCHEMES = ("image", "whole-block", "patient-label")


# --------------------------------------------------------------------------------------------------
# linearisation
# --------------------------------------------------------------------------------------------------
def finite_difference_step(unit_roundoff: float = EPS32) -> float:
    """Relative step ``h`` of the central differences.

    Central differences of a decoder evaluated in floating point with unit roundoff ``ε`` err by
    ``h² |G'''| / 6`` (truncation) plus ``ε |G| / h`` (rounding of the two decoded images), smallest at
    ``h* = (3 ε |G| / |G'''|)^(1/3)``. On the latent's own scale (one SD, where ``|G| ~ |G'''|`` for a
    smooth decoder with outputs in [-1, 1]) that is ``h ≈ (3 ε)^(1/3)``: 6.9e-3 for float32 (ε = 2**-24),
    a relative error of ~ε^(2/3) ≈ 1e-5 -- far below the sampling error of an SE. A bfloat16 decoder
    (ε = 2**-8) needs ``finite_difference_step(2**-8)`` ≈ 0.23.
    """
    return float((3.0 * unit_roundoff) ** (1.0 / 3.0))


def _decode(decode: Callable, w: np.ndarray, batch_size: int) -> np.ndarray:
    """Decode float32 latents in batches; float64 images flattened to (B, M)."""
    out = []
    for s in range(0, len(w), batch_size):
        img = np.asarray(decode(np.ascontiguousarray(w[s : s + batch_size], dtype=np.float32)))
        out.append(img.reshape(img.shape[0], -1).astype(np.float64))
    return np.concatenate(out, axis=0)


def jacobian(
    decode: Callable, at: np.ndarray, *, scale: np.ndarray | float = 1.0, h: float | None = None, batch_size: int = 256
) -> np.ndarray:
    """Decoder Jacobian by central differences along the latent axes (2 D decodes per point).

    Parameters
    ----------
    decode : callable
        float32 (B, D) -> (B, H, W) (or (B, M)).
    at : ndarray, shape (D,) or (K, D)
        Point(s) of linearisation: the cohort mean, or every step of a trajectory.
    scale : float or ndarray (D,)
        The latents' own scale per axis (e.g. their SD); the step along axis d is ``h * scale[d]``.
    h : float, optional
        Relative step; default :func:`finite_difference_step` (float32).
    batch_size : int
        Latents per decode call.

    Returns
    -------
    ndarray, shape (M, D) for one point, (K, M, D) for K points (float64).

    The step actually taken is the difference of the two *float32* latents that were decoded, so the
    rounding of ``c ± h`` to float32 does not bias the quotient.
    """
    at = np.asarray(at, dtype=np.float64)
    single = at.ndim == 1
    pts = at[None] if single else at
    K, D = pts.shape
    h = finite_difference_step() if h is None else float(h)
    step = h * np.broadcast_to(np.asarray(scale, dtype=np.float64), (D,))
    step = np.where(step > 0, step, h)
    eye = np.eye(D) * step
    plus = (pts[:, None, :] + eye[None]).astype(np.float32)  # (K, D, D): row d moves axis d
    minus = (pts[:, None, :] - eye[None]).astype(np.float32)
    taken = (plus.astype(np.float64) - minus.astype(np.float64))[:, np.arange(D), np.arange(D)]  # (K, D)
    both = np.concatenate([plus.reshape(K * D, D), minus.reshape(K * D, D)])
    img = _decode(decode, both, batch_size)
    M = img.shape[1]
    diff = (img[: K * D] - img[K * D :]).reshape(K, D, M) / taken[:, :, None]
    J = np.ascontiguousarray(diff.transpose(0, 2, 1))  # (K, M, D)
    return J[0] if single else J


def linearise(
    decode: Callable,
    latents: np.ndarray,
    *,
    at: np.ndarray | None = None,
    along: str = "auto",
    h: float | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Linearised images ``u_i = J (w_i - w̄)`` of the analysed latents.

    Parameters
    ----------
    decode : callable
        float32 (B, D) -> (B, H, W).
    latents : ndarray, shape (n, D)
        The analysed latents ``W`` (the rows the trajectory's linear map acts on).
    at : ndarray (D,) or (K, D), optional
        Where J is taken: default the cohort mean ``w̄`` (one J); a (K, D) trajectory gives one J per
        step and ``u`` of shape (K, n, M).
    along : {"auto", "axes", "images"}
        ``axes``: J from 2 D decodes per point (step ``h`` x the SD of each latent), then ``u = (W - w̄) J'``.
        ``images``: 2 n decodes per point, ``u_i = (G(c + h v_i) - G(c - h v_i)) / 2h`` with
        ``v_i = w_i - w̄`` (h relative to |v_i|, so the step is on the scale of the spread).
        ``auto`` takes whichever needs fewer decodes (min(n, D) directions).
    h : float, optional
        Relative step; default :func:`finite_difference_step`.

    Returns
    -------
    ndarray, float64, shape (n, M) or (K, n, M); the pixels are the decoder's flattened (H, W).
    """
    W = np.asarray(latents, dtype=np.float64)
    n, D = W.shape
    wbar = W.mean(axis=0)
    V = W - wbar
    pts = wbar[None] if at is None else np.asarray(at, dtype=np.float64)
    single = pts.ndim == 1 or at is None
    pts = pts.reshape(-1, D)
    if along == "auto":
        along = "axes" if D <= n else "images"
    if along not in ("axes", "images"):
        raise ValueError(f"along must be 'auto', 'axes' or 'images' (got {along!r})")
    h = finite_difference_step() if h is None else float(h)
    if along == "axes":
        sd = W.std(axis=0)
        J = jacobian(decode, pts, scale=np.where(sd > 0, sd, 1.0), h=h, batch_size=batch_size)  # (K, M, D)
        U = np.einsum("nd,kmd->knm", V, J)
    else:
        out = []
        for c in pts:
            plus = (c + h * V).astype(np.float32)
            minus = (c - h * V).astype(np.float32)
            img = _decode(decode, np.concatenate([plus, minus]), batch_size)
            out.append((img[:n] - img[n:]) / (2.0 * h))
        U = np.stack(out)
        U[:, ~V.any(axis=1)] = 0.0  # an image at the mean has no deviation
    return U[0] if single else U


def class_mean_terms(U: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image contributions to the linearised class-mean difference, one J per step.

    The class-mean trajectory is ``w(t) = (1 - t) m_A + t m_B``; a small change of the group means moves
    the decoded difference by ``J_k((1-t_k) δ_A + t_k δ_B) - J_0((1-t_0) δ_A + t_0 δ_B)``. With
    ``U[k] = J_k (W - w̄)'`` (from :func:`linearise` with ``at=trajectory``) an image contributes

    ``a_k = (1 - t_k) U_k - (1 - t_0) U_0`` when it sits in group A, and ``b_k = t_k U_k - t_0 U_0`` in B.

    With one J (``U_k = U``) this reduces to ``-(t_k - t_0) U`` and ``(t_k - t_0) U``: the plain Welch SE
    of ``u`` times ``|t_k - t_0|``.

    Returns
    -------
    a, b : ndarray, shape (K, n, M)
    """
    U = np.asarray(U, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(-1, 1, 1)
    a = (1.0 - t) * U - (1.0 - t[0]) * U[0]
    b = t * U - t[0] * U[0]
    return a, b


# --------------------------------------------------------------------------------------------------
# group assignment under a permutation plan
# --------------------------------------------------------------------------------------------------
def group_indicator(groups: np.ndarray, rows: np.ndarray, scheme: str) -> np.ndarray:
    """(nb, n) float64: 1 where the *latent* j counts in group B (code 1) under permutation row b.

    ``image``/``whole-block``: image i receives latent ``rows[b, i]`` and keeps its group, so
    ``out[b, rows[b, i]] = groups[i]``. ``patient-label``: image i receives the label of image
    ``rows[b, i]``, so ``out[b, i] = groups[rows[b, i]]``.
    """
    return feature_per_latent(np.asarray(groups).astype(np.float64), rows, scheme)  # the 0/1 codes per latent


# --------------------------------------------------------------------------------------------------
# per-permutation Welch SE from group sums
# --------------------------------------------------------------------------------------------------
def _fixed_point(x: np.ndarray, n: int) -> np.ndarray:
    """Round every column of ``x`` to a power-of-two grid on which any sum of ``n`` entries is exact.

    Column m gets the quantum ``q_m = 2**(e_m - bits)`` with ``2**e_m >= max|x[:, m]|`` and
    ``bits = 52 - ceil(log2 n)``: every entry is an integer multiple of ``q_m`` below ``2**bits q_m``, so
    every partial sum of at most ``n`` of them is exactly representable in float64. Group sums by a 0/1
    matrix product are then the same bits whatever the batch split, the BLAS, its threads or the device
    (relative rounding of the entries: ``2**-bits``, 2.3e-13 for n = 1000).
    """
    bits = 52 - int(np.ceil(np.log2(max(n, 2))))
    peak = np.max(np.abs(x), axis=0)
    e = np.ceil(np.log2(np.where(peak > 0, peak, 1.0)))
    q = np.ldexp(1.0, (e - bits).astype(int))
    return np.round(x / q) * q


def _group_var(S1: np.ndarray, S2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Unbiased variance from sums (ddof 1); 0 where the group has < 2 images or only rounding is left."""
    n = n.reshape(n.shape + (1,) * (S1.ndim - n.ndim))
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (S2 - S1 * S1 / n) / (n - 1)
        var = np.where(n >= 2, var, 0.0)
        var[var <= 1e-12 * np.where(n >= 1, S2 / np.maximum(n, 1), 0.0)] = 0.0  # cancellation: no spread
    return np.maximum(var, 0.0)


def iter_welch_se(
    u,
    groups: np.ndarray,
    plans: np.ndarray,
    scheme: str,
    *,
    t: np.ndarray | None = None,
    batch_size: int = 64,
    df: bool = False,
) -> Iterator[tuple]:
    """Yield ``(start, se)`` for consecutive batches of permutation rows.

    Parameters
    ----------
    u : ndarray (n, M), or a pair ``(a, b)`` of (K, n, M) arrays
        Linearised images (one J), or the per-step contributions of :func:`class_mean_terms`.
    groups : array (n,) of 0/1
        Group of every analysed image as the trajectory sees it (0 = A = level 1, 1 = B = level 2;
        ``InterpolationResult.feature_codes`` for class-mean).
    plans : ndarray (B, n) of int
        Permutation rows (``PermutationPlan.indices``; ``arange(n)`` is the observed assignment).
    scheme : {"image", "whole-block", "patient-label"}
    t : array (K,), optional
        One J only: the grid of the class-mean trajectory; se is then (nb, K, M) = ``|t_k - t_0| se``.
    batch_size : int
        Rows per batch; the results do not depend on it (group sums are exact, see ``_fixed_point``).
    df : bool
        Also yield the Welch–Satterthwaite degrees of freedom of every pixel (same shape as se), for
        :func:`t_to_z`.

    Yields
    ------
    start : int
    se : ndarray float64, (nb, M), or (nb, K, M) with ``t`` or per-step terms;
        ``sqrt(s²_A / n_A + s²_B / n_B)`` of the permuted groups, 0 where both groups are constant.
    dof : ndarray (with ``df=True``)
        ``(vA + vB)² / (vA² / (n_A - 1) + vB² / (n_B - 1))`` with ``vG = s²_G / n_G``; NaN where se is 0.
    """
    plans = np.atleast_2d(np.asarray(plans, dtype=np.int64))
    per_step = isinstance(u, (tuple, list))
    if per_step:
        a, b = (np.asarray(x, dtype=np.float64) for x in u)
        K, n, M = a.shape
        A = np.ascontiguousarray(a.transpose(1, 0, 2).reshape(n, K * M))
        Bm = np.ascontiguousarray(b.transpose(1, 0, 2).reshape(n, K * M))
        raw = [A, A * A, Bm, Bm * Bm]
    else:
        A = np.asarray(u, dtype=np.float64)
        n, M = A.shape
        raw = [A, A * A]
    mats = [_fixed_point(m, n) for m in raw]  # exact sums: bits independent of batching and BLAS
    totals = [m.sum(axis=0) for m in mats]
    if plans.shape[1] != n:
        raise ValueError(f"plans have {plans.shape[1]} columns but u has {n} images")
    scale_t = None if t is None or per_step else np.abs(np.asarray(t, np.float64) - np.asarray(t, np.float64)[0])
    for start in range(0, plans.shape[0], int(batch_size)):
        ind = group_indicator(groups, plans[start : start + int(batch_size)], scheme)  # (nb, n): 1 = B
        nB = ind.sum(axis=1)
        nA = n - nB
        sums_B = [ind @ m for m in mats]
        if per_step:
            varA = _group_var(totals[0] - sums_B[0], totals[1] - sums_B[1], nA)
            varB = _group_var(sums_B[2], sums_B[3], nB)
        else:
            varA = _group_var(totals[0] - sums_B[0], totals[1] - sums_B[1], nA)
            varB = _group_var(sums_B[0], sums_B[1], nB)
        with np.errstate(divide="ignore", invalid="ignore"):
            se2 = np.where(nA[:, None] > 0, varA / np.maximum(nA, 1)[:, None], 0.0) + np.where(
                nB[:, None] > 0, varB / np.maximum(nB, 1)[:, None], 0.0
            )
        se = np.sqrt(se2)
        dof: np.ndarray | None = None
        if df:
            with np.errstate(divide="ignore", invalid="ignore"):
                vA = varA / np.maximum(nA, 1)[:, None]
                vB = varB / np.maximum(nB, 1)[:, None]
                den = np.where(nA[:, None] > 1, vA * vA / np.maximum(nA - 1, 1)[:, None], 0.0) + np.where(
                    nB[:, None] > 1, vB * vB / np.maximum(nB - 1, 1)[:, None], 0.0
                )
                dof = np.where(se2 > 0, se2 * se2 / den, np.nan)
        if per_step:
            se = se.reshape(len(ind), K, M)
            dof = dof.reshape(len(ind), K, M) if dof is not None else None
        elif scale_t is not None:
            se = scale_t[None, :, None] * se[:, None, :]
            dof = np.broadcast_to(dof[:, None, :], se.shape).copy() if dof is not None else None
        yield (start, se, dof) if df else (start, se)


def welch_se(u, groups, plans, scheme, *, t=None, batch_size: int = 64, df: bool = False):
    """All per-permutation Welch SE maps at once (see :func:`iter_welch_se`; memory B x M (x K)).

    Returns se, or ``(se, dof)`` with ``df=True``.
    """
    parts = list(iter_welch_se(u, groups, plans, scheme, t=t, batch_size=batch_size, df=df))
    se = np.concatenate([p[1] for p in parts])
    return (se, np.concatenate([p[2] for p in parts])) if df else se


def t_to_z(t: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """|t| with ``dof`` degrees of freedom -> the |z| of the same two-sided tail probability.

    Welch's statistic of a small, variable group has heavier tails (fewer df) than that of a permuted,
    mixed group; a max over pixels reaches far into them. Mapping every t through its own df onto the
    normal scale (PALM's v -> z, Winkler et al. 2014) makes pixels and permutations comparable.
    ``-inf`` where t or dof is not finite (an untestable pixel); ``inf`` dof is the normal.
    """
    t = np.abs(np.asarray(t, dtype=np.float64))
    dof = np.asarray(dof, dtype=np.float64)
    ok = np.isfinite(t) & (dof > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = special.stdtr(np.where(ok, dof, 1.0), -np.where(ok, t, 0.0))  # P(T <= -|t|)
        z = -special.ndtri(lower)
    return np.where(ok, z, -np.inf)


# --------------------------------------------------------------------------------------------------
# numeric features: heteroscedasticity-consistent SE of the linearised trajectory difference
# --------------------------------------------------------------------------------------------------
def permuted_weights(C: np.ndarray, rows: np.ndarray, scheme: str) -> np.ndarray:
    """(nb, K, n): the weight of *latent* j in step k's linearised null difference ``sum_j c_kj u_j``.

    ``C`` (K, n) are the difference weights of the observed map, ``L - L[0]`` for ``traj = L @ W``.
    ``image``/``whole-block``: ``traj_b = L @ W[idx]``, so latent ``idx[i]`` gets ``C[:, i]`` (scatter).
    ``patient-label`` rebuilds the map from permuted feature values and has no such shortcut: pass the
    weights of ``L_b`` directly to :func:`iter_hc_se`.
    """
    if scheme == "patient-label":
        raise ValueError("patient-label permutations change the map itself; compute L_b - L_b[0] per row")
    rows = np.atleast_2d(np.asarray(rows, dtype=np.int64))
    nb, n = rows.shape
    K = C.shape[0]
    out = np.empty((nb, K, n), dtype=np.float64)
    np.put_along_axis(
        out,
        np.broadcast_to(rows[:, None, :], (nb, K, n)),
        np.broadcast_to(np.asarray(C, np.float64)[None], (nb, K, n)),
        axis=2,
    )
    return out


def iter_hc_se(
    u: np.ndarray,
    C: np.ndarray,
    plans: np.ndarray,
    scheme: str,
    *,
    batch_size: int = 64,
    weights: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Superseded by :func:`iter_slope_se` / :func:`iter_smoother_se` (kept for comparison; not calibrated).

    HC (sandwich) SE maps of the linearised null difference of any linear trajectory, per permutation.

    ``se²_{b,k} = n/(n-1) · sum_j c_{b,k,j}² r_j²`` with ``r = u`` (centred at the cohort mean: the
    residuals of the null model, so one matrix product ``(nb·K x n) @ (n x M)`` per batch; a "restricted"
    HC0 estimator, consistent under H0 and heteroscedasticity of any form along the feature).

    ``weights(rows) -> (nb, K, n)`` overrides :func:`permuted_weights` (needed for patient-label).
    Yields ``(start, se)`` with se of shape (nb, K, M).
    """
    u = np.asarray(u, dtype=np.float64)
    n, M = u.shape
    r2 = _fixed_point((u - u.mean(axis=0)) ** 2, n)
    plans = np.atleast_2d(np.asarray(plans, dtype=np.int64))
    for start in range(0, plans.shape[0], int(batch_size)):
        rows = plans[start : start + int(batch_size)]
        Wb = weights(rows) if weights is not None else permuted_weights(C, rows, scheme)
        nb, K, _ = Wb.shape
        se2 = (Wb.reshape(nb * K, n) ** 2) @ r2 * (n / (n - 1.0))
        se2[se2 <= 1e-24 * np.max(se2, initial=0.0)] = 0.0
        yield start, np.sqrt(se2).reshape(nb, K, M)


def hc_se(u, C, plans, scheme, *, batch_size: int = 64, weights=None) -> np.ndarray:
    """All per-permutation HC SE maps at once (see :func:`iter_hc_se`)."""
    return np.concatenate([se for _, se in iter_hc_se(u, C, plans, scheme, batch_size=batch_size, weights=weights)])


# --------------------------------------------------------------------------------------------------
# numeric features: HC-studentised slope of the permuted regression (issue #11 item 2)
# --------------------------------------------------------------------------------------------------
HC_TYPES = ("HC0", "HC1", "HC2", "HC3")


def feature_per_latent(x: np.ndarray, rows: np.ndarray, scheme: str) -> np.ndarray:
    """(nb, n) float64: the feature value that *latent* j is regressed on under permutation row b.

    ``patient-label``: image i (whose latent stays) receives the feature of image ``rows[b, i]``:
    ``out[b, i] = x[rows[b, i]]`` (a gather; the multiset of values changes when patients have different
    numbers of images). ``image``/``whole-block``: image i receives latent ``rows[b, i]`` and keeps its
    feature, so latent ``j = rows[b, i]`` is paired with ``x[i]``: ``out[b, rows[b, i]] = x[i]`` (a
    scatter) -- moving the latents by ``idx`` is the same regression as moving the feature by ``idx⁻¹``.
    The identity row pairs every latent with its own value.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    rows = np.atleast_2d(np.asarray(rows, dtype=np.int64))
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    if scheme == "patient-label":
        return x[rows]
    out = np.empty(rows.shape, dtype=np.float64)
    np.put_along_axis(out, rows, np.broadcast_to(x, rows.shape), axis=1)
    return out


def _fsum_rows(a: np.ndarray) -> np.ndarray:
    """Correctly rounded row sums (``math.fsum``): the same bits whatever the batch a row sits in."""
    return np.array([math.fsum(r) for r in np.atleast_2d(a).tolist()], dtype=np.float64)


def _round_to_grid(x: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """Round ``x`` to a power-of-two grid with ``bits`` significant bits per slice along ``axis``.

    ``axis=0``: one quantum per column (data), ``axis=1``: one per row (a permutation row's weights).
    With weights of ``bw`` and data of ``bd`` bits every product is an integer multiple of the product of
    the two quanta below ``2**(bw + bd)``; with ``bw + bd + ceil(log2 n) <= 53`` every partial sum of a
    matrix product is exact in float64, so the product is the same bits for any batch split, BLAS,
    thread count or device.
    """
    peak = np.max(np.abs(x), axis=axis, keepdims=True)
    e = np.ceil(np.log2(np.where(peak > 0, peak, 1.0)))
    q = np.ldexp(1.0, (e - bits).astype(int))
    return np.round(x / q) * q


def _units(n: int, clusters) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(codes (n,), sizes (P,), first image of each unit (P,), P); singletons without clusters."""
    if clusters is None:
        return np.arange(n), np.ones(n), np.arange(n), n
    _, first, codes = np.unique(np.asarray(clusters).astype(str), return_index=True, return_inverse=True)
    return codes.ravel(), np.bincount(codes.ravel()).astype(np.float64), first, first.size


def _leverage_factor(H: np.ndarray, hc: str, n_obs: int, n_par: float) -> np.ndarray:
    """Multiplier of a unit's squared residual: HC0 1, HC1 n/(n-p), HC2 1/(1-h), HC3 1/(1-h)²."""
    if hc not in HC_TYPES:
        raise ValueError(f"hc must be one of {', '.join(HC_TYPES)} (got {hc!r})")
    if hc == "HC0":
        return np.ones_like(H)
    if hc == "HC1":
        return np.full_like(H, n_obs / max(n_obs - n_par, 1))
    one_minus = 1.0 - H
    ok = one_minus > 1e-10  # leverage 1: the residual is 0 anyway; weight it 0
    safe = np.where(ok, one_minus, 1.0)
    return np.where(ok, 1.0 / safe if hc == "HC2" else 1.0 / (safe * safe), 0.0)


def iter_slope_se(
    u: np.ndarray,
    x: np.ndarray,
    plans: np.ndarray,
    scheme: str,
    *,
    hc: str = "HC3",
    clusters=None,
    grid: np.ndarray | None = None,
    batch_size: int = 64,
    slope: bool = False,
) -> Iterator[tuple]:
    """Yield ``(start, se)`` (and the slope with ``slope=True``): HC SE of the *permuted* regression's slope.

    For the ``linear`` trajectory the linearised difference of step k is ``(g_k - g_0) b̂`` with ``b̂`` the
    slope of every pixel of ``u`` on the feature. Studentising every map (observed and null) by the
    heteroscedasticity-consistent SE of its *own* fit makes the permutation test exact under
    exchangeability and asymptotically valid when the spread changes along the feature (DiCiccio &
    Romano 2017); HC3 is the small-sample choice (MacKinnon & White 1985; Long & Ervin 2000).

    With ``a = x_b - x̄_b`` (the feature each latent is paired with under row b, centred),
    ``S = Σ a²``, ``c = a / S``, ``v = u - ū``, leverage ``h = 1/n + a²/S`` and ``ω = c² k(h)``
    (:func:`_leverage_factor`), the residual ``e = v - b̂ a`` gives

        b̂ = c @ v,   var = Σ ω e² = ω @ v² − 2 b̂ (ω a) @ v + b̂² Σ ω a²

    -- three matrix products (nb x n)(n x M) per batch, no loop over pixels. Rounding weights and data
    to exact fixed-point grids (:func:`_round_to_grid`, ~2**-22 relative) makes every product exact: the
    SE maps are the same bits for any ``batch_size``.

    Clusters (several images per patient): with ``clusters`` (patient id per image) the units are the
    patients: ``V_p = Σ_{i∈p} v_i``, ``m_p`` images, one feature value ``a_p`` (it must be constant within
    every patient under every row: patient-label plans, or whole-block plans of a patient-level feature),
    leverage ``H_p = m_p (1/n + a_p²/S)``, and ``Σ ω_p (V_p − m_p a_p b̂)²``: the Liang–Zeger sandwich
    (CR0; ``HC2``/``HC3`` give CR2/CR3, exact for this rank-one leverage block). Three products
    (nb x P)(P x M).

    Parameters
    ----------
    u : ndarray (n, M)
        Linearised images (:func:`linearise`, J at the cohort mean).
    x : ndarray (n,)
        The feature as the map sees it (``InterpolationResult.feature_codes``).
    plans : ndarray (B, n) of int
        Permutation rows; ``arange(n)`` gives the observed fit.
    scheme : {"image", "whole-block", "patient-label"}
        See :func:`feature_per_latent`.
    hc : {"HC0", "HC1", "HC2", "HC3"}
    clusters : array (n,), optional
        Patient of every image: cluster-robust SE over patients.
    grid : array (K,), optional
        Trajectory grid (``interp.grid`` on the map's scale, i.e. ``feature_codes`` units): se becomes
        (nb, K, M) ``= |g_k − g_0| se``.
    batch_size : int
    slope : bool
        Also yield ``b̂`` (nb, M) (the linearised numerator).

    Yields
    ------
    ``(start, se)`` or ``(start, se, b̂)``; se 0 where the pixel has no spread (untestable).
    """
    u = np.asarray(u, dtype=np.float64)
    n, M = u.shape
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size != n:
        raise ValueError(f"x has {x.size} values but u has {n} images")
    plans = np.atleast_2d(np.asarray(plans, dtype=np.int64))
    if plans.shape[1] != n:
        raise ValueError(f"plans have {plans.shape[1]} columns but u has {n} images")
    codes, m, first, P = _units(n, clusters)
    v = u - u.mean(axis=0)
    V = v if clusters is None else np.zeros((P, M))
    if clusters is not None:
        np.add.at(V, codes, v)
    untestable = np.max(np.abs(V), axis=0) <= 1e-10 * np.max(np.abs(u), axis=0)
    bits = (53 - int(np.ceil(np.log2(max(P, 2))))) // 2
    Vq = _round_to_grid(V, bits, axis=0)
    V2q = _round_to_grid(Vq * Vq, bits, axis=0)
    scale_g = None
    if grid is not None:
        g = np.asarray(grid, dtype=np.float64).ravel()
        scale_g = np.abs(g - g[0])
    for start in range(0, plans.shape[0], int(batch_size)):
        xe = feature_per_latent(x, plans[start : start + int(batch_size)], scheme)  # (nb, n)
        xu = xe[:, first]  # (nb, P)
        if clusters is not None and not np.array_equal(xe, xu[:, codes]):
            raise ValueError(
                "the feature is not constant within every cluster under these rows; "
                "cluster-robust SEs need a patient-level feature (patient-label plans)"
            )
        xbar = _fsum_rows(xu * m) / n
        a = xu - xbar[:, None]
        Sxx = _fsum_rows(m * a * a)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(Sxx[:, None] > 0, a / Sxx[:, None], 0.0)
            H = m * (1.0 / n + np.where(Sxx[:, None] > 0, a * a / Sxx[:, None], 0.0))
        omega = c * c * _leverage_factor(H, hc, n if clusters is None else P, 2)
        s = _fsum_rows(omega * m * m * a * a)
        W1 = _round_to_grid(c, bits, axis=1)
        W2 = _round_to_grid(omega, bits, axis=1)
        W3 = _round_to_grid(omega * m * a, bits, axis=1)
        b = W1 @ Vq
        var = W2 @ V2q - 2.0 * b * (W3 @ Vq) + b * b * s[:, None]
        var = np.maximum(var, 0.0)
        var[:, untestable] = 0.0
        se = np.sqrt(var)
        if scale_g is not None:
            se = scale_g[None, :, None] * se[:, None, :]
        yield (start, se, b) if slope else (start, se)


def slope_se(
    u, x, plans, scheme, *, hc: str = "HC3", clusters=None, grid=None, batch_size: int = 64, slope: bool = False
):
    """All per-permutation slope SE maps at once (see :func:`iter_slope_se`); ``(se, b̂)`` with slope."""
    parts = list(
        iter_slope_se(u, x, plans, scheme, hc=hc, clusters=clusters, grid=grid, batch_size=batch_size, slope=slope)
    )
    se = np.concatenate([p[1] for p in parts])
    return (se, np.concatenate([p[2] for p in parts])) if slope else se


def iter_smoother_se(
    u: np.ndarray,
    x: np.ndarray,
    plans: np.ndarray,
    scheme: str,
    design: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    hc: str = "HC3",
    batch_size: int = 64,
) -> Iterator[tuple[int, np.ndarray]]:
    """Sandwich SE of every step's linearised difference of a penalised fit, refitted per permutation.

    ``design(x_b) -> (X (n, p), X_grid (K, p), S (p, p))`` builds the fit for the feature values the
    latents are paired with under row b (:func:`feature_per_latent`); for ``gam`` that is
    ``interp._spec.design(x_b, None)`` and ``interp._spec.penalty(lam, 0)``. Per row:
    ``A = (X'X + S)^-1 X'``, ``ℓ_k = (X_grid A)[k] − (X_grid A)[0]``, residuals ``e = v − X A v``,
    leverages ``h = diag(X A)``, and ``se²_k = Σ_i ℓ_ki² k(h_i) e_i²`` (HC0/HC2/HC3 as for the slope;
    ``HC1`` uses n/(n − edof)). Loops over rows (each row's fit is p x n), vectorised over pixels: the
    result of a row does not depend on the batch. Yields ``(start, se)`` with se (nb, K, M).
    """
    u = np.asarray(u, dtype=np.float64)
    n, M = u.shape
    v = u - u.mean(axis=0)
    untestable = np.max(np.abs(v), axis=0) <= 1e-10 * np.max(np.abs(u), axis=0)
    plans = np.atleast_2d(np.asarray(plans, dtype=np.int64))
    for start in range(0, plans.shape[0], int(batch_size)):
        xe = feature_per_latent(x, plans[start : start + int(batch_size)], scheme)
        out = []
        for xb in xe:
            X, Xg, S = design(xb)
            A = np.linalg.solve(X.T @ X + S, X.T)  # (p, n)
            L = Xg @ A
            C = L - L[0]
            h = np.einsum("ip,pi->i", X, A)
            e = v - X @ (A @ v)
            k = _leverage_factor(h, hc, n, float(h.sum()))
            var = (C * C * k) @ (e * e)
            var = np.maximum(var, 0.0)
            var[:, untestable] = 0.0
            out.append(np.sqrt(var))
        yield start, np.stack(out)


def smoother_se(u, x, plans, scheme, design, *, hc: str = "HC3", batch_size: int = 64) -> np.ndarray:
    """All per-permutation smoother SE maps at once (see :func:`iter_smoother_se`)."""
    return np.concatenate([se for _, se in iter_smoother_se(u, x, plans, scheme, design, hc=hc, batch_size=batch_size)])


def inverse_se(se: np.ndarray) -> np.ndarray:
    """``1 / se`` as float64 with 0 where ``se == 0``: the kernels' scale, 0 = the pixel is not tested."""
    se = np.asarray(se, dtype=np.float64)
    out = np.zeros_like(se)
    np.divide(1.0, se, out=out, where=se > 0)
    return out
