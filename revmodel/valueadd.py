"""Forecast value add: did the calls beat the model?

At each quarter's end every weekly call (by level, node and week of quarter,
:func:`revmodel.overrides.calls_by_week`) is scored against the actual beside
the in-quarter forecast made the same week for the same node
(:func:`revmodel.inquarter.node_forecasts`): the one definition of the score is
:func:`revmodel.overrides.value_add`. This module gathers the inputs and sums
the scores up for the plan pack and the apps.

Calls come from two places, gathered by one function (:func:`call_log`, used by
the plan pack and the apps): the call store the forecast-call app writes (an
:class:`revmodel.overrides.OverrideStore`, :func:`open_call_store`) and the call
history of a data folder's ``forecast_calls.csv`` (:data:`revmodel.sample_calls.FILE`,
audit-shaped: ``at, level, key, period, call_type, new_value`` and optionally
``user, action, old_value, note, source``; the sample company writes one). A node's
call of a type made in a week of its quarter by both is counted once: the store's
(the CSV is often an export of it). Rows that cannot be read are kept apart with
the reason and counted (:attr:`CallLog.rejected`), never dropped silently.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import make_url

from revmodel import calendar as fcal
from revmodel import config, overrides
from revmodel.errors import DataError
from revmodel.history import deal_labels, load_history, prepare
from revmodel.inquarter import WEEKS, Quarter, node_actuals, node_forecasts
from revmodel.sample_calls import FILE

log = logging.getLogger(__name__)

#: Columns a call log must have.
REQUIRED: tuple[str, ...] = ("at", "level", "key", "period", "call_type", "new_value")
#: Columns of :func:`summary`.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "level", "key", "call_type", "quarters", "calls", "bias", "call_error", "model_error",
    "value_add", "beat_model",
)  # fmt: skip
_LEVELS: tuple[str, ...] = ("manager", "region", "total")


@dataclass(frozen=True)
class CallLog:
    """Calls as audit rows (``id`` in time order) and the rows refused, with ``row`` and ``reason``."""

    audit: pd.DataFrame
    rejected: pd.DataFrame
    source: str


def read_calls(path: str | Path) -> CallLog:
    """Read a call-log CSV (see the module docstring).

    Raises
    ------
    DataError
        If a required column is missing (named, with the columns found).
    """
    path = Path(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; a call log needs "
            f"{', '.join(REQUIRED)} (found {', '.join(raw.columns) or 'none'})"
        )
    frame = pd.DataFrame(
        {
            "at": pd.to_datetime(raw["at"].str.strip(), errors="coerce", format="mixed"),
            "user": raw.get("user", pd.Series("", index=raw.index)).str.strip(),
            "action": raw.get("action", pd.Series("submit", index=raw.index)).str.strip(),
            "level": raw["level"].str.strip().str.lower(),
            "key": raw["key"].str.strip(),
            "period": raw["period"].str.strip().str.upper(),
            "call_type": raw["call_type"].str.strip().str.lower(),
            "old_value": pd.to_numeric(raw.get("old_value"), errors="coerce")
            if "old_value" in raw
            else np.nan,
            "new_value": pd.to_numeric(raw["new_value"].str.strip(), errors="coerce"),
            "note": raw.get("note", pd.Series("", index=raw.index)),
            "source": raw.get("source", pd.Series(path.name, index=raw.index)),
        }
    )
    frame["action"] = frame["action"].replace("", "submit")
    reasons = _reasons(frame, raw)
    bad = reasons != ""
    rejected = raw[bad].copy()
    rejected.insert(0, "row", rejected.index + 2)  # the header is line 1
    rejected.insert(1, "reason", reasons[bad])
    good = frame[~bad].sort_values("at", kind="stable").reset_index(drop=True)
    good.insert(0, "id", np.arange(1, len(good) + 1))
    if len(rejected):
        log.warning("%s: %d call rows refused (first: row %d, %s)", path, len(rejected),
                    rejected["row"].iloc[0], rejected["reason"].iloc[0])  # fmt: skip
    return CallLog(good, rejected.reset_index(drop=True), str(path))


@functools.lru_cache(maxsize=8)
def _read_calls_once(path: str, mtime_ns: int, size: int) -> CallLog:
    """:func:`read_calls`, read again only when the file changed (its time and size)."""
    del mtime_ns, size  # the cache's key
    return read_calls(path)


def _reasons(frame: pd.DataFrame, raw: pd.DataFrame) -> pd.Series:
    """Why each row cannot be used ("" when it can)."""
    checks = (
        (frame["at"].isna(), "at is not a date and time"),
        (~frame["level"].isin(overrides.CALL_LEVELS), "level is not one of rep, manager, region, total"),
        (frame["key"] == "", "key is empty"),
        (~frame["call_type"].isin(overrides.CALL_TYPES), "call_type is not commit or best_case"),
        (~frame["action"].isin(("submit", "withdraw")), "action is not submit or withdraw"),
        ((frame["action"] == "submit") & ~(frame["new_value"] >= 0), "new_value is not an amount >= 0"),
        (~frame["period"].map(_is_period), "period is not a fiscal quarter like FY2027-Q1"),
    )  # fmt: skip
    out = pd.Series("", index=frame.index, dtype=object)
    for mask, reason in checks:
        out = out.where(~(mask & (out == "")), reason)
    return out


def _is_period(label: str) -> bool:
    try:
        return fcal.parse_period(label).quarter is not None
    except Exception:  # noqa: BLE001 - any unreadable label is refused with its reason
        return False


def open_call_store(url: str | None = None) -> overrides.OverrideStore | None:
    """The call store the forecast-call app writes, opened to read its calls.

    ``url`` (SQLAlchemy), else ``REVMODEL_OVERRIDES_URL``, else
    :data:`revmodel.config.OVERRIDES_URL` as the apps use it. None when that is a
    SQLite file that does not exist: reading calls never creates a database.
    """
    url = url or os.environ.get("REVMODEL_OVERRIDES_URL") or config.OVERRIDES_URL
    parsed = make_url(str(url))
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return None
        if not Path(parsed.database).is_file():
            return None
    return overrides.OverrideStore(str(url))


def _week_of_quarter(audit: pd.DataFrame, fiscal_year_start: int, naming: str) -> pd.Series:
    """The week of its quarter each call was made in (1 = the quarter's first 7 days)."""
    starts = {
        p: pd.Timestamp(fcal.quarter_months(p, fiscal_year_start, naming)[0])
        for p in audit["period"].unique()
    }
    at = pd.to_datetime(audit["at"], utc=True).dt.tz_localize(None).dt.normalize()
    days = (at - audit["period"].map(starts)).dt.days
    return (days // 7 + 1).astype("int64")


def _store_wins(
    csv: pd.DataFrame, store: pd.DataFrame, fiscal_year_start: int, naming: str
) -> pd.DataFrame:
    """The CSV's calls less those of a node, type and week the store also has."""
    if csv.empty or store.empty:
        return csv
    node = ["period", "level", "key", "call_type", "week"]
    store = store[store["period"].map(_is_period)]
    if store.empty:
        return csv
    mine = csv.assign(week=_week_of_quarter(csv, fiscal_year_start, naming))
    theirs = store.assign(week=_week_of_quarter(store, fiscal_year_start, naming))
    keys = pd.MultiIndex.from_frame(theirs[node].drop_duplicates())
    dup = pd.MultiIndex.from_frame(mine[node]).isin(keys)
    if dup.any():
        log.info("call log: %d calls of the CSV also in the store, the store's kept", dup.sum())
    return csv[~dup]


def call_log(
    data_dir: str | Path | None,
    store: overrides.OverrideStore | None = None,
    fiscal_year_start: int = config.FISCAL_YEAR_START,
    naming: str = config.FISCAL_YEAR_NAMING,
) -> CallLog | None:
    """Every call: the store's and the data folder's ``forecast_calls.csv``; None when
    neither has one.

    A call of the CSV is left out when the store has a call of the same node
    (``level``, ``key``), ``period``, ``call_type`` and week of quarter: the store
    wins. ``id`` numbers the calls in time order.
    """
    csv, store_calls, rejected, sources = None, None, [], []
    path = Path(data_dir) / FILE if data_dir is not None else None
    if path is not None and path.is_file():
        stat = path.stat()
        read = _read_calls_once(str(path), stat.st_mtime_ns, stat.st_size)
        csv = read.audit
        rejected.append(read.rejected)
        sources.append(str(path))
    if store is not None:
        audit = store.audit()
        audit = audit[audit["level"].isin(overrides.CALL_LEVELS)]
        if len(audit):
            store_calls = audit.assign(at=audit["at"].dt.tz_localize(None))
            sources.append(repr(store))
    if csv is None and store_calls is None:
        return None
    if csv is not None and store_calls is not None:
        csv = _store_wins(csv, store_calls, fiscal_year_start, naming)
    parts = [p for p in (csv, store_calls) if p is not None]
    audit = pd.concat(parts, ignore_index=True).sort_values("at", kind="stable")
    audit["id"] = np.arange(1, len(audit) + 1)
    rej = pd.concat(rejected, ignore_index=True) if rejected else pd.DataFrame()
    return CallLog(audit.reset_index(drop=True), rej, " and ".join(sources))


@dataclass(frozen=True)
class ScorerState:
    """What a :class:`Scorer` computed, kept to start another scorer of the same history from.

    Attributes
    ----------
    basis : tuple
        Fiscal year start, naming, weeks scored and the history's last change: a
        state is used only by a scorer with the same basis.
    quarters, periods, nodes : dict
        Each closed quarter's model forecasts and actuals; each period's scored calls
        with the digest of its calls and of each node's calls.
    """

    basis: tuple[int, str, int, str]
    quarters: dict[str, tuple[Quarter, pd.DataFrame, dict] | None]
    periods: dict[str, tuple[bytes, pd.DataFrame]]
    nodes: dict[str, dict[tuple[str, str, str], bytes]]


class Scorer:
    """Scores calls against one pipeline history, keeping what does not depend on the calls.

    The in-quarter forecast of every node and week
    (:func:`revmodel.inquarter.node_forecasts`) and each node's actual depend on
    the history alone: they are computed the first time a quarter is scored and
    reused. A node's scored calls of a period are reused while its calls are the
    same, so after a call changes only that node of that period is scored again.
    :func:`scores` is a new scorer's :meth:`score`: the incremental path and the
    full one are the same code. ``state`` (another scorer's :attr:`state`, e.g.
    read back from a file by another process) starts the scorer with what that one
    computed, when it scored the same history.
    """

    def __init__(
        self,
        history: pd.DataFrame,
        labels: pd.DataFrame | None,
        fiscal_year_start: int = config.FISCAL_YEAR_START,
        naming: str = config.FISCAL_YEAR_NAMING,
        weeks: int = WEEKS,
        state: ScorerState | None = None,
    ) -> None:
        self.history = prepare(history)
        self.labels = labels
        self.fiscal_year_start = int(fiscal_year_start)
        self.naming = str(naming)
        self.weeks = int(weeks)
        self._last = self.history["changed_at"].max()
        #: period -> (quarter, model forecasts, actuals), None for a quarter not over.
        self._quarters: dict[str, tuple[Quarter, pd.DataFrame, dict] | None] = {}
        #: period -> (digest of its calls, its scored calls); the digest of each node's calls.
        self._periods: dict[str, tuple[bytes, pd.DataFrame]] = {}
        self._nodes: dict[str, dict[tuple[str, str, str], bytes]] = {}
        #: How many times a quarter's forecasts or a period's scores were computed here.
        self.computed = 0
        if state is not None and state.basis == self._basis():
            self._quarters = dict(state.quarters)
            self._periods = dict(state.periods)
            self._nodes = {p: dict(n) for p, n in state.nodes.items()}

    def _basis(self) -> tuple[int, str, int, str]:
        return (self.fiscal_year_start, self.naming, self.weeks, str(self._last))

    @property
    def state(self) -> ScorerState:
        """What this scorer computed, to start another one from (:class:`ScorerState`)."""
        return ScorerState(
            self._basis(),
            dict(self._quarters),
            dict(self._periods),
            {p: dict(n) for p, n in self._nodes.items()},
        )

    def _quarter(self, period: str) -> tuple[Quarter, pd.DataFrame, dict] | None:
        if period not in self._quarters:
            months = fcal.quarter_months(period, self.fiscal_year_start, self.naming)
            quarter = Quarter.of(months[0])
            found = None
            if quarter.end <= self._last:  # else not over yet: no actual
                model = node_forecasts(self.history, quarter, self.labels, _LEVELS, self.weeks)
                actual = node_actuals(self.history, quarter, self.labels, _LEVELS)
                found = (quarter, model, actual)
            self._quarters[period] = found
            self.computed += 1
        return self._quarters[period]

    def _period(self, period: str, audit: pd.DataFrame) -> pd.DataFrame:
        """The period's scored calls, scoring again only the nodes whose calls changed."""
        quarter, model, actual = self._quarter(period)
        same, old = self._periods.get(period, (None, None))
        whole = _digest(audit)
        if old is not None and whole == same:
            return old
        digests = _node_digests(audit)
        before = self._nodes.get(period, {})
        changed = {n for n in digests.keys() | before.keys() if digests.get(n) != before.get(n)}
        if old is not None and not changed:
            return old
        keep = None
        if old is not None:
            audit = audit[_node_index(audit).isin(list(changed))]
            keep = old[~_node_index(old).isin(list(changed))]
        weekly = overrides.calls_by_week(audit, period, quarter.start, self.weeks)
        scored = overrides.value_add(weekly, actual, model)
        scored.insert(0, "period", period)
        if keep is not None and len(keep):
            parts = [keep, scored] if len(scored) else [keep]
            scored = pd.concat(parts, ignore_index=True)
            scored = scored.sort_values(["level", "key", "call_type", "week"])
            scored = scored.reset_index(drop=True)
        log.info("forecast value add: %s scored (%d calls, %d node(s) scored again)",
                 period, len(scored), len(changed) if old is not None else len(digests))  # fmt: skip
        self._periods[period], self._nodes[period] = (whole, scored), digests
        self.computed += 1
        return scored

    def score(self, calls: CallLog) -> pd.DataFrame:
        """Every weekly call of every quarter the history has closed, scored (:func:`scores`)."""
        audit = calls.audit[calls.audit["level"].isin(_LEVELS)]
        out = []
        for period in sorted(audit["period"].unique()):
            if self._quarter(period) is None:
                continue
            out.append(self._period(period, audit[audit["period"] == period]))
        if not out:
            return overrides.value_add(
                pd.DataFrame(columns=["level", "key", "call_type", "week", "amount"]),
                {},
                pd.DataFrame(columns=["level", "key", "week", "forecast"]),
            ).assign(period=pd.Series(dtype=object))
        return pd.concat(out, ignore_index=True)

    def section(self, calls: CallLog) -> ValueAddSection:
        """The calls scored and summed up (:func:`section`)."""
        scored = self.score(calls)
        return ValueAddSection(
            scored, summary(scored), by_week(scored), calls.source, len(calls.rejected)
        )


def _node_index(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(frame[["level", "key", "call_type"]].astype(str))


def _digest(audit: pd.DataFrame) -> bytes:
    """A period's calls (node, when, how much, in order), as bytes to compare."""
    cols = ["level", "key", "call_type", "at", "new_value"]
    frame = audit[cols].astype({"new_value": float})
    return pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()


def _node_digests(audit: pd.DataFrame) -> dict[tuple[str, str, str], bytes]:
    """Each node's calls of a period (when, how much, in time order), as bytes to compare."""
    if audit.empty:
        return {}
    log = audit.sort_values("id", kind="stable")
    rows = pd.util.hash_pandas_object(
        log[["at", "new_value"]].astype({"new_value": float}), index=False
    ).to_numpy()
    nodes = log[["level", "key", "call_type"]].astype(str)
    groups = nodes.groupby(["level", "key", "call_type"], sort=False).indices
    return {tuple(node): rows[where].tobytes() for node, where in groups.items()}


def scores(
    history: pd.DataFrame,
    calls: CallLog,
    labels: pd.DataFrame | None,
    fiscal_year_start: int = config.FISCAL_YEAR_START,
    naming: str = config.FISCAL_YEAR_NAMING,
    weeks: int = WEEKS,
) -> pd.DataFrame:
    """Every weekly call of every quarter the history has closed, scored.

    Returns
    -------
    pandas.DataFrame
        ``period`` and the columns of :func:`revmodel.overrides.value_add`; calls of
        the rep level and of nodes without bookings in their quarter are left out.
    """
    return Scorer(history, labels, fiscal_year_start, naming, weeks).score(calls)


def _aggregate(scored: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The one summary of scored calls, per group of ``keys`` (columns ``keys`` first)."""
    grouped = scored.assign(_beat=(scored["value_add"] > 0).astype(float)).groupby(keys)
    out = grouped.agg(
        quarters=("period", "nunique"),
        calls=("period", "size"),
        bias=("bias", "median"),
        call_error=("call_error", "mean"),
        model_error=("model_error", "mean"),
        value_add=("value_add", "mean"),
        beat_model=("_beat", "mean"),
    )
    return out.astype({c: float for c in SUMMARY_COLUMNS[5:]}).reset_index()


def summary(scored: pd.DataFrame) -> pd.DataFrame:
    """Per node and call type over all scored quarters: :data:`SUMMARY_COLUMNS`.

    ``bias`` is the median of (call - actual) / actual (below 0: sandbagging, above
    0: optimism); ``call_error`` and ``model_error`` are mean absolute errors as a
    share of the actual; ``value_add`` their mean difference (above 0: the calls beat
    the model); ``beat_model`` the share of calls closer to the actual than the model.
    """
    if scored.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    order = {lv: i for i, lv in enumerate(overrides.CALL_LEVELS)}
    out = _aggregate(scored, ["level", "key", "call_type"])
    out["_o"] = out["level"].map(order)
    out = out.sort_values(["_o", "key", "call_type"]).drop(columns="_o")
    return out.astype({"quarters": int, "calls": int})[list(SUMMARY_COLUMNS)].reset_index(drop=True)


def by_week(scored: pd.DataFrame, call_type: str = "commit") -> pd.DataFrame:
    """Per level and week of quarter (calls of ``call_type``): the :func:`summary` figures."""
    cols = ["level", "week", *SUMMARY_COLUMNS[3:]]
    part = scored[scored["call_type"] == call_type]
    if part.empty:
        return pd.DataFrame(columns=cols)
    out = _aggregate(part, ["level", "week"])
    order = {lv: i for i, lv in enumerate(overrides.CALL_LEVELS)}
    out = out.sort_values(["level", "week"], key=lambda c: c.map(order) if c.name == "level" else c)
    return out.astype({"quarters": int, "calls": int})[cols].reset_index(drop=True)


@dataclass(frozen=True)
class ValueAddSection:
    """What the plan pack and the apps show: the scored calls, their summaries, where from."""

    scored: pd.DataFrame
    summary: pd.DataFrame
    by_week: pd.DataFrame
    source: str
    rejected: int


def section(
    history: pd.DataFrame,
    calls: CallLog,
    labels: pd.DataFrame | None,
    fiscal_year_start: int = config.FISCAL_YEAR_START,
    naming: str = config.FISCAL_YEAR_NAMING,
) -> ValueAddSection:
    """Score the calls and sum them up (:func:`scores`, :func:`summary`, :func:`by_week`)."""
    return Scorer(history, labels, fiscal_year_start, naming).section(calls)


def section_from_data(
    data_dir: str | Path,
    mapping=None,
    fiscal_year_start: int = config.FISCAL_YEAR_START,
    naming: str = config.FISCAL_YEAR_NAMING,
    store: overrides.OverrideStore | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
) -> ValueAddSection | None:
    """:func:`section` of a data folder; None without a call log or a pipeline history."""
    from revmodel import sources

    calls = call_log(data_dir, store, fiscal_year_start, naming)
    if calls is None:
        return None
    if tables is None:
        tables = sources.load(data_dir, mapping=mapping).tables
    try:
        hist, _ = load_history(data_dir, tables=tables)
    except DataError:
        return None
    return section(hist, calls, deal_labels(tables), fiscal_year_start, naming)
