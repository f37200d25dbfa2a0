"""The revenue cube: one ``xarray.Dataset`` that every planning step reads.

Contract
--------
- dims ``segment``, ``region``, ``rep``, ``month`` (first day of month,
  ``datetime64[ns]``). A dimension missing from the data is a single member,
  :data:`revmodel.config.PLACEHOLDER`.
- coords ``manager(rep)``, ``rep_region(rep)``, ``rep_segment(rep)``,
  ``hire_date(rep)``, ``end_date(rep)``, ``ramp_months(rep)``,
  ``fiscal_quarter(month)``, ``fiscal_year(month)``.
- attrs ``fiscal_year_start``, ``fiscal_year_naming``, ``currency``, ``as_of``
  (the last month with actuals, ``YYYY-MM-01``).
- measures (float64, every one with ``units`` and ``long_name``), see
  :data:`MEASURES`. Actual measures are NaN after ``as_of``; ``pipeline`` runs
  past it (expected close months). A cell with no data up to ``as_of`` is 0.

Layouts
-------
The same Dataset in one of two layouts (:data:`LAYOUTS`), chosen by
``build_cube(layout=...)``:

- ``"dense"`` (default): every measure over ``segment x region x rep x month``.
- ``"cells"``: every measure over ``cell x month``, one ``cell`` per
  (segment, region, rep) series that a deal or a subscribed account falls in,
  named by the coords ``cell_segment(cell)``, ``cell_region(cell)``,
  ``cell_rep(cell)``. The ``segment``, ``region`` and ``rep`` dims keep every
  member and their coords (a rep without a deal is still a rep), so the cube
  is still this one Dataset. A series that is not stored is what an empty one
  holds in the dense layout: 0, NaN after ``as_of`` for actual measures. A rep
  sells into a few of the segment x region pairs, so at 20,000 reps the cells
  layout holds some 5-30 % of the dense cells. :func:`rollup` (so
  ``ds.rev.rollup``) and :func:`revmodel.forecast.forecast_cube` take either
  layout and give identical results; :func:`stack_cells` and
  :func:`unstack_cells` convert.

Functions are pure (Dataset in, Dataset out) and work on numpy- or
dask-backed cubes (chunked over ``rep``, or over ``cell``). ``ds.rev`` (:mod:`revmodel.accessor`) is
a thin accessor over them and the planning modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import sparse

from revmodel import calendar as fcal
from revmodel import config, encoding
from revmodel.errors import DataError, ParameterError
from revmodel.limits import cube_size_problem

__all__ = [
    "MEASURES",
    "aggregation",
    "build_cube",
    "labels",
    "levels",
    "load_cube",
    "measures",
    "product_bookings",
    "rollup",
    "save_cube",
    "summary",
    "validate_cube",
]

DIMS: tuple[str, ...] = ("segment", "region", "rep", "month")
SERIES_DIMS: tuple[str, ...] = ("segment", "region", "rep")
#: Dims of a measure in the ``"cells"`` layout (see :func:`stack_cells`).
CELL_DIMS: tuple[str, ...] = ("cell", "month")
#: Cube layouts: every series (dense), or the populated cells only.
LAYOUTS: tuple[str, ...] = ("dense", "cells")
#: Hierarchy levels that are coordinates of ``rep`` rather than dims.
REP_LEVELS: tuple[str, ...] = ("manager", "rep_region", "rep_segment")
PERIODS: tuple[str, ...] = ("month", "fiscal_quarter", "fiscal_year")

#: Longest stretch of future months kept for open pipeline.
PIPELINE_MONTHS_AHEAD = 24


#: How a measure aggregates over time: flows add up over the months of a
#: period; stocks take the period-end value (the last month with actuals);
#: ratios are recomputed from their rolled-up parts.
AGGREGATIONS: tuple[str, ...] = ("sum", "last", "ratio")


@dataclass(frozen=True)
class Measure:
    """One measure of the cube contract.

    Attributes
    ----------
    name : str
        Variable name in the cube.
    units : str
        Units, with the currency of the data where money (e.g. ``USD/month``).
    long_name : str
        What it is, in words.
    actual : bool
        True for actuals (NaN after ``as_of``); False for what runs past it.
    aggregation : {"sum", "last", "ratio"}
        How it aggregates over time (see :data:`AGGREGATIONS`).
    """

    name: str
    units: str
    long_name: str
    actual: bool  # NaN after as_of
    aggregation: str = "sum"


def measures(currency: str = config.CURRENCY) -> dict[str, Measure]:
    """The cube's measures with money in ``currency`` (ISO 4217 code).

    Parameters
    ----------
    currency : str
        ISO 4217 code of the money measures.

    Returns
    -------
    dict of str to Measure
        Name -> units, long name, whether it is an actual, aggregation over time.

    Examples
    --------
    >>> measures("EUR")["arr"].units
    'EUR/year'
    >>> measures()["arr"].aggregation
    'last'
    """
    c = currency
    flow, stock = "sum", "last"
    return {
        m.name: m
        for m in (
            Measure("bookings", f"{c}/month", "Closed-won bookings by close month", True, flow),
            Measure("pipeline", f"{c}/month", "Open pipeline by expected close month", False, flow),
            Measure("won", "deals/month", "Deals closed won", True, flow),
            Measure("lost", "deals/month", "Deals closed lost", True, flow),
            Measure("new_bookings", f"{c}/month", "Bookings of new-business deals", True, flow),
            Measure("expansion_bookings", f"{c}/month", "Bookings of expansion deals", True, flow),
            Measure("renewal_bookings", f"{c}/month", "Bookings of renewal deals", True, flow),
            Measure("arr", f"{c}/year", "Annual recurring revenue at month end", True, stock),
            Measure("new_arr", f"{c}/year", "ARR from new customers in the month", True, flow),
            Measure(
                "expansion_arr",
                f"{c}/year",
                "ARR added by existing customers in the month",
                True,
                flow,
            ),
            Measure(
                "contraction_arr",
                f"{c}/year",
                "ARR reduced by continuing customers in the month",
                True,
                flow,
            ),
            Measure(
                "churned_arr",
                f"{c}/year",
                "ARR lost from customers who left in the month",
                True,
                flow,
            ),
        )
    }


#: The measures of the contract, in the configured currency; see :func:`measures`.
MEASURES: dict[str, Measure] = measures()


# --------------------------------------------------------------------------- build


def _month_start(dates: pd.Series) -> pd.Series:
    return dates.dt.to_period("M").dt.to_timestamp()


def _text(frame: pd.DataFrame | None, column: str) -> pd.Series | None:
    """A text column with blanks as missing, or None when the column is absent or empty."""
    if frame is None or column not in frame.columns:
        return None
    s = frame[column].astype("string").str.strip()
    s = s.mask(s == "")
    return None if s.isna().all() else s


def _ordered_members(values: Iterable[str], preferred: Iterable[str] = ()) -> list[str]:
    seen = {v for v in values if isinstance(v, str) and v}
    first = [p for p in preferred if p in seen]
    rest = sorted(seen - set(first))
    members = first + rest
    return members or [config.PLACEHOLDER]


def _lookup(
    keys: pd.Series | None, table: pd.DataFrame | None, key: str, column: str
) -> pd.Series | None:
    """Map ``keys`` through ``table[key] -> table[column]``."""
    values = _text(table, column)
    if keys is None or values is None:
        return None
    mapping = pd.Series(values.to_numpy(), index=table[key].astype("string").to_numpy())
    mapping = mapping[~mapping.index.duplicated()]
    # Look up the distinct keys only: exports repeat the same few thousand ids a million times.
    codes, uniques = pd.factorize(keys)
    looked_up = mapping.reindex(np.asarray(uniques, dtype=object)).to_numpy(dtype=object)
    out = np.where(codes >= 0, looked_up[np.maximum(codes, 0)], None)
    return pd.Series(out, index=keys.index, dtype="string")


def _first_of(n: int, *candidates: pd.Series | None) -> pd.Series:
    """Coalesce candidate label columns; what stays missing becomes the placeholder."""
    out = pd.Series(pd.NA, index=range(n), dtype="string")
    for c in candidates:
        if c is not None:
            out = out.fillna(c.reset_index(drop=True))
    return out.fillna(config.PLACEHOLDER)


def _codes(labels: pd.Series, members: list[str]) -> np.ndarray:
    # Factorize first (fast on string arrays), then look up the few distinct labels.
    codes, uniques = pd.factorize(labels)
    lookup = pd.Index(members).get_indexer(np.asarray(uniques, dtype=object))
    return np.where(codes >= 0, lookup[codes], -1)


def _scatter(
    shape: tuple[int, ...], codes: tuple[np.ndarray, ...], weights: np.ndarray
) -> np.ndarray:
    """Sum ``weights`` into a dense array at ``codes`` (one code array per axis)."""
    flat = np.ravel_multi_index(codes, shape)
    # An empty selection makes bincount return integers; measures are always float.
    out = np.bincount(flat, weights=weights, minlength=int(np.prod(shape)))
    return out.astype(np.float64, copy=False).reshape(shape)


@dataclass(frozen=True)
class _Layout:
    """Where each (segment, region, rep) series is stored: the dense cube, or populated cells.

    ``cells`` holds the sorted flat series codes (``ravel_multi_index`` over
    segment x region x rep) that are stored; None stores the dense cube.
    """

    shape: tuple[int, int, int, int]
    cells: np.ndarray | None = None

    def rows(self, series: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Row of each series in the stored array (flat code when dense)."""
        flat = np.ravel_multi_index(series, self.shape[:3])
        return flat if self.cells is None else np.searchsorted(self.cells, flat)

    @property
    def n_rows(self) -> int:
        return int(np.prod(self.shape[:3])) if self.cells is None else len(self.cells)

    def scatter(self, codes: tuple[np.ndarray, ...], weights: np.ndarray) -> np.ndarray:
        """Sum ``weights`` at ``(segment, region, rep, month)`` codes into the stored array."""
        if self.cells is None:
            return _scatter(self.shape, codes, weights)
        return _scatter((self.n_rows, self.shape[3]), (self.rows(codes[:3]), codes[3]), weights)

    def shaped(self, flat: np.ndarray) -> np.ndarray:
        """A ``(rows, month)`` array in the stored shape."""
        return flat.reshape(self.shape if self.cells is None else (self.n_rows, self.shape[3]))


def _resolve_as_of(opps: pd.DataFrame, as_of: str | pd.Timestamp | None) -> pd.Timestamp:
    if as_of is not None:
        try:
            return pd.Timestamp(as_of).to_period("M").to_timestamp()
        except (ValueError, TypeError) as exc:
            raise ParameterError(
                f"as_of {as_of!r} is not a date: use YYYY-MM or YYYY-MM-DD."
            ) from exc
    closed = opps.loc[opps["stage"].isin(["won", "lost"]), "close_date"].dropna()
    if closed.empty:
        raise DataError(
            "opportunities: no won or lost deal, so there are no actuals to build a cube from: "
            "check the stage mapping (won/lost values) or pass as_of."
        )
    return closed.max().to_period("M").to_timestamp()


def month_number(dates: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Absolute month numbers ``year * 12 + month - 1`` [float; NaN for a missing date]."""
    d = pd.DatetimeIndex(pd.to_datetime(dates))
    return np.where(d.isna(), np.nan, d.year * 12 + d.month - 1).astype(float)


def account_arr(
    subscriptions: pd.DataFrame, months: pd.DatetimeIndex
) -> tuple[pd.Index, np.ndarray]:
    """ARR of every account at each month end [USD/year].

    A term is active in the months from its start month up to, not including,
    its end month (``end_date`` exclusive; no end date: still active). Terms
    that started before ``months[0]`` count from the first month.

    Parameters
    ----------
    subscriptions : pandas.DataFrame
        Canonical subscriptions table.
    months : pandas.DatetimeIndex
        Consecutive first-of-month dates.

    Returns
    -------
    (pandas.Index, numpy.ndarray)
        Account ids (in order of first appearance) and the account x month ARR matrix.
    """
    a_idx, uniques = pd.factorize(subscriptions["account_id"].astype("string"))
    accounts = pd.Index(np.asarray(uniques, dtype=object), dtype="string")
    n = len(months)
    first = month_number(months[:1])[0]
    start = month_number(subscriptions["start_date"]) - first
    end = (
        month_number(subscriptions["end_date"]) - first
        if "end_date" in subscriptions.columns
        else np.full(len(subscriptions), np.nan)
    )
    start = np.clip(np.nan_to_num(start, nan=n), 0, n).astype(np.int64)
    end = np.clip(np.where(np.isnan(end), n, end), 0, n).astype(np.int64)
    keep = (end > start) & (a_idx >= 0)
    arr = subscriptions["arr"].to_numpy(dtype=float)
    # Term starts add and ends remove ARR; a cumulative sum over months gives each account's ARR.
    rows = a_idx[keep] * (n + 1)
    flat = np.concatenate([rows + start[keep], rows + end[keep]])
    weights = np.concatenate([arr[keep], -arr[keep]])
    diff = np.bincount(flat, weights=weights, minlength=len(accounts) * (n + 1))
    level = np.cumsum(diff.reshape(len(accounts), n + 1)[:, :n], axis=1)
    level[np.abs(level) < 1e-6] = 0.0
    return accounts, level


def account_cells(tables: Mapping[str, pd.DataFrame], accounts: pd.Index) -> pd.DataFrame:
    """The cube cell of each account: ``segment``, ``region``, ``rep`` [labels].

    The cube's attribution of ARR: segment and region from the account's row in
    ``accounts``; rep = the account owner, else the rep on its latest
    subscription term; the placeholder member where unknown.
    """
    keys = pd.Series(np.asarray(accounts, dtype=object), dtype="string")
    acc = tables.get("accounts")
    acc = None if acc is None or acc.empty else acc
    subs = tables.get("subscriptions")
    latest = None
    if subs is not None and not subs.empty and _text(subs, "rep_id") is not None:
        last = subs.sort_values("start_date").groupby("account_id", sort=False)["rep_id"].last()
        last.index = last.index.astype("string")
        latest = keys.map(last.astype("string")).astype("string")
    n = len(keys)
    return pd.DataFrame(
        {
            "segment": _first_of(n, _lookup(keys, acc, "account_id", "segment")).to_numpy(),
            "region": _first_of(n, _lookup(keys, acc, "account_id", "region")).to_numpy(),
            "rep": _first_of(
                n, _lookup(keys, acc, "account_id", "owner_rep_id"), latest
            ).to_numpy(),
        },
        index=pd.Index(np.asarray(accounts, dtype=object), name="account_id"),
    )


def _arr_movements(level: np.ndarray) -> dict[str, np.ndarray]:
    """Classify each account's month-on-month ARR change.

    ``level`` is account x (1 + months): its first column is the month before the
    cube starts, so the first month's movements are real ones.
    """
    prev, cur = level[:, :-1], level[:, 1:]
    delta = cur - prev
    return {
        "arr": cur,
        "new_arr": np.where((prev <= 0) & (cur > 0), cur, 0.0),
        "churned_arr": np.where((prev > 0) & (cur <= 0), prev, 0.0),
        "expansion_arr": np.where((prev > 0) & (cur > 0) & (delta > 0), delta, 0.0),
        "contraction_arr": np.where((prev > 0) & (cur > 0) & (delta < 0), -delta, 0.0),
    }


#: Deal types with a bookings measure of their own (``<type>_bookings``).
DEAL_TYPES: tuple[str, ...] = ("new", "expansion", "renewal")


@dataclass(frozen=True)
class _Tables:
    """The tables the cube reads, an empty table being no table."""

    opps: pd.DataFrame
    accounts: pd.DataFrame | None
    reps: pd.DataFrame | None
    subs: pd.DataFrame | None
    #: The accounts the opportunities name, when they are given as :func:`deal_cells`.
    opp_accounts: pd.DataFrame | None = None

    @classmethod
    def of(cls, tables: Mapping[str, pd.DataFrame]) -> _Tables:
        if "opportunities" not in tables or tables["opportunities"] is None:
            raise DataError(
                "No opportunities table: it is the one required table (opportunities.csv)."
            )

        def table(name: str) -> pd.DataFrame | None:
            t = tables.get(name)
            return None if t is None or t.empty else t

        return cls(
            tables["opportunities"].reset_index(drop=True),
            table("accounts"),
            table("reps"),
            table("subscriptions"),
            table(OPPORTUNITY_ACCOUNTS),
        )


@dataclass(frozen=True)
class _Deals:
    """Each deal's cell (segment, region, rep labels), close month and stage."""

    segment: pd.Series
    region: pd.Series
    rep: pd.Series
    close_month: pd.Series
    is_won: np.ndarray
    is_lost: np.ndarray
    amount: np.ndarray
    #: Deals each row stands for: 1, or a row of :func:`deal_cells` (its ``deals``).
    count: np.ndarray

    @property
    def is_open(self) -> np.ndarray:
        return ~(self.is_won | self.is_lost)


def _deals(t: _Tables) -> _Deals:
    """Each deal's own labels first, then its account's, then its rep's."""
    opps, n = t.opps, len(t.opps)
    rep_id = _text(opps, "rep_id")
    acct_id = _text(opps, "account_id")

    def label(column: str) -> pd.Series:
        return _first_of(
            n,
            _text(opps, column),
            _lookup(acct_id, t.accounts, "account_id", column),
            _lookup(rep_id, t.reps, "rep_id", column),
        )

    stage = opps["stage"].astype("string")
    return _Deals(
        segment=label("segment"),
        region=label("region"),
        rep=_first_of(n, rep_id),
        close_month=_month_start(opps["close_date"]),
        is_won=(stage == "won").to_numpy(),
        is_lost=(stage == "lost").to_numpy(),
        amount=opps["amount"].to_numpy(dtype=float),
        count=(opps["deals"].to_numpy(dtype=float) if "deals" in opps else np.ones(n, dtype=float)),
    )


#: Table of the accounts the opportunities name (column ``account_id``), beside
#: opportunities given as :func:`deal_cells`.
OPPORTUNITY_ACCOUNTS = "opportunity_accounts"
#: What a row of :func:`deal_cells` stands for; ``amount`` and ``deals`` are its sums.
DEAL_CELL_KEYS: tuple[str, ...] = ("segment", "region", "rep_id", "close_date", "stage", "type")
#: Sums a row of :func:`deal_cells` carries when the deals have a ``created_date``: the
#: created-to-close days of its won deals that have one (negative counted 0), and those deals.
DEAL_CELL_CYCLE: tuple[str, ...] = ("cycle_days", "cycle_deals")
#: Columns of :data:`OPPORTUNITY_ACCOUNTS` beside ``account_id`` (:func:`account_amounts`).
ACCOUNT_AMOUNTS: tuple[str, ...] = ("won_amount", "open_amount")


def deal_cells(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The opportunities summed by what :func:`build_cube` reads of them.

    One row per (segment, region, rep, close month, won/lost/open, deal type)
    -- :data:`DEAL_CELL_KEYS`, labels resolved from the deal, its account or its
    rep as the cube does -- with ``amount`` summed (missing if a won deal of the
    row has none; an open or lost deal's missing amount counts 0, as in the
    pipeline) and the number of ``deals``. A partition of the opportunities
    (with the accounts and reps tables) reduces to these rows where it is read;
    :func:`combine_deal_cells` adds partitions' rows up, and ``build_cube``
    given them as the opportunities (and the accounts they name as
    :data:`OPPORTUNITY_ACCOUNTS`) builds the cube of the whole table. Sums run in
    another order, so amounts with cents may differ in the last bit.

    >>> opps = pd.DataFrame({
    ...     "opportunity_id": ["O1", "O2", "O3"],
    ...     "close_date": pd.to_datetime(["2026-01-15", "2026-01-20", "2026-02-03"]),
    ...     "amount": [100.0, 50.0, 70.0], "stage": ["won", "won", "lost"],
    ...     "rep_id": ["R1", "R1", "R1"]})
    >>> deal_cells({"opportunities": opps})[["close_date", "stage", "amount", "deals"]]
      close_date stage  amount  deals
    0 2026-01-01   won   150.0      2
    1 2026-02-01  lost    70.0      1
    """
    t = _Tables.of(tables)
    deals = _deals(t)
    kind = _text(t.opps, "type")
    won = deals.is_won
    frame = pd.DataFrame(
        {
            "segment": deals.segment.to_numpy(dtype=object),
            "region": deals.region.to_numpy(dtype=object),
            "rep_id": deals.rep.to_numpy(dtype=object),
            "close_date": deals.close_month.to_numpy(),
            "stage": np.where(won, "won", np.where(deals.is_lost, "lost", "open")).astype(object),
            "type": (
                kind.str.lower() if kind is not None else pd.Series(pd.NA, index=range(len(won)))
            )
            .astype(object)
            .to_numpy(),
            "amount": np.where(won, deals.amount, np.nan_to_num(deals.amount)),
            "deals": deals.count,
        }
    )
    if "created_date" in t.opps.columns:
        created = pd.to_datetime(t.opps["created_date"])
        days = (pd.to_datetime(t.opps["close_date"]) - created).dt.days.clip(lower=0)
        timed = won & created.notna().to_numpy()
        frame["cycle_days"] = np.where(timed, days.to_numpy(dtype=float, na_value=np.nan), 0.0)
        frame["cycle_deals"] = timed.astype(np.int64)
    return combine_deal_cells([frame])


def combine_deal_cells(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Rows of :func:`deal_cells` (of several partitions) added up by their keys."""
    frame = pd.concat(list(parts), ignore_index=True)
    frame["no_amount"] = frame["amount"].isna().astype(np.int64)
    keys = list(DEAL_CELL_KEYS)
    sums = ["amount", "deals", "no_amount", *(c for c in DEAL_CELL_CYCLE if c in frame)]
    summed = frame.groupby(keys, dropna=False, sort=True)[sums].sum()
    summed = summed.reset_index()
    summed.loc[summed.pop("no_amount") > 0, "amount"] = np.nan
    for count in ("deals", "cycle_deals"):
        if count in summed:
            summed[count] = summed[count].astype(np.int64)
    return summed


def account_amounts(opportunities: pd.DataFrame) -> pd.DataFrame:
    """Each account's won and open deal amounts: what a territory's potential reads of the deals.

    One row per account the deals name (``account_id``, sorted), with ``won_amount``
    (stage ``won``) and ``open_amount`` (stages :data:`revmodel.schema.OPEN_STAGES`)
    [currency]; a missing or negative amount counts 0. A partition of the
    opportunities reduces to these rows where it is read (as :data:`OPPORTUNITY_ACCOUNTS`
    beside :func:`deal_cells`), and :func:`combine_account_amounts` adds partitions up.

    >>> opps = pd.DataFrame({"account_id": ["A2", "A1", "A2", "A1"], "stage": ["won", "lost",
    ...     "proposal", "won"], "amount": [100.0, 50.0, 70.0, None]})
    >>> account_amounts(opps)
      account_id  won_amount  open_amount
    0         A1         0.0          0.0
    1         A2       100.0         70.0
    """
    from revmodel import schema

    ids = opportunities["account_id"]
    named = ids.notna().to_numpy()
    stage = opportunities["stage"].astype(object).map(lambda s: str(s).strip().lower())
    amount = pd.to_numeric(opportunities["amount"], errors="coerce").fillna(0.0).clip(lower=0.0)
    frame = pd.DataFrame(
        {
            "account_id": ids[named].astype(str).to_numpy(dtype=object),
            "won_amount": amount.where(stage == "won", 0.0).to_numpy(dtype=float)[named],
            "open_amount": amount.where(stage.isin(schema.OPEN_STAGES), 0.0).to_numpy(dtype=float)[
                named
            ],
        }
    )
    return combine_account_amounts([frame])


#: Table of the distinct dates of the opportunities (``kind``: ``closed`` for the close
#: dates of won and lost deals, ``created``; ``date``) beside :func:`deal_cells`: where
#: the data ends (:func:`revmodel.project.last_complete_month`) without the rows.
OPPORTUNITY_DATES = "opportunity_dates"


def deal_dates(opportunities: pd.DataFrame) -> pd.DataFrame:
    """The distinct close dates of won and lost deals and created dates (:data:`OPPORTUNITY_DATES`).

    >>> opps = pd.DataFrame({"stage": ["won", "open", "lost"], "close_date": pd.to_datetime(
    ...     ["2026-03-31", "2026-05-01", "2026-03-31"]), "created_date": pd.to_datetime(
    ...     ["2026-01-02", "2026-02-03", None])})
    >>> deal_dates(opps)
          kind       date
    0   closed 2026-03-31
    1  created 2026-01-02
    2  created 2026-02-03
    """
    closed = opportunities["stage"].astype("string").isin(["won", "lost"]).to_numpy()
    frames = [
        pd.DataFrame(
            {"kind": "closed", "date": pd.to_datetime(opportunities["close_date"])[closed]}
        )
    ]
    if "created_date" in opportunities:
        frames.append(
            pd.DataFrame({"kind": "created", "date": pd.to_datetime(opportunities["created_date"])})
        )
    return combine_deal_dates(frames)


def combine_deal_dates(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Rows of :func:`deal_dates` (of several partitions), distinct and sorted."""
    frame = pd.concat(list(parts), ignore_index=True).dropna(subset=["date"])
    frame = frame.astype({"kind": object, "date": "datetime64[ns]"})
    return frame.drop_duplicates().sort_values(["kind", "date"], ignore_index=True)


def combine_account_amounts(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Rows of :func:`account_amounts` (of several partitions) added up by account."""
    frame = pd.concat(list(parts), ignore_index=True)
    return frame.groupby("account_id", sort=True)[list(ACCOUNT_AMOUNTS)].sum().reset_index()


def _members(
    t: _Tables, deals: _Deals, sub_cells: pd.DataFrame | None
) -> tuple[list[str], list[str], list[str]]:
    """Segment, region and rep members: every label the tables use."""
    segment_values = list(deals.segment.unique())
    region_values = list(deals.region.unique())
    for frame in (t.accounts, t.reps):
        if frame is not None:
            segment_values += list(_first_of(len(frame), _text(frame, "segment")).unique())
            region_values += list(_first_of(len(frame), _text(frame, "region")).unique())
    rep_members: list[str] = []
    if t.reps is not None:
        rep_members = list(pd.unique(t.reps["rep_id"].astype("string").dropna().to_numpy()))
    extra_reps = set(deals.rep.unique())
    if sub_cells is not None:
        extra_reps |= set(sub_cells["rep"].unique())
        segment_values += list(sub_cells["segment"].unique())
        region_values += list(sub_cells["region"].unique())
    rep_members += sorted(extra_reps - set(rep_members))
    segments = _ordered_members(segment_values, [b[0] for b in config.SEGMENT_BANDS])
    # A placeholder member only where something actually falls in it.
    return segments, _ordered_members(region_values), rep_members


def _month_axis(deals: _Deals, as_of_month: pd.Timestamp) -> pd.DatetimeIndex:
    """First closed deal to the last month of open pipeline (at most 24 months ahead)."""
    closed = deals.close_month[deals.is_won | deals.is_lost]
    first = closed.min()
    is_open = deals.is_open
    last_pipe = deals.close_month[is_open].max() if is_open.any() else as_of_month
    cap = as_of_month + pd.DateOffset(months=PIPELINE_MONTHS_AHEAD)
    last = max(as_of_month, min(last_pipe, cap)) if pd.notna(last_pipe) else as_of_month
    months = pd.date_range(first, last, freq="MS")
    if len(months) == 0:
        raise DataError(
            "opportunities: no closed deal on or before as_of; nothing to build a cube from."
        )
    return months


def _deal_codes(
    deals: _Deals, members: tuple[list[str], list[str], list[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each deal's segment, region and rep code."""
    segments, regions, reps = members
    return (
        _codes(deals.segment, segments),
        _codes(deals.region, regions),
        _codes(deals.rep, reps),
    )


def _deal_measures(
    t: _Tables,
    deals: _Deals,
    layout: _Layout,
    series: tuple[np.ndarray, np.ndarray, np.ndarray],
    months: pd.DatetimeIndex,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Bookings, won, lost, bookings by deal type and pipeline; and the deals beyond the horizon."""
    s_code, g_code, r_code = series
    m_code = months.get_indexer(deals.close_month.to_numpy())
    in_range = m_code >= 0
    won = deals.is_won & in_range
    flows = [
        ("bookings", won, deals.amount),
        ("won", won, deals.count),
        ("lost", deals.is_lost & in_range, deals.count),
    ]
    kind = _text(t.opps, "type")
    if kind is not None:
        kind = kind.str.lower()
        flows += [(f"{k}_bookings", won & (kind == k).to_numpy(), deals.amount) for k in DEAL_TYPES]
    data = {
        name: layout.scatter((s_code[m], g_code[m], r_code[m], m_code[m]), w[m])
        for name, m, w in flows
    }
    is_open = deals.is_open
    beyond = is_open & (deals.close_month > months[-1]).to_numpy()
    before = is_open & (deals.close_month < months[0]).to_numpy()
    # Overdue pipeline older than the cube stays visible in the first month.
    pm = np.where(before, 0, m_code)
    keep = is_open & (pm >= 0) & ~beyond
    data["pipeline"] = layout.scatter(
        (s_code[keep], g_code[keep], r_code[keep], pm[keep]),
        np.nan_to_num(deals.amount[keep]),
    )
    return data, beyond


#: The measures of ARR, known only from a subscriptions table.
ARR_MEASURES: tuple[str, ...] = (
    "arr",
    "new_arr",
    "expansion_arr",
    "contraction_arr",
    "churned_arr",
)


def _sub_codes(
    sub_cells: pd.DataFrame, accts: Iterable[str], members: tuple[list[str], list[str], list[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment, region and rep code of each account's cell, in the order of ``accts``."""
    cells = sub_cells.reindex(np.asarray(accts, dtype=object))
    return (
        _codes(cells["segment"].reset_index(drop=True), members[0]),
        _codes(cells["region"].reset_index(drop=True), members[1]),
        _codes(cells["rep"].reset_index(drop=True), members[2]),
    )


def _arr_measures(
    subs: pd.DataFrame | None,
    sub_cells: pd.DataFrame | None,
    members: tuple[list[str], list[str], list[str]],
    months: pd.DatetimeIndex,
    layout: _Layout,
) -> dict[str, np.ndarray]:
    """ARR and its monthly movements by cell, from the subscription terms.

    Without a subscriptions table they are missing (NaN), never zero: no ARR
    is known, which is not the same as no ARR (see :func:`arr_provided`).
    """
    names = ARR_MEASURES
    if subs is None or sub_cells is None:
        return {name: layout.shaped(np.full(layout.n_rows * len(months), np.nan)) for name in names}
    window = pd.date_range(months[0] - pd.DateOffset(months=1), months[-1], freq="MS")
    accts, level = account_arr(subs, window)
    # accounts -> cells as a sparse one-hot matrix: cells x months = onehot @ (accounts x months)
    row = layout.rows(_sub_codes(sub_cells, accts, members))
    onehot = sparse.csr_matrix(
        (np.ones(len(row)), (row, np.arange(len(row)))), shape=(layout.n_rows, len(row))
    )
    moves = _arr_movements(level)
    return {name: layout.shaped(np.asarray(onehot @ moves[name])) for name in names}


def _populated(
    series: tuple[np.ndarray, np.ndarray, np.ndarray],
    sub_cells: pd.DataFrame | None,
    members: tuple[list[str], list[str], list[str]],
    shape: tuple[int, int, int, int],
) -> np.ndarray:
    """Sorted flat codes of every series a deal or a subscribed account falls in."""
    flat = [np.ravel_multi_index(series, shape[:3])]
    if sub_cells is not None:
        flat.append(
            np.ravel_multi_index(_sub_codes(sub_cells, sub_cells.index, members), shape[:3])
        )
    return np.unique(np.concatenate(flat))


def build_cube(
    tables: Mapping[str, pd.DataFrame],
    fiscal_year_start: int = config.FISCAL_YEAR_START,
    naming: str = config.FISCAL_YEAR_NAMING,
    as_of: str | pd.Timestamp | None = None,
    chunks: int | None = None,
    currency: str | None = None,
    layout: str = "dense",
) -> xr.Dataset:
    """Build the revenue cube from canonical tables.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Canonical tables (see :mod:`revmodel.schema`); only ``opportunities`` is required.
    fiscal_year_start : int
        First month of the fiscal year, 1-12.
    naming : {"end", "start"}
        Fiscal years are named by the calendar year in which they end or start.
    as_of : date-like, optional
        Last month with actuals; default the month of the latest won or lost deal.
    chunks : int, optional
        Chunk the cube over ``rep`` with this many reps per chunk (dask-backed).
    currency : str, optional
        ISO 4217 code of the amounts (the export's currency, ``LoadResult.currency``);
        default :data:`revmodel.config.CURRENCY`. Every money measure's units use it.
    layout : {"dense", "cells"}
        ``"dense"``: measures over ``segment x region x rep x month``. ``"cells"``:
        measures over ``cell x month``, one cell per (segment, region, rep) that a deal
        or a subscribed account falls in (see :data:`LAYOUTS`); memory follows the
        populated cells, :func:`unstack_cells` gives the dense cube.

    Returns
    -------
    xarray.Dataset
        The cube (see the module docstring and architecture.md). With a deal
        ``type`` column, the measures ``new_bookings``, ``expansion_bookings`` and
        ``renewal_bookings`` split bookings by type.

    Examples
    --------
    Only ``opportunities`` is required; a fiscal year starting in February:

    >>> opps = pd.DataFrame({
    ...     "opportunity_id": ["O1", "O2", "O3"],
    ...     "close_date": pd.to_datetime(["2026-01-15", "2026-02-03", "2026-02-20"]),
    ...     "amount": [12000.0, 8000.0, 5000.0],
    ...     "stage": ["won", "won", "lost"],
    ...     "rep_id": ["R1", "R2", "R1"],
    ... })
    >>> small = build_cube({"opportunities": opps}, fiscal_year_start=2, currency="EUR")
    >>> dict(small.sizes), small.attrs["as_of"], small["bookings"].attrs["units"]
    ({'segment': 1, 'region': 1, 'rep': 2, 'month': 2}, '2026-02-01', 'EUR/month')
    >>> small["fiscal_quarter"].values
    array(['FY2026-Q4', 'FY2027-Q1'], dtype=object)

    The sample company, its ARR a stock:

    >>> from revmodel import sample
    >>> ds = build_cube(sample.generate(reps=16, months=24), fiscal_year_start=11)
    >>> ds["arr"].attrs["aggregation"], ds["bookings"].attrs["aggregation"]
    ('last', 'sum')
    """
    if not 1 <= int(fiscal_year_start) <= 12:
        raise ParameterError(
            f"fiscal_year_start must be a month number 1-12, got {fiscal_year_start!r}."
        )
    if layout not in LAYOUTS:
        raise ParameterError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    t = _Tables.of(tables)
    as_of_month = _resolve_as_of(t.opps, as_of)
    deals = _deals(t)
    # ARR attribution: each account's cell (see account_cells).
    sub_cells = None
    if t.subs is not None:
        sub_accounts = pd.Index(pd.unique(t.subs["account_id"].astype("string")), dtype="string")
        sub_cells = account_cells({"accounts": t.accounts, "subscriptions": t.subs}, sub_accounts)
    members = _members(t, deals, sub_cells)
    months = _month_axis(deals, as_of_month)
    # the one size rule, also checked by `revmodel validate` (sources.load)
    sizes = (len(members[0]), len(members[1]), len(members[2]), len(months))
    too_big = cube_size_problem(dict(zip(DIMS, sizes, strict=True)))
    if too_big is not None:
        raise DataError(too_big)
    series = _deal_codes(deals, members)
    shape = (*sizes[:3], len(months))
    cells = _populated(series, sub_cells, members, shape) if layout == "cells" else None
    grid = _Layout(shape, cells)
    data, beyond = _deal_measures(t, deals, grid, series, months)
    data.update(_arr_measures(t.subs, sub_cells, members, months, grid))
    attrs = {
        "fiscal_year_start": int(fiscal_year_start),
        "fiscal_year_naming": naming,
        "currency": str(currency or config.CURRENCY),
        "as_of": as_of_month.strftime("%Y-%m-%d"),
        "pipeline_beyond_horizon_deals": int(beyond.sum()),
        "pipeline_beyond_horizon_amount": float(np.nansum(deals.amount[beyond])),
    }
    ds = _assemble(data, members, months, t.reps, attrs)
    accounts = _account_coords(t)
    if len(accounts["account"]):  # no account named: no account lookup
        ds = ds.assign_coords(accounts)
    if cells is not None:
        ds = _as_cells(ds, np.unravel_index(cells, shape[:3]))
    return ds.chunk({"rep" if cells is None else "cell": int(chunks)}) if chunks else ds


def _account_coords(t: _Tables) -> dict[str, tuple[str, np.ndarray] | np.ndarray]:
    """Accounts by name: ``account`` (ids), ``account_name`` and ``account_label``.

    Every account the exports name (accounts, opportunities, subscriptions);
    ``account_label`` is :func:`display_labels`: the name, with the id where two
    share a name. No measure runs over ``account``; it is the lookup every table,
    chart and app uses to show an account by name.
    """
    frames = [
        f
        for f in (t.accounts, t.opps, t.opp_accounts, t.subs)
        if f is not None and "account_id" in f
    ]
    ids = pd.Index(
        pd.unique(pd.concat([f["account_id"].dropna().astype(str) for f in frames]))
        if frames
        else [],
        dtype=object,
    ).sort_values()
    names = pd.Series(ids, index=ids, dtype=object)
    if t.accounts is not None and "account_name" in t.accounts:
        given = t.accounts.dropna(subset=["account_id"]).drop_duplicates("account_id")
        named = given.set_index(given["account_id"].astype(str))["account_name"]
        named = named.astype("string").str.strip().mask(lambda s: s == "").dropna()
        names.update(named.astype(object))
    return {
        "account": ids.to_numpy(dtype=object),
        "account_name": ("account", names.to_numpy(dtype=object)),
        "account_label": ("account", display_labels(ids, names.to_numpy(dtype=object))),
    }


def _assemble(
    data: dict[str, np.ndarray],
    members: tuple[list[str], list[str], list[str]],
    months: pd.DatetimeIndex,
    reps: pd.DataFrame | None,
    attrs: dict[str, object],
) -> xr.Dataset:
    """The Dataset of the contract: measures NaN after as_of, with units and aggregation."""
    segments, regions, rep_members = members
    contract = measures(str(attrs["currency"]))
    future = months > pd.Timestamp(str(attrs["as_of"]))
    for name in data:
        if contract[name].actual:
            data[name][..., future] = np.nan
    coords: dict[str, object] = {
        "segment": np.array(segments, dtype=object),
        "region": np.array(regions, dtype=object),
        "rep": np.array(rep_members, dtype=object),
        "month": months.values.astype("datetime64[ns]"),
    }
    coords.update(_rep_coords(reps, rep_members))
    cal = fcal.month_coords(
        months, start_month=int(attrs["fiscal_year_start"]), naming=str(attrs["fiscal_year_naming"])
    )
    for k, v in cal.items():
        coords[k] = ("month", np.asarray(v, dtype=object))
    variables = {
        name: (
            DIMS if data[name].ndim == len(DIMS) else CELL_DIMS,
            data[name],
            {"units": m.units, "long_name": m.long_name, "aggregation": m.aggregation},
        )
        for name, m in contract.items()
        if name in data
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------- populated cells


def _as_cells(ds: xr.Dataset, codes: tuple[np.ndarray, ...]) -> xr.Dataset:
    """``ds`` (measures over ``cell x month``) with each cell's segment, region and rep."""
    return ds.assign_coords(
        {
            f"cell_{d}": ("cell", np.asarray(ds[d].values)[code])
            for d, code in zip(SERIES_DIMS, codes, strict=True)
        }
    )


def _cell_codes(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each stored cell's segment, region and rep position among the members."""
    codes = []
    for d in SERIES_DIMS:
        code = pd.Index(np.asarray(ds[d].values)).get_indexer(np.asarray(ds[f"cell_{d}"].values))
        if (code < 0).any():
            raise DataError(f"the cube's cells name a {d} that is not among its {d} members.")
        codes.append(code)
    return codes[0], codes[1], codes[2]


def _absent(ds: xr.Dataset, name: str) -> np.ndarray:
    """A measure's months in a cell that is not stored: 0, NaN after ``as_of`` for actuals;
    NaN throughout for the ARR measures of a cube built without subscriptions."""
    if name in ARR_MEASURES and not arr_provided(ds):
        return np.full(ds.sizes["month"], np.nan)
    out = np.zeros(ds.sizes["month"])
    measure = MEASURES.get(str(name))
    if measure is not None and measure.actual and "as_of" in ds.attrs:
        out[ds["month"].values > np.datetime64(pd.Timestamp(ds.attrs["as_of"]), "ns")] = np.nan
    return out


def _cell_vars(ds: xr.Dataset) -> list[str]:
    return [n for n, v in ds.data_vars.items() if v.dims == CELL_DIMS]


def stack_cells(ds: xr.Dataset) -> xr.Dataset:
    """The cube with measures over its populated cells only (the ``"cells"`` layout).

    A (segment, region, rep) series is kept when any measure differs from what an
    empty series holds (0; NaN after ``as_of`` for actuals); the members, their
    coordinates and the attrs stay. ``unstack_cells(stack_cells(ds))`` is ``ds``.

    Examples
    --------
    >>> cells = stack_cells(ds)  # doctest: +SKIP
    >>> cells.sizes["cell"] < ds.sizes["segment"] * ds.sizes["region"] * ds.sizes["rep"]  # doctest: +SKIP
    True
    """
    if "cell" in ds.dims:
        return ds
    names = [n for n, v in ds.data_vars.items() if set(v.dims) == set(DIMS)]
    keep = np.zeros([ds.sizes[d] for d in SERIES_DIMS], dtype=bool)
    for name in names:
        values = np.asarray(ds[name].transpose(*DIMS).values, dtype=float)
        absent = _absent(ds, name)
        same = (values == absent) | (np.isnan(values) & np.isnan(absent))
        keep |= ~same.all(axis=-1)
    codes = np.nonzero(keep)
    stacked = {
        name: (CELL_DIMS, np.asarray(ds[name].transpose(*DIMS).values)[codes], ds[name].attrs)
        for name in names
    }
    out = ds.drop_vars(names).assign(stacked)
    return _as_cells(out, codes)


def unstack_cells(ds: xr.Dataset) -> xr.Dataset:
    """The dense cube (measures over ``segment x region x rep x month``) of a ``"cells"`` cube.

    Examples
    --------
    >>> dense = unstack_cells(build_cube(tables, layout="cells"))  # doctest: +SKIP
    """
    if "cell" not in ds.dims:
        return ds
    codes = _cell_codes(ds)
    shape = tuple(ds.sizes[d] for d in DIMS)
    dense = {}
    for name in _cell_vars(ds):
        values = np.empty(shape)
        values[...] = _absent(ds, name)
        values[codes] = np.asarray(ds[name].values, dtype=float)
        dense[name] = (DIMS, values, ds[name].attrs)
    cell_coords = [c for c in ds.coords if "cell" in ds[c].dims]
    return ds.drop_vars([*_cell_vars(ds), *cell_coords]).assign(dense)


def _collapse_cells(ds: xr.Dataset, keep: list[str]) -> xr.Dataset:
    """A ``"cells"`` cube summed to the series dims ``keep`` (dense over those), as
    :func:`rollup` sums the dense cube: NaN cells skipped, all-NaN groups NaN."""
    codes = dict(zip(SERIES_DIMS, _cell_codes(ds), strict=True))
    dims = [d for d in SERIES_DIMS if d in keep]
    sizes = [ds.sizes[d] for d in dims]
    group = np.ravel_multi_index([codes[d] for d in dims], sizes) if dims else codes["rep"] * 0
    n_groups = int(np.prod(sizes)) if dims else 1
    n_cells = len(group)
    onehot = sparse.csr_matrix((np.ones(n_cells), (group, np.arange(n_cells))), (n_groups, n_cells))
    dense_per_group = np.prod([ds.sizes[d] for d in SERIES_DIMS]) / n_groups
    has_absent = (dense_per_group - np.bincount(group, minlength=n_groups)) > 0
    out: dict[str, tuple] = {}
    for name in _cell_vars(ds):
        values = np.asarray(ds[name].values, dtype=float)
        finite = np.isfinite(values)
        total = np.asarray(onehot @ np.where(finite, values, 0.0))
        count = np.asarray(onehot @ finite.astype(float))
        zero_absent = has_absent[:, None] & np.isfinite(_absent(ds, name))[None, :]
        summed = np.where((count > 0) | zero_absent, total, np.nan)
        out[name] = ((*dims, "month"), summed.reshape(*sizes, -1), ds[name].attrs)
    summed = {"cell", *(d for d in SERIES_DIMS if d not in dims)}
    coords = {c: ds[c] for c in ds.coords if not set(ds[c].dims) & summed}
    rest = {n: v for n, v in ds.data_vars.items() if "cell" not in v.dims}
    return xr.Dataset({**out, **rest}, coords=coords, attrs=ds.attrs)


def display_labels(ids: Iterable[str], names: Iterable[object] | None = None) -> np.ndarray:
    """How people and accounts are shown: the name, with the id where two share a name.

    One function for every table, chart, app and workbook. A missing or blank
    name shows the id.

    Parameters
    ----------
    ids : iterable of str
        Ids (e.g. ``rep_id``).
    names : iterable, optional
        Names in the same order (e.g. ``rep_name``); None shows the ids.

    Returns
    -------
    numpy.ndarray of str

    Examples
    --------
    >>> display_labels(["R1", "R2", "R3", "R4"], ["Ann Lee", "Bo Chen", "Ann Lee", None]).tolist()
    ['Ann Lee (R1)', 'Bo Chen', 'Ann Lee (R3)', 'R4']
    """
    ids = [str(i) for i in ids]
    raw = [None] * len(ids) if names is None else list(names)
    clean = [
        str(n).strip() if isinstance(n, str) and n.strip() and n != config.PLACEHOLDER else None
        for n in raw
    ]
    counts = pd.Series([n for n in clean if n is not None], dtype=object).value_counts()
    out = [
        i if n is None else (f"{n} ({i})" if counts.get(n, 0) > 1 else n)
        for i, n in zip(ids, clean, strict=True)
    ]
    return np.array(out, dtype=object)


def labels(ds: xr.Dataset | xr.DataArray, level: str = "rep") -> dict[str, str]:
    """Member -> display label of a level of the cube (reps and accounts by name; others as they are).

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        The cube, or a measure with its coordinates.
    level : str
        A dim of the cube.

    Returns
    -------
    dict of str to str

    Examples
    --------
    >>> labels(ds)["R0001"]
    'Priya Ferreira'
    >>> labels(ds, "segment")["SMB"]
    'SMB'
    """
    members = np.asarray(ds[level].values).astype(str).tolist()
    label = {"rep": "rep_label", "account": "account_label"}.get(level)
    if label is not None and label in ds.coords:
        shown = np.asarray(ds[label].values).astype(str).tolist()
        return dict(zip(members, shown, strict=True))
    return dict(zip(members, members, strict=True))


def product_bookings(
    tables: Mapping[str, pd.DataFrame], ds: xr.Dataset, kind: str = "product"
) -> xr.DataArray:
    """Won bookings by ``product`` (or deal ``type``), rep and month, on the cube's axes.

    A separate DataArray rather than a dim of the cube: the cube stays
    ``segment x region x rep x month`` (at 20,000 reps x 48 months a product dim
    would multiply every measure), while this one is ``product x rep x month``
    (10 products: 20,000 x 48 x 10 x 8 bytes = 77 MB). It carries the cube's rep
    coordinates, so :func:`rollup` takes it to managers, regions and fiscal periods.
    Deals attribute to reps as in the cube; a deal without the column is in the
    placeholder member.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        The tables the cube was built from.
    ds : xarray.Dataset
        The cube.
    kind : {"product", "type"}
        Column of ``opportunities`` to split by.

    Returns
    -------
    xarray.DataArray
        ``(kind, rep, month)`` [currency/month], NaN after ``as_of``.

    Examples
    --------
    >>> by = product_bookings(tables, ds)
    >>> by.dims, by["product"].values
    (('product', 'rep', 'month'), array(['Analytics', 'Automation', 'Platform'], dtype=object))
    >>> yearly = rollup(by, "manager", period="fiscal_year")
    >>> (yearly.sel(fiscal_year="FY2026") / 1e6).round(2).to_pandas()
    manager     Laura Chen  Samuel Moreau
    product
    Analytics         3.85           3.37
    Automation        1.86           1.85
    Platform         14.11          11.06
    """
    if kind not in ("product", "type"):
        raise ParameterError(f"product_bookings: kind must be 'product' or 'type', got {kind!r}.")
    t = _Tables.of(tables)
    deals = _deals(t)
    split = _first_of(len(t.opps), _text(t.opps, kind))
    # A placeholder member only where a won deal falls in it.
    members = _ordered_members(split[deals.is_won].unique())
    months = pd.DatetimeIndex(ds["month"].values)
    reps = [str(r) for r in ds["rep"].values]
    m_code = months.get_indexer(deals.close_month.to_numpy())
    r_code = _codes(deals.rep, reps)
    won = deals.is_won & (m_code >= 0) & (r_code >= 0)
    shape = (len(members), len(reps), len(months))
    k_code = _codes(split, members)
    values = _scatter(shape, (k_code[won], r_code[won], m_code[won]), deals.amount[won])
    values[..., months > pd.Timestamp(ds.attrs["as_of"])] = np.nan
    rep_coords = {c: ds[c] for c in ds.coords if ds[c].dims == ("rep",)}
    month_coords = {c: ds[c] for c in ds.coords if ds[c].dims == ("month",)}
    cur = ds.attrs.get("currency", config.CURRENCY)
    return xr.DataArray(
        values,
        dims=(kind, "rep", "month"),
        coords={kind: np.array(members, dtype=object), **rep_coords, **month_coords},
        name=f"bookings_by_{kind}",
        attrs={
            "units": f"{cur}/month",
            "long_name": f"Closed-won bookings by {kind} and close month",
            "aggregation": "sum",
        },
    )


def _rep_coords(reps: pd.DataFrame | None, members: list[str]) -> dict[str, tuple[str, np.ndarray]]:
    n = len(members)
    if reps is None:
        frame = pd.DataFrame(index=pd.Index(members, dtype="string"))
    else:
        frame = (
            reps.assign(rep_id=reps["rep_id"].astype("string"))
            .drop_duplicates("rep_id")
            .set_index("rep_id")
        )
        frame = frame.reindex(pd.Index(members, dtype="string"))

    def text(col: str) -> np.ndarray:
        if col not in frame.columns:
            return np.full(n, config.PLACEHOLDER, dtype=object)
        s = frame[col].astype("string").str.strip()
        return s.mask(s == "").fillna(config.PLACEHOLDER).to_numpy(dtype=object)

    def date(col: str) -> np.ndarray:
        if col not in frame.columns:
            return np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        return pd.to_datetime(frame[col]).to_numpy(dtype="datetime64[ns]")

    ramp = (
        pd.to_numeric(frame["ramp_months"], errors="coerce").to_numpy(dtype=float)
        if "ramp_months" in frame.columns
        else np.full(n, np.nan)
    )
    given = text("rep_name")
    shown = display_labels(members, given)
    return {
        "rep_name": ("rep", np.where(given == config.PLACEHOLDER, members, given).astype(object)),
        "rep_label": ("rep", shown),
        "manager": ("rep", text("manager")),
        "rep_region": ("rep", text("region")),
        "rep_segment": ("rep", text("segment")),
        "hire_date": ("rep", date("hire_date")),
        "end_date": ("rep", date("end_date")),
        "ramp_months": ("rep", ramp),
    }


# --------------------------------------------------------------------------- validate


def validate_cube(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` honours the cube contract; return it unchanged.

    Parameters
    ----------
    ds : xarray.Dataset
        A cube.

    Returns
    -------
    xarray.Dataset
        ``ds``, unchanged.

    Raises
    ------
    DataError
        Listing every breach of the contract.

    Examples
    --------
    >>> validate_cube(ds) is ds
    True
    >>> validate_cube(ds.drop_vars("fiscal_year"))
    Traceback (most recent call last):
    ...
    revmodel.errors.DataError: The cube breaks its contract: missing coordinate 'fiscal_year'.
    """
    problems: list[str] = []
    for d in DIMS:
        if d not in ds.dims:
            problems.append(f"missing dimension {d!r}")
    for c in ("manager", "fiscal_quarter", "fiscal_year"):
        if c not in ds.coords:
            problems.append(f"missing coordinate {c!r}")
    for a in ("fiscal_year_start", "as_of", "currency"):
        if a not in ds.attrs:
            problems.append(f"missing attribute {a!r}")
    if "month" in ds.dims:
        months = pd.DatetimeIndex(ds["month"].values)
        if len(months) and not (months == months.to_period("M").to_timestamp()).all():
            problems.append("month values must be first days of months")
        if (
            len(months) > 1
            and not (months == pd.date_range(months[0], periods=len(months), freq="MS")).all()
        ):
            problems.append("months must be consecutive and increasing")
    for name, var in ds.data_vars.items():
        if (set(var.dims) >= set(DIMS) or var.dims == CELL_DIMS) and "units" not in var.attrs:
            problems.append(f"measure {name!r} has no units attribute")
    if not problems and "as_of" in ds.attrs:
        as_of = np.datetime64(pd.Timestamp(ds.attrs["as_of"]), "ns")
        hist = ds.sel(month=slice(None, as_of))
        # ARR measures without subscriptions are missing as a whole (not provided).
        unknown = () if arr_provided(ds) else ARR_MEASURES
        for name, m in MEASURES.items():
            if name in ds and m.actual and name not in unknown:
                n_nan = int(hist[name].isnull().sum())
                if n_nan:
                    problems.append(
                        f"measure {name!r} has {n_nan} missing cells up to as_of {ds.attrs['as_of']}"
                    )
        for name in ("bookings", "pipeline", "won", "lost", "arr"):
            if name in ds:
                n_neg = int((ds[name] < 0).sum())
                if n_neg:
                    problems.append(f"measure {name!r} has {n_neg} negative cells")
    if problems:
        raise DataError("The cube breaks its contract: " + "; ".join(problems) + ".")
    return ds


# --------------------------------------------------------------------------- roll-ups


def aggregation(da: xr.DataArray, name: str | None = None) -> str:
    """How a measure aggregates over time: ``"sum"``, ``"last"`` or ``"ratio"``.

    Read from ``attrs["aggregation"]``; else from the contract (:data:`MEASURES`)
    by name; else ``"sum"`` when the units are per month (a flow).

    Parameters
    ----------
    da : xarray.DataArray
        A measure.
    name : str, optional
        Its name in the Dataset (default ``da.name``).

    Returns
    -------
    str

    Raises
    ------
    ParameterError
        When nothing says how the measure aggregates.

    Examples
    --------
    >>> import xarray as xr
    >>> aggregation(xr.DataArray([1.0], dims="month", name="arr"))
    'last'
    >>> aggregation(xr.DataArray([1.0], dims="month", attrs={"units": "USD/month"}))
    'sum'
    """
    how = da.attrs.get("aggregation")
    key = name if name is not None else da.name
    if how is None and key in MEASURES:
        how = MEASURES[str(key)].aggregation
    units = da.attrs.get("units")
    if how is None and isinstance(units, str) and units.endswith("/month"):
        how = "sum"
    if how is None:
        raise ParameterError(
            f"rollup: measure {key!r} does not say how it aggregates over time: set "
            "attrs['aggregation'] to 'sum' (a flow, e.g. bookings) or 'last' (a stock, e.g. ARR)."
        )
    if how not in AGGREGATIONS:
        raise ParameterError(
            f"rollup: measure {key!r} has aggregation {how!r}; use one of {', '.join(AGGREGATIONS)}."
        )
    return str(how)


def levels(dims: Iterable[str] | str) -> tuple[str, ...]:
    """Levels as a tuple, a string being one level (never its letters).

    Every function that takes ``dims`` reads them through this one rule.

    Parameters
    ----------
    dims : str or iterable of str
        ``"region"`` or ``("region", "segment")``.

    Returns
    -------
    tuple of str

    Raises
    ------
    ParameterError
        For anything but a name or an iterable of names, listing the levels.

    Examples
    --------
    >>> levels("region"), levels(["region", "segment"]), levels(())
    (('region',), ('region', 'segment'), ())
    >>> levels(3)
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: levels must be a level name or a tuple of them, e.g. 'region' or ('region', 'segment'), got 3; the levels are segment, region, rep, manager, rep_region, rep_segment.
    """
    if isinstance(dims, str):
        return (dims,)
    if not isinstance(dims, Iterable) or isinstance(dims, Mapping):
        raise ParameterError(
            f"levels must be a level name or a tuple of them, e.g. 'region' or "
            f"('region', 'segment'), got {dims!r}; the levels are "
            f"{', '.join(SERIES_DIMS + REP_LEVELS)}."
        )
    return tuple(dims)


def expect_cube(obj: object, where: str, measure: bool = False) -> None:
    """Refuse what is not a cube (or, with ``measure``, one of its measures) in plain words.

    Parameters
    ----------
    obj : object
        What a function was given as the cube.
    where : str
        The function, named in the message.
    measure : bool
        A DataArray (one measure) is accepted too.

    Raises
    ------
    ParameterError
        Naming the type given and how to build a cube.

    Examples
    --------
    >>> expect_cube(ds, "rollup")
    >>> expect_cube(tables, "arr_bridge")
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: arr_bridge: expected the revenue cube (an xarray Dataset), got dict; build it with revmodel.cube.build_cube(tables).
    """
    kinds = (xr.Dataset, xr.DataArray) if measure else (xr.Dataset,)
    if not isinstance(obj, kinds):
        what = "the revenue cube (an xarray Dataset)" + (
            " or one of its measures" if measure else ""
        )
        raise ParameterError(
            f"{where}: expected {what}, got {type(obj).__name__}; "
            "build it with revmodel.cube.build_cube(tables)."
        )


def _levels(dims: Iterable[str] | str) -> list[str]:
    """The levels to keep, a single string being one level."""
    valid = SERIES_DIMS + REP_LEVELS
    keep = list(levels(dims))
    for d in keep:
        if not isinstance(d, str) or d not in valid:
            raise ParameterError(f"rollup: unknown level {d!r}; use any of {', '.join(valid)}.")
    rep_level = [d for d in keep if d in REP_LEVELS]
    if len(rep_level) > 1:
        raise ParameterError(
            "rollup: keep at most one rep-level coordinate (manager, rep_region or rep_segment)."
        )
    if rep_level and "rep" in keep:
        raise ParameterError(
            f"rollup: {rep_level[0]!r} and 'rep' cannot both be kept; {rep_level[0]} groups reps."
        )
    return keep


def _sum_levels(obj: xr.Dataset | xr.DataArray, keep: list[str]) -> xr.Dataset | xr.DataArray:
    rep_level = [d for d in keep if d in REP_LEVELS]
    drop = [
        d for d in SERIES_DIMS if d in obj.dims and d not in keep and not (d == "rep" and rep_level)
    ]
    out = obj.sum(dim=drop, skipna=True, min_count=1, keep_attrs=True) if drop else obj
    if rep_level and "rep" in out.dims:
        # Grouping by a dask-backed coordinate needs its labels up front.
        level = rep_level[0]
        out = out.assign_coords({level: ("rep", np.asarray(out[level].values))})
        out = out.groupby(level).sum(dim="rep", skipna=True, min_count=1, keep_attrs=True)
    return out


def _over_time(obj: xr.Dataset | xr.DataArray, period: str) -> xr.Dataset | xr.DataArray:
    """Aggregate months to ``period``, each measure as the contract says."""
    if isinstance(obj, xr.DataArray):
        how = aggregation(obj)
        if how == "ratio":
            raise ParameterError(
                f"rollup: {obj.name!r} is a ratio; roll up its parts "
                f"({obj.attrs.get('numerator')!r}, {obj.attrs.get('denominator')!r}) "
                "in a Dataset and it is recomputed from them."
            )
        return fcal.rollup(obj, period=period, how=how)
    timed = [n for n, v in obj.data_vars.items() if "month" in v.dims]
    hows = {n: aggregation(obj[n], n) for n in timed}
    parts: dict[str, xr.DataArray] = {}
    for how in ("sum", "last"):
        names = [n for n in timed if hows[n] == how]
        if names:
            parts.update(fcal.rollup(obj[names], period=period, how=how).data_vars)
    if not parts:
        return fcal.rollup(obj, period=period)
    out = xr.Dataset({n: parts[n] for n in timed if n in parts})
    return out.assign({n: v for n, v in obj.data_vars.items() if n not in timed})


def _ratios(rolled: xr.Dataset, original: xr.Dataset) -> xr.Dataset:
    """Recompute ratio measures from their rolled-up numerator and denominator."""
    for name, var in original.data_vars.items():
        if var.attrs.get("aggregation") != "ratio":
            continue
        num, den = var.attrs.get("numerator"), var.attrs.get("denominator")
        if num not in rolled or den not in rolled:
            raise ParameterError(
                f"rollup: ratio {name!r} needs its parts {num!r} and {den!r} in the Dataset."
            )
        value = rolled[num] / rolled[den].where(rolled[den] != 0)
        rolled[name] = value.assign_attrs(var.attrs)
    return rolled


def rollup(
    obj: xr.Dataset | xr.DataArray,
    dims: Iterable[str] | str = (),
    period: str = "month",
) -> xr.Dataset | xr.DataArray:
    """Roll the cube up to ``dims`` and a calendar ``period``, each measure as it aggregates.

    Over the hierarchy every measure adds up. Over time each measure follows its
    ``aggregation`` (see :func:`aggregation`): flows (bookings, won, lost, new,
    expansion, contraction and churned ARR, pipeline by expected close month)
    are summed over the period's months; stocks (ARR) take the period-end value;
    ratios are recomputed from their rolled-up parts.

    A partial period (the one holding ``as_of``, or a fiscal year cut by the
    start of the data) sums the months it has; its stock is the value at its
    last month with actuals (months after ``as_of`` are NaN and skipped). A
    period with no month of actuals is NaN.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Cube or measure with the cube's dims (numpy- or dask-backed).
    dims : str or iterable of str
        Levels to keep: any of ``segment``, ``region``, ``rep`` and the rep-level
        coordinates ``manager``, ``rep_region``, ``rep_segment``; a string is one
        level. Every other series dim is summed over.
    period : {"month", "fiscal_quarter", "fiscal_year"}
        Calendar level of the result.

    Returns
    -------
    Same type as ``obj``. Sums skip NaN cells; all-NaN groups stay NaN. Units of
    flows become per quarter or per year; ARR stays [currency/year].

    Raises
    ------
    ParameterError
        For an unknown level or period (the message lists the valid ones).

    Examples
    --------
    >>> quarters = rollup(ds["bookings"], ("region",), period="fiscal_quarter")
    >>> quarters.sel(fiscal_quarter="FY2026-Q4").values
    array([5104312., 5356420.])
    >>> arr = rollup(ds, "manager", period="fiscal_year")["arr"]
    >>> year_end = ds["arr"].sel(month="2025-10-01").groupby("manager").sum(...)
    >>> bool((arr.sel(fiscal_year="FY2025") == year_end).all()), arr.attrs["units"]
    (True, 'USD/year')
    """
    expect_cube(obj, "rollup", measure=True)
    keep = _levels(dims)
    if period not in PERIODS:
        raise ParameterError(f"rollup: unknown period {period!r}; use one of {', '.join(PERIODS)}.")
    ratio_vars = []
    source = obj
    if isinstance(obj, xr.Dataset):
        ratio_vars = [n for n, v in obj.data_vars.items() if v.attrs.get("aggregation") == "ratio"]
        source = obj.drop_vars(ratio_vars)
    elif obj.attrs.get("aggregation") == "ratio":
        raise ParameterError(
            f"rollup: {obj.name!r} is a ratio; roll up its parts in a Dataset and it is "
            "recomputed from them."
        )
    if "cell" in source.dims:
        if isinstance(source, xr.DataArray):
            raise ParameterError(
                "rollup: this measure is stored by populated cell (the cube's 'cells' layout); "
                "roll up the cube Dataset, or revmodel.cube.unstack_cells(ds) first."
            )
        rep_level = any(d in REP_LEVELS for d in keep)
        source = _collapse_cells(source, [*keep, *(["rep"] if rep_level else [])])
    out = _sum_levels(source, keep)
    if period != "month":
        out = _over_time(out, period)
    if ratio_vars:
        out = _ratios(out, obj)
    return out


# --------------------------------------------------------------------------- storage


def save_cube(ds: xr.Dataset, path: str | Path) -> Path:
    """Write the cube: ``.nc`` as NetCDF, ``.zarr`` as Zarr.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    path : str or Path
        A ``.nc`` file or a ``.zarr`` folder; its parent folders are made.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save_cube(ds, Path(folder) / "cube.nc")
    ...     back = load_cube(path)
    ...     path.name, back.attrs["as_of"], float(back["arr"].sum()) == float(ds["arr"].sum())
    ('cube.nc', '2026-10-01', True)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".nc", ".zarr"):
        raise ParameterError(f"{path}: cube files end in .nc (NetCDF) or .zarr (Zarr).")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = encoding.encode(ds)
    if suffix == ".nc":
        ds.to_netcdf(path, engine="netcdf4")
    else:
        # Zarr format 2: fixed-width strings and consolidated metadata are part of its spec.
        ds.to_zarr(path, mode="w", consolidated=True, zarr_format=2)
    return path


def load_cube(path: str | Path, chunks: dict | None = None) -> xr.Dataset:
    """Read a cube written by :func:`save_cube`; ``chunks`` gives a dask-backed cube.

    Parameters
    ----------
    path : str or Path
        A ``.nc`` file or ``.zarr`` folder.
    chunks : dict, optional
        Dask chunks, e.g. ``{"rep": 250}``; None loads the cube into memory.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    DataError
        A missing or unreadable file, saying how to build one.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     lazy = load_cube(save_cube(ds, Path(folder) / "cube.nc"), chunks={"rep": 8})
    ...     lazy["bookings"].chunks[2], xr.testing.assert_identical(lazy.load(), ds)
    ((8, 8), None)
    >>> load_cube("missing.nc")
    Traceback (most recent call last):
    ...
    revmodel.errors.DataError: missing.nc: no such cube file; build one with `revmodel cube DIR --out missing.nc`.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: no such cube file; build one with `revmodel cube DIR --out {path.name}`."
        )
    try:
        if path.suffix.lower() == ".zarr":
            ds = xr.open_zarr(path, chunks=chunks)
        else:
            ds = xr.open_dataset(path, engine="netcdf4", chunks=chunks)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable cube file ({exc}).") from exc
    if chunks is None:
        ds = ds.load()
    ds = encoding.decode(ds)
    return ds


# --------------------------------------------------------------------------- summaries


def arr_provided(ds: xr.Dataset) -> bool:
    """Whether the cube knows ARR: built with subscriptions, its ARR measures are numbers.

    Without them every ARR measure is missing (NaN), and every surface says
    "not provided" rather than showing zeros.

    Examples
    --------
    >>> arr_provided(xr.Dataset({"arr": ("month", [np.nan, np.nan])}))
    False
    >>> arr_provided(xr.Dataset({"arr": ("month", [0.0, 1200.0])}))
    True
    """
    return "arr" in ds and bool(ds["arr"].notnull().any())


def summary(ds: xr.Dataset) -> str:
    """A short readable description of a cube: members, period, bookings, ARR, pipeline.

    The data only; :func:`revmodel.kpi.cube_summary` adds the KPIs (churn rate).

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.

    Returns
    -------
    str

    Examples
    --------
    >>> print(summary(ds))
    Revenue cube: 3 segments x 2 regions x 16 reps x 33 months (2024-11 to 2027-07; ...)
    Bookings by fiscal year [USD]:
      FY2025        29,403,944
      FY2026        36,106,787
    Bookings by region, last 4 fiscal quarters [USD]:
                North America East North America West
      FY2026-Q1          3,720,829          5,152,578
      FY2026-Q2          3,366,492          3,839,804
      FY2026-Q3          4,090,328          5,476,024
      FY2026-Q4          5,104,312          5,356,420
    ARR at 2026-10: 36,106,787 USD/year
    Open pipeline after 2026-10: 19,756,999 USD in 9 months
    """
    as_of = pd.Timestamp(ds.attrs["as_of"])
    months = pd.DatetimeIndex(ds["month"].values)
    # a cube by populated cell is summed to regions first, never spread over every series
    shown = rollup(ds, ("region",), "month") if "cell" in ds.dims else ds
    hist = shown.sel(month=slice(None, np.datetime64(as_of, "ns")))
    cur = ds.attrs.get("currency", config.CURRENCY)
    lines = [
        f"Revenue cube: {ds.sizes['segment']} segments x {ds.sizes['region']} regions x "
        f"{ds.sizes['rep']} reps x {ds.sizes['month']} months "
        f"({months[0]:%Y-%m} to {months[-1]:%Y-%m}; actuals to {as_of:%Y-%m}; "
        f"fiscal year starts in month {ds.attrs['fiscal_year_start']})",
    ]
    by_year = rollup(hist["bookings"], period="fiscal_year").to_series()
    lines.append(f"Bookings by fiscal year [{cur}]:")
    counts = pd.Series(hist["fiscal_year"].values).value_counts()
    for fy, v in by_year.items():
        note = "" if counts.get(fy, 0) == 12 else f"  ({counts.get(fy, 0)} months)"
        lines.append(f"  {fy}  {v:>16,.0f}{note}")
    last_q = rollup(hist["bookings"], dims=("region",), period="fiscal_quarter")
    q = last_q["fiscal_quarter"].values[-4:]
    table = last_q.sel(fiscal_quarter=q).to_pandas()
    if isinstance(table, pd.Series):
        table = table.to_frame()
    lines.append(f"Bookings by region, last 4 fiscal quarters [{cur}]:")
    by_quarter = table.T.map(lambda v: f"{v:,.0f}").rename_axis(index=None, columns=None)
    lines.append("\n".join("  " + row for row in by_quarter.to_string().splitlines()))
    if arr_provided(ds):
        arr_now = float(hist["arr"].isel(month=-1).sum())
        lines.append(f"ARR at {as_of:%Y-%m}: {arr_now:,.0f} {cur}/year")
    else:
        lines.append("ARR: not provided (add the subscriptions table)")
    future = shown["pipeline"].sel(
        month=slice(np.datetime64(as_of + pd.DateOffset(months=1), "ns"), None)
    )
    by_month = future.sum([d for d in SERIES_DIMS if d in future.dims])
    lines.append(
        f"Open pipeline after {as_of:%Y-%m}: {float(future.sum()):,.0f} {cur} "
        f"in {int((by_month > 0).sum())} months"
    )
    return "\n".join(lines)
