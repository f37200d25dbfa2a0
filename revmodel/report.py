"""The quarterly plan pack: run the planning notebooks with papermill, publish the pack.

``revmodel plan --params parameters/FY2027-Q1.yaml`` does, in order:

1. reads and checks the parameters file (:mod:`revmodel.parameters`); a bad
   key or a missing data folder stops here, before anything runs;
2. executes the numbered notebooks of ``notebooks/`` (:data:`NOTEBOOKS`) with
   papermill on the pinned kernel :data:`KERNEL_NAME` (this interpreter), each
   with the parameters it declares plus ``work_dir``, a run folder where each
   notebook leaves its results (:func:`save_result`) for the next
   (:func:`load_result`);
3. builds the pack from those results (:func:`build_pack`): ``plan.html``
   (self-contained, no code, Plotly charts that work offline), ``plan.xlsx``
   (one sheet per table), ``plan.nc`` (the plan cube: one NetCDF group per
   result), the executed notebooks and ``manifest.json`` (parameters, data
   hash, package versions, run time);
4. publishes atomically: the pack is built in ``reports/.<cycle>.tmp-<pid>/``
   and renamed over ``reports/<cycle>/`` only when complete. A failed or
   interrupted run leaves the previous pack untouched; a failed notebook is
   kept in ``reports/.failed/<cycle>/`` and the error names it and its cell.

Every number of the pack comes from a revmodel function; this module only
gathers, formats and writes them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import html
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import revmodel
from revmodel import calendar as fcal
from revmodel import config, reconcile
from revmodel import parameters as rparams
from revmodel.errors import RevmodelError

__all__ = [
    "KERNEL_NAME",
    "NOTEBOOKS",
    "PlanFailed",
    "accuracy_table",
    "build_pack",
    "ensure_kernel",
    "forecast_table",
    "last_cycle_accuracy",
    "load_result",
    "plan",
    "publish",
    "run_notebooks",
    "save_result",
    "summary",
]

#: The planning notebooks, in the order they run.
NOTEBOOKS: tuple[str, ...] = (
    "01-data.ipynb",
    "02-forecast.ipynb",
    "03-territories.ipynb",
    "04-capacity-quota.ipynb",
    "05-scenarios.ipynb",
    "quarterly-plan.ipynb",
)
#: The kernel papermill runs the notebooks on: this Python, registered by :func:`ensure_kernel`.
KERNEL_NAME = "revmodel"
#: Packages whose versions go into the manifest.
MANIFEST_PACKAGES: tuple[str, ...] = (
    "numpy", "pandas", "xarray", "scipy", "statsmodels", "pandera", "dask", "netCDF4",
    "plotly", "papermill", "openpyxl", "jinja2",
)  # fmt: skip
_CUR = config.CURRENCY


class PlanFailed(RevmodelError):
    """A planning notebook failed; the message names the notebook and the cell."""

    exit_code = 1


# --------------------------------------------------------------------------- run folder


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
        _netcdf_ready(obj).to_netcdf(path, engine="netcdf4")
    elif isinstance(obj, pd.Series):
        return save_result(work, name, obj.to_frame())
    elif isinstance(obj, pd.DataFrame):
        path = work / f"{name}.parquet"
        frame = obj.copy()
        frame.columns = [str(c) for c in frame.columns]
        frame.to_parquet(path)
    else:
        path = work / f"{name}.json"
        path.write_text(json.dumps(_jsonable(obj), indent=1, sort_keys=True), encoding="utf-8")
    return path


def load_result(work_dir: str | Path, name: str) -> Any:
    """Read a result written by :func:`save_result` (Dataset, DataFrame or JSON value)."""
    work = work_folder(work_dir)
    for suffix in (".nc", ".parquet", ".json"):
        path = work / f"{name}{suffix}"
        if path.exists():
            break
    else:
        raise RevmodelError(
            f"{work}: no result named {name!r}; run the notebook that makes it first "
            f"(the notebooks run in the order {', '.join(NOTEBOOKS)})."
        )
    if suffix == ".nc":
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds = ds.load()
        for c, v in ds.variables.items():
            if v.dtype.kind == "U":
                ds = (
                    ds.assign_coords({c: v.astype(object)})
                    if c in ds.coords
                    else ds.assign({c: v.astype(object)})
                )
        return ds
    if suffix == ".parquet":
        return pd.read_parquet(path)
    return json.loads(path.read_text(encoding="utf-8"))


def work_folder(work_dir: str | Path) -> Path:
    """The run folder; a relative path starts at the project root (:data:`revmodel.config.HOME`)."""
    path = Path(work_dir).expanduser()
    return path if path.is_absolute() else config.HOME / path


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


def period_months(label: str, attrs: Mapping[str, Any]) -> pd.DatetimeIndex:
    """Months of a fiscal period (``FY2027-Q1`` or ``FY2027``) in the calendar of a cube's attrs."""
    return _period_months(label, attrs)


def _netcdf_ready(ds: xr.Dataset) -> xr.Dataset:
    """Object strings as fixed unicode and attrs as NetCDF types, so the file always writes."""
    out = ds.copy()
    for name, var in ds.variables.items():
        if var.dtype == object:
            if name in ds.coords:
                out = out.assign_coords({name: var.astype(str)})
            else:
                out[name] = var.astype(str)
        elif var.dtype == bool:
            if name in ds.coords:
                out = out.assign_coords({name: var.astype("int8")})
            else:
                out[name] = var.astype("int8")
    out.attrs = {k: _attr(v) for k, v in ds.attrs.items()}
    for name in out.variables:
        out[name].attrs = {k: _attr(v) for k, v in ds[name].attrs.items()}
    return out


def _attr(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, str | int | float | np.number):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
        return list(value)
    return json.dumps(_jsonable(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | dt.date | np.datetime64):
        return str(pd.Timestamp(value).date())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


# --------------------------------------------------------------------------- forecast helpers


def _period_months(label: str, attrs: Mapping[str, Any]) -> pd.DatetimeIndex:
    return fcal.quarter_months(
        label,
        start_month=int(attrs.get("fiscal_year_start", config.FISCAL_YEAR_START)),
        naming=str(attrs.get("fiscal_year_naming", config.FISCAL_YEAR_NAMING)),
    )


def last_cycle_accuracy(
    cube: xr.Dataset, cycle: str, horizon: int = 3, previous: xr.Dataset | None = None
) -> tuple[pd.DataFrame, dict]:
    """Forecast against actual for the last fiscal quarter with actuals, by level.

    The forecast is the one published for that quarter (``previous``: the
    ``forecast`` group of last cycle's ``plan.nc``) when there is one, else it
    is made again: :func:`revmodel.forecast.forecast_cube` on the cube as of the
    month before that quarter.

    Parameters
    ----------
    cube : xarray.Dataset
        The revenue cube (actuals through ``attrs["as_of"]``).
    cycle : str
        The cycle planned now, e.g. ``"FY2027-Q1"``; the quarter measured is the
        last complete quarter of actuals before it.
    horizon : int
        Months forecast when the forecast is made again [months].
    previous : xarray.Dataset, optional
        Last cycle's published forecast (``forecast_cube`` output).

    Returns
    -------
    (pandas.DataFrame, dict)
        One row per node: ``level``, ``name``, ``forecast``, ``p10``, ``p90``,
        ``actual`` [currency], ``error`` (forecast - actual) [currency],
        ``abs_pct_error`` [ratio], ``in_band`` [bool]; and ``info`` with
        ``quarter``, ``origin`` (last month of actuals the forecast saw) and
        ``source`` ("published" or "re-run").
    """
    from revmodel import forecast

    as_of = pd.Timestamp(cube.attrs["as_of"])
    quarter = fcal.next_quarter(cycle, -1)
    months = _period_months(quarter, cube.attrs)
    while months[-1] > as_of:
        quarter = fcal.next_quarter(quarter, -1)
        months = _period_months(quarter, cube.attrs)
    origin = months[0] - pd.DateOffset(months=1)
    fc = previous
    source = "published"
    if fc is None or not set(months).issubset(set(pd.DatetimeIndex(fc["month"].values))):
        past = cube.sel(month=cube["month"] <= np.datetime64(origin, "ns"))
        past = past.assign_attrs(as_of=f"{origin:%Y-%m-%d}")
        fc = forecast.forecast_cube(past, horizon=max(3, int(horizon)), progress=False)
        source = "re-run"
    sel = fc.sel(month=months.values)
    q = [float(v) for v in sel["quantile"].values]
    actual = cube["bookings"].sel(month=months.values)
    rows = []
    levels = {"total": (), "region": ("region",), "segment": ("segment",), "manager": ("manager",)}
    for level, keys in levels.items():
        mask = sel["level"].values == level
        for i in np.flatnonzero(mask):
            name = " / ".join(str(sel[f"node_{k}"].values[i]) for k in keys) or "Company"
            sub = actual
            for k in keys:
                if k == "manager":
                    sub = sub.where(cube["manager"] == str(sel["node_manager"].values[i]))
                else:
                    sub = sub.sel({k: str(sel[f"node_{k}"].values[i])})
            rows.append(_accuracy_row(level, name, sel, i, q, float(sub.sum(skipna=True))))
    rep_mask = sel["level"].values == reconcile.BOTTOM_LEVEL
    reps = pd.Series(sel["node_rep"].values[rep_mask])
    for rep in sorted(set(reps)):
        idx = np.flatnonzero(rep_mask)[reps.values == rep]
        act = float(actual.sel(rep=rep).sum(skipna=True))
        fcv = float(sel["node_mean"].values[idx].sum())
        band = sel["node_forecast"].values[idx].sum(axis=(0, 1))
        rows.append(_row("rep", rep, fcv, band, q, act))
    table = pd.DataFrame(rows)
    info = {"quarter": quarter, "origin": f"{origin:%Y-%m}", "source": source}
    return table, info


def _accuracy_row(level, name, sel, i, q, actual):
    fcv = float(sel["node_mean"].values[i].sum())
    band = sel["node_forecast"].values[i].sum(axis=0)
    return _row(level, name, fcv, band, q, actual)


def _row(level: str, name: str, fcv: float, band: np.ndarray, q: list, actual: float) -> dict:
    p10 = float(band[q.index(min(q))])
    p90 = float(band[q.index(max(q))])
    return {
        "level": level,
        "name": name,
        "forecast": fcv,
        "p10": p10,
        "p90": p90,
        "actual": actual,
        "error": fcv - actual,
        "abs_pct_error": abs(fcv - actual) / actual if actual > 0 else np.nan,
        "in_band": bool(p10 <= actual <= p90),
    }


def accuracy_table(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy by level: nodes, weighted absolute percentage error, share inside the band."""
    g = table.groupby("level", sort=False)
    out = pd.DataFrame(
        {
            "nodes": g.size(),
            "forecast": g["forecast"].sum(),
            "actual": g["actual"].sum(),
            "wape": g.apply(
                lambda d: d["error"].abs().sum() / d["actual"].sum(), include_groups=False
            ),
            "share_in_band": g["in_band"].mean(),
        }
    )
    return out.reset_index()


def forecast_table(
    cube: xr.Dataset,
    fc: xr.Dataset,
    reconciled: xr.DataArray,
    quota: xr.Dataset | None,
    months: pd.DatetimeIndex,
    level: str,
) -> pd.DataFrame:
    """Forecast against target over ``months`` at one level of the hierarchy.

    Parameters
    ----------
    cube : xarray.Dataset
        The revenue cube (for open pipeline and the rep hierarchy).
    fc : xarray.Dataset
        :func:`revmodel.forecast.forecast_cube` (for the 10-90% band).
    reconciled : xarray.DataArray
        Coherent mean forecast from :func:`revmodel.forecast.reconcile_forecast` [currency/month].
    quota : xarray.Dataset, optional
        :func:`revmodel.quota.top_down` (``quota(rep, month)``), the target.
    months : pandas.DatetimeIndex
        Months summed (the cycle's quarter or the plan year).
    level : {"total", "region", "segment", "manager", "rep"}

    Returns
    -------
    pandas.DataFrame
        ``name``, ``forecast`` (reconciled), ``p10``, ``p90`` (the node's own
        model; months summed, so the band assumes months move together),
        ``target``, ``gap`` (target - forecast), ``coverage`` (forecast /
        target), ``pipeline`` (open pipeline closing in the months) [currency].
    """
    from revmodel import cube as rcube

    m = months.values.astype("datetime64[ns]")
    fm = [t for t in m if t in set(reconciled["month"].values)]
    keep = {"total": (), "region": ("region",), "segment": ("segment",), "manager": ("manager",), "rep": ("rep",)}[level]  # fmt: skip
    rec = rcube.rollup(
        reconciled.sel(month=fm).assign_coords(manager=("rep", cube["manager"].values)), keep
    ).sum("month")
    pipe = rcube.rollup(cube["pipeline"].sel(month=[t for t in m if t in set(cube["month"].values)]), keep).sum("month")  # fmt: skip
    # Band: the node's own model quantiles, summed over the months.
    q = [float(v) for v in fc["quantile"].values]
    node = fc["node_forecast"].sel(month=fm).sum("month")
    fc_level = {"total": "total", "region": "region", "segment": "segment", "manager": "manager", "rep": reconcile.BOTTOM_LEVEL}[level]  # fmt: skip
    mask = fc["level"].values == fc_level
    key = "rep" if level == "rep" else level
    names = ["Company"] if level == "total" else [str(v) for v in fc[f"node_{key}"].values[mask]]
    band = (
        pd.DataFrame(
            node.values[mask][:, [q.index(min(q)), q.index(max(q))]], columns=["p10", "p90"]
        )
        .assign(name=names)
        .groupby("name")
        .sum()
    )
    if level == "total":
        frame = pd.DataFrame(
            {"forecast": [float(rec)], "pipeline": [float(pipe)]}, index=["Company"]
        )
    else:
        frame = pd.DataFrame({"forecast": rec.to_series(), "pipeline": pipe.to_series()})
        frame.index = frame.index.astype(str)
    frame = frame.join(band, how="left")
    if quota is not None:
        qm = [t for t in m if t in set(quota["month"].values)]
        qd = quota["quota"].sel(month=qm).sum("month")
        by = {"region": "rep_region", "segment": "rep_segment", "manager": "manager", "rep": "rep"}
        if level == "total":
            tgt = pd.Series([float(qd.sum())], index=["Company"])
        elif level == "rep":
            tgt = qd.to_series()
        else:
            tgt = qd.groupby(quota[by[level]]).sum().to_series()
        tgt.index = tgt.index.astype(str)
        frame = frame.join(tgt.rename("target"), how="outer")
    else:
        frame["target"] = np.nan
    frame = frame.fillna({"forecast": 0.0, "pipeline": 0.0})
    frame["gap"] = frame["target"] - frame["forecast"]
    frame["coverage"] = frame["forecast"] / frame["target"].where(frame["target"] > 0)
    frame = frame[frame[["forecast", "target", "pipeline"]].abs().sum(axis=1) > 0]
    frame = frame.rename_axis("name").reset_index()
    cols = ["name", "forecast", "p10", "p90", "target", "gap", "coverage", "pipeline"]
    return frame[cols].sort_values("name", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- summary


def summary(work_dir: str | Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """The executive summary of a run: target, forecast with interval, gap, capacity, hires.

    Parameters
    ----------
    work_dir : str or Path
        The run folder the notebooks filled.
    params : mapping
        The checked parameters.

    Returns
    -------
    dict
        Figures for the cycle's quarter (``quarter_*``) and the plan year
        (``year_*``) [currency], ``hires_needed`` [reps], ``share_expected_to_attain``
        [ratio] and labels (``cycle``, ``plan_year``, ``as_of``).
    """
    r = _Results(work_dir)
    cube = r.get("cube")
    fc, rec, quotas = r.get("forecast"), r.get("reconciled"), r.get("quotas")
    qmonths = _period_months(params["cycle"], cube.attrs)
    ymonths = _period_months(rparams.plan_year(params), cube.attrs)
    out: dict[str, Any] = {
        "cycle": params["cycle"],
        "plan_year": rparams.plan_year(params),
        "as_of": str(cube.attrs["as_of"])[:7],
        "quarter_months": f"{qmonths[0]:%b %Y} - {qmonths[-1]:%b %Y}",
    }
    for tag, months in (("quarter", qmonths), ("year", ymonths)):
        if fc is not None and rec is not None:
            t = forecast_table(cube, fc, rec["forecast"], quotas, months, "total").iloc[0]
            out[f"{tag}_forecast"] = float(t["forecast"])
            out[f"{tag}_p10"] = float(t["p10"])
            out[f"{tag}_p90"] = float(t["p90"])
            out[f"{tag}_pipeline"] = float(t["pipeline"])
            out[f"{tag}_target"] = float(t["target"]) if quotas is not None else None
            out[f"{tag}_gap"] = float(t["gap"]) if quotas is not None else None
            out[f"{tag}_forecast_months"] = int(np.isin(months.values, rec["month"].values).sum())
    capacity = r.get("capacity")
    if capacity is not None:
        cap = capacity["capacity"]
        out["quarter_capacity"] = float(cap.sel(month=cap["month"].isin(qmonths.values)).sum())
        out["year_capacity"] = float(cap.sum())
        out["headcount_start"] = float(capacity["headcount"].isel(month=0).sum())
        out["ramped_fte_start"] = float(capacity["ramped_fte"].isel(month=0).sum())
    if quotas is not None:
        out["company_target"] = float(quotas.attrs.get("target", quotas["target"].values))
    hires = r.get("hires")
    if hires is not None:
        out["hires_needed"] = int(hires["hires"].sum()) if len(hires) else 0
    bal = r.get("balance")
    if bal is not None and "share_expected_to_attain" in bal:
        out["share_expected_to_attain"] = float(bal["share_expected_to_attain"])
        out["reps_out_of_line"] = int(bal["n_out_of_line"])
    ret = r.get("retention_plan")
    if ret is not None:
        out["starting_arr"] = float(ret["starting_arr"].sum())
        out["expected_churn_arr"] = float(ret["total_expected_churn_arr"].sum())
        out["churn_rate"] = float(ret["company_churn_rate"])
        out["required_new_arr"] = float(ret["total_required_new_arr"].sum())
    acc = r.get("accuracy")
    if acc is not None and len(acc):
        total = acc[acc["level"] == "total"]
        if len(total):
            out["last_quarter_forecast"] = float(total["forecast"].iloc[0])
            out["last_quarter_actual"] = float(total["actual"].iloc[0])
            out["last_quarter_error"] = float(total["error"].iloc[0] / total["actual"].iloc[0])
    info = r.get("accuracy_info")
    if info:
        out["last_quarter"] = info.get("quarter")
        out["last_quarter_source"] = info.get("source")
        out["last_quarter_origin"] = info.get("origin")
    return out


class _Results:
    """Results of a run folder, read once; missing ones are None."""

    def __init__(self, work_dir: str | Path):
        self.work = Path(work_dir)
        self._cache: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._cache:
            try:
                self._cache[name] = load_result(self.work, name)
            except RevmodelError:
                self._cache[name] = None
        return self._cache[name]


# --------------------------------------------------------------------------- kernel and notebooks


def ensure_kernel(root: Path | None = None) -> Path:
    """Register the kernel :data:`KERNEL_NAME` on this Python interpreter.

    The kernelspec is written under ``root`` (default ``config.BUILD_DIR /
    "jupyter"``), which :func:`run_notebooks` puts first on ``JUPYTER_PATH``,
    so the notebooks always run on the interpreter that runs the plan,
    whatever kernels a user has installed.

    Returns
    -------
    Path
        The folder to put on ``JUPYTER_PATH``.
    """
    root = Path(root) if root is not None else config.BUILD_DIR / "jupyter"
    spec_dir = root / "kernels" / KERNEL_NAME
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (revmodel)",
        "language": "python",
        "env": {"PYTHONHASHSEED": "0"},
    }
    text = json.dumps(spec, indent=1)
    path = spec_dir / "kernel.json"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        spec_dir.mkdir(parents=True, exist_ok=True)
        tmp = spec_dir / f".kernel.json.{os.getpid()}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return root


@contextlib.contextmanager
def _jupyter_path(root: Path) -> Iterator[None]:
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root), *([old] if old else [])])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old


def declared_parameters(notebook: str | Path) -> dict[str, dict[str, Any]]:
    """The parameters a notebook declares in its ``parameters`` cell (papermill's reading)."""
    import papermill as pm

    return {p: dict(v) for p, v in pm.inspect_notebook(str(notebook)).items()}


def _failed_cell(nb_path: Path, exc: Exception) -> tuple[int | None, int | None, str, str]:
    """(cell number among code cells, execution count, ename, evalue) of a failed run."""
    import nbformat

    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # noqa: BLE001 - the notebook may be half written
        return None, getattr(exc, "exec_count", None), ename, evalue
    number = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            continue
        number += 1
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return number, cell.get("execution_count"), ename, evalue
    return None, getattr(exc, "exec_count", None), ename, evalue


def run_notebooks(
    params: Mapping[str, Any],
    work_dir: str | Path,
    out_dir: str | Path,
    notebooks: tuple[str, ...] = NOTEBOOKS,
    notebooks_dir: str | Path | None = None,
    failed_dir: str | Path | None = None,
    previous_pack: str | Path | None = None,
) -> list[Path]:
    """Execute the planning notebooks in order with papermill on the pinned kernel.

    Parameters
    ----------
    params : mapping
        Checked parameters (:func:`revmodel.parameters.load`).
    work_dir : str or Path
        Run folder passed to every notebook as ``work_dir``.
    previous_pack : str or Path, optional
        Last cycle's published pack, passed as ``previous_pack`` so the accuracy
        section measures what was actually published.
    out_dir : str or Path
        Where the executed notebooks are written.
    notebooks : tuple of str
        Notebook file names, run in this order.
    notebooks_dir : str or Path, optional
        Default :data:`revmodel.config.NOTEBOOKS_DIR`.
    failed_dir : str or Path, optional
        Where a failed notebook is kept; default ``out_dir``'s parent ``.failed``.

    Returns
    -------
    list of Path
        The executed notebooks.

    Raises
    ------
    PlanFailed
        ``Plan failed in notebook 02-forecast.ipynb, cell 7: DataError: ...``
        (cell = the notebook's 7th code cell, the injected parameters not
        counted); the executed notebook is kept in ``failed_dir``.
    """
    import papermill as pm

    src_dir = Path(notebooks_dir) if notebooks_dir is not None else config.NOTEBOOKS_DIR
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = ensure_kernel()
    written: list[Path] = []
    with _jupyter_path(root):
        for name in notebooks:
            src = src_dir / name
            if not src.exists():
                raise PlanFailed(f"Plan failed: notebook {src} not found.")
            declared = declared_parameters(src)
            values = {k: _papermill_value(params[k]) for k in declared if k in params}
            values["work_dir"] = str(Path(work_dir).resolve())
            values["previous_pack"] = str(Path(previous_pack).resolve()) if previous_pack else ""
            dst = out / name
            try:
                pm.execute_notebook(
                    str(src),
                    str(dst),
                    parameters={k: v for k, v in values.items() if k in declared},
                    kernel_name=KERNEL_NAME,
                    kernel_manager_class=_local_kernel_manager(),
                    progress_bar=False,
                    cwd=str(src_dir),
                    log_output=False,
                )
            except pm.PapermillExecutionError as exc:
                number, count, ename, evalue = _failed_cell(dst, exc)
                kept = _keep_failed(dst, params, failed_dir, out)
                where = f"cell {number}" if number is not None else "a cell"
                raise PlanFailed(
                    f"Plan failed in notebook {name}, {where}: {ename}: {evalue}\n"
                    f"The executed notebook is kept in {kept}; open it to see the cell."
                ) from None
            written.append(dst)
    return written


def _papermill_value(value: Any) -> Any:
    return _jsonable(value)


def _keep_failed(
    nb: Path, params: Mapping[str, Any], failed_dir: str | Path | None, out: Path
) -> Path:
    target = (
        Path(failed_dir)
        if failed_dir is not None
        else out.parent.parent / ".failed" / str(params["cycle"])
    )
    target.mkdir(parents=True, exist_ok=True)
    dst = target / nb.name
    if nb.exists():
        shutil.copy2(nb, dst)
    return dst


# --------------------------------------------------------------------------- pack


def build_pack(
    work_dir: str | Path, params: Mapping[str, Any], pack_dir: str | Path
) -> dict[str, Path]:
    """Write the plan pack from a run folder.

    Parameters
    ----------
    work_dir : str or Path
        The run folder the notebooks filled.
    params : mapping
        The checked parameters.
    pack_dir : str or Path
        Folder to write into (made if missing).

    Returns
    -------
    dict of str to Path
        ``html``, ``xlsx``, ``cube`` (``plan.nc``), ``tables`` (``tables.json``:
        the pack's numbers, for checks).
    """
    from revmodel import plots

    pack = Path(pack_dir)
    pack.mkdir(parents=True, exist_ok=True)
    tables = pack_tables(work_dir, params)
    figures = pack_figures(work_dir, params, tables)
    files = {
        "html": pack / "plan.html",
        "xlsx": pack / "plan.xlsx",
        "cube": pack / "plan.nc",
        "tables": pack / "tables.json",
    }
    summ = summary(work_dir, params)
    files["html"].write_text(
        render_html(summ, tables, figures, params, plots.plotly_js()), encoding="utf-8"
    )
    write_excel(files["xlsx"], summ, tables)
    write_plan_cube(files["cube"], work_dir)
    files["tables"].write_text(
        json.dumps(
            _jsonable({"summary": summ, **{k: v.to_dict("records") for k, v in tables.items()}}),
            indent=1,
            sort_keys=True,
        ),
        encoding="utf-8",
    )
    return files


#: Result groups of ``plan.nc``: result name -> group.
PLAN_GROUPS: dict[str, str] = {
    "cube": "cube",
    "forecast": "forecast",
    "reconciled": "reconciled",
    "capacity": "capacity",
    "gap": "capacity_gap",
    "quotas": "quota",
    "quota_compare": "quota_compare",
    "balance": "quota_balance",
    "retention_plan": "retention_plan",
    "arr_bridge": "arr_bridge",
    "kpis": "kpis",
}


def write_plan_cube(path: str | Path, work_dir: str | Path) -> Path:
    """Write the plan cube: one NetCDF group per result (read one with ``xr.open_dataset(path, group=...)``)."""
    path = Path(path)
    r = _Results(work_dir)
    mode = "w"
    for name, group in PLAN_GROUPS.items():
        ds = r.get(name)
        if ds is None:
            continue
        _netcdf_ready(ds).to_netcdf(path, mode=mode, group=group, engine="netcdf4")
        mode = "a"
    return path


def pack_tables(work_dir: str | Path, params: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Every table of the pack, from the run folder's results (tables whose results are missing are left out)."""
    r = _Results(work_dir)
    cube = r.get("cube")
    fc, rec, quotas = r.get("forecast"), r.get("reconciled"), r.get("quotas")
    out: dict[str, pd.DataFrame] = {}
    qmonths = _period_months(params["cycle"], cube.attrs)
    if fc is not None and rec is not None:
        frames = []
        for level in ("total", "region", "segment", "manager", "rep"):
            t = forecast_table(cube, fc, rec["forecast"], quotas, qmonths, level)
            frames.append(t.assign(level=level))
        f = pd.concat(frames, ignore_index=True)
        out["forecast_by_level"] = f[["level", *[c for c in f.columns if c != "level"]]]
    quotas_by_rep = _quota_table(r, qmonths)
    if quotas_by_rep is not None:
        out["quotas_by_rep"] = quotas_by_rep
    cap = _capacity_table(r)
    if cap is not None:
        out["capacity"] = cap
    hires = r.get("hires")
    if hires is not None:
        out["hires_needed"] = hires.assign(
            start_by=pd.to_datetime(hires["start_by"]).dt.strftime("%Y-%m")
        )
    bridge = r.get("arr_bridge")
    if bridge is not None:
        b = bridge.to_dataframe().reset_index()
        out["arr_bridge"] = b[[c for c in ("fiscal_quarter", "opening", "new", "expansion", "contraction", "churn", "closing", "months") if c in b.columns]]  # fmt: skip
    ret = r.get("retention_plan")
    if ret is not None:
        out["retention_plan"] = (
            ret[["opening_arr", "required_new_arr", "expected_churn_arr", "closing_arr"]]
            .to_dataframe()
            .reset_index()
            .assign(month=lambda d: pd.to_datetime(d["month"]).dt.strftime("%Y-%m"))
            [["month", "fiscal_quarter", "opening_arr", "required_new_arr", "expected_churn_arr", "closing_arr"]]
        )  # fmt: skip
    kpis = r.get("kpis")
    if kpis is not None:
        k = kpis.to_dataframe().reset_index()
        k = k.drop(columns=[c for c in ("fiscal_year",) if c in k.columns])
        out["kpis"] = k.tail(8).reset_index(drop=True)
    tb = r.get("territory_balance")
    if tb is not None:
        out["territories"] = tb
    sc = r.get("scenarios")
    if sc is not None:
        out["scenarios"] = sc
    acc = r.get("accuracy")
    if acc is not None:
        out["accuracy_by_level"] = accuracy_table(acc)
        out["accuracy"] = acc
    return out


def _quota_table(r: _Results, qmonths: pd.DatetimeIndex) -> pd.DataFrame | None:
    quotas, capacity, bal = r.get("quotas"), r.get("capacity"), r.get("balance")
    if quotas is None:
        return None
    q = quotas["quota"]
    qq = q.sel(month=q["month"].isin(qmonths.values)).sum("month")
    frame = pd.DataFrame(
        {
            "rep": quotas["rep"].values.astype(str),
            "manager": quotas["manager"].values.astype(str),
            "region": quotas["rep_region"].values.astype(str),
            "segment": quotas["rep_segment"].values.astype(str),
            "planned_hire": quotas["planned"].values.astype(bool) if "planned" in quotas.coords else False,
            "quota_year": quotas["rep_quota"].values,
            "quota_quarter": qq.values,
            "full_year_quota": quotas["full_quota"].values,
        }
    )  # fmt: skip
    if capacity is not None:
        cap = capacity["capacity"].sum("month").reindex(rep=quotas["rep"].values)
        frame["capacity_year"] = cap.values
        frame["expected_attainment"] = frame["capacity_year"] / frame["quota_year"].where(
            frame["quota_year"] > 0
        )
    pot = r.get("rep_potential")
    if pot is not None:
        frame["potential"] = frame["rep"].map(pot.iloc[:, 0])
    if bal is not None:
        b = bal.reindex(rep=quotas["rep"].values)
        frame["quota_to_potential"] = b["relative"].values
        frame["out_of_line"] = b["out_of_line"].fillna(0).values.astype(bool)
    return frame


def _capacity_table(r: _Results) -> pd.DataFrame | None:
    gap = r.get("gap")
    if gap is None:
        return None
    g = gap[["capacity", "target", "gap", "coverage"]].to_dataframe().reset_index()
    hires = r.get("hires")
    if hires is not None and len(hires):
        h = hires[["segment", "region", "hires", "start_by"]].copy()
        h["start_by"] = pd.to_datetime(h["start_by"]).dt.strftime("%Y-%m")
        g = g.merge(h, on=["segment", "region"], how="left")
        g["hires"] = g["hires"].fillna(0).astype(int)
    else:
        g["hires"] = 0
        g["start_by"] = None
    capacity = r.get("capacity")
    if capacity is not None:
        hc = capacity["headcount"].isel(month=0)
        seats = pd.DataFrame(
            {"segment": capacity["rep_segment"].values, "region": capacity["rep_region"].values, "headcount": hc.values}
        ).groupby(["segment", "region"], as_index=False)["headcount"].sum()  # fmt: skip
        g = g.merge(seats, on=["segment", "region"], how="left")
    return g


def pack_figures(
    work_dir: str | Path, params: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]
) -> dict[str, Any]:
    """The pack's charts (Plotly figures), by section."""
    from revmodel import plots

    r = _Results(work_dir)
    figs: dict[str, Any] = {}
    cube, fc, rec = r.get("cube"), r.get("forecast"), r.get("reconciled")
    quotas = r.get("quotas")
    if fc is not None and rec is not None:
        figs["fan"] = plots.forecast_fan(
            cube,
            fc,
            rec["forecast"],
            quota=quotas,
            cycle_months=_period_months(params["cycle"], cube.attrs),
        )
    f = tables.get("forecast_by_level")
    if f is not None:
        for level in ("region", "segment", "manager"):
            figs[f"vs_target_{level}"] = plots.bookings_vs_target(
                f[f["level"] == level], title=f"Forecast vs target by {level}, {params['cycle']}"
            )
    bridge = r.get("arr_bridge")
    if bridge is not None:
        figs["bridge"] = plots.arr_bridge(bridge)
    qt = tables.get("quotas_by_rep")
    if qt is not None and "capacity_year" in qt:
        figs["quota_balance"] = plots.quota_balance(qt)
    tb = r.get("territory_balance")
    if tb is not None:
        figs["territory"] = plots.territory_balance(tb)
    sc = r.get("scenarios")
    if sc is not None and len(sc):
        figs["scenarios"] = plots.scenario_comparison(sc)
    acc = r.get("accuracy")
    if acc is not None and len(acc):
        figs["accuracy"] = plots.accuracy(acc)
    return figs  # fmt: skip


# --------------------------------------------------------------------------- HTML and Excel


def _money(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    v = float(v)
    sign, a = ("-" if v < 0 else ""), abs(v)
    if a >= 1e9:
        return f"{sign}${a / 1e9:,.2f}B"
    if a >= 1e6:
        return f"{sign}${a / 1e6:,.1f}M"
    if a >= 1e3:
        return f"{sign}${a / 1e3:,.0f}K"
    return f"{sign}${a:,.0f}"


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    v = float(v)
    return f"{0.0 if abs(v) < 0.005 else v:.0%}"


#: How each table column is shown in the HTML: money, pct, int, num or text.
_COLUMN_FORMATS: dict[str, str] = {
    **dict.fromkeys(
        ["forecast", "p10", "p90", "target", "gap", "pipeline", "actual", "error", "quota_year",
         "quota_quarter", "full_year_quota", "capacity_year", "capacity", "yield_per_hire",
         "opening", "new", "expansion", "contraction", "churn", "closing", "opening_arr",
         "required_new_arr", "expected_churn_arr", "closing_arr", "arr", "bookings", "arpu",
         "ltv", "backlog", "average_deal_size", "company_target", "year_capacity",
         "capacity_gap", "required_new_arr", "year_forecast", "starting_arr", "quota"],
        "money",
    ),
    **dict.fromkeys(
        ["coverage", "expected_attainment", "p_attain", "abs_pct_error", "wape", "share_in_band",
         "churn_rate", "logo_churn_rate", "renewal_rate", "nrr", "grr", "win_rate",
         "deviation_before", "deviation_after", "share_expected_to_attain", "pipeline_coverage",
         "quota_attainment", "target_growth", "reps_expected_to_attain"],
        "pct",
    ),
    **dict.fromkeys(
        ["hires", "headcount", "nodes", "customers", "accounts_before", "accounts_after",
         "accounts_gained", "accounts_lost", "months", "hires_needed", "headcount_end"],
        "int",
    ),
    **dict.fromkeys(["quota_to_potential", "dso", "sales_cycle", "potential", "potential_before",
                     "potential_after", "mean_potential"], "num"),
}  # fmt: skip


def _cell(col: str, v: Any) -> str:
    kind = _COLUMN_FORMATS.get(col, "text")
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if kind == "money":
        return _money(v)
    if kind == "pct":
        return _pct(v)
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if kind == "int":
        return f"{float(v):,.0f}"
    if kind == "num" or isinstance(v, float | np.floating):
        return f"{float(v):,.2f}"
    return html.escape(str(v))


def _kpi_rows(kpis: pd.DataFrame) -> pd.DataFrame:
    """KPIs as rows and quarters as columns, each value formatted by its KPI's units."""
    t = kpis.set_index("fiscal_quarter").T
    return pd.DataFrame(
        [[name, *(_cell(name, v) for v in row)] for name, row in t.iterrows()],
        columns=["kpi", *map(str, t.columns)],
    )


def html_table(frame: pd.DataFrame, max_rows: int | None = None, cls: str = "") -> str:
    """A DataFrame as an HTML table with the pack's number formats."""
    rows = frame if max_rows is None else frame.head(max_rows)
    head = "".join(
        f'<th class="{"num" if _COLUMN_FORMATS.get(c) else ""}">{html.escape(c.replace("_", " "))}</th>'
        for c in frame.columns
    )
    body = []
    for rec in rows.to_dict("records"):
        tds = "".join(
            f'<td class="{"num" if _COLUMN_FORMATS.get(c) else ""}">{_cell(c, v)}</td>'
            for c, v in rec.items()
        )
        body.append(f"<tr>{tds}</tr>")
    more = (
        f'<p class="note">{len(rows)} of {len(frame)} rows shown; plan.xlsx holds them all.</p>'
        if max_rows is not None and len(frame) > max_rows
        else ""
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{more}'


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;color:#1f2933;margin:0;background:#f5f7fa}
header{background:#1f3a5f;color:#fff;padding:22px 40px}
header h1{margin:0;font-size:26px;font-weight:600}
header p{margin:6px 0 0;color:#c9d6e8;font-size:14px}
nav{background:#fff;border-bottom:1px solid #d9e2ec;padding:8px 40px;font-size:13px;position:sticky;top:0;z-index:5}
nav a{color:#1f3a5f;margin-right:16px;text-decoration:none}
main{padding:10px 40px 40px;max-width:1320px}
section{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:14px 22px;margin:18px 0}
h2{font-size:19px;margin:4px 0 10px;color:#1f3a5f}
h3{font-size:15px;margin:16px 0 6px}
p.lead,p.note{color:#52606d;font-size:13px;margin:4px 0 10px}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px;margin:10px 0}
.kpi{border:1px solid #d9e2ec;border-radius:6px;padding:10px 14px;background:#fbfcfd}
.kpi .label{font-size:12px;color:#52606d;text-transform:uppercase;letter-spacing:.03em}
.kpi .value{font-size:24px;font-weight:600;margin-top:4px}
.kpi .sub{font-size:12px;color:#52606d;margin-top:2px}
.bad{color:#b42318}.good{color:#1a7f37}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 4px;width:100%}
th{background:#eef2f7;text-align:left;padding:5px 8px;border-bottom:1px solid #cbd2d9;font-weight:600}
td{padding:4px 8px;border-bottom:1px solid #edf0f3}
th.num,td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:hover td{background:#f8fafc}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.scroll{max-height:460px;overflow:auto}
footer{color:#7b8794;font-size:12px;padding:0 40px 30px}
</style>
<script type="text/javascript">{{ plotly_js }}</script>
</head><body>
<header><h1>{{ title }}</h1><p>{{ subtitle }}</p></header>
<nav>{% for id, name in sections %}<a href="#{{ id }}">{{ name }}</a>{% endfor %}</nav>
<main>
<section id="summary"><h2>Executive summary</h2>
<p class="lead">{{ lead }}</p>
<div class="kpis">{% for k in cards %}<div class="kpi"><div class="label">{{ k.label }}</div><div class="value {{ k.cls }}">{{ k.value }}</div><div class="sub">{{ k.sub }}</div></div>{% endfor %}</div>
{{ figs.fan }}
</section>
{% for s in body %}<section id="{{ s.id }}"><h2>{{ s.title }}</h2>{% if s.lead %}<p class="lead">{{ s.lead }}</p>{% endif %}{{ s.html }}</section>
{% endfor %}
</main>
<footer>{{ footer }}</footer>
</body></html>
"""


def _card(label: str, value: str, sub: str = "", cls: str = "") -> dict[str, str]:
    return {"label": label, "value": value, "sub": sub, "cls": cls}


def render_html(
    summ: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    figures: Mapping[str, Any],
    params: Mapping[str, Any],
    plotly_js: str,
) -> str:
    """The self-contained ``plan.html``: no code, plotly.js inline once, charts as divs."""
    import jinja2

    from revmodel import plots

    first = [True]

    def fig(name: str) -> str:
        f = figures.get(name)
        if f is None:
            return ""
        first[0] = False
        return plots.to_div(f)

    s = summ
    gap_q = s.get("quarter_gap")
    cards = [
        _card(f"Target {s['cycle']}", _money(s.get("quarter_target")), f"plan year {s['plan_year']}: {_money(s.get('company_target'))}"),
        _card(f"Forecast {s['cycle']}", _money(s.get("quarter_forecast")), f"10–90%: {_money(s.get('quarter_p10'))} – {_money(s.get('quarter_p90'))}"),
        _card("Gap to target", _money(gap_q), "target − forecast", "bad" if (gap_q or 0) > 0 else "good"),
        _card(f"Capacity {s['plan_year']}", _money(s.get("year_capacity")), f"{s.get('ramped_fte_start', float('nan')):.1f} ramped reps at start" if s.get("ramped_fte_start") is not None else ""),
        _card("Hires needed", f"{s.get('hires_needed', '–')}", "to close the capacity gap"),
        _card("Reps expected to attain", _pct(s.get("share_expected_to_attain")), f"at {params.get('attainment_tolerance', 0.9):.0%} of quota"),
        _card("Open pipeline in quarter", _money(s.get("quarter_pipeline")), "expected close in the cycle"),
        _card("Expected churn", _money(s.get("expected_churn_arr")), f"ARR/year at {_pct(s.get('churn_rate'))} churn"),
    ]  # fmt: skip
    if s.get("last_quarter_error") is not None:
        cards.append(_card("Last quarter's forecast error", _pct(s["last_quarter_error"]), f"{s.get('last_quarter')}: {_money(s.get('last_quarter_forecast'))} forecast vs {_money(s.get('last_quarter_actual'))} actual"))  # fmt: skip
    lead = f"Plan for {s['cycle']} ({s['quarter_months']}), actuals to {s['as_of']}. " + (
        f"Bookings forecast {_money(s.get('quarter_forecast'))} against a target of "
        f"{_money(s.get('quarter_target'))}: "
        + ("a shortfall" if (gap_q or 0) > 0 else "a surplus")
        + f" of {_money(abs(gap_q))}."
        if gap_q is not None
        else ""
    )
    body: list[dict[str, str]] = []

    def add(id_: str, title: str, lead_: str, parts: list[str]) -> None:
        if any(parts):
            body.append(
                {"id": id_, "title": title, "lead": lead_, "html": "".join(p for p in parts if p)}
            )

    f = tables.get("forecast_by_level")
    if f is not None:
        levels = []
        for level in ("region", "segment", "manager"):
            sub = f[f["level"] == level].drop(columns="level")
            levels.append(f"<h3>By {level}</h3>" + fig(f"vs_target_{level}") + html_table(sub))
        reps = f[f["level"] == "rep"].drop(columns="level")
        levels.append('<h3>By rep</h3><div class="scroll">' + html_table(reps) + "</div>")
        add("forecast", "Forecast vs target", f"Reconciled bookings forecast for {s['cycle']} against the top-down quota, with the 10–90% band of each level's own model (months summed) and the open pipeline expected to close in the quarter.", levels)  # fmt: skip
    parts = [fig("bridge")]
    if "arr_bridge" in tables:
        parts.append(html_table(tables["arr_bridge"].tail(8)))
    if "retention_plan" in tables:
        parts.append(
            f"<h3>ARR plan {s['plan_year']}: new ARR needed to offset churn</h3>"
            + html_table(tables["retention_plan"])
        )
    add("arr", "ARR bridge and churn", "Opening ARR plus new and expansion, less contraction and churn, by fiscal quarter; then the plan year's path to the ARR target.", parts)  # fmt: skip
    parts = []
    if "capacity" in tables:
        parts.append(
            "<h3>Capacity against target by segment and region</h3>"
            + html_table(tables["capacity"])
        )
    if "hires_needed" in tables and len(tables["hires_needed"]):
        parts.append("<h3>Hires needed</h3>" + html_table(tables["hires_needed"]))
    add("capacity", "Capacity and hiring", f"Expected bookings of the sales team over {s['plan_year']} (headcount, ramp, attrition and backfills) against the target, and the hires that close the gap.", parts)  # fmt: skip
    parts = [fig("quota_balance")]
    if "quotas_by_rep" in tables:
        parts.append('<div class="scroll">' + html_table(tables["quotas_by_rep"]) + "</div>")
    add("quotas", "Quotas, attainment and balance", f"Quotas allocated top-down ({params.get('allocation_basis', 'history')} basis, {params.get('over_assignment', 1.1):.0%} over-assignment); expected attainment is capacity over quota; a rep is out of line when quota per ramped year over potential is far from the median.", parts)  # fmt: skip
    if "territories" in tables:
        tb = tables["territories"]
        tb = tb[tb["status"] == "active"] if "status" in tb.columns else tb
        add("territories", "Territories", "Accounts assigned to reps within region and segment, balancing potential and keeping moves few.", [fig("territory"), '<div class="scroll">' + html_table(tb) + "</div>"])  # fmt: skip
    if "scenarios" in tables:
        add("scenarios", "Scenario comparison", "Each scenario recomputes the whole plan from its assumption set: capacity, quotas, gap and hires, retention and KPIs.", [fig("scenarios"), html_table(tables["scenarios"])])  # fmt: skip
    if "kpis" in tables:
        add("kpis", "KPIs", "The KPI catalogue by fiscal quarter (the last quarter may be partial).", ['<div class="scroll">' + html_table(_kpi_rows(tables["kpis"])) + "</div>"])  # fmt: skip
    if "accuracy" in tables:
        add("accuracy", "Last cycle's forecast accuracy", f"Forecast of {s.get('last_quarter', 'last quarter')} against actual bookings, by level; WAPE = sum of absolute errors over actuals. " + ("The forecast is the one last cycle's pack published." if s.get("last_quarter_source") == "published" else f"No pack of last cycle was found, so the forecast was made again from the actuals to {s.get('last_quarter_origin')}."), [fig("accuracy"), html_table(tables["accuracy_by_level"]), '<div class="scroll">' + html_table(tables["accuracy"]) + "</div>"])  # fmt: skip

    sections = [("summary", "Summary")] + [(b["id"], b["title"].split(",")[0]) for b in body]
    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(
        title=f"Quarterly plan {s['cycle']}",
        subtitle=f"{s['quarter_months']} · actuals to {s['as_of']} · plan year {s['plan_year']} · amounts in {_CUR}",
        lead=html.escape(lead),
        cards=cards,
        figs={"fan": fig("fan")},
        body=body,
        sections=sections,
        plotly_js=plotly_js,
        footer=f"revmodel {revmodel.__version__} · generated from parameters cycle {html.escape(str(params['cycle']))}; "
        "numbers in plan.xlsx and plan.nc; notebooks in notebooks/.",
    )


def write_excel(
    path: str | Path, summ: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]
) -> Path:
    """``plan.xlsx`` for Sales Ops: a Summary sheet, then one sheet per table."""
    path = Path(path)
    sheets = {
        "Summary": pd.DataFrame(
            {"figure": list(summ), "value": [_jsonable(v) for v in summ.values()]}
        ),
        "Quotas by rep": tables.get("quotas_by_rep"),
        "Capacity": tables.get("capacity"),
        "Hires needed": tables.get("hires_needed"),
        "Forecast by level": tables.get("forecast_by_level"),
        "KPIs": tables.get("kpis"),
        "ARR bridge": tables.get("arr_bridge"),
        "ARR plan": tables.get("retention_plan"),
        "Territories": tables.get("territories"),
        "Scenarios": tables.get("scenarios"),
        "Accuracy": tables.get("accuracy"),
    }
    with pd.ExcelWriter(path, engine="openpyxl") as xw:
        for name, frame in sheets.items():
            if frame is None:
                continue
            frame.to_excel(xw, sheet_name=name, index=False)
            ws = xw.sheets[name]
            ws.freeze_panes = "A2"
            for i, col in enumerate(frame.columns, start=1):
                width = min(40, max(10, len(str(col)) + 2))
                ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = width
                fmt = {"money": "#,##0", "pct": "0.0%", "int": "0"}.get(
                    _COLUMN_FORMATS.get(str(col), ""), None
                )
                if fmt:
                    for row in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                        for c in row:
                            c.number_format = fmt
    return path


# --------------------------------------------------------------------------- manifest and publish


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(config.ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def manifest(
    params: Mapping[str, Any], started: float, finished: float, params_file: Path | None
) -> dict[str, Any]:
    """The pack's manifest: parameters, data hash, package versions, run time, git commit."""
    try:
        from revmodel import versions

        data_hash = versions.data_hash(params["data_dir"])
    except (ImportError, AttributeError):  # pragma: no cover - versions is part of the package
        data_hash = None
    pkgs = {}
    for name in MANIFEST_PACKAGES:
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = None
    return {
        "cycle": params["cycle"],
        "parameters": _jsonable(dict(params)),
        "parameters_file": str(params_file) if params_file else None,
        "data_dir": params["data_dir"],
        "data_sha256": data_hash,
        "revmodel": revmodel.__version__,
        "python": platform.python_version(),
        "packages": pkgs,
        "kernel": {"name": KERNEL_NAME, "python": sys.executable},
        "git_commit": _git_commit(),
        "started_utc": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
        "run_seconds": round(finished - started, 1),
        "notebooks": list(NOTEBOOKS),
    }


def publish(tmp: Path, final: Path) -> Path:
    """Rename a finished pack over ``final``; the previous pack stays until the swap succeeded."""
    prev = final.with_name(f"{final.name}.prev")
    if prev.exists():
        shutil.rmtree(prev)
    had = final.exists()
    if had:
        os.rename(final, prev)
    try:
        os.rename(tmp, final)
    except OSError:
        if had:
            os.rename(prev, final)
        raise
    if had:
        shutil.rmtree(prev, ignore_errors=True)
    return final


#: Notebook parameters set by the run itself rather than the parameters file.
RUN_PARAMETERS: tuple[str, ...] = ("work_dir", "previous_pack")


def published_forecast(pack_dir: str | Path) -> xr.Dataset | None:
    """The forecast a published pack made (the ``forecast`` group of its ``plan.nc``), or None."""
    path = Path(pack_dir) / "plan.nc"
    if not path.exists():
        return None
    try:
        with xr.open_dataset(path, group="forecast", engine="netcdf4") as ds:
            ds = ds.load()
    except OSError:
        return None
    for name, var in ds.variables.items():
        if var.dtype.kind == "U":
            ds = (
                ds.assign_coords({name: var.astype(object)})
                if name in ds.coords
                else ds.assign({name: var.astype(object)})
            )
    return ds


def _local_kernel_manager() -> type:
    """A kernel manager talking to its kernel over local IPC sockets, not loopback TCP.

    The plan's kernels never leave this machine; IPC keeps them off the network stack
    (and ipykernel stops warning that TCP is unencrypted).
    """
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class LocalKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("ip")
        def _default_ip(self) -> str:
            return os.path.join(tempfile.gettempdir(), f"revmodel-kernel-{uuid.uuid4().hex}")

    return LocalKernelManager


def plan_version_dataset(work_dir: str | Path) -> xr.Dataset:
    """The plan's cells as one Dataset: reconciled forecast, quotas and capacity.

    ``forecast`` (segment, region, rep, month) [currency/month] and ``quota``,
    ``capacity`` (rep, month) [currency/month]; months and reps are the union of
    the three (a planned hire has a quota and capacity but no forecast).
    """
    reconciled = load_result(work_dir, "reconciled")
    quotas = load_result(work_dir, "quotas")
    capacity = load_result(work_dir, "capacity")
    parts = [
        reconciled["forecast"].rename("forecast"),
        quotas["quota"].rename("quota"),
        capacity["capacity"].rename("capacity"),
    ]
    keep = {"segment", "region", "rep", "month"}
    parts = [p.drop_vars([c for c in p.coords if c not in keep]) for p in parts]
    return xr.merge(parts, join="outer", compat="override")


def save_plan_version(work_dir: str | Path, params: Mapping[str, Any], store: str | Path):
    """Save the plan as a new write-once version ``forecast/<cycle>-<UTC time>``.

    Returns the :class:`revmodel.versions.VersionInfo`.
    """
    from revmodel import versions

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return versions.save_version(
        plan_version_dataset(work_dir),
        kind="forecast",
        name=f"{params['cycle']}-{stamp}",
        store_dir=store,
        parameters=dict(params),
        data_hash=versions.data_hash(params["data_dir"]),
    )


def plan(
    params_file: str | Path | None = None,
    data_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    notebooks_dir: str | Path | None = None,
    log: Any = print,
    *,
    mapping: str | Path | None = None,
    cycle: str | None = None,
    as_of: str | None = None,
) -> Path:
    """Run the plan and publish the pack into ``<out_dir>/<cycle>/``.

    Parameters
    ----------
    params_file : str or Path, optional
        Parameters YAML; default the project's ``parameters/plan.yaml`` if any, else
        every setting assumed from the data (:func:`revmodel.project.plan_settings`).
    data_dir : str or Path, optional
        Data folder, replacing the file's ``data_dir``.
    out_dir : str or Path, optional
        Reports folder; default :data:`revmodel.config.REPORTS_DIR`.
    mapping, cycle, as_of : optional
        Replace the file's ``mapping``, ``cycle`` and ``as_of``.
    notebooks_dir : str or Path, optional
        Default :data:`revmodel.config.NOTEBOOKS_DIR`.
    log : callable
        Progress lines go here.

    Returns
    -------
    Path
        ``<out_dir>/<cycle>/plan.html``.

    Raises
    ------
    ParameterError
        A bad parameters file (before anything runs).
    PlanFailed
        A notebook failed; the previous pack is untouched.
    """
    from revmodel import project

    started = time.time()
    settings = project.plan_settings(
        data_dir, mapping=mapping, params_file=params_file, cycle=cycle, as_of=as_of
    )
    params, params_file = settings.params, settings.params_file
    out = Path(out_dir) if out_dir is not None else config.REPORTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    cycle = params["cycle"]
    tmp = out / f".{cycle}.tmp-{os.getpid()}"
    work = out / f".{cycle}.work-{os.getpid()}"
    for folder in (tmp, work):
        if folder.exists():
            shutil.rmtree(folder)
    previous = out / fcal.next_quarter(cycle, -1)
    previous = previous if (previous / "plan.nc").exists() else None
    if previous is not None:
        log(f"last cycle's pack: {previous}")
    try:
        for name in NOTEBOOKS:
            log(f"running {name}")
            run_notebooks(
                params,
                work,
                tmp / "notebooks",
                notebooks=(name,),
                notebooks_dir=notebooks_dir,
                failed_dir=out / ".failed" / cycle,
                previous_pack=previous,
            )
        log("building the pack")
        build_pack(work, params, tmp)
        version = save_plan_version(work, params, out / "versions")
        log(f"saved plan version {version.kind}/{version.name}")
        record = manifest(params, started, time.time(), params_file)
        record["plan_version"] = f"{version.kind}/{version.name}"
        record["as_of"] = params["as_of"]
        record["assumed"] = list(settings.assumed)
        (tmp / "manifest.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        final = publish(tmp, out / cycle)
    finally:
        for folder in (tmp, work):
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
    failed = out / ".failed" / cycle
    if failed.exists():
        shutil.rmtree(failed, ignore_errors=True)
    return final / "plan.html"


# --------------------------------------------------------------------------- checks


def check_pack(pack_dir: str | Path) -> list[str]:
    """Check a published pack; return the problems found (empty: the pack is sound).

    Checks that every file is there, that no executed notebook holds an error
    cell, that ``plan.html`` loads nothing from the network, and that the
    pack's numbers agree with ``plan.nc``: the forecast, target and ARR of
    ``tables.json`` are recomputed from the cube file's groups.
    """
    import nbformat

    pack = Path(pack_dir)
    problems: list[str] = []
    for name in ("plan.html", "plan.xlsx", "plan.nc", "manifest.json", "tables.json"):
        if not (pack / name).is_file():
            problems.append(f"{name} is missing")
    for name in NOTEBOOKS:
        path = pack / "notebooks" / name
        if not path.is_file():
            problems.append(f"notebooks/{name} is missing")
            continue
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                problems.append(f"notebooks/{name}: cell {i} holds an error")
    if problems:
        return problems
    page = (pack / "plan.html").read_text(encoding="utf-8")
    if "<script src=" in page or 'src="http' in page:
        problems.append("plan.html loads a script from outside the file")
    if page.count("plotly.js v") > 1 or "plotly" not in page:
        problems.append("plan.html must embed plotly.js exactly once")
    tables = json.loads((pack / "tables.json").read_text(encoding="utf-8"))
    summ = tables["summary"]

    def close(a: float, b: float, what: str) -> None:
        if not np.isclose(a, b, rtol=1e-9, atol=0.5):
            problems.append(f"{what}: pack says {a:,.2f}, plan.nc gives {b:,.2f}")

    path = pack / "plan.nc"
    with xr.open_dataset(path, group="cube") as cube:
        cube = cube.load()
    months = _period_months(summ["cycle"], cube.attrs).values
    with xr.open_dataset(path, group="reconciled") as rec:
        fc = rec["forecast"].sel(month=rec["month"].isin(months)).sum()
        close(summ["quarter_forecast"], float(fc), "forecast of the cycle")
    with contextlib.suppress(OSError, KeyError), xr.open_dataset(path, group="quota") as q:
        tq = q["quota"].sel(month=q["month"].isin(months)).sum()
        close(summ["quarter_target"], float(tq), "target of the cycle")
        if summ.get("company_target") is not None:
            close(summ["company_target"], float(q["target"]), "company target")
    as_of = np.datetime64(pd.Timestamp(cube.attrs["as_of"]), "ns")
    arr = float(cube["arr"].sel(month=as_of).sum())
    bridge = tables.get("arr_bridge") or []
    if bridge:
        close(bridge[-1]["closing"], arr, "closing ARR of the last quarter")
    level = [r for r in tables.get("forecast_by_level", []) if r["level"] == "region"]
    if level:
        close(
            sum(r["forecast"] for r in level),
            summ["quarter_forecast"],
            "regions adding up to the company forecast",
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    """``python -m revmodel.report check PACK_DIR``: check a published pack (exit 1 on problems)."""
    parser = argparse.ArgumentParser(prog="python -m revmodel.report")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="check a published plan pack")
    c.add_argument("pack", help="the pack folder, e.g. reports/FY2027-Q1")
    args = parser.parse_args(argv)
    problems = check_pack(args.pack)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    print(f"{args.pack}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
