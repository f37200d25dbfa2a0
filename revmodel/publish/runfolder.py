"""The run folder: where each planning notebook leaves its results for the next.

A notebook keeps a result with :func:`save_result` (a Dataset as NetCDF, a
table as Parquet, anything else as JSON) and the next one reads it with
:func:`load_result`. :class:`Results` reads a finished run folder once for the
pack. ``revmodel plan`` reads and validates the exports once, before the
notebooks, and keeps them here (:func:`save_input`); the data notebook takes
them from the run folder (:func:`read_input`) instead of reading them again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
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
    "SavedInput",
    "read_input",
    "save_input",
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


#: The run folder's record of the exports read for the run (:func:`save_input`).
INPUT_RESULT = "input"


@dataclass(frozen=True)
class SavedInput:
    """The exports as ``revmodel plan`` read and validated them, kept in the run folder.

    What the data notebook uses of a :class:`revmodel.sources.LoadResult`: the accepted
    tables, the status (0 clean, 1 rows kept out, 2 unusable), the amounts' currency and
    the validation summary.
    """

    tables: dict[str, pd.DataFrame]
    status: int
    currency: str | None
    summary_text: str

    def summary(self) -> str:
        """The validation summary, as ``revmodel validate`` prints it."""
        return self.summary_text


def save_input(work_dir: str | Path, loaded: Any) -> Path:
    """Keep the exports read and validated for this run (a ``LoadResult``) in the run folder.

    Returns
    -------
    Path
        ``input.json`` (status, currency and summary), beside the ``table_*.parquet`` files.
    """
    save_tables(work_dir, loaded.tables)
    meta = {"summary": loaded.summary(), "status": loaded.status, "currency": loaded.currency}
    return save_result(work_dir, INPUT_RESULT, meta)


def read_input(work_dir: str | Path) -> SavedInput | None:
    """The exports :func:`save_input` kept for this run, or None (a notebook run on its own)."""
    meta = load_result(work_dir, INPUT_RESULT, default=None)
    if meta is None:
        return None
    return SavedInput(load_tables(work_dir), int(meta["status"]), meta["currency"], meta["summary"])


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
