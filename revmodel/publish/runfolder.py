"""The run folder: where each planning notebook leaves its results for the next.

A notebook keeps a result with :func:`save_result` (a Dataset as NetCDF, a
table as Parquet, anything else as JSON) and the next one reads it with
:func:`load_result`. :class:`Results` reads a finished run folder once for the
pack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from revmodel import calendar as fcal
from revmodel import config, encoding
from revmodel.errors import RevmodelError
from revmodel.publish.notebooks import NOTEBOOKS

__all__ = [
    "Results",
    "load_result",
    "load_tables",
    "period_months",
    "save_result",
    "save_tables",
    "work_folder",
]


def work_folder(work_dir: str | Path) -> Path:
    """The run folder; a relative path starts at the project root (:data:`revmodel.config.HOME`)."""
    path = Path(work_dir).expanduser()
    return path if path.is_absolute() else config.HOME / path


def save_result(work_dir: str | Path, name: str, obj: Any) -> Path:
    """Keep one result of a notebook in the run folder for the next notebooks.

    Parameters
    ----------
    work_dir : str or Path
        The run folder (the notebooks' ``work_dir`` parameter).
    name : str
        Result name, e.g. ``"cube"``; the suffix follows the type.
    obj : xarray.Dataset, pandas.DataFrame, or JSON-ready mapping/list/str

    Returns
    -------
    Path
        The file written: ``<name>.nc``, ``<name>.parquet`` or ``<name>.json``.
    """
    work = work_folder(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if isinstance(obj, xr.DataArray):
        obj = obj.to_dataset(name=obj.name or name)
    if isinstance(obj, xr.Dataset):
        path = work / f"{name}.nc"
        encoding.encode(obj).to_netcdf(path, engine="netcdf4")
    elif isinstance(obj, pd.Series):
        return save_result(work, name, obj.to_frame())
    elif isinstance(obj, pd.DataFrame):
        path = work / f"{name}.parquet"
        frame = obj.copy()
        frame.columns = [str(c) for c in frame.columns]
        frame.to_parquet(path)
    else:
        path = work / f"{name}.json"
        text = json.dumps(encoding.jsonable(obj), indent=1, sort_keys=True)
        path.write_text(text, encoding="utf-8")
    return path


_REQUIRED = object()


def load_result(work_dir: str | Path, name: str, default: Any = _REQUIRED) -> Any:
    """Read a result written by :func:`save_result` (Dataset, DataFrame or JSON value).

    ``default`` is returned when there is no such result (a section skipped for lack of
    input); without it, a missing result is an error.
    """
    work = work_folder(work_dir)
    for suffix in (".nc", ".parquet", ".json"):
        path = work / f"{name}{suffix}"
        if path.exists():
            break
    else:
        if default is not _REQUIRED:
            return default
        raise RevmodelError(
            f"{work}: no result named {name!r}; run the notebook that makes it first "
            f"(the notebooks run in the order {', '.join(NOTEBOOKS)})."
        )
    if suffix == ".nc":
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return encoding.decode(ds.load())
    if suffix == ".parquet":
        return pd.read_parquet(path)
    return json.loads(path.read_text(encoding="utf-8"))


def save_tables(work_dir: str | Path, tables: Mapping[str, pd.DataFrame]) -> list[Path]:
    """Keep the canonical tables in the run folder (``table_<name>.parquet``)."""
    return [
        save_result(work_dir, f"table_{name}", t) for name, t in tables.items() if t is not None
    ]


def load_tables(work_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The canonical tables kept by :func:`save_tables`."""
    work = work_folder(work_dir)
    return {
        p.stem.removeprefix("table_"): pd.read_parquet(p)
        for p in sorted(work.glob("table_*.parquet"))
    }


#: Months of a fiscal period in the calendar of a cube's attrs (:func:`revmodel.calendar.period_months`).
period_months = fcal.period_months


class Results:
    """Results of a run folder, read once; missing ones are None."""

    def __init__(self, work_dir: str | Path):
        self.work = Path(work_dir)
        self._cache: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        """The result ``name``, or None when no notebook made it."""
        if name not in self._cache:
            try:
                self._cache[name] = load_result(self.work, name)
            except RevmodelError:
                self._cache[name] = None
        return self._cache[name]
