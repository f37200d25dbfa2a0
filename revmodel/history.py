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

from revmodel import config, schema
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
    """History sorted by deal and day, with the columns the waterfall reads.

    Raises
    ------
    DataError
        If a history column is missing.
    """
    missing = [c for c in _HISTORY if c not in history.columns]
    if missing:
        raise DataError(
            f"opportunity_history: missing column(s) {', '.join(missing)}; "
            f"it needs {', '.join(_HISTORY)}"
        )
    h = history[list(_HISTORY)].copy()
    h["opportunity_id"] = h["opportunity_id"].astype("string")
    h["changed_at"] = pd.to_datetime(h["changed_at"]).dt.normalize()
    h["close_date"] = pd.to_datetime(h["close_date"]).dt.normalize()
    h = h.dropna(subset=["opportunity_id", "changed_at"])
    h = h.sort_values(["opportunity_id", "changed_at"], kind="stable")
    return h.drop_duplicates(["opportunity_id", "changed_at"], keep="last").reset_index(drop=True)


def state_at(history: pd.DataFrame, day, before: bool = False) -> pd.DataFrame:
    """Every deal's state as it stood on ``day``, indexed by ``opportunity_id``.

    Parameters
    ----------
    history : pandas.DataFrame
        History as :func:`prepare` returns it.
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
    day = _day(day, "day")
    dated = history["changed_at"] < day if before else history["changed_at"] <= day
    return history[dated].drop_duplicates("opportunity_id", keep="last").set_index("opportunity_id")


def _cents(amount: pd.Series) -> np.ndarray:
    return np.round(pd.to_numeric(amount, errors="coerce").to_numpy(dtype=float) * 100).astype(
        "float64"
    )


def _is_open(stage: pd.Series) -> np.ndarray:
    return ~stage.isin(schema.CLOSED_STAGES).to_numpy() & stage.notna().to_numpy()


def _last_open(upto: pd.DataFrame) -> pd.DataFrame:
    """Per deal: the amount of its last open row and the day of the change that closed it."""
    is_open = _is_open(upto["stage"])
    pos = np.arange(len(upto))
    deal = upto["opportunity_id"].to_numpy()
    last_open = pd.Series(np.where(is_open, pos, -1)).groupby(deal).max()
    first = pd.Series(pos).groupby(deal).min()
    closing_pos = np.where(last_open.to_numpy() >= 0, last_open.to_numpy() + 1, first.to_numpy())
    n = len(upto)
    closing_day = upto["changed_at"].to_numpy()[np.minimum(closing_pos, n - 1)]
    amounts = upto["amount"].to_numpy(dtype=float)
    w = np.where(last_open.to_numpy() >= 0, amounts[np.maximum(last_open.to_numpy(), 0)], np.nan)
    return pd.DataFrame(
        {"closed_on": closing_day, "last_open_amount": w, "was_open": last_open.to_numpy() >= 0},
        index=last_open.index,
    )


def deal_bars(history: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Each deal's contribution to every bar [cents], indexed by ``opportunity_id``.

    See the module docstring for the rules. Deals contributing nothing are left out.
    """
    upto = history[history["changed_at"] <= window.end]
    s1 = upto.drop_duplicates("opportunity_id", keep="last").set_index("opportunity_id")
    s0 = state_at(history, window.start, before=True).reindex(s1.index)
    closing = _last_open(upto).reindex(s1.index)
    p0, p1 = window.period_start, window.period_end

    def in_period(state: pd.DataFrame) -> np.ndarray:
        close = state["close_date"]
        return _is_open(state["stage"]) & ((close >= p0) & (close <= p1)).to_numpy()

    in0, in1 = in_period(s0), in_period(s1)
    existed = s0["stage"].notna().to_numpy()
    was_closed = ~_is_open(s0["stage"]) & existed
    a0 = np.nan_to_num(_cents(s0["amount"]))
    a1 = np.nan_to_num(_cents(s1["amount"]))
    w = np.where(
        closing["was_open"].to_numpy(dtype=bool),
        _cents(closing["last_open_amount"]),
        _cents(s1["amount"]),
    )
    w = np.nan_to_num(w)
    stage1 = s1["stage"].to_numpy()
    closed_in_window = ~_is_open(s1["stage"]) & (closing["closed_on"] >= window.start).to_numpy()
    c1 = s1["close_date"]
    closed_in_period = closed_in_window & ((c1 >= p0) & (c1 <= p1)).to_numpy()
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
    out = pd.DataFrame(bars, index=s1.index).astype(np.int64)
    touched = in0 | in1 | closed_in_period
    detail = pd.DataFrame(
        {
            "stage_before": s0["stage"],
            "stage_after": s1["stage"],
            "close_date_before": s0["close_date"],
            "close_date_after": s1["close_date"],
            "amount_before": s0["amount"],
            "amount_after": s1["amount"],
        },
        index=s1.index,
    )
    return pd.concat([out, detail], axis=1)[touched]


# --------------------------------------------------------------------------- labels


def deal_labels(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Region, manager, rep and segment of every deal, indexed by ``opportunity_id``.

    A deal's own region and segment come first, then its account's, then its
    rep's (as in the cube); the manager is its rep's. What stays unknown is
    :data:`revmodel.config.PLACEHOLDER`.
    """
    from revmodel import cube

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
    log.info("waterfall: %d deals moved, %d rows", len(per_deal), len(table))
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
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r", "'")):
        return "'" + value
    return value


# --------------------------------------------------------------------------- plan pack and apps


@dataclass(frozen=True)
class ChangesSection:
    """The waterfalls a Monday forecast call looks at, for the quarter holding ``as_of``.

    ``since_last_week``: changes in the seven days ending ``as_of``;
    ``since_quarter_start``: changes from the quarter's first day to ``as_of``.
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
        Fiscal calendar: the period is the fiscal quarter holding ``as_of``.

    Returns
    -------
    ChangesSection
    """
    from revmodel import calendar as fcal

    end = _day(as_of, "as_of")
    quarter = fcal.current_quarter(end, fiscal_year_start, naming)
    p0, p1 = period_bounds(quarter, end, fiscal_year_start, naming)
    week = waterfall(history, Window(end - pd.Timedelta(days=6), end, p0, p1), labels, by)
    qtd = waterfall(history, Window(p0, end, p0, p1), labels, by)
    return ChangesSection(end, quarter, p0, week, qtd)
