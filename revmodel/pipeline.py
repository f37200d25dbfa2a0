"""Open pipeline as expected bookings: conversion, slippage, coverage and the blend.

The opportunities table holds each deal's *current* stage and, for a closed
deal, only its final close date: there are no stage-history snapshots and no
history of expected close dates. The estimators use what is observable:

Conversion (:func:`stage_conversion`)
    The probability that a deal still open at age ``a`` (days since it was
    created) eventually wins, by segment: among the deals closed by ``as_of``
    whose cycle (created to close) lasted at least the lower edge of ``a``'s
    age bucket, the share won (by amount, or by count). Age is known for any
    deal at any date, so the same estimator serves the pipeline as it stood at
    a past origin, which the backtest needs. Deals still open are censored
    and left out, so long-cycle buckets lean on the deals that closed.
    Buckets with few deals are shrunk towards the segment's overall rate
    (``prior_deals`` pseudo-deals).
Slippage (:func:`slippage`)
    Where a deal closes relative to its expected close month. Without a
    history of expected close dates it is estimated from the spread of closed
    deals' cycle lengths around their segment's median cycle, in whole months
    (so its median is 0 and its spread is the timing uncertainty). An open
    deal's close month is its expected month shifted by this distribution,
    conditioned on closing after ``as_of`` (an overdue deal's mass moves
    later; a deal overdue by more than the longest slip drops out).
Weighted pipeline (:func:`weighted_pipeline`)
    amount x P(win) x P(close month) summed into (segment, region, rep, month).
    ``reconstruct=True`` rebuilds the pipeline as it stood at a past ``as_of``:
    deals created by then and not closed by then, expected to close at their
    creation date plus their segment's median cycle (the recorded expected
    close dates of that time are unknown), with conversion and slippage
    estimated from the deals closed by then.
Blend (:func:`blend`, :func:`learn_blend_weights`, :func:`blended_forecast`)
    ``w * statistical + (1 - w) * weighted pipeline`` per segment, with ``w``
    in [0, 1] minimising the WAPE of past origins of a backtest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from revmodel import calendar as fcal
from revmodel import config, schema
from revmodel.errors import DataError, ParameterError

__all__ = [
    "blend",
    "coverage",
    "coverage_ratio",
    "learn_blend_weights",
    "median_cycle_days",
    "open_deals",
    "slippage",
    "stage_conversion",
    "weighted_pipeline",
]

#: Lower edges of the deal-age buckets [days since created].
AGE_EDGES_DAYS: tuple[int, ...] = (0, 30, 90, 180, 365)
#: Pseudo-deals pulling a thin bucket's win rate towards its segment's overall rate [deals].
PRIOR_DEALS = 10.0
#: Slippage range: earliest and latest close relative to the expected month [months].
SLIP_RANGE: tuple[int, int] = (-6, 12)
#: Average month length [days].
DAYS_PER_MONTH = 30.4375
#: Key of the all-segments entry of weights and distributions.
POOLED = "(all)"
CELL_DIMS: tuple[str, ...] = ("segment", "region", "rep")


# --------------------------------------------------------------------------- inputs


def _labels(opps: pd.DataFrame, column: str) -> np.ndarray:
    if column not in opps.columns:
        return np.full(len(opps), config.PLACEHOLDER, dtype=object)
    s = opps[column].astype("string").str.strip()
    return s.mask(s == "").fillna(config.PLACEHOLDER).to_numpy(dtype=object)


def _prepare(opps: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("close_date", "amount", "stage") if c not in opps.columns]
    if missing:
        raise DataError(
            f"opportunities: missing column(s) {', '.join(missing)}; the pipeline needs "
            "close_date, amount, stage (and created_date for conversion by age)"
        )
    created = (
        pd.to_datetime(opps["created_date"])
        if "created_date" in opps.columns
        else pd.Series(pd.NaT, index=opps.index)
    )
    return pd.DataFrame(
        {
            "segment": _labels(opps, "segment"),
            "region": _labels(opps, "region"),
            "rep": _labels(opps, "rep_id"),
            "stage": opps["stage"].astype("string").to_numpy(dtype=object),
            "amount": pd.to_numeric(opps["amount"], errors="coerce").fillna(0.0).to_numpy(),
            "created": pd.to_datetime(opps["created_date"]).to_numpy()
            if "created_date" in opps.columns
            else created.to_numpy(),
            "close": pd.to_datetime(opps["close_date"]).to_numpy(),
        }
    )


def _month(as_of: Any) -> pd.Timestamp:
    try:
        return pd.Timestamp(as_of).to_period("M").to_timestamp()
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"as_of {as_of!r} is not a date: use YYYY-MM or YYYY-MM-DD") from exc


def _month_end(month: pd.Timestamp) -> pd.Timestamp:
    return month + pd.offsets.MonthEnd(0)


def _closed_by(deals: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    end = _month_end(as_of)
    closed = deals["stage"].isin(schema.CLOSED_STAGES) & (deals["close"] <= end)
    out = deals[closed].copy()
    out["cycle"] = (out["close"] - out["created"]).dt.days
    return out


def _by_columns(by: str | Sequence[str]) -> list[str]:
    cols = [by] if isinstance(by, str) else list(by)
    bad = [c for c in cols if c not in CELL_DIMS]
    if bad:
        raise ParameterError(f"by must name cube dims among {', '.join(CELL_DIMS)}; got {bad}")
    return cols


# --------------------------------------------------------------------------- conversion


def stage_conversion(
    opps: pd.DataFrame,
    as_of: Any,
    by: str | Sequence[str] = "segment",
    age_edges: Sequence[int] = AGE_EDGES_DAYS,
    prior_deals: float = PRIOR_DEALS,
    weight: str = "amount",
) -> pd.DataFrame:
    """Win probability of an open deal by segment and age, from the deals closed by ``as_of``.

    Parameters
    ----------
    opps : pd.DataFrame
        Canonical opportunities (``stage``, ``amount``, ``close_date``, ``created_date``,
        ``segment``...).
    as_of : date-like
        Only deals closed by the end of this month count.
    by : str or sequence of str
        Grouping: ``"segment"`` (default) or e.g. ``("segment", "region")``.
    age_edges : sequence of int
        Lower edges of the age buckets [days since created], starting at 0.
    prior_deals : float
        Strength of the shrinkage of each bucket towards its group's all-ages rate, and of
        each group's rate towards the overall rate [deals]; 0 for the raw shares.
    weight : {"amount", "count"}
        Win share by amount (expected bookings) or by number of deals.

    Returns
    -------
    pd.DataFrame
        One row per group and bucket: the ``by`` columns, ``age_from_days`` [days],
        ``closed`` and ``won`` (weights of the deals whose cycle reached the bucket)
        [USD or deals], ``win_rate`` [1].

    Examples
    --------
    >>> opps = tables["opportunities"]
    >>> conv = stage_conversion(opps, "2026-10")
    >>> conv.columns.tolist()
    ['segment', 'age_from_days', 'closed', 'won', 'win_rate']
    >>> conv[conv["segment"] == "Enterprise"].round(3)[["age_from_days", "win_rate"]]
       age_from_days  win_rate
    0              0     0.553
    1             30     0.553
    2             90     0.376
    3            180     0.174
    4            365     0.329
    """
    cols = _by_columns(by)
    edges = np.asarray(sorted(int(e) for e in age_edges))
    if edges.size == 0 or edges[0] != 0:
        raise ParameterError(f"age_edges must start at 0 days; got {list(age_edges)}")
    if weight not in ("amount", "count"):
        raise ParameterError(f"weight must be 'amount' or 'count'; got {weight!r}")
    if prior_deals < 0:
        raise ParameterError(f"prior_deals must be >= 0; got {prior_deals!r}")
    deals = _closed_by(_prepare(opps), _month(as_of))
    if deals.empty:
        raise DataError(
            f"opportunities: no deal closed won or lost by {_month(as_of):%Y-%m}, so there is "
            "no win rate to weight the pipeline with"
        )
    w = deals["amount"].to_numpy() if weight == "amount" else np.ones(len(deals))
    won = (deals["stage"] == "won").to_numpy()
    cycle = deals["cycle"].to_numpy(dtype=float)
    overall = w[won].sum() / w.sum() if w.sum() > 0 else 0.0
    # a deal's weight per deal turns pseudo-deals into weight units
    unit = w.mean() if weight == "amount" and w.size else 1.0
    rows = []
    for key, g in deals.groupby(cols, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        idx = g.index.to_numpy()
        pos = deals.index.get_indexer(idx)
        gw, gwon, gcyc = w[pos], won[pos], cycle[pos]
        closed_all, won_all = gw.sum(), gw[gwon].sum()
        k = prior_deals * unit
        group_rate = (won_all + k * overall) / (closed_all + k) if closed_all + k > 0 else overall
        for e in edges:
            # deals without a created date only inform the all-ages bucket
            reach = (gcyc >= e) if e > 0 else np.ones(gcyc.size, dtype=bool)
            c, wn = gw[reach].sum(), gw[reach & gwon].sum()
            rate = (wn + k * group_rate) / (c + k) if c + k > 0 else group_rate
            rows.append(
                {
                    **dict(zip(cols, key, strict=True)),
                    "age_from_days": int(e),
                    "closed": float(c),
                    "won": float(wn),
                    "win_rate": float(rate),
                }
            )
    return pd.DataFrame(rows)


def _win_probability(
    deals: pd.DataFrame, conversion: pd.DataFrame, as_of: pd.Timestamp
) -> np.ndarray:
    cols = [c for c in CELL_DIMS if c in conversion.columns]
    edges = np.sort(conversion["age_from_days"].unique())
    age = (_month_end(as_of) - deals["created"]).dt.days.to_numpy(dtype=float)
    age = np.where(np.isfinite(age), np.maximum(age, 0), 0)
    bucket = edges[np.searchsorted(edges, age, side="right") - 1]
    table = conversion.set_index([*cols, "age_from_days"])["win_rate"]
    keys = pd.MultiIndex.from_arrays([*(deals[c].to_numpy() for c in cols), bucket])
    p = table.reindex(keys).to_numpy(dtype=float)
    if np.isnan(p).any():
        # groups the history never saw get the closed deals' overall rate at that age
        pooled = conversion.groupby("age_from_days").apply(
            lambda g: (g["won"].sum() / g["closed"].sum()) if g["closed"].sum() > 0 else np.nan,
            include_groups=False,
        )
        fill = pooled.reindex(bucket).to_numpy(dtype=float)
        p = np.where(np.isnan(p), fill, p)
    return np.nan_to_num(p)


# --------------------------------------------------------------------------- slippage


def slippage(
    opps: pd.DataFrame,
    as_of: Any | None = None,
    by: str = "segment",
    slip_range: tuple[int, int] = SLIP_RANGE,
) -> pd.DataFrame:
    """Distribution of the close month relative to the expected close month, per segment.

    Estimated from the spread of closed deals' cycle lengths around their segment's
    median cycle (see the module docstring): ``round((cycle - median) / 30.44 days)``,
    clipped to ``slip_range``.

    Parameters
    ----------
    opps : pd.DataFrame
        Canonical opportunities with ``created_date``.
    as_of : date-like, optional
        Only deals closed by the end of this month count; default all closed deals.
    by : str
        Grouping dim (``"segment"``).
    slip_range : (int, int)
        Earliest and latest offset [months].

    Returns
    -------
    pd.DataFrame
        Index ``offset_months`` (``slip_range[0]`` .. ``slip_range[1]``), one column per
        group plus :data:`POOLED`, each a probability distribution [1].

    Examples
    --------
    >>> slip = slippage(tables["opportunities"], "2026-10")
    >>> slip.loc[-1:2].round(3)
                   Enterprise  Mid-Market    SMB  (all)
    offset_months
    -1                  0.248       0.274  0.335  0.312
     0                  0.210       0.330  0.317  0.314
     1                  0.110       0.219  0.199  0.199
     2                  0.090       0.073  0.147  0.122
    >>> bool(abs(slip.sum() - 1).max() < 1e-9)
    True
    """
    _by_columns(by)
    lo, hi = int(slip_range[0]), int(slip_range[1])
    if lo > 0 or hi < 0:
        raise ParameterError(f"slip_range must include 0; got {slip_range!r}")
    deals = _prepare(opps)
    end = _month(as_of) if as_of is not None else pd.Timestamp(deals["close"].max())
    closed = _closed_by(deals, end).dropna(subset=["cycle"])
    offsets = np.arange(lo, hi + 1)
    out = {}
    if closed.empty:
        point = (offsets == 0).astype(float)
        return pd.DataFrame({POOLED: point}, index=pd.Index(offsets, name="offset_months"))
    med = closed.groupby(by)["cycle"].transform("median")
    slip = np.clip(np.rint((closed["cycle"] - med) / DAYS_PER_MONTH), lo, hi).astype(int)
    closed = closed.assign(slip=slip.to_numpy())
    for key, g in closed.groupby(by, sort=True):
        counts = g["slip"].value_counts().reindex(offsets, fill_value=0).to_numpy(dtype=float)
        out[key] = counts / counts.sum()
    counts = closed["slip"].value_counts().reindex(offsets, fill_value=0).to_numpy(dtype=float)
    out[POOLED] = counts / counts.sum()
    return pd.DataFrame(out, index=pd.Index(offsets, name="offset_months"))


def median_cycle_days(opps: pd.DataFrame, as_of: Any, by: str = "segment") -> pd.Series:
    """Median created-to-close cycle of the deals closed by ``as_of``, per group [days].

    Parameters
    ----------
    opps : pd.DataFrame
        Canonical opportunities with ``created_date``.
    as_of : date-like
        Only deals closed by the end of this month count.
    by : str
        Grouping column (``"segment"``).

    Returns
    -------
    pd.Series
        Median days per group, plus :data:`POOLED` over all deals.

    Examples
    --------
    >>> median_cycle_days(tables["opportunities"], "2026-10")
    segment
    Enterprise    115.0
    Mid-Market     86.0
    SMB            47.0
    (all)          63.0
    Name: cycle, dtype: float64
    """
    closed = _closed_by(_prepare(opps), _month(as_of)).dropna(subset=["cycle"])
    out = closed.groupby(by)["cycle"].median()
    out[POOLED] = closed["cycle"].median() if len(closed) else 0.0
    return out


#: Past origins averaged by :func:`not_yet_created` [months].
NOT_YET_CREATED_LOOKBACK = 12


# --------------------------------------------------------------------------- weighted pipeline


def open_deals(opps: pd.DataFrame, as_of: Any, reconstruct: bool = False) -> pd.DataFrame:
    """The deals open at the end of month ``as_of``, with their expected close month.

    Parameters
    ----------
    opps : pd.DataFrame
        Canonical opportunities.
    as_of : date-like
        The month.
    reconstruct : bool
        False: the deals in an open stage, expected to close on their ``close_date``.
        True: the pipeline as it stood then: deals created by the end of ``as_of`` and not
        closed by then, whatever their stage now, expected to close at creation plus their
        segment's median cycle of the deals closed by then.

    Returns
    -------
    pd.DataFrame
        ``segment``, ``region``, ``rep``, ``amount`` [USD], ``created``, ``expected_close``.

    Examples
    --------
    >>> deals = open_deals(tables["opportunities"], "2026-10")
    >>> len(deals), deals.columns.tolist()
    (411, ['segment', 'region', 'rep', 'amount', 'created', 'expected_close'])
    >>> deals.iloc[0]["expected_close"]
    Timestamp('2026-11-15 00:00:00')
    """
    month = _month(as_of)
    end = _month_end(month)
    deals = _prepare(opps)
    if not reconstruct:
        out = deals[deals["stage"].isin(schema.OPEN_STAGES)].copy()
        out["expected_close"] = out["close"]
    else:
        created = deals["created"]
        still_open = deals["stage"].isin(schema.OPEN_STAGES) | (deals["close"] > end)
        out = deals[(created <= end) & still_open].copy()
        med = median_cycle_days(opps, month)
        days = out["segment"].map(med).fillna(med[POOLED]).to_numpy(dtype=float)
        out["expected_close"] = out["created"] + pd.to_timedelta(days, unit="D")
    return out[["segment", "region", "rep", "amount", "created", "expected_close"]].reset_index(
        drop=True
    )


def _slip_matrix(slip: pd.DataFrame, segments: np.ndarray) -> np.ndarray:
    cols = [s if s in slip.columns else POOLED for s in segments]
    if POOLED not in slip.columns and any(c == POOLED for c in cols):
        raise ParameterError(
            f"slippage has no column for segment(s) {sorted(set(segments) - set(slip.columns))} "
            f"and no {POOLED!r} column to fall back on"
        )
    return slip[cols].to_numpy(dtype=float).T  # deals x offsets


def weighted_pipeline(
    opps: pd.DataFrame,
    as_of: Any,
    horizon: int = 6,
    conversion: pd.DataFrame | None = None,
    slip: pd.DataFrame | None = None,
    like: xr.DataArray | xr.Dataset | None = None,
    reconstruct: bool = False,
    history: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
) -> xr.DataArray:
    """Expected bookings from the open pipeline, by cell and month after ``as_of``.

    Parameters
    ----------
    opps : pd.DataFrame
        Canonical opportunities.
    as_of : date-like
        Last month of actuals; the result covers the ``horizon`` months after it.
    horizon : int
        Months [months].
    conversion : pd.DataFrame, optional
        :func:`stage_conversion` table (or, with ``history``,
        :func:`revmodel.learned.stage_conversion`); default estimated from the deals
        closed by ``as_of``.
    slip : pd.DataFrame, optional
        :func:`slippage` table (or :func:`revmodel.learned.slippage`); default
        estimated from the deals closed by ``as_of``.
    like : xr.DataArray or xr.Dataset, optional
        Take the ``segment``, ``region`` and ``rep`` coords from it; deals outside them are
        left out and their expected amount recorded in ``attrs["outside_amount"]``.
    reconstruct : bool
        Rebuild the pipeline as it stood at ``as_of`` (see :func:`open_deals`); ignored
        with ``history``, which records it.
    history : pd.DataFrame, optional
        Canonical ``opportunity_history``. When given, the pipeline is the deals open at
        the end of ``as_of`` as recorded then (stage, amount, expected close date), their
        win probability is learned by segment and stage, and slippage from where won
        deals closed against their expected month (:mod:`revmodel.learned`), all from
        the history up to ``as_of``.
    labels : pd.DataFrame, optional
        With ``history``: :func:`revmodel.history.deal_labels`; default from ``opps``.

    Returns
    -------
    xr.DataArray
        ``weighted_pipeline`` (segment, region, rep, month) [USD/month].

    Examples
    --------
    >>> weighted = weighted_pipeline(tables["opportunities"], ds.attrs["as_of"], horizon=6, like=ds)
    >>> weighted.dims
    ('segment', 'region', 'rep', 'month')
    >>> (weighted.sum(["segment", "region", "rep"]) / 1e6).round(2).to_series().head(3)
    month
    2026-11-01    2.04
    2026-12-01    2.11
    2027-01-01    1.76
    Name: weighted_pipeline, dtype: float64
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ParameterError(f"horizon must be a whole number of months >= 1, got {horizon!r}")
    month = _month(as_of)
    if history is not None:
        deals, p, slip = _from_history(opps, month, history, labels, conversion, slip)
        source = "history"
    else:
        deals = open_deals(opps, month, reconstruct=reconstruct)
        if conversion is None:
            conversion = stage_conversion(opps, month)
        if slip is None:
            slip = slippage(opps, month)
        p = _win_probability(deals, conversion, month)
        source = "reconstructed" if reconstruct else "current"
    da = _expected_bookings(deals, p, slip, month, int(horizon), like)
    da.attrs["reconstructed"] = int(bool(reconstruct) or history is not None)
    da.attrs["estimated_from"] = source
    return da


def _from_history(
    opps: pd.DataFrame,
    month: pd.Timestamp,
    history: pd.DataFrame,
    labels: pd.DataFrame | None,
    conversion: pd.DataFrame | None,
    slip: pd.DataFrame | None,
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Open deals at the end of ``month`` from history, their win probability and slippage."""
    from revmodel import history as hist
    from revmodel import learned

    end = _month_end(month)
    if labels is None:
        labels = hist.deal_labels({"opportunities": opps})
    state = hist.state_at(hist.prepare(history), end)
    state = state[state["stage"].isin(schema.OPEN_STAGES)]
    lab = labels.reindex(state.index)
    first = hist.prepare(history).drop_duplicates("opportunity_id").set_index("opportunity_id")
    deals = pd.DataFrame(
        {
            "segment": lab["segment"].fillna(config.PLACEHOLDER).to_numpy(dtype=object),
            "region": lab["region"].fillna(config.PLACEHOLDER).to_numpy(dtype=object),
            "rep": lab["rep"].fillna(config.PLACEHOLDER).to_numpy(dtype=object),
            "amount": pd.to_numeric(state["amount"], errors="coerce").fillna(0.0).to_numpy(),
            "created": first["changed_at"].reindex(state.index).to_numpy(),
            "expected_close": state["close_date"].to_numpy(),
            "stage": state["stage"].to_numpy(dtype=object),
        }
    )
    if conversion is None:
        conversion = learned.stage_conversion(history, end, labels)
    if slip is None:
        slip = learned.slippage(history, end, labels)
    expected = pd.DatetimeIndex(deals["expected_close"])
    to_close = (expected.year - end.year) * 12 + (expected.month - end.month)
    p = learned.win_probability(conversion, deals["segment"], deals["stage"], to_close)
    return deals, p, slip


def _expected_bookings(
    deals: pd.DataFrame,
    p: np.ndarray,
    slip: pd.DataFrame,
    month: pd.Timestamp,
    horizon: int,
    like: xr.DataArray | xr.Dataset | None,
) -> xr.DataArray:
    """amount x P(win) x P(close month), summed into (segment, region, rep, month)."""
    expected = pd.DatetimeIndex(deals["expected_close"])
    e_idx = (expected.year - month.year) * 12 + (expected.month - month.month)
    e_idx = np.asarray(e_idx, dtype=np.int64)  # 1 = the month after as_of
    offsets = slip.index.to_numpy(dtype=np.int64)
    probs = _slip_matrix(slip, deals["segment"].to_numpy())
    target = e_idx[:, None] + offsets[None, :]
    # condition on closing after as_of: the deal was still open then
    probs = np.where(target >= 1, probs, 0.0)
    total = probs.sum(axis=1, keepdims=True)
    probs = np.divide(probs, total, out=np.zeros_like(probs), where=total > 0)
    value = (deals["amount"].to_numpy() * p)[:, None] * probs

    if like is not None:
        coords = {d: np.asarray(like[d].values) for d in CELL_DIMS}
    else:
        coords = {d: np.asarray(sorted(set(deals[d]))) for d in CELL_DIMS}
        coords = {d: v if v.size else np.asarray([config.PLACEHOLDER]) for d, v in coords.items()}
    codes = [pd.Index(coords[d]).get_indexer(deals[d].to_numpy()) for d in CELL_DIMS]
    inside = np.all(np.stack(codes) >= 0, axis=0) if len(deals) else np.zeros(0, dtype=bool)
    in_h = (target >= 1) & (target <= horizon)
    shape = (*(len(coords[d]) for d in CELL_DIMS), int(horizon))
    out = np.zeros(shape)
    rows, cols = np.nonzero(in_h & inside[:, None])
    np.add.at(
        out,
        (codes[0][rows], codes[1][rows], codes[2][rows], target[rows, cols] - 1),
        value[rows, cols],
    )
    months = pd.date_range(month + pd.offsets.MonthBegin(1), periods=int(horizon), freq="MS")
    da = xr.DataArray(
        out,
        dims=(*CELL_DIMS, "month"),
        coords={**coords, "month": months.values},
        name="weighted_pipeline",
        attrs={
            "units": f"{config.CURRENCY}/month",
            "long_name": "Open pipeline weighted by win probability and close-month slippage",
            "as_of": f"{month:%Y-%m-%d}",
            "open_deals": int(len(deals)),
            "open_amount": float(deals["amount"].sum()),
            "outside_amount": float(value[~inside].sum()) if len(deals) else 0.0,
            "beyond_horizon_amount": float((value * (target > horizon)).sum()),
        },
    )
    if like is not None:
        for c in ("manager",):
            if c in getattr(like, "coords", {}) and like[c].dims == ("rep",):
                da = da.assign_coords({c: ("rep", np.asarray(like[c].values))})
    return da


def not_yet_created(
    opps: pd.DataFrame,
    as_of: Any,
    horizon: int,
    like: xr.DataArray | xr.Dataset | None = None,
    lookback: int = NOT_YET_CREATED_LOOKBACK,
) -> xr.DataArray:
    """Bookings expected from deals not yet created at the end of month ``as_of``.

    What the open pipeline cannot see: for month ``h`` ahead (1 = the month after
    ``as_of``), the mean over the ``lookback`` latest past origins ``o`` whose month
    ``o + h`` is over by ``as_of`` of what was won in month ``o + h`` from deals
    created after the end of month ``o``, per cell. Only deals won by ``as_of`` count,
    so a backtest never sees its outcome.

    Parameters
    ----------
    opps : pd.DataFrame
        Canonical opportunities (``created_date``, ``close_date``, ``stage``, ``amount``).
    as_of : date-like
        The month of the forecast (the last month it sees).
    horizon : int
        Months ahead [months].
    like : xr.DataArray or xr.Dataset, optional
        Take the ``segment``, ``region`` and ``rep`` coords from it.
    lookback : int
        Past origins averaged [months].

    Returns
    -------
    xr.DataArray
        ``not_yet_created`` (segment, region, rep, month) [USD/month].
    """
    month = _month(as_of)
    deals = _prepare(opps)
    won = deals[(deals["stage"] == "won") & (deals["close"] <= _month_end(month))]
    won = won[won["created"].notna()]
    close_m = won["close"].to_numpy(dtype="datetime64[M]").astype(np.int64)
    created_m = won["created"].to_numpy(dtype="datetime64[M]").astype(np.int64)
    if like is not None:
        coords = {d: np.asarray(like[d].values) for d in CELL_DIMS}
    else:
        coords = {d: np.asarray(sorted(set(won[d]))) for d in CELL_DIMS}
        coords = {d: v if v.size else np.asarray([config.PLACEHOLDER]) for d, v in coords.items()}
    codes = [pd.Index(coords[d]).get_indexer(won[d].to_numpy()) for d in CELL_DIMS]
    inside = np.all(np.stack(codes) >= 0, axis=0) if len(won) else np.zeros(0, dtype=bool)
    amount = won["amount"].to_numpy(dtype=float)
    out = np.zeros((*(len(coords[d]) for d in CELL_DIMS), int(horizon)))
    now = int(np.datetime64(month, "M").astype(np.int64))
    for h in range(1, int(horizon) + 1):
        for k in range(h, h + int(lookback)):
            origin = now - k
            sel = inside & (close_m == origin + h) & (created_m > origin)
            np.add.at(out[..., h - 1], tuple(c[sel] for c in codes), amount[sel] / lookback)
    months = pd.date_range(month + pd.offsets.MonthBegin(1), periods=int(horizon), freq="MS")
    return xr.DataArray(
        out,
        dims=(*CELL_DIMS, "month"),
        coords={**coords, "month": months.values},
        name="not_yet_created",
        attrs={
            "units": f"{config.CURRENCY}/month",
            "long_name": "Bookings expected from deals not yet created",
            "as_of": f"{month:%Y-%m-%d}",
            "lookback_months": int(lookback),
        },
    )


# --------------------------------------------------------------------------- coverage


def _period_months(period: Any, attrs: Mapping) -> pd.DatetimeIndex:
    if isinstance(period, str):
        return fcal.quarter_months(
            period,
            start_month=int(attrs.get("fiscal_year_start", config.FISCAL_YEAR_START)),
            naming=str(attrs.get("fiscal_year_naming", config.FISCAL_YEAR_NAMING)),
        )
    return pd.DatetimeIndex(pd.to_datetime(list(period))).to_period("M").to_timestamp()


def coverage(
    pipeline: xr.DataArray,
    target: float | xr.DataArray,
    period: Any = None,
    booked: float | xr.DataArray = 0.0,
) -> float | xr.DataArray:
    """Pipeline coverage: open pipeline in the period over what is left of the target [1].

    Parameters
    ----------
    pipeline : xr.DataArray
        Open (or weighted) pipeline with a ``month`` dim [USD/month].
    target : float or xr.DataArray
        Quota or target of the period [USD]; a DataArray over some of the pipeline's
        other dims (e.g. ``segment``) gives coverage at that level.
    period : str or sequence of dates, optional
        Fiscal quarter label (e.g. ``"FY2027-Q1"``, with the calendar of ``pipeline.attrs``
        or the defaults) or the months; default every month of ``pipeline``.
    booked : float or xr.DataArray
        Already booked in the period [USD]; coverage is of the remaining target.

    Returns
    -------
    float or xr.DataArray
        pipeline / (target - booked); NaN where nothing remains to cover.

    Examples
    --------
    Open pipeline of FY2027-Q1 against a 12M target, then with 2M already booked:

    >>> pipe = ds["pipeline"].sum(["segment", "region", "rep"]).assign_attrs(ds.attrs)
    >>> round(float(coverage(pipe, 12e6, period="FY2027-Q1")), 2)
    1.28
    >>> round(float(coverage(pipe, 12e6, period="FY2027-Q1", booked=2e6)), 2)
    1.54
    """
    if "month" not in pipeline.dims:
        raise ParameterError("coverage: the pipeline needs a 'month' dim")
    pipe = pipeline
    if period is not None:
        months = _period_months(period, pipeline.attrs)
        have = pd.DatetimeIndex(pipeline["month"].values)
        pipe = pipeline.sel(month=have.isin(months))
    keep = list(target.dims) if isinstance(target, xr.DataArray) else []
    bad = [d for d in keep if d not in pipeline.dims]
    if bad:
        raise ParameterError(f"coverage: the target has dims {bad} the pipeline lacks")
    total = pipe.sum([d for d in pipe.dims if d not in keep])
    return coverage_ratio(total, target, booked)


def coverage_ratio(pipeline: Any, target: Any, booked: Any = 0.0) -> Any:
    """The one definition of pipeline coverage: pipeline / (target - booked) [1].

    Every surface (the KPI catalogue, :func:`coverage`, the explorer app, the
    plan pack) computes coverage with this function: open pipeline expected to
    close in what is left of the period, over the target still to book. Where
    nothing remains to book (or there is no target) coverage is missing (NaN).

    Parameters
    ----------
    pipeline : float or xr.DataArray
        Open pipeline closing in the period's remaining months [currency].
    target : float or xr.DataArray
        Quota or target of the period [currency]; NaN when there is none.
    booked : float or xr.DataArray
        Already booked in the period [currency].

    Returns
    -------
    float or xr.DataArray
        A float when every input is a number, else a DataArray (aligned as xarray does).

    Examples
    --------
    >>> coverage_ratio(300.0, 250.0, booked=100.0)
    2.0
    >>> coverage_ratio(300.0, 250.0, booked=250.0)
    nan
    """
    remaining = target - booked
    if any(isinstance(v, xr.DataArray) for v in (pipeline, target, booked)):
        remaining = (
            xr.DataArray(remaining) if not isinstance(remaining, xr.DataArray) else remaining
        )
        return (pipeline / remaining.where(remaining > 0)).astype(float)
    remaining = float(remaining)
    return float(pipeline) / remaining if remaining > 0 else float("nan")


# --------------------------------------------------------------------------- blend


def _weight_array(weights: Any, segments: np.ndarray) -> xr.DataArray:
    if isinstance(weights, xr.DataArray):
        w = weights.reindex(segment=segments) if "segment" in weights.dims else weights
    elif isinstance(weights, Mapping | pd.Series):
        get = weights.get
        pooled = get(POOLED, np.nan)
        w = xr.DataArray(
            [float(get(s, pooled)) for s in segments], dims="segment", coords={"segment": segments}
        )
    else:
        w = xr.DataArray(float(weights))
    values = np.asarray(w.values, dtype=float)
    if np.isnan(values).any() or (values < 0).any() or (values > 1).any():
        raise ParameterError(
            "blend weights must lie in [0, 1] for every segment (give a (all) entry as the "
            f"default); got {dict(zip(np.atleast_1d(segments), np.atleast_1d(values), strict=False))}"
        )
    return w


def blend(stat: xr.DataArray, pipe: xr.DataArray, weights: Any) -> xr.DataArray:
    """``w * stat + (1 - w) * pipe``, with ``w`` per segment (or one for all) [units of stat].

    Parameters
    ----------
    stat : xr.DataArray
        Statistical forecast, with a ``segment`` dim.
    pipe : xr.DataArray
        Weighted pipeline; missing cells count as 0.
    weights : float, mapping, pd.Series or xr.DataArray
        Weight of ``stat`` per segment (with :data:`POOLED` as the default), or one for all.

    Returns
    -------
    xr.DataArray
        Shaped like ``stat``, named ``blend``.

    Examples
    --------
    >>> seg = {"segment": ["SMB", "Enterprise"]}
    >>> stat = xr.DataArray([100.0, 200.0], dims="segment", coords=seg)
    >>> pipe = xr.DataArray([80.0, 300.0], dims="segment", coords=seg)
    >>> blend(stat, pipe, {"SMB": 0.75, "Enterprise": 0.5}).values
    array([ 95., 250.])
    """
    segments = np.asarray(stat["segment"].values) if "segment" in stat.dims else np.asarray([])
    w = _weight_array(weights, segments)
    pipe = pipe.reindex_like(stat, fill_value=0.0)
    out = w * stat + (1 - w) * pipe
    out = out.transpose(*stat.dims)
    out.attrs = dict(stat.attrs)
    out.name = "blend"
    return out


def _best_weight(stat: np.ndarray, pipe: np.ndarray, actual: np.ndarray) -> float:
    """Exact minimiser of sum|w s + (1 - w) p - a| over w in [0, 1] (convex, piecewise linear)."""
    d = stat - pipe
    r = actual - pipe
    with np.errstate(divide="ignore", invalid="ignore"):
        kinks = np.where(d != 0, r / d, np.nan)
    cand = np.unique(np.concatenate([[0.0, 1.0], kinks[(kinks > 0) & (kinks < 1)]]))
    loss = np.abs(cand[:, None] * d[None, :] - r[None, :]).sum(axis=1)
    best = np.flatnonzero(loss <= loss.min() * (1 + 1e-12) + 1e-9)
    # a flat stretch of minima: take its middle
    return float(np.mean(cand[[best[0], best[-1]]]))


def learn_blend_weights(inputs: Any, by: str = "segment") -> pd.Series:
    """Per-segment weight of the statistical forecast that minimises WAPE on past origins.

    Parameters
    ----------
    inputs : pd.DataFrame or revmodel.backtest.BacktestResult
        Rows of past origins with ``actual``, ``stat`` (statistical forecast) and
        ``pipeline`` (weighted pipeline at the origin) [USD] and the ``by`` column, e.g.
        ``BacktestResult.blend_inputs``.
    by : str
        Column holding the segment.

    Returns
    -------
    pd.Series
        ``stat_weight`` in [0, 1] per segment, plus :data:`POOLED` fitted on all rows.

    Examples
    --------
    >>> past = pd.DataFrame({
    ...     "segment": ["SMB"] * 3 + ["Enterprise"] * 3,
    ...     "actual": [100.0, 120.0, 90.0, 300.0, 260.0, 310.0],
    ...     "stat": [110.0, 115.0, 95.0, 200.0, 210.0, 220.0],
    ...     "pipeline": [70.0, 90.0, 60.0, 310.0, 250.0, 300.0],
    ... })
    >>> learn_blend_weights(past).round(3)
    Enterprise    0.000
    SMB           0.857
    (all)         0.091
    Name: stat_weight, dtype: float64
    """
    frame = getattr(inputs, "blend_inputs", inputs)
    need = {by, "actual", "stat", "pipeline"}
    if not isinstance(frame, pd.DataFrame) or not need <= set(frame.columns):
        raise ParameterError(
            f"learn_blend_weights needs a table with columns {sorted(need)}, e.g. "
            "backtest.rolling_origin(..., opportunities=opps).blend_inputs"
        )
    if frame.empty:
        raise DataError("learn_blend_weights: no past origins to learn from (empty table)")
    out = {}
    for key, g in frame.groupby(by, sort=True):
        if g["actual"].abs().sum() > 0:
            out[key] = _best_weight(
                *(g[c].to_numpy(dtype=float) for c in ("stat", "pipeline", "actual"))
            )
    out[POOLED] = _best_weight(
        *(frame[c].to_numpy(dtype=float) for c in ("stat", "pipeline", "actual"))
    )
    return pd.Series(out, name="stat_weight", dtype=float)


def blended_forecast(
    cube: xr.Dataset,
    opps: pd.DataFrame,
    stat_forecast: xr.DataArray,
    weights: Any,
    measure: str = "bookings",
    history: pd.DataFrame | None = None,
) -> xr.Dataset:
    """Blend of the statistical forecast and the weighted pipeline, current and next quarter.

    The current quarter is the fiscal quarter of the month after ``as_of``; its months up to
    ``as_of`` count as booked.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube (actuals, coords and fiscal calendar).
    opps : pd.DataFrame
        Canonical opportunities (the open pipeline now).
    stat_forecast : xr.DataArray
        Statistical forecast (segment, region, rep, month) for the months after ``as_of``,
        e.g. the reconciled mean [USD/month].
    weights : float, mapping, pd.Series or xr.DataArray
        Statistical weight per segment (:func:`learn_blend_weights`).
    measure : str
        Actual measure [USD/month].
    history : pd.DataFrame, optional
        Canonical ``opportunity_history``: the weighted pipeline then uses conversion and
        slippage learned from it (see :func:`weighted_pipeline`).

    Returns
    -------
    xr.Dataset
        Dims (segment, region, rep, fiscal_quarter): ``booked`` (actuals to date),
        ``statistical``, ``weighted_pipeline``, ``open_pipeline`` (unweighted, expected to
        close in the remaining months) and ``forecast`` = booked + blend [USD];
        ``stat_weight (segment)``.
    """
    cal = fcal.FiscalCalendar.from_attrs(cube)
    as_of = _month(cube.attrs["as_of"])
    first = as_of + pd.offsets.MonthBegin(1)
    current = cal.current_quarter(first)
    quarters = [current, fcal.next_quarter(current)]
    q_months = {q: cal.quarter_months(q) for q in quarters}
    last = q_months[quarters[1]][-1]
    h = (last.year - as_of.year) * 12 + last.month - as_of.month
    fmonths = pd.date_range(first, periods=h, freq="MS")
    have = pd.DatetimeIndex(stat_forecast["month"].values)
    if not fmonths.isin(have).all():
        raise ParameterError(
            f"stat_forecast covers {have[0]:%Y-%m} to {have[-1]:%Y-%m} but the blend needs "
            f"{fmonths[0]:%Y-%m} to {fmonths[-1]:%Y-%m}; forecast with horizon >= {h}"
        )
    like = cube[measure]
    stat = stat_forecast.sel(month=fmonths.values).reindex_like(
        like.isel(month=0, drop=True), fill_value=0.0
    )
    stat = stat.transpose(*CELL_DIMS, "month").drop_vars(
        [c for c in stat.coords if c not in (*CELL_DIMS, "month")]
    )
    pipe = weighted_pipeline(opps, as_of, horizon=h, like=like, history=history)
    pipe = pipe.drop_vars([c for c in pipe.coords if c not in (*CELL_DIMS, "month")])
    mixed = blend(stat, pipe, weights)
    open_da = (
        like.sel(month=like["month"].isin(fmonths.values))
        if "pipeline" not in cube
        else cube["pipeline"].sel(month=cube["month"].isin(fmonths.values))
    )
    actual = like.sel(month=like["month"] <= np.datetime64(as_of, "ns")).fillna(0.0)

    def by_quarter(da: xr.DataArray) -> xr.DataArray:
        return _by_quarter(da, quarters, q_months)

    parts = {
        "actual": by_quarter(actual),
        "stat": by_quarter(stat),
        "pipe": by_quarter(pipe),
        "open": by_quarter(open_da),
        "mixed": by_quarter(mixed),
    }
    ds = _blend_dataset(parts, _weight_array(weights, np.asarray(like["segment"].values)), like)
    ds.attrs.update(as_of=f"{as_of:%Y-%m-%d}", measure=measure, currency=config.CURRENCY)
    for c in ("manager",):
        if c in like.coords:
            ds = ds.assign_coords({c: ("rep", np.asarray(like[c].values))})
    return ds


def _by_quarter(da: xr.DataArray, quarters: list[str], q_months: Mapping) -> xr.DataArray:
    """Sum the months of each quarter (zeros for a quarter with no month in ``da``)."""
    months = pd.DatetimeIndex(da["month"].values)
    parts = []
    for q in quarters:
        sel = da.sel(month=months.isin(q_months[q]))
        parts.append(
            sel.sum("month") if sel.sizes["month"] else xr.zeros_like(da.isel(month=0, drop=True))
        )
    out = xr.concat(parts, dim="fiscal_quarter")
    out = out.drop_vars([c for c in out.coords if c not in CELL_DIMS])
    return out.assign_coords(fiscal_quarter=quarters).transpose(*CELL_DIMS, "fiscal_quarter")


def _blend_dataset(parts: Mapping[str, xr.DataArray], w: xr.DataArray, like) -> xr.Dataset:
    """The blended forecast's variables, with units and long names."""
    segs = np.asarray(like["segment"].values)
    unit = f"{config.CURRENCY}"
    return xr.Dataset(
        {
            "booked": parts["actual"].assign_attrs(units=unit, long_name="Booked to date"),
            "statistical": parts["stat"].assign_attrs(
                units=unit, long_name="Statistical forecast of the remaining months"
            ),
            "weighted_pipeline": parts["pipe"].assign_attrs(
                units=unit, long_name="Weighted pipeline of the remaining months"
            ),
            "open_pipeline": parts["open"].assign_attrs(
                units=unit, long_name="Open pipeline expected to close in the remaining months"
            ),
            "forecast": (parts["actual"] + parts["mixed"]).assign_attrs(
                units=unit, long_name="Booked plus the blend of the remaining months"
            ),
            "stat_weight": (
                w
                if w.ndim
                else xr.full_like(
                    xr.DataArray(segs, dims="segment", coords={"segment": segs}),
                    float(w),
                    dtype=float,
                )
            ).assign_attrs(units="1", long_name="Weight of the statistical forecast"),
        }
    )
