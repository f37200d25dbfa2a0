"""Sales capacity: headcount, hires, ramp, attrition and backfills -> productive capacity.

A plan is computed per **seat**: every rep of the cube who is employed at some
point of the plan, plus one seat per planned hire. Planned hires become rep
members named ``TBH-<segment>-<region>-<YYYY-MM>-<n>`` (to be hired), one per
head, so that the quota module can give each planned head its own ramp-adjusted
quota and the hierarchy (region, segment, manager) stays a grouping of reps.
The price is a few more members on ``rep``; a separate (segment, region, month)
array would be smaller but would lose quotas per head.

Arithmetic, per seat and month (months are whole: a rep hired on any day of a
month starts that month; a rep with an ``end_date`` works through that month):

- **Ramp.** Productivity by month of tenure follows :func:`ramp_curve`:
  tenure month ``k = 1, 2, ...`` (``k = 1`` is the hire month) gives
  ``min(k / n, 1)`` for a linear ramp of ``n`` months, so a 3-month ramp is
  1/3, 2/3, 1, 1, ... A rep whose hire date is unknown counts as fully ramped.
  A rep's own ``ramp_months`` (reps table) is used when known; planned hires,
  backfills and reps without one use ``assumptions.ramp_months`` for their segment.
- **Attrition.** An annual rate ``a`` (by segment) is a constant monthly
  hazard ``h = 1 - (1 - a) ** (1 / 12)``, so the chance that a rep employed
  at ``as_of`` is still there ``k`` months later is ``(1 - a) ** (k / 12)``.
  Attrition acts only after ``as_of`` (before it, the data says who stayed).
  A rep with an ``end_date`` leaves after that month for certain.
- **Backfill.** The expected leavers of a month (attrition plus known leavers,
  only after ``as_of``) are replaced ``backfill_lag_months`` later by a new
  hire of the seat's segment who ramps from zero and is subject to attrition
  in turn (whose leavers are backfilled too). Backfills are expected values,
  hence fractional; they stay on the seat they refill.
- **Capacity.** ``ramped_fte`` (ramped rep equivalents) is the expected
  headcount weighted by ramp; ``capacity = ramped_fte * productivity / 12``
  with ``productivity`` the annual bookings of a fully ramped rep of the
  segment [currency/year], from :func:`productivity_from_history` unless the
  assumptions set it, times ``1 + productivity_change``.

The cube-derived inputs (history, seasonality, who manages whom) are gathered
once by :func:`plan_inputs`; every planning function accepts either a cube or
that small Dataset, so a what-if recomputes from the inputs in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from revmodel import calendar as fcal
from revmodel import config
from revmodel.assumptions import (
    DEFAULT_RAMP_MONTHS,
    Assumptions,
    Hire,
    check_segments,
    settle_plan_year,
)
from revmodel.errors import DataError, InfeasibleError, ParameterError

__all__ = [
    "DEFAULT_RAMP_CURVES",
    "RAMP_SHAPES",
    "as_hires",
    "capacity_gap",
    "capacity_plan",
    "headcount",
    "hires_needed",
    "plan_inputs",
    "plan_months",
    "productivity_from_history",
    "ramp_curve",
]

#: Shapes of a ramp curve over ``n`` months, with ``x = k / n`` at tenure month ``k``:
#: ``linear`` x, ``s-curve`` 3x^2 - 2x^3 (slow start and finish), ``step`` 0 until month n.
RAMP_SHAPES: tuple[str, ...] = ("linear", "s-curve", "step")

#: Prefix of planned-hire rep ids.
TBH_PREFIX = "TBH"

#: Fewest ramped rep-months in the history window for a rep's own run rate to count.
MIN_RAMPED_MONTHS = 3.0

_KIND = "plan_inputs"
_CUR = config.CURRENCY


def _fallback(table: Mapping[str, float]) -> float:
    """Value for a segment missing from a per-segment table: the mean of the table."""
    values = [float(v) for v in table.values()]
    return float(np.mean(values)) if values else 0.0


# --------------------------------------------------------------------------- ramp


def _ramp_factor(tenure: np.ndarray, months_to_full: np.ndarray, shape: str) -> np.ndarray:
    """Productivity [ratio] at 0-based ``tenure`` months (negative: not yet hired) for ramps of
    ``months_to_full`` months (broadcast together)."""
    n = np.asarray(months_to_full, dtype=float)
    k = np.asarray(tenure, dtype=float) + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.clip(np.where(n > 0, k / np.where(n > 0, n, 1.0), 1.0), 0.0, 1.0)
    if shape == "linear":
        out = x
    elif shape == "s-curve":
        out = x * x * (3.0 - 2.0 * x)
    else:  # step
        out = (x >= 1.0).astype(float)
    return np.where(k >= 1.0, out, 0.0)


def _check_shape(shape: str) -> str:
    if shape not in RAMP_SHAPES:
        raise ParameterError(
            f"ramp shape {shape!r} is unknown: use one of {', '.join(RAMP_SHAPES)}."
        )
    return shape


def ramp_curve(months_to_full: int, shape: str = "linear") -> np.ndarray:
    """Productivity by month of tenure, from the hire month until fully ramped.

    Parameters
    ----------
    months_to_full : int
        Months to full productivity [months], 0-36; 0 means productive from the hire month.
    shape : {"linear", "s-curve", "step"}
        With ``x = k / months_to_full`` at tenure month ``k = 1, 2, ...``:
        ``linear`` gives ``x``, ``s-curve`` ``3x^2 - 2x^3``, ``step`` 0 until the last month.

    Returns
    -------
    np.ndarray
        Productivity [ratio of a fully ramped rep], one value per tenure month,
        ``max(months_to_full, 1)`` long; the last is 1 and every later month is 1.

    Examples
    --------
    >>> ramp_curve(3).round(3).tolist()
    [0.333, 0.667, 1.0]
    """
    if isinstance(months_to_full, bool) or not float(months_to_full).is_integer():
        raise ParameterError(
            f"months_to_full must be a whole number of months 0-36, got {months_to_full!r}."
        )
    n = int(months_to_full)
    if not 0 <= n <= 36:
        raise ParameterError(f"months_to_full must be a whole number of months 0-36, got {n}.")
    shape = _check_shape(shape)
    return _ramp_factor(np.arange(max(n, 1)), np.full(max(n, 1), n), shape)


#: Default ramp curves by segment (linear over :data:`revmodel.assumptions.DEFAULT_RAMP_MONTHS`).
DEFAULT_RAMP_CURVES: dict[str, np.ndarray] = {
    seg: ramp_curve(n) for seg, n in DEFAULT_RAMP_MONTHS.items()
}


# --------------------------------------------------------------------------- month helpers


def _index(values) -> pd.Index:
    """An object-dtype index (hashing plain strings is cheaper than building Arrow strings)."""
    return pd.Index(np.asarray(values, dtype=object), dtype=object)


def _lookup(members, values) -> np.ndarray:
    """Positions of ``values`` among ``members`` [int], -1 where absent."""
    return _index(members).get_indexer(_index(values))


def _abs_month(values: np.ndarray) -> np.ndarray:
    """Absolute month numbers (months since 1970-01) of datetime64 values; NaT -> NaN [float]."""
    arr = np.asarray(values, dtype="datetime64[ns]")
    out = arr.astype("datetime64[M]").astype(np.int64).astype(float)
    out[np.isnat(arr)] = np.nan
    return out


def _month_date(absolute: np.ndarray | float) -> np.ndarray:
    return np.asarray(absolute, dtype=np.int64).astype("datetime64[M]").astype("datetime64[ns]")


# --------------------------------------------------------------------------- inputs


def _is_inputs(ds: xr.Dataset) -> bool:
    return ds.attrs.get("revmodel_kind") == _KIND


def _check_cube(ds: xr.Dataset) -> None:
    if not isinstance(ds, xr.Dataset):
        raise ParameterError(
            f"expected the revenue cube (an xarray.Dataset), got {type(ds).__name__}."
        )
    missing = [d for d in ("segment", "region", "rep", "month") if d not in ds.dims]
    missing += [v for v in ("bookings",) if v not in ds]
    missing += [a for a in ("as_of", "fiscal_year_start") if a not in ds.attrs]
    if missing:
        raise DataError(
            "the cube lacks " + ", ".join(repr(m) for m in missing) + ": build it with "
            "revmodel.cube.build_cube."
        )


def _history_window(
    months: pd.DatetimeIndex, fiscal_year: np.ndarray, as_of: pd.Timestamp
) -> tuple[np.ndarray, str, float, list[np.ndarray]]:
    """Month positions of the history window, its label, the factor to a year, and the
    positions of every complete fiscal year of actuals."""
    hist = np.asarray(months <= as_of)
    labels = np.asarray(fiscal_year, dtype=object)
    complete: list[np.ndarray] = []
    for label in sorted(set(labels[hist].tolist())):
        pos = np.flatnonzero((labels == label) & hist)
        if len(pos) == 12:
            complete.append(pos)
    if complete:
        last = complete[-1]
        return last, str(labels[last[0]]), 1.0, complete
    pos = np.flatnonzero(hist)[-12:]
    if len(pos) == 0:
        raise DataError(
            f"the cube has no month of actuals up to as_of {as_of:%Y-%m}; nothing to plan from."
        )
    label = f"{months[pos[0]]:%Y-%m}..{months[pos[-1]]:%Y-%m}"
    return pos, label, 12.0 / len(pos), complete


@dataclass(frozen=True)
class _History:
    """Where the history lies in the cube's months."""

    months: pd.DatetimeIndex
    as_of: pd.Timestamp
    actuals: np.ndarray  # positions of every month up to as_of
    window: np.ndarray  # positions of the history window
    window_label: str
    annualise: float  # factor from the window to a year
    season: np.ndarray  # positions of every complete fiscal year of actuals
    complete_years: tuple[str, ...] = ()  # labels of the complete fiscal years, in order


def _history(cube: xr.Dataset, cal: fcal.FiscalCalendar, as_of: pd.Timestamp) -> _History:
    months = pd.DatetimeIndex(cube["month"].values)
    fy = (
        cube["fiscal_year"].values
        if "fiscal_year" in cube.coords
        else cal.month_coords(months)["fiscal_year"]
    )
    window, label, annualise, complete = _history_window(months, fy, as_of)
    return _History(
        months=months,
        as_of=as_of,
        actuals=np.flatnonzero(np.asarray(months <= as_of)),
        window=window,
        window_label=label,
        annualise=annualise,
        season=np.concatenate(complete) if complete else np.array([], dtype=int),
        complete_years=tuple(str(np.asarray(fy, dtype=object)[pos[0]]) for pos in complete),
    )


def _history_sums(cube: xr.Dataset, hist: _History) -> xr.Dataset:
    """The three bookings sums plan inputs need, computed together (one pass over a dask cube).

    A cube by populated cell (``layout="cells"``) has its bookings put back over
    ``segment x region x rep x month`` first, that measure alone (at 20,000 reps x 57
    months some 200 MB), so both layouts give the same inputs.
    """
    if "cell" in cube.dims:
        from revmodel.cube import unstack_cells

        cube = unstack_cells(cube.drop_vars([v for v in cube.data_vars if v != "bookings"]))
    bookings = cube["bookings"]
    return xr.Dataset(
        {
            "srr": bookings.isel(month=hist.actuals).sum("month"),
            "rep_window": bookings.isel(month=hist.window).sum(("segment", "region", "month")),
            "seg_month": bookings.isel(month=hist.season).sum(("region", "rep")),
            "trailing": bookings.isel(month=hist.actuals[-12:]).sum(),
        }
    ).compute()


@dataclass(frozen=True)
class _RepFacts:
    """Per rep (placeholder rep dropped): where it sells, its dates and its window bookings."""

    rep: np.ndarray
    segment: np.ndarray
    region: np.ndarray
    manager: np.ndarray
    hire: np.ndarray  # datetime64[ns]
    end: np.ndarray  # datetime64[ns]
    own_ramp: np.ndarray  # months, NaN when the reps table has none
    window_bookings: np.ndarray  # annualised [currency/year]


def _rep_coord(cube: xr.Dataset, name: str, default: object) -> np.ndarray:
    if name in cube.coords:
        return np.asarray(cube[name].values)
    return np.full(cube.sizes["rep"], default)


def _fill_from_bookings(
    labels: np.ndarray, members: list[str], by_member: np.ndarray
) -> np.ndarray:
    """Reps without a label take the member holding most of their bookings (when they have any)."""
    fill = np.array(members, dtype=object)[by_member.argmax(axis=0)]
    unknown = labels == config.PLACEHOLDER
    return np.where(unknown & (by_member.sum(axis=0) > 0), fill, labels)


def _rep_facts(
    cube: xr.Dataset, sums: xr.Dataset, annualise: float
) -> tuple[_RepFacts, list[str], list[str], float]:
    """The reps' facts, the segments and regions (the cube's plus the reps'), company bookings."""
    segments = [str(s) for s in cube["segment"].values]
    regions = [str(r) for r in cube["region"].values]
    all_reps = np.array([str(r) for r in cube["rep"].values], dtype=object)
    keep = all_reps != config.PLACEHOLDER
    srr = np.nan_to_num(sums["srr"].transpose("segment", "region", "rep").values)
    rep_segment = _rep_coord(cube, "rep_segment", config.PLACEHOLDER).astype(object)
    rep_region = _rep_coord(cube, "rep_region", config.PLACEHOLDER).astype(object)
    rep_segment = _fill_from_bookings(rep_segment, segments, srr.sum(axis=1))
    rep_region = _fill_from_bookings(rep_region, regions, srr.sum(axis=0))
    rep_window = np.nan_to_num(sums["rep_window"].values)
    last_year_total = float(rep_window.sum()) * annualise
    facts = _RepFacts(
        rep=all_reps[keep],
        segment=rep_segment[keep],
        region=rep_region[keep],
        manager=_rep_coord(cube, "manager", config.PLACEHOLDER).astype(object)[keep],
        hire=_rep_coord(cube, "hire_date", np.datetime64("NaT")).astype("datetime64[ns]")[keep],
        end=_rep_coord(cube, "end_date", np.datetime64("NaT")).astype("datetime64[ns]")[keep],
        own_ramp=_rep_coord(cube, "ramp_months", np.nan).astype(float)[keep],
        window_bookings=rep_window[keep] * annualise,
    )
    segments += sorted(set(facts.segment.tolist()) - set(segments))
    regions += sorted(set(facts.region.tolist()) - set(regions))
    return facts, segments, regions, last_year_total


def _ramped_history(facts: _RepFacts, hist: _History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per rep: ramp-weighted months in the window (annualised), fully ramped all window, run rate."""
    default_ramp = np.array(
        [DEFAULT_RAMP_MONTHS.get(s, _fallback(DEFAULT_RAMP_MONTHS)) for s in facts.segment],
        dtype=float,
    )
    n_ramp = np.where(np.isfinite(facts.own_ramp), facts.own_ramp, default_ramp)
    wm = _abs_month(hist.months.values[hist.window])  # (W,)
    h = _abs_month(facts.hire)
    e = _abs_month(facts.end)
    tenure = wm[None, :] - np.where(np.isnan(h), -1e6, h)[:, None]
    employed = (tenure >= 0) & (wm[None, :] <= np.where(np.isnan(e), np.inf, e)[:, None])
    ramp = np.where(employed, _ramp_factor(tenure, n_ramp[:, None], "linear"), 0.0)
    ramped_months = ramp.sum(axis=1) * hist.annualise
    full_year = (ramp >= 1.0).all(axis=1) & (len(hist.window) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        run_rate = np.where(
            ramped_months >= MIN_RAMPED_MONTHS,
            facts.window_bookings / ramped_months * 12.0,
            np.nan,
        )
    return ramped_months, full_year, run_rate


def _segment_productivity(
    segments: list[str], facts: _RepFacts, ramped_months: np.ndarray, full_year: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Productivity per segment and the reps it was measured on.

    The mean of fully ramped full-year reps; else bookings per ramped rep-year
    of the segment's reps; else the company's bookings per ramped rep-year.
    """
    rep_window = facts.window_bookings
    seg_idx = _lookup(segments, facts.segment)
    n_seg = len(segments)
    full_n = np.bincount(seg_idx, weights=full_year.astype(float), minlength=n_seg)
    full_sum = np.bincount(seg_idx, weights=np.where(full_year, rep_window, 0.0), minlength=n_seg)
    all_sum = np.bincount(seg_idx, weights=rep_window, minlength=n_seg)
    all_months = np.bincount(seg_idx, weights=ramped_months, minlength=n_seg)
    company = rep_window.sum() / ramped_months.sum() * 12.0 if ramped_months.sum() > 0 else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        productivity = np.where(
            full_n > 0,
            full_sum / full_n,
            np.where(all_months > 0, all_sum / all_months * 12.0, company),
        )
    return productivity, np.where(full_n > 0, full_n, 0.0)


def _seasonality(
    cube: xr.Dataset,
    cal: fcal.FiscalCalendar,
    hist: _History,
    sums: xr.Dataset,
    segments: list[str],
) -> np.ndarray:
    """Share of a year's bookings by (segment, fiscal month) from every complete fiscal year.

    A segment without history takes the company's shares; flat without any complete year.
    """
    n_seg = len(segments)
    season = np.full((n_seg + 1, 12), 1.0 / 12.0)
    if len(hist.season):
        fmonth = cal.fiscal_month(hist.months.values)
        sm = np.nan_to_num(sums["seg_month"].transpose("segment", "month").values)
        by_fm = np.zeros((sm.shape[0], 12))
        for i, pos in enumerate(hist.season):
            by_fm[:, fmonth[pos] - 1] += sm[:, i]
        cube_seg = _lookup(segments, [str(s) for s in cube["segment"].values])
        totals = by_fm.sum(axis=1)
        ok = totals > 0
        season[cube_seg[ok]] = by_fm[ok] / totals[ok, None]
        if by_fm.sum() > 0:
            season[n_seg] = by_fm.sum(axis=0) / by_fm.sum()
        no_history = np.setdiff1d(np.arange(n_seg), cube_seg[ok])
        season[no_history] = season[n_seg]
    return season[:n_seg]


def _team_managers(
    facts: _RepFacts, segments: list[str], regions: list[str], as_of: pd.Timestamp
) -> np.ndarray:
    """The manager of most active reps in each (segment, region): where planned hires report."""
    e = _abs_month(facts.end)
    active = np.isnan(e) | (e >= _abs_month(np.array([as_of.to_datetime64()]))[0])
    team = np.full((len(segments), len(regions)), config.PLACEHOLDER, dtype=object)
    frame = pd.DataFrame({"s": facts.segment, "r": facts.region, "m": facts.manager})[active]
    frame = frame[frame["m"] != config.PLACEHOLDER]
    if len(frame):
        counts = frame.groupby(["s", "r", "m"], sort=True).size().reset_index(name="n")
        top = counts.sort_values(["s", "r", "n", "m"], ascending=[True, True, False, True])
        top = top.drop_duplicates(["s", "r"])
        team[_lookup(segments, top["s"]), _lookup(regions, top["r"])] = top["m"].to_numpy(
            dtype=object
        )
    return team


def _inputs_variables(
    facts: _RepFacts,
    ramped_months: np.ndarray,
    full_year: np.ndarray,
    run_rate: np.ndarray,
    productivity: tuple[np.ndarray, np.ndarray],
    season: np.ndarray,
    team: np.ndarray,
) -> dict[str, tuple]:
    return {
        "bookings_last_year": (
            "rep",
            facts.window_bookings,
            {"units": f"{_CUR}/year", "long_name": "Bookings in the history window"},
        ),
        "ramped_months_last_year": (
            "rep",
            ramped_months,
            {"units": "months", "long_name": "Ramp-weighted months employed"},
        ),
        "full_year": (
            "rep",
            full_year,
            {"units": "1", "long_name": "Employed and fully ramped all window"},
        ),
        "run_rate": (
            "rep",
            run_rate,
            {"units": f"{_CUR}/year", "long_name": "Bookings per ramped rep-year"},
        ),
        "productivity": (
            "segment",
            productivity[0],
            {
                "units": f"{_CUR}/year",
                "long_name": "Annual bookings of a fully ramped rep (history)",
            },
        ),
        "productivity_reps": (
            "segment",
            productivity[1],
            {"units": "reps", "long_name": "Fully ramped full-year reps measured"},
        ),
        "seasonality": (
            ("segment", "fiscal_month"),
            season,
            {"units": "1", "long_name": "Share of a year's bookings by fiscal month"},
        ),
        "team_manager": (("segment", "region"), team, {"long_name": "Manager of the team"}),
    }


def _inputs_coords(facts: _RepFacts, segments: list[str], regions: list[str]) -> dict[str, Any]:
    return {
        "rep": facts.rep,
        "segment": np.array(segments, dtype=object),
        "region": np.array(regions, dtype=object),
        "fiscal_month": np.arange(1, 13),
        "manager": ("rep", facts.manager),
        "rep_region": ("rep", facts.region),
        "rep_segment": ("rep", facts.segment),
        "hire_date": ("rep", facts.hire),
        "end_date": ("rep", facts.end),
        "ramp_months": ("rep", facts.own_ramp),
    }


def plan_inputs(cube: xr.Dataset) -> xr.Dataset:
    """Gather everything the capacity and quota plans need from the cube, once.

    Parameters
    ----------
    cube : xarray.Dataset
        The revenue cube (numpy- or dask-backed). A Dataset already made by this
        function is returned unchanged.

    Returns
    -------
    xarray.Dataset
        Small Dataset over ``rep`` (every rep but the placeholder), ``segment``,
        ``region`` and ``fiscal_month`` (1-12):

        - ``bookings_last_year(rep)`` bookings in the history window [currency/year]
        - ``ramped_months_last_year(rep)`` ramp-weighted months employed in it [months]
        - ``full_year(rep)`` employed and fully ramped through the whole window [bool]
        - ``run_rate(rep)`` bookings per ramped year, NaN below
          :data:`MIN_RAMPED_MONTHS` ramped months [currency/year]
        - ``productivity(segment)`` see :func:`productivity_from_history` [currency/year]
        - ``productivity_reps(segment)`` reps it was measured on [reps]
        - ``seasonality(segment, fiscal_month)`` share of a year's bookings [ratio]
        - ``team_manager(segment, region)`` the manager of most active reps there
        - rep coords ``manager``, ``rep_region``, ``rep_segment`` (a rep with no
          segment or region in the reps table gets the one holding most of its
          bookings), ``hire_date``, ``end_date``, ``ramp_months``.

        attrs: the cube's calendar attrs, ``as_of``, ``history_window`` (e.g.
        ``"FY2026"``: the last complete fiscal year of actuals, else the last
        twelve months or fewer, annualised), ``last_year_bookings`` (company
        bookings in the window [currency/year], placeholder rep included).

    Notes
    -----
    History uses the reps' own ramp months (else
    :data:`revmodel.assumptions.DEFAULT_RAMP_MONTHS`) with a linear ramp.

    Examples
    --------
    ``ds`` is the sample company's cube (fiscal years start in November):

    >>> inp = plan_inputs(ds)
    >>> inp.attrs["history_window"], sorted(inp.data_vars)[:4]
    ('FY2026', ['bookings_last_year', 'full_year', 'productivity', 'productivity_reps'])
    >>> bool(np.allclose(inp["seasonality"].sum("fiscal_month"), 1.0))
    True
    >>> plan_inputs(inp) is inp
    True
    """
    if _is_inputs(cube):
        return cube
    _check_cube(cube)
    as_of = pd.Timestamp(cube.attrs["as_of"])
    cal = fcal.FiscalCalendar.from_attrs(cube)
    hist = _history(cube, cal, as_of)
    sums = _history_sums(cube, hist)
    facts, segments, regions, last_year_total = _rep_facts(cube, sums, hist.annualise)
    ramped_months, full_year, run_rate = _ramped_history(facts, hist)
    data = _inputs_variables(
        facts,
        ramped_months,
        full_year,
        run_rate,
        _segment_productivity(segments, facts, ramped_months, full_year),
        _seasonality(cube, cal, hist, sums, segments),
        _team_managers(facts, segments, regions, as_of),
    )
    return xr.Dataset(
        data,
        coords=_inputs_coords(facts, segments, regions),
        attrs={
            "revmodel_kind": _KIND,
            "fiscal_year_start": cal.start_month,
            "fiscal_year_naming": cal.naming,
            "currency": cube.attrs.get("currency", _CUR),
            "as_of": as_of.strftime("%Y-%m-%d"),
            "history_window": hist.window_label,
            "last_year_bookings": last_year_total,
            **_complete_years(sums, hist),
            **_trailing_year(sums, hist),
        },
    )


def _trailing_year(sums: xr.Dataset, hist: _History) -> dict[str, Any]:
    """Company bookings of the last twelve months of actuals (placeholder rep included):
    attrs ``trailing_year`` (``2024-10..2025-09``) and ``trailing_year_bookings``
    [currency/year]; none with fewer than twelve months."""
    if len(hist.actuals) < 12:
        return {}
    first, last = hist.months[hist.actuals[-12]], hist.months[hist.actuals[-1]]
    return {
        "trailing_year": f"{first:%Y-%m}..{last:%Y-%m}",
        "trailing_year_bookings": float(np.nan_to_num(sums["trailing"].values)),
    }


def _complete_years(sums: xr.Dataset, hist: _History) -> dict[str, list]:
    """Company bookings of each complete fiscal year of actuals (placeholder rep included):
    attrs ``complete_years`` (labels, in order) and ``complete_year_bookings`` [currency/year]."""
    monthly = np.nan_to_num(sums["seg_month"].sum("segment").values)
    totals = monthly.reshape(-1, 12).sum(axis=1) if len(monthly) else np.array([])
    return {
        "complete_years": list(hist.complete_years),
        "complete_year_bookings": [float(v) for v in totals],
    }


def productivity_from_history(cube: xr.Dataset) -> xr.DataArray:
    """Annual bookings of a fully ramped rep, by segment, from the last fiscal year of actuals.

    Measured on the reps employed and fully ramped for the whole last complete
    fiscal year (reps still ramping, hired or leaving during the year are left
    out): the mean of their bookings in the year. A segment with no such rep
    falls back to its reps' bookings per ramped rep-year, then to the company's.
    Without a complete fiscal year, the last twelve months (or fewer, annualised)
    stand in. A rep's segment is ``rep_segment``; its bookings count in every
    segment and region it sold in.

    Parameters
    ----------
    cube : xarray.Dataset
        The revenue cube, or :func:`plan_inputs` of it.

    Returns
    -------
    xarray.DataArray
        Over ``segment`` [currency/year per ramped rep], with coord
        ``productivity_reps`` (reps measured; 0 where a fallback applied).

    Examples
    --------
    >>> prod = productivity_from_history(ds)
    >>> prod.dims, prod.attrs["units"], bool((prod > 0).all())
    (('segment',), 'USD/year', True)
    """
    inp = plan_inputs(cube)
    return inp["productivity"].assign_coords(productivity_reps=inp["productivity_reps"])


# --------------------------------------------------------------------------- plan months


def plan_months(
    source: xr.Dataset, assumptions: Assumptions, months: Sequence | pd.DatetimeIndex | None = None
) -> pd.DatetimeIndex:
    """The months planned: those of ``assumptions.plan_year`` in the cube's fiscal calendar,
    or ``months`` (consecutive first-of-month dates) for another horizon.

    Parameters
    ----------
    source : xarray.Dataset
        The cube or its plan inputs (for the fiscal calendar).
    assumptions : Assumptions
        Uses ``plan_year``.
    months : sequence of dates, optional
        Months to plan instead of the plan year.

    Returns
    -------
    pandas.DatetimeIndex
        First-of-month dates named ``month``.

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> months = plan_months(ds, Assumptions(plan_year="FY2027"))
    >>> len(months), months[0].date(), months[-1].date()
    (12, datetime.date(2026, 11, 1), datetime.date(2027, 10, 1))
    >>> plan_months(ds, Assumptions(), months=["2027-01-01", "2027-03-01"])
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: months must be consecutive and increasing, one per month.
    """
    if months is None:
        cal = fcal.FiscalCalendar.from_attrs(source)
        return cal.quarter_months(settle_plan_year(assumptions, source).plan_year)
    try:
        idx = pd.DatetimeIndex(months).to_period("M").to_timestamp()
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"months must be dates (first of month): {exc}.") from exc
    if len(idx) == 0:
        raise ParameterError("months is empty: give at least one month to plan.")
    expected = pd.date_range(idx[0], periods=len(idx), freq="MS")
    if not (idx == expected).all():
        raise ParameterError("months must be consecutive and increasing, one per month.")
    return pd.DatetimeIndex(idx.values.astype("datetime64[ns]"), name="month")


# --------------------------------------------------------------------------- headcount


def _segment_values(table: Mapping[str, float], segments: np.ndarray) -> np.ndarray:
    fb = _fallback(table)
    return np.array([float(table.get(s, fb)) for s in segments], dtype=float)


def _expand_hires(
    inp: xr.Dataset, hires: Sequence[Hire]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rep ids, segments, regions, managers and start months [absolute] of planned heads."""
    segments = _index(inp["segment"].values)
    regions = _index(inp["region"].values)
    ids: list[str] = []
    seg: list[str] = []
    reg: list[str] = []
    start: list[float] = []
    numbering: dict[tuple[str, str, str], int] = {}
    for i, h in enumerate(hires):
        if h.segment not in segments:
            raise ParameterError(
                f"hires[{i}]: segment {h.segment!r} is not in the cube (known: "
                f"{', '.join(map(str, segments))}); fix the hire's segment."
            )
        if h.region not in regions:
            raise ParameterError(
                f"hires[{i}]: region {h.region!r} is not in the cube (known: "
                f"{', '.join(map(str, regions))}); fix the hire's region."
            )
        month = pd.Timestamp(h.start_month).to_period("M")
        key = (h.segment, h.region, str(month))
        first = numbering.get(key, 0)
        count = int(h.count)
        numbering[key] = first + count
        ids += [
            f"{TBH_PREFIX}-{h.segment}-{h.region}-{month}-{first + n + 1}" for n in range(count)
        ]
        seg += [h.segment] * count
        reg += [h.region] * count
        start += [float(month.year * 12 + month.month - 1 - 1970 * 12)] * count
    seg_a = np.array(seg, dtype=object)
    reg_a = np.array(reg, dtype=object)
    team = inp["team_manager"].values
    mgr = (
        team[_lookup(segments, seg_a), _lookup(regions, reg_a)]
        if len(seg_a)
        else np.array([], dtype=object)
    )
    return np.array(ids, dtype=object), seg_a, reg_a, mgr.astype(object), np.array(start)


@dataclass(frozen=True)
class _Timeline:
    """The months a headcount plan runs over, as absolute month numbers.

    The timeline starts at ``as_of`` or the first plan month, whichever is
    earlier (attrition and backfills run from ``as_of``), and ends at the last
    plan month.
    """

    months: pd.DatetimeIndex  # the plan months
    plan: np.ndarray  # their absolute month numbers
    as_of: int
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def steps(self) -> np.ndarray:
        """Absolute month of each timeline step [float]."""
        return np.arange(self.start, self.end + 1, dtype=float)

    @property
    def plan_positions(self) -> np.ndarray:
        """Positions of the plan months on the timeline."""
        return self.plan - self.start


def _timeline(
    inp: xr.Dataset, assumptions: Assumptions, months: Sequence | pd.DatetimeIndex | None
) -> _Timeline:
    mon = plan_months(inp, assumptions, months)
    mi = _abs_month(mon.values).astype(np.int64)
    a = int(_abs_month(np.array([np.datetime64(inp.attrs["as_of"], "ns")]))[0])
    return _Timeline(months=mon, plan=mi, as_of=a, start=min(int(mi[0]), a), end=int(mi[-1]))


@dataclass(frozen=True)
class _Seats:
    """The seats of a headcount plan: existing reps who work on the timeline, then planned heads."""

    existing: np.ndarray  # positions in the plan inputs' ``rep`` of the existing reps kept
    hire_start: np.ndarray  # absolute start month of each planned head
    rep: np.ndarray
    segment: np.ndarray
    region: np.ndarray
    manager: np.ndarray
    hire: np.ndarray  # absolute month, NaN when unknown
    end: np.ndarray  # absolute month, NaN when none
    planned: np.ndarray  # bool: a planned (TBH) head

    @property
    def planned_count(self) -> int:
        return len(self.hire_start)


def _seats(inp: xr.Dataset, assumptions: Assumptions, tl: _Timeline) -> _Seats:
    h_all = _abs_month(inp["hire_date"].values)
    e_all = _abs_month(inp["end_date"].values)
    sel = np.flatnonzero(
        (np.isnan(h_all) | (h_all <= tl.end)) & (np.isnan(e_all) | (e_all >= tl.start))
    )
    t_ids, t_seg, t_reg, t_mgr, t_start = _expand_hires(inp, assumptions.hires)
    n_old, n_new = len(sel), len(t_ids)
    return _Seats(
        existing=sel,
        hire_start=t_start,
        rep=np.concatenate([inp["rep"].values[sel], t_ids]).astype(str),
        segment=np.concatenate([inp["rep_segment"].values[sel], t_seg]).astype(str),
        region=np.concatenate([inp["rep_region"].values[sel], t_reg]).astype(str),
        manager=np.concatenate([inp["manager"].values[sel], t_mgr]).astype(str),
        hire=np.concatenate([h_all[sel], t_start]),
        end=np.concatenate([e_all[sel], np.full(n_new, np.nan)]),
        planned=np.arange(n_old + n_new) >= n_old,
    )


@dataclass(frozen=True)
class _SeatRates:
    """Per seat: months to full ramp (the segment's and the one used) and monthly survival."""

    segment_ramp: np.ndarray  # the segment's ramp months (backfills ramp on it)
    ramp_months: np.ndarray  # the rep's own ramp months, else the segment's
    survival: np.ndarray  # probability of staying one more month [1]


def _seat_rates(
    inp: xr.Dataset, assumptions: Assumptions, seats: _Seats, segments: np.ndarray
) -> _SeatRates:
    s_idx = _lookup(segments, seats.segment)
    seg_ramp = _segment_values(assumptions.ramp_months, segments)[s_idx]
    own = np.concatenate(
        [inp["ramp_months"].values[seats.existing], np.full(seats.planned_count, np.nan)]
    )
    attrition = _segment_values(assumptions.rep_attrition, segments)[s_idx]
    return _SeatRates(
        segment_ramp=seg_ramp,
        ramp_months=np.where(np.isfinite(own), own, seg_ramp),
        survival=(1.0 - attrition) ** (1.0 / 12.0),
    )


def _named_reps(
    seats: _Seats, rates: _SeatRates, tl: _Timeline, shape: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (seat, timeline month) for the seat's named rep: presence, ramp and departures."""
    steps, a, q = tl.steps, tl.as_of, rates.survival
    hh = np.where(np.isnan(seats.hire), -np.inf, seats.hire)
    ee = np.where(np.isnan(seats.end), np.inf, seats.end)
    employed = (steps >= hh[:, None]) & (steps <= ee[:, None])
    k = np.clip(steps - np.maximum(a, hh)[:, None], 0.0, None)
    present = np.where(employed, q[:, None] ** k, 0.0)
    tenure = steps - np.where(np.isnan(seats.hire), -1e6, seats.hire)[:, None]
    ramp = np.where(employed, _ramp_factor(tenure, rates.ramp_months[:, None], shape), 0.0)
    prev = np.concatenate([present[:, :1], present[:, :-1]], axis=1)
    departures = np.where(steps > a, np.clip(prev - present, 0.0, None), 0.0)
    return present, ramp, departures


def _backfill_flows(
    departures: np.ndarray, hazard: np.ndarray, after: np.ndarray, lag: int, backfill: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leavers, backfill starts and backfills in the seat, per (seat, month).

    A renewal recursion over months, vectorised over seats: a leaver's seat is
    backfilled ``lag`` months later, and backfills leave at the seat's hazard.
    Month-major layout, so that each step reads and writes contiguous rows.
    """
    d_t = np.ascontiguousarray(departures.T)
    leavers_t = np.empty_like(d_t)
    starts_t = np.zeros_like(d_t)
    in_seat_t = np.empty_like(d_t)
    pb = np.zeros(departures.shape[0])
    zero = np.zeros(departures.shape[0])
    for t in range(d_t.shape[0]):
        db = pb * hazard if after[t] else zero
        np.add(d_t[t], db, out=leavers_t[t])
        pb = pb - db
        if backfill and t >= lag:
            starts_t[t] = leavers_t[t - lag]
            pb = pb + starts_t[t]
        in_seat_t[t] = pb
    return leavers_t.T, starts_t.T, in_seat_t.T


def _ramped_backfills(
    in_seat: np.ndarray, starts: np.ndarray, rates: _SeatRates, shape: str, backfill: bool
) -> np.ndarray:
    """Ramped equivalents of the backfills in each seat.

    A backfill cohort is fully ramped from tenure month n on, so only its
    first n - 1 months differ from its headcount.
    """
    ramped = in_seat.copy()
    if not backfill:
        return ramped
    n_seats, length = in_seat.shape
    seg_ramp, q = rates.segment_ramp, rates.survival
    for j in range(min(int(np.ceil(seg_ramp.max(initial=0.0))), length)):
        short = (q**j) * (1.0 - _ramp_factor(np.full(n_seats, j), seg_ramp, shape))
        ramped[:, j:] -= starts[:, : length - j] * short[:, None]
    return ramped


def _seat_variables(
    present: np.ndarray,
    ramp: np.ndarray,
    flows: tuple[np.ndarray, np.ndarray, np.ndarray],
    ramped_bf: np.ndarray,
    pos: np.ndarray,
    segment_tables: tuple[np.ndarray, np.ndarray],
) -> dict[str, tuple]:
    """The headcount plan's variables over the plan months (``pos`` on the timeline)."""
    leavers, starts, in_seat = flows
    rm = ("rep", "month")
    return {
        "headcount": (
            rm,
            (present + in_seat)[:, pos],
            {"units": "reps", "long_name": "Expected people in the seat"},
        ),
        "ramped_fte": (
            rm,
            (present * ramp + ramped_bf)[:, pos],
            {"units": "ramped reps", "long_name": "Expected ramped rep equivalents"},
        ),
        "ramp": (
            rm,
            ramp[:, pos],
            {"units": "1", "long_name": "Ramp factor of the named rep (0 when not employed)"},
        ),
        "leavers": (
            rm,
            leavers[:, pos],
            {"units": "reps/month", "long_name": "Expected departures"},
        ),
        "backfills": (
            rm,
            starts[:, pos],
            {"units": "reps/month", "long_name": "Expected backfill starts"},
        ),
        "ramp_months_plan": (
            "segment",
            segment_tables[0],
            {"units": "months", "long_name": "Months to full productivity of a new hire"},
        ),
        "attrition": (
            "segment",
            segment_tables[1],
            {"units": "1/year", "long_name": "Annual rep attrition"},
        ),
    }


def _seat_coords(
    inp: xr.Dataset, seats: _Seats, rates: _SeatRates, tl: _Timeline
) -> dict[str, object]:
    mc = fcal.FiscalCalendar.from_attrs(inp).month_coords(tl.months.values)
    sel, n_new = seats.existing, seats.planned_count
    hire_dates = np.concatenate(
        [inp["hire_date"].values[sel], _month_date(seats.hire_start).astype("datetime64[ns]")]
    )
    end_dates = np.concatenate(
        [inp["end_date"].values[sel], np.full(n_new, np.datetime64("NaT", "ns"))]
    )
    return {
        "rep": seats.rep,
        "month": tl.months.values,
        "fiscal_quarter": ("month", mc["fiscal_quarter"]),
        "fiscal_year": ("month", mc["fiscal_year"]),
        "segment": inp["segment"].values.astype(str),
        "region": inp["region"].values.astype(str),
        "manager": ("rep", seats.manager),
        "rep_region": ("rep", seats.region),
        "rep_segment": ("rep", seats.segment),
        "hire_date": ("rep", hire_dates),
        "end_date": ("rep", end_dates),
        "ramp_months": ("rep", rates.ramp_months),
        "planned": ("rep", seats.planned),
    }


def _seat_arrays(
    inp: xr.Dataset,
    assumptions: Assumptions,
    months: Sequence | pd.DatetimeIndex | None,
    shape: str,
) -> tuple[dict[str, tuple], dict[str, object], dict[str, object]]:
    """The arithmetic of :func:`headcount`: (data variables, coordinates, attrs)."""
    shape = _check_shape(shape)
    check_segments(assumptions, inp["segment"].values.astype(str))
    tl = _timeline(inp, assumptions, months)
    seats = _seats(inp, assumptions, tl)
    segments = inp["segment"].values.astype(str)
    rates = _seat_rates(inp, assumptions, seats, segments)
    present, ramp, departures = _named_reps(seats, rates, tl, shape)
    lag = int(assumptions.backfill_lag_months)
    flows = _backfill_flows(
        departures, 1.0 - rates.survival, tl.steps > tl.as_of, lag, assumptions.backfill
    )
    ramped_bf = _ramped_backfills(flows[2], flows[1], rates, shape, assumptions.backfill)
    segment_tables = (
        _segment_values(assumptions.ramp_months, segments),
        _segment_values(assumptions.rep_attrition, segments),
    )
    data = _seat_variables(present, ramp, flows, ramped_bf, tl.plan_positions, segment_tables)
    attrs = {
        **{k_: v for k_, v in inp.attrs.items() if k_ != "revmodel_kind"},
        "plan_year": assumptions.plan_year,
        "scenario": assumptions.name,
        "ramp_shape": shape,
        "backfill": int(assumptions.backfill),
        "backfill_lag_months": lag,
    }
    return data, _seat_coords(inp, seats, rates, tl), attrs


def headcount(
    source: xr.Dataset,
    assumptions: Assumptions,
    months: Sequence | pd.DatetimeIndex | None = None,
    shape: str = "linear",
) -> xr.Dataset:
    """Expected headcount and ramped rep equivalents by seat and month.

    Parameters
    ----------
    source : xarray.Dataset
        The revenue cube, or :func:`plan_inputs` of it.
    assumptions : Assumptions
        Uses ``ramp_months``, ``rep_attrition``, ``backfill``, ``backfill_lag_months``, ``hires``.
    months : sequence of dates, optional
        Months to plan; default the 12 months of ``assumptions.plan_year``.
    shape : {"linear", "s-curve", "step"}
        Ramp curve shape (see :func:`ramp_curve`).

    Returns
    -------
    xarray.Dataset
        Over ``rep`` (seats: reps employed at some point from ``as_of`` or the
        first plan month, whichever is earlier, to the last plan month, then
        one per planned head) and ``month``:

        - ``headcount`` expected people in the seat [reps]
        - ``ramped_fte`` expected ramped rep equivalents [ramped reps]
        - ``ramp`` ramp factor of the seat's named rep, 0 when not employed [ratio]
        - ``leavers`` expected departures in the month (absent from it on) [reps/month]
        - ``backfills`` expected backfill starts [reps/month]

        and per segment ``ramp_months_plan`` [months], ``attrition`` [ratio/year].
        Rep coords: ``manager``, ``rep_region``, ``rep_segment``, ``hire_date``,
        ``end_date``, ``ramp_months`` (used), ``planned`` (a TBH head).

    Examples
    --------
    Without attrition every rep employed through the plan year stays a whole head:

    >>> from revmodel.assumptions import Assumptions
    >>> flat = Assumptions(rep_attrition={"SMB": 0.0, "Mid-Market": 0.0, "Enterprise": 0.0})
    >>> hc = headcount(ds, flat)
    >>> hc["headcount"].dims, hc["headcount"].attrs["units"]
    (('rep', 'month'), 'reps')
    >>> stays = hc["end_date"].isnull() & ~hc["planned"]
    >>> bool((hc["headcount"].sel(rep=stays) == 1.0).all())
    True
    >>> bool((hc["ramped_fte"] <= hc["headcount"] + 1e-9).all())
    True
    """
    data, coords, attrs = _seat_arrays(plan_inputs(source), assumptions, months, shape)
    return xr.Dataset(data, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------- capacity


def _productivity(inp: xr.Dataset, assumptions: Assumptions) -> np.ndarray:
    """Annual bookings of a fully ramped rep by segment [currency/year] for these assumptions."""
    hist = inp["productivity"].values
    if assumptions.productivity is not None:
        segs = inp["segment"].values
        given = assumptions.productivity
        hist = np.array([float(given.get(s, hv)) for s, hv in zip(segs, hist, strict=True)])
    return hist * (1.0 + assumptions.productivity_change)


def capacity_plan(
    source: xr.Dataset,
    assumptions: Assumptions,
    months: Sequence | pd.DatetimeIndex | None = None,
    shape: str = "linear",
) -> xr.Dataset:
    """Headcount, ramp, attrition, backfills and capacity bookings, by seat and month.

    Parameters
    ----------
    source : xarray.Dataset
        The revenue cube, or :func:`plan_inputs` of it (much faster for repeated what-ifs).
    assumptions : Assumptions
        The assumption set.
    months : sequence of dates, optional
        Months to plan; default the 12 months of ``assumptions.plan_year``.
    shape : {"linear", "s-curve", "step"}
        Ramp curve shape.

    Returns
    -------
    xarray.Dataset
        :func:`headcount` plus ``capacity(rep, month)`` expected bookings
        [currency/month], ``productivity(segment)`` [currency/year per ramped
        rep] and the rep-level history the quota module uses
        (``run_rate(rep)`` [currency/year], NaN for planned heads and reps
        without enough history) and ``seasonality(segment, fiscal_month)``.

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> plan = capacity_plan(plan_inputs(ds), Assumptions())
    >>> plan["capacity"].dims, plan["capacity"].attrs["units"]
    (('rep', 'month'), 'USD/month')

    Capacity is ramped rep equivalents times the segment's productivity:

    >>> seat = plan.isel(rep=0)
    >>> per_month = plan["productivity"].sel(segment=seat["rep_segment"].item()) / 12
    >>> bool(np.allclose(seat["capacity"], seat["ramped_fte"] * per_month))
    True
    """
    inp = plan_inputs(source)
    assumptions = settle_plan_year(assumptions, inp)
    data, coords, attrs = _seat_arrays(inp, assumptions, months, shape)
    prod = _productivity(inp, assumptions)
    seg_idx = _lookup(coords["segment"], coords["rep_segment"][1])
    rep_idx = _lookup(inp["rep"].values.astype(str), coords["rep"])
    run_rate = np.where(rep_idx >= 0, inp["run_rate"].values[rep_idx], np.nan)
    data["capacity"] = (
        ("rep", "month"),
        data["ramped_fte"][1] * (prod[seg_idx] / 12.0)[:, None],
        {"units": f"{_CUR}/month", "long_name": "Expected capacity bookings"},
    )
    data["productivity"] = (
        "segment",
        prod,
        {"units": f"{_CUR}/year", "long_name": "Annual bookings of a fully ramped rep"},
    )
    data["run_rate"] = (
        "rep",
        run_rate,
        {"units": f"{_CUR}/year", "long_name": "Bookings per ramped rep-year (history)"},
    )
    data["seasonality"] = (
        ("segment", "fiscal_month"),
        inp["seasonality"].values,
        dict(inp["seasonality"].attrs),
    )
    coords["fiscal_month"] = inp["fiscal_month"].values
    return xr.Dataset(data, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------- gap and hires


def _by_team(plan: xr.Dataset, values: np.ndarray) -> np.ndarray:
    """Sum a (rep, ...) array into (segment, region, ...)."""
    segs = _index(plan["segment"].values)
    regs = _index(_regions(plan))
    si = _lookup(segs, plan["rep_segment"].values)
    ri = _lookup(regs, plan["rep_region"].values)
    flat = si * len(regs) + ri
    rest = values.shape[1:]
    out = np.zeros((len(segs) * len(regs), int(np.prod(rest, dtype=int))))
    np.add.at(out, flat, values.reshape(len(flat), -1))
    return out.reshape((len(segs), len(regs), *rest))


def _regions(plan: xr.Dataset) -> np.ndarray:
    if "region" in plan.coords:
        return plan["region"].values
    return np.array(sorted(set(plan["rep_region"].values.tolist())), dtype=object)


def capacity_gap(plan: xr.Dataset, target: float | xr.DataArray) -> xr.Dataset:
    """Capacity against target by segment and region.

    Parameters
    ----------
    plan : xarray.Dataset
        From :func:`capacity_plan`.
    target : float or xarray.DataArray
        Bookings target over the plan months [currency]. A DataArray over any of
        ``segment``, ``region``, ``month`` (e.g. ``top_down(...)["segment_quota"]``)
        is compared cell by cell (summed over the plan months when it has no
        ``month``); a number is spread over the cells in proportion to capacity.

    Returns
    -------
    xarray.Dataset
        Over ``segment``, ``region`` (and ``month`` when the target has it):
        ``capacity``, ``target``, ``gap`` = target - capacity (positive: a
        shortfall) [currency], and ``capacity_to_target`` = capacity / target [ratio]
        (not coverage, which is pipeline over target: :func:`revmodel.pipeline.coverage_ratio`).

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> plan = capacity_plan(ds, Assumptions())
    >>> gap = capacity_gap(plan, 50_000_000.0)
    >>> sorted(gap.data_vars), round(float(gap["target"].sum()))
    (['capacity', 'capacity_to_target', 'gap', 'target'], 50000000)
    >>> bool(np.allclose(gap["gap"], gap["target"] - gap["capacity"]))
    True
    """
    cap_rm = plan["capacity"].values
    segs = plan["segment"].values
    regs = _regions(plan)
    monthly = isinstance(target, xr.DataArray) and "month" in target.dims
    by_team = _by_team(plan, cap_rm if monthly else cap_rm.sum(axis=1))
    dims: tuple[str, ...] = ("segment", "region", "month") if monthly else ("segment", "region")
    coords: dict[str, object] = {"segment": segs, "region": regs}
    if monthly:
        coords["month"] = plan["month"].values
    cap = xr.DataArray(by_team, dims=dims, coords=coords)
    if isinstance(target, xr.DataArray):
        extra = [d for d in target.dims if d not in ("segment", "region", "month")]
        if extra:
            raise ParameterError(
                f"target has dimension {extra[0]!r}; give it over segment, region and/or month."
            )
        tgt = target.reindex({d: coords[d] for d in target.dims}, fill_value=0.0)
        tgt = tgt.broadcast_like(cap).fillna(0.0).transpose(*dims)
    else:
        total = float(target)
        share = by_team / by_team.sum() if by_team.sum() > 0 else np.full(by_team.shape, 0.0)
        tgt = xr.DataArray(total * share, dims=dims, coords=coords)
    tgt = tgt.drop_vars([c for c in tgt.coords if c not in dims])
    with np.errstate(divide="ignore", invalid="ignore"):
        to_target = xr.where(tgt > 0, cap / tgt, np.nan)
    unit = f"{_CUR}"
    return xr.Dataset(
        {
            "capacity": cap.assign_attrs(units=unit, long_name="Expected capacity bookings"),
            "target": tgt.assign_attrs(units=unit, long_name="Bookings target"),
            "gap": (tgt - cap).assign_attrs(units=unit, long_name="Target minus capacity"),
            "capacity_to_target": to_target.assign_attrs(
                units="1", long_name="Capacity to target (capacity / target)"
            ),
        },
        attrs={k: v for k, v in plan.attrs.items()},
    )


def hires_needed(plan: xr.Dataset, gap: xr.Dataset) -> pd.DataFrame:
    """Hires that close each shortfall, and the month by which they must start.

    A hire should be fully ramped by the first plan month, so the start-by
    month is ``ramp_months`` before it, but never before the month after
    ``as_of``. One hire yields ``productivity / 12`` per month of the plan
    times its ramp and its expected survival (attrition of its segment); the
    hires needed are ``ceil(gap / yield)``.

    Parameters
    ----------
    plan : xarray.Dataset
        From :func:`capacity_plan`.
    gap : xarray.Dataset
        From :func:`capacity_gap`.

    Returns
    -------
    pandas.DataFrame
        One row per (segment, region) with a shortfall: ``segment``, ``region``,
        ``gap`` [currency], ``hires`` [reps], ``start_by`` (first of month),
        ``yield_per_hire`` [currency per hire over the plan].

    Raises
    ------
    InfeasibleError
        A shortfall in a segment whose productivity is zero, or a plan too short
        for a hire to book anything.

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> plan = capacity_plan(ds, Assumptions())
    >>> hires = hires_needed(plan, capacity_gap(plan, 50_000_000.0))
    >>> list(hires.columns)
    ['segment', 'region', 'gap', 'hires', 'start_by', 'yield_per_hire']
    >>> bool((hires["hires"] * hires["yield_per_hire"] >= hires["gap"]).all())
    True
    """
    g = gap["gap"]
    if "month" in g.dims:
        g = g.sum("month")
    g = g.transpose("segment", "region")
    months = pd.DatetimeIndex(plan["month"].values)
    mi = _abs_month(months.values)
    a = _abs_month(np.array([np.datetime64(plan.attrs["as_of"], "ns")]))[0]
    segs = plan["segment"].values
    n = plan["ramp_months_plan"].values
    q = (1.0 - plan["attrition"].values) ** (1.0 / 12.0)
    prod = plan["productivity"].values
    start = np.maximum(mi[0] - n, a + 1)  # (segment,)
    tenure = mi[None, :] - start[:, None]
    shape = plan.attrs.get("ramp_shape", "linear")
    contrib = (
        _ramp_factor(tenure, n[:, None], shape) * q[:, None] ** np.clip(tenure, 0, None)
    ).sum(axis=1)
    yield_per_hire = prod / 12.0 * contrib
    rows = []
    values = g.values
    for si, ri in zip(*np.nonzero(values > 0), strict=True):
        if yield_per_hire[si] <= 0:
            raise InfeasibleError(
                f"segment {str(segs[si])!r}, region {str(g['region'].values[ri])!r}: a shortfall of "
                f"{values[si, ri]:,.0f} {_CUR} cannot be closed by hiring, since a new hire "
                "books nothing in the plan (zero productivity or a plan too short to ramp): "
                "set assumptions.productivity or extend the plan months."
            )
        rows.append(
            {
                "segment": str(segs[si]),
                "region": str(g["region"].values[ri]),
                "gap": float(values[si, ri]),
                "hires": int(np.ceil(values[si, ri] / yield_per_hire[si] - 1e-9)),
                "start_by": pd.Timestamp(_month_date(start[si : si + 1])[0]),
                "yield_per_hire": float(yield_per_hire[si]),
            }
        )
    columns = ["segment", "region", "gap", "hires", "start_by", "yield_per_hire"]
    return pd.DataFrame(rows, columns=columns)


def as_hires(table: pd.DataFrame, role: str = "AE") -> tuple[Hire, ...]:
    """The rows of :func:`hires_needed` as :class:`~revmodel.assumptions.Hire` entries,
    ready for ``assumptions.with_changes(hires=assumptions.hires + as_hires(table))``.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`hires_needed` (``segment``, ``region``, ``start_by``, ``hires``).
    role : str
        The role of the heads.

    Returns
    -------
    tuple of Hire
        One entry per row with at least one hire.

    Examples
    --------
    >>> table = pd.DataFrame(
    ...     {"segment": ["SMB", "Enterprise"], "region": ["East", "West"],
    ...      "start_by": pd.to_datetime(["2027-01-01", "2027-02-01"]), "hires": [2, 0]}
    ... )
    >>> as_hires(table)
    (Hire(segment='SMB', region='East', start_month='2027-01', count=2, role='AE'),)
    """
    return tuple(
        Hire(
            segment=str(r.segment),
            region=str(r.region),
            start_month=pd.Timestamp(r.start_by).strftime("%Y-%m"),
            count=int(r.hires),
            role=role,
        )
        for r in table.itertuples(index=False)
        if int(r.hires) > 0
    )
