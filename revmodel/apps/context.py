"""What the apps read, once per kernel: the cube, the base plan, the forecast and the call store.

Every app builder asks :func:`load_context` for an :class:`AppContext`; the
first call in a kernel reads the data and does the heavy work (the cube, the
what-if context of :func:`revmodel.scenario.prepare`, the base plan, the
statistical forecast and its reconciliation), later calls return the cached
object, so callbacks only run the fast pure functions.

Where the data comes from, first match wins:

1. ``cube=`` (a Dataset) given to the builder;
2. ``data_dir=`` given to the builder (a folder of exports);
3. the cube file named by ``REVMODEL_CUBE`` (``.nc`` or ``.zarr``);
4. the sample company in :data:`revmodel.config.SAMPLE_DIR`, generated when missing.

The planning cycle, horizon and assumptions come from the parameters file
``REVMODEL_PARAMS`` (default: the latest ``parameters/FY*.yaml``) when its
fiscal calendar matches the cube's; otherwise the cycle is the quarter after
the cube's ``as_of`` and the assumptions are the defaults.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.linalg import LinAlgWarning

from revmodel import calendar as fcal
from revmodel import config, scenario
from revmodel import cube as rcube
from revmodel import forecast as rforecast
from revmodel import pipeline as rpipeline
from revmodel.assumptions import Assumptions
from revmodel.errors import DataError, ParameterError, RevmodelError
from revmodel.overrides import OverrideStore, TeamMap

__all__ = [
    "ENV_CUBE",
    "ENV_FORECAST_METHOD",
    "ENV_PARAMS",
    "ENV_TEAM_MAP",
    "AppContext",
    "clear_cache",
    "load_context",
    "open_store",
    "team_map_path",
]

#: Environment variable naming a cube file the apps read instead of the sample company.
ENV_CUBE = "REVMODEL_CUBE"
#: Environment variable naming the parameters file of the cycle.
ENV_PARAMS = "REVMODEL_PARAMS"
#: Environment variable naming the team mapping YAML (users -> team).
ENV_TEAM_MAP = "REVMODEL_TEAM_MAP"
#: Environment variable choosing the forecast method (see :data:`revmodel.forecast.METHODS`).
ENV_FORECAST_METHOD = "REVMODEL_FORECAST_METHOD"

#: Reconciliation method used when the parameters file names none.
DEFAULT_RECONCILE = "mint_shrink"
#: Months of actuals behind the win rates that weight open pipeline [months].
WIN_RATE_MONTHS = 12

_CACHE: dict[Any, AppContext] = {}
_STORES: dict[str, OverrideStore] = {}


@dataclass(frozen=True)
class AppContext:
    """Everything the apps show that does not change with a widget.

    Attributes
    ----------
    cube : xarray.Dataset
        The revenue cube.
    tables : dict or None
        The canonical tables the cube was built from (None for a cube file).
    cycle : str
        The quarter being planned, e.g. ``"FY2027-Q1"``.
    assumptions : Assumptions
        The base assumption set.
    plan_context : scenario.PlanContext
        :func:`revmodel.scenario.prepare` of the cube.
    plan : xarray.Dataset
        :func:`revmodel.scenario.plan` with the base assumptions (quotas, capacity, KPIs).
    forecast : xarray.Dataset
        :func:`revmodel.forecast.forecast_cube` of bookings.
    reconciled : xarray.DataArray
        Coherent mean forecast (segment, region, rep, month) [USD/month], no calls locked.
    inputs : revmodel.forecast.NodeForecast
        The forecast's node models on the cube's hierarchy (for :meth:`reconcile_with_calls`).
    weighted_pipeline : xarray.DataArray
        Expected bookings from open pipeline (segment, region, rep, month) [USD/month].
    reconcile_method : str
        Method of :func:`revmodel.reconcile.reconcile_cube`.
    source : str
        Where the data came from, for the page footer.
    seconds : float
        Time the context took to build [s].
    """

    cube: xr.Dataset
    tables: dict[str, pd.DataFrame] | None
    cycle: str
    assumptions: Assumptions
    plan_context: scenario.PlanContext
    plan: xr.Dataset
    forecast: xr.Dataset
    reconciled: xr.DataArray
    inputs: rforecast.NodeForecast
    weighted_pipeline: xr.DataArray
    reconcile_method: str = DEFAULT_RECONCILE
    source: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    # -- calendar

    @property
    def as_of(self) -> pd.Timestamp:
        """Last month with actuals."""
        return pd.Timestamp(self.cube.attrs["as_of"])

    def period_months(self, label: str) -> pd.DatetimeIndex:
        """First-of-month dates of a fiscal quarter or year label."""
        return fcal.quarter_months(
            label,
            start_month=int(self.cube.attrs.get("fiscal_year_start", config.FISCAL_YEAR_START)),
            naming=str(self.cube.attrs.get("fiscal_year_naming", config.FISCAL_YEAR_NAMING)),
        )

    def periods(self) -> list[str]:
        """Fiscal quarters and years worth choosing: the last year of actuals and the plan year.

        Quarters first (in time order), then the years.
        """
        start_month = int(self.cube.attrs.get("fiscal_year_start", config.FISCAL_YEAR_START))
        naming = str(self.cube.attrs.get("fiscal_year_naming", config.FISCAL_YEAR_NAMING))
        last = max(pd.Timestamp(self.forecast["month"].values[-1]), self.as_of)
        months = pd.date_range(pd.Timestamp(self.cube["month"].values[0]), last, freq="MS")
        labels = [str(q) for q in fcal.quarter_label(months.values, start_month, naming)]
        quarters = sorted(set(labels))
        plan_year = self.assumptions.plan_year
        years = sorted({q.split("-")[0] for q in quarters})
        recent = [y for y in years if y <= plan_year][-2:]
        chosen = [q for q in quarters if q.split("-")[0] in recent]
        full_years = [y for y in recent if all(q in quarters for q in (f"{y}-Q1", f"{y}-Q4"))]
        return chosen + full_years

    # -- reconciliation with calls locked

    def reconcile_with_calls(
        self, locked: dict[tuple[str, str], float], period: str
    ) -> tuple[xr.DataArray, list[str]]:
        """The coherent forecast with forecast calls kept exactly.

        Parameters
        ----------
        locked : dict
            ``{(level, key): amount}`` from :meth:`OverrideStore.locked_nodes`:
            a call for the whole ``period`` [USD].
        period : str
            The fiscal period the calls are for.

        Returns
        -------
        (xarray.DataArray, list of str)
            The reconciled forecast (segment, region, rep, month) [USD/month] and
            notes on calls that could not be locked (node without history, period
            outside the forecast).
        """
        months = np.asarray(self.forecast["month"].values)
        in_period = np.isin(months, self.period_months(period).values.astype("datetime64[ns]"))
        notes: list[str] = []
        if not in_period.any():
            return self.reconciled, [f"{period} is outside the forecast months: no call locked."]
        h = self.inputs.hierarchy
        locks: dict[tuple[str, Any], np.ndarray] = {}
        for (level, key), amount in sorted(locked.items()):
            try:
                idx = h.index(level, key)
            except ParameterError:
                notes.append(f"{level} {key} has no bookings history: its call is not locked.")
                continue
            # Spread the call over the period's months like the node's own base forecast.
            shape = np.clip(self.inputs.mean[idx, in_period], 0.0, None)
            shape = shape / shape.sum() if shape.sum() > 0 else np.full(in_period.sum(), 1.0)
            shape = shape / shape.sum()
            values = np.full(len(months), np.nan)
            values[in_period] = float(amount) * shape
            locks[(level, key)] = values
        if not locks:
            return self.reconciled, notes
        try:
            with warnings.catch_warnings():
                # Locked nodes make the KKT system ill-conditioned without harm to the solution.
                warnings.simplefilter("ignore", LinAlgWarning)
                rec, _ = rforecast.reconcile_nodes(
                    self.inputs, self.forecast["mean"], method=self.reconcile_method, locked=locks
                )
        except RevmodelError as exc:
            return self.reconciled, [*notes, f"The calls could not all be kept: {exc}"]
        return rec, notes


# --------------------------------------------------------------------------- loading


def _latest_params() -> Path | None:
    env = os.environ.get(ENV_PARAMS)
    if env:
        return Path(env)
    found = sorted(config.PARAMETERS_DIR.glob("FY*.yaml"))
    return found[-1] if found else None


def _read_params(path: Path | None, data_dir: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    from revmodel import parameters

    overrides = {"data_dir": str(data_dir)} if data_dir is not None else {}
    try:
        return parameters.load(path, overrides=overrides)
    except RevmodelError:
        if data_dir is not None:
            raise
        return {}


def _sample_dir() -> Path:
    """The sample company's folder, generated on first use."""
    folder = config.SAMPLE_DIR
    if not (folder / "opportunities.csv").exists():
        from revmodel import sample

        sample.write(sample.generate(), folder)
    return folder


def _tables(data_dir: Path) -> dict[str, pd.DataFrame]:
    from revmodel import sources

    result = sources.load(data_dir)
    if result.status == 2:
        raise DataError(f"{data_dir}: the exports did not validate:\n{result.summary()}")
    return result.tables


def _weighted_pipeline(cube: xr.Dataset, tables: dict | None, horizon: int) -> xr.DataArray:
    """Expected bookings from open pipeline (:func:`revmodel.pipeline.weighted_pipeline`).

    With the deal table: conversion by segment and deal age, and slippage. With a
    cube alone (no deals to learn from): open pipeline x the segment's win rate
    over the last :data:`WIN_RATE_MONTHS` months, as the cube records it.
    """
    as_of = pd.Timestamp(cube.attrs["as_of"])
    if tables is not None and tables.get("opportunities") is not None:
        return rpipeline.weighted_pipeline(
            tables["opportunities"], as_of, horizon=horizon, like=cube
        )
    months = cube["month"].values
    now = np.datetime64(as_of, "ns")
    window = (months <= now) & (months > now - np.timedelta64(WIN_RATE_MONTHS * 31, "D"))
    won = cube["won"].isel(month=window).sum(("region", "rep", "month"))
    closed = won + cube["lost"].isel(month=window).sum(("region", "rep", "month"))
    rate = (won / closed.where(closed > 0)).fillna(0.0)
    return (cube["pipeline"].isel(month=months > now) * rate).rename("weighted_pipeline")


def _build(
    cube: xr.Dataset | None,
    data_dir: Path | None,
    forecast_method: str,
) -> AppContext:
    start = time.perf_counter()
    tables = None
    if cube is not None:
        params = _read_params(_latest_params(), None)
        source = "cube given to the app"
    elif data_dir is not None:
        params = _read_params(_latest_params(), data_dir)
        tables = _tables(data_dir)
        source = str(data_dir)
    elif os.environ.get(ENV_CUBE):
        cube = rcube.load_cube(os.environ[ENV_CUBE])
        params = _read_params(_latest_params(), None)
        source = os.environ[ENV_CUBE]
    else:
        data_dir = _sample_dir()
        params = _read_params(_latest_params(), data_dir)
        tables = _tables(data_dir)
        source = f"sample company ({data_dir})"
    if cube is None:
        cube = rcube.build_cube(
            tables,
            fiscal_year_start=int(params.get("fiscal_year_start", config.FISCAL_YEAR_START)),
            naming=str(params.get("fiscal_year_naming", config.FISCAL_YEAR_NAMING)),
            as_of=params.get("as_of"),
        )
    start_month = int(cube.attrs.get("fiscal_year_start", config.FISCAL_YEAR_START))
    naming = str(cube.attrs.get("fiscal_year_naming", config.FISCAL_YEAR_NAMING))
    if params and int(params.get("fiscal_year_start", -1)) != start_month:
        params = {}
    cycle = fcal.next_quarter(fcal.current_quarter(cube.attrs["as_of"], start_month, naming))
    if params:
        from revmodel import parameters

        base = parameters.assumptions(params)
        horizon = int(params.get("horizon", 12))
        method = str(params.get("reconcile_method") or DEFAULT_RECONCILE)
    else:
        base = Assumptions(plan_year=cycle.split("-")[0])
        horizon, method = 12, DEFAULT_RECONCILE
    # The forecast covers the plan year at least.
    plan_months = fcal.quarter_months(base.plan_year, start_month, naming)
    as_of = pd.Timestamp(cube.attrs["as_of"])
    months_to_year_end = (plan_months[-1].year - as_of.year) * 12 + plan_months[-1].month
    horizon = max(horizon, months_to_year_end - as_of.month)
    if method == "none":
        method = DEFAULT_RECONCILE
    ctx = scenario.prepare(cube)
    plan = scenario.plan(ctx, base)
    fc = rforecast.forecast_cube(
        cube,
        measure="bookings",
        horizon=horizon,
        progress=False,
        method=forecast_method,
        cache_dir=config.CACHE_DIR / "forecast",
    )
    hist = cube["bookings"].sel(month=cube["month"] <= np.datetime64(as_of, "ns"))
    inputs = rforecast.node_forecasts(hist, fc)
    reconciled, _ = rforecast.reconcile_nodes(inputs, fc["mean"], method=method)
    return AppContext(
        cube=cube,
        tables=tables,
        cycle=cycle,
        assumptions=base,
        plan_context=ctx,
        plan=plan,
        forecast=fc,
        reconciled=reconciled,
        inputs=inputs,
        weighted_pipeline=_weighted_pipeline(cube, tables, horizon),
        reconcile_method=method,
        source=source,
        seconds=time.perf_counter() - start,
    )


def load_context(
    data_dir: str | Path | None = None,
    cube: xr.Dataset | None = None,
    forecast_method: str | None = None,
) -> AppContext:
    """The apps' context, built once per kernel and cached.

    Parameters
    ----------
    data_dir : str or Path, optional
        Folder of exports; default the ``REVMODEL_CUBE`` file or the sample company.
    cube : xarray.Dataset, optional
        A cube to use as is (cached by identity).
    forecast_method : str, optional
        Forecast method; default ``REVMODEL_FORECAST_METHOD`` or ``"auto"``.

    Returns
    -------
    AppContext
    """
    method = forecast_method or os.environ.get(ENV_FORECAST_METHOD) or "auto"
    if cube is not None:
        key: Any = ("cube", id(cube), method)
    elif data_dir is not None:
        key = ("dir", str(Path(data_dir).resolve()), method)
    else:
        key = ("default", os.environ.get(ENV_CUBE), str(config.SAMPLE_DIR), method)
    if key not in _CACHE:
        _CACHE[key] = _build(cube, Path(data_dir) if data_dir is not None else None, method)
        if cube is not None:
            # Keep the cube alive so its id is not reused by another object.
            _CACHE[key].extra["cube"] = cube
    return _CACHE[key]


def clear_cache() -> None:
    """Forget the cached contexts and close the cached stores."""
    _CACHE.clear()
    for store in _STORES.values():
        store.close()
    _STORES.clear()


def team_map_path() -> Path:
    """The team mapping YAML: ``REVMODEL_TEAM_MAP``, else ``parameters/team.yaml``."""
    return Path(os.environ.get(ENV_TEAM_MAP) or config.TEAM_MAP)


def open_store(ctx: AppContext, store_url: str | None = None) -> OverrideStore:
    """The call store with the team map of the cube (users from the team mapping file).

    Parameters
    ----------
    ctx : AppContext
    store_url : str, optional
        SQLAlchemy URL; default ``REVMODEL_OVERRIDES_URL`` or the SQLite file of
        :data:`revmodel.config.OVERRIDES_URL`.
    """
    url = store_url or os.environ.get("REVMODEL_OVERRIDES_URL") or config.OVERRIDES_URL
    path = team_map_path()
    key = f"{url}|{path}|{id(ctx.cube)}"
    if key not in _STORES:
        team = (
            TeamMap.from_yaml(path, cube=ctx.cube) if path.exists() else TeamMap.from_cube(ctx.cube)
        )
        _STORES[key] = OverrideStore(url, team_map=team)
    return _STORES[key]
