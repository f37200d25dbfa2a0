"""Stage conversion and slippage learned from pipeline history.

Where ``opportunity_history`` exists (an export, or derived from snapshots),
the pipeline estimators of :mod:`revmodel.pipeline` need not guess from the
spread of cycle lengths: what each deal's stage and expected close date were,
and how it ended, are recorded.

Conversion (:func:`stage_conversion`)
    By segment, open stage and months to the expected close: of the states
    deals closed (won or lost) by ``as_of`` were in at each month end, the
    share won, by amount (``weight="amount"``) or by count. A deal still in an
    early stage near its expected date is a weaker deal than one that has just
    entered it; the month-end states see this. Thin cells are shrunk towards
    the (segment, stage) rate and that towards the segment's
    (``prior_deals`` pseudo-observations).
Slippage (:func:`slippage`)
    Where won deals closed relative to what was expected: at every month end
    a deal was open (by ``as_of``), the offset in whole months from its
    expected close month then to the month it was won, one observation per
    deal and month end. Same layout as :func:`revmodel.pipeline.slippage`
    (index ``offset_months``, a distribution per segment plus ``(all)``), so
    :func:`revmodel.pipeline.weighted_pipeline` takes either.
Slippage summary (:func:`slippage_summary`)
    By segment and stage: how often close dates move (share of deals pushed
    at least once while in that stage, pushes per deal) and how far (mean
    days of a push, share of pull-ins).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from revmodel import config, schema
from revmodel.history import prepare
from revmodel.pipeline import POOLED, SLIP_RANGE

#: Pseudo-deals pulling a thin (segment, stage) cell towards its segment's rate [deals].
PRIOR_DEALS = 10.0


def _with_segment(history: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    h = prepare(history)
    if labels is None or "segment" not in labels:
        return h.assign(segment=config.PLACEHOLDER)
    seg = labels["segment"].reindex(h["opportunity_id"].to_numpy()).to_numpy(dtype=object)
    return h.assign(segment=pd.Series(seg).fillna(config.PLACEHOLDER).to_numpy(dtype=object))


def _outcomes(h: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per deal closed by ``as_of``: won or not, and the day and month it closed."""
    upto = h[h["changed_at"] <= as_of]
    last = upto.drop_duplicates("opportunity_id", keep="last").set_index("opportunity_id")
    closed = last[last["stage"].isin(schema.CLOSED_STAGES)]
    return pd.DataFrame(
        {"won": closed["stage"].eq("won"), "closed_on": closed["close_date"]}, index=closed.index
    )


#: Buckets of months from an observation to the expected close month (the last is "or more").
MONTHS_TO_CLOSE: tuple[int, ...] = (0, 1, 2, 3)


def _to_close_bucket(months: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(months, dtype=np.int64), MONTHS_TO_CLOSE[0], MONTHS_TO_CLOSE[-1])


def stage_conversion(
    history: pd.DataFrame,
    as_of,
    labels: pd.DataFrame | None = None,
    weight: str = "amount",
    prior_deals: float = PRIOR_DEALS,
) -> pd.DataFrame:
    """Win rate of an open deal by segment, stage and months to its expected close.

    Observations are the deals' states at every month end they were open (by
    ``as_of``), for the deals closed by ``as_of``; a deal still in an early
    stage close to its expected date wins less often than one that has just
    entered it, and this is what the month-end states see. ``months_to_close``
    is the expected close month minus the observation's month, 0 for this
    month or overdue, capped at 3 ("3 or more"). Each cell is shrunk towards
    its (segment, stage) rate, and that towards the segment's, with
    ``prior_deals`` pseudo-observations.

    Returns
    -------
    pandas.DataFrame
        ``segment``, ``stage``, ``months_to_close``, ``closed`` and ``won`` (weights
        of the observations) [currency or observations], ``win_rate`` [1]; a ``(all)``
        segment pools the segments.
    """
    as_of = pd.Timestamp(as_of).normalize()
    h = _with_segment(history, labels)
    out = _outcomes(h, as_of)
    obs = _month_ends(h, as_of)
    obs = obs[obs["opportunity_id"].isin(out.index)]
    won = out["won"].reindex(obs["opportunity_id"]).to_numpy(dtype=bool)
    w = obs["amount"].fillna(0.0).to_numpy() if weight == "amount" else np.ones(len(obs))
    frame = pd.DataFrame(
        {
            "segment": obs["segment"].to_numpy(),
            "stage": obs["stage"].to_numpy(),
            "months_to_close": _to_close_bucket(obs["expected"] - obs["month"]),
            "w": w,
            "won_w": np.where(won, w, 0.0),
        }
    )
    frame = pd.concat([frame, frame.assign(segment=POOLED)], ignore_index=True)
    k = prior_deals * (float(np.mean(w)) if len(w) and weight == "amount" else 1.0)
    seg = frame.groupby("segment")[["w", "won_w"]].sum()
    seg_rate = seg["won_w"] / seg["w"].where(seg["w"] > 0)
    stage = frame.groupby(["segment", "stage"])[["w", "won_w"]].sum()
    stage_prior = seg_rate.reindex(stage.index.get_level_values("segment")).to_numpy()
    stage_rate = pd.Series(
        (stage["won_w"].to_numpy() + k * stage_prior) / (stage["w"].to_numpy() + k),
        index=stage.index,
    )
    cells = frame.groupby(["segment", "stage", "months_to_close"])[["w", "won_w"]].sum()
    prior = stage_rate.reindex(cells.index.droplevel("months_to_close")).to_numpy()
    table = cells.reset_index().rename(columns={"w": "closed", "won_w": "won"})
    table["win_rate"] = (table["won"].to_numpy() + k * prior) / (table["closed"].to_numpy() + k)
    order = {st: i for i, st in enumerate(schema.OPEN_STAGES)}
    table["_o"] = table["stage"].map(order)
    table = table.sort_values(["segment", "_o", "months_to_close"]).drop(columns="_o")
    return table.reset_index(drop=True)


def win_probability(conversion: pd.DataFrame, segment, stage, months_to_close=None) -> np.ndarray:
    """Win rate of deals by segment, stage and months to close (arrays).

    ``months_to_close`` (expected close month minus the current month) defaults to
    3 or more. A cell the history never saw falls back to its (segment, stage)
    rate, then to the pooled segments' cell, then to the pooled stage rate.
    """
    seg, stg = np.asarray(segment, dtype=object), np.asarray(stage, dtype=object)
    mtc = (
        np.full(len(stg), MONTHS_TO_CLOSE[-1])
        if months_to_close is None
        else _to_close_bucket(months_to_close)
    )
    pooled_seg = np.full(len(stg), POOLED, dtype=object)
    cell = conversion.set_index(["segment", "stage", "months_to_close"])["win_rate"]
    sums = conversion.groupby(["segment", "stage"])[["closed", "won"]].sum()
    by_stage = sums["won"] / sums["closed"].where(sums["closed"] > 0)
    p = np.full(len(stg), np.nan)
    for table, keys in (
        (cell, [seg, stg, mtc]),
        (by_stage, [seg, stg]),
        (cell, [pooled_seg, stg, mtc]),
        (by_stage, [pooled_seg, stg]),
    ):
        if not np.isnan(p).any():
            break
        found = table.reindex(pd.MultiIndex.from_arrays(keys)).to_numpy(dtype=float)
        p = np.where(np.isnan(p), found, p)
    return np.nan_to_num(p)


def _month_ends(h: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per open state and month end it covered, by ``as_of`` (months as integers)."""
    h = h[h["changed_at"] <= as_of]
    nxt = h.groupby("opportunity_id")["changed_at"].shift(-1).fillna(as_of + pd.Timedelta(days=1))
    is_open = h["stage"].isin(schema.OPEN_STAGES).to_numpy()
    first = (h["changed_at"] + pd.offsets.MonthEnd(0)).to_numpy(dtype="datetime64[M]")
    last_day = (nxt - pd.Timedelta(days=1)).to_numpy(dtype="datetime64[D]")
    last = (last_day + 1).astype("datetime64[M]") - 1  # last month whose end is covered
    n = np.where(is_open, (last - first).astype(np.int64) + 1, 0)
    n = np.maximum(n, 0)
    idx = np.repeat(np.arange(len(h)), n)
    step = np.arange(len(idx)) - np.repeat(np.cumsum(n) - n, n)
    month = first[idx] + step
    return pd.DataFrame(
        {
            "opportunity_id": h["opportunity_id"].to_numpy()[idx],
            "segment": h["segment"].to_numpy()[idx],
            "stage": h["stage"].to_numpy()[idx],
            "month": month.astype(np.int64),
            "expected": h["close_date"].to_numpy(dtype="datetime64[M]").astype(np.int64)[idx],
            "amount": h["amount"].to_numpy(dtype=float)[idx],
        }
    )


def slippage(
    history: pd.DataFrame,
    as_of,
    labels: pd.DataFrame | None = None,
    slip_range: tuple[int, int] = SLIP_RANGE,
) -> pd.DataFrame:
    """Distribution of the won month relative to the expected month, per segment.

    See the module docstring. Returns a frame indexed by ``offset_months``
    (``slip_range``, ends clipped) with one column per segment and ``(all)``;
    the point mass at 0 when no deal was won by ``as_of``.
    """
    as_of = pd.Timestamp(as_of).normalize()
    h = _with_segment(history, labels)
    out = _outcomes(h, as_of)
    won = out[out["won"]]
    obs = _month_ends(h, as_of)
    obs = obs[obs["opportunity_id"].isin(won.index)]
    closed_on = won["closed_on"].reindex(obs["opportunity_id"])
    closed_m = closed_on.to_numpy(dtype="datetime64[M]").astype(np.int64)
    lo, hi = int(slip_range[0]), int(slip_range[1])
    offset = np.clip(closed_m - obs["expected"].to_numpy(dtype=np.int64), lo, hi)
    offsets = np.arange(lo, hi + 1)
    cols: dict[str, np.ndarray] = {}
    frame = pd.DataFrame({"segment": obs["segment"].to_numpy(), "offset": offset})
    for key, g in frame.groupby("segment", sort=True):
        counts = g["offset"].value_counts().reindex(offsets, fill_value=0).to_numpy(dtype=float)
        cols[str(key)] = counts / counts.sum()
    counts = frame["offset"].value_counts().reindex(offsets, fill_value=0).to_numpy(dtype=float)
    cols[POOLED] = counts / counts.sum() if counts.sum() > 0 else (offsets == 0).astype(float)
    return pd.DataFrame(cols, index=pd.Index(offsets, name="offset_months"))


def slippage_summary(
    history: pd.DataFrame, as_of, labels: pd.DataFrame | None = None
) -> pd.DataFrame:
    """How often and how far close dates move, by segment and stage (by ``as_of``).

    Returns
    -------
    pandas.DataFrame
        ``segment``, ``stage``, ``deals`` (deals seen in that stage), ``pushed_share``
        (share pushed out at least once while in it) [1], ``pushes_per_deal`` [1],
        ``mean_push_days`` [days], ``pulled_in_share`` [1].
    """
    as_of = pd.Timestamp(as_of).normalize()
    h = _with_segment(history, labels)
    h = h[h["changed_at"] <= as_of]
    prev = h.groupby("opportunity_id")[["close_date", "stage"]].shift()
    moved = (h["close_date"] - prev["close_date"]).dt.days
    while_open = prev["stage"].isin(schema.OPEN_STAGES) & h["stage"].isin(schema.OPEN_STAGES)
    ev = pd.DataFrame(
        {
            "opportunity_id": h["opportunity_id"],
            "segment": h["segment"],
            "stage": prev["stage"],
            "push": (moved > 0) & while_open,
            "pull": (moved < 0) & while_open,
            "days": moved.where((moved > 0) & while_open),
        }
    )
    seen = h[h["stage"].isin(schema.OPEN_STAGES)][["opportunity_id", "segment", "stage"]]
    seen = seen.drop_duplicates(["opportunity_id", "stage"])
    per_deal = ev.groupby(["segment", "stage", "opportunity_id"])[["push", "pull"]].sum()
    rows = []
    for (seg, stage), g in seen.groupby(["segment", "stage"], sort=True):
        keys = pd.MultiIndex.from_arrays(
            [
                np.full(len(g), seg, dtype=object),
                np.full(len(g), stage, dtype=object),
                g["opportunity_id"],
            ]
        )
        d = per_deal.reindex(keys, fill_value=0)
        days = ev.loc[(ev["segment"] == seg) & (ev["stage"] == stage), "days"].dropna()
        rows.append(
            {
                "segment": seg,
                "stage": stage,
                "deals": len(g),
                "pushed_share": float((d["push"] > 0).mean()),
                "pushes_per_deal": float(d["push"].mean()),
                "mean_push_days": float(days.mean()) if len(days) else np.nan,
                "pulled_in_share": float((d["pull"] > 0).mean()),
            }
        )
    return pd.DataFrame(rows)
