"""The sample company's past forecast calls: every week of its last quarters.

Every first-line manager, every region lead and the VP (the company, level
``total``) called a commit and a best case each week of each of the last
:data:`QUARTERS` fiscal quarters the history completes, as a CRO's Monday
forecast call keeps them. Each caller has a habit (:class:`CallerProfile`):

- a *sandbagger* calls below what the team books (bias -25 % to -10 %),
- a *realistic* caller calls close to it (-3 % to +3 %),
- an *optimist* calls above it (+8 % to +20 %);

around the habit the week's call is noisy early in the quarter and close to
the outcome late (:func:`noise_sd`): ``commit = actual x (1 + bias) x exp(e)``
with ``e ~ N(0, noise_sd(week))``, so ``bias`` is the median of
``commit / actual - 1`` over a caller's calls. The best case is the commit
plus the caller's upside (10 % to 30 %), so a commit never exceeds its best
case. Amounts are rounded to the nearest 100.

``actual`` is what the node booked in the quarter: the won deals closing in
it, by the manager and region of :func:`revmodel.history.deal_labels`. A
manager or region that booked nothing in a quarter made no call for it.

:func:`calls` returns the calls as the rows of the forecast-call audit log
(:data:`revmodel.overrides.audit_table` without ``id``), dated on the fifth
day of their week at 17:00; ``revmodel sample`` writes them as ``forecast_calls.csv``
(:data:`FILE`). The draws come from their own random stream, so the other
tables do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from revmodel import calendar as fcal
from revmodel import config, schema

#: File name of the call log in a data folder.
FILE = config.CALL_LOG_FILE
#: Past fiscal quarters with weekly calls.
QUARTERS = 6
#: Weeks called in a quarter.
WEEKS = 13
#: Habits: name, share of callers, range of the bias [1].
STYLES: tuple[tuple[str, float, tuple[float, float]], ...] = (
    ("sandbagger", 0.35, (-0.25, -0.10)),
    ("realistic", 0.40, (-0.03, 0.03)),
    ("optimist", 0.25, (0.08, 0.20)),
)
#: Range of the best case over the commit, less one [1].
UPSIDE: tuple[float, float] = (0.10, 0.30)
#: Spread of a call's log error in week 1 and week 13 [1].
NOISE_FIRST_WEEK = 0.20
NOISE_LAST_WEEK = 0.03
#: Columns of the call log (the audit table's, without its id).
COLUMNS: tuple[str, ...] = (
    "at",
    "user",
    "action",
    "level",
    "key",
    "period",
    "call_type",
    "old_value",
    "new_value",
    "note",
    "source",
)
_STREAM = 9
_LEVELS: tuple[str, ...] = ("manager", "region", "total")


@dataclass(frozen=True)
class CallerProfile:
    """How one caller calls: ``style`` of :data:`STYLES`, ``bias`` and ``upside`` [1]."""

    level: str
    key: str
    style: str
    bias: float
    upside: float


def noise_sd(week: np.ndarray | int) -> np.ndarray:
    """Spread of a call's log error in week ``week`` of the quarter [1]."""
    w = (np.asarray(week, dtype=float) - 1.0) / (WEEKS - 1)
    return NOISE_FIRST_WEEK + (NOISE_LAST_WEEK - NOISE_FIRST_WEEK) * w


def _nodes(labels: pd.DataFrame) -> list[tuple[str, str]]:
    managers = sorted(set(labels["manager"].astype(str)) - {config.PLACEHOLDER})
    regions = sorted(set(labels["region"].astype(str)) - {config.PLACEHOLDER})
    return (
        [("manager", m) for m in managers] + [("region", g) for g in regions] + [("total", "total")]
    )


def profiles(labels: pd.DataFrame, seed: int) -> list[CallerProfile]:
    """The habit of every caller of the company (drawn from stream 9 of ``seed``).

    ``labels`` is :func:`revmodel.history.deal_labels` of the sample's tables;
    callers are its managers, its regions and the company, in that order.
    """
    rng = np.random.default_rng([seed, _STREAM])
    nodes = _nodes(labels)
    shares = np.asarray([s[1] for s in STYLES])
    style = rng.choice(len(STYLES), size=len(nodes), p=shares / shares.sum())
    u = rng.random(len(nodes))
    upside = UPSIDE[0] + (UPSIDE[1] - UPSIDE[0]) * rng.random(len(nodes))
    out = []
    for (level, key), s, ui, up in zip(nodes, style, u, upside, strict=True):
        lo, hi = STYLES[s][2]
        out.append(
            CallerProfile(level, key, STYLES[s][0], round(lo + (hi - lo) * ui, 4), round(up, 4))
        )
    return out


def quarters_called(
    end: pd.Timestamp,
    fiscal_year_start: int,
    naming: str,
    n: int = QUARTERS,
    begin: pd.Timestamp | None = None,
) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    """The last ``n`` fiscal quarters that end on or before ``end`` (and start on or after
    ``begin``, the first day of history): (label, first, last day)."""
    end = pd.Timestamp(end).normalize()
    month = end.to_period("M").to_timestamp()
    start = pd.Timestamp(fcal.quarter_start(np.datetime64(month, "M"), fiscal_year_start).item())
    start = pd.Timestamp(start)
    if start + pd.DateOffset(months=3) - pd.Timedelta(days=1) > end:
        start -= pd.DateOffset(months=3)
    out = []
    for k in range(n):
        first = start - pd.DateOffset(months=3 * k)
        if begin is not None and first < pd.Timestamp(begin):
            break
        label = fcal.current_quarter(first, fiscal_year_start, naming)
        out.append((label, first, first + pd.DateOffset(months=3) - pd.Timedelta(days=1)))
    return out[::-1]


def node_actuals(
    opportunities: pd.DataFrame, labels: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp
) -> dict[tuple[str, str], float]:
    """Bookings of every manager, region and the company in a quarter [currency]."""
    opps = opportunities.set_index(opportunities["opportunity_id"].astype("string"))
    won = opps[(opps["stage"] == "won") & opps["close_date"].between(first, last)]
    amount = won["amount"].astype(float)
    lab = labels.reindex(won.index)
    out: dict[tuple[str, str], float] = {("total", "total"): float(amount.sum())}
    for level in ("manager", "region"):
        for key, value in amount.groupby(lab[level].astype(str).to_numpy()).sum().items():
            out[(level, str(key))] = float(value)
    return out


def calls(
    tables: dict[str, pd.DataFrame],
    labels: pd.DataFrame,
    end: pd.Timestamp,
    seed: int,
    fiscal_year_start: int,
    naming: str = config.FISCAL_YEAR_NAMING,
    begin: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The call log of the sample company (see the module docstring); ``begin`` is the
    first day of its history (no quarter before it is called).

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`, one row per submitted call, ordered by ``at`` [UTC, naive].
    """
    people = profiles(labels, seed)
    rng = np.random.default_rng([seed, _STREAM, 1])
    rows = []
    for label, first, last in quarters_called(end, fiscal_year_start, naming, begin=begin):
        actual = node_actuals(tables["opportunities"], labels, first, last)
        for p in people:
            value = actual.get((p.level, p.key), 0.0)
            err = rng.normal(0.0, noise_sd(np.arange(1, WEEKS + 1)))
            if value <= 0:
                continue
            commit = np.round(value * (1 + p.bias) * np.exp(err), -2)
            best = np.round(commit * (1 + p.upside), -2)
            for week in range(1, WEEKS + 1):
                at = first + pd.Timedelta(days=7 * (week - 1) + 4, hours=17)
                for call_type, amounts in (("best_case", best), ("commit", commit)):
                    old = amounts[week - 2] if week > 1 else np.nan
                    rows.append(
                        (at, _user(p), "submit", p.level, p.key, label, call_type, old,
                         float(amounts[week - 1]), f"week {week}", "sample")
                    )  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.sort_values("at", kind="stable").reset_index(drop=True)


def _user(p: CallerProfile) -> str:
    if p.level == "manager":
        return p.key
    return "vp" if p.level == "total" else f"lead {p.key}"


def for_sample(
    tables: dict[str, pd.DataFrame],
    begin: pd.Timestamp,
    end: pd.Timestamp,
    seed: int,
    fiscal_year_start: int,
) -> pd.DataFrame:
    """:func:`calls` of the sample's tables (labels from :func:`revmodel.history.deal_labels`)."""
    from revmodel import history

    labels = history.deal_labels({n: tables[n] for n in schema.TABLES if n in tables})
    return calls(tables, labels, end, seed, fiscal_year_start, begin=begin)
