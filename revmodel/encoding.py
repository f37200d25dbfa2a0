"""How revmodel's Datasets are stored: one codec for NetCDF and Zarr files, one for JSON.

NetCDF and Zarr keep neither Python object strings, nor booleans in every
backend, nor nested attrs. :func:`encode` turns a Dataset into one every
backend writes (object strings as fixed unicode, booleans as ``int8``, attrs
as NetCDF types with anything else as JSON text) and marks each variable it
changed, so :func:`decode` gives the Dataset back as it was. Every writer of
the package (cube files, the plan pack, plan versions) goes through them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["decode", "encode", "jsonable", "netcdf_attr"]

#: Variable attribute naming the dtype a variable had before :func:`encode`.
DTYPE_ATTR = "revmodel_dtype"


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays, dates (as ``YYYY-MM-DD``), paths, tuples.

    A non-finite number becomes ``None`` (JSON has no NaN); anything else unknown its ``str``.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, pd.Timestamp | dt.date | np.datetime64):
        return str(pd.Timestamp(value).date())
    if isinstance(value, str | int) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return str(value)


def netcdf_attr(value: Any) -> Any:
    """An attribute value NetCDF stores: numbers and strings as they are, the rest as JSON text."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, str | int | float | np.number):
        return value
    if (
        isinstance(value, list | tuple | np.ndarray)
        and len(value)
        and all(
            isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)
            for v in value
        )
    ):
        return list(value)
    return json.dumps(jsonable(value))


def encode(ds: xr.Dataset, attrs: bool = True) -> xr.Dataset:
    """A copy of ``ds`` that NetCDF and Zarr write, marked so :func:`decode` restores it.

    Parameters
    ----------
    ds : xarray.Dataset
    attrs : bool
        Also turn attrs into NetCDF types (:func:`netcdf_attr`); with False the
        Dataset's attrs are dropped (for a caller that keeps them elsewhere).
    """
    out = ds.copy()
    for name, var in ds.variables.items():
        kind = "object" if var.dtype == object else "bool" if var.dtype == bool else None
        if kind is None:
            continue
        new = var.astype(str if kind == "object" else "int8")
        new.attrs = {**var.attrs, DTYPE_ATTR: kind}
        if name in ds.coords:
            out = out.assign_coords({name: new})
        else:
            out[name] = new
    out.attrs = {k: netcdf_attr(v) for k, v in ds.attrs.items()} if attrs else {}
    for name in out.variables:
        out[name].attrs = {k: netcdf_attr(v) for k, v in out[name].attrs.items()}
    return out


def decode(ds: xr.Dataset, objects: tuple[str, ...] = ()) -> xr.Dataset:
    """The Dataset :func:`encode` was given: marked strings as objects, marked booleans as bool.

    ``objects`` names further variables to read back as object strings (files
    written before the marks existed); every fixed-unicode variable is read as
    object strings too, as revmodel keeps its labels.
    """
    out = ds
    for name, var in ds.variables.items():
        kind = var.attrs.get(DTYPE_ATTR)
        if kind is None and (var.dtype.kind == "U" or name in objects):
            kind = "object"
        if kind is None:
            continue
        new = var.astype(object if kind == "object" else bool)
        new.attrs = {k: v for k, v in var.attrs.items() if k != DTYPE_ATTR}
        if name in ds.coords:
            out = out.assign_coords({name: new})
        else:
            out = out.assign({name: new})
    return out
