"""Pipeline history: the state of every deal on any day, and what changed between two days.

History is the canonical ``opportunity_history`` table (one row per state of a
deal, each row the deal's state from ``changed_at`` on), loaded from a CRM
field-history export, or derived from the snapshots ``revmodel snapshot``
stores (see :mod:`revmodel.snapshots`).

The waterfall (:func:`waterfall`)
---------------------------------
For the deals expected to close in a period ``[period_start, period_end]``
(close dates, inclusive) and a window ``[start, end]`` (days, inclusive), each
deal is looked at in two states:

- ``s0``, its state at the start of ``start`` (its last row dated before
  ``start``; absent if it did not exist yet), and
- ``s1``, its state at the end of ``end`` (its last row dated on or before
  ``end``).

A deal is *in the period* in a state when that state is open (stage not won or
lost) and its close date is in the period. ``A0`` and ``A1`` are its amounts
in ``s0`` and ``s1``. A deal *closed in the window* when ``s1`` is won or lost
and the change that closed it (the first row after its last open row) is dated
in the window; it *closed in the period* when, besides, the close date of
``s1`` is in the period. ``W`` is the amount of its last open row (the amount
it had when it was last open), or of ``s1`` if it never was open.

Each deal then contributes to the bars as follows (amounts to the cent):

=====================================  =========================================
deal                                   bars
=====================================  =========================================
in the period in ``s0`` and ``s1``     ``opening A0``; ``increased A1 - A0`` if
                                       positive, else ``decreased A0 - A1``;
                                       ``closing A1``
in the period in ``s0``, closed in     ``opening A0``; ``increased``/``decreased``
the period                             by ``W - A0``; ``won W`` or ``lost W``
in the period in ``s0``, neither       ``opening A0``; ``pushed_out A0`` (it left
                                       the period: its close date moved out,
                                       either way, or it closed with a close
                                       date outside the period)
not in the period in ``s0``, in the    ``new A1`` if ``s0`` is absent (created in
period in ``s1``                       the window) or closed (re-opened), else
                                       ``pulled_in A1`` (its close date moved
                                       into the period, from a later or an
                                       earlier one); ``closing A1``
not in the period in ``s0``, closed    ``new W`` or ``pulled_in W`` as above,
in the period                          then ``won W`` or ``lost W``
otherwise                              nothing
=====================================  =========================================

So every deal balances, ``opening + new + pulled_in - pushed_out + increased -
decreased - won - lost = closing``, hence every row does, and the rows of a
level (a partition of the deals) add up to the total, exactly: amounts are
summed in whole cents. A deal moving and changing amount in the same window
shows the move at the amount on the side of the window where it was in the
period (pushed out at ``A0``, pulled in at ``A1``), and the amount change only
while it stays in. A missing amount counts as nothing (it is shown empty in the
deals list).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from revmodel import config, formatting, schema
from revmodel.errors import DataError, ParameterError

log = logging.getLogger(__name__)

#: Columns of the waterfall table, in order.
WATERFALL_COLUMNS: tuple[str, ...] = (
    "level",
    "key",
    "opening",
    "new",
    "pulled_in",
    "pushed_out",
    "increased",
    "decreased",
    "won",
    "lost",
    "closing",
)
#: The bars between opening and closing, in order.
BARS: tuple[str, ...] = WATERFALL_COLUMNS[3:-1]
#: Sign of each bar in the balance.
BAR_SIGNS: dict[str, int] = {
    "new": 1,
    "pulled_in": 1,
    "pushed_out": -1,
    "increased": 1,
    "decreased": -1,
    "won": -1,
    "lost": -1,
}
#: Levels a waterfall can be broken down by, and the deal attribute behind each.
LEVELS: tuple[str, ...] = ("total", "region", "manager", "rep", "segment")
#: Key of the total row.
TOTAL = "total"
#: Columns of the deals list behind the bars.
DEAL_COLUMNS: tuple[str, ...] = (
    "bar",
    "opportunity_id",
    "amount",
    "region",
    "manager",
    "rep",
    "segment",
    "stage_before",
    "stage_after",
    "close_date_before",
    "close_date_after",
    "amount_before",
    "amount_after",
)
_HISTORY = ("opportunity_id", "changed_at", "stage", "amount", "close_date")


@dataclass(frozen=True)
class Window:
    """What changed between two days, for deals expected to close in a period.

    ``start``/``end`` bound the window of changes and ``period_start``/``period_end``
    the close dates of the period; all four are days, both ends inclusive.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    period_start: pd.Timestamp
    period_end: pd.Timestamp

    def __post_init__(self) -> None:
        for name in ("start", "end", "period_start", "period_end"):
            object.__setattr__(self, name, _day(getattr(self, name), name))
        if self.end < self.start:
            raise ParameterError(
                f"--to {self.end:%Y-%m-%d} is before --from {self.start:%Y-%m-%d}; "
                "give the earlier date as --from"
            )
        if self.period_end < self.period_start:
            raise ParameterError(
                f"the period ends ({self.period_end:%Y-%m-%d}) before it starts "
                f"({self.period_start:%Y-%m-%d}); use --period START:END with START first"
            )


@dataclass(frozen=True)
class Waterfall:
    """A waterfall table (:data:`WATERFALL_COLUMNS`) and the deals behind its bars."""

    table: pd.DataFrame
    deals: pd.DataFrame
    window: Window


def _day(value, name: str) -> pd.Timestamp:
    try:
        day = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} {value!r} is not a date: use YYYY-MM-DD") from exc
    if pd.isna(day):
        raise ParameterError(f"{name} is missing: give a date YYYY-MM-DD")
    return day.normalize()


# --------------------------------------------------------------------------- states


def prepare(history: pd.DataFrame) -> pd.DataFrame:
    """History sorted by deal and day, one row per deal and day, with the columns read here.

    Adds ``deal``, an integer code of ``opportunity_id`` in id order, so that the
    states of a million changes are found by position, not by string keys. A
    deal's two rows of the same day keep the later one.

    Raises
    ------
    DataError
        If a history column is missing.
    """
    if "deal" in history.columns and history.attrs.get("prepared"):
        return history
    missing = [c for c in _HISTORY if c not in history.columns]
    if missing:
        raise DataError(
            f"opportunity_history: missing column(s) {', '.join(missing)}; "
            f"it needs {', '.join(_HISTORY)}"
        )
    h = history[list(_HISTORY)]
    h = h[h["opportunity_id"].notna() & h["changed_at"].notna()]
    codes, _ = pd.factorize(h["opportunity_id"].astype(str).to_numpy(dtype=object), sort=True)
    changed = pd.to_datetime(h["changed_at"]).dt.normalize().to_numpy(dtype="datetime64[ns]")
    order = np.lexsort((np.arange(len(codes)), changed, codes))
    codes, changed = codes[order], changed[order]
    later_same_day = np.r_[(codes[1:] == codes[:-1]) & (changed[1:] == changed[:-1]), False]
    keep = order[~later_same_day]
    out = pd.DataFrame(
        {
            "opportunity_id": h["opportunity_id"].astype(str).to_numpy(dtype=object)[keep],
            "changed_at": changed[~later_same_day],
            "stage": h["stage"].to_numpy(dtype=object)[keep],
            "amount": pd.to_numeric(h["amount"], errors="coerce").to_numpy(dtype=float)[keep],
            "close_date": pd.to_datetime(h["close_date"])
            .dt.normalize()
            .to_numpy(dtype="datetime64[ns]")[keep],
            "deal": codes[~later_same_day],
        }
    )
    out.attrs["prepared"] = True
    return out


def _last_rows(deal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Position of the last row of each deal among the rows in ``mask`` (rows sorted by deal)."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return idx
    d = deal[idx]
    return idx[np.r_[d[1:] != d[:-1], True]]


def state_at(history: pd.DataFrame, day, before: bool = False) -> pd.DataFrame:
    """Every deal's state as it stood on ``day``, indexed by ``opportunity_id``.

    Parameters
    ----------
    history : pandas.DataFrame
        History (prepared by :func:`prepare` when it is not already).
    day : date-like
        The day [date].
    before : bool
        ``True``: at the start of ``day`` (rows dated before it); ``False``: at
        its end (rows dated on or before it).

    Returns
    -------
    pandas.DataFrame
        The deals' last rows by then (deals not created yet are absent).
    """
    h = prepare(history)
    day64 = np.datetime64(_day(day, "day"), "ns")
    changed = h["changed_at"].to_numpy()
    rows = _last_rows(h["deal"].to_numpy(), changed < day64 if before else changed <= day64)
    return h.iloc[rows].drop(columns="deal").set_index("opportunity_id")


def _cents(amount: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(amount, dtype=float) * 100)


def _open_stage(stage: np.ndarray) -> np.ndarray:
    return ~np.isin(stage, schema.CLOSED_STAGES) & pd.notna(stage)


@dataclass(frozen=True)
class _Positions:
    """Row positions, per deal with a state by the window's end: ``s1``, ``s0`` (-1: none),
    its last open row (-1: none) and the row of the change that closed it."""

    s1: np.ndarray
    s0: np.ndarray
    last_open: np.ndarray
    closing: np.ndarray


def _positions(h: pd.DataFrame, window: Window) -> _Positions:
    deal = h["deal"].to_numpy()
    changed = h["changed_at"].to_numpy()
    upto = changed <= np.datetime64(window.end, "ns")
    n_deals = int(deal.max()) + 1 if len(deal) else 0
    s1 = _last_rows(deal, upto)
    d1 = deal[s1]

    def per_deal(rows: np.ndarray) -> np.ndarray:
        out = np.full(n_deals, -1, dtype=np.int64)
        out[deal[rows]] = rows
        return out[d1]

    s0 = per_deal(_last_rows(deal, changed < np.datetime64(window.start, "ns")))
    last_open = per_deal(_last_rows(deal, upto & _open_stage(h["stage"].to_numpy())))
    first = per_deal(np.flatnonzero(np.r_[True, deal[1:] != deal[:-1]]))
    closing = np.where(last_open >= 0, last_open + 1, first)
    return _Positions(s1, s0, last_open, np.minimum(closing, s1))


def deal_bars(history: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Each deal's contribution to every bar [cents], indexed by ``opportunity_id``.

    See the module docstring for the rules. Deals contributing nothing are left out.
    """
    h = prepare(history)
    pos = _positions(h, window)
    stage = h["stage"].to_numpy(dtype=object)
    close = h["close_date"].to_numpy()
    amount = h["amount"].to_numpy(dtype=float)
    p0 = np.datetime64(window.period_start, "ns")
    p1 = np.datetime64(window.period_end, "ns")
    existed = pos.s0 >= 0
    at0 = np.maximum(pos.s0, 0)

    def in_period(rows: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return valid & _open_stage(stage[rows]) & (close[rows] >= p0) & (close[rows] <= p1)

    in0, in1 = in_period(at0, existed), in_period(pos.s1, np.ones(len(pos.s1), dtype=bool))
    was_closed = existed & ~_open_stage(stage[at0])
    a0 = np.where(existed, np.nan_to_num(_cents(amount[at0])), 0.0)
    a1 = np.nan_to_num(_cents(amount[pos.s1]))
    w = np.nan_to_num(_cents(np.where(pos.last_open >= 0, amount[pos.last_open], amount[pos.s1])))
    stage1 = stage[pos.s1]
    closed_in_window = ~_open_stage(stage1) & (
        h["changed_at"].to_numpy()[pos.closing] >= np.datetime64(window.start, "ns")
    )
    closed_in_period = closed_in_window & (close[pos.s1] >= p0) & (close[pos.s1] <= p1)
    enters = ~in0 & (in1 | closed_in_period)
    entered = np.where(in1, a1, w)
    change = np.where(in0 & in1, a1 - a0, np.where(in0 & closed_in_period, w - a0, 0.0))
    bars = {
        "opening": np.where(in0, a0, 0.0),
        "new": np.where(enters & (~existed | was_closed), entered, 0.0),
        "pulled_in": np.where(enters & existed & ~was_closed, entered, 0.0),
        "pushed_out": np.where(in0 & ~in1 & ~closed_in_period, a0, 0.0),
        "increased": np.maximum(change, 0.0),
        "decreased": np.maximum(-change, 0.0),
        "won": np.where(closed_in_period & (stage1 == "won"), w, 0.0),
        "lost": np.where(closed_in_period & (stage1 == "lost"), w, 0.0),
        "closing": np.where(in1, a1, 0.0),
    }
    touched = in0 | in1 | closed_in_period
    r1, r0, had = pos.s1[touched], at0[touched], existed[touched]
    out = pd.DataFrame(
        {name: bar[touched].astype(np.int64) for name, bar in bars.items()},
        index=pd.Index(h["opportunity_id"].to_numpy(dtype=object)[r1], name="opportunity_id"),
    )
    out["stage_before"] = np.where(had, stage[r0], None)
    out["stage_after"] = stage[r1]
    out["close_date_before"] = np.where(had, close[r0], np.datetime64("NaT"))
    out["close_date_after"] = close[r1]
    out["amount_before"] = np.where(had, amount[r0], np.nan)
    out["amount_after"] = amount[r1]
    return out


# --------------------------------------------------------------------------- labels

#: The table of deal labels made where the deals were read, when the opportunities come
#: as Parquet parts (:func:`revmodel.partitions.load` with ``deal_cells``): the
#: :func:`deal_labels` of the deals the pipeline history names, ``opportunity_id`` a column.
LABELS_TABLE = "deal_labels"


def deal_labels(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Region, manager, rep and segment of every deal, indexed by ``opportunity_id``.

    A deal's own region and segment come first, then its account's, then its
    rep's (as in the cube); the manager is its rep's. What stays unknown is
    :data:`revmodel.config.PLACEHOLDER`. Tables holding :data:`LABELS_TABLE` (made
    where the deals' Parquet parts were read) give those labels.
    """
    from revmodel import cube

    given = tables.get(LABELS_TABLE)
    if given is not None:
        return given.set_index(given["opportunity_id"].astype("string"))[
            ["region", "manager", "rep", "segment"]
        ]
    opps = tables.get("opportunities")
    if opps is None or opps.empty:
        return pd.DataFrame(columns=["region", "manager", "rep", "segment"])
    opps = opps.reset_index(drop=True)
    accounts, reps = tables.get("accounts"), tables.get("reps")
    n = len(opps)
    rep_id = cube._text(opps, "rep_id")
    acct_id = cube._text(opps, "account_id")
    labels = pd.DataFrame(
        {
            "region": cube._first_of(
                n,
                cube._text(opps, "region"),
                cube._lookup(acct_id, accounts, "account_id", "region"),
                cube._lookup(rep_id, reps, "rep_id", "region"),
            ),
            "manager": cube._first_of(n, cube._lookup(rep_id, reps, "rep_id", "manager")),
            "rep": cube._first_of(n, rep_id),
            "segment": cube._first_of(
                n,
                cube._text(opps, "segment"),
                cube._lookup(acct_id, accounts, "account_id", "segment"),
                cube._lookup(rep_id, reps, "rep_id", "segment"),
            ),
        }
    )
    labels.index = pd.Index(opps["opportunity_id"].astype("string"), name="opportunity_id")
    return labels[~labels.index.duplicated()]


# --------------------------------------------------------------------------- waterfall


def _check_levels(by: str | Sequence[str]) -> list[str]:
    levels = [by] if isinstance(by, str) else list(by)
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad:
        raise ParameterError(
            f"--by {', '.join(bad)} is not a level; use one of {', '.join(LEVELS)}"
        )
    return [lv for lv in levels if lv != TOTAL]


def waterfall(
    history: pd.DataFrame,
    window: Window,
    labels: pd.DataFrame | None = None,
    by: str | Sequence[str] = TOTAL,
) -> Waterfall:
    """The pipeline waterfall of a period over a window, in total and by level.

    Parameters
    ----------
    history : pandas.DataFrame
        Canonical ``opportunity_history`` rows (any order).
    window : Window
        Days of the changes and close dates of the period.
    labels : pandas.DataFrame, optional
        :func:`deal_labels`; deals without labels are
        :data:`revmodel.config.PLACEHOLDER` at every level.
    by : str or sequence of str
        Levels among :data:`LEVELS`; the ``total`` row always comes first,
        then one row per member of each level, sorted by key.

    Returns
    -------
    Waterfall
        ``table``: :data:`WATERFALL_COLUMNS` [currency, to the cent], every row
        balancing and every level adding up to the total; ``deals``:
        :data:`DEAL_COLUMNS`, one row per deal and bar it moved (the amounts of
        a bar add up to the bar of the total row).
    """
    levels = _check_levels(by)
    per_deal = deal_bars(prepare(history), window)
    lab = _labels_for(per_deal.index, labels)
    amounts = per_deal[["opening", *BARS, "closing"]]
    rows = [_sum_rows(amounts, pd.Series(TOTAL, index=amounts.index), TOTAL)]
    for level in levels:
        rows.append(_sum_rows(amounts, lab[level], level))
    table = pd.concat(rows, ignore_index=True)
    cents = table[list(WATERFALL_COLUMNS[2:])]
    table[list(WATERFALL_COLUMNS[2:])] = cents / 100.0
    deals = _deal_list(per_deal, lab)
    log.debug("waterfall: %d deals moved, %d rows", len(per_deal), len(table))
    return Waterfall(table[list(WATERFALL_COLUMNS)], deals, window)


def _labels_for(index: pd.Index, labels: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["region", "manager", "rep", "segment"]
    if labels is None:
        return pd.DataFrame(config.PLACEHOLDER, index=index, columns=cols)
    lab = labels.reindex(index=index, columns=cols)
    return lab.astype(object).where(lab.notna(), config.PLACEHOLDER)


def _sum_rows(amounts: pd.DataFrame, keys: pd.Series, level: str) -> pd.DataFrame:
    cols = ["opening", *BARS, "closing"]
    if amounts.empty:
        summed = pd.DataFrame(0, index=pd.Index([TOTAL] if level == TOTAL else []), columns=cols)
    else:
        summed = amounts.groupby(keys.to_numpy(), sort=True)[cols].sum()
    summed = summed.astype(np.int64)
    summed.insert(0, "key", summed.index.astype(str))
    summed.insert(0, "level", level)
    return summed.reset_index(drop=True)


def _deal_list(per_deal: pd.DataFrame, lab: pd.DataFrame) -> pd.DataFrame:
    """One row per deal and bar it moved (a non-zero amount), largest first within a bar."""
    parts = []
    for bar in BARS:
        sub = per_deal[per_deal[bar] != 0]
        part = pd.DataFrame(
            {
                "bar": bar,
                "opportunity_id": sub.index.astype(str).to_numpy(),
                "amount": sub[bar].to_numpy() / 100.0,
            }
        )
        parts.append(
            pd.concat(
                [
                    part,
                    lab.loc[sub.index].reset_index(drop=True),
                    sub[list(DEAL_COLUMNS[7:])].reset_index(drop=True),
                ],
                axis=1,
            )
        )
    deals = pd.concat(parts, ignore_index=True)
    order = {b: i for i, b in enumerate(BARS)}
    deals = deals.assign(_o=deals["bar"].map(order), _a=-deals["amount"])
    deals = deals.sort_values(["_o", "_a", "opportunity_id"], kind="stable")
    return deals[list(DEAL_COLUMNS)].reset_index(drop=True)


def balance_errors(table: pd.DataFrame) -> pd.Series:
    """``opening + signed bars - closing`` per row: zero when every row balances."""
    total = table["opening"].astype(float).copy()
    for bar, sign in BAR_SIGNS.items():
        total += sign * table[bar].astype(float)
    return total - table["closing"].astype(float)


# --------------------------------------------------------------------------- command


def period_bounds(
    period: str | None,
    end,
    fiscal_year_start: int = config.FISCAL_YEAR_START,
    naming: str = config.FISCAL_YEAR_NAMING,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last close day of a period.

    ``period`` is a fiscal label (``FY2027-Q1`` or ``FY2027``), ``START:END``
    (two dates, inclusive), or ``None``: the fiscal quarter holding ``end``.
    """
    from revmodel import calendar as fcal

    if period is None:
        period = fcal.current_quarter(_day(end, "--to"), fiscal_year_start, naming)
    if ":" in period:
        first, _, last = period.partition(":")
        return _day(first, "--period start"), _day(last, "--period end")
    try:
        months = fcal.quarter_months(period, fiscal_year_start, naming)
    except ParameterError as exc:
        raise ParameterError(
            f"--period {period!r} is neither a fiscal period (FY2027-Q1, FY2027) "
            "nor START:END dates (2026-11-01:2027-01-31)"
        ) from exc
    return months[0], months[-1] + pd.offsets.MonthEnd(0)


def load_history(
    data_dir, mapping=None, tables: Mapping[str, pd.DataFrame] | None = None
) -> tuple[pd.DataFrame, str]:
    """The pipeline history of a data folder and where it came from.

    The ``opportunity_history`` table when the folder has one, else the
    history derived from the snapshots in ``DIR/snapshots``.

    Raises
    ------
    DataError
        If there is neither.
    """
    from revmodel import snapshots, sources

    if tables is None:
        tables = sources.load(data_dir, mapping=mapping).tables
    hist = tables.get("opportunity_history")
    if hist is not None and len(hist):
        return hist, "opportunity_history"
    store = snapshots.store_dir(data_dir)
    taken = snapshots.list_snapshots(store)
    if taken:
        return snapshots.history_from_snapshots(store), f"{len(taken)} snapshots in {store}"
    raise DataError(
        f"no pipeline history in {data_dir}: add an opportunity_history export "
        "(see the schema in the README), or store a snapshot every week with "
        f"`revmodel snapshot {data_dir}`"
    )


@dataclass(frozen=True)
class ChangesRequest:
    """What ``revmodel changes`` was asked for."""

    data_dir: str
    start: str
    end: str
    out: str
    mapping: str | None = None
    period: str | None = None
    by: str = TOTAL
    deals: str | None = None
    fiscal_year_start: int = config.FISCAL_YEAR_START
    naming: str = config.FISCAL_YEAR_NAMING


def changes(req: ChangesRequest) -> tuple[Waterfall, list[str]]:
    """``revmodel changes``: write the waterfall (and the deals) as CSV; returns it and lines to show."""
    from revmodel import sources

    _check_levels(req.by)
    for path, flag in ((req.out, "--out"), (req.deals, "--deals")):
        if path is not None and Path(path).suffix.lower() != ".csv":
            raise ParameterError(f"{flag} {path}: give a .csv file name")
    p0, p1 = period_bounds(req.period, req.end, req.fiscal_year_start, req.naming)
    window = Window(req.start, req.end, p0, p1)
    result = sources.load(req.data_dir, mapping=req.mapping, as_of=window.end)
    if result.status == 2:
        raise DataError(result.summary())
    hist, source = load_history(req.data_dir, tables=result.tables)
    wf = waterfall(hist, window, deal_labels(result.tables), by=req.by)
    _write_csv(wf.table, req.out)
    if req.deals is not None:
        _write_csv(wf.deals, req.deals)
    total = wf.table.iloc[0]
    lines = [
        f"history: {source}",
        f"pipeline closing {p0:%Y-%m-%d} to {p1:%Y-%m-%d}, changes {window.start:%Y-%m-%d} "
        f"to {window.end:%Y-%m-%d}",
        f"opening {total['opening']:,.2f} -> closing {total['closing']:,.2f} "
        f"({len(wf.deals['opportunity_id'].unique()):,} deals moved)",
        f"wrote {req.out}" + (f" and {req.deals}" if req.deals else ""),
    ]
    return wf, lines


def _write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """CSV with names a spreadsheet shows as text (never runs as a formula)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = frame.select_dtypes(include=["object", "string"]).columns
    safe = frame.copy()
    for col in text:
        safe[col] = safe[col].map(_inert)
    safe.to_csv(path, index=False, date_format="%Y-%m-%d", lineterminator="\n")


def _inert(value):
    return formatting.inert_text(value)


# --------------------------------------------------------------------------- plan pack and apps


@dataclass(frozen=True)
class ChangesSection:
    """The waterfalls a Monday forecast call looks at, for the quarter holding ``as_of``.

    ``since_last_week``: changes in the seven days ending ``as_of``;
    ``since_quarter_start``: changes from the first day of the quarter holding ``as_of``
    (``period_start``) to ``as_of``; both for the deals expected to close in ``quarter``.
    :func:`revmodel.plots.changes_figures` draws both.
    """

    as_of: pd.Timestamp
    quarter: str
    period_start: pd.Timestamp
    since_last_week: Waterfall
    since_quarter_start: Waterfall


def changes_section(
    history: pd.DataFrame,
    as_of,
    labels: pd.DataFrame | None = None,
    by: str | Sequence[str] = ("region", "manager"),
    fiscal_year_start: int = config.FISCAL_YEAR_START,
    naming: str = config.FISCAL_YEAR_NAMING,
    period: str | None = None,
) -> ChangesSection:
    """What changed since last week and since the start of the quarter (plan pack, apps).

    Parameters
    ----------
    history : pandas.DataFrame
        Canonical ``opportunity_history`` (see :func:`load_history`).
    as_of : date-like
        Last day of the changes [date], e.g. the last day of the data.
    labels : pandas.DataFrame, optional
        :func:`deal_labels`.
    by : str or sequence of str
        Levels of the rows after the total (:data:`LEVELS`).
    fiscal_year_start, naming
        Fiscal calendar.
    period : str, optional
        Fiscal period of the close dates (e.g. the plan's cycle, ``FY2027-Q1``);
        default the fiscal quarter holding ``as_of``. The second window always
        starts on the first day of the quarter holding ``as_of``.

    Returns
    -------
    ChangesSection
    """
    from revmodel import calendar as fcal

    end = _day(as_of, "as_of")
    current = fcal.current_quarter(end, fiscal_year_start, naming)
    quarter = period or current
    p0, p1 = period_bounds(quarter, end, fiscal_year_start, naming)
    q0, _ = period_bounds(current, end, fiscal_year_start, naming)
    week = waterfall(history, Window(end - pd.Timedelta(days=6), end, p0, p1), labels, by)
    qtd = waterfall(history, Window(q0, end, p0, p1), labels, by)
    log.info(
        "waterfall: %d deals moved in the week, %d since the quarter's start, %d rows",
        week.deals["opportunity_id"].nunique(),
        qtd.deals["opportunity_id"].nunique(),
        len(qtd.table),
    )
    return ChangesSection(end, quarter, q0, week, qtd)


def section_from_data(
    data_dir,
    mapping=None,
    by: str | Sequence[str] = ("region", "manager"),
    fiscal_year_start: int = config.FISCAL_YEAR_START,
    naming: str = config.FISCAL_YEAR_NAMING,
    period: str | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
) -> ChangesSection | None:
    """:func:`changes_section` of a data folder as of its last recorded change; ``None``
    when the folder has neither an ``opportunity_history`` table nor snapshots.
    ``tables``: the folder's tables when already loaded (read here otherwise)."""
    from revmodel import sources

    if tables is None:
        tables = sources.load(data_dir, mapping=mapping).tables
    try:
        hist, source = load_history(data_dir, tables=tables)
    except DataError:
        return None
    hist = prepare(hist)
    as_of = hist["changed_at"].max()
    log.info("pipeline changes to %s from %s", f"{as_of:%Y-%m-%d}", source)
    return changes_section(hist, as_of, deal_labels(tables), by, fiscal_year_start, naming, period)
