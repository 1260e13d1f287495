"""The fit: :func:`interpolate` checks its options, builds the design of a method and fits the trajectory.

Every interpolator is a penalised least-squares fit, hence a linear map
(:mod:`seegaan.interpolation.methods`): with the design ``X`` of the analysed images (n x p), the design
``X_grid`` of the K grid values (K x p) and a penalty ``S``, the trajectory is ``L @ W`` with
``L = X_grid (X'X + S)^-1 X'`` (K x n), for

``class-mean``
    two indicator columns (level A, level B); grid rows ``(1 - t, t)`` for ``t`` evenly spaced in [0, 1]:
    linear interpolation from the mean latent of A to the mean latent of B.
``linear``
    ``[1, x]``: simple linear regression of every latent dimension on the feature.
``gam``
    pyGAM's ``LinearGAM(s(0))``: 20 cubic B-splines with edge knots at min/max of ``x``, a
    second-difference penalty with λ = 0.6, an intercept and a sqrt(EPS) ridge. ``lam="auto"`` picks λ
    per latent dimension by pyGAM's GCV (gamma 1.4) over ``np.logspace(-3, 3, 11)``.

Covariates (``adjust``) are appended to the design as centred, unpenalised columns and set to their
mean on the grid; the permutation null then follows Freedman–Lane (residuals of the covariate-only model
are permuted).

Refused before any fitting (one line each): covariates that are collinear with the feature's columns or
with each other (numerical rank of the column-normalised design, NumPy's ``matrix_rank`` rule
``max(n, p) * eps * s_max``), an explicit grid with all values equal, and a GAM grid outside the observed
feature range (outside its edge knots the GAM only continues its end slopes: no data support it). A
linear grid that extrapolates by more than 10% of the observed range gets a note.

Numeric class-mean levels are compared as numbers and shown exactly (``20190405``, ``0.1``), never
rounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from seegaan._internal.choices import METHODS, TRANSFORMS, Method, Transform
from seegaan._internal.errors import SeegaanError
from seegaan._internal.memory import check_steps_memory
from seegaan.data.cohort import feature_kind, feature_missing, get_feature, validate_cohort
from seegaan.interpolation.methods import REGISTRY, apply
from seegaan.interpolation.result import InterpolationResult

__all__ = ["interpolate"]


def _parse_levels(levels) -> tuple[str, str] | None:
    if levels is None:
        return None
    if isinstance(levels, str):
        levels = [s.strip() for s in levels.split(",")]
    levels = tuple(str(v) for v in levels)
    if len(levels) != 2 or not all(levels):
        raise SeegaanError(f"levels must name exactly two groups 'A,B' (got {','.join(levels)})")
    if levels[0] == levels[1]:
        raise SeegaanError(f"levels must name two different groups (got {levels[0]} twice)")
    return levels


def _num_label(v: float) -> str:
    """An exact label for a numeric level: ``20190405`` for integral values, else the shortest repr."""
    v = float(v)
    if v.is_integer() and abs(v) < 2.0**53:
        return str(int(v))
    return repr(v)


#: A linear grid may extrapolate this fraction of the observed range without a note.
EXTRAPOLATION_NOTE = 0.10
#: GAMs with fewer images per effective degree of freedom than this get a note.
IMAGES_PER_EDF = 30


def _check_explicit_grid(g: np.ndarray) -> None:
    if g.size < 2:
        raise SeegaanError("an explicit grid needs at least two values")
    if not np.isfinite(g).all():
        raise SeegaanError("grid values must be finite numbers")
    if np.ptp(g) == 0:
        raise SeegaanError(
            f"the grid values are all equal ({_num_label(g[0])}); give at least two different values, e.g. --grid 40,80"
        )


def _check_range(
    method: str, grid_units: np.ndarray, grid_t: np.ndarray, x: np.ndarray, feature: str, transform: str
) -> str | None:
    """Refuse a GAM grid outside the observed feature range; return a note for a far-extrapolating linear one."""
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo
    slack = 1e-9 * max(span, abs(lo), abs(hi))  # log/exp round trips of the edge values
    below, above = lo - float(grid_t.min()), float(grid_t.max()) - hi
    if max(below, above) <= slack:
        return None
    shown = np.exp([lo, hi]) if transform == "log" else np.array([lo, hi])
    observed = f"{shown[0]:.6g} to {shown[1]:.6g}"
    if REGISTRY[method].data_knots:
        raise SeegaanError(
            f"the grid ({grid_units.min():.6g} to {grid_units.max():.6g}) leaves the observed "
            f"range of {feature!r} ({observed}); a GAM has no data beyond it (it only continues "
            "its end slopes): keep the grid inside it, or use --method linear"
        )
    if max(below, above) > EXTRAPOLATION_NOTE * span:
        return (
            f"the grid ({grid_units.min():.6g} to {grid_units.max():.6g}) extrapolates the linear fit "
            f"beyond the observed range of {feature!r} ({observed}) by more than "
            f"{EXTRAPOLATION_NOTE:.0%} of that range; the ends of the trajectory rest on no data"
        )
    return None


def _rank(M: np.ndarray) -> int:
    """Numerical rank with NumPy's ``matrix_rank`` tolerance ``max(n, p) * eps * s_max``."""
    if M.size == 0:
        return 0
    sv = np.linalg.svd(M, compute_uv=False)
    return int(np.sum(sv > max(M.shape) * np.finfo(np.float64).eps * sv[0])) if sv[0] > 0 else 0


def _unit_columns(M: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(M, axis=0)
    return M / np.where(norms > 0, norms, 1.0)


def _check_covariates(F: np.ndarray, Z: np.ndarray, owners: Sequence[str], feature: str) -> None:
    """Refuse covariates that are constant, or collinear with the feature's columns ``F`` or each other.

    The design ``[F, Z]`` (columns scaled to unit length, so units do not matter) must have rank
    ``rank(F) + columns of Z``; ``owners[j]`` names the covariate of column ``j`` of ``Z``.
    """
    flat = [name for j, name in enumerate(owners) if np.ptp(Z[:, j]) == 0]
    if flat:
        names = ", ".join(dict.fromkeys(flat))
        raise SeegaanError(
            f"covariate(s) {names} are constant among the images analysed (a single value, or "
            "a level none of them has); drop them from --adjust"
        )
    Fu, Zu = _unit_columns(F), _unit_columns(Z - Z.mean(axis=0))
    full = _rank(np.hstack([Fu, Zu]))
    if full == _rank(Fu) + Z.shape[1]:
        return
    # which covariates: those with weight in a null vector of Z once the feature's columns are projected out
    u, sv, _ = np.linalg.svd(Fu, full_matrices=False)
    basis = u[:, sv > max(Fu.shape) * np.finfo(np.float64).eps * sv[0]]
    resid = Zu - basis @ (basis.T @ Zu)
    _, rsv, rvt = np.linalg.svd(resid, full_matrices=False)
    tol = max(resid.shape) * np.finfo(np.float64).eps * max(1.0, rsv[0] if rsv.size else 0.0)
    null = rvt[rsv <= tol]
    involved = [owners[j] for j in range(Z.shape[1]) if null.size and np.max(np.abs(null[:, j])) > 1e-6]
    names = ", ".join(dict.fromkeys(involved)) or ", ".join(dict.fromkeys(owners))
    what = f"the feature {feature!r}" if full < _rank(Fu) + _rank(Zu) else "each other"
    raise SeegaanError(
        f"covariate(s) {names} are collinear with {what} among the images analysed, so the "
        "trajectory is not identifiable; drop them from --adjust"
    )


def _grid(x: np.ndarray, steps: int, grid, transform: str, feature: str) -> tuple[np.ndarray, np.ndarray]:
    """Grid in feature units and on the transformed scale."""
    if grid is not None:
        g = grid
        if transform == "log" and (g <= 0).any():
            raise SeegaanError(f"--transform log needs positive grid values for {feature}")
        return g, (np.log(g) if transform == "log" else g)
    lo, hi = np.percentile(x, [5, 95])
    gt = np.linspace(lo, hi, steps)
    return (np.exp(gt) if transform == "log" else gt), gt


def _parse_grid(grid) -> np.ndarray | None:
    """Explicit grid values from numbers or a string ``"v1,v2,..."``."""
    if grid is None:
        return None
    if isinstance(grid, str):
        try:
            return np.array([float(v) for v in grid.split(",")])
        except ValueError:
            raise SeegaanError(f"--grid must be comma-separated numbers, not {grid!r}") from None
    try:
        return np.asarray(grid, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise SeegaanError(f"--grid must be numbers, not {grid!r}") from None


def _parse_lam(gam_lam) -> float | None:
    """The GAM smoothing parameter: a positive number, or None for ``"auto"`` (GCV per latent dimension)."""
    if isinstance(gam_lam, str) and gam_lam.strip().lower() == "auto":
        return None
    try:
        lam = float(gam_lam)
    except (TypeError, ValueError):
        raise SeegaanError(f"--gam-lam must be a positive number or 'auto', not {gam_lam!r}") from None
    if not lam > 0:
        raise SeegaanError(f"--gam-lam must be a positive number or 'auto', not {gam_lam!r}")
    return lam


def _covariates(
    cohort: xr.Dataset, adjust: Sequence[str], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Covariate matrix (dummy-coded categoricals), the mask of rows with all present, each column's covariate."""
    cols, ok, owners = [], np.ones(rows.size, bool), []
    for name in adjust:
        values = get_feature(cohort, name)[rows]
        miss = feature_missing(values)
        ok &= ~miss
        kind = feature_kind(values)
        if kind == "numeric":
            cols.append(values.astype(float)[:, None])
            owners.append(name)
        else:
            levels = sorted(set(map(str, values[~miss])))
            if len(levels) < 2:
                raise SeegaanError(f"covariate {name!r} has fewer than two levels; drop it from --adjust")
            cols.append(np.column_stack([(values.astype(str) == lv).astype(float) for lv in levels[1:]]))
            owners += [name] * (len(levels) - 1)
    Z = np.hstack(cols) if cols else np.zeros((rows.size, 0))
    return Z, ok, owners


def interpolate(
    cohort: xr.Dataset,
    *,
    feature: str,
    method: Method = "auto",
    levels: str | Sequence[str] | None = None,
    steps: int = 8,
    grid=None,
    transform: Transform = "none",
    gam_lam: float | str = 0.6,
    gam_splines: int = 20,
    adjust: Sequence[str] | str | None = None,
) -> InterpolationResult:
    """Fit a trajectory through latent space along ``feature``.

    Parameters
    ----------
    cohort : xarray.Dataset
        A latent cohort (``w`` with dims ("image", "latent") and clinical coordinates).
    feature : str
        Clinical coordinate to move along.
    method : {"auto", "class-mean", "linear", "gam"}
        ``auto`` picks class-mean for boolean/categorical features (and numeric ones with two distinct
        values) and gam for numeric ones.
    levels : "A,B" or (A, B), optional
        Class-mean only: the two groups, from A to B. Default: False -> True for booleans, the two levels
        in sorted order otherwise.
    steps : int
        Number of grid values K (>= 2), evenly spaced between the 5th and 95th percentiles.
    grid : array-like or "v1,v2,...", optional
        Explicit grid values in the feature's units (overrides ``steps``).
    transform : {"none", "log"}
        Fit on log(feature) (e.g. BNPP); the grid is evenly spaced on that scale.
    gam_lam : float, "auto" or a string of either
        GAM smoothing parameter (> 0); "auto" chooses λ per latent dimension by GCV.
    gam_splines : int
        Number of B-splines of the GAM.
    adjust : list of str or "A,B", optional
        Covariates to adjust for (Freedman–Lane under permutation).

    Returns
    -------
    InterpolationResult
    """
    validate_cohort(cohort)
    values = get_feature(cohort, feature)
    if method not in METHODS:
        raise SeegaanError(f"unknown method {method!r}; use {', '.join(METHODS)}")
    if transform not in TRANSFORMS:
        raise SeegaanError(f"unknown transform {transform!r}; use {', '.join(TRANSFORMS)}")
    grid = _parse_grid(grid)
    if grid is not None:
        _check_explicit_grid(grid)
    if grid is None and not (isinstance(steps, (int, np.integer)) and steps >= 2):
        raise SeegaanError(f"--steps must be an integer of at least 2 (got {steps!r})")
    check_steps_memory(len(grid) if grid is not None else int(steps), cohort.attrs.get("image_size"), "--steps")
    lam = _parse_lam(gam_lam)
    if isinstance(adjust, str):
        adjust = [a.strip() for a in adjust.split(",") if a.strip()]
    adjust = tuple(adjust or ())
    if feature in adjust:
        raise SeegaanError(f"{feature!r} cannot be both the feature and a covariate")
    levels = _parse_levels(levels)
    kind = feature_kind(values)
    missing = feature_missing(values)
    n_distinct = len(np.unique(values[~missing].astype(str))) if (~missing).any() else 0
    if method == "auto":
        method = "class-mean" if (kind != "numeric" or n_distinct == 2 or levels) else "gam"

    rows = np.flatnonzero(~missing)
    notes: list[str] = []
    if REGISTRY[method].categorical:
        # numeric levels are compared as numbers and labelled exactly (never rounded for display)
        present = values[rows].astype(str) if kind != "numeric" else values[rows].astype(np.float64)
        uniq = np.unique(present)  # sorted: numerically for numbers
        found = [str(v) for v in uniq] if kind != "numeric" else [_num_label(v) for v in uniq]
        if levels is None:
            if len(found) < 2:
                raise SeegaanError(
                    f"feature {feature!r} has fewer than two groups ({', '.join(found) or 'none'}); "
                    "class-mean needs two"
                )
            if len(found) > 2:  # the two most frequent levels, most frequent first (ties: value order)
                _, counts = np.unique(present, return_counts=True)
                order = sorted(range(len(uniq)), key=lambda i: (-counts[i], i))
                chosen = (uniq[order[0]], uniq[order[1]])
                levels = (found[order[0]], found[order[1]])
                notes.append(
                    f"{feature!r} has {len(found)} levels ({', '.join(found[:8])}); comparing the two "
                    f"most frequent, {levels[0]} -> {levels[1]}; choose others with --levels A,B"
                )
            else:
                levels = ("False", "True") if kind == "boolean" else (found[0], found[1])
                chosen = (levels[0], levels[1]) if kind != "numeric" else (uniq[0], uniq[1])
        else:
            picked: list = []
            for lv in levels:
                value: float | str | None
                if kind == "numeric":
                    try:
                        value = float(lv)
                    except ValueError:
                        value = None
                    hit = value is not None and bool(np.any(uniq == value))
                else:
                    value, hit = lv, lv in found
                if not hit:
                    raise SeegaanError(f"level {lv!r} is not a value of {feature!r}; levels: {', '.join(found[:12])}")
                picked.append(value)
            chosen = (picked[0], picked[1])
            if kind == "numeric":
                if chosen[0] == chosen[1]:
                    raise SeegaanError(
                        f"levels {levels[0]} and {levels[1]} are the same number; name two different groups"
                    )
                levels = (_num_label(chosen[0]), _num_label(chosen[1]))
        for lv in levels:
            if "," in str(lv):
                raise SeegaanError(
                    f"level {lv!r} of {feature!r} contains a comma, which sequence files and --levels use to "
                    "separate the two levels; rename it in the table (e.g. without the comma)"
                )
        keep = (present == chosen[0]) | (present == chosen[1])
        rows = rows[keep]
        x = (present[keep] == chosen[1]).astype(np.float64)
        for lv, value in zip(levels, chosen):
            if not np.any(present[keep] == value):
                raise SeegaanError(f"level {lv!r} of {feature!r} has no images")
        grid_units = grid_t = np.linspace(0.0, 1.0, int(steps)) if grid is None else grid
        if grid is not None and (grid_t.min() < 0 or grid_t.max() > 1):
            raise SeegaanError("class-mean grid values are fractions between the two means (0 to 1)")
        if transform != "none":
            raise SeegaanError("--transform applies to numeric features; class-mean takes none")
    else:
        if kind != "numeric":
            raise SeegaanError(f"feature {feature!r} is {kind}; use --method class-mean (or auto)")
        x = values[rows].astype(np.float64)
        if transform == "log":
            if (x <= 0).any():
                raise SeegaanError(
                    f"--transform log needs positive values, but {feature!r} has {int((x <= 0).sum())} value(s) <= 0"
                )
            x = np.log(x)
        distinct = np.unique(x).size
        if distinct < 2:
            raise SeegaanError(f"feature {feature!r} has fewer than two distinct values; nothing to fit")
        if method == "gam" and distinct < int(gam_splines):
            raise SeegaanError(
                f"feature {feature!r} has {distinct} distinct values, fewer than the "
                f"{gam_splines} splines of the GAM; use --method linear or fewer --gam-splines"
            )
        grid_units, grid_t = _grid(x, int(steps), grid, transform, feature)
        note = _check_range(method, grid_units, grid_t, x, feature, transform)
        if note:
            notes.append(note)

    spec = REGISTRY[method].from_options(grid_t, gam_splines=int(gam_splines), gam_lam=lam)

    Z = None
    if adjust:
        Zall, ok, owners = _covariates(cohort, adjust, rows)
        rows, x, Zall = rows[ok], x[ok], Zall[ok]
        if rows.size >= 3:
            F = spec.base(x)[0]
            _check_covariates(spec.identifiable(F), Zall, owners, feature)
        Z = Zall - Zall.mean(axis=0)
    # images of other classes are not "missing": count only absent feature/covariate values
    n_missing = int(missing.sum()) + (int((~ok).sum()) if adjust else 0)
    if rows.size < 3:
        raise SeegaanError(f"only {rows.size} image(s) have {feature!r}; at least 3 are needed")

    W = cohort["w"].values[rows].astype(np.float64)
    op = spec.operator(x, Z)
    traj, lam_idx = apply(op, W)
    lam_out, edf = spec.smoothing(x, Z, op, lam_idx)
    if edf is not None:  # a smoother: warn when it uses many degrees of freedom for few images
        worst = float(np.max(edf))
        if rows.size < IMAGES_PER_EDF * worst:
            uses = "uses" if np.ndim(edf) == 0 else "uses up to"
            fewer = " or fewer splines (--gam-splines 6)" if int(gam_splines) > 6 else ""
            notes.append(
                f"the GAM {uses} {worst:.1f} effective degrees of freedom for {rows.size} images; "
                f"consider --method linear{fewer}"
            )
    return InterpolationResult(
        feature=feature,
        method=method,
        transform=transform,
        levels=levels if spec.categorical else None,
        grid=np.asarray(grid_units, dtype=np.float64),
        trajectory=traj,
        L=op if isinstance(op, np.ndarray) else None,
        lam=lam_out,
        image_index=rows,
        n_missing=n_missing,
        covariates=adjust,
        n_splines=getattr(spec, "n_splines", None),
        cohort=cohort,
        _spec=spec,
        _x=x,
        _Z=Z,
        _op=op,
        notes=tuple(notes),
        edf=edf,
    )
