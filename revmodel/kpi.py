"""The KPI catalogue, computed from the cube at any level of the hierarchy and fiscal period.

Every KPI is a :class:`KPI` record (name, definition, units, the function that
computes it, the inputs it needs) in :data:`KPIS`; :func:`describe` lists the
catalogue as a table and :func:`compute` evaluates any subset of it::

    kpi.compute(cube, dims=("region",), period="fiscal_quarter", tables=tables)

Ratios are always computed from numerators and denominators rolled up to the
requested level first (never an average of ratios), so a region's win rate
is its won deals over its closed deals. Stocks (ARR, customers, receivables,
backlog) are taken at the last month of the period with actuals; flows are
summed over the period's months up to ``as_of``, so the period holding
``as_of`` is partial.

Inputs besides the cube: ``tables`` (the canonical tables, for customers,
renewals, DSO, backlog and sales cycle), ``costs`` (sales and marketing cost,
for CAC) and ``quota`` (for pipeline coverage and attainment); see
:func:`compute`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from revmodel import calendar as fcal
from revmodel import config, retention
from revmodel import cube as rcube
from revmodel import pipeline as rpipeline
from revmodel.errors import DataError, ParameterError

__all__ = [
    "KPI",
    "KPIS",
    "LABELS",
    "DEFAULT_GROSS_MARGIN",
    "attainment",
    "compute",
    "cube_summary",
    "describe",
    "finance_measures",
    "label",
]

#: Gross margin used by LTV unless given [ratio]; a typical SaaS subscription margin.
DEFAULT_GROSS_MARGIN = 0.75
#: Days per year used to turn remaining term days into years [days/year].
DAYS_PER_YEAR = 365.25
_CUR = config.CURRENCY


@dataclass(frozen=True)
class KPI:
    """One KPI of the catalogue.

    Attributes
    ----------
    name : str
        Variable name in :func:`compute`'s result.
    definition : str
        How it is computed, in words.
    units : str
        Units; ``period`` stands for the fiscal period asked for.
    function : callable
        ``function(context) -> xr.DataArray`` with dims (``*dims``, ``period``).
    needs : tuple of str
        Inputs besides the cube: ``tables``, ``invoices``, ``opportunities``, ``costs``, ``quota``.
    label : str
        What a reader sees in the pack and the apps, with the unit where it is not money or a
        percentage (``"DSO (days)"``); :data:`LABELS` holds them by name.

    Examples
    --------
    >>> KPIS["win_rate"].definition
    'Deals won / (deals won + deals lost), by close date in the period.'
    >>> KPIS["dso"].needs
    ('invoices',)
    >>> KPIS["dso"].label, KPIS["nrr"].label
    ('DSO (days)', 'Net revenue retention')
    """

    name: str
    definition: str
    units: str
    function: Callable[[_Context], xr.DataArray]
    needs: tuple[str, ...] = ()
    label: str = ""


# --------------------------------------------------------------------------- inputs


def _table(tables: Mapping[str, pd.DataFrame] | None, name: str) -> pd.DataFrame | None:
    if tables is None:
        return None
    t = tables.get(name)
    return None if t is None or t.empty else t


def _month_cols(cube: xr.Dataset, dates: pd.Series) -> np.ndarray:
    """Column of each date on the cube's month axis [float; may be < 0 or >= n; NaN for NaT]."""
    first = pd.Timestamp(cube["month"].values[0])
    d = pd.to_datetime(dates)
    return ((d.dt.year - first.year) * 12 + d.dt.month - first.month).to_numpy(
        dtype=float, na_value=np.nan
    )


def _stock(
    cube: xr.Dataset, flat: np.ndarray, start: np.ndarray, end: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Cell x month stock of items present in the months ``[start, end)`` (columns, clipped)."""
    n = cube.sizes["month"]
    shape = tuple(cube.sizes[d] for d in retention.series_dims(cube))
    n_cells = int(np.prod(shape))
    s = np.clip(np.nan_to_num(start, nan=n), 0, n).astype(np.int64)
    e = np.clip(np.nan_to_num(end, nan=n), 0, n).astype(np.int64)
    ok = (flat >= 0) & (e > s) & np.isfinite(weights)
    diff = np.zeros((n_cells, n + 1))
    np.add.at(diff, (flat[ok], s[ok]), weights[ok])
    np.add.at(diff, (flat[ok], e[ok]), -weights[ok])
    return np.cumsum(diff[:, :n], axis=1).reshape(*shape, n)


def _flow(cube: xr.Dataset, flat: np.ndarray, col: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Cell x month sum of ``weights`` at month columns ``col`` (outside the cube: left out)."""
    n = cube.sizes["month"]
    c = np.nan_to_num(col, nan=-1)
    return _stock(cube, flat, np.where((c >= 0) & (c < n), c, n), c + 1, weights)


def _backlog_cells(
    cube: xr.Dataset,
    tables: Mapping[str, pd.DataFrame],
    subs: pd.DataFrame,
    members: Mapping[str, np.ndarray] | None,
) -> tuple[np.ndarray, str, str]:
    """Remaining contract value of the active terms by cell and month end.

    Missing (NaN) in a cell and month where an active term has no end date: its
    remaining contract value is unknown, so the cell's backlog cannot be trusted.
    """
    months = pd.DatetimeIndex(cube["month"].values)
    acct = pd.Index(pd.unique(subs["account_id"].astype("string").to_numpy()))
    cells = retention.account_cells(tables, acct)
    flat = retention.cell_codes(cube, cells, members)[
        acct.get_indexer(subs["account_id"].astype("string").to_numpy())
    ]
    ends = pd.to_datetime(subs["end_date"]) if "end_date" in subs.columns else None
    if ends is None:
        ends = pd.Series(pd.NaT, index=subs.index, dtype="datetime64[ns]")
    has_end = ends.notna().to_numpy()
    arr_all = subs["arr"].to_numpy(dtype=float)
    arr = np.where(has_end, arr_all, 0.0)
    base = months[0]
    end_days = ((ends - base).dt.days).to_numpy(dtype=float, na_value=0.0)
    start = _month_cols(cube, subs["start_date"])
    end = _month_cols(cube, ends)
    total_arr = _stock(cube, flat, start, end, arr)
    arr_end = _stock(cube, flat, start, end, arr * end_days)
    undated = _stock(cube, flat, start, end, np.where(has_end, 0.0, np.abs(arr_all)))
    # Days from the start of the cube to each month's end (the first day of the next month).
    t = ((months + pd.DateOffset(months=1)) - base).days.to_numpy(dtype=float)
    backlog = (arr_end - total_arr * t) / DAYS_PER_YEAR
    backlog = np.where(np.abs(backlog) < 1e-6, 0.0, backlog)
    return (
        np.where(undated > 1e-9, np.nan, backlog),
        _CUR,
        "Remaining contract value of active terms at month end (missing where one has no end date)",
    )


def finance_measures(
    cube: xr.Dataset,
    tables: Mapping[str, pd.DataFrame],
    members: Mapping[str, np.ndarray] | None = None,
) -> xr.Dataset:
    """Receivables, billing, backlog and sales-cycle days by cube cell and month.

    Invoices and subscription terms sit in their account's cell (as ARR does,
    see :func:`revmodel.retention.account_cells`); won deals in the cell the
    cube gives their bookings.

    Returns
    -------
    xr.Dataset
        On the cube's dims and coords, NaN after ``as_of``, whichever the tables allow:
        ``receivables`` [USD] (invoiced by the month end and unpaid at it),
        ``billed`` [USD/month] (invoice amounts by invoice month),
        ``backlog`` [USD] (remaining contract value of active terms at month end),
        ``cycle_days`` [days/month] (sum of created-to-close days of won deals
        closing in the month) and ``cycle_deals`` [deals/month] (those deals).

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube (its cells, months and ``as_of``).
    tables : mapping of str to DataFrame
        The canonical tables it was built from.
    members : mapping, optional
        The members of every series dim (:func:`revmodel.retention.series_members`)
        of the cube ``cube`` was rolled up from, when it keeps only some of them:
        the measures come by the dims it kept.

    Examples
    --------
    >>> f = finance_measures(ds, tables)
    >>> list(f.data_vars)
    ['receivables', 'billed', 'backlog', 'cycle_days', 'cycle_deals']
    >>> round(float(f["receivables"].sel(month="2026-10-01").sum()) / 1e6, 2), f["receivables"].attrs["units"]
    (5.9, 'USD')
    """
    data: dict[str, tuple[np.ndarray, str, str]] = {}
    months = pd.DatetimeIndex(cube["month"].values)
    n = len(months)
    invoices = _table(tables, "invoices")
    if invoices is not None:
        inv_acct = pd.Index(pd.unique(invoices["account_id"].astype("string").to_numpy()))
        cells = retention.account_cells(tables, inv_acct)
        flat = retention.cell_codes(cube, cells, members)[
            inv_acct.get_indexer(invoices["account_id"].astype("string").to_numpy())
        ]
        amount = invoices["amount"].to_numpy(dtype=float)
        start = _month_cols(cube, invoices["invoice_date"])
        paid = (
            _month_cols(cube, invoices["paid_date"])
            if "paid_date" in invoices.columns
            else np.full(len(invoices), np.nan)
        )
        data["receivables"] = (
            _stock(cube, flat, start, paid, amount),
            _CUR,
            "Invoiced by the month end and unpaid at it",
        )
        data["billed"] = (
            _flow(cube, flat, start, amount),
            f"{_CUR}/month",
            "Invoiced in the month",
        )

    subs = _table(tables, "subscriptions")
    if subs is not None:
        data["backlog"] = _backlog_cells(cube, tables, subs, members)

    opps = _table(tables, "opportunities")
    if _has_created_dates(opps):
        won = _won_cycle_days(opps)
        dims = retention.series_dims(cube)
        cyc = np.zeros((*[cube.sizes[d] for d in dims], n))
        cnt = np.zeros_like(cyc)
        if not won.empty:
            # Rebuilt with the cube's own rules so that every deal lands in its bookings cell,
            # by populated cell, then summed to the cube's own series dims.
            part = rcube.build_cube(
                {
                    "opportunities": won,
                    **{
                        k: v
                        for k, v in tables.items()
                        if k in ("accounts", "reps", rcube.OPPORTUNITY_ACCOUNTS)
                    },
                },
                fiscal_year_start=int(cube.attrs["fiscal_year_start"]),
                naming=cube.attrs["fiscal_year_naming"],
                as_of=cube.attrs["as_of"],
                layout="cells",
            )
            cyc, cnt = _summed_cells(cube, part, ("bookings", "won"), members)
        data["cycle_days"] = (cyc, "days/month", "Created-to-close days of won deals")
        data["cycle_deals"] = (cnt, "deals/month", "Won deals with a created date")
    return retention.cube_like(cube, data)


def _summed_cells(
    cube: xr.Dataset,
    part: xr.Dataset,
    names: tuple[str, ...],
    members: Mapping[str, np.ndarray] | None,
) -> list[np.ndarray]:
    """Measures ``names`` of a cube by populated cell (``part``) summed into ``cube``'s series
    dims and months (missing counted 0); cells of members ``cube`` lacks are left out."""
    cells = pd.DataFrame({d: part[f"cell_{d}"].values for d in rcube.SERIES_DIMS})
    flat = retention.cell_codes(cube, cells, members)
    cols = pd.DatetimeIndex(cube["month"].values).get_indexer(part["month"].values)
    inside = cols >= 0
    out = []
    for name in names:
        values = np.nan_to_num(np.asarray(part[name].values, dtype=float))
        on_axis = np.zeros((len(cells), cube.sizes["month"]))
        on_axis[:, cols[inside]] = values[:, inside]
        out.append(retention.scatter_cells(cube, flat, on_axis))
    return out


def _has_created_dates(opps: pd.DataFrame | None) -> bool:
    """Whether the opportunities (rows, or :func:`revmodel.cube.deal_cells`) give sales cycles."""
    return opps is not None and ("created_date" in opps.columns or "cycle_deals" in opps.columns)


def _won_cycle_days(opps: pd.DataFrame) -> pd.DataFrame:
    """The won deals with a created date, their ``amount`` their created-to-close days.

    Rows of :func:`revmodel.cube.deal_cells` (opportunities reduced where they were
    read) carry these days and deals summed by cell and month already.
    """
    won = opps[(opps["stage"].astype("string") == "won").to_numpy()]
    if "cycle_deals" in opps.columns:
        won = won[(won["cycle_deals"] > 0).to_numpy()]
        return won.assign(amount=won["cycle_days"], deals=won["cycle_deals"])
    won = won[pd.to_datetime(won["created_date"]).notna().to_numpy()]
    days = (pd.to_datetime(won["close_date"]) - pd.to_datetime(won["created_date"])).dt.days
    return won.assign(amount=days.clip(lower=0).to_numpy(dtype=float))


# --------------------------------------------------------------------------- context


def _calendar_coords(da: xr.DataArray, cube: xr.Dataset) -> xr.DataArray:
    if "month" in da.dims and "fiscal_quarter" not in da.coords:
        da = fcal.assign_fiscal_coords(
            da, int(cube.attrs["fiscal_year_start"]), cube.attrs["fiscal_year_naming"]
        )
    return da


def _as_array(obj: pd.DataFrame | xr.DataArray, what: str, value: str, period: str) -> xr.DataArray:
    """A cost or quota input as a DataArray over its level and time columns."""
    if isinstance(obj, xr.DataArray):
        return obj.astype(float)
    if isinstance(obj, xr.Dataset):
        if value not in obj:
            raise ParameterError(f"{what}: the Dataset has no {value!r} variable.")
        return obj[value].astype(float)
    if not isinstance(obj, pd.DataFrame):
        raise ParameterError(f"{what} must be a DataFrame or DataArray, got {type(obj).__name__}.")
    col = value if value in obj.columns else "amount"
    if col not in obj.columns:
        raise ParameterError(
            f"{what}: no {value!r} or 'amount' column; columns are {list(obj.columns)}."
        )
    time = "month" if "month" in obj.columns else period if period in obj.columns else None
    if time is None:
        raise ParameterError(
            f"{what}: no 'month' or {period!r} column; give one row per month (or {period})."
        )
    levels = [c for c in obj.columns if c in rcube.SERIES_DIMS + rcube.REP_LEVELS]
    frame = obj[[*levels, time, col]].copy()
    if time == "month":
        frame["month"] = pd.to_datetime(frame["month"]).dt.to_period("M").dt.to_timestamp()
    summed = frame.groupby([*levels, time])[col].sum()
    da = xr.DataArray.from_series(summed).fillna(0.0)
    if time == "month":
        da = da.assign_coords(month=da["month"].values.astype("datetime64[ns]"))
    return da.rename(what)


class _Context:
    """The cube rolled up once, with lazily computed pieces each KPI shares."""

    def __init__(
        self,
        cube: xr.Dataset,
        dims: tuple[str, ...],
        period: str,
        tables: Mapping[str, pd.DataFrame] | None,
        costs: pd.DataFrame | xr.DataArray | None,
        quota: pd.DataFrame | xr.DataArray | None,
        gross_margin: float,
    ):
        self.cube = cube
        # The cube summed once to the series dims the KPIs keep (a rep level keeps reps):
        # by populated cell or dense, the cube is never spread over every series.
        series = [d for d in rcube.SERIES_DIMS if d in dims]
        if any(d in rcube.REP_LEVELS for d in dims):
            series.append("rep")
        self.level = rcube.rollup(cube, tuple(series), "month")
        self.members = retention.series_members(cube)
        self.dims = dims
        self.period = period
        self.tables = tables
        self.costs = costs
        self.quota = quota
        self.gross_margin = gross_margin

    def available(self, need: str) -> bool:
        if need in ("tables", "invoices", "opportunities"):
            name = "subscriptions" if need == "tables" else need
            t = _table(self.tables, name)
            if t is None:
                return False
            return need != "opportunities" or _has_created_dates(t)
        return getattr(self, need) is not None

    # ---- cube pieces
    @cached_property
    def sales(self) -> xr.Dataset:
        names = ["bookings", "won", "lost"]
        hist = retention._actuals(self.level[names], self.level)
        return retention.period_sum(rcube.rollup(hist, self.dims, "month"), self.period)

    @cached_property
    def bridge(self) -> xr.Dataset:
        return retention.arr_bridge(self.level, self.dims, self.period)

    @cached_property
    def trailing(self) -> xr.Dataset:
        return retention.trailing_retention(self.level, self.dims, self.period)

    # ---- table pieces
    @cached_property
    def customer_measures(self) -> xr.Dataset:
        return retention.customer_measures(self.level, self.tables, members=self.members)

    @cached_property
    def logos(self) -> xr.Dataset:
        return retention.logo_churn(
            self.level, dims=self.dims, period=self.period, measures=self.customer_measures
        )

    @cached_property
    def logo_churn_12(self) -> xr.DataArray:
        m = retention._customer_monthly(self.level, self.customer_measures, self.dims)
        lost = m["churned_customers"].rolling(month=12, min_periods=12).sum()
        rate = retention._ratio(lost, m["opening_customers"].shift(month=11))
        return retention.at_period(rate, self.period, "last")

    @cached_property
    def finance_cells(self) -> xr.Dataset:
        return finance_measures(self.level, self.tables, self.members)

    @cached_property
    def finance(self) -> xr.Dataset:
        ds = self.finance_cells
        return rcube.rollup(retention._actuals(ds, self.level), self.dims, "month")

    @cached_property
    def days(self) -> xr.DataArray:
        hist = retention._actuals(self.cube["month"], self.cube)
        days = xr.DataArray(
            pd.DatetimeIndex(hist.values).days_in_month.to_numpy(dtype=float),
            dims="month",
            coords={k: v for k, v in hist.coords.items()},
        )
        return retention.period_sum(days, self.period)

    # ---- external inputs
    def rolled_input(self, obj: pd.DataFrame | xr.DataArray, what: str, value: str) -> xr.DataArray:
        da = _as_array(obj, what, value, self.period)
        # An input by rep rolls up to the rep's own segment and region, both at once (a
        # segment x region KPI of a quota by rep; combinations no rep has stay missing).
        own = [d for d in ("segment", "region") if d in self.dims and d not in da.dims]
        if own and "rep" in da.dims and "rep" not in self.dims:
            labels = {d: ("rep", self.cube[f"rep_{d}"].sel(rep=da["rep"]).values) for d in own}
            da = da.assign_coords(labels).groupby(own).sum("rep")
        for d in self.dims:
            if (
                d in rcube.REP_LEVELS
                and d not in da.dims
                and "rep" in da.dims
                and d not in da.coords
            ):
                da = da.assign_coords({d: ("rep", self.cube[d].sel(rep=da["rep"]).values)})
            if d not in da.dims and not (d in rcube.REP_LEVELS and d in da.coords):
                raise ParameterError(
                    f"{what} has no {d!r} level (it has {list(da.dims)}): give {what} by {d} "
                    f"or compute at a level {what} has."
                )
        if "month" in da.dims:
            da = _calendar_coords(da, self.cube)
            da = retention.period_sum(rcube.rollup(da, self.dims, "month"), self.period)
        elif self.period in da.dims:
            da = rcube.rollup(da, self.dims, "month")
        elif self.period == "fiscal_year" and "fiscal_quarter" in da.dims:
            years = [str(q)[:6] for q in da["fiscal_quarter"].values]
            da = da.drop_vars(
                [c for c in da.coords if c != "fiscal_quarter" and "fiscal_quarter" in da[c].dims]
            )
            da = da.assign_coords(fiscal_year=("fiscal_quarter", years))
            da = rcube.rollup(da.groupby("fiscal_year").sum(), self.dims, "month")
        else:
            raise ParameterError(
                f"{what} has no 'month' or {self.period!r} dimension (it has {list(da.dims)})."
            )
        return da.drop_vars([c for c in da.coords if c not in da.dims])

    @cached_property
    def quota_by_period(self) -> xr.DataArray:
        return self.rolled_input(self.quota, "quota", "quota")


# --------------------------------------------------------------------------- the KPIs


def _r(num: xr.DataArray, den: xr.DataArray) -> xr.DataArray:
    return retention._ratio(num, den)


def _arr(c: _Context) -> xr.DataArray:
    return c.bridge["closing"]


def _churn_rate(c: _Context) -> xr.DataArray:
    # The one churn rate (retention.churn_rate), at each period's last month with actuals.
    return retention.churn_rate(c.level, c.dims, period=c.period)


def _logo_churn_rate(c: _Context) -> xr.DataArray:
    return c.logos["logo_churn_rate"]


def _renewal_rate(c: _Context) -> xr.DataArray:
    return retention.renewal_rate(
        c.level, dims=c.dims, period=c.period, measures=c.customer_measures
    )["renewal_rate"]


def _nrr(c: _Context) -> xr.DataArray:
    return c.trailing["nrr"]


def _grr(c: _Context) -> xr.DataArray:
    return c.trailing["grr"]


def _customers(c: _Context) -> xr.DataArray:
    return c.logos["closing"]


def _arpu(c: _Context) -> xr.DataArray:
    return _r(c.bridge["closing"], c.logos["closing"])


def _ltv(c: _Context) -> xr.DataArray:
    return _arpu(c) * c.gross_margin / c.logo_churn_12.where(c.logo_churn_12 > 0)


def _cac(c: _Context) -> xr.DataArray:
    cost = c.rolled_input(c.costs, "costs", "cost")
    cost, new = xr.align(cost, c.logos["new"], join="right")
    return _r(cost, new)


def _dso(c: _Context) -> xr.DataArray:
    f = c.finance
    receivables = retention.at_period(f["receivables"], c.period, "last")
    billed = retention.period_sum(f["billed"], c.period)
    return _r(receivables * c.days, billed)


def _backlog(c: _Context) -> xr.DataArray:
    if "backlog" not in c.finance:
        raise ParameterError("backlog needs subscription end dates (subscriptions.end_date).")
    # A cell whose backlog is unknown (a term without an end date) leaves every total holding
    # it unknown too: missing, never the sum of the cells that are known.
    unknown = retention._actuals(c.finance_cells["backlog"].isnull(), c.level).astype(float)
    unknown = rcube.rollup(unknown, c.dims, "month")
    return retention.at_period(c.finance["backlog"].where(unknown == 0), c.period, "last")


def _win_rate(c: _Context) -> xr.DataArray:
    return _r(c.sales["won"], c.sales["won"] + c.sales["lost"])


def _deal_size(c: _Context) -> xr.DataArray:
    return _r(c.sales["bookings"], c.sales["won"])


def _bookings(c: _Context) -> xr.DataArray:
    return c.sales["bookings"]


def _sales_cycle(c: _Context) -> xr.DataArray:
    s = retention.period_sum(c.finance[["cycle_days", "cycle_deals"]], c.period)
    return _r(s["cycle_days"], s["cycle_deals"])


def _pipeline_coverage(c: _Context) -> xr.DataArray:
    cube = c.level
    future = cube["month"] > retention.as_of_month(cube)
    pipe = rcube.rollup(cube["pipeline"].where(future, 0.0), c.dims, "month")
    pipe = retention.period_sum(pipe, c.period)
    n_future = retention.period_sum(future.astype(float), c.period)
    done = rcube.rollup(cube["bookings"], c.dims, "month").fillna(0.0)
    done = retention.period_sum(done, c.period)
    ahead = n_future[c.period].values[n_future.values > 0]
    pipe, target, done = xr.align(pipe.sel({c.period: ahead}), c.quota_by_period, done, join="left")
    return rpipeline.coverage_ratio(pipe, target, done)  # the one definition of coverage


def attainment(bookings: xr.DataArray | float, quota: xr.DataArray | float) -> xr.DataArray:
    """Quota attainment: bookings / quota, NaN where the quota is not positive.

    The one definition behind the ``quota_attainment`` KPI, also applied to an
    expected landing (bookings to date + forecast) by the apps.

    Parameters
    ----------
    bookings : xr.DataArray or float
        Bookings (or an expected landing) [currency].
    quota : xr.DataArray or float
        Quota of the same period [currency].

    Returns
    -------
    xr.DataArray
        [ratio]

    Examples
    --------
    >>> float(attainment(90.0, 100.0))
    0.9
    >>> float(attainment(90.0, 0.0))
    nan
    """
    num = bookings if isinstance(bookings, xr.DataArray) else xr.DataArray(float(bookings))
    den = quota if isinstance(quota, xr.DataArray) else xr.DataArray(float(quota))
    return _r(num, den)


def _attainment(c: _Context) -> xr.DataArray:
    bookings, quota = xr.align(c.sales["bookings"], c.quota_by_period, join="left")
    return attainment(bookings, quota)


def _revenue_kpis() -> list[KPI]:
    """ARR, bookings and the retention rates."""
    return [
        KPI(
            "arr",
            "Annual recurring revenue at the end of the period (last month with actuals).",
            f"{_CUR}/year",
            _arr,
        ),
        KPI("bookings", "Closed-won bookings in the period.", f"{_CUR}/period", _bookings),
        KPI(
            "churn_rate",
            "Churn rate (gross revenue churn, trailing 12 months to the period end): (contraction "
            "+ churned ARR) / ARR 12 months earlier, annualised over a shorter history (= 1 - GRR; "
            "retention.churn_rate, the rate the cube summary, plans, what-if and pack show).",
            "ratio/year",
            _churn_rate,
        ),
        KPI(
            "logo_churn_rate",
            "Logo churn: customers lost in the period / customers at its start (a count, not the "
            "churn rate).",
            "ratio/period",
            _logo_churn_rate,
            ("tables",),
        ),
        KPI(
            "renewal_rate",
            "Subscription terms ending in the period that were renewed (a term of the same account "
            "and product starting within 31 days of the end) / terms ending in the period.",
            "ratio",
            _renewal_rate,
            ("tables",),
        ),
        KPI(
            "nrr",
            "Net revenue retention, trailing 12 months to the period end: (ARR 12 months earlier + "
            "expansion - contraction - churn) / ARR 12 months earlier.",
            "ratio",
            _nrr,
        ),
        KPI(
            "grr",
            "Gross revenue retention, trailing 12 months to the period end: (ARR 12 months earlier - "
            "contraction - churn) / ARR 12 months earlier.",
            "ratio",
            _grr,
        ),
    ]


def _customer_kpis() -> list[KPI]:
    """Customers and what each is worth and costs."""
    return [
        KPI(
            "customers",
            "Accounts with ARR > 0 at the end of the period.",
            "customers",
            _customers,
            ("tables",),
        ),
        KPI(
            "arpu",
            "Average revenue per customer: ARR / customers, both at the end of the period.",
            f"{_CUR}/year per customer",
            _arpu,
            ("tables",),
        ),
        KPI(
            "ltv",
            "Customer lifetime value: ARPU x gross margin / annual customer churn (customers lost "
            "in the trailing 12 months / customers 12 months earlier); NaN without churn.",
            f"{_CUR} per customer",
            _ltv,
            ("tables",),
        ),
        KPI(
            "cac",
            "Customer acquisition cost: sales and marketing cost in the period / new customers won in it.",
            f"{_CUR} per customer",
            _cac,
            ("tables", "costs"),
        ),
    ]


def _finance_kpis() -> list[KPI]:
    """Receivables and contracted revenue."""
    return [
        KPI(
            "dso",
            "Days sales outstanding (period-end method): receivables at the period end / amount "
            "invoiced in the period x days in the period.",
            "days",
            _dso,
            ("invoices",),
        ),
        KPI(
            "backlog",
            "Contracted revenue not yet recognised: for every active subscription term at the "
            "period end, ARR x years left to its end date; missing where an active term has no "
            "end date (its remaining value is unknown).",
            _CUR,
            _backlog,
            ("tables",),
        ),
    ]


def _sales_kpis() -> list[KPI]:
    """Deals, pipeline and quota."""
    return [
        KPI(
            "win_rate",
            "Deals won / (deals won + deals lost), by close date in the period.",
            "ratio",
            _win_rate,
        ),
        KPI("average_deal_size", "Bookings / deals won in the period.", f"{_CUR}/deal", _deal_size),
        KPI(
            "sales_cycle",
            "Mean days from created date to close date of the deals won in the period.",
            "days",
            _sales_cycle,
            ("opportunities",),
        ),
        KPI(
            "pipeline_coverage",
            "Open pipeline expected to close in a period after as_of / (quota for it - bookings "
            "already won in it); for the periods ahead only.",
            "ratio",
            _pipeline_coverage,
            ("quota",),
        ),
        KPI(
            "quota_attainment",
            "Bookings in the period / quota for it.",
            "ratio",
            _attainment,
            ("quota",),
        ),
    ]


#: KPI name -> what a reader sees (the pack's KPI table, the apps' cards).
LABELS: dict[str, str] = {
    "arr": "ARR",
    "bookings": "Bookings",
    "churn_rate": "Churn rate (annual)",
    "logo_churn_rate": "Logo churn (in the period)",
    "renewal_rate": "Renewal rate",
    "nrr": "Net revenue retention",
    "grr": "Gross revenue retention",
    "customers": "Customers",
    "arpu": "ARR per customer",
    "ltv": "Customer lifetime value",
    "cac": "Customer acquisition cost",
    "dso": "DSO (days)",
    "backlog": "Backlog",
    "win_rate": "Win rate",
    "average_deal_size": "Average deal size",
    "sales_cycle": "Sales cycle (days)",
    "pipeline_coverage": "Pipeline coverage",
    "quota_attainment": "Quota attainment",
}


def _catalogue() -> dict[str, KPI]:
    """Every KPI by name, in the order :func:`describe` lists them, each with its label."""
    kpis = [*_revenue_kpis(), *_customer_kpis(), *_finance_kpis(), *_sales_kpis()]
    return {k.name: dataclasses.replace(k, label=LABELS[k.name]) for k in kpis}


def label(name: str) -> str:
    """What a reader sees for KPI ``name``; a name outside the catalogue, spaced.

    Parameters
    ----------
    name : str
        A KPI name (:data:`KPIS`) or any column name.

    Returns
    -------
    str

    Examples
    --------
    >>> label("sales_cycle"), label("quota_year")
    ('Sales cycle (days)', 'quota year')
    """
    k = KPIS.get(name)
    return k.label if k is not None else name.replace("_", " ")


#: The catalogue: KPI name -> :class:`KPI`.
KPIS: dict[str, KPI] = _catalogue()

_NEED_TEXT = {
    "tables": "tables={'subscriptions': ..., 'accounts': ...}",
    "invoices": "tables={'invoices': ...}",
    "opportunities": "tables={'opportunities': ...} with a created_date column",
    "costs": "costs= (sales and marketing cost by month)",
    "quota": "quota= (a quota DataArray)",
}


def describe() -> pd.DataFrame:
    """The catalogue as a table: ``name``, ``definition``, ``units``, ``needs``.

    Returns
    -------
    pd.DataFrame
        One row per KPI of :data:`KPIS`.

    Examples
    --------
    >>> table = describe().set_index("name")
    >>> len(table)
    18
    >>> table.loc[["win_rate", "nrr", "dso"], ["units", "needs"]]
               units     needs
    name
    win_rate   ratio
    nrr        ratio
    dso         days  invoices
    """
    return pd.DataFrame(
        [
            {
                "name": k.name,
                "definition": k.definition,
                "units": k.units,
                "needs": ", ".join(k.needs),
            }
            for k in KPIS.values()
        ]
    )


def compute(
    cube: xr.Dataset,
    names: Iterable[str] | None = None,
    dims: Iterable[str] = (),
    period: str = "fiscal_quarter",
    tables: Mapping[str, pd.DataFrame] | None = None,
    costs: pd.DataFrame | xr.DataArray | None = None,
    quota: pd.DataFrame | xr.DataArray | None = None,
    gross_margin: float = DEFAULT_GROSS_MARGIN,
) -> xr.Dataset:
    """Compute KPIs of the catalogue at a level of the hierarchy and a fiscal period.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube (numpy- or dask-backed).
    names : str or iterable of str, optional
        KPIs to compute; default every KPI whose inputs are given (the others are
        listed in ``attrs["skipped"]``).
    dims : str or iterable of str
        Levels to keep, as in :func:`revmodel.cube.rollup` (``segment``, ``region``,
        ``rep``, ``manager``, ...); empty for the company total.
    period : {"month", "fiscal_quarter", "fiscal_year"}
        Fiscal period.
    tables : mapping of str to pd.DataFrame, optional
        The canonical tables the cube was built from (subscriptions, accounts,
        invoices, opportunities with ``created_date``).
    costs : pd.DataFrame or xr.DataArray, optional
        Sales and marketing cost [USD]: a frame with ``month`` (or a ``period``
        column of labels), ``cost`` (or ``amount``) and optional level columns
        (``segment``, ``region``, ``rep``, ``manager``), or a DataArray with
        those dims. Needed for CAC.
    quota : pd.DataFrame or xr.DataArray, optional
        Quota [USD] by ``month`` (or ``period``) and levels, shaped like ``costs``
        (value column ``quota`` or ``amount``). Needed for coverage and attainment.
        An input by ``rep`` rolls up to ``manager`` and to the rep's own
        ``region`` and ``segment`` (``rep_region``, ``rep_segment``).
    gross_margin : float
        Gross margin used in LTV [ratio], default :data:`DEFAULT_GROSS_MARGIN`.

    Returns
    -------
    xr.Dataset
        One variable per KPI with dims (``*dims``, ``period``), ``units`` and
        ``long_name`` (the definition) attrs; periods are the union over KPIs.

    Raises
    ------
    ParameterError
        An unknown KPI (listing the catalogue), level or period.

    Examples
    --------
    Without tables, the KPIs that need them are skipped and listed:

    >>> k = compute(ds, period="fiscal_year")
    >>> list(k.data_vars)
    ['arr', 'bookings', 'churn_rate', 'nrr', 'grr', 'win_rate', 'average_deal_size']
    >>> k.attrs["skipped"].split(", ")[:3]
    ['logo_churn_rate', 'renewal_rate', 'customers']
    >>> compute(ds, ["customers", "renewal_rate", "sales_cycle", "dso"], period="fiscal_year",
    ...         tables=tables).to_dataframe().round(2)
                 customers  renewal_rate  sales_cycle    dso
    fiscal_year
    FY2025           446.0          0.89        73.95  61.01
    FY2026           590.0          0.87        72.79  61.58
    >>> compute(ds, "win_rate", dims="region", period="fiscal_year")["win_rate"].round(3).values
    array([[0.526, 0.554],
           [0.56 , 0.528]])
    >>> compute(ds, ["winrate"])
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: unknown KPI 'winrate'; known KPIs are arr, bookings, churn_rate, ...
    """
    rcube.expect_cube(cube, "kpi.compute")
    dims = rcube.levels(dims)
    retention._check_period(period)
    if not 0.0 < float(gross_margin) <= 1.0:
        raise ParameterError(f"gross_margin must be in (0, 1], got {gross_margin!r}.")
    ctx = _Context(cube, dims, period, tables, costs, quota, float(gross_margin))
    explicit = names is not None
    wanted = list(KPIS) if names is None else [names] if isinstance(names, str) else list(names)
    unknown = [n for n in wanted if n not in KPIS]
    if unknown:
        raise ParameterError(f"unknown KPI {unknown[0]!r}; known KPIs are {', '.join(KPIS)}.")
    # Checks the levels once, with the cube's own message (by populated cell or dense).
    first = cube.isel(month=slice(0, 1))
    rcube.rollup(first.drop_vars([v for v in first.data_vars if v != "bookings"]), dims, "month")

    out: dict[str, xr.DataArray] = {}
    skipped: list[str] = []
    for name in wanted:
        k = KPIS[name]
        missing = [n for n in k.needs if not ctx.available(n)]
        if missing:
            if explicit:
                raise ParameterError(f"KPI {name!r} needs {_NEED_TEXT[missing[0]]}.")
            skipped.append(name)
            continue
        try:
            da = k.function(ctx)
        except DataError:
            if explicit:
                raise
            skipped.append(name)
            continue
        units = k.units.replace("period", period)
        da = da.drop_vars([c for c in da.coords if c not in da.dims and c != "fiscal_year"])
        out[name] = da.rename(name).assign_attrs(units=units, long_name=k.definition)
    ds = xr.merge(list(out.values()), join="outer", compat="override") if out else xr.Dataset()
    for name, da in out.items():
        ds[name].attrs = dict(da.attrs)
    ds.attrs = {"period": period, "as_of": cube.attrs.get("as_of"), "skipped": ", ".join(skipped)}
    return ds


def cube_summary(cube: xr.Dataset) -> str:
    """The cube's summary (:func:`revmodel.cube.summary`) with its churn rate.

    The churn rate is :func:`revmodel.retention.churn_rate`, the one the what-if,
    the plan pack and Excel show.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube.

    Returns
    -------
    str
        The summary; "Churn rate: not provided" without subscriptions.

    Examples
    --------
    >>> print(cube_summary(ds))
    Revenue cube: 3 segments x 2 regions x 16 reps x 33 months (2024-11 to 2027-07; ...)
    ...
    ARR at 2026-10: 36,106,787 USD/year
    Open pipeline after 2026-10: 19,756,999 USD in 9 months
    Churn rate (gross revenue churn, last 12 months): 11.0%; churned ARR 1,357,079 and contraction 1,862,762 USD/year
    """
    text = rcube.summary(cube)
    if float(abs(retention._actuals(cube["arr"], cube)).sum()) <= 0:
        return text + "\nChurn rate: not provided (add the subscriptions table)"
    company = rcube.rollup(cube, (), "month")  # by populated cell or dense
    rate = float(retention.churn_rate(company))
    hist = retention.monthly_arr(company)
    k = min(12, hist.sizes["month"])
    tail = hist.isel(month=slice(-k, None))
    cur = cube.attrs.get("currency", config.CURRENCY)
    lost = float(tail["churned_arr"].sum())
    down = float(tail["contraction_arr"].sum())
    return text + (
        f"\nChurn rate (gross revenue churn, last {k} months): {rate:.1%}; "
        f"churned ARR {lost:,.0f} and contraction {down:,.0f} {cur}/year"
    )
