"""The in-quarter forecast by week of quarter, and its week-by-week backtest.

At the end of week ``w`` of a quarter (day ``as_of``), the quarter's bookings are
forecast as the sum of three parts (:func:`in_quarter_forecast`):

closed
    Won so far: deals won by ``as_of`` with a close date in the quarter.
open
    Expected from the deals open at ``as_of`` (as recorded then): amount x win
    rate of their segment and stage x probability that they close by the
    quarter's last month given their expected close month and the learned
    slippage of their segment (conditioned on closing no earlier than the month
    of ``as_of``). Conversion and slippage are learned from the history up to
    the quarter's first day (:mod:`revmodel.learned`), so the backtest never
    sees the outcome it forecasts.
not yet created
    The average, over the ``lookback`` previous quarters, of the bookings won in
    the quarter from deals created after the same day of that quarter.

The interval is conformal: each of the :data:`CALIBRATION_QUARTERS` quarters
before (as many as the history covers) is replayed week by week with the rates
learned before it (:func:`calibration`), and its error at week ``w`` is read as
``|what was won after week w / what was expected then - 1|``. The interval of
week ``w`` is the forecast plus or minus the remaining expectation times the
conformal quantile of those errors (:meth:`Calibration.half_width`: the ``k``-th
smallest of the ``n`` past errors, ``k`` nearest to ``level x (n + 1)``), so that a
new quarter falls in it about as often as ``level`` when quarters are alike. The
empirical error holds everything at once: deal-by-deal chance, a good or a
bad quarter, the forecast's own bias; it does not vanish at scale, where
thousands of independent deals would make a deal-by-deal variance vanish.
With fewer than two past quarters the interval falls back to the normal one
from the deals' own variance (each open deal an independent win: ``a^2 q (1 -
q)`` for amount ``a`` and probability ``q``), the variance of the
not-yet-created part across the lookback quarters and the spread of what the
deals open at a quarter's start brought in (:func:`open_spread`). It is never
below what is already closed.

:func:`in_quarter_backtest` replays past quarters week by week and sets each
forecast beside the actual and beside the statistical forecast alone (the
default model of :mod:`revmodel.models` fitted to the monthly bookings up to
the month before the quarter, summed over its three months).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from revmodel import config, learned, schema
from revmodel.history import prepare, state_at

log = logging.getLogger(__name__)

#: Weeks forecast in a quarter (the 13th ends on day 91).
WEEKS = 13
#: Quarters whose not-yet-created bookings are averaged.
LOOKBACK_QUARTERS = 4
#: Past quarters whose errors calibrate the interval (as many as the history covers).
CALIBRATION_QUARTERS = 8
#: Columns of :func:`in_quarter_backtest`.
BACKTEST_COLUMNS: tuple[str, ...] = (
    "quarter_start",
    "week",
    "as_of",
    "actual",
    "closed",
    "open",
    "not_created",
    "forecast",
    "lower",
    "upper",
    "statistical",
)


@dataclass(frozen=True)
class Quarter:
    """A quarter's first and last day."""

    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def of(cls, start) -> Quarter:
        start = pd.Timestamp(start).normalize()
        return cls(start, start + pd.DateOffset(months=3) - pd.Timedelta(days=1))


@dataclass(frozen=True)
class Learned:
    """Conversion and slippage learned from history up to a day (see :mod:`revmodel.learned`)."""

    conversion: pd.DataFrame
    slip: pd.DataFrame

    @classmethod
    def from_history(cls, history: pd.DataFrame, as_of, labels: pd.DataFrame | None) -> Learned:
        return cls(
            learned.stage_conversion(history, as_of, labels),
            learned.slippage(history, as_of, labels),
        )


def _months(days) -> np.ndarray:
    return np.asarray(days, dtype="datetime64[M]").astype(np.int64)


def _segments(index: pd.Index, labels: pd.DataFrame | None) -> np.ndarray:
    if labels is None:
        return np.full(len(index), "(unassigned)", dtype=object)
    return labels["segment"].reindex(index).fillna("(unassigned)").to_numpy(dtype=object)


def _close_in_quarter(
    slip: pd.DataFrame, segments: np.ndarray, expected: np.ndarray, now: int, last: int
) -> np.ndarray:
    """P(a deal closes in months ``now..last`` | it closes no earlier than ``now``)."""
    offsets = slip.index.to_numpy(dtype=np.int64)
    cols = [s if s in slip.columns else learned.POOLED for s in segments]
    probs = slip[cols].to_numpy(dtype=float).T if len(cols) else np.zeros((0, len(offsets)))
    target = expected[:, None] + offsets[None, :]
    probs = np.where(target >= now, probs, 0.0)
    total = probs.sum(axis=1)
    inside = np.where(target <= last, probs, 0.0).sum(axis=1)
    return np.divide(inside, total, out=np.zeros_like(inside), where=total > 0)


def _won_in(
    hist: pd.DataFrame, quarter: Quarter, as_of: pd.Timestamp, state: pd.DataFrame | None = None
) -> pd.Series:
    """Amount won by ``as_of`` per deal, with a close date in the quarter (``state``: the
    deals' :func:`~revmodel.history.state_at` ``as_of``, when already found)."""
    state = state_at(hist, as_of) if state is None else state
    won = state[(state["stage"] == "won") & state["close_date"].between(quarter.start, quarter.end)]
    return won["amount"].fillna(0.0)


def past_creations(hist: pd.DataFrame, quarter: Quarter, lookback: int) -> list[np.ndarray]:
    """For each of the ``lookback`` quarters before ``quarter`` that the history covers:
    ``(days from the quarter's start to each won deal's creation, its amount)`` as a 2 x n array."""
    created = hist.drop_duplicates("opportunity_id").set_index("opportunity_id")["changed_at"]
    out = []
    for k in range(1, lookback + 1):
        past = Quarter.of(quarter.start - pd.DateOffset(months=3 * k))
        if past.start < hist["changed_at"].min():
            break
        won = _won_in(hist, past, past.end)
        offset = (created.reindex(won.index) - past.start).dt.days.to_numpy(dtype=float)
        out.append(np.vstack([offset, won.to_numpy(dtype=float)]))
    return out


def _not_created(past: list[np.ndarray], day: int) -> tuple[float, float]:
    """Mean and variance of bookings from deals created after day ``day`` of past quarters."""
    values = [float(a[1][a[0] > day].sum()) for a in past]
    if not values:
        return 0.0, 0.0
    return float(np.mean(values)), float(np.var(values, ddof=1)) if len(values) > 1 else 0.0


def in_quarter_forecast(
    history: pd.DataFrame,
    quarter: Quarter,
    as_of,
    labels: pd.DataFrame | None = None,
    rates: Learned | None = None,
    level: float = 0.8,
    lookback: int = LOOKBACK_QUARTERS,
) -> dict[str, float]:
    """The quarter's bookings forecast at the end of day ``as_of`` (see the module docstring).

    Parameters
    ----------
    history : pandas.DataFrame
        Canonical ``opportunity_history``.
    quarter : Quarter
        The quarter forecast.
    as_of : date-like
        The day of the forecast [date], within the quarter.
    labels : pandas.DataFrame, optional
        :func:`revmodel.history.deal_labels` (segments).
    rates : Learned, optional
        Conversion and slippage; default learned from the history before the quarter.
    level : float
        Coverage of the interval [1].
    lookback : int
        Past quarters averaged for the deals not yet created.

    Returns
    -------
    dict
        ``closed``, ``open``, ``not_created``, ``forecast``, ``lower``, ``upper`` [currency].
    """
    hist = prepare(history)
    as_of = pd.Timestamp(as_of).normalize()
    if rates is None:
        rates = Learned.from_history(hist, quarter.start - pd.Timedelta(days=1), labels)
    past = past_creations(hist, quarter, lookback)
    calib = calibration(hist, quarter, labels, WEEKS, lookback)
    spread = open_spread(hist, quarter, labels, rates, lookback) if calib is None else 0.0
    return _forecast(hist, quarter, as_of, labels, rates, past, level, spread, calib)


def _open_deals(
    hist: pd.DataFrame,
    quarter: Quarter,
    as_of: pd.Timestamp,
    labels: pd.DataFrame | None,
    rates: Learned,
    state: pd.DataFrame | None = None,
) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """The deals open at ``as_of``, their amount and their probability of being won in the
    quarter (``state`` as for :func:`_won_in`)."""
    state = state_at(hist, as_of) if state is None else state
    open_ = state[state["stage"].isin(schema.OPEN_STAGES)]
    seg = _segments(open_.index, labels)
    expected = _months(open_["close_date"].to_numpy(dtype="datetime64[D]"))
    now = int(_months([as_of])[0])
    p = learned.win_probability(
        rates.conversion, seg, open_["stage"].to_numpy(dtype=object), expected - now
    )
    q = p * _close_in_quarter(rates.slip, seg, expected, now, int(_months([quarter.end])[0]))
    return open_.index, open_["amount"].fillna(0.0).to_numpy(dtype=float), q


def _open_expectation(
    hist: pd.DataFrame,
    quarter: Quarter,
    as_of: pd.Timestamp,
    labels: pd.DataFrame | None,
    rates: Learned,
) -> tuple[float, float, pd.Index]:
    """Expected bookings in the quarter from the deals open at ``as_of``: mean, variance
    (independent deals) and the deals."""
    deals, amount, q = _open_deals(hist, quarter, as_of, labels, rates)
    return float((amount * q).sum()), float((amount**2 * q * (1 - q)).sum()), deals


def open_spread(
    hist: pd.DataFrame,
    quarter: Quarter,
    labels: pd.DataFrame | None,
    rates: Learned,
    lookback: int = LOOKBACK_QUARTERS,
) -> float:
    """Relative spread of what the open deals brought in, quarter to quarter.

    For each of the ``lookback`` quarters before ``quarter`` the history covers:
    the bookings won in it from the deals open at its first day, over what
    ``rates`` expected of them. Returns the standard deviation of these ratios
    [1] (0 with fewer than two quarters): the error shared by all open deals
    (a good or a bad quarter), which the deal-by-deal variance leaves out.
    """
    ratios = []
    for k in range(1, lookback + 1):
        past = Quarter.of(quarter.start - pd.DateOffset(months=3 * k))
        if past.start < hist["changed_at"].min():
            break
        mean, _, deals = _open_expectation(hist, past, past.start, labels, rates)
        won = _won_in(hist, past, past.end)
        if mean > 0:
            ratios.append(float(won[won.index.isin(deals)].sum()) / mean)
    return float(np.std(ratios, ddof=1)) if len(ratios) > 1 else 0.0


@dataclass(frozen=True)
class Calibration:
    """How far the past quarters' remaining bookings fell from what was expected, by week.

    ``errors[k, w - 1]``: for past quarter ``k``, ``|bookings won after week w / the
    open and not-yet-created expectation at week w - 1|`` [1] (NaN where nothing
    was expected).
    """

    errors: np.ndarray

    @property
    def quarters(self) -> int:
        return int(self.errors.shape[0])

    def half_width(self, week: int, level: float) -> float:
        """The conformal quantile of week ``week``'s errors for coverage ``level`` [1]: of
        the ``n`` errors, the ``k``-th smallest, ``k`` the nearest whole number to ``level x
        (n + 1)`` (at least 1, at most ``n``). A new quarter like the past ones falls
        within it with probability ``k / (n + 1)``, within ``1 / (2 (n + 1))`` of ``level``
        unless ``k`` is cut to ``n``."""
        seen = np.sort(self.errors[:, week - 1][~np.isnan(self.errors[:, week - 1])])
        if len(seen) == 0:
            return 0.0
        k = min(len(seen), max(1, int(np.floor(level * (len(seen) + 1) + 0.5))))
        return float(seen[k - 1])


def _replay(
    hist: pd.DataFrame,
    quarter: Quarter,
    labels: pd.DataFrame | None,
    weeks: int,
    lookback: int,
) -> np.ndarray:
    """Per week of a past quarter, as forecast then: closed so far and the open and
    not-yet-created expectation (2 x ``weeks``)."""
    rates = Learned.from_history(hist, quarter.start - pd.Timedelta(days=1), labels)
    past = past_creations(hist, quarter, lookback)
    out = np.zeros((2, weeks))
    for week in range(1, weeks + 1):
        as_of = min(quarter.start + pd.Timedelta(days=7 * week - 1), quarter.end)
        out[0, week - 1] = float(_won_in(hist, quarter, as_of).sum())
        open_mean, _, _ = _open_expectation(hist, quarter, as_of, labels, rates)
        out[1, week - 1] = open_mean + _not_created(past, (as_of - quarter.start).days)[0]
    return out


def calibration(
    hist: pd.DataFrame,
    quarter: Quarter,
    labels: pd.DataFrame | None = None,
    weeks: int = WEEKS,
    lookback: int = LOOKBACK_QUARTERS,
    cache: dict | None = None,
    quarters: int = CALIBRATION_QUARTERS,
) -> Calibration | None:
    """:class:`Calibration` from the ``quarters`` quarters before ``quarter`` that the
    history covers (None with fewer than two). Each past quarter is replayed with the
    rates learned before it (``lookback`` quarters for its not-yet-created part), and
    its outcome is read as known the day before ``quarter`` starts; ``cache`` lets a
    backtest replay each past quarter once."""
    hist = prepare(hist)
    cutoff = quarter.start - pd.Timedelta(days=1)
    errors = []
    for k in range(1, quarters + 1):
        past = Quarter.of(quarter.start - pd.DateOffset(months=3 * k))
        if past.start < hist["changed_at"].min():
            break
        key = (past.start, weeks, lookback)
        replay = cache.get(key) if cache is not None else None
        if replay is None:
            replay = _replay(hist, past, labels, weeks, lookback)
            if cache is not None:
                cache[key] = replay
        actual = float(_won_in(hist, past, cutoff).sum())
        closed, expected = replay
        ratio = np.divide(actual - closed, expected, out=np.full(weeks, np.nan), where=expected > 0)
        errors.append(np.abs(ratio - 1.0))
    if len(errors) < 2:
        return None
    return Calibration(np.vstack(errors))


def _forecast(
    hist: pd.DataFrame,
    quarter: Quarter,
    as_of: pd.Timestamp,
    labels: pd.DataFrame | None,
    rates: Learned,
    past: list[np.ndarray],
    level: float,
    spread: float = 0.0,
    calib: Calibration | None = None,
) -> dict[str, float]:
    closed = float(_won_in(hist, quarter, as_of).sum())
    open_mean, open_var, _ = _open_expectation(hist, quarter, as_of, labels, rates)
    new_mean, new_var = _not_created(past, (as_of - quarter.start).days)
    forecast = closed + open_mean + new_mean
    from scipy import stats  # imported when used: the weekly app's kernel starts without it

    if calib is None:
        shared = (spread * open_mean) ** 2
        half = float(stats.norm.ppf(0.5 + level / 2)) * np.sqrt(open_var + new_var + shared)
    else:
        # the remaining bookings' error as past quarters saw it at the same week
        week = min(max((as_of - quarter.start).days // 7 + 1, 1), calib.errors.shape[1])
        half = calib.half_width(week, level) * (open_mean + new_mean)
    return {
        "closed": closed,
        "open": open_mean,
        "not_created": new_mean,
        "forecast": forecast,
        "lower": max(closed, forecast - half),
        "upper": forecast + half,
    }


def statistical_quarter(history: pd.DataFrame, quarter: Quarter) -> float:
    """The statistical forecast alone: the default model on monthly bookings before the quarter."""
    from revmodel import models

    cutoff = quarter.start - pd.Timedelta(days=1)
    state = state_at(prepare(history), cutoff)
    won = state[(state["stage"] == "won") & (state["close_date"] <= cutoff)]
    if won.empty:
        return float("nan")
    monthly = won["amount"].fillna(0.0).groupby(won["close_date"].dt.to_period("M")).sum()
    months = pd.period_range(monthly.index.min(), quarter.start.to_period("M") - 1, freq="M")
    y = monthly.reindex(months, fill_value=0.0).to_numpy(dtype=float)
    if len(y) < 24:
        return float(np.mean(y[-12:]) * 3) if len(y) else np.nan
    mean, _ = models.default_model().fit_predict(y, 3)
    return float(np.sum(mean))


def in_quarter_backtest(
    history: pd.DataFrame,
    quarters: list[Quarter],
    labels: pd.DataFrame | None = None,
    weeks: int = WEEKS,
    level: float = 0.8,
    lookback: int = LOOKBACK_QUARTERS,
    calibrate: bool = True,
) -> pd.DataFrame:
    """Replay the in-quarter forecast at the end of each week of past quarters.

    ``calibrate=False`` keeps the interval of the open deals' spread alone (no
    :func:`calibration`), for comparison.

    Returns
    -------
    pandas.DataFrame
        :data:`BACKTEST_COLUMNS`, one row per quarter and week; ``actual`` is what
        was won in the quarter as the history last records it [currency].
    """
    hist = prepare(history)
    last_day = hist["changed_at"].max()
    rows = []
    cache: dict = {}
    for quarter in sorted(quarters, key=lambda q: q.start):
        rates = Learned.from_history(hist, quarter.start - pd.Timedelta(days=1), labels)
        actual = float(_won_in(hist, quarter, last_day).sum())
        stat = statistical_quarter(hist, quarter)
        past = past_creations(hist, quarter, lookback)
        calib = calibration(hist, quarter, labels, weeks, lookback, cache) if calibrate else None
        spread = open_spread(hist, quarter, labels, rates, lookback) if calib is None else 0.0
        for week in range(1, weeks + 1):
            as_of = min(quarter.start + pd.Timedelta(days=7 * week - 1), quarter.end)
            f = _forecast(hist, quarter, as_of, labels, rates, past, level, spread, calib)
            rows.append(
                {
                    "quarter_start": quarter.start,
                    "week": week,
                    "as_of": as_of,
                    "actual": actual,
                    **f,
                    "statistical": stat,
                }
            )
        log.info("in-quarter backtest: quarter from %s done", f"{quarter.start:%Y-%m-%d}")
    return pd.DataFrame(rows, columns=list(BACKTEST_COLUMNS))


def _keys(index: pd.Index, labels: pd.DataFrame | None, level: str) -> np.ndarray:
    if level == "total":
        return np.full(len(index), "total", dtype=object)
    if labels is None:
        return np.full(len(index), config.PLACEHOLDER, dtype=object)
    return (
        labels[level].reindex(index).fillna(config.PLACEHOLDER).astype(str).to_numpy(dtype=object)
    )


def _by_node(values: np.ndarray, index: pd.Index, labels, levels) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for level in levels:
        sums = pd.Series(values, dtype=float).groupby(_keys(index, labels, level)).sum()
        out.update({(level, str(k)): float(v) for k, v in sums.items()})
    return out


@dataclass(frozen=True)
class _Nodes:
    """Each labelled deal's node at every level, as integer codes: one node sum of a set of
    deals is one ``groupby`` over codes (the same sums, in the same order, as
    :func:`_by_node`'s, without looking the deals' labels up again)."""

    index: pd.Index
    #: level x (labelled deals + 1): the code of each deal's node; last column, a deal
    #: without labels
    codes: np.ndarray
    names: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, labels: pd.DataFrame | None, levels: tuple[str, ...]) -> _Nodes:
        index = pd.Index([]) if labels is None else labels.index
        names: list[tuple[str, str]] = []
        codes = np.empty((len(levels), len(index) + 1), dtype=np.int64)
        for i, level in enumerate(levels):
            keys = np.append(_keys(index, labels, level), _keys(pd.Index([None]), None, level))
            uniques, inverse = np.unique(keys.astype(str), return_inverse=True)
            codes[i] = inverse.ravel() + len(names)
            names += [(level, str(k)) for k in uniques]
        return cls(index, codes, tuple(names))

    def positions(self, deals: pd.Index) -> np.ndarray:
        """Columns of :attr:`codes` of ``deals`` (the last one for a deal without labels)."""
        found = self.index.get_indexer(deals)
        return np.where(found < 0, len(self.index), found)

    def sums(self, values: np.ndarray, positions: np.ndarray) -> dict[tuple[str, str], float]:
        """``values`` (one per deal at ``positions``) summed by node of every level."""
        series = pd.Series(values, dtype=float)
        out: dict[tuple[str, str], float] = {}
        for codes in self.codes[:, positions]:
            out.update({self.names[c]: float(v) for c, v in series.groupby(codes).sum().items()})
        return out


def node_forecasts(
    history: pd.DataFrame,
    quarter: Quarter,
    labels: pd.DataFrame | None = None,
    levels: tuple[str, ...] = ("manager", "region", "total"),
    weeks: int = WEEKS,
    lookback: int = LOOKBACK_QUARTERS,
) -> pd.DataFrame:
    """The in-quarter forecast of every node of ``levels``, made at the end of each week.

    The same three parts as :func:`in_quarter_forecast` (closed, open deals, deals not
    yet created), each summed over the node's deals (``labels`` gives each deal's
    manager and region; level ``total`` is key ``"total"``), with the rates learned
    before the quarter. The company's row equals :func:`in_quarter_backtest`'s forecast.

    Returns
    -------
    pandas.DataFrame
        ``level, key, week, forecast`` [currency], one row per node with a deal and week.
    """
    hist = prepare(history)
    rates = Learned.from_history(hist, quarter.start - pd.Timedelta(days=1), labels)
    nodes = _Nodes.of(labels, levels)
    created = hist.drop_duplicates("opportunity_id").set_index("opportunity_id")["changed_at"]
    past = []
    for k in range(1, lookback + 1):
        before = Quarter.of(quarter.start - pd.DateOffset(months=3 * k))
        if before.start < hist["changed_at"].min():
            break
        won = _won_in(hist, before, before.end)
        offset = (created.reindex(won.index) - before.start).dt.days.to_numpy(dtype=float)
        past.append((offset, won.to_numpy(dtype=float), nodes.positions(won.index)))
    rows = []
    for week in range(1, weeks + 1):
        as_of = min(quarter.start + pd.Timedelta(days=7 * week - 1), quarter.end)
        day = (as_of - quarter.start).days
        state = state_at(hist, as_of)
        won = _won_in(hist, quarter, as_of, state)
        deals, amount, q = _open_deals(hist, quarter, as_of, labels, rates, state)
        parts = [nodes.sums(won.to_numpy(dtype=float), nodes.positions(won.index))]
        parts.append(nodes.sums(amount * q, nodes.positions(deals)))
        for offset, amounts, positions in past:
            later = offset > day
            parts.append(nodes.sums(amounts * later / len(past), positions))
        total: dict[tuple[str, str], float] = {}
        for part in parts:
            for node, value in part.items():
                total[node] = total.get(node, 0.0) + value
        rows += [(lv, k, week, v) for (lv, k), v in total.items()]
    out = pd.DataFrame(rows, columns=["level", "key", "week", "forecast"])
    return out.sort_values(["level", "key", "week"]).reset_index(drop=True)


def node_actuals(
    history: pd.DataFrame,
    quarter: Quarter,
    labels: pd.DataFrame | None = None,
    levels: tuple[str, ...] = ("manager", "region", "total"),
) -> dict[tuple[str, str], float]:
    """Bookings of every node in the quarter, as the history last records them [currency]."""
    hist = prepare(history)
    won = _won_in(hist, quarter, hist["changed_at"].max())
    return _by_node(won.to_numpy(dtype=float), won.index, labels, levels)


def error_by_week(backtest: pd.DataFrame) -> pd.DataFrame:
    """WAPE of the in-quarter and the statistical forecast by week, and interval coverage.

    Returns
    -------
    pandas.DataFrame
        Index ``week``: ``quarters``, ``wape_in_quarter`` [1], ``wape_statistical`` [1],
        ``coverage`` (share of quarters whose actual fell in the interval) [1].
    """

    def summary(g: pd.DataFrame) -> pd.Series:
        total = g["actual"].abs().sum()
        return pd.Series(
            {
                "quarters": len(g),
                "wape_in_quarter": (g["actual"] - g["forecast"]).abs().sum() / total,
                "wape_statistical": (g["actual"] - g["statistical"]).abs().sum() / total,
                "coverage": ((g["actual"] >= g["lower"]) & (g["actual"] <= g["upper"])).mean(),
            }
        )

    return backtest.groupby("week").apply(summary, include_groups=False)
