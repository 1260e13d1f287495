"""CF-style metadata (CF-1.10) for the netCDF files seegaan writes: ``long_name`` and ``units`` everywhere.

:func:`add_cf_attrs` is called by the writers just before ``to_netcdf``. Units follow UDUNITS: ``"1"`` for
dimensionless quantities (images in [-1, 1], p-values, latents, indices, fractions). A variable that
already has ``units`` keeps them (a writer that knows a clinical feature's units records them); any
other gets ``"1"``, meaning dimensionless or not recorded.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

__all__ = ["add_cf_attrs", "CONVENTIONS"]

CONVENTIONS = "CF-1.10"

#: long names of the variables and coordinates of a sequence dataset
_SEQUENCE = {
    "w": "latent vector of each step of the trajectory",
    "image": "decoded image (intensity scaled to [-1, 1])",
    "difference": "decoded image minus the image at step 0",
    "p_value": "uncorrected permutation p-value of the difference",
    "p_adjusted": "p-value adjusted for multiple testing over pixels and steps",
    "significant": "pixel significant after correction (1) or not (0)",
    "significant_difference": "difference where significant, 0 elsewhere",
    "reconstruction": "decoded reconstruction of the edited image",
    "step": "step index along the trajectory",
    "lambda": "strength of the local edit (lambda) at each step",
}
#: long names of a latent cohort's variables and coordinates (others are clinical features)
_COHORT = {
    "w": "latent vector of each image",
    "image_id": "image identifier",
    "patient_id": "patient identifier",
    "split": "data split (train, val or test)",
}


def _long_name(name: str, ds: xr.Dataset, kind: str) -> str:
    if kind == "sequence":
        if name == "feature_value":
            levels = str(ds.attrs.get("levels", "") or "")
            if levels.count(",") == 1:
                a, b = levels.split(",")
                return f"fraction of the way from {a} to {b}"
            return f"value of {ds.attrs.get('feature', 'the feature')} at each step"
        return _SEQUENCE.get(name, name.replace("_", " "))
    return _COHORT.get(name, f"clinical feature {name}")


def add_cf_attrs(ds: xr.Dataset, kind: Literal["sequence", "cohort"] = "sequence", *,
                 units: dict[str, str] | None = None) -> xr.Dataset:
    """Return a copy of ``ds`` with CF ``long_name`` and ``units`` on every data variable and coordinate.

    Parameters
    ----------
    ds : xarray.Dataset
        A sequence dataset (dims step, y, x) or a latent cohort (dim image).
    kind : {"sequence", "cohort"}
        Which names to use.
    units : dict, optional
        Units by variable name (e.g. ``{"age": "year"}``); they win over anything else.

    Returns
    -------
    xarray.Dataset
        A shallow copy (the arrays are shared, the attrs are new) with ``Conventions = "CF-1.10"`` and,
        when missing, ``title`` and ``source``. ``ds`` itself is not changed.
    """
    if kind not in ("sequence", "cohort"):
        raise ValueError(f"kind must be 'sequence' or 'cohort', not {kind!r}")
    from seegaan._version import __version__

    out = ds.copy(deep=False)
    units = dict(units or {})
    for name in (*out.data_vars, *out.coords):
        var = out[name]
        attrs = dict(var.attrs)
        attrs["long_name"] = _long_name(str(name), out, kind)
        if name in units:
            attrs["units"] = units[name]
        elif kind == "sequence" and name == "feature_value" and str(out.attrs.get("levels", "") or ""):
            attrs["units"] = "1"  # a fraction from the first level to the second
        else:
            attrs.setdefault("units", "1")
        if var.dtype == bool:
            attrs.update(flag_values=np.array([0, 1], np.int8), flag_meanings="false true")
        out[name].attrs = attrs
    feature = out.attrs.get("feature")
    title = (f"SEE-GAAN sequence along {feature}" if feature else "SEE-GAAN sequence") if kind == "sequence" \
        else "SEE-GAAN latent cohort"
    out.attrs = {**out.attrs, "Conventions": CONVENTIONS}
    out.attrs.setdefault("title", title)
    out.attrs.setdefault("source", f"seegaan {out.attrs.get('seegaan_version', __version__)}")
    return out
