"""Customer retention: the ARR bridge, churn, GRR/NRR, renewals, cohorts, and churn to offset.

Two sources, two kinds of answer:

- **From the cube** (cells of ARR and its monthly movements): the ARR bridge
  ``opening + new + expansion - contraction - churn = closing``, revenue churn,
  gross and net revenue retention, and the plan-year growth that new business
  must deliver to offset expected churn. These work at any level of the
  hierarchy (``dims`` as in :func:`revmodel.cube.rollup`) and fiscal period.
- **From the subscriptions table** (accounts, not cells): customer (logo)
  counts and churn, renewal rates and cohorts by start quarter. The cube holds
  ARR per cell, so counting customers needs the accounts behind it.
  :func:`customer_measures` scatters account-level counts into the cube's cells
  with the cube's own attribution (an account sits in the segment and region
  of its ``accounts`` row and with its owner rep, else the rep on its latest
  term), so they roll up exactly like the cube.

Definitions
-----------
opening ARR of a period
    ARR at the end of the month before the period's first month. For the
    cube's first month it is derived as ``arr - (new + expansion - contraction
    - churn)``, since the movements of that month are known.
revenue churn rate [ratio/period]
    churned ARR in the period / opening ARR.
gross revenue churn rate [ratio/period]
    (churned + contraction ARR) / opening ARR; ``1 - GRR`` over twelve months.
GRR, NRR [ratio], trailing twelve months ending at the period's last month
    ``GRR = (opening_12 - contraction_12 - churn_12) / opening_12`` and
    ``NRR = (opening_12 + expansion_12 - contraction_12 - churn_12) / opening_12``
    with the movements summed over the twelve months and ``opening_12`` the ARR
    twelve months earlier. Computed from cells, movements of customers won
    inside the window count too (a cohort-exact figure needs accounts, see
    :func:`cohorts`).
customers, logo churn [customers]
    An account is a customer at a month end when its ARR is > 0. A customer is
    lost in a month when it was a customer at the previous month end and is
    not at this one; logo churn rate = customers lost in the period /
    customers at its opening. ``opening + new - lost = closing`` for customers.
renewal rate [ratio]
    Terms ending in the period (``end_date`` in it, up to ``as_of``) that were
    renewed / terms ending in the period. A term is renewed when another term
    of the same account (and product, when both carry one) starts within
    ``grace_days`` of its end. The ARR renewal rate weighs terms by their ARR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import xarray as xr
from scipy import sparse

from revmodel import calendar as fcal
from revmodel import config
from revmodel import cube as rcube
from revmodel.assumptions import Assumptions
from revmodel.cube import account_arr, account_cells, month_number
from revmodel.errors import DataError, ParameterError

__all__ = [
    "arr_bridge",
    "churn_rate",
    "cohorts",
    "growth_to_offset_churn",
    "grr",
    "logo_churn",
    "nrr",
    "renewal_rate",
    "retention_plan",
    "revenue_churn",
    "trailing_retention",
]

#: Monthly ARR movements of the cube, in bridge order; their sign in the bridge.
ARR_FLOWS: dict[str, int] = {
    "new_arr": 1,
    "expansion_arr": 1,
    "contraction_arr": -1,
    "churned_arr": -1,
}
#: Bridge names of the cube's ARR movements.
BRIDGE_NAMES: dict[str, str] = {
    "new_arr": "new",
    "expansion_arr": "expansion",
    "contraction_arr": "contraction",
    "churned_arr": "churn",
}
#: A renewal term may start this many days before or after the term it renews ends.
DEFAULT_GRACE_DAYS = 31
_CUR = config.CURRENCY


# --------------------------------------------------------------------------- helpers


def as_of_month(cube: xr.Dataset) -> np.datetime64:
    """The cube's last month with actuals [datetime64[ns]]."""
    if "as_of" not in cube.attrs:
        raise DataError("The cube has no as_of attribute: build it with revmodel.cube.build_cube.")
    return np.datetime64(pd.Timestamp(cube.attrs["as_of"]), "ns")


def _actuals(obj: xr.Dataset | xr.DataArray, cube: xr.Dataset) -> xr.Dataset | xr.DataArray:
    return obj.sel(month=slice(None, as_of_month(cube)))


def _check_period(period: str) -> str:
    if period not in rcube.PERIODS:
        raise ParameterError(f"unknown period {period!r}; use one of {', '.join(rcube.PERIODS)}.")
    return period


def at_period(
    obj: xr.Dataset | xr.DataArray, period: str, where: str = "last"
) -> xr.Dataset | xr.DataArray:
    """Pick the first or last month of every fiscal period (for stocks such as ARR).

    Parameters
    ----------
    obj : xr.Dataset or xr.DataArray
        With a ``month`` dim carrying ``fiscal_quarter(month)`` and ``fiscal_year(month)``.
    period : {"month", "fiscal_quarter", "fiscal_year"}
        Period of the result.
    where : {"first", "last"}
        Month of each period to keep.

    Returns
    -------
    Same type, ``month`` replaced by ``period`` (labels in time order); a
    quarter result carries ``fiscal_year(fiscal_quarter)`` like
    :func:`revmodel.calendar.rollup`.
    """
    _check_period(period)
    if period == "month":
        return obj
    labels = np.asarray(obj[period].values).astype(str)
    if labels.size == 0:
        idx = np.array([], dtype=int)
    elif where == "last":
        idx = np.flatnonzero(np.r_[labels[1:] != labels[:-1], True])
    else:
        idx = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    out = obj.isel(month=idx)
    out = out.drop_vars([c for c in out.coords if "month" in out[c].dims])
    out = out.rename({"month": period}).assign_coords({period: labels[idx]})
    if period == "fiscal_quarter":
        out = out.assign_coords(fiscal_year=(period, np.array([lab[:6] for lab in labels[idx]])))
    return out


def period_sum(obj: xr.Dataset | xr.DataArray, period: str) -> xr.Dataset | xr.DataArray:
    """Sum flows over fiscal periods (NaN skipped; an all-NaN period stays NaN)."""
    _check_period(period)
    return fcal.rollup(obj, period=period, how="sum")


def _ratio(num: xr.DataArray, den: xr.DataArray) -> xr.DataArray:
    """``num / den``, NaN where the denominator is not positive."""
    return (num / den.where(den > 0)).astype(float)


def _with(da: xr.DataArray, units: str, long_name: str) -> xr.DataArray:
    return da.assign_attrs(units=units, long_name=long_name)


def _months_count(obj: xr.Dataset | xr.DataArray, period: str) -> xr.DataArray:
    ones = xr.DataArray(np.ones(obj.sizes["month"]), dims="month", coords={"month": obj["month"]})
    for c in ("fiscal_quarter", "fiscal_year"):
        if c in obj.coords:
            ones = ones.assign_coords({c: ("month", np.asarray(obj[c].values))})
    return period_sum(ones, period)


# --------------------------------------------------------------------------- ARR bridge (cube)


def monthly_arr(cube: xr.Dataset, dims: Iterable[str] = ()) -> xr.Dataset:
    """ARR stocks and movements by month, actual months only, rolled up to ``dims``.

    Returns
    -------
    xr.Dataset
        ``opening`` (ARR at the previous month end), ``new_arr``, ``expansion_arr``,
        ``contraction_arr``, ``churned_arr`` and ``arr`` (closing) [USD/year], with
        ``dims`` and ``month``.
    """
    rcube.expect_cube(cube, "retention")
    missing = [v for v in ("arr", *ARR_FLOWS) if v not in cube]
    if missing:
        raise DataError(
            f"The cube has no {missing[0]!r} measure: build it with a subscriptions table "
            "to measure retention."
        )
    ds = rcube.rollup(
        _actuals(cube[["arr", *ARR_FLOWS]], cube), dims=rcube.levels(dims), period="month"
    )
    if ds.sizes["month"] == 0:
        raise DataError(f"The cube has no month up to as_of {cube.attrs['as_of']}.")
    net = sum(sign * ds[name] for name, sign in ARR_FLOWS.items())
    first = ds["month"] == ds["month"][0]
    opening = xr.where(first, ds["arr"] - net, ds["arr"].shift(month=1))
    return ds.assign(opening=opening.transpose(*ds["arr"].dims))


def arr_bridge(
    cube: xr.Dataset, dims: Iterable[str] = (), period: str = "fiscal_quarter"
) -> xr.Dataset:
    """The ARR bridge: opening + new + expansion - contraction - churn = closing.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube (numpy- or dask-backed).
    dims : str or iterable of str
        Levels to keep (``segment``, ``region``, ``rep``, ``manager``, ...), as in
        :func:`revmodel.cube.rollup`.
    period : {"month", "fiscal_quarter", "fiscal_year"}
        Fiscal period of each bridge; only months up to ``as_of`` count, so the
        period holding ``as_of`` may be partial (see the ``months`` coordinate).

    Returns
    -------
    xr.Dataset
        ``opening``, ``new``, ``expansion``, ``contraction``, ``churn``, ``closing``
        [USD/year] with ``dims`` and ``period``; ``closing - opening == new +
        expansion - contraction - churn`` to rounding.

    Examples
    --------
    >>> bridge = arr_bridge(ds, ("segment",), period="fiscal_year")
    >>> (bridge["closing"] / 1e6).round(2).to_pandas()
    fiscal_year  FY2025  FY2026
    segment
    SMB            7.83    9.98
    Mid-Market    11.18   14.06
    Enterprise    10.39   12.06
    >>> flows = bridge["new"] + bridge["expansion"] - bridge["contraction"] - bridge["churn"]
    >>> bool(abs(bridge["closing"] - bridge["opening"] - flows).max() < 1e-6)
    True
    """
    m = monthly_arr(cube, dims)
    flows = period_sum(m[list(ARR_FLOWS)], period)
    out = xr.Dataset(
        {
            "opening": at_period(m["opening"], period, "first"),
            **{BRIDGE_NAMES[k]: flows[k] for k in ARR_FLOWS},
            "closing": at_period(m["arr"], period, "last"),
        }
    )
    out = out.assign_coords(months=(period, _months_count(m, period).values.astype(int)))
    names = {
        "opening": "ARR at the start of the period",
        "new": "ARR from new customers",
        "expansion": "ARR added by existing customers",
        "contraction": "ARR reduced by continuing customers",
        "churn": "ARR lost from customers who left",
        "closing": "ARR at the end of the period",
    }
    for k, v in names.items():
        out[k].attrs = {"units": f"{cube.attrs.get('currency', _CUR)}/year", "long_name": v}
    return out.assign_attrs(period=period, as_of=cube.attrs.get("as_of"))


def revenue_churn(
    cube: xr.Dataset, dims: Iterable[str] = (), period: str = "fiscal_quarter", gross: bool = False
) -> xr.DataArray:
    """Revenue churn rate per period: churned (and with ``gross`` contraction) ARR / opening ARR.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube, with subscriptions.
    dims : str or iterable of str
        Levels, as in :func:`revmodel.cube.rollup`; empty for the company.
    period : {"month", "fiscal_quarter", "fiscal_year"}
        Fiscal period.
    gross : bool
        Count contraction as well as customers who left.

    Returns
    -------
    xr.DataArray
        By ``dims`` and period [1/period].

    Examples
    --------
    >>> revenue_churn(ds, period="fiscal_year").round(3).to_series()
    fiscal_year
    FY2025    0.044
    FY2026    0.046
    dtype: float64
    >>> revenue_churn(ds, period="fiscal_year", gross=True).round(3).to_series()
    fiscal_year
    FY2025    0.07
    FY2026    0.11
    dtype: float64
    """
    b = arr_bridge(cube, dims, period)
    lost = b["churn"] + b["contraction"] if gross else b["churn"]
    kind = "Gross revenue churn" if gross else "Revenue churn"
    return _with(_ratio(lost, b["opening"]), f"1/{period}", f"{kind} rate per {period}")


def trailing_retention(
    cube: xr.Dataset, dims: Iterable[str] = (), period: str = "month", months: int = 12
) -> xr.Dataset:
    """GRR and NRR over the trailing ``months`` ending at each period's last month.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube, with subscriptions.
    dims : str or iterable of str
        Levels, as in :func:`revmodel.cube.rollup`; empty for the company.
    period : {"month", "fiscal_quarter", "fiscal_year"}
        Fiscal period (its last month ends the window).
    months : int
        Window [months].

    Returns
    -------
    xr.Dataset
        ``grr`` and ``nrr`` [ratio], plus the numerators and the denominator
        ``opening_12`` [USD/year]; NaN until ``months`` months of history exist.

    Examples
    --------
    >>> trailing_retention(ds, period="fiscal_year")[["grr", "nrr"]].to_dataframe().round(3)
                  grr    nrr
    fiscal_year
    FY2025       0.93  1.048
    FY2026       0.89  0.989
    """
    m = monthly_arr(cube, dims)
    win = {k: m[k].rolling(month=months, min_periods=months).sum() for k in ARR_FLOWS}
    opening = m["opening"].shift(month=months - 1)
    retained = opening - win["contraction_arr"] - win["churned_arr"]
    net = retained + win["expansion_arr"]
    ds = xr.Dataset(
        {
            "opening_12": _with(opening, f"{_CUR}/year", f"ARR {months} months earlier"),
            "retained_12": _with(
                retained, f"{_CUR}/year", "Opening ARR less contraction and churn"
            ),
            "net_12": _with(
                net, f"{_CUR}/year", "Opening ARR plus expansion less contraction and churn"
            ),
            "grr": _with(
                _ratio(retained, opening), "1", f"Gross revenue retention, trailing {months} months"
            ),
            "nrr": _with(
                _ratio(net, opening), "1", f"Net revenue retention, trailing {months} months"
            ),
        }
    )
    return at_period(ds, _check_period(period), "last")


def grr(cube: xr.Dataset, dims: Iterable[str] = (), period: str = "month") -> xr.DataArray:
    """Gross revenue retention, trailing 12 months [ratio]: (opening - contraction - churn) / opening.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube, with subscriptions.
    dims : str or iterable of str
        Levels, as in :func:`revmodel.cube.rollup`; empty for the company.
    period : {"month", "fiscal_quarter", "fiscal_year"}
        Fiscal period (its last month ends the window).

    Returns
    -------
    xr.DataArray

    Examples
    --------
    >>> grr(ds, period="fiscal_year").round(3).to_series()
    fiscal_year
    FY2025    0.93
    FY2026    0.89
    Name: grr, dtype: float64
    """
    return trailing_retention(cube, dims, period)["grr"]


def nrr(cube: xr.Dataset, dims: Iterable[str] = (), period: str = "month") -> xr.DataArray:
    """Net revenue retention, trailing 12 months [ratio]: (opening + expansion - contraction - churn) / opening.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube, with subscriptions.
    dims : str or iterable of str
        Levels, as in :func:`revmodel.cube.rollup`; empty for the company.
    period : {"month", "fiscal_quarter", "fiscal_year"}
        Fiscal period (its last month ends the window).

    Returns
    -------
    xr.DataArray

    Examples
    --------
    >>> nrr(ds, ("region",), period="fiscal_year").sel(fiscal_year="FY2026").round(3).to_series()
    region
    North America East    1.002
    North America West    0.980
    Name: nrr, dtype: float64
    """
    return trailing_retention(cube, dims, period)["nrr"]


def _trailing_churn(m: xr.Dataset, months: int) -> xr.DataArray:
    """Annualised gross revenue churn over the trailing ``months`` ending at every month.

    A window shorter than ``months`` (the first months of history) is annualised:
    ``1 - (1 - rate) ** (12 / k)`` over its ``k`` months.
    """
    n = m.sizes["month"]
    k = np.minimum(np.arange(1, n + 1), int(months))
    lost_monthly = (m["contraction_arr"] + m["churned_arr"]).fillna(0.0)
    # Exact window sums (no running add-and-subtract rounding): the last one equals a plain sum.
    windows = lost_monthly.rolling(month=int(months), min_periods=1).construct("window")
    lost = windows.sum("window")
    index = xr.DataArray(np.arange(n), dims="month", coords={"month": m["month"]})
    opening = m["opening"].shift(month=int(months) - 1)
    opening = xr.where(index < int(months) - 1, m["opening"].isel(month=0), opening)
    rate = _ratio(lost, opening).clip(0.0, 1.0)
    span = xr.DataArray(k.astype(float), dims="month", coords={"month": m["month"]})
    return (1.0 - (1.0 - rate) ** (12.0 / span)).transpose(*m["arr"].dims)


def churn_rate(
    cube: xr.Dataset,
    dims: Iterable[str] = (),
    months: int = 12,
    history: xr.Dataset | None = None,
    period: str | None = None,
) -> xr.DataArray:
    """The churn rate: annual gross revenue churn measured on history [ratio/year].

    revmodel has one churn rate, and every surface (cube summary, what-if,
    plan pack, Excel, the KPI catalogue's ``churn_rate``) shows this one::

        churn rate = (contraction + churned ARR over the last 12 months up to as_of)
                     / ARR 12 months earlier  (= 1 - GRR)

    It counts contraction as well as customers who left because both are ARR
    the plan must replace to reach its target: it is the rate the ARR plan
    (:func:`retention_plan`) applies. With less than ``months`` months of
    history, the rate over the months there are is annualised:
    ``1 - (1 - rate) ** (12 / k)``. A cell without opening ARR takes the rate of
    the whole company.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube, with subscriptions (``arr`` and its movements).
    dims : str or iterable of str
        Levels, as in :func:`revmodel.cube.rollup`; empty for the company.
    months : int
        Trailing window [months].
    history : xr.Dataset, optional
        :func:`monthly_arr` at ``dims``, when already computed.
    period : {"month", "fiscal_quarter", "fiscal_year"}, optional
        Give the rate of the window ending at each period's last month with
        actuals (the KPI catalogue's ``churn_rate``); default: the window ending
        at ``as_of`` only.

    Returns
    -------
    xr.DataArray
        By ``dims`` (a scalar for the company), and ``period`` when given [1/year].

    Examples
    --------
    >>> f"{float(churn_rate(ds)):.1%}"
    '11.0%'
    >>> churn_rate(ds, ("region",)).round(3).to_series()
    region
    North America East    0.128
    North America West    0.095
    dtype: float64
    >>> churn_rate(ds, period="fiscal_year").round(3).to_series()
    fiscal_year
    FY2025    0.07
    FY2026    0.11
    dtype: float64
    """
    m = monthly_arr(cube, dims) if history is None else history
    rate = _trailing_churn(m, months)
    others = [d for d in m["arr"].dims if d != "month"]
    if others:
        rate = rate.fillna(_trailing_churn(m.sum(others), months))
    k = min(int(months), m.sizes["month"])
    if period is None:
        rate = rate.isel(month=-1, drop=True)
    else:
        rate = at_period(rate, _check_period(period), "last")
    rate = rate.drop_vars([c for c in rate.coords if c not in rate.dims])
    return _with(rate, "1/year", f"Gross revenue churn, last {k} months, annualised")


#: The former name of :func:`churn_rate`.
historical_churn_rate = churn_rate


def plan_churn_rate(
    cube: xr.Dataset,
    assumptions: Assumptions,
    dims: Iterable[str] = (),
    history: xr.Dataset | None = None,
) -> float | xr.DataArray:
    """The churn rate a plan uses: the assumed one, else :func:`churn_rate` of history.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube.
    assumptions : Assumptions
        ``churn_rate`` [ratio/year], None for "from history".
    dims : str or iterable of str
        Levels; empty for the company (a float).
    history : xr.Dataset, optional
        :func:`monthly_arr` at ``dims`` or at any finer levels (summed here).

    Returns
    -------
    float or xr.DataArray
        [1/year]

    Examples
    --------
    >>> plan_churn_rate(ds, Assumptions(churn_rate=0.08))  # doctest: +SKIP
    0.08
    """
    dims = rcube.levels(dims)
    if assumptions.churn_rate is not None:
        return float(assumptions.churn_rate)
    if history is not None:
        extra = [d for d in history["arr"].dims if d != "month" and d not in dims]
        history = history.sum(extra) if extra else history
    rate = churn_rate(cube, dims, history=history)
    return rate if dims else float(rate)


def _plan_months(cube: xr.Dataset, plan_year: str) -> pd.DatetimeIndex:
    found = fcal.parse_period(plan_year)
    if found.quarter is not None:
        raise ParameterError(f"plan_year must be a fiscal year like FY2027, got {plan_year!r}.")
    return fcal.quarter_months(
        plan_year,
        start_month=int(cube.attrs.get("fiscal_year_start", config.FISCAL_YEAR_START)),
        naming=cube.attrs.get("fiscal_year_naming", config.FISCAL_YEAR_NAMING),
    )


def _target_goal(
    start: xr.DataArray,
    assumptions: Assumptions,
    target: float | xr.DataArray | None,
    dims: tuple[str, ...],
) -> xr.DataArray:
    """The closing ARR target of every cell [currency/year]."""
    if target is None:
        goal = start * (1.0 + assumptions.target_growth)
    elif isinstance(target, xr.DataArray):
        extra = [d for d in target.dims if d not in start.dims]
        if extra:
            raise ParameterError(f"target has dim {extra[0]!r}, which is not in dims {list(dims)}.")
        goal = target.broadcast_like(start).astype(float)
    else:
        total = float(start.sum())
        if not np.isfinite(float(target)) or float(target) <= 0:
            raise ParameterError(f"target must be a positive ARR amount, got {target!r}.")
        if dims and total <= 0:
            raise ParameterError(
                "target: there is no opening ARR to spread a company target over cells; "
                "pass target as a DataArray by cell."
            )
        goal = start * (float(target) / total) if dims else xr.full_like(start, float(target))
    return goal


def _arr_path(
    start: xr.DataArray, goal: xr.DataArray, churn: xr.DataArray
) -> dict[str, np.ndarray]:
    """Month-by-month ARR path from ``start`` to ``goal``, churning at ``churn`` a year."""
    # The arithmetic runs on plain arrays (cells x steps): a what-if calls this on every change.
    churn = churn.broadcast_like(start).transpose(*start.dims)
    goal = goal.broadcast_like(start).transpose(*start.dims)
    s0 = start.values.astype(float)[..., None]
    g0 = goal.values.astype(float)[..., None]
    r = (1.0 - (1.0 - churn.values.astype(float)) ** (1.0 / 12.0))[..., None]
    k = np.arange(13, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        geometric = s0 * (g0 / np.where(s0 > 0, s0, np.nan)) ** (k / 12.0)
    path = np.where(s0 > 0, geometric, g0 * k / 12.0)
    prev, cur = path[..., :-1], path[..., 1:]
    expected = r * prev
    required = cur - prev + expected
    total_required = required.sum(axis=-1)
    start_v = s0[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.where(
            start_v != 0, total_required / np.where(start_v != 0, start_v, 1.0), np.nan
        )
    return {
        "prev": prev,
        "cur": cur,
        "expected": expected,
        "required": required,
        "total_required": total_required,
        "start": start_v,
        "goal": g0[..., 0],
        "churn": churn.values.astype(float),
        "growth": growth,
    }


def _plan_dataset(
    cube: xr.Dataset,
    start: xr.DataArray,
    months: pd.DatetimeIndex,
    opening_month: pd.Timestamp,
    arrays: dict[str, np.ndarray],
    company: float,
) -> xr.Dataset:
    """The ARR plan as a Dataset with units (see :func:`retention_plan`)."""
    prev, cur, expected, required = (arrays[k] for k in ("prev", "cur", "expected", "required"))
    total_required, start_v, growth = arrays["total_required"], arrays["start"], arrays["growth"]
    g0 = arrays["goal"][..., None]
    cell_dims = tuple(start.dims)
    month_dims = (*cell_dims, "month")
    cal = fcal.month_coords(
        months, int(cube.attrs["fiscal_year_start"]), cube.attrs["fiscal_year_naming"]
    )
    usd = f"{cube.attrs.get('currency', _CUR)}/year"
    out = xr.Dataset(
        {
            "opening_arr": (
                month_dims,
                prev,
                {"units": usd, "long_name": "ARR at the start of the month (target path)"},
            ),
            "required_new_arr": (
                month_dims,
                required,
                {"units": usd, "long_name": "New + expansion ARR needed in the month"},
            ),
            "expected_churn_arr": (
                month_dims,
                expected,
                {"units": usd, "long_name": "ARR expected to churn in the month"},
            ),
            "closing_arr": (
                month_dims,
                cur,
                {"units": usd, "long_name": "ARR at the end of the month (target path)"},
            ),
            "starting_arr": (
                cell_dims,
                start_v,
                {"units": usd, "long_name": f"ARR at the end of {opening_month:%Y-%m}"},
            ),
            "target_arr": (
                cell_dims,
                g0[..., 0],
                {"units": usd, "long_name": "Closing ARR target of the plan year"},
            ),
            "total_required_new_arr": (
                cell_dims,
                total_required,
                {"units": usd, "long_name": "New + expansion ARR needed in the plan year"},
            ),
            "total_expected_churn_arr": (
                cell_dims,
                expected.sum(axis=-1),
                {"units": usd, "long_name": "ARR expected to churn in the plan year"},
            ),
            "churn_rate": (
                cell_dims,
                arrays["churn"],
                {"units": "1/year", "long_name": "Annual gross revenue churn"},
            ),
            "company_churn_rate": (
                (),
                company,
                {"units": "1/year", "long_name": "Churn rate of the company (plan_churn_rate)"},
            ),
            "growth_needed": (
                cell_dims,
                growth,
                {"units": "1", "long_name": "New + expansion ARR needed / starting ARR"},
            ),
        },
        coords={
            **{d: start[d].values for d in cell_dims},
            "month": months.values.astype("datetime64[ns]"),
            **{k2: ("month", v) for k2, v in cal.items()},
        },
    )
    return out


def retention_plan(
    cube: xr.Dataset,
    assumptions: Assumptions,
    dims: Iterable[str] = (),
    target: float | xr.DataArray | None = None,
    history: xr.Dataset | None = None,
    historical_churn: xr.DataArray | None = None,
    company_churn: float | None = None,
) -> xr.Dataset:
    """The plan year's ARR path with expected churn, and the new ARR it needs.

    The ARR base at the start of the plan year churns at the monthly rate
    ``r = 1 - (1 - churn_rate) ** (1/12)``; ARR added during the year churns too.
    The closing ARR path grows geometrically from the opening ARR to the target
    (linearly when there is no opening ARR), so the new + expansion ARR needed in
    month ``k`` is ``T_k - (1 - r) * T_{k-1}`` and the bridge closes every month.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube.
    assumptions : Assumptions
        ``plan_year``; ``churn_rate`` [ratio/year] (None: measured by
        :func:`historical_churn_rate` at ``dims``); ``target_growth`` [ratio]
        sets the target when ``target`` is None.
    dims : str or iterable of str
        Levels to plan at, as in :func:`revmodel.cube.rollup`.
    target : float or xr.DataArray, optional
        Closing ARR target of the plan year [USD/year]. A number with ``dims`` is
        spread over the cells in proportion to their opening ARR. Default:
        opening ARR x (1 + ``target_growth``).
    history : xr.Dataset, optional
        :func:`monthly_arr` of the cube at ``dims``: pass it to evaluate many
        assumption sets on one cube without rolling it up again.
    historical_churn : xr.DataArray, optional
        :func:`historical_churn_rate` at ``dims``, used when ``churn_rate`` is
        None; pass it with ``history`` for the same reason.
    company_churn : float, optional
        :func:`plan_churn_rate` of the company from history, used when ``churn_rate`` is
        None; pass it with ``history`` for the same reason.

    Returns
    -------
    xr.Dataset
        By ``dims`` and the plan year's ``month``: ``opening_arr``,
        ``required_new_arr`` (new + expansion), ``expected_churn_arr``,
        ``closing_arr`` [USD/year]. By ``dims``: ``starting_arr``, ``target_arr``,
        ``total_required_new_arr``, ``total_expected_churn_arr`` [USD/year],
        ``churn_rate`` [ratio/year], ``growth_needed`` (total required / starting
        ARR) [ratio]; the scalar ``company_churn_rate`` (:func:`plan_churn_rate`).
        attrs ``plan_year``, ``opening_month``, ``churn_source``.

    Examples
    --------
    >>> plan = retention_plan(ds, Assumptions(plan_year="FY2027", target_growth=0.25))
    >>> plan.attrs["opening_month"], plan.attrs["churn_source"], plan.sizes["month"]
    ('2026-10-01', 'history', 12)
    >>> path = plan[["opening_arr", "required_new_arr", "expected_churn_arr", "closing_arr"]]
    >>> (path.isel(month=[0, -1]).reset_coords(drop=True).to_dataframe() / 1e6).round(2)
                opening_arr  required_new_arr  expected_churn_arr  closing_arr
    month
    2026-11-01        36.11              1.02                0.35        36.78
    2027-10-01        44.30              1.26                0.43        45.13
    """
    dims = rcube.levels(dims)
    months = _plan_months(cube, assumptions.plan_year)
    m = monthly_arr(cube, dims) if history is None else history
    hist = pd.DatetimeIndex(m["month"].values)
    opening_month = min(months[0] - pd.DateOffset(months=1), hist[-1])
    if opening_month < hist[0]:
        raise ParameterError(
            f"plan_year {assumptions.plan_year} starts before the cube's first month "
            f"{hist[0]:%Y-%m}: plan a later year."
        )
    start = m["arr"].sel(month=np.datetime64(opening_month, "ns"), drop=True)
    start = start.drop_vars([c for c in start.coords if c not in start.dims])

    company = (
        company_churn
        if company_churn is not None and assumptions.churn_rate is None
        else plan_churn_rate(cube, assumptions, history=m)
    )
    if assumptions.churn_rate is not None:
        churn = xr.full_like(start, float(assumptions.churn_rate))
        source = "assumptions"
    else:
        churn = (
            historical_churn
            if historical_churn is not None
            else historical_churn_rate(cube, dims, history=m)
        )
        source = "history"

    goal = _target_goal(start, assumptions, target, dims)
    arrays = _arr_path(start, goal, churn)
    out = _plan_dataset(cube, start, months, opening_month, arrays, company)
    return out.assign_attrs(
        plan_year=assumptions.plan_year,
        opening_month=f"{opening_month:%Y-%m-%d}",
        churn_source=source,
        scenario=assumptions.name,
    )


def growth_to_offset_churn(
    cube: xr.Dataset,
    assumptions: Assumptions,
    target: float | xr.DataArray | None = None,
    dims: Iterable[str] = (),
    history: xr.Dataset | None = None,
) -> xr.Dataset:
    """The new + expansion ARR the plan year needs to reach ``target`` despite expected churn.

    The yearly summary of :func:`retention_plan`: ``starting_arr``, ``target_arr``,
    ``net_growth`` (target - starting), ``total_expected_churn_arr`` (ARR new
    business must replace), ``total_required_new_arr`` (= net growth + expected
    churn) [USD/year], ``churn_rate`` [ratio/year] and ``growth_needed`` [ratio].

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube, with subscriptions.
    assumptions : Assumptions
        ``plan_year``, ``target_growth`` and ``churn_rate`` (None: from history).
    target : float or xr.DataArray, optional
        Closing ARR target [USD/year]; starting ARR x (1 + ``target_growth``) by default.
    dims : str or iterable of str
        Levels to plan at.
    history : xr.Dataset, optional
        Monthly ARR at ``dims``, when already computed.

    Returns
    -------
    xr.Dataset

    Examples
    --------
    >>> g = growth_to_offset_churn(ds, Assumptions(plan_year="FY2027", target_growth=0.25))
    >>> {k: round(float(v) / 1e6, 2) for k, v in g.data_vars.items() if k.endswith(("arr", "growth"))}
    {'starting_arr': 36.11, 'target_arr': 45.13, 'total_expected_churn_arr': 4.63, 'total_required_new_arr': 13.65, 'net_growth': 9.03}
    >>> round(float(g["growth_needed"]), 3)
    0.378
    """
    plan = retention_plan(cube, assumptions, dims=dims, target=target, history=history)
    out = plan[
        [
            "starting_arr",
            "target_arr",
            "total_expected_churn_arr",
            "total_required_new_arr",
            "churn_rate",
            "growth_needed",
        ]
    ].drop_vars(["month", "fiscal_quarter", "fiscal_year"], errors="ignore")
    net = out["target_arr"] - out["starting_arr"]
    return out.assign(net_growth=_with(net, f"{_CUR}/year", "Closing ARR target less starting ARR"))


# --------------------------------------------------------------------------- accounts (tables)


def _month_index_number(months: pd.DatetimeIndex) -> np.ndarray:
    return month_number(months).astype(np.int64)


def _subscriptions(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    subs = tables.get("subscriptions")
    if subs is None or subs.empty:
        raise DataError(
            "No subscriptions table: customer counts, logo churn, renewals and cohorts "
            "need subscriptions.csv."
        )
    for col in ("account_id", "start_date", "arr"):
        if col not in subs.columns:
            raise DataError(f"subscriptions: missing column {col!r}.")
    return subs.reset_index(drop=True)


def series_dims(cube: xr.Dataset) -> tuple[str, ...]:
    """The series dims (segment, region, rep) the cube has: all of them, or those a roll-up kept."""
    return tuple(d for d in rcube.SERIES_DIMS if d in cube.dims)


def series_members(cube: xr.Dataset) -> dict[str, np.ndarray]:
    """The members of every series dim of the cube (a cube rolled up keeps them elsewhere)."""
    return {d: np.asarray(cube[d].values) for d in rcube.SERIES_DIMS}


def cell_codes(
    cube: xr.Dataset, cells: pd.DataFrame, members: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """Flat index of each row of ``cells`` over the cube's series dims; -1 where not in the cube.

    ``cells`` names a segment, region and rep per row; a row is in the cube when all
    three are among ``members`` (default the cube's own: :func:`series_members`). The
    index runs over the series dims the cube has (:func:`series_dims`): a cube rolled
    up to regions puts every row of a region in one place.
    """
    members = series_members(cube) if members is None else members
    codes = {
        d: pd.Index(np.asarray(members[d]).astype(str)).get_indexer(cells[d].astype(str).to_numpy())
        for d in rcube.SERIES_DIMS
    }
    dims = series_dims(cube)
    shape = tuple(cube.sizes[d] for d in dims)
    ok = np.all([c >= 0 for c in codes.values()], axis=0)
    flat = np.full(len(cells), -1, dtype=np.int64)
    if ok.any():
        flat[ok] = np.ravel_multi_index(tuple(codes[d][ok] for d in dims), shape) if dims else 0
    return flat


def scatter_cells(cube: xr.Dataset, flat: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum row x month ``values`` into a (series dims, month) array at cells ``flat``."""
    shape = tuple(cube.sizes[d] for d in series_dims(cube))
    n_cells = int(np.prod(shape))
    ok = flat >= 0
    rows = np.flatnonzero(ok)
    op = sparse.csr_matrix((np.ones(len(rows)), (flat[ok], rows)), shape=(n_cells, values.shape[0]))
    return np.asarray(op @ values).reshape(*shape, values.shape[1])


def cube_like(cube: xr.Dataset, data: Mapping[str, tuple[np.ndarray, str, str]]) -> xr.Dataset:
    """A numpy-backed Dataset on the cube's dims and coords; months after ``as_of`` NaN."""
    future = pd.DatetimeIndex(cube["month"].values) > pd.Timestamp(as_of_month(cube))
    dims = (*series_dims(cube), "month")
    coords = {k: v.variable for k, v in cube.coords.items() if set(v.dims) <= set(dims)}
    out = {}
    for name, (values, units, long_name) in data.items():
        values = np.array(values, dtype=float)
        values[..., future] = np.nan
        out[name] = (dims, values, {"units": units, "long_name": long_name})
    return xr.Dataset(out, coords=coords, attrs=dict(cube.attrs))


def _account_levels(
    cube: xr.Dataset, subs: pd.DataFrame
) -> tuple[pd.Index, np.ndarray, int, pd.DatetimeIndex]:
    """Account ARR on a month axis from the first term (or cube month) to the cube's last month."""
    months = pd.DatetimeIndex(cube["month"].values)
    first = pd.to_datetime(subs["start_date"]).min()
    first = months[0] if pd.isna(first) else min(first.to_period("M").to_timestamp(), months[0])
    axis = pd.date_range(first, months[-1], freq="MS")
    accounts, level = account_arr(subs, axis)
    return accounts, level, int(axis.get_loc(months[0])), axis


def _renewals(subs: pd.DataFrame, grace_days: int) -> pd.Series:
    """Whether each term with an end date was renewed (bool, indexed like ``subs``)."""
    if "end_date" not in subs.columns:
        return pd.Series(False, index=subs.index)
    by = ["_acct"] + (["_prod"] if "product" in subs.columns else [])
    frame = subs.assign(
        _acct=subs["account_id"].astype("string").fillna(""),
        _start=pd.to_datetime(subs["start_date"]).astype("datetime64[ns]"),
        _end=pd.to_datetime(subs["end_date"]).astype("datetime64[ns]"),
        _row=np.arange(len(subs)),
    )
    if "product" in subs.columns:
        frame["_prod"] = subs["product"].astype("string").fillna("")
    ending = frame[frame["_end"].notna()].copy()
    if ending.empty:
        return pd.Series(False, index=subs.index)
    grace = pd.Timedelta(days=int(grace_days))
    ending["_from"] = ending["_end"] - grace
    starts = frame[frame["_start"].notna()][[*by, "_start", "_row"]].rename(
        columns={"_row": "_next"}
    )
    found = pd.merge_asof(
        ending.sort_values("_from")[[*by, "_from", "_end", "_row"]],
        starts.sort_values("_start"),
        left_on="_from",
        right_on="_start",
        by=by,
        direction="forward",
    )
    ok = found["_start"].notna() & (found["_start"] <= found["_end"] + grace)
    ok &= found["_next"] != found["_row"]
    renewed = np.zeros(len(subs), dtype=bool)
    renewed[found.loc[ok, "_row"].to_numpy(dtype=np.int64)] = True
    return pd.Series(renewed, index=subs.index)


def customer_measures(
    cube: xr.Dataset,
    tables: Mapping[str, pd.DataFrame],
    grace_days: int = DEFAULT_GRACE_DAYS,
    members: Mapping[str, np.ndarray] | None = None,
) -> xr.Dataset:
    """Customer counts and renewals by cube cell and month, from the subscriptions table.

    Parameters
    ----------
    cube : xr.Dataset
        The cube built from the same tables (its cells and months are used).
    tables : mapping of str to pd.DataFrame
        Canonical tables; ``subscriptions`` required, ``accounts`` for attribution.
    grace_days : int
        A renewal term may start up to this many days before or after the end of
        the term it renews [days].
    members : mapping, optional
        The members of every series dim (:func:`series_members`) of the cube ``cube``
        was rolled up from, when it keeps only some of them: the measures come by the
        dims it kept.

    Returns
    -------
    xr.Dataset
        On the cube's dims and coords (NaN after ``as_of``): ``customers``
        [customers] at month end, ``new_customers``, ``churned_customers``
        [customers/month], ``renewals_due``, ``renewals_won`` [terms/month] (terms
        ending in the month), ``renewal_arr_due``, ``renewal_arr_won``
        [USD/year per month]. attrs ``unattributed_accounts``: accounts whose cell
        is not in the cube (left out).
    """
    subs = _subscriptions(tables)
    accounts, level, offset, axis = _account_levels(cube, subs)
    n = cube.sizes["month"]
    active = (level > 0).astype(float)
    prev = np.concatenate([np.zeros((level.shape[0], 1)), active[:, :-1]], axis=1)
    new = ((prev == 0) & (active == 1)).astype(float)
    lost = ((prev == 1) & (active == 0)).astype(float)
    window = slice(offset, offset + n)
    cells = account_cells(tables, accounts)
    flat = cell_codes(cube, cells, members)

    # Renewals, by the account's cell and the month the term ends.
    renewed = _renewals(subs, grace_days).to_numpy()
    end_m = (
        month_number(subs["end_date"]) if "end_date" in subs.columns else np.full(len(subs), np.nan)
    )
    first = int(_month_index_number(axis[:1])[0]) + offset
    col = end_m - first
    in_cube = ~np.isnan(col) & (col >= 0) & (col < n)
    a_idx = accounts.get_indexer(subs["account_id"].astype("string").to_numpy())
    term_flat = flat[a_idx]
    arr = subs["arr"].to_numpy(dtype=float)

    def by_term(weights: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(in_cube)
        mat = sparse.csr_matrix(
            (weights[rows], (rows, col[rows].astype(np.int64))), shape=(len(subs), n)
        ).toarray()
        return scatter_cells(cube, term_flat, mat)

    ones = np.ones(len(subs))
    data = {
        "customers": (
            scatter_cells(cube, flat, active[:, window]),
            "customers",
            "Customers at month end",
        ),
        "new_customers": (
            scatter_cells(cube, flat, new[:, window]),
            "customers/month",
            "Customers won in the month",
        ),
        "churned_customers": (
            scatter_cells(cube, flat, lost[:, window]),
            "customers/month",
            "Customers lost in the month",
        ),
        "renewals_due": (by_term(ones), "terms/month", "Subscription terms ending in the month"),
        "renewals_won": (
            by_term(renewed.astype(float)),
            "terms/month",
            "Terms ending in the month that were renewed",
        ),
        "renewal_arr_due": (by_term(arr), f"{_CUR}/year", "ARR of terms ending in the month"),
        "renewal_arr_won": (
            by_term(arr * renewed),
            f"{_CUR}/year",
            "ARR of renewed terms ending in the month",
        ),
    }
    out = cube_like(cube, data)
    return out.assign_attrs(unattributed_accounts=int((flat < 0).sum()))


def _customer_monthly(cube: xr.Dataset, measures: xr.Dataset, dims: Iterable[str]) -> xr.Dataset:
    ds = rcube.rollup(_actuals(measures, cube), dims=rcube.levels(dims), period="month")
    first = ds["month"] == ds["month"][0]
    derived = ds["customers"] - ds["new_customers"] + ds["churned_customers"]
    opening = xr.where(first, derived, ds["customers"].shift(month=1))
    return ds.assign(opening_customers=opening.transpose(*ds["customers"].dims))


def logo_churn(
    cube: xr.Dataset,
    tables: Mapping[str, pd.DataFrame] | None = None,
    dims: Iterable[str] = (),
    period: str = "fiscal_quarter",
    measures: xr.Dataset | None = None,
) -> xr.Dataset:
    """Customer (logo) bridge and churn rate per period.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube (for its cells, calendar and ``as_of``).
    tables : mapping of str to DataFrame, optional
        The canonical tables (``subscriptions``, ``accounts``).
    dims : str or iterable of str
        Levels, as in :func:`revmodel.cube.rollup`; empty for the company.
    period : {"month", "fiscal_quarter", "fiscal_year"}
        Fiscal period.
    measures : xr.Dataset, optional
        :func:`customer_measures` of the cube, instead of ``tables``.

    Returns
    -------
    xr.Dataset
        ``opening``, ``new``, ``lost``, ``closing`` [customers] and
        ``logo_churn_rate`` = lost / opening [1/period], by ``dims`` and ``period``.

    Examples
    --------
    >>> logo_churn(ds, tables, period="fiscal_year").to_dataframe().round(3)
                 opening    new  lost  closing  logo_churn_rate
    fiscal_year
    FY2025         318.0  160.0  32.0    446.0            0.101
    FY2026         446.0  197.0  53.0    590.0            0.119
    """
    if measures is None:
        if tables is None:
            raise ParameterError(
                "logo_churn needs the tables (subscriptions) or customer measures."
            )
        measures = customer_measures(cube, tables)
    m = _customer_monthly(cube, measures, dims)
    flows = period_sum(m[["new_customers", "churned_customers"]], period)
    out = xr.Dataset(
        {
            "opening": _with(
                at_period(m["opening_customers"], period, "first"),
                "customers",
                "Customers at the start",
            ),
            "new": _with(flows["new_customers"], "customers", "Customers won"),
            "lost": _with(flows["churned_customers"], "customers", "Customers lost"),
            "closing": _with(
                at_period(m["customers"], period, "last"), "customers", "Customers at the end"
            ),
        }
    )
    rate = _ratio(out["lost"], out["opening"])
    return out.assign(
        logo_churn_rate=_with(
            rate, f"1/{period}", f"Customers lost / customers at the start, per {period}"
        )
    )


def renewal_rate(
    cube: xr.Dataset,
    tables: Mapping[str, pd.DataFrame] | None = None,
    dims: Iterable[str] = (),
    period: str = "fiscal_quarter",
    measures: xr.Dataset | None = None,
) -> xr.Dataset:
    """Renewal rates per period: terms ending in the period that were renewed.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube (for its cells, calendar and ``as_of``).
    tables : mapping of str to DataFrame, optional
        The canonical tables (``subscriptions``, ``accounts``).
    dims : str or iterable of str
        Levels, as in :func:`revmodel.cube.rollup`; empty for the company.
    period : {"month", "fiscal_quarter", "fiscal_year"}
        Fiscal period.
    measures : xr.Dataset, optional
        :func:`customer_measures` of the cube, instead of ``tables``.

    Returns
    -------
    xr.Dataset
        ``due``, ``renewed`` [terms], ``renewal_rate`` (renewed / due) [ratio] and
        ``arr_renewal_rate`` (renewed ARR / ARR due) [ratio], by ``dims`` and ``period``.

    Examples
    --------
    >>> renewal_rate(ds, tables, period="fiscal_year").to_dataframe().round(3)
                   due  renewed  renewal_rate  arr_renewal_rate
    fiscal_year
    FY2025       513.0    458.0         0.893             0.939
    FY2026       737.0    640.0         0.868             0.900
    """
    if measures is None:
        if tables is None:
            raise ParameterError(
                "renewal_rate needs the tables (subscriptions) or customer measures."
            )
        measures = customer_measures(cube, tables)
    names = ["renewals_due", "renewals_won", "renewal_arr_due", "renewal_arr_won"]
    ds = period_sum(
        rcube.rollup(_actuals(measures[names], cube), dims=rcube.levels(dims), period="month"),
        period,
    )
    return xr.Dataset(
        {
            "due": _with(ds["renewals_due"], "terms", "Terms ending in the period"),
            "renewed": _with(
                ds["renewals_won"], "terms", "Terms ending in the period that were renewed"
            ),
            "renewal_rate": _with(
                _ratio(ds["renewals_won"], ds["renewals_due"]), "1", "Renewed terms / terms due"
            ),
            "arr_renewal_rate": _with(
                _ratio(ds["renewal_arr_won"], ds["renewal_arr_due"]), "1", "Renewed ARR / ARR due"
            ),
        }
    )


def customer_table(cube: xr.Dataset, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per customer account, as of the cube's ``as_of``.

    Returns
    -------
    pd.DataFrame
        Indexed by ``account_id``: ``segment``, ``region``, ``rep`` (its cube
        cell), ``first_month`` (first month with ARR), ``cohort`` (fiscal quarter
        of ``first_month``), ``last_month`` (last month with ARR up to as_of),
        ``arr`` (at as_of) [USD/year], ``peak_arr`` [USD/year], ``active`` (bool).
    """
    subs = _subscriptions(tables)
    accounts, level, offset, axis = _account_levels(cube, subs)
    upto = int(axis.get_indexer([pd.Timestamp(as_of_month(cube))])[0]) + 1
    level = level[:, :upto]
    has = level > 0
    any_arr = has.any(axis=1)
    first = np.where(any_arr, has.argmax(axis=1), 0)
    last = np.where(any_arr, upto - 1 - has[:, ::-1].argmax(axis=1), 0)
    first_month = pd.DatetimeIndex(axis[first]).where(any_arr)
    cohort = fcal.quarter_label(
        axis[first], int(cube.attrs["fiscal_year_start"]), cube.attrs["fiscal_year_naming"]
    )
    out = account_cells(tables, accounts).assign(
        first_month=first_month,
        cohort=pd.Series(cohort, index=accounts).where(any_arr).to_numpy(),
        last_month=pd.DatetimeIndex(axis[last]).where(any_arr),
        arr=level[:, -1],
        peak_arr=level.max(axis=1),
        active=level[:, -1] > 0,
    )
    return out[any_arr]


def cohorts(
    cube: xr.Dataset,
    tables: Mapping[str, pd.DataFrame],
    dims: Iterable[str] = (),
    max_months: int | None = None,
) -> xr.Dataset:
    """ARR and logo retention of customer cohorts by start fiscal quarter.

    A customer's cohort is the fiscal quarter of its first month with ARR; its
    month 0 is that month. Retention at month ``k`` is the cohort's ARR ``k``
    months after each customer's start over its ARR at start (NRR-like, with
    expansion); logo retention the share of its customers still active.

    Parameters
    ----------
    cube, tables
        The cube (for as_of and the calendar) and the canonical tables.
    dims : str or iterable of str
        Any of ``segment``, ``region``, ``rep`` to split cohorts by.
    max_months : int, optional
        Longest months-since-start kept [months].

    Returns
    -------
    xr.Dataset
        dims (``*dims``, ``cohort``, ``months_since_start``): ``arr`` [USD/year],
        ``customers`` [customers], ``arr_retention``, ``logo_retention`` [ratio];
        NaN where the month is after ``as_of``.

    Examples
    --------
    >>> c = cohorts(ds, tables, max_months=12)
    >>> c["logo_retention"].sel(cohort="FY2025-Q1", months_since_start=[0, 6, 12]).round(2).values
    array([1.  , 1.  , 0.88])
    >>> c["arr_retention"].sel(months_since_start=12).round(2).to_series().head(3)
    cohort
    FY2024-Q1    1.96
    FY2024-Q2    1.60
    FY2024-Q3    1.42
    Name: arr_retention, dtype: float64
    """
    dims = list(rcube.levels(dims))
    bad = [d for d in dims if d not in rcube.SERIES_DIMS]
    if bad:
        raise ParameterError(
            f"cohorts: unknown level {bad[0]!r}; use any of {', '.join(rcube.SERIES_DIMS)}."
        )
    subs = _subscriptions(tables)
    accounts, level, offset, axis = _account_levels(cube, subs)
    upto = int(axis.get_indexer([pd.Timestamp(as_of_month(cube))])[0]) + 1
    level = level[:, :upto]
    has = level > 0
    keep = has.any(axis=1)
    level, has = level[keep], has[keep]
    first = has.argmax(axis=1)
    n_k = int(upto - first.min()) if len(first) else 0
    if max_months is not None:
        n_k = min(n_k, int(max_months) + 1)
    k = np.arange(n_k)
    idx = first[:, None] + k[None, :]
    valid = idx < upto
    idx = np.minimum(idx, upto - 1)
    rows = np.arange(level.shape[0])[:, None]
    arr_k = np.where(valid, level[rows, idx], np.nan)
    cust_k = np.where(valid, has[rows, idx].astype(float), np.nan)
    cells = account_cells(tables, accounts[keep])
    cohort = fcal.quarter_label(
        axis[first], int(cube.attrs["fiscal_year_start"]), cube.attrs["fiscal_year_naming"]
    )
    keys = [cells[d].to_numpy() for d in dims] + [cohort]
    names = [*dims, "cohort"]
    index = pd.MultiIndex.from_arrays(keys, names=names)

    def grouped(mat: np.ndarray) -> xr.DataArray:
        frame = pd.DataFrame(mat, index=index, columns=pd.Index(k, name="months_since_start"))
        # min_count=1: months no customer of the cohort has reached yet stay NaN.
        return _to_da(frame.groupby(level=names).sum(min_count=1), names)

    # Ratios compare each month with the start of the customers that reached it.
    base_arr = grouped(np.where(valid, arr_k[:, :1], np.nan))
    base_cust = grouped(np.where(valid, cust_k[:, :1], np.nan))
    out = xr.Dataset(
        {
            "arr": _with(grouped(arr_k), f"{_CUR}/year", "Cohort ARR k months after start"),
            "customers": _with(
                grouped(cust_k), "customers", "Cohort customers active k months after start"
            ),
        }
    )
    out["arr_retention"] = _with(_ratio(out["arr"], base_arr), "1", "Cohort ARR / its ARR at start")
    out["logo_retention"] = _with(
        _ratio(out["customers"], base_cust), "1", "Active customers / customers at start"
    )
    return out


def _to_da(frame: pd.DataFrame, names: list[str]) -> xr.DataArray:
    """A (groups x months_since_start) frame as a DataArray with one dim per group level."""
    series = frame.stack(future_stack=True)
    return xr.DataArray.from_series(series).transpose(*names, "months_since_start")
