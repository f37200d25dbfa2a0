"""The sample company's pipeline history: how each deal got to its current row.

:func:`history` walks every opportunity of the sample company backwards from
its final row (in ``opportunities``) to the day it was created, and writes the
states in between as the canonical ``opportunity_history`` table:

- every deal is created in ``prospecting`` and moves up the funnel one stage
  at a time, on weekdays spread over its cycle; won deals mostly reach
  ``negotiation`` first, lost deals drop out of any stage;
- close dates slip: by segment, a share of deals is pushed out one to three
  months, some more than once; half of the pushes happen in the last ten days
  of a fiscal quarter (the end-of-quarter push), the rest just before the
  expected date; a few deals are pulled in;
- a share of deals is re-priced once while open;
- closed deals get a final row on their close date with their final stage.

The last state of every deal equals its row in ``opportunities``
(``stage``, ``amount``, ``close_date``), so history and snapshot agree. The
draws come from their own random stream, so adding history leaves the other
tables' bytes unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from revmodel import config, schema


@dataclass(frozen=True)
class HistoryProfile:
    """How deals of one segment move; one per band of ``config.SEGMENT_BANDS``."""

    slip_share: float  # share of deals pushed out at least once [1]
    slip_again: float  # chance a pushed deal had been pushed before [1]
    reprice_share: float  # share of deals re-priced once while open [1]


#: Profiles for the small, middle and large band of ``config.SEGMENT_BANDS``.
HISTORY_PROFILES: tuple[HistoryProfile, ...] = (
    HistoryProfile(0.22, 0.30, 0.20),
    HistoryProfile(0.32, 0.40, 0.30),
    HistoryProfile(0.42, 0.45, 0.40),
)
#: Months a push moves a close date, and their weights.
PUSH_DAYS: tuple[int, ...] = (30, 61, 91)
PUSH_WEIGHTS: tuple[float, ...] = (0.55, 0.30, 0.15)
#: Share of pushes made in the last days of the fiscal quarter [1], and how many days [days].
QUARTER_END_PUSH = 0.5
QUARTER_END_DAYS = 10
#: Share of deals pulled in once (expected a month later before) [1].
PULL_IN_SHARE = 0.05
#: Most pushes of one deal.
MAX_PUSHES = 4
#: Forecast category of each stage of ``schema.STAGES``.
CATEGORY_OF_STAGE: tuple[str, ...] = (
    "pipeline",
    "pipeline",
    "best_case",
    "commit",
    "closed",
    "closed",
)
_STREAM = 8


def history(
    opportunities: pd.DataFrame,
    end: pd.Timestamp,
    seed: int,
    fiscal_year_start: int = config.FISCAL_YEAR_START,
) -> pd.DataFrame:
    """The ``opportunity_history`` table behind the sample's opportunities.

    Parameters
    ----------
    opportunities : pandas.DataFrame
        The sample's canonical opportunities (final state of every deal).
    end : Timestamp
        Last day of the history [date]; no change is dated after it.
    seed : int
        Seed of the random stream (stream 8 of the sample's seed).
    fiscal_year_start : int
        First month of the fiscal year, for the end-of-quarter pushes.

    Returns
    -------
    pandas.DataFrame
        Canonical ``opportunity_history`` columns, rows ordered as the deals
        in ``opportunities`` and by ``changed_at`` within a deal.
    """
    rng = np.random.default_rng([seed, _STREAM])
    deals = _deal_arrays(opportunities, end)
    moves = _stage_moves(rng, deals)
    reprices, first_amount = _reprices(rng, deals)
    redates, first_close = _close_date_moves(rng, deals, fiscal_year_start)
    events = [_creation_and_close(deals, first_amount, first_close), moves, reprices, redates]
    return _states(events, opportunities["opportunity_id"].to_numpy(dtype=object))


# --------------------------------------------------------------------------- inputs


def _days(dates: pd.Series) -> np.ndarray:
    return dates.to_numpy(dtype="datetime64[D]").astype(np.int64)


def _deal_arrays(opps: pd.DataFrame, end: pd.Timestamp) -> dict[str, np.ndarray]:
    end_day = int(np.datetime64(pd.Timestamp(end).date(), "D").astype(np.int64))
    stage = pd.Index(schema.STAGES).get_indexer(opps["stage"])
    seg_names = [b[0] for b in config.SEGMENT_BANDS]
    seg = np.maximum(pd.Index(seg_names).get_indexer(opps["segment"]), 0)
    close = _days(opps["close_date"])
    created = np.minimum(_days(opps["created_date"]), close)
    closed = stage >= len(schema.OPEN_STAGES)
    # changes happen strictly inside (created, horizon): before the close, and by the end day
    horizon = np.where(closed, close, end_day + 1)
    return {
        "stage": stage,
        "seg": seg,
        "close": close,
        "created": created,
        "closed": closed,
        "horizon": horizon,
        "amount": opps["amount"].to_numpy(dtype=float),
        "end_day": np.int64(end_day),
    }


def _event(
    deal: np.ndarray,
    day: np.ndarray,
    order: int,
    stage: np.ndarray | None = None,
    amount: np.ndarray | None = None,
    close: np.ndarray | None = None,
) -> pd.DataFrame:
    n = len(deal)
    return pd.DataFrame(
        {
            "deal": deal.astype(np.int64),
            "day": day.astype(np.int64),
            "order": np.full(n, order, dtype=np.int64),
            "stage": np.full(n, np.nan) if stage is None else stage.astype(float),
            "amount": np.full(n, np.nan) if amount is None else amount.astype(float),
            "close": np.full(n, np.nan) if close is None else close.astype(float),
        }
    )


def _weekday(day: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Move a Saturday to the Friday before and a Sunday to the Monday after, within ``[lo, hi)``."""
    dow = (day + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    day = np.where(dow == 5, day - 1, np.where(dow == 6, day + 1, day))
    return np.clip(day, lo, hi - 1)


def _inside(rng: np.random.Generator, deals: dict, idx: np.ndarray, size: int) -> np.ndarray:
    """``size`` sorted days per deal strictly between its creation and horizon."""
    lo = deals["created"][idx] + 1
    hi = deals["horizon"][idx]
    u = np.sort(rng.random((len(idx), size)), axis=1)
    day = lo[:, None] + np.floor(u * (hi - lo)[:, None]).astype(np.int64)
    return np.sort(_weekday(day, lo[:, None], hi[:, None]), axis=1)


# --------------------------------------------------------------------------- events


def _creation_and_close(
    deals: dict, first_amount: np.ndarray, first_close: np.ndarray
) -> pd.DataFrame:
    """The first row of every deal (in prospecting) and the closing row of closed deals."""
    n = len(deals["stage"])
    idx = np.arange(n)
    # a deal with no room for moves (created the day before it closed, or on the last
    # day) starts in its final open stage
    room = deals["horizon"] - deals["created"] >= 2
    top = len(schema.OPEN_STAGES) - 1
    first_stage = np.where(room | deals["closed"], 0, np.minimum(deals["stage"], top))
    created = _event(
        idx, deals["created"], 0, stage=first_stage, amount=first_amount, close=first_close
    )
    c = np.flatnonzero(deals["closed"])
    closing = _event(
        c,
        deals["close"][c],
        9,
        stage=deals["stage"][c],
        amount=deals["amount"][c],
        close=deals["close"][c],
    )
    return pd.concat([created, closing], ignore_index=True)


def _stage_moves(rng: np.random.Generator, deals: dict) -> pd.DataFrame:
    """Moves up the funnel: open deals to their stage, won deals mostly to negotiation."""
    n = len(deals["stage"])
    top = len(schema.OPEN_STAGES) - 1
    u = rng.random(n)
    reached = np.where(
        deals["closed"],
        np.where(deals["stage"] == schema.STAGES.index("won"), np.where(u < 0.7, 3, 2), u * 4),
        deals["stage"],
    ).astype(np.int64)
    reached = np.where(deals["horizon"] - deals["created"] >= 2, np.minimum(reached, top), 0)
    idx = np.flatnonzero(reached > 0)
    days = _inside(rng, deals, idx, top)
    parts = []
    for k in range(top):
        sel = reached[idx] > k
        parts.append(_event(idx[sel], days[sel, k], 1, stage=np.full(sel.sum(), k + 1)))
    return pd.concat(parts, ignore_index=True)


def _reprices(rng: np.random.Generator, deals: dict) -> tuple[pd.DataFrame, np.ndarray]:
    """One re-pricing while open: the events and every deal's first amount."""
    n = len(deals["stage"])
    share = np.asarray([p.reprice_share for p in HISTORY_PROFILES])[deals["seg"]]
    factor = np.exp(rng.normal(0.05, 0.25, n))
    before = np.maximum(np.round(deals["amount"] / factor, -2), 100.0)
    has = (rng.random(n) < share) & (deals["horizon"] - deals["created"] >= 2)
    has &= before != deals["amount"]
    idx = np.flatnonzero(has)
    day = _inside(rng, deals, idx, 1)[:, 0]
    return _event(idx, day, 2, amount=deals["amount"][idx]), np.where(has, before, deals["amount"])


def _quarter_end(day: np.ndarray, fiscal_year_start: int) -> np.ndarray:
    """Last day of the fiscal quarter holding each day."""
    months = day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    offset = (months - (fiscal_year_start - 1)) % 3
    next_start = (months - offset + 3).astype("datetime64[M]").astype("datetime64[D]")
    return next_start.astype(np.int64) - 1


def _close_date_moves(
    rng: np.random.Generator, deals: dict, fiscal_year_start: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Pushes (drawn backwards from the final close date) and a few pull-ins.

    Returns the events and every deal's first expected close date.
    """
    n = len(deals["stage"])
    prof = HISTORY_PROFILES
    expected = deals["close"].copy()
    bound = np.minimum(deals["horizon"], deals["end_day"] + 1)  # next change's day
    active = rng.random(n) < np.asarray([p.slip_share for p in prof])[deals["seg"]]
    again = np.asarray([p.slip_again for p in prof])[deals["seg"]]
    parts = []
    for _ in range(MAX_PUSHES):
        idx = np.flatnonzero(active)
        delta = np.asarray(PUSH_DAYS)[rng.choice(len(PUSH_DAYS), len(idx), p=PUSH_WEIGHTS)]
        before = expected[idx] - delta
        q_end = _quarter_end(before, fiscal_year_start)
        at_quarter_end = rng.random(len(idx)) < QUARTER_END_PUSH
        day = np.where(
            at_quarter_end,
            q_end - rng.integers(0, QUARTER_END_DAYS, len(idx)),
            before - rng.integers(0, 11, len(idx)),
        )
        # a push that would fall after the next change is made some time in the weeks before it
        late = day >= bound[idx]
        day = np.where(late, bound[idx] - 1 - rng.integers(0, 60, len(idx)), day)
        day = _weekday(day, deals["created"][idx] + 1, bound[idx])
        ok = (day > deals["created"][idx]) & (before > deals["created"][idx] + 7)
        idx, day, before = idx[ok], day[ok], before[ok]
        parts.append(_event(idx, day, 3, close=expected[idx]))
        expected[idx] = before
        bound[idx] = day
        active[:] = False
        active[idx] = rng.random(len(idx)) < again[idx]
    # a few deals were expected a month later and pulled in
    pulled = np.flatnonzero((rng.random(n) < PULL_IN_SHARE) & (bound - deals["created"] >= 2))
    lo = deals["created"][pulled] + 1
    day = lo + np.floor(rng.random(len(pulled)) * (bound[pulled] - lo)).astype(np.int64)
    day = _weekday(day, lo, bound[pulled])
    parts.append(_event(pulled, day, 3, close=expected[pulled]))
    expected[pulled] += 30
    return pd.concat(parts, ignore_index=True), expected


# --------------------------------------------------------------------------- states


def _states(events: list[pd.DataFrame], ids: np.ndarray) -> pd.DataFrame:
    """Apply the events in date order: one row per deal and day with a change."""
    ev = pd.concat(events, ignore_index=True)
    ev = ev.sort_values(["deal", "day", "order"], kind="stable")
    # the creation row (order 0, dated first) of every deal carries every field, so a
    # plain forward fill never carries a value from one deal into the next
    filled = ev[["stage", "amount", "close"]].ffill()
    ev = pd.concat([ev[["deal", "day"]], filled], axis=1)
    ev = ev.drop_duplicates(["deal", "day"], keep="last")
    same = (
        ev["deal"].eq(ev["deal"].shift())
        & ev["stage"].eq(ev["stage"].shift())
        & ev["amount"].eq(ev["amount"].shift())
        & ev["close"].eq(ev["close"].shift())
    )
    ev = ev[~same]
    stage = ev["stage"].to_numpy(dtype=np.int64)
    day = ev["day"].to_numpy(dtype=np.int64)
    close = ev["close"].to_numpy(dtype=np.int64)
    out = pd.DataFrame(
        {
            "opportunity_id": ids[ev["deal"].to_numpy()],
            "changed_at": day.astype("datetime64[D]").astype("datetime64[ns]"),
            "stage": np.asarray(schema.STAGES, dtype=object)[stage],
            "amount": ev["amount"].to_numpy(dtype=float),
            "close_date": close.astype("datetime64[D]").astype("datetime64[ns]"),
            "forecast_category": np.asarray(CATEGORY_OF_STAGE, dtype=object)[stage],
        }
    )
    return out.reset_index(drop=True)
