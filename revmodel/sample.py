"""The embedded sample company: a deterministic synthetic B2B SaaS business.

:func:`generate` builds the canonical tables of :mod:`revmodel.schema`
(``accounts``, ``reps``, ``opportunities``, ``invoices``, ``subscriptions``
and the pipeline history ``opportunity_history``) for a company whose structure is what planning is about:

- a sales force of reps under managers in regions, each rep selling to one
  segment, with hires, ramp, attrition and backfills during the history;
- accounts whose headcount is heavy-tailed, so the segment follows from
  :data:`revmodel.config.SEGMENT_BANDS`, owned by reps of their region and
  segment;
- opportunities whose volume follows each rep's ramp and tenure, with fiscal
  quarter-end and fiscal Q4 peaks, a summer dip, growth and noise; cycle
  length, deal size and win rate differ by segment; an open pipeline runs
  up to nine months past the end of the history;
- annual subscription terms from won new and expansion deals, renewed (with
  uplift or contraction) or churned, each renewal also a ``renewal``
  opportunity; annual or quarterly invoices with net terms and late payers.

Everything is drawn from ``np.random.default_rng`` streams seeded by
``seed``, and nothing depends on today's date, so the same arguments give the
same tables and :func:`write` gives the same bytes. Work is vectorised over
opportunities; the only Python loops run over months, renewal years, cells
(region x segment) and hires.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from revmodel import config, sample_calls, sample_history, schema
from revmodel.allocation import largest_remainder
from revmodel.errors import ParameterError

__all__ = ["DEFAULT_END", "FISCAL_YEAR_START", "generate", "toy_cube", "write", "write_sample"]

#: The sample company's fiscal year starts in November (its parameters say so explicitly).
FISCAL_YEAR_START = 11

#: Last month of history when ``end`` is not given (fixed, so output never depends on today).
DEFAULT_END = "2026-10"

#: Months of open pipeline past the end of the history [months].
PIPELINE_MONTHS = 9


@dataclass(frozen=True)
class SegmentProfile:
    """How one segment sells, renews and pays; one per band of ``SEGMENT_BANDS``."""

    rep_share: float  # share of sales seats [1]
    ramp_months: int  # months to full productivity [months]
    opportunities_per_month: float  # sales opportunities closing per ramped rep-month [deals/month]
    cycle_days: float  # median sales cycle, created to close [days]
    win_rate_new: float  # win rate of new-logo deals [1]
    win_rate_expansion: float  # win rate of expansion deals [1]
    expansion_share: float  # share of sales opportunities that are expansions [1]
    new_acv: float  # median annual contract value of a new logo [USD/year]
    expansion_acv: float  # median annual contract value of an expansion [USD/year]
    churn_per_year: float  # logo churn hazard [1/year]
    accounts_per_rep: float  # accounts in the territory of one rep [accounts]
    quarterly_billing: float  # share of customers billed quarterly rather than annually [1]
    net_terms_weights: tuple[float, float, float]  # weights of net 30 / 45 / 60 days


#: Profiles for the small, middle and large band of ``config.SEGMENT_BANDS``.
SEGMENT_PROFILES: tuple[SegmentProfile, ...] = (
    SegmentProfile(
        0.40,
        3,
        10.0,
        30.0,
        0.30,
        0.45,
        0.35,
        15_000.0,
        6_000.0,
        0.165,
        35.0,
        0.25,
        (0.70, 0.20, 0.10),
    ),
    SegmentProfile(
        0.35,
        5,
        5.0,
        90.0,
        0.25,
        0.40,
        0.38,
        50_000.0,
        20_000.0,
        0.105,
        25.0,
        0.40,
        (0.40, 0.35, 0.25),
    ),
    SegmentProfile(
        0.25,
        7,
        2.5,
        180.0,
        0.20,
        0.35,
        0.40,
        180_000.0,
        70_000.0,
        0.066,
        15.0,
        0.50,
        (0.20, 0.30, 0.50),
    ),
)

#: Sales regions in the order they open as the sales force grows: (name, weight, countries).
#: A country listed by a later region that is open moves to it from the earlier one.
REGIONS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("North America East", 0.26, ("US", "CA")),
    ("North America West", 0.22, ("US", "CA")),
    ("EMEA", 0.24, ("GB", "DE", "FR", "NL", "SE", "CH", "ES", "IE", "AT", "IT", "DK")),
    ("APAC", 0.14, ("AU", "SG", "JP", "IN", "NZ", "KR")),
    ("LATAM", 0.06, ("BR", "MX", "AR", "CL", "CO")),
    ("DACH", 0.08, ("DE", "CH", "AT")),
    ("ANZ", 0.05, ("AU", "NZ")),
    ("Japan", 0.05, ("JP",)),
)

PRODUCTS: tuple[str, ...] = ("Platform", "Analytics", "Automation")
#: Product mix of new-logo and expansion deals (weights over PRODUCTS).
NEW_PRODUCT_WEIGHTS = (0.75, 0.17, 0.08)
EXPANSION_PRODUCT_WEIGHTS = (0.35, 0.40, 0.25)

#: Industries with their revenue per employee [USD/employee/year] and weight.
INDUSTRIES: tuple[tuple[str, float, float], ...] = (
    ("Software", 260_000.0, 0.20),
    ("Financial Services", 420_000.0, 0.13),
    ("Healthcare", 150_000.0, 0.11),
    ("Manufacturing", 230_000.0, 0.12),
    ("Retail", 180_000.0, 0.09),
    ("Professional Services", 160_000.0, 0.10),
    ("Media", 210_000.0, 0.06),
    ("Logistics", 200_000.0, 0.07),
    ("Education", 90_000.0, 0.05),
    ("Energy", 600_000.0, 0.07),
)

#: Staffing dynamics of the sales force.
ATTRITION_PER_YEAR = 0.18  # hazard of a rep leaving [1/year] (about 16.5 % leave a year)
BACKFILL_SHARE = 0.70  # share of leavers replaced in the same seat [1]
BACKFILL_LAG_MONTHS = (1.0, 4.0)  # months from leaving to the backfill's start [months]
HEADCOUNT_GROWTH = 0.10  # growth of the number of seats [1/year]
PRODUCTIVITY_GROWTH = 0.10  # growth of opportunity volume per ramped rep [1/year]
PRICE_GROWTH = 0.02  # growth of deal sizes [1/year]
REPS_PER_MANAGER = 7.0

#: Seasonality of closed deals by position in the fiscal quarter (first, second, last month).
QUARTER_SHAPE = (0.85, 0.95, 1.35)
FISCAL_Q4_BOOST = 1.25
SUMMER_MONTHS = (7, 8)
SUMMER_DIP = 0.75

#: Subscription renewals.
TARGET_GROWTH_AND_CHURN = (
    0.32  # first-year new ARR / opening ARR, sets the opening customer base [1]
)
PRODUCT_DROP_AT_RENEWAL = 0.005  # share of renewals where one product is dropped [1]
CONTRACTION_AT_RENEWAL = (0.04, 0.60, 0.90)  # share of renewals, lowest and highest factor
UPLIFT_AT_RENEWAL = (0.22, 1.04, 1.25)  # share of renewals, lowest and highest factor
RENEWAL_OPEN_STAGE_WEIGHTS = (0.15, 0.30, 0.30, 0.25)

#: Payment behaviour: (share of customers, mean days paid after due).
PAYER_CLASSES = ((0.35, -4.0), (0.50, 6.0), (0.15, 28.0))
NET_TERMS_DAYS = (30, 45, 60)
WRITE_OFF_SHARE = 0.004

FIRST_NAMES = (
    "Aisha", "Ben", "Carla", "Daniel", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Kenji", "Lena", "Mateo", "Nadia", "Oscar", "Priya", "Quinn", "Rosa", "Samuel", "Tara",
    "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe", "Amir", "Beatriz", "Chloe", "Dmitri",
    "Emma", "Felix", "Giulia", "Hannah", "Ivan", "Julia", "Kwame", "Laura", "Marco", "Nina",
    "Olivia", "Pablo", "Rahul", "Sofia", "Tomas", "Valentina", "William", "Yara", "Leo", "Maya",
)  # fmt: skip
LAST_NAMES = (
    "Anderson", "Bauer", "Chen", "Dubois", "Eriksson", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
    "Kowalski", "Larsen", "Martin", "Nakamura", "Okafor", "Patel", "Quintero", "Rossi", "Schmidt", "Tanaka",
    "Usman", "Varga", "Walsh", "Xu", "Yilmaz", "Zhang", "Almeida", "Brooks", "Costa", "Dang",
    "Evans", "Ferreira", "Gomez", "Haddad", "Ivanova", "Johansson", "Kim", "Lopez", "Murphy", "Novak",
    "Olsen", "Park", "Reyes", "Silva", "Turner", "Vogel", "Wagner", "Young", "Mehta", "Moreau",
)  # fmt: skip
NAME_STEMS = (
    "North", "Blue", "Silver", "Iron", "Bright", "Red", "Green", "Stone", "Clear", "Summit",
    "Cedar", "Harbor", "Maple", "Falcon", "Orbit", "Pioneer", "Crest", "Atlas", "Vertex", "Lumen",
)  # fmt: skip
NAME_ROOTS = (
    "wind",
    "field",
    "bridge",
    "gate",
    "water",
    "point",
    "ridge",
    "light",
    "wave",
    "brook",
    "core",
    "path",
)
NAME_SUFFIXES = (
    "Systems",
    "Labs",
    "Group",
    "Holdings",
    "Partners",
    "Industries",
    "Works",
    "Solutions",
    "Co",
    "Networks",
)

_BIG = 10_000_000  # sentinel day number for "never" [days]
_END_RE = re.compile(r"^(\d{4})-(\d{2})$")
_FLOAT_FORMAT = "%.2f"
_DATE_FORMAT = "%Y-%m-%d"


# --------------------------------------------------------------------------- arguments


def _check_arguments(
    reps: Any, months: Any, seed: Any, end: Any, names: dict[str, str]
) -> np.datetime64:
    """Validate the size arguments and return the last month of history as ``datetime64[M]``."""
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ParameterError(
            f"{names['reps']} must be a whole number >= 1 (got {reps!r}); the sample needs at least one rep."
        )
    if isinstance(months, bool) or not isinstance(months, (int, np.integer)) or months < 12:
        raise ParameterError(
            f"{names['months']} must be a whole number >= 12 (got {months!r}); the sample needs a full year of history."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"{names['seed']} must be a whole number >= 0 (got {seed!r}).")
    text = DEFAULT_END if end is None else str(end).strip()
    match = _END_RE.match(text)
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1900:
        raise ParameterError(
            f"{names['end']} must be a month written YYYY-MM, e.g. 2026-10 (got {end!r})."
        )
    return np.datetime64(text, "M")


# --------------------------------------------------------------------------- calendar helpers


class _Calendar:
    """Month arithmetic on integer day numbers (days since 1970-01-01)."""

    def __init__(self, end_month: np.datetime64, months: int) -> None:
        self.months = months
        self.start_month = end_month - (months - 1)
        self.first_day = int(self.month_start(0))
        self.end_day = int(self.month_start(months)) - 1

    def month_start(self, k: Any) -> np.ndarray:
        """First day of history month ``k`` (0 is the first month of history) [day number]."""
        return (
            (self.start_month + np.asarray(k, dtype=np.int64))
            .astype("datetime64[D]")
            .astype(np.int64)
        )

    def days_in_month(self, k: Any) -> np.ndarray:
        k = np.asarray(k, dtype=np.int64)
        return self.month_start(k + 1) - self.month_start(k)

    def month_of(self, day: Any) -> np.ndarray:
        """History month index holding ``day``."""
        months = np.asarray(day, dtype=np.int64).astype("datetime64[D]").astype("datetime64[M]")
        return (months - self.start_month).astype(np.int64)

    def calendar_month(self, k: Any) -> np.ndarray:
        """Calendar month number 1-12 of history month ``k``."""
        return (self.start_month + np.asarray(k, dtype=np.int64)).astype(np.int64) % 12 + 1

    def day_in_month(self, k: Any, fraction: Any) -> np.ndarray:
        """Day at ``fraction`` [0, 1) of the way through month ``k``."""
        k = np.asarray(k, dtype=np.int64)
        return self.month_start(k) + np.floor(np.asarray(fraction) * self.days_in_month(k)).astype(
            np.int64
        )

    def from_months(self, t: Any) -> np.ndarray:
        """Day at fractional month time ``t`` (0.0 is the first day of history)."""
        t = np.asarray(t, dtype=float)
        k = np.floor(t).astype(np.int64)
        return self.day_in_month(k, t - k)

    def add_months(self, day: Any, n: Any) -> np.ndarray:
        """Same day of the month ``n`` months later, clamped to the month's length."""
        day = np.asarray(day, dtype=np.int64)
        k = self.month_of(day)
        dom = day - self.month_start(k)
        k2 = k + np.asarray(n, dtype=np.int64)
        return self.month_start(k2) + np.minimum(dom, self.days_in_month(k2) - 1)

    def season(self, k: Any) -> np.ndarray:
        """Seasonal factor of deals closing in month ``k`` [1]."""
        month = self.calendar_month(k)
        fiscal_pos = (month - FISCAL_YEAR_START) % 12
        factor = np.asarray(QUARTER_SHAPE)[fiscal_pos % 3] * np.where(
            fiscal_pos >= 9, FISCAL_Q4_BOOST, 1.0
        )
        return factor * np.where(np.isin(month, SUMMER_MONTHS), SUMMER_DIP, 1.0)


def _rng(seed: int, stream: int) -> np.random.Generator:
    """An independent generator per part of the company, so parts do not shift each other."""
    return np.random.default_rng([seed, stream])


def _pick(rng: np.random.Generator, weights: Any, size: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(w), size=size, p=w / w.sum())


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    width = max(width, len(str(n)))
    return np.asarray([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


# --------------------------------------------------------------------------- sales force


def _region_count(reps: int) -> int:
    """About 4 regions for 60 reps, one more per doubling, at most 8 (fewer for a tiny team)."""
    if reps < 32:
        return max(1, reps // 8)
    return int(min(len(REGIONS), 4 + max(0, np.floor(np.log2(reps / 60.0)))))


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Largest-remainder allocation of ``total`` items over ``weights``, each >= 1 if possible."""
    alloc = largest_remainder(total, weights)
    if total >= len(weights):
        for c in np.flatnonzero(alloc == 0):
            alloc[np.argmax(alloc)] -= 1
            alloc[c] = 1
    return alloc


def _staffing(
    rng: np.random.Generator, reps: int, months: int, cell_weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Simulate seats, hires, leavers and backfills month by month.

    Returns per rep (exactly ``reps`` of them, in hiring order): ``seat``, ``hire_t`` and
    ``leave_t`` [months from the start of history], and per seat its ``cell``.
    """
    years = months / 12.0
    g, h = HEADCOUNT_GROWTH, ATTRITION_PER_YEAR
    rows_per_seat = 1.0 + (g + h) * np.expm1(g * years) / g
    s0 = int(max(1, round(reps / rows_per_seat)))
    mean_tenure = 12.0 / h

    seat_cell = list(np.repeat(np.arange(len(cell_weights)), _allocate(s0, cell_weights)))
    seat: list[int] = list(range(s0))
    hire_t: list[float] = list(-rng.uniform(0.5, 48.0, s0))
    leave_t: list[float] = list(rng.exponential(mean_tenure, s0))
    pending: list[tuple[float, int]] = []  # (hire time, seat) of backfills not yet started
    for m in range(months):
        if len(seat) >= reps:
            break
        leave = np.asarray(leave_t)
        leavers = np.flatnonzero((leave >= m) & (leave < m + 1))
        refill = rng.random(len(leavers)) < BACKFILL_SHARE
        lags = rng.uniform(*BACKFILL_LAG_MONTHS, len(leavers))
        for r, lag in zip(leavers[refill], lags[refill], strict=True):
            pending.append((leave_t[r] + lag, seat[r]))
        due = sorted(p for p in pending if p[0] < m + 1)
        pending = [p for p in pending if p[0] >= m + 1]
        for t, s in due:
            seat.append(s)
            hire_t.append(t)
            leave_t.append(t + rng.exponential(mean_tenure))
        hire, leave = np.asarray(hire_t), np.asarray(leave_t)
        active = int(((hire < m + 1) & (leave >= m + 1)).sum())
        target = s0 * np.exp(g * (m + 1) / 12.0)
        for _ in range(max(0, int(round(target - active - len(pending))))):
            seat_cell.append(int(_pick(rng, cell_weights, 1)[0]))
            seat.append(len(seat_cell) - 1)
            t = m + rng.random()
            hire_t.append(t)
            leave_t.append(t + rng.exponential(mean_tenure))
    missing = reps - len(seat)
    if missing > 0:  # top up with growth hires spread over the history
        for t in np.sort(rng.uniform(0.0, months, missing)):
            seat_cell.append(int(_pick(rng, cell_weights, 1)[0]))
            seat.append(len(seat_cell) - 1)
            hire_t.append(float(t))
            leave_t.append(float(t + rng.exponential(mean_tenure)))
    order = np.argsort(np.asarray(hire_t), kind="stable")[:reps]
    return {
        "seat": np.asarray(seat)[order],
        "hire_t": np.asarray(hire_t)[order],
        "leave_t": np.asarray(leave_t)[order],
        "seat_cell": np.asarray(seat_cell),
    }


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` person names, distinct while the name lists allow."""
    combos = np.asarray([f"{f} {last}" for f in FIRST_NAMES for last in LAST_NAMES], dtype=object)
    if n <= len(combos):
        return combos[rng.permutation(len(combos))[:n]]
    return combos[rng.integers(0, len(combos), n)]


# --------------------------------------------------------------------------- rep look-up


class _Roster:
    """Which reps are employed for a whole month, by group (cell or region), for assigning deals."""

    def __init__(self, groups: np.ndarray, employed: np.ndarray, k0: int) -> None:
        self.k0 = k0
        n_groups = int(groups.max()) + 1 if len(groups) else 1
        pools, offsets, counts = [], [], []
        start = 0
        for k in range(employed.shape[1]):
            idx = np.flatnonzero(employed[:, k])
            idx = idx[np.argsort(groups[idx], kind="stable")]
            cnt = np.bincount(groups[idx], minlength=n_groups)
            offsets.append(start + np.concatenate([[0], np.cumsum(cnt)[:-1]]))
            counts.append(cnt)
            pools.append(idx)
            start += len(idx)
        self.pool = np.concatenate(pools) if pools else np.zeros(0, np.int64)
        self.offsets = np.asarray(offsets)
        self.counts = np.asarray(counts)

    def pick(self, group: np.ndarray, k: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A rep employed all of month ``k`` in ``group`` (-1 where none)."""
        row = np.clip(k - self.k0, 0, self.counts.shape[0] - 1)
        cnt = self.counts[row, group]
        pos = self.offsets[row, group] + np.minimum(
            (u * cnt).astype(np.int64), np.maximum(cnt - 1, 0)
        )
        if len(self.pool) == 0:
            return np.full(len(group), -1, dtype=np.int64)
        return np.where(cnt > 0, self.pool[np.minimum(pos, len(self.pool) - 1)], -1)


def _assign_reps(
    rosters: list[tuple[_Roster, np.ndarray]],
    cell: np.ndarray,
    k: np.ndarray,
    u: np.ndarray,
    fallback: np.ndarray,
) -> np.ndarray:
    """Rep for deals of ``cell`` closing in month ``k``: the cell's staff, else the region's, else anyone."""
    rep = np.full(len(cell), -1, dtype=np.int64)
    for roster, group_of_cell in rosters:
        todo = rep < 0
        if not todo.any():
            break
        rep[todo] = roster.pick(group_of_cell[cell[todo]], k[todo], u[todo])
    todo = rep < 0
    rep[todo] = fallback[cell[todo]]
    return rep


# --------------------------------------------------------------------------- generate


def generate(
    reps: int = config.SAMPLE_REPS,
    months: int = config.SAMPLE_MONTHS,
    seed: int = config.SAMPLE_SEED,
    end: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Generate the sample company.

    Parameters
    ----------
    reps : int
        Number of reps in the reps table [reps]: everyone who held a sales seat during the
        history, leavers and backfills included (about 60 % are employed at the end).
    months : int
        Months of history [months], at least 12.
    seed : int
        Seed of the random streams; the same arguments give the same tables.
    end : str, optional
        Last month of history, ``"YYYY-MM"``; default :data:`DEFAULT_END`.

    Returns
    -------
    dict[str, pd.DataFrame]
        The tables ``accounts``, ``reps``, ``opportunities``, ``invoices``,
        ``subscriptions`` and ``opportunity_history`` (see
        :mod:`revmodel.sample_history`) with the columns of :data:`revmodel.schema.TABLES` in schema
        order; dates are ``datetime64[ns]`` (NaT where empty), amounts [USD] float64.

    Raises
    ------
    ParameterError
        If ``reps < 1``, ``months < 12``, ``seed < 0`` or ``end`` is not ``YYYY-MM``.

    Examples
    --------
    >>> tables = generate(reps=16, months=24)
    >>> {name: len(table) for name, table in tables.items()}
    {'accounts': 778, 'reps': 16, 'opportunities': 3584, 'invoices': 3618, 'subscriptions': 2233, 'opportunity_history': 15617}
    >>> tables["reps"][["rep_id", "rep_name", "manager"]].head(2)
      rep_id        rep_name        manager
    0  R0001  Priya Ferreira     Laura Chen
    1  R0002  Beatriz Martin  Samuel Moreau
    >>> generate(months=6)
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: months must be a whole number >= 12 (got 6); the sample needs a full year of history.
    """
    end_month = _check_arguments(
        reps, months, seed, end, {"reps": "reps", "months": "months", "seed": "seed", "end": "end"}
    )
    reps, months, seed = int(reps), int(months), int(seed)
    bands = config.SEGMENT_BANDS
    if len(bands) != len(SEGMENT_PROFILES):
        raise ParameterError(
            f"config.SEGMENT_BANDS has {len(bands)} bands; the sample company is drawn for "
            f"{len(SEGMENT_PROFILES)} (small, middle, large). Restore three bands to generate it."
        )
    cal = _Calendar(end_month, months)
    cells = _cells(reps)
    force = _sales_force(_rng(seed, 1), reps, months, cal, cells)
    deals = _sales_opportunities(_rng(seed, 2), reps, months, cal, force)
    rng = _rng(seed, 3)  # accounts: one stream for the book and the deals' accounts
    book, deals = _account_book(rng, cal, cells, force, deals)
    deals = _deal_accounts(rng, cal, book, deals)
    terms = _subscription_terms(_rng(seed, 4), reps, months, cal, cells, force, book, deals)
    bills = _invoices(_rng(seed, 5), cal, book, terms)
    attrs = _account_attributes(_rng(seed, 6), bands, cells, force, book, terms)
    tables = {
        **_people_frames(seed, reps, bands, cells, force, book, attrs),
        **_deal_frames(seed, reps, bands, cells, deals, book, terms, bills, attrs),
    }
    tables["opportunity_history"] = sample_history.history(
        tables["opportunities"],
        pd.Timestamp(np.datetime64(cal.end_day, "D")),
        seed,
        fiscal_year_start=FISCAL_YEAR_START,
    )
    return {name: tables[name][list(schema.TABLES[name].column_names)] for name in schema.TABLES}


@dataclass(frozen=True)
class _Cells:
    """Regions and cells (region x segment) of the sales force."""

    n_regions: int
    region_names: list
    region_countries: list
    n_cells: int
    cell_region: np.ndarray
    cell_seg: np.ndarray
    cell_weights: np.ndarray


@dataclass(frozen=True)
class _Force:
    """Everyone who held a sales seat: cell, dates [day numbers], manager and names."""

    rep_cell: np.ndarray
    rep_seg: np.ndarray
    rep_region: np.ndarray
    hire_day: np.ndarray
    leave_day: np.ndarray
    hire_k: np.ndarray
    leave_k: np.ndarray
    ramp: np.ndarray
    rows_per_cell: np.ndarray
    rep_manager: np.ndarray
    rep_names: np.ndarray
    manager_names: np.ndarray


@dataclass(frozen=True)
class _Deals:
    """Sales opportunities; ``account`` is -1 where none is assigned yet."""

    rep: np.ndarray
    k: np.ndarray
    cell: np.ndarray
    close: np.ndarray
    created: np.ndarray
    expansion: np.ndarray
    won: np.ndarray
    closed: np.ndarray
    amount: np.ndarray
    product: np.ndarray
    open_stage: np.ndarray
    account: np.ndarray

    def take(self, keep: np.ndarray) -> _Deals:
        return _Deals(**{f: getattr(self, f)[keep] for f in self.__dataclass_fields__})


@dataclass(frozen=True)
class _Book:
    """Accounts (cell, segment, customer-since and churn days) and the opening lines."""

    n_acc: int
    acc_off: np.ndarray
    n_open_cust: np.ndarray
    a_cell: np.ndarray
    a_seg: np.ndarray
    a_since: np.ndarray
    a_churn: np.ndarray
    l0_acc: np.ndarray
    l0_start: np.ndarray
    l0_arr: np.ndarray
    l0_product: np.ndarray


@dataclass(frozen=True)
class _Terms:
    """Subscription lines and terms, and the renewal opportunities."""

    line_acc: np.ndarray
    line_product: np.ndarray
    cell_fallback: np.ndarray
    s_line: np.ndarray
    s_term: np.ndarray
    s_start: np.ndarray
    s_end: np.ndarray
    s_arr: np.ndarray
    s_rep: np.ndarray
    r_line: np.ndarray
    r_close: np.ndarray
    r_created: np.ndarray
    r_amount: np.ndarray
    r_rep: np.ndarray
    r_stage: np.ndarray


@dataclass(frozen=True)
class _Bills:
    """Invoices of the subscription terms."""

    s_acc: np.ndarray
    i_sub: np.ndarray
    i_q: np.ndarray
    i_date: np.ndarray
    i_acc: np.ndarray
    i_amount: np.ndarray
    i_due: np.ndarray
    i_paid: np.ndarray


@dataclass(frozen=True)
class _Attributes:
    """Account attributes and current owner."""

    a_region: np.ndarray
    employees: np.ndarray
    industry: np.ndarray
    annual_revenue: np.ndarray
    country: np.ndarray
    names: np.ndarray
    owner: np.ndarray


def _cells(reps: int) -> _Cells:
    """Regions for the size of the sales force and their cells, weighted by seat share."""
    prof = SEGMENT_PROFILES
    n_seg = len(prof)
    n_regions = _region_count(reps)
    region_names = [r[0] for r in REGIONS[:n_regions]]
    region_weights = np.asarray([r[1] for r in REGIONS[:n_regions]])
    taken: set[str] = set()
    region_countries: list[tuple[str, ...]] = []
    for _name, _weight, countries in reversed(REGIONS[:n_regions]):
        own = tuple(c for c in countries if c not in taken) or countries
        region_countries.insert(0, own)
        taken.update(own)
    seg_share = np.asarray([p.rep_share for p in prof])
    n_cells = n_regions * n_seg
    cell_region = np.repeat(np.arange(n_regions), n_seg)
    cell_seg = np.tile(np.arange(n_seg), n_regions)
    cell_weights = region_weights[cell_region] * seg_share[cell_seg]
    return _Cells(
        n_regions, region_names, region_countries, n_cells, cell_region, cell_seg, cell_weights
    )


def _sales_force(
    rng: np.random.Generator, reps: int, months: int, cal: _Calendar, cells: _Cells
) -> _Force:
    """Reps with hires, ramp, attrition and backfills; their managers and names (stream 1)."""
    prof = SEGMENT_PROFILES
    n_cells, cell_region, cell_seg = cells.n_cells, cells.cell_region, cells.cell_seg
    cell_weights = cells.cell_weights
    staff = _staffing(rng, reps, months, cell_weights)
    rep_cell = staff["seat_cell"][staff["seat"]]
    rep_seg = cell_seg[rep_cell]
    rep_region = cell_region[rep_cell]
    hire_day = cal.from_months(staff["hire_t"])
    left = staff["leave_t"] < months
    leave_day = np.where(left, cal.from_months(np.minimum(staff["leave_t"], months - 1e-9)), _BIG)
    leave_day = np.maximum(leave_day, hire_day + 1)
    hire_k = cal.month_of(hire_day)
    leave_k = np.where(
        left, cal.month_of(np.minimum(leave_day, cal.end_day)), months + PIPELINE_MONTHS + 12
    )
    ramp = np.asarray([p.ramp_months for p in prof])[rep_seg]
    rows_per_cell = np.bincount(rep_cell, minlength=n_cells)

    rep_manager, n_managers = _managers(staff["seat"], rep_region, rep_seg, cells.n_regions, reps)
    people = _names(rng, reps + n_managers)
    rep_names, manager_names = people[:reps], people[reps:]
    return _Force(
        rep_cell,
        rep_seg,
        rep_region,
        hire_day,
        leave_day,
        hire_k,
        leave_k,
        ramp,
        rows_per_cell,
        rep_manager,
        rep_names,
        manager_names,
    )


def _managers(
    seat_ids: np.ndarray, rep_region: np.ndarray, rep_seg: np.ndarray, n_regions: int, reps: int
) -> tuple[np.ndarray, int]:
    """Per region, seats ordered by segment, about ``REPS_PER_MANAGER`` rows a team."""
    rep_manager = np.zeros(reps, dtype=np.int64)
    n_managers = 0
    for g in range(n_regions):
        in_region = np.flatnonzero(rep_region == g)
        if len(in_region) == 0:
            continue
        seats, first = np.unique(seat_ids[in_region], return_index=True)
        seat_rows = np.bincount(np.searchsorted(seats, seat_ids[in_region]), minlength=len(seats))
        seat_seg = rep_seg[in_region][first]
        order = np.lexsort((seats, seat_seg))
        teams = max(1, int(round(len(in_region) / REPS_PER_MANAGER)))
        before = np.concatenate([[0], np.cumsum(seat_rows[order])[:-1]])
        team_of_seat = np.empty(len(seats), dtype=np.int64)
        team_of_seat[order] = np.minimum(
            (before + 0.5 * seat_rows[order]) / len(in_region) * teams, teams - 1
        ).astype(np.int64)
        rep_manager[in_region] = (
            n_managers + team_of_seat[np.searchsorted(seats, seat_ids[in_region])]
        )
        n_managers += teams
    return rep_manager, n_managers


def _sales_opportunities(
    rng: np.random.Generator, reps: int, months: int, cal: _Calendar, force: _Force
) -> _Deals:
    """Opportunities by rep and close month: volume, cycle, outcome, amount (stream 2)."""
    prof = SEGMENT_PROFILES
    hire_day, leave_day, hire_k, leave_k = (
        force.hire_day,
        force.leave_day,
        force.hire_k,
        force.leave_k,
    )
    ramp, rep_cell, rep_seg = force.ramp, force.rep_cell, force.rep_seg
    horizon = months + PIPELINE_MONTHS
    k = np.arange(horizon)
    tenure = k[None, :] - hire_k[:, None]
    ramp_factor = np.clip((tenure + 0.5) / ramp[:, None], 0.0, 1.0)
    window = np.where(
        k[None, :] <= leave_k[:, None], 1.0, np.where(k[None, :] <= leave_k[:, None] + 2, 0.5, 0.0)
    )
    rate = np.asarray([p.opportunities_per_month for p in prof])[rep_seg]
    trend = (1.0 + PRODUCTIVITY_GROWTH) ** (k / 12.0) * cal.season(k)
    lam = rate[:, None] * trend[None, :] * ramp_factor * window * (tenure >= 0)
    counts = rng.poisson(lam)
    o_rep = np.repeat(np.repeat(np.arange(reps), horizon), counts.ravel())
    o_k = np.repeat(np.tile(k, reps), counts.ravel())
    n = len(o_rep)
    o_seg = rep_seg[o_rep]
    o_close = np.maximum(cal.day_in_month(o_k, rng.random(n)), hire_day[o_rep])
    cycle = np.asarray([p.cycle_days for p in prof])[o_seg] * np.exp(rng.normal(0.0, 0.5, n))
    o_created = np.minimum(
        np.maximum(o_close - np.maximum(cycle, 5.0).astype(np.int64), hire_day[o_rep]), o_close
    )
    keep = (o_created <= leave_day[o_rep]) & ((o_close <= cal.end_day) | (o_created <= cal.end_day))
    o_rep, o_k, o_seg, o_close, o_created = (
        a[keep] for a in (o_rep, o_k, o_seg, o_close, o_created)
    )
    n = len(o_rep)
    o_cell = rep_cell[o_rep]
    o_expansion = rng.random(n) < np.asarray([p.expansion_share for p in prof])[o_seg]
    win_rate = np.where(
        o_expansion,
        np.asarray([p.win_rate_expansion for p in prof])[o_seg],
        np.asarray([p.win_rate_new for p in prof])[o_seg],
    )
    o_closed = o_close <= cal.end_day
    o_won = o_closed & (rng.random(n) < win_rate) & (o_close <= leave_day[o_rep])
    median = np.where(
        o_expansion,
        np.asarray([p.expansion_acv for p in prof])[o_seg],
        np.asarray([p.new_acv for p in prof])[o_seg],
    )
    price = (1.0 + PRICE_GROWTH) ** (o_k / 12.0)
    o_amount = np.maximum(np.round(median * price * np.exp(rng.normal(0.0, 0.6, n)), -2), 500.0)
    o_product = np.where(
        o_expansion, _pick(rng, EXPANSION_PRODUCT_WEIGHTS, n), _pick(rng, NEW_PRODUCT_WEIGHTS, n)
    )
    o_open_stage = _open_stage(rng, o_k - (months - 1))
    o_account = np.full(n, -1, dtype=np.int64)
    return _Deals(
        o_rep,
        o_k,
        o_cell,
        o_close,
        o_created,
        o_expansion,
        o_won,
        o_closed,
        o_amount,
        o_product,
        o_open_stage,
        o_account,
    )


def _account_book(
    rng: np.random.Generator, cal: _Calendar, cells: _Cells, force: _Force, deals: _Deals
) -> tuple[_Book, _Deals]:
    """Opening customers, new logos and prospects per cell; opening lines; churn days.

    New logos take the accounts after the opening customers of their cell, so
    the deals come back with those accounts assigned.
    """
    prof = SEGMENT_PROFILES
    n_cells, cell_seg, rows_per_cell = cells.n_cells, cells.cell_seg, force.rows_per_cell
    o_won, o_expansion, o_k, o_cell = deals.won, deals.expansion, deals.k, deals.cell
    o_amount, o_close, n = deals.amount, deals.close, len(deals.rep)
    won_new = o_won & ~o_expansion
    first_year = o_won & (o_k < 12)
    first_year_acv = np.bincount(
        o_cell[first_year], weights=o_amount[first_year], minlength=n_cells
    )
    # an opening customer holds 1.6 lines on average, lognormal (sigma 0.6) around 1.25 x the new ACV
    mean_account_arr = np.asarray([1.6 * p.new_acv * 1.25 * np.exp(0.18) for p in prof])[cell_seg]
    n_open_cust = np.round(first_year_acv / TARGET_GROWTH_AND_CHURN / mean_account_arr).astype(
        np.int64
    )
    n_logos = np.bincount(o_cell[won_new], minlength=n_cells)
    apr = np.asarray([p.accounts_per_rep for p in prof])[cell_seg]
    territory = np.round(rows_per_cell * apr).astype(np.int64)
    n_prospects = np.maximum(
        territory - n_open_cust - n_logos, np.ceil(0.25 * n_logos).astype(np.int64) + 2
    )
    n_prospects[rows_per_cell == 0] = 0
    n_accounts_cell = n_open_cust + n_logos + n_prospects
    acc_off = np.concatenate([[0], np.cumsum(n_accounts_cell)])
    n_acc = int(acc_off[-1])
    a_cell = np.repeat(np.arange(n_cells), n_accounts_cell)
    a_pos = np.arange(n_acc) - acc_off[a_cell]
    a_open = a_pos < n_open_cust[a_cell]
    a_seg = cell_seg[a_cell]
    # opening customers' subscription lines (current term started in the 12 months before history)
    lines_per = 1 + _pick(rng, (0.55, 0.30, 0.15), int(a_open.sum()))
    open_acc = np.flatnonzero(a_open)
    l0_acc = np.repeat(open_acc, lines_per)
    l0_nth = np.arange(len(l0_acc)) - np.repeat(np.cumsum(lines_per) - lines_per, lines_per)
    back = np.arange(-12, 0)
    l0_k = back[_pick(rng, cal.season(back), len(l0_acc))]
    l0_start = cal.day_in_month(l0_k, rng.random(len(l0_acc)))
    l0_med = np.where(
        l0_nth == 0,
        np.asarray([p.new_acv * 1.25 for p in prof])[a_seg[l0_acc]],
        np.asarray([p.expansion_acv * 1.5 for p in prof])[a_seg[l0_acc]],
    )
    l0_arr = np.maximum(np.round(l0_med * np.exp(rng.normal(0.0, 0.6, len(l0_acc))), -2), 500.0)
    l0_product = np.minimum(l0_nth, len(PRODUCTS) - 1)
    # customer-since day (F) and churn day (C) of every account
    a_since = np.full(n_acc, _BIG, dtype=np.int64)
    np.minimum.at(a_since, l0_acc, l0_start)
    wn = np.flatnonzero(won_new)
    wn = wn[np.lexsort((wn, o_close[wn], o_cell[wn]))]
    rank = np.arange(len(wn)) - np.searchsorted(o_cell[wn], o_cell[wn])
    o_account = np.full(n, -1, dtype=np.int64)
    o_account[wn] = acc_off[o_cell[wn]] + n_open_cust[o_cell[wn]] + rank
    a_since[o_account[wn]] = o_close[wn]
    hazard = np.asarray([p.churn_per_year for p in prof])[a_seg]
    a_churn = np.where(
        a_since < _BIG, a_since + rng.exponential(365.25 / hazard).astype(np.int64), _BIG
    )
    book = _Book(
        n_acc,
        acc_off,
        n_open_cust,
        a_cell,
        a_seg,
        a_since,
        a_churn,
        l0_acc,
        l0_start,
        l0_arr,
        l0_product,
    )
    return book, dataclasses.replace(deals, account=o_account)


def _deal_accounts(rng: np.random.Generator, cal: _Calendar, book: _Book, deals: _Deals) -> _Deals:
    """Other deals go to prospects (new) or current customers (expansion); the rest drop."""
    a_cell, a_since, a_churn, acc_off = book.a_cell, book.a_since, book.a_churn, book.acc_off
    n_acc, o_cell, o_created, o_expansion = book.n_acc, deals.cell, deals.created, deals.expansion
    o_account = deals.account.copy()
    won_new = deals.won & ~deals.expansion
    # other sales opportunities go to prospects (new) or current customers (expansion)
    base = cal.first_day - 4000
    key_of = a_cell * _BIG + np.clip(a_since - base, 0, _BIG - 1)
    by_key = np.argsort(key_of, kind="stable")
    sorted_key = key_of[by_key]
    rest = np.flatnonzero(~won_new)
    t = np.clip(o_created[rest] - base, 0, _BIG - 2)
    c = o_cell[rest]
    split = np.searchsorted(
        sorted_key, c * _BIG + t, side="right"
    )  # first account not yet a customer at t
    lo, hi = acc_off[c], acc_off[c + 1]
    exp_rest = o_expansion[rest]
    # new: any prospect at t (falls back to any account of the cell)
    n_pros = hi - split
    u = rng.random(len(rest))
    pick_new = np.where(
        n_pros > 0, split + (u * n_pros).astype(np.int64), lo + (u * (hi - lo)).astype(np.int64)
    )
    account = by_key[np.minimum(pick_new, n_acc - 1)]
    # expansion: a customer at t that has not churned; redraw a few times, then drop the deal
    n_cust = split - lo
    chosen = np.full(len(rest), -1, dtype=np.int64)
    todo = exp_rest & (n_cust > 0)
    for _ in range(8):
        idx = np.flatnonzero(todo)
        if len(idx) == 0:
            break
        cand = by_key[lo[idx] + (rng.random(len(idx)) * n_cust[idx]).astype(np.int64)]
        ok = a_churn[cand] > o_created[rest[idx]]
        chosen[idx[ok]] = cand[ok]
        todo[idx[ok]] = False
    account = np.where(exp_rest, chosen, account)
    o_account[rest] = account
    return dataclasses.replace(deals, account=o_account).take(o_account >= 0)


def _subscription_terms(
    rng: np.random.Generator,
    reps: int,
    months: int,
    cal: _Calendar,
    cells: _Cells,
    force: _Force,
    book: _Book,
    deals: _Deals,
) -> _Terms:
    """Subscription lines (opening and won deals), annual terms and renewals (stream 4)."""
    a_cell, a_churn = book.a_cell, book.a_churn
    l0_acc, l0_start, l0_arr, l0_product = book.l0_acc, book.l0_start, book.l0_arr, book.l0_product
    o_won, o_account, o_close, o_amount = deals.won, deals.account, deals.close, deals.amount
    o_product, o_rep = deals.product, deals.rep
    rosters, cell_fallback = _rosters(reps, months, cal, cells, force)
    l0_rep = _assign_reps(
        rosters,
        a_cell[l0_acc],
        np.maximum(cal.month_of(l0_start), 0),
        rng.random(len(l0_acc)),
        cell_fallback,
    )
    won = np.flatnonzero(o_won)
    line_acc = np.concatenate([l0_acc, o_account[won]])
    line_start = np.concatenate([l0_start, o_close[won]])
    line_arr = np.concatenate([l0_arr, o_amount[won]])
    line_product = np.concatenate([l0_product, o_product[won]])
    line_rep = np.concatenate([l0_rep, o_rep[won]])
    line_cell = a_cell[line_acc]
    subs, ren = _terms_and_renewals(rng, cal, (line_acc, line_start, line_arr, line_rep), a_churn)
    s_line, s_term, s_start, s_end, s_arr, s_rep = (
        np.concatenate(subs[k_]) for k_ in ("line", "term", "start", "end", "arr", "rep")
    )
    r_line, r_close, r_created, r_amount, r_won, r_closed = (
        np.concatenate(ren[k_]) for k_ in ("line", "close", "created", "amount", "won", "closed")
    )
    r_rep = _assign_reps(
        rosters,
        line_cell[r_line],
        np.minimum(cal.month_of(r_close), months - 1),
        rng.random(len(r_line)),
        cell_fallback,
    )
    # a renewed term is credited to the rep who closed its renewal
    r_term = (
        np.concatenate([np.full(len(x), i + 1) for i, x in enumerate(ren["line"])])
        if ren["line"]
        else np.zeros(0, np.int64)
    )
    renewed = r_won
    term_key = s_line.astype(np.int64) * 1000 + s_term
    ren_key = r_line[renewed].astype(np.int64) * 1000 + r_term[renewed]
    sorter = np.argsort(term_key, kind="stable")
    pos = np.searchsorted(term_key, ren_key, sorter=sorter)
    s_rep[sorter[pos]] = r_rep[renewed]
    r_stage = np.where(
        r_closed, np.where(r_won, 4, 5), _pick(rng, RENEWAL_OPEN_STAGE_WEIGHTS, len(r_line))
    )
    return _Terms(
        line_acc,
        line_product,
        cell_fallback,
        s_line,
        s_term,
        s_start,
        s_end,
        s_arr,
        s_rep,
        r_line,
        r_close,
        r_created,
        r_amount,
        r_rep,
        r_stage,
    )


def _rosters(
    reps: int, months: int, cal: _Calendar, cells: _Cells, force: _Force
) -> tuple[list, np.ndarray]:
    """Who was employed each month, by cell, region and company, and each cell's fallback rep."""
    n_cells, cell_region = cells.n_cells, cells.cell_region
    hire_k, hire_day, leave_day = force.hire_k, force.hire_day, force.leave_day
    rep_cell, rep_region = force.rep_cell, force.rep_region
    employed_from = np.minimum(hire_k.min(initial=0), -13)
    months_axis = np.arange(employed_from, months)
    employed = (hire_day[:, None] <= cal.month_start(months_axis)[None, :]) & (
        leave_day[:, None] >= cal.month_start(months_axis + 1)[None, :] - 1
    )
    cell_fallback = np.zeros(n_cells, dtype=np.int64)
    for cc in range(n_cells):
        members = np.flatnonzero(rep_cell == cc)
        if len(members):
            cell_fallback[cc] = members[
                np.argmax(
                    np.minimum(leave_day[members], cal.end_day) * 1.0 + hire_day[members] * 1e-9
                )
            ]
    rosters = [
        (_Roster(rep_cell, employed, employed_from), np.arange(n_cells)),
        (_Roster(rep_region, employed, employed_from), cell_region),
        (
            _Roster(np.zeros(reps, dtype=np.int64), employed, employed_from),
            np.zeros(n_cells, dtype=np.int64),
        ),
    ]
    return rosters, cell_fallback


def _terms_and_renewals(
    rng: np.random.Generator, cal: _Calendar, lines: tuple, a_churn: np.ndarray
) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]]]:
    """Annual terms of every line until it churns or the history ends, with renewal deals."""
    line_acc, line_start, line_arr, line_rep = lines
    n_lines = len(line_acc)
    subs: dict[str, list[np.ndarray]] = {
        k_: [] for k_ in ("line", "term", "start", "end", "arr", "rep")
    }
    ren: dict[str, list[np.ndarray]] = {
        k_: [] for k_ in ("line", "close", "created", "amount", "won", "closed")
    }
    alive = np.ones(n_lines, dtype=bool)
    start = line_start.copy()
    arr = line_arr.copy()
    term_rep = line_rep.copy()
    j = 0
    while alive.any():
        nxt = cal.add_months(line_start, 12 * (j + 1))
        idx = np.flatnonzero(alive)
        subs["line"].append(idx)
        subs["term"].append(np.full(len(idx), j))
        subs["start"].append(start[idx])
        subs["end"].append(np.where(nxt[idx] <= cal.end_day, nxt[idx], _BIG))
        subs["arr"].append(arr[idx])
        subs["rep"].append(term_rep[idx])
        # renewal decision at the anniversary
        u = rng.random(n_lines)
        renew = alive & (nxt < a_churn[line_acc]) & (rng.random(n_lines) >= PRODUCT_DROP_AT_RENEWAL)
        c_share, c_lo, c_hi = CONTRACTION_AT_RENEWAL
        up_share, up_lo, up_hi = UPLIFT_AT_RENEWAL
        v = rng.random(n_lines)
        factor = np.where(
            u < c_share,
            c_lo + (c_hi - c_lo) * v,
            np.where(u < c_share + up_share, up_lo + (up_hi - up_lo) * v, 1.0),
        )
        new_arr = np.maximum(np.round(arr * factor), 100.0)
        created = nxt - rng.integers(45, 121, n_lines)
        closed = nxt <= cal.end_day
        opp = alive & (closed | (created <= cal.end_day))
        oi = np.flatnonzero(opp)
        ren["line"].append(oi)
        ren["close"].append(nxt[oi])
        ren["created"].append(created[oi])
        ren["amount"].append(np.where(renew[oi] & closed[oi], new_arr[oi], arr[oi]))
        ren["won"].append(renew[oi] & closed[oi])
        ren["closed"].append(closed[oi])
        alive = renew & closed
        start = nxt
        arr = np.where(alive, new_arr, arr)
        j += 1
    return subs, ren


def _invoices(rng: np.random.Generator, cal: _Calendar, book: _Book, terms: _Terms) -> _Bills:
    """Annual or quarterly invoices in advance, net terms, late payers (stream 5)."""
    prof = SEGMENT_PROFILES
    n_acc, a_seg = book.n_acc, book.a_seg
    line_acc, s_line, s_start, s_arr = terms.line_acc, terms.s_line, terms.s_start, terms.s_arr
    a_quarterly = rng.random(n_acc) < np.asarray([p.quarterly_billing for p in prof])[a_seg]
    w = np.asarray([p.net_terms_weights for p in prof])[a_seg]
    a_net = np.asarray(NET_TERMS_DAYS)[
        (rng.random(n_acc)[:, None] > np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)).sum(
            axis=1
        )
    ]
    payer = _pick(rng, [p[0] for p in PAYER_CLASSES], n_acc)
    a_pay_mean = np.asarray([p[1] for p in PAYER_CLASSES])[payer]
    s_acc = line_acc[s_line]
    quarterly = a_quarterly[s_acc]
    per_term = np.where(quarterly, 4, 1)
    i_sub = np.repeat(np.arange(len(s_line)), per_term)
    i_q = np.arange(len(i_sub)) - np.repeat(np.cumsum(per_term) - per_term, per_term)
    i_date = cal.add_months(s_start[i_sub], 3 * i_q)
    in_range = i_date <= cal.end_day
    i_sub, i_q, i_date = i_sub[in_range], i_q[in_range], i_date[in_range]
    i_acc = s_acc[i_sub]
    i_amount = np.round(s_arr[i_sub] / per_term[i_sub], 2)
    i_due = i_date + a_net[i_acc]
    delay = a_pay_mean[i_acc] + rng.normal(0.0, 6.0, len(i_sub)) + rng.exponential(4.0, len(i_sub))
    i_paid = np.maximum(i_due + np.round(delay).astype(np.int64), i_date + 1)
    unpaid = (i_paid > cal.end_day) | (rng.random(len(i_sub)) < WRITE_OFF_SHARE)
    i_paid = np.where(unpaid, _BIG, i_paid)
    return _Bills(s_acc, i_sub, i_q, i_date, i_acc, i_amount, i_due, i_paid)


def _account_attributes(
    rng: np.random.Generator,
    bands: tuple,
    cells: _Cells,
    force: _Force,
    book: _Book,
    terms: _Terms,
) -> _Attributes:
    """Headcount, industry, revenue, country, name and current owner of every account."""
    n_regions, n_cells = cells.n_regions, cells.n_cells
    cell_region, region_countries = cells.cell_region, cells.region_countries
    n_acc, a_cell, a_seg = book.n_acc, book.a_cell, book.a_seg
    leave_day, rep_cell, cell_fallback = force.leave_day, force.rep_cell, terms.cell_fallback
    a_region = cell_region[a_cell]
    employees = _employees(rng, a_seg, bands)
    industry = _pick(rng, [i[2] for i in INDUSTRIES], n_acc)
    revenue_per_head = np.asarray([i[1] for i in INDUSTRIES])[industry] * np.exp(
        rng.normal(0.0, 0.35, n_acc)
    )
    annual_revenue = np.round(employees * revenue_per_head, -3)
    country = np.empty(n_acc, dtype=object)
    for g in range(n_regions):
        members = np.flatnonzero(a_region == g)
        options = np.asarray(region_countries[g], dtype=object)
        country[members] = options[_pick(rng, 1.0 / np.arange(1, len(options) + 1), len(members))]
    names = (
        np.asarray(NAME_STEMS, dtype=object)[rng.integers(0, len(NAME_STEMS), n_acc)]
        + np.asarray(NAME_ROOTS, dtype=object)[rng.integers(0, len(NAME_ROOTS), n_acc)]
        + " "
        + np.asarray(NAME_SUFFIXES, dtype=object)[rng.integers(0, len(NAME_SUFFIXES), n_acc)]
    )
    owner = np.zeros(n_acc, dtype=np.int64)
    on_staff = leave_day >= _BIG
    for cc in range(n_cells):
        members = np.flatnonzero(a_cell == cc)
        if len(members) == 0:
            continue
        staff_c = np.flatnonzero((rep_cell == cc) & on_staff)
        if len(staff_c) == 0:
            staff_c = np.asarray([cell_fallback[cc]])
        owner[members] = staff_c[rng.permutation(len(members)) % len(staff_c)]
    return _Attributes(a_region, employees, industry, annual_revenue, country, names, owner)


def _people_frames(
    seed: int,
    reps: int,
    bands: tuple,
    cells: _Cells,
    force: _Force,
    book: _Book,
    attrs: _Attributes,
) -> dict[str, pd.DataFrame]:
    """The ``accounts`` and ``reps`` tables."""
    n_acc, a_seg = book.n_acc, book.a_seg
    a_region, names, employees, country = (
        attrs.a_region,
        attrs.names,
        attrs.employees,
        attrs.country,
    )
    industry, annual_revenue, owner = attrs.industry, attrs.annual_revenue, attrs.owner
    rep_names, manager_names, rep_manager = force.rep_names, force.manager_names, force.rep_manager
    rep_region, rep_seg, hire_day = force.rep_region, force.rep_seg, force.hire_day
    leave_day, ramp = force.leave_day, force.ramp
    account_order, _ = _account_ids(seed, n_acc)
    account_ids = _ids("A", n_acc, 6)
    rep_ids = _ids("R", reps, 4)
    seg_names = np.asarray([b[0] for b in bands], dtype=object)
    region_arr = np.asarray(cells.region_names, dtype=object)
    accounts = pd.DataFrame(
        {
            "account_id": account_ids,
            "account_name": names[account_order],
            "employees": employees[account_order],
            "segment": seg_names[a_seg][account_order],
            "region": region_arr[a_region][account_order],
            "country": country[account_order],
            "industry": np.asarray([i[0] for i in INDUSTRIES], dtype=object)[industry][
                account_order
            ],
            "annual_revenue": annual_revenue[account_order].astype(float),
            "owner_rep_id": rep_ids[owner][account_order],
        }
    )
    reps_df = pd.DataFrame(
        {
            "rep_id": rep_ids,
            "rep_name": rep_names,
            "manager": manager_names[rep_manager],
            "region": region_arr[rep_region],
            "segment": seg_names[rep_seg],
            "hire_date": _dates(hire_day),
            "end_date": _dates(leave_day),
            "ramp_months": ramp.astype(np.int64),
        }
    )
    return {"accounts": accounts, "reps": reps_df}


def _account_ids(seed: int, n_acc: int) -> tuple[np.ndarray, np.ndarray]:
    """A random order of the accounts (id order carries no status; stream 7) and each id."""
    account_order = _rng(seed, 7).permutation(n_acc)  # id order carries no status
    account_rank = np.empty(n_acc, dtype=np.int64)
    account_rank[account_order] = np.arange(n_acc)
    account_ids = _ids("A", n_acc, 6)
    acc_id = account_ids[account_rank]
    return account_order, acc_id


def _deal_frames(
    seed: int,
    reps: int,
    bands: tuple,
    cells: _Cells,
    deals: _Deals,
    book: _Book,
    terms: _Terms,
    bills: _Bills,
    attrs: _Attributes,
) -> dict[str, pd.DataFrame]:
    """The ``opportunities``, ``subscriptions`` and ``invoices`` tables."""
    o_close, o_created, o_amount, o_rep = deals.close, deals.created, deals.amount, deals.rep
    o_product, o_expansion, o_account = deals.product, deals.expansion, deals.account
    o_closed, o_won, o_open_stage = deals.closed, deals.won, deals.open_stage
    r_close, r_created, r_amount, r_stage = (
        terms.r_close,
        terms.r_created,
        terms.r_amount,
        terms.r_stage,
    )
    r_line, r_rep, line_acc, line_product = (
        terms.r_line,
        terms.r_rep,
        terms.line_acc,
        terms.line_product,
    )
    a_seg, a_region = book.a_seg, attrs.a_region
    _, acc_id = _account_ids(seed, book.n_acc)
    rep_ids = _ids("R", reps, 4)
    seg_names = np.asarray([b[0] for b in bands], dtype=object)
    region_arr = np.asarray(cells.region_names, dtype=object)
    stage_names = np.asarray(schema.STAGES, dtype=object)
    type_names = np.asarray(schema.OPPORTUNITY_TYPES, dtype=object)
    sales_stage = np.where(o_closed, np.where(o_won, 4, 5), o_open_stage)
    all_close = np.concatenate([o_close, r_close])
    all_created = np.concatenate([o_created, r_created])
    all_amount = np.concatenate([o_amount, r_amount])
    all_stage = np.concatenate([sales_stage, r_stage])
    all_account = np.concatenate([o_account, line_acc[r_line]])
    all_rep = np.concatenate([o_rep, r_rep])
    all_product = np.concatenate([o_product, line_product[r_line]])
    all_type = np.concatenate([np.where(o_expansion, 1, 0), np.full(len(r_line), 2)])
    order = np.lexsort((np.arange(len(all_close)), all_close, all_created))
    opportunities = pd.DataFrame(
        {
            "opportunity_id": _ids("O", len(order), 7),
            "close_date": _dates(all_close[order]),
            "amount": all_amount[order].astype(float),
            "stage": stage_names[all_stage[order]],
            "created_date": _dates(all_created[order]),
            "account_id": acc_id[all_account[order]],
            "rep_id": rep_ids[all_rep[order]],
            "product": np.asarray(PRODUCTS, dtype=object)[all_product[order]],
            "type": type_names[all_type[order]],
            "segment": seg_names[a_seg[all_account[order]]],
            "region": region_arr[a_region[all_account[order]]],
        }
    )

    subscriptions, invoices = _billing_frames(acc_id, rep_ids, terms, bills)
    return {"opportunities": opportunities, "subscriptions": subscriptions, "invoices": invoices}


def _billing_frames(
    acc_id: np.ndarray, rep_ids: np.ndarray, terms: _Terms, bills: _Bills
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``subscriptions`` and ``invoices`` tables, in start and invoice-date order."""
    line_product = terms.line_product
    s_term, s_line, s_start, s_arr = terms.s_term, terms.s_line, terms.s_start, terms.s_arr
    s_end, s_rep = terms.s_end, terms.s_rep
    s_acc, i_sub, i_q, i_date, i_acc = (
        bills.s_acc,
        bills.i_sub,
        bills.i_q,
        bills.i_date,
        bills.i_acc,
    )
    i_amount, i_due, i_paid = bills.i_amount, bills.i_due, bills.i_paid
    s_order = np.lexsort((s_term, s_line, s_start))
    sub_ids = _ids("S", len(s_order), 6)
    sub_rank = np.empty(len(s_order), dtype=np.int64)
    sub_rank[s_order] = np.arange(len(s_order))
    subscriptions = pd.DataFrame(
        {
            "subscription_id": sub_ids,
            "account_id": acc_id[s_acc[s_order]],
            "start_date": _dates(s_start[s_order]),
            "arr": s_arr[s_order].astype(float),
            "end_date": _dates(s_end[s_order]),
            "product": np.asarray(PRODUCTS, dtype=object)[line_product[s_line[s_order]]],
            "rep_id": rep_ids[s_rep[s_order]],
        }
    )
    i_order = np.lexsort((i_q, sub_rank[i_sub], i_date))
    invoices = pd.DataFrame(
        {
            "invoice_id": _ids("INV", len(i_order), 7),
            "account_id": acc_id[i_acc[i_order]],
            "invoice_date": _dates(i_date[i_order]),
            "amount": i_amount[i_order].astype(float),
            "due_date": _dates(i_due[i_order]),
            "paid_date": _dates(i_paid[i_order]),
        }
    )
    return subscriptions, invoices


def _open_stage(rng: np.random.Generator, months_ahead: np.ndarray) -> np.ndarray:
    """Open stage index, weighted to early stages, later for deals expected to close soon."""
    weights = np.asarray(
        [
            [0.30, 0.30, 0.22, 0.18],  # closing next month
            [0.40, 0.30, 0.18, 0.12],
            [0.50, 0.27, 0.15, 0.08],
            [0.60, 0.24, 0.11, 0.05],  # four or more months out
        ]
    )
    cum = np.cumsum(weights, axis=1)
    row = np.clip(months_ahead - 1, 0, len(weights) - 1)
    return (rng.random(len(months_ahead))[:, None] > cum[row]).sum(axis=1)


def _employees(
    rng: np.random.Generator, seg: np.ndarray, bands: tuple[tuple[str, float, float], ...]
) -> np.ndarray:
    """Headcount from a heavy-tailed (lognormal) distribution truncated to each account's band."""
    mu, sigma = np.log(150.0), 1.7
    lo = np.asarray([max(b[1], 5.0) for b in bands])[seg]
    hi = np.asarray([min(b[2], 400_000.0) for b in bands])[seg]
    p_lo = special.ndtr((np.log(lo) - mu) / sigma)
    p_hi = special.ndtr((np.log(hi) - mu) / sigma)
    x = np.exp(mu + sigma * special.ndtri(p_lo + rng.random(len(seg)) * (p_hi - p_lo)))
    return np.clip(np.floor(x), lo, hi - 1).astype(np.int64)


def _dates(days: np.ndarray) -> np.ndarray:
    """Day numbers to ``datetime64[ns]``, with NaT for the "never" sentinel."""
    days = np.asarray(days, dtype=np.int64)
    out = days.astype("datetime64[D]").astype("datetime64[ns]")
    out[days >= _BIG] = np.datetime64("NaT")
    return out


# --------------------------------------------------------------------------- files and command


def write(tables: dict[str, pd.DataFrame], out_dir: str | Path) -> dict[str, Path]:
    """Write the tables as ``<name>.csv`` files, byte-for-byte reproducible.

    Parameters
    ----------
    tables : dict[str, pd.DataFrame]
        Tables named as in :data:`revmodel.schema.TABLES` (unknown names are an error).
    out_dir : str or Path
        Folder to write into; created if missing.

    Returns
    -------
    dict[str, Path]
        Path of each written file, by table name, in schema order.

    Notes
    -----
    Dates are written ``YYYY-MM-DD``, missing values as empty cells, floats with two
    decimals and ``\\n`` line ends; rows keep the order of the frames.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = write(generate(reps=4, months=12), folder)
    ...     [path.name for path in paths.values()]
    ['accounts.csv', 'reps.csv', 'opportunities.csv', 'invoices.csv', 'subscriptions.csv', 'opportunity_history.csv']
    """
    unknown = sorted(set(tables) - set(schema.TABLES))
    if unknown:
        raise ParameterError(
            f"cannot write table(s) {unknown}: the tables are {list(schema.TABLES)}."
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParameterError(
            f"--out {out} is a file; give a folder to write the sample CSV files into."
        )
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in schema.TABLES:
        if name not in tables:
            continue
        path = out / f"{name}.csv"
        tables[name].to_csv(
            path,
            index=False,
            date_format=_DATE_FORMAT,
            float_format=_FLOAT_FORMAT,
            na_rep="",
            lineterminator="\n",
        )
        paths[name] = path
    return paths


def write_sample(
    out: str | Path,
    *,
    reps: int = config.SAMPLE_REPS,
    months: int = config.SAMPLE_MONTHS,
    seed: int = config.SAMPLE_SEED,
    end: str | None = None,
) -> list[tuple[Path, int]]:
    """Generate the sample company and write it to ``out``: ``[(csv path, rows), ...]``.

    Arguments are checked with the command line's option names in the messages
    (``--reps must be a whole number >= 1 ...``).

    Parameters
    ----------
    out : str or Path
        Folder to write into; created if missing.
    reps, months, seed, end
        As in :func:`generate`.

    Returns
    -------
    list of (Path, int)
        Each CSV file written and its rows, the forecast-call log last.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     [(path.name, rows) for path, rows in write_sample(folder, reps=8, months=12)][:3]
    [('accounts.csv', 308), ('reps.csv', 8), ('opportunities.csv', 1010)]
    >>> write_sample("data", reps=0)
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: --reps must be a whole number >= 1 (got 0); the sample needs at least one rep.
    """
    end_month = _check_arguments(
        reps,
        months,
        seed,
        end,
        {"reps": "--reps", "months": "--months", "seed": "--seed", "end": "--end"},
    )
    tables = generate(reps=reps, months=months, seed=seed, end=end)
    written = [(path, len(tables[name])) for name, path in write(tables, out).items()]
    end_day = pd.Timestamp(end_month + 1) - pd.Timedelta(days=1)
    begin = pd.Timestamp(end_month - int(months) + 1)
    calls = sample_calls.for_sample(tables, begin, end_day, int(seed), FISCAL_YEAR_START)
    path = Path(out) / sample_calls.FILE
    calls.to_csv(
        path,
        index=False,
        date_format="%Y-%m-%dT%H:%M:%S",
        float_format=_FLOAT_FORMAT,
        na_rep="",
        lineterminator="\n",
    )
    return [*written, (path, len(calls))]


def toy_cube(
    values: Any,
    *,
    segments: Any = ("SMB",),
    regions: Any = ("EMEA",),
    managers: Any = None,
    start: str = "2026-01",
) -> xr.DataArray:
    """A hand-sized cube measure for trying a function by hand: every number is yours.

    Parameters
    ----------
    values : array-like
        Shape (segments, regions, reps, months) [units].
    segments, regions : sequence of str
        Their labels, one per entry of the first two axes.
    managers : sequence of str, optional
        Each rep's manager (a ``manager`` coord on ``rep``); all ``M1`` when not given.
        Reps are named ``r1``, ``r2``, ...
    start : str
        First month (``YYYY-MM``); months follow one by one.

    Returns
    -------
    xr.DataArray
        Dims (``segment``, ``region``, ``rep``, ``month``), shaped like a cube's measures.

    Raises
    ------
    ParameterError
        When the labels do not match the shape of ``values``.

    Examples
    --------
    >>> da = toy_cube([[[[1.0, 2.0], [3.0, 4.0]]]])  # 1 segment x 1 region x 2 reps x 2 months
    >>> da.sum("rep").values.tolist()
    [[[4.0, 6.0]]]
    >>> da["manager"].values.tolist(), str(da["month"].values[-1])[:7]
    (['M1', 'M1'], '2026-02')
    >>> toy_cube([[[[1.0]]]], regions=["EMEA", "NA"])
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: toy_cube: values have 1 region(s) but 2 region label(s) were given
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 4:
        raise ParameterError(
            f"toy_cube: values need 4 axes (segment, region, rep, month); got {arr.ndim}"
        )
    n_rep = arr.shape[2]
    managers = ["M1"] * n_rep if managers is None else list(managers)
    labels = {"segment": list(segments), "region": list(regions), "manager": managers}
    sizes = {"segment": arr.shape[0], "region": arr.shape[1], "manager": n_rep}
    for name, got in labels.items():
        if len(got) != sizes[name]:
            what = "rep" if name == "manager" else name
            raise ParameterError(
                f"toy_cube: values have {sizes[name]} {what}(s) but {len(got)} "
                f"{name} label(s) were given"
            )
    return xr.DataArray(
        arr,
        dims=("segment", "region", "rep", "month"),
        coords={
            "segment": labels["segment"],
            "region": labels["region"],
            "rep": [f"r{i + 1}" for i in range(n_rep)],
            "month": pd.date_range(start, periods=arr.shape[3], freq="MS"),
            "manager": ("rep", managers),
        },
    )
