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

import logging
import os
import pickle
import time
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.linalg import LinAlgWarning

from revmodel import calendar as fcal
from revmodel import config, scenario, sections
from revmodel import cube as rcube
from revmodel import forecast as rforecast
from revmodel import pipeline as rpipeline
from revmodel.apps.cache import (
    ENV_CUBE,
    ENV_FORECAST_METHOD,
    ENV_PARAMS,
    context_cache_path,
    fingerprint,
    published_plan,
)
from revmodel.apps.cache import forecast_method as resolve_method
from revmodel.apps.cache import latest_params as _latest_params
from revmodel.apps.cache import sample_dir as _sample_dir
from revmodel.apps.published import PublishedPlan
from revmodel.assumptions import Assumptions
from revmodel.errors import DataError, ParameterError, RevmodelError
from revmodel.overrides import Identity, OverrideStore, TeamMap

__all__ = [
    "ENV_CUBE",
    "ENV_FORECAST_METHOD",
    "ENV_PARAMS",
    "ENV_TEAM_MAP",
    "AppContext",
    "app_context",
    "clear_cache",
    "context_cache_path",
    "fingerprint",
    "load_context",
    "open_store",
    "period_total",
    "period_totals",
    "team_map_path",
]

#: Environment variable naming the team mapping YAML (users -> team).
ENV_TEAM_MAP = "REVMODEL_TEAM_MAP"

#: Reconciliation method used when the parameters file names none.
DEFAULT_RECONCILE = "mint_shrink"
#: Months of actuals behind the win rates that weight open pipeline [months].
WIN_RATE_MONTHS = 12

logger = logging.getLogger(__name__)

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
    plan : xarray.Dataset or None
        :func:`revmodel.scenario.plan` with the base assumptions (quotas, capacity, KPIs);
        None when no rep is known (:attr:`rep_known`).
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
    published : PublishedPlan or None
        The published plan the context was read from (None: computed from the data,
        because no plan was published yet or a data folder or cube was named).
    results : dict
        The published plan's ``quota`` (:func:`revmodel.quota.top_down`),
        ``capacity`` (:func:`revmodel.capacity.capacity_plan`) and ``quota_balance``
        (:func:`revmodel.quota.balance`) Datasets; empty without a published plan.
    rep_known : bool
        The data names a rep (:func:`revmodel.sections.cube_rep_known`); without one,
        capacity, quotas and scenarios are not provided (:meth:`not_provided`).
    live : LiveForecast or None
        The live calls ``reconciled`` is reconciled with (:func:`with_live_forecast`);
        None for the statistical forecast.
    """

    cube: xr.Dataset
    tables: dict[str, pd.DataFrame] | None
    cycle: str
    assumptions: Assumptions
    plan_context: scenario.PlanContext
    plan: xr.Dataset | None
    forecast: xr.Dataset
    reconciled: xr.DataArray
    inputs: rforecast.NodeForecast
    weighted_pipeline: xr.DataArray
    reconcile_method: str = DEFAULT_RECONCILE
    source: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    store: OverrideStore | None = None
    identity: Identity | None = None
    scenarios_dir: Path | None = None
    published: PublishedPlan | None = None
    results: dict[str, xr.Dataset] = field(default_factory=dict)
    rep_known: bool = True
    live: LiveForecast | None = None

    def not_provided(self, section: str) -> str:
        """Why a section that plans sellers is not shown, as the pack says it; "" when shown."""
        needs_rep = section in ("capacity", "quotas", "scenarios")
        return sections.no_rep_note(section) if needs_rep and not self.rep_known else ""

    def rep_quota(self) -> xr.DataArray:
        """Quota by rep and month [currency/month]: the published plan's, else the base plan's.

        Coordinates ``manager``, ``rep_region`` and ``rep_segment`` on ``rep``; no rep
        and no month when no rep is known (quotas not provided, never zeros).
        """
        if "quota" in self.results:
            return self.results["quota"]["quota"]
        if self.plan is None:
            empty = np.empty(0, dtype=object)
            return xr.DataArray(
                np.zeros((0, 0)),
                dims=("rep", "month"),
                coords={"rep": empty, "month": np.empty(0, dtype="datetime64[ns]"),
                        "manager": ("rep", empty), "rep_region": ("rep", empty),
                        "rep_segment": ("rep", empty)},
                name="quota",
            )  # fmt: skip
        return self.plan["rep_quota"]

    # -- the session: calls and the signed-in user

    @property
    def calls(self) -> OverrideStore:
        """The call store; :func:`app_context` opens it."""
        if self.store is None:
            raise ParameterError(
                "this context has no call store: build it with revmodel.apps.context.app_context"
            )
        return self.store

    @property
    def user(self) -> str | None:
        """The signed-in user's name, None when nobody signed in."""
        return None if self.identity is None else self.identity.user

    def rep_names(self) -> dict[str, str]:
        """Rep id -> display name (the cube's ``rep_name``, else the reps export's, else the id)."""
        if "rep_names" in self.extra:
            return self.extra["rep_names"]
        reps = np.asarray(self.cube["rep"].values).astype(str)
        names = dict(zip(reps, reps, strict=True))
        if "rep_label" in self.cube.coords:
            # One display label (the id beside a shared name): revmodel.cube.labels.
            names.update(rcube.labels(self.cube))
        elif "rep_name" in self.cube.coords:
            found = np.asarray(self.cube["rep_name"].values).astype(object)
            names.update({r: str(n) for r, n in zip(reps, found, strict=True) if _named(n)})
        elif self.tables is not None and "rep_name" in getattr(
            self.tables.get("reps"), "columns", ()
        ):
            table = self.tables["reps"]
            found = dict(zip(table["rep_id"].astype(str), table["rep_name"], strict=True))
            names.update({r: str(found[r]) for r in reps if _named(found.get(r))})
        self.extra["rep_names"] = names
        return names

    def label(self, level: str, key: str) -> str:
        """How a node is shown: a rep by name, a manager or region by its own name."""
        if level == "total":
            return "Company"
        return self.rep_names().get(key, key) if level == "rep" else key

    def leavers(self) -> list[str]:
        """Reps whose employment ended on or before ``as_of``: not counted in roll-ups."""
        if "end_date" not in self.cube.coords:
            return []
        end = pd.DatetimeIndex(self.cube["end_date"].values)
        gone = np.asarray(end.notna() & (end <= self.as_of))
        return sorted(np.asarray(self.cube["rep"].values).astype(str)[gone].tolist())

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

    def call_locks(
        self, locked: dict[tuple[str, str], float], period: str
    ) -> tuple[dict[tuple[str, Any], np.ndarray], list[str]]:
        """Calls for a period as the reconciler's locks: each node's values by forecast month.

        A call is spread over the period's months like the node's own base forecast
        (NaN in the other months: not locked there). Returns the locks and notes on
        calls that could not be locked (node without history, period outside the forecast).
        """
        months = np.asarray(self.forecast["month"].values)
        in_period = np.isin(months, self.period_months(period).values.astype("datetime64[ns]"))
        if not in_period.any():
            return {}, [f"{period} is outside the forecast months: no call locked."]
        h = self.inputs.hierarchy
        notes: list[str] = []
        locks: dict[tuple[str, Any], np.ndarray] = {}
        for (level, key), amount in sorted(locked.items()):
            try:
                idx = h.index(level, () if level == "total" else key)
            except ParameterError:
                notes.append(f"{level} {key} has no bookings history: its call is not locked.")
                continue
            # Spread the call over the period's months like the node's own base forecast.
            shape = np.clip(self.inputs.mean[idx, in_period], 0.0, None)
            shape = shape / shape.sum() if shape.sum() > 0 else np.full(in_period.sum(), 1.0)
            shape = shape / shape.sum()
            values = np.full(len(months), np.nan)
            values[in_period] = float(amount) * shape
            locks[(level, () if level == "total" else key)] = values
        return locks, notes

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
        locks, notes = self.call_locks(locked, period)
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


def _named(value: object) -> bool:
    return (
        value is not None
        and not (isinstance(value, float) and np.isnan(value))
        and str(value).strip() != ""
    )


# --------------------------------------------------------------------------- loading


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
    known = sections.cube_rep_known(cube)
    plan = scenario.plan(ctx, base) if known else None
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
        extra={"data_dir": str(data_dir)} if data_dir is not None else {},
        rep_known=known,
    )


#: Groups of a published ``plan.nc`` the apps show as published (:attr:`AppContext.results`).
PUBLISHED_RESULTS: tuple[str, ...] = ("quota", "capacity", "quota_balance")


def _read_group(path: Path, group: str) -> xr.Dataset | None:
    from revmodel import encoding

    try:
        with xr.open_dataset(path, group=group, engine="netcdf4") as ds:
            return encoding.decode(ds.load())
    except (OSError, KeyError):
        return None


def _published_tables(plan: PublishedPlan) -> dict[str, pd.DataFrame] | None:
    """The exports the plan was made from (names, deals, accounts), when still readable."""
    if plan.data_dir is None:
        return None
    from revmodel import sources

    mapping = plan.mapping
    try:
        result = sources.load(plan.data_dir, mapping=mapping)
    except (RevmodelError, OSError) as exc:
        logger.warning(
            "%s: exports not read (%s); deals and territories not shown", plan.data_dir, exc
        )
        return None
    return result.tables if result.status != 2 else None


def _from_published(plan: PublishedPlan) -> AppContext:
    """The context of a published plan: its cube, forecasts, quotas and capacity, as published.

    The what-if's base plan is the pack's ``base_plan`` group (with the rep
    potential its quotas were set on, kept as ``extra["potential"]``). Only what
    the pack does not hold is derived, by the library's functions on the
    published cube: the what-if's prepared inputs, the node models behind
    reconciliation with calls, the weighted pipeline, and the base plan of a
    pack published without one (:func:`revmodel.scenario.plan` with the plan's
    own assumptions).
    """
    from revmodel import parameters

    start = time.perf_counter()
    groups = {g: _read_group(plan.plan_file, g) for g in ("cube", "forecast", "reconciled")}
    missing = [g for g, ds in groups.items() if ds is None]
    if missing:
        raise DataError(
            f"{plan.plan_file}: the published plan has no {', '.join(missing)} group; "
            "publish it again with `revmodel plan`."
        )
    cube, fc = groups["cube"], groups["forecast"]
    params = dict(plan.parameters)
    base = parameters.assumptions(params)
    method = str(params.get("reconcile_method") or DEFAULT_RECONCILE)
    as_of = pd.Timestamp(cube.attrs["as_of"])
    hist = cube["bookings"].sel(month=cube["month"] <= np.datetime64(as_of, "ns"))
    tables = _published_tables(plan)
    prepared = scenario.prepare(cube)
    known = sections.cube_rep_known(cube)
    results = {
        g: ds for g in PUBLISHED_RESULTS if (ds := _read_group(plan.plan_file, g)) is not None
    }
    extra: dict[str, Any] = {"data_dir": str(plan.data_dir)} if plan.data_dir is not None else {}
    base_plan = _read_group(plan.plan_file, "base_plan")
    if base_plan is not None and "quota_potential" in base_plan:
        found = base_plan["quota_potential"]
        extra["potential"] = pd.Series(
            found.values, index=found["potential_rep"].values.astype(str), name="potential"
        )
        base_plan = base_plan.drop_dims("potential_rep")
    return AppContext(
        cube=cube,
        tables=tables,
        cycle=plan.cycle,
        assumptions=base,
        plan_context=prepared,
        # The base plan as published; computed here only from a pack published without it.
        plan=(base_plan if base_plan is not None else scenario.plan(prepared, base))
        if known
        else None,
        forecast=fc,
        reconciled=groups["reconciled"]["forecast"],
        inputs=rforecast.node_forecasts(hist, fc),
        weighted_pipeline=_weighted_pipeline(cube, tables, fc.sizes["month"]),
        reconcile_method=DEFAULT_RECONCILE if method == "none" else method,
        source=plan.describe(),
        seconds=time.perf_counter() - start,
        published=plan,
        results=results,
        extra=extra,
        rep_known=known,
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
    method = resolve_method(forecast_method)
    if cube is not None:
        key: Any = ("cube", id(cube), method)
    elif data_dir is not None:
        key = ("dir", str(Path(data_dir).resolve()), method)
    else:
        key = ("default", os.environ.get(ENV_CUBE), str(config.SAMPLE_DIR), method)
    if key not in _CACHE:
        if cube is not None:
            _CACHE[key] = _build(cube, None, method)
            # Keep the cube alive so its id is not reused by another object.
            _CACHE[key].extra["cube"] = cube
        else:
            _CACHE[key] = _load_or_build(Path(data_dir) if data_dir is not None else None, method)
    return _CACHE[key]


def _precompute(ctx: AppContext) -> None:
    """What every kernel would otherwise compute on its first page: names, quotas, territories."""
    from revmodel.apps import explorer, quotas

    ctx.rep_names()
    explorer.precompute(ctx)
    if ctx.not_provided("quotas"):  # no rep known: the quotas page says so
        return
    try:
        quotas.quota_frame(ctx)
    except RevmodelError as exc:  # the quotas page says why; the other apps do not need it
        logger.warning("quotas not precomputed: %s", exc)


def _load_or_build(data_dir: Path | None, method: str) -> AppContext:
    """The context from the shared cache file, or built and written there for the next kernel.

    Without a data folder or cube named, the latest published plan is read
    (:func:`revmodel.apps.cache.published_plan`); only when no plan was
    published yet is the context computed from the data.
    """
    plan = published_plan(data_dir)
    if plan is not None:
        return _cached(context_cache_path(None, method, plan), lambda: _from_published(plan))
    return _cached(context_cache_path(data_dir, method), lambda: _build(None, data_dir, method))


def _cached(path: Path, make: Callable[[], AppContext]) -> AppContext:
    """The context in ``path``, else ``make()`` precomputed and written there atomically.

    The file is written by this package into its own cache folder (never taken
    from elsewhere) and replaced atomically, so a kernel never reads half a file.
    """
    if path.exists():
        try:
            with path.open("rb") as f:
                ctx = pickle.load(f)  # noqa: S301 - our own cache file
            if isinstance(ctx, AppContext):
                logger.debug("apps context read from %s", path)
                ctx.extra["context_file"] = str(path)
                return ctx
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            logger.warning("apps context cache %s unreadable: rebuilding it", path)
    ctx = make()
    _precompute(ctx)
    # What does not depend on the calls: names, quotas, the explorer's KPIs of actuals.
    shared = {
        k: v
        for k, v in ctx.extra.items()
        if isinstance(k, str) or (isinstance(k, tuple) and k[:1] == ("explorer_kpis",))
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        pickle.dump(replace(ctx, extra=shared), f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    for old in path.parent.glob("context-*.pickle"):
        if old != path:
            old.unlink(missing_ok=True)
    for old in path.parent.glob("weekly-*.pickle"):  # computed from an older context
        old.unlink(missing_ok=True)
    # where the pages keep what they compute from this context (the weekly scores)
    ctx.extra["context_file"] = str(path)
    return ctx


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


def app_context(
    data_dir: str | Path | None = None,
    cube: xr.Dataset | None = None,
    store_url: str | None = None,
    user: str | None = None,
    forecast_method: str | None = None,
    scenarios_dir: str | Path | None = None,
    context: AppContext | None = None,
) -> AppContext:
    """The one context every app builder takes: data, forecasts, plan, calls and user.

    Parameters
    ----------
    data_dir, cube, forecast_method
        The data (see :func:`load_context`); ignored when ``context`` is given.
    store_url : str, optional
        The call store's SQLAlchemy URL (see :func:`open_store`).
    user : str, optional
        The signed-in user; default the server's (:meth:`Identity.from_environment`).
    scenarios_dir : str or Path, optional
        Folder of saved what-if scenarios; default :data:`revmodel.config.SCENARIOS_DIR`.
    context : AppContext, optional
        Data already loaded (tests): only the session is added.

    An app's kernel shows no progress bar (:func:`revmodel.progress.configure`): in a
    Voila page a bar would be a widget of its own among the app's ("Loading widget...").
    """
    from revmodel import progress

    progress.configure(False)
    ctx = context or load_context(data_dir=data_dir, cube=cube, forecast_method=forecast_method)
    identity = Identity(user.strip()) if user and user.strip() else Identity.from_environment()
    folder = Path(scenarios_dir) if scenarios_dir is not None else config.SCENARIOS_DIR
    return replace(ctx, store=open_store(ctx, store_url), identity=identity, scenarios_dir=folder)


def period_total(ctx: AppContext, da: xr.DataArray, period: str, level: str, key: str) -> float:
    """Sum of ``da`` (segment, region, rep, month) over a node and the period's months [USD]."""
    return period_totals(ctx, da, period, [(level, key)])[0]


def period_totals(
    ctx: AppContext, da: xr.DataArray, period: str, nodes: list[tuple[str, str]]
) -> list[float]:
    """:func:`period_total` of each ``(level, key)`` node, the period's months cut once [USD]."""
    months = ctx.period_months(period).values.astype("datetime64[ns]")
    da = da.isel(month=np.isin(da["month"].values, months))
    managers = np.asarray(ctx.cube["manager"].values).astype(str)
    out = []
    for level, key in nodes:
        if level == "rep":
            node = da.sel(rep=[key])
        elif level == "manager":
            node = da.isel(rep=managers == key)
        elif level == "region":
            node = da.sel(region=[key])
        else:
            node = da
        out.append(float(node.sum()))
    return out


@dataclass(frozen=True)
class LiveForecast:
    """The forecast of a period reconciled with the live calls.

    Attributes
    ----------
    period : str
    reconciled : xarray.DataArray
        (segment, region, rep, month) [USD/month], the locked nodes kept exactly.
    locked : dict
        ``{(level, key): amount}`` [USD for the period]: the current commit calls and held nodes.
    held : tuple
        ``(level, key)`` nodes held at their statistical forecast.
    notes : list of str
        Calls that could not be locked, and why.
    version : int
        The call store's version the forecast was computed at.
    """

    period: str
    reconciled: xr.DataArray
    locked: dict[tuple[str, str], float]
    held: tuple[tuple[str, str], ...]
    notes: list[str]
    version: int


def live_forecast(
    ctx: AppContext, period: str, hold: Collection[tuple[str, str]] = ()
) -> LiveForecast:
    """The period's forecast with the latest commit call of every node locked (cached by store version).

    Every app shows this same forecast, so a call submitted in one app shows in
    the others on their next refresh. ``hold`` nodes are locked at their
    statistical forecast (the coherent forecast without calls) unless they have
    a call of their own.
    """
    store = ctx.calls
    version = store.version()
    held = tuple(sorted({(str(lv), str(k)) for lv, k in hold}))
    key = ("live", period, version, held, store.url)
    cached = ctx.extra.get(key)
    if cached is not None:
        return cached
    locked = dict(store.locked_nodes(period, "commit"))
    for level, node in held:
        locked.setdefault((level, node), period_total(ctx, ctx.reconciled, period, level, node))
    rec, notes = ctx.reconcile_with_calls(locked, period)
    for old in [k for k in ctx.extra if isinstance(k, tuple) and k[:2] == ("live", period)]:
        del ctx.extra[old]
    out = LiveForecast(period, rec, locked, held, notes, version)
    ctx.extra[key] = out
    return out


def with_live_forecast(ctx: AppContext, period: str, hold: Collection = ()) -> AppContext:
    """``ctx`` whose ``reconciled`` is :func:`live_forecast` of the period (shares everything else)."""
    if ctx.store is None:
        return ctx
    live = live_forecast(ctx, period, hold)
    return replace(ctx, reconciled=live.reconciled, live=live)


def node_calls(ctx: AppContext, period: str) -> pd.DataFrame:
    """The call of every node of the period: its own, else the sum of the level below [USD].

    Returns
    -------
    pandas.DataFrame
        Index ``(level, key)`` for ``rep`` (reps still employed), ``manager``,
        ``region`` and ``total``; columns ``commit`` and ``best_case`` (NaN when
        neither the node nor anyone below it called) and ``own_commit`` /
        ``own_best_case`` (True when the node's own call is shown).
    """
    key = ("node_calls", period, ctx.calls.version(), ctx.calls.url)
    if key in ctx.extra:
        return ctx.extra[key]
    calls = ctx.calls.current_calls(period)
    own = {
        (lv, k, ct): float(a)
        for lv, k, ct, a in zip(calls["level"], calls["key"], calls["call_type"], calls["amount"], strict=True)
    }  # fmt: skip
    tm = ctx.calls.team_map
    children: dict[tuple[str, str], list[tuple[str, str]]] = {("total", "total"): []}
    for rep in tm.active_reps:
        children.setdefault(("manager", tm.rep_manager[rep]), []).append(("rep", rep))
    for manager in [k for lv, k in list(children) if lv == "manager"]:
        region = tm.manager_region.get(manager, config.PLACEHOLDER)
        children.setdefault(("region", region), []).append(("manager", manager))
    children[("total", "total")] = [n for n in children if n[0] == "region"]
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def value(node: tuple[str, str]) -> dict[str, Any]:
        if node in rows:
            return rows[node]
        row: dict[str, Any] = {}
        for ct in ("commit", "best_case"):
            mine = own.get((*node, ct))
            below = [value(c)[ct] for c in children.get(node, [])]
            below = [v for v in below if np.isfinite(v)]
            row[ct] = mine if mine is not None else (float(np.sum(below)) if below else np.nan)
            row[f"own_{ct}"] = mine is not None
        rows[node] = row
        return row

    for node in [*(("rep", r) for r in tm.active_reps), *children]:
        value(node)
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index = pd.MultiIndex.from_tuples(out.index, names=["level", "key"])
    ctx.extra[key] = out
    return out
