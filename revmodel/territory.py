"""Territory planning: segment accounts, score their potential, assign them to reps.

The annual plan starts here. Accounts are segmented by employee-headcount
bands (:data:`revmodel.config.SEGMENT_BANDS` unless told otherwise), each gets
a potential score, and every (region, segment) group of accounts is divided
among the active reps of that region and segment so that potential and
workload (account count) are balanced while as few accounts as possible
change hands.

Groups are independent problems and are solved one by one: that is what keeps
a book of 20,000 accounts and 200 reps tractable. A group is solved as a
mixed-integer programme (``scipy.optimize.milp``, HiGHS) when it is small
enough, and by a deterministic local search otherwise; the run record says
which method solved each group.

The programme for one group, with binary ``x[a, r]`` (account ``a`` goes to
rep ``r``), potential ``p[a]``, group mean potential per rep ``mu`` and mean
account count per rep ``c``::

    minimise   w_max * t + w_mean * mean_r(d[r]) + w_count * u + w_move * moves
    subject to sum_r x[a, r] = 1                         every account exactly once
               |sum_a p[a] x[a, r] + L[r] - mu| / mu <= d[r] <= t
               |sum_a x[a, r] + K[r] - c| / c <= u
               moves <= the group's move budget           disruption limit
               sum_a x[a, r] + K[r] <= max_accounts_per_rep   (optional capacity)
               d[r] <= balance_tolerance                  (only with a hard tolerance)

where ``L[r]`` and ``K[r]`` are the potential and count of the accounts locked
to rep ``r`` (they are constants, not variables). Deviations are fractions of
the group mean, so the weights compare like with like across groups.

The local search minimises the sum of squared fractional deviations (potential
plus ``w_count`` times count) plus ``w_move`` per move, by steepest single
moves from the most to the least loaded reps and then pairwise swaps, always
within the move budget and never touching locked accounts.

Move budget: accounts whose owner left, sells to another region or segment or
is unknown must move; these forced moves count against ``max_moves``. The
remaining budget is split across groups in proportion to the moves each group
makes when unconstrained (estimated by the local search), by largest remainder.

Every plan carries a run record (parameters, objective, constraints, the
inputs themselves and their SHA-256, and the solver status of each group) from
which :func:`rerun` reproduces the same assignment.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from revmodel import config, formatting, sections
from revmodel import cube as rcube
from revmodel.allocation import largest_remainder
from revmodel.errors import DataError, InfeasibleError, ParameterError
from revmodel.schema import segment_bands

__all__ = [
    "DEFAULT_OBJECTIVE_WEIGHTS",
    "DEFAULT_POTENTIAL_WEIGHTS",
    "AssignmentSettings",
    "ObjectiveWeights",
    "TerritoryPlan",
    "account_owner_from",
    "account_potential",
    "assign_territories",
    "balance_report",
    "cycle_territories",
    "read_locked",
    "rep_potential",
    "rerun",
    "segment_accounts",
    "unassigned_accounts",
]

#: Weights of the potential score components (renormalised over the components present).
DEFAULT_POTENTIAL_WEIGHTS: dict[str, float] = {
    "annual_revenue": 0.3,
    "employees": 0.2,
    "bookings": 0.3,
    "pipeline": 0.2,
}


@dataclass(frozen=True)
class ObjectiveWeights:
    """Weights of the assignment objective (deviations are fractions of the group mean).

    Attributes
    ----------
    max_potential_deviation : float
        On the largest deviation of a rep's potential from the group mean.
    mean_potential_deviation : float
        On the mean of those deviations.
    max_count_deviation : float
        On the largest deviation of a rep's account count from the group mean.
    move : float
        On each account that leaves its owner.

    Examples
    --------
    >>> w = ObjectiveWeights.from_mapping({"move": 0.01})
    >>> w.move, w.max_potential_deviation
    (0.01, 1.0)
    >>> ObjectiveWeights.from_mapping({"moves": 1})
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: objective weights: unknown term(s) ['moves']; use ['max_count_deviation', 'max_potential_deviation', 'mean_potential_deviation', 'move'].
    """

    max_potential_deviation: float = 1.0
    mean_potential_deviation: float = 0.5
    max_count_deviation: float = 0.1
    move: float = 1e-4

    @classmethod
    def from_mapping(cls, weights: Mapping[str, float] | None) -> ObjectiveWeights:
        """The defaults, with the terms ``weights`` names replaced; checked.

        Parameters
        ----------
        weights : mapping of term to weight, optional
            Any of the attribute names; each weight a number >= 0.

        Returns
        -------
        ObjectiveWeights
        """
        w = asdict(cls())
        if weights is not None:
            unknown = sorted(set(weights) - set(w))
            if unknown:
                raise ParameterError(
                    f"objective weights: unknown term(s) {unknown}; use {sorted(w)}."
                )
            w.update({k: float(v) for k, v in weights.items()})
        for k, v in w.items():
            if not (math.isfinite(v) and v >= 0):
                raise ParameterError(f"objective weights: '{k}' must be a number >= 0, got {v!r}.")
        if w["max_potential_deviation"] + w["mean_potential_deviation"] <= 0:
            raise ParameterError(
                "objective weights: one of the potential deviation weights must be > 0."
            )
        return cls(**w)

    def to_dict(self) -> dict[str, float]:
        """The weights by term, as the run record stores them."""
        return asdict(self)


#: Weights of the assignment objective by term (see :class:`ObjectiveWeights`).
DEFAULT_OBJECTIVE_WEIGHTS: dict[str, float] = ObjectiveWeights().to_dict()

#: Largest group (free accounts x reps) solved by the MILP under ``method="auto"``.
MILP_MAX_VARIABLES = 1_000

#: Branch-and-bound nodes of one group's MILP; past them the best solution found is kept. A
#: count, not a clock: the same inputs give the same territories on any machine, however busy.
NODE_LIMIT = 500

#: Wall-clock backstop of one group's MILP [s], far above what :data:`NODE_LIMIT` takes; a
#: group stopped by it (a very slow machine) may differ from run to run.
TIME_LIMIT_SECONDS = 60.0

#: Relative optimality gap at which HiGHS stops.
MIP_REL_GAP = 1e-4

#: Reason labels of the assignment table.
REASON_KEPT = "kept"
REASON_LOCKED = "locked"
REASON_BALANCE = "balance"
REASON_OWNER_LEFT = "owner left"
REASON_OWNER_ELSEWHERE = "owner sells to another region/segment"
REASON_UNKNOWN_OWNER = "owner not in reps table"
REASON_NO_OWNER = "no previous owner"
REASON_UNASSIGNED = "unassigned"

_RECORD_VERSION = 1


# --------------------------------------------------------------------------- helpers


def _labels(values: pd.Series | None, n: int, index: pd.Index) -> pd.Series:
    """Text labels with missing values as the placeholder member."""
    if values is None:
        return pd.Series([config.PLACEHOLDER] * n, index=index, dtype=object)
    miss = values.isna().to_numpy()
    out = [
        config.PLACEHOLDER if m or str(v).strip() == "" else str(v)
        for v, m in zip(values.to_numpy(dtype=object), miss, strict=True)
    ]
    return pd.Series(out, index=values.index, dtype=object)


def _ids(values: pd.Series) -> pd.Series:
    """Identifiers as text, missing values as None."""
    miss = values.isna().to_numpy()
    out = [
        None if m or str(v).strip() == "" else str(v)
        for v, m in zip(values.to_numpy(dtype=object), miss, strict=True)
    ]
    return pd.Series(out, index=values.index, dtype=object)


def _require_columns(df: pd.DataFrame, table: str, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{table} table: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"add them or map your export's columns onto them with a mapping file."
        )


def _unique_ids(df: pd.DataFrame, table: str, key: str) -> pd.Series:
    ids = _ids(df[key])
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise DataError(
            f"{table} table, row {row}, column '{key}': empty identifier; fill it in or drop the row."
        )
    dup = ids[ids.duplicated()]
    if len(dup):
        raise DataError(
            f"{table} table, column '{key}': duplicate identifier(s) {', '.join(sorted(set(dup))[:5])}; "
            f"each {key} must appear once."
        )
    return ids


# --------------------------------------------------------------------------- segmentation


def _check_bands(bands: Iterable[tuple[str, float, float]]) -> tuple[tuple[str, float, float], ...]:
    return segment_bands([list(b) for b in bands], "bands")


def segment_accounts(
    accounts: pd.DataFrame,
    bands: Iterable[tuple[str, float, float]] = config.SEGMENT_BANDS,
    keep_given: bool = True,
) -> pd.DataFrame:
    """Segment accounts by employee-headcount band, region and country.

    Parameters
    ----------
    accounts : pd.DataFrame
        Canonical accounts table (``account_id`` required; ``employees``,
        ``segment``, ``region``, ``country`` used when present).
    bands : iterable of (name, lower, upper)
        Employee-headcount bands [employees], lower bound inclusive, upper
        exclusive; default :data:`revmodel.config.SEGMENT_BANDS`.
    keep_given : bool
        Keep a segment label the table already carries (the canonical schema's
        rule) and derive it from ``employees`` only where it is missing. With
        ``False`` the bands override the given labels wherever ``employees``
        is known.

    Returns
    -------
    pd.DataFrame
        A copy with ``segment``, ``region`` and ``country`` filled (missing
        values and accounts outside every band become
        :data:`revmodel.config.PLACEHOLDER`) and ``employee_band`` (the band
        derived from headcount, placeholder when unknown).

    Examples
    --------
    >>> accounts = pd.DataFrame({"account_id": ["A1", "A2", "A3"], "employees": [12, 350, None]})
    >>> out = segment_accounts(accounts)
    >>> out["segment"].tolist(), out["region"].tolist()[0]
    (['SMB', 'Mid-Market', '(unassigned)'], '(unassigned)')
    """
    bands = _check_bands(bands)
    _require_columns(accounts, "accounts", ["account_id"])
    out = accounts.copy()
    n, idx = len(out), out.index
    band = pd.Series([config.PLACEHOLDER] * n, index=idx, dtype=object)
    if "employees" in out.columns:
        emp = pd.to_numeric(out["employees"], errors="coerce")
        bad = emp < 0
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"accounts table, row {row}, column 'employees': negative headcount {emp.iloc[row]:g}; fix or blank it."
            )
        for name, lo, hi in bands:
            band = band.mask((emp >= lo) & (emp < hi), name)
    given = _labels(out["segment"], n, idx) if "segment" in out.columns else None
    if given is None:
        segment = band
    elif keep_given:
        segment = given.where(given != config.PLACEHOLDER, band)
    else:
        segment = band.where(band != config.PLACEHOLDER, given)
    out["employee_band"] = band.astype(str)
    out["segment"] = segment.astype(str)
    out["region"] = _labels(out.get("region"), n, idx).astype(str)
    out["country"] = _labels(out.get("country"), n, idx).astype(str)
    return out


# --------------------------------------------------------------------------- potential


def _deal_amounts(opportunities: pd.DataFrame | None) -> pd.DataFrame | None:
    """Won and open amounts by account (:func:`revmodel.cube.account_amounts`), from the
    opportunities' rows or given already summed (as the deals' accounts of opportunities
    reduced where they were read); None without deals naming an account."""
    if opportunities is None or not len(opportunities):
        return None
    if all(c in opportunities.columns for c in rcube.ACCOUNT_AMOUNTS):
        return opportunities.set_index("account_id")
    if "account_id" not in opportunities.columns:
        return None
    _require_columns(opportunities, "opportunities", ["amount", "stage"])
    return rcube.account_amounts(opportunities).set_index("account_id")


def account_potential(
    accounts: pd.DataFrame,
    opportunities: pd.DataFrame | None = None,
    weights: Mapping[str, float] | None = None,
) -> pd.Series:
    """Potential score of each account.

    Each component (the account's ``annual_revenue`` and ``employees``, its
    won bookings and its open pipeline from ``opportunities``) is divided by
    its mean over the accounts, and the score is 100 times the weighted mean
    of these ratios. Components absent from the data (no column, or all zero)
    drop out and the remaining weights are renormalised; with none left every
    account scores 100. A missing revenue or headcount is imputed with the
    median of the accounts that have one; an account without deals has zero
    bookings and pipeline.

    Parameters
    ----------
    accounts : pd.DataFrame
        Canonical accounts table.
    opportunities : pd.DataFrame, optional
        Canonical opportunities table; won amounts are bookings [currency],
        open amounts (stages :data:`revmodel.schema.OPEN_STAGES`) pipeline
        [currency]. All history is counted. Or those amounts already summed by
        account (:func:`revmodel.cube.account_amounts`).
    weights : mapping, optional
        Component weights (keys ``annual_revenue``, ``employees``,
        ``bookings``, ``pipeline``; >= 0); default
        :data:`DEFAULT_POTENTIAL_WEIGHTS`.

    Returns
    -------
    pd.Series
        ``potential`` indexed by ``account_id`` [score; an average account
        scores 100].

    Examples
    --------
    Revenue and headcount both twice the mean score 200:

    >>> accounts = pd.DataFrame(
    ...     {"account_id": ["A1", "A2", "A3"], "annual_revenue": [1e6, 2e6, 3e6], "employees": [10, 20, 30]}
    ... )
    >>> account_potential(accounts).tolist()
    [50.0, 100.0, 150.0]
    """
    w = dict(DEFAULT_POTENTIAL_WEIGHTS if weights is None else weights)
    unknown = sorted(set(w) - set(DEFAULT_POTENTIAL_WEIGHTS))
    if unknown:
        raise ParameterError(
            f"potential weights: unknown component(s) {unknown}; use {sorted(DEFAULT_POTENTIAL_WEIGHTS)}."
        )
    for k, v in w.items():
        if not (
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        ):
            raise ParameterError(f"potential weights: '{k}' must be a number >= 0, got {v!r}.")
    if sum(w.values()) <= 0:
        raise ParameterError("potential weights: at least one weight must be > 0.")
    ids = _unique_ids(accounts, "accounts", "account_id")
    comps: dict[str, np.ndarray] = {}
    for col in ("annual_revenue", "employees"):
        if col in accounts.columns:
            v = pd.to_numeric(accounts[col], errors="coerce").to_numpy(dtype=float)
            if np.any(v[np.isfinite(v)] < 0):
                row = int(np.flatnonzero(np.isfinite(v) & (v < 0))[0])
                raise DataError(
                    f"accounts table, row {row}, column '{col}': negative value {v[row]:g}; fix or blank it."
                )
            known = np.isfinite(v)
            if known.any():
                comps[col] = np.where(known, v, np.median(v[known]))
    amounts = _deal_amounts(opportunities)
    if amounts is not None:
        comps["bookings"] = ids.map(amounts["won_amount"]).fillna(0.0).to_numpy(dtype=float)
        comps["pipeline"] = ids.map(amounts["open_amount"]).fillna(0.0).to_numpy(dtype=float)
    score = np.zeros(len(ids))
    total_w = 0.0
    for name, values in comps.items():
        mean = values.mean() if len(values) else 0.0
        wt = float(w.get(name, 0.0))
        if mean > 0 and wt > 0:
            score += wt * values / mean
            total_w += wt
    score = 100.0 * score / total_w if total_w > 0 else np.full(len(ids), 100.0)
    return pd.Series(
        score, index=pd.Index(ids.to_numpy(dtype=object), name="account_id"), name="potential"
    )


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class TerritoryPlan:
    """A territory assignment with its balance table and run record.

    Attributes
    ----------
    assignment : pd.DataFrame
        One row per account: ``account_id``, ``region``, ``segment``,
        ``potential`` [score], ``old_rep_id``, ``new_rep_id``, ``moved``
        (bool: the account leaves a previous owner), ``reason``.
    balance : pd.DataFrame
        One row per rep: ``rep_id``, ``region``, ``segment``, ``status``
        (active | left), ``mean_potential`` [score] (the group's mean per
        active rep), ``potential_before``/``potential_after`` [score],
        ``accounts_before``/``accounts_after`` [accounts],
        ``deviation_before``/``deviation_after`` [fraction of the mean],
        ``within_tolerance``, ``accounts_gained``, ``accounts_lost``.
    record : dict
        Run record (JSON-ready): parameters, objective, constraints, inputs,
        inputs hash, per-group solver method and status, summary figures.

    Examples
    --------
    >>> accounts = pd.DataFrame(
    ...     {"account_id": ["A1", "A2", "A3", "A4"], "region": "EMEA", "segment": "SMB", "owner_rep_id": "R1"}
    ... )
    >>> reps = pd.DataFrame({"rep_id": ["R1", "R2"], "region": "EMEA", "segment": "SMB"})
    >>> potential = pd.Series([40.0, 30.0, 20.0, 10.0], index=accounts["account_id"])
    >>> plan = assign_territories(accounts, reps, potential)
    >>> plan.summary["accounts_moved"], len(plan.moves)
    (2, 2)
    >>> import tempfile
    >>> paths = plan.save(Path(tempfile.mkdtemp()) / "plan.csv")
    >>> sorted(p.name for p in paths.values())
    ['plan.csv', 'plan_balance.csv', 'plan_report.txt', 'plan_run.json']
    """

    assignment: pd.DataFrame
    balance: pd.DataFrame
    record: dict = field(repr=False)

    @property
    def moves(self) -> pd.DataFrame:
        """The rows of accounts that change rep."""
        return self.assignment[self.assignment["moved"]].reset_index(drop=True)

    @property
    def summary(self) -> dict[str, Any]:
        """Headline figures: spreads, moves, share of reps within tolerance."""
        return dict(self.record["summary"])

    def save(self, path: str | Path) -> dict[str, Path]:
        """Write the assignment CSV, the balance CSV, the report and the run record.

        Parameters
        ----------
        path : str or Path
            Assignment CSV; beside it go ``<stem>_balance.csv``,
            ``<stem>_report.txt`` and ``<stem>_run.json``.

        Returns
        -------
        dict
            Paths written, by kind (assignment, balance, report, record).
        """
        path = Path(path)
        if path.suffix.lower() != ".csv":
            raise ParameterError(
                f"--out {path}: the assignment is written as CSV; give a file name ending in .csv."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        paths = {
            "assignment": path,
            "balance": path.with_name(f"{path.stem}_balance.csv"),
            "report": path.with_name(f"{path.stem}_report.txt"),
            "record": path.with_name(f"{path.stem}_run.json"),
        }
        # Names come from the exports: written inert, so a spreadsheet never runs them.
        formatting.write_csv(self.assignment, paths["assignment"])
        formatting.write_csv(self.balance, paths["balance"])
        paths["report"].write_text(balance_report(self) + "\n", encoding="utf-8")
        paths["record"].write_text(
            json.dumps(self.record, indent=1, sort_keys=True), encoding="utf-8"
        )
        return paths


@dataclass
class _Group:
    region: str
    segment: str
    rep_ids: list[str]
    free_pos: np.ndarray  # positions (in the accounts frame) of accounts the solver places
    potential: np.ndarray  # of free accounts [score]
    owner: np.ndarray  # index into rep_ids of the previous owner, -1 when it must move or had none
    forced: int  # free accounts whose previous owner cannot keep them
    locked_potential: np.ndarray  # per rep [score]
    locked_count: np.ndarray  # per rep [accounts]

    @property
    def label(self) -> str:
        return f"region '{self.region}', segment '{self.segment}'"

    @property
    def owned(self) -> int:
        return int((self.owner >= 0).sum())

    @property
    def mean_potential(self) -> float:
        return float((self.potential.sum() + self.locked_potential.sum()) / len(self.rep_ids))

    @property
    def mean_count(self) -> float:
        return float((len(self.potential) + self.locked_count.sum()) / len(self.rep_ids))


def _group_value(g: _Group, assign: np.ndarray, w: ObjectiveWeights) -> dict[str, float]:
    """The MILP objective terms for an assignment of the free accounts (indices into rep_ids)."""
    m = len(g.rep_ids)
    mu = g.mean_potential or 1.0
    cbar = g.mean_count or 1.0
    pot = np.bincount(assign, weights=g.potential, minlength=m) + g.locked_potential
    cnt = np.bincount(assign, minlength=m) + g.locked_count
    dev = np.abs(pot - mu) / mu
    cdev = np.abs(cnt - cbar) / cbar
    moves = int(((g.owner >= 0) & (assign != g.owner)).sum()) + g.forced
    value = (
        w.max_potential_deviation * dev.max()
        + w.mean_potential_deviation * dev.mean()
        + w.max_count_deviation * cdev.max()
        + w.move * moves
    )
    return {
        "objective": float(value),
        "max_potential_deviation": float(dev.max()),
        "mean_potential_deviation": float(dev.mean()),
        "max_count_deviation": float(cdev.max()),
        "moves": moves,
    }


@dataclass(frozen=True)
class _MilpLayout:
    """Column layout of one group's programme: ``x[a, r]`` binaries, then ``t``, ``u`` and ``d[r]``."""

    accounts: int
    reps: int

    @property
    def nx(self) -> int:
        """Number of assignment binaries (and the first column after them)."""
        return self.accounts * self.reps

    @property
    def t(self) -> int:
        """Column of ``t``, the largest potential deviation."""
        return self.nx

    @property
    def u(self) -> int:
        """Column of ``u``, the largest count deviation."""
        return self.nx + 1

    @property
    def d0(self) -> int:
        """First column of ``d[r]``, each rep's potential deviation."""
        return self.nx + 2

    @property
    def columns(self) -> int:
        return self.nx + 2 + self.reps


class _ConstraintRows:
    """Sparse rows of a linear programme, appended block by block (``lo <= A x <= hi``)."""

    def __init__(self) -> None:
        self.count = 0
        self._rows: list[np.ndarray] = []
        self._cols: list[np.ndarray] = []
        self._vals: list[np.ndarray] = []
        self._lo: list[np.ndarray] = []
        self._hi: list[np.ndarray] = []

    def add(self, rows, cols, vals, lo, hi) -> None:
        """Append a block; ``rows`` count from 0 within the block, one bound per row."""
        self._rows.append(np.asarray(rows) + self.count)
        self._cols.append(np.asarray(cols))
        self._vals.append(np.asarray(vals, dtype=float))
        self._lo.append(np.asarray(lo, dtype=float))
        self._hi.append(np.asarray(hi, dtype=float))
        self.count += len(self._lo[-1])

    def constraint(self, columns: int) -> LinearConstraint:
        a = sparse.csr_array(
            (np.concatenate(self._vals), (np.concatenate(self._rows), np.concatenate(self._cols))),
            shape=(self.count, columns),
        )
        return LinearConstraint(a, np.concatenate(self._lo), np.concatenate(self._hi))


def _milp_balance_rows(g: _Group, lay: _MilpLayout, rows: _ConstraintRows) -> None:
    """Every account once; ``|potential deviation| <= d[r] <= t``; ``|count deviation| <= u``."""
    n, m, nx = lay.accounts, lay.reps, lay.nx
    mu = g.mean_potential or 1.0
    cbar = g.mean_count or 1.0
    a_idx = np.repeat(np.arange(n), m)
    r_idx = np.tile(np.arange(m), n)
    xcol = np.arange(nx)
    rows.add(a_idx, xcol, np.ones(nx), np.ones(n), np.ones(n))
    pr = g.potential[a_idx] / mu
    base = 1.0 - g.locked_potential / mu
    rr = np.concatenate([r_idx, np.arange(m)])
    dcols = np.concatenate([xcol, lay.d0 + np.arange(m)])
    rows.add(rr, dcols, np.concatenate([pr, -np.ones(m)]), np.full(m, -np.inf), base)
    rows.add(rr, dcols, np.concatenate([-pr, -np.ones(m)]), np.full(m, -np.inf), -base)
    rows.add(
        np.concatenate([np.arange(m)] * 2),
        np.concatenate([lay.d0 + np.arange(m), np.full(m, lay.t)]),
        np.concatenate([np.ones(m), -np.ones(m)]),
        np.full(m, -np.inf),
        np.zeros(m),
    )
    cbase = 1.0 - g.locked_count / cbar
    ucols = np.concatenate([xcol, np.full(m, lay.u)])
    rows.add(
        rr,
        ucols,
        np.concatenate([np.full(nx, 1.0 / cbar), -np.ones(m)]),
        np.full(m, -np.inf),
        cbase,
    )
    rows.add(
        rr,
        ucols,
        np.concatenate([np.full(nx, -1.0 / cbar), -np.ones(m)]),
        np.full(m, -np.inf),
        -cbase,
    )


def _stay_columns(g: _Group, reps: int) -> np.ndarray:
    """Columns of ``x[a, owner(a)]`` for the accounts that have an owner in the group."""
    owned = np.flatnonzero(g.owner >= 0)
    return owned * reps + g.owner[owned]


def _milp_limit_rows(
    g: _Group, lay: _MilpLayout, rows: _ConstraintRows, budget: int | None, capacity: int | None
) -> None:
    """The move budget (accounts leaving their owner) and the accounts-per-rep capacity."""
    stay_cols = _stay_columns(g, lay.reps)
    owned = len(stay_cols)
    if budget is not None and owned:
        rows.add(
            np.zeros(owned, dtype=int), stay_cols, -np.ones(owned), [-np.inf], [budget - owned]
        )
    if capacity is not None:
        rows.add(
            np.tile(np.arange(lay.reps), lay.accounts),
            np.arange(lay.nx),
            np.ones(lay.nx),
            np.full(lay.reps, -np.inf),
            capacity - g.locked_count,
        )


def _milp_costs(g: _Group, lay: _MilpLayout, w: ObjectiveWeights) -> np.ndarray:
    """Objective coefficients: deviation weights on ``t``, ``u``, ``d[r]``; a bonus for staying."""
    c = np.zeros(lay.columns)
    c[lay.t] = w.max_potential_deviation
    c[lay.u] = w.max_count_deviation
    c[lay.d0 :] = w.mean_potential_deviation / lay.reps
    c[_stay_columns(g, lay.reps)] -= w.move
    return c


def _milp_bounds(lay: _MilpLayout, tolerance: float, hard: bool) -> tuple[Bounds, np.ndarray]:
    """Variable bounds (binaries in [0, 1], ``d[r] <= tolerance`` when hard) and integrality."""
    lb = np.zeros(lay.columns)
    ub = np.full(lay.columns, np.inf)
    ub[: lay.nx] = 1.0
    if hard:
        ub[lay.d0 :] = tolerance
    integrality = np.zeros(lay.columns)
    integrality[: lay.nx] = 1
    return Bounds(lb, ub), integrality


def _milp_status(status: int) -> str:
    return {0: "optimal", 1: "time limit", 2: "infeasible", 3: "unbounded"}.get(status, "other")


def _milp_stop(res: Any) -> str:
    """Why HiGHS stopped: its status, with the node limit told apart (scipy reports it as 4)."""
    if res.status == 4 and "Status 16" in str(res.message):
        return "node limit"
    return _milp_status(res.status)


def _solve_milp(
    g: _Group,
    w: ObjectiveWeights,
    budget: int | None,
    tolerance: float,
    hard: bool,
    capacity: int | None,
    time_limit: float,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Solve one group's programme with HiGHS; the assignment (indices into rep_ids) and solver info."""
    lay = _MilpLayout(accounts=len(g.potential), reps=len(g.rep_ids))
    rows = _ConstraintRows()
    _milp_balance_rows(g, lay, rows)
    _milp_limit_rows(g, lay, rows, budget, capacity)
    bounds, integrality = _milp_bounds(lay, tolerance, hard)
    t0 = time.perf_counter()
    res = milp(
        _milp_costs(g, lay, w),
        integrality=integrality,
        bounds=bounds,
        constraints=rows.constraint(lay.columns),
        options={
            "node_limit": NODE_LIMIT,
            "time_limit": float(time_limit),
            "mip_rel_gap": MIP_REL_GAP,
            "presolve": True,
        },
    )
    info: dict[str, Any] = {
        "method": "milp",
        "status": _milp_stop(res),
        "message": str(res.message),
        "mip_gap": None if getattr(res, "mip_gap", None) is None else float(res.mip_gap),
        "variables": int(lay.columns),
        "constraints": int(rows.count),
        "seconds": round(time.perf_counter() - t0, 4),
    }
    if res.x is None:
        return None, info
    x = res.x[: lay.nx].reshape(lay.accounts, lay.reps)
    return np.argmax(x, axis=1).astype(np.int64), info


class _LocalSearch:
    """The heuristic's state: each free account's rep and each rep's fractional load.

    ``dp[r]`` is rep ``r``'s potential deviation from the group mean and
    ``cnt[r]`` its account count, both updated as accounts move; ``moves``
    counts owned accounts that left their owner (forced moves are outside the
    budget ``limit``).
    """

    def __init__(self, g: _Group, w: ObjectiveWeights, budget: int | None, capacity: int | None):
        m = len(g.rep_ids)
        mu = g.mean_potential or 1.0
        self.m = m
        self.owner = g.owner
        self.cbar = g.mean_count or 1.0
        self.wc = w.max_count_deviation
        self.lam = w.move
        self.cap = (
            np.full(m, np.inf) if capacity is None else capacity - g.locked_count.astype(float)
        )
        self.q = g.potential / mu  # account potential as a fraction of the mean
        self.assign = g.owner.copy()
        self.dp = (g.locked_potential - mu) / mu
        self.cnt = g.locked_count.astype(float).copy()
        owned = self.assign >= 0
        np.add.at(self.dp, self.assign[owned], self.q[owned])
        np.add.at(self.cnt, self.assign[owned], 1.0)
        self.moves = 0
        self.limit = np.inf if budget is None else budget

    def dc(self) -> np.ndarray:
        """Each rep's count deviation from the group mean [fraction]."""
        return (self.cnt - self.cbar) / self.cbar

    def shift(self, a: int, s: int) -> None:
        """Move account ``a`` from its rep to rep ``s``."""
        r = self.assign[a]
        self.assign[a] = s
        self.dp[r] -= self.q[a]
        self.dp[s] += self.q[a]
        self.cnt[r] -= 1
        self.cnt[s] += 1

    def place_unowned(self) -> None:
        """Accounts that must be placed, largest first, each where it adds least to the squared deviations."""
        q, cbar = self.q, self.cbar
        for a in sorted(np.flatnonzero(self.assign < 0), key=lambda i: (-q[i], i)):
            gain = 2 * q[a] * (q[a] + 2 * self.dp) / 2 + self.wc * (1 / cbar) * (
                1 / cbar + 2 * self.dc()
            )
            gain = np.where(self.cnt < self.cap, gain, np.inf)
            r = int(np.argmin(gain))
            self.assign[a] = r
            self.dp[r] += q[a]
            self.cnt[r] += 1

    def relieve_over_capacity(self) -> None:
        """An owner above capacity hands its smallest accounts to the least loaded reps with room."""
        for r in np.flatnonzero(self.cnt > self.cap):
            while self.cnt[r] > self.cap[r]:
                members = np.flatnonzero(self.assign == r)
                if not len(members) or self.moves >= self.limit:
                    break
                a = members[np.argmin(self.q[members])]
                s_gain = np.where(self.cnt < self.cap, self.dp, np.inf)
                s = int(np.argmin(s_gain))
                if not np.isfinite(s_gain[s]):
                    break
                self.shift(a, s)
                self.moves += int(self.owner[a] == r)

    def best_move(self, senders: np.ndarray, receivers: np.ndarray) -> tuple[float, tuple | None]:
        """The single account move from a sender to a receiver that lowers the objective most."""
        best: tuple[float, tuple | None] = (-1e-12, None)
        cand = np.flatnonzero(np.isin(self.assign, senders))
        if not len(cand):
            return best
        q, dp, cbar = self.q, self.dp, self.cbar
        r = self.assign[cand]
        qa = q[cand][:, None]
        s = receivers[None, :]
        dcv = self.dc()
        delta = 2 * qa * (qa - dp[r][:, None] + dp[s]) + self.wc * 2 / cbar * (
            1 / cbar - dcv[r][:, None] + dcv[s]
        )
        owner = self.owner[cand][:, None]
        dmove = (owner >= 0) * ((s != owner).astype(float) - (r[:, None] != owner).astype(float))
        delta = delta + self.lam * dmove
        blocked = (
            (s == r[:, None]) | (self.cnt[s] >= self.cap[s]) | ((self.moves + dmove) > self.limit)
        )
        delta = np.where(blocked, np.inf, delta)
        flat = int(np.argmin(delta))
        if delta.flat[flat] < best[0]:
            i, j = divmod(flat, delta.shape[1])
            best = (delta.flat[flat], ("move", int(cand[i]), int(receivers[j]), int(dmove[i, j])))
        return best

    def step(self) -> bool:
        """Take the best improving move, else the best improving swap; False when there is none."""
        k = min(self.m, 8)
        order = np.argsort(self.dp + self.wc * self.dc(), kind="stable")
        senders, receivers = order[::-1][:k], order[:k]
        best = self.best_move(senders, receivers)
        if best[1] is None:
            best = _best_swap(
                self.q,
                self.assign,
                self.owner,
                self.dp,
                senders,
                receivers,
                self.lam,
                self.moves,
                self.limit,
            )
        if best[1] is None:
            return False
        kind, a, b, dm = best[1]
        if kind == "move":
            self.shift(a, b)
        else:
            r, s = self.assign[a], self.assign[b]
            self.assign[a], self.assign[b] = s, r
            self.dp[r] += self.q[b] - self.q[a]
            self.dp[s] += self.q[a] - self.q[b]
        self.moves += dm
        return True


def _solve_heuristic(
    g: _Group,
    w: ObjectiveWeights,
    budget: int | None,
    capacity: int | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Greedy placement of the accounts that must move, then steepest moves and swaps."""
    t0 = time.perf_counter()
    search = _LocalSearch(g, w, budget, capacity)
    search.place_unowned()
    search.relieve_over_capacity()
    iterations = 0
    while search.m > 1:
        iterations += 1
        if not search.step():
            break
    info = {
        "method": "heuristic",
        "status": "local optimum",
        "message": "greedy placement, steepest moves and swaps until no improving step within the move budget",
        "iterations": iterations,
        "seconds": round(time.perf_counter() - t0, 4),
    }
    return search.assign, info


def _best_swap(q, assign, owner, dp, senders, receivers, lam, moves, limit):
    """Best exchange of one account of an over-loaded rep with one of an under-loaded rep."""
    best_delta, best = -1e-12, None
    for r in senders:
        ar = np.flatnonzero(assign == r)
        if not len(ar):
            continue
        for s in receivers:
            if s == r or dp[r] <= dp[s]:
                continue
            bs = np.flatnonzero(assign == s)
            if not len(bs):
                continue
            order = np.argsort(q[bs], kind="stable")
            qs = q[bs][order]
            target = q[ar] - (dp[r] - dp[s]) / 2  # the q[b] that levels the pair
            pos = (
                np.clip(np.searchsorted(qs, target), 1, len(qs) - 1)
                if len(qs) > 1
                else np.zeros(len(ar), int)
            )
            for cand_pos in (pos - 1, pos) if len(qs) > 1 else (pos,):
                b = bs[order[cand_pos]]
                d = q[ar] - q[b]
                delta = 2 * d * (d - dp[r] + dp[s])
                dm = (
                    (owner[ar] >= 0) * ((owner[ar] != s).astype(int) - (owner[ar] != r).astype(int))
                ) + ((owner[b] >= 0) * ((owner[b] != r).astype(int) - (owner[b] != s).astype(int)))
                delta = np.where(moves + dm > limit, np.inf, delta + lam * dm)
                i = int(np.argmin(delta))
                if delta[i] < best_delta:
                    best_delta, best = delta[i], ("swap", int(ar[i]), int(b[i]), int(dm[i]))
    return best_delta, best


def _split_budget(extra: int, needs: list[int], weights: list[int]) -> list[int]:
    """Share ``extra`` moves over groups: by need when needs exceed it, else needs plus a share of the rest."""
    need = np.asarray(needs, dtype=float)
    if need.sum() >= extra:
        basis, total = need, extra
        floor = np.zeros(len(need))
    else:
        basis, total = np.asarray(weights, dtype=float), extra - need.sum()
        floor = need
    if basis.sum() <= 0:
        basis = np.ones(len(basis))
    out = largest_remainder(total, basis)
    return [int(v) for v in (out + floor)]


def _inputs_frame(
    accounts: pd.DataFrame, reps: pd.DataFrame, potential: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The canonical inputs the solver sees (also what the run record stores)."""
    _require_columns(accounts, "accounts", ["account_id"])
    _require_columns(reps, "reps", ["rep_id"])
    acc_ids = _unique_ids(accounts, "accounts", "account_id")
    if "segment" not in accounts.columns or "region" not in accounts.columns:
        seg = segment_accounts(accounts)
    else:
        seg = accounts
    n = len(accounts)
    if not isinstance(potential, pd.Series):
        raise ParameterError(
            "potential: pass a pandas Series indexed by account_id (see account_potential)."
        )
    pot_index = pd.Index(
        _ids(pd.Series(potential.index.to_numpy(dtype=object))).to_numpy(dtype=object)
    )
    pot = pd.Series(
        pd.to_numeric(potential, errors="coerce").to_numpy(dtype=float), index=pot_index
    )
    pot = pot[~pot.index.duplicated()]
    values = acc_ids.map(pot)
    missing = acc_ids[values.isna()]
    if len(missing):
        raise DataError(
            f"potential: no finite value for {len(missing)} account(s), e.g. {', '.join(missing.iloc[:3])}; "
            "compute it with account_potential for every account."
        )
    if (values < 0).any():
        raise DataError(
            f"potential: negative value for account {acc_ids[values < 0].iloc[0]}; potentials must be >= 0."
        )
    acc = pd.DataFrame(
        {
            "account_id": acc_ids.to_numpy(dtype=object),
            "region": _labels(seg["region"], n, seg.index).to_numpy(dtype=object),
            "segment": _labels(seg["segment"], n, seg.index).to_numpy(dtype=object),
            "potential": values.to_numpy(dtype=float),
            "owner_rep_id": pd.Series(
                _ids(accounts["owner_rep_id"]).to_numpy(dtype=object)
                if "owner_rep_id" in accounts.columns
                else np.full(n, None, dtype=object),
                dtype=object,
            ),
        }
    )
    rep_ids = _unique_ids(reps, "reps", "rep_id")
    k = len(reps)
    end = (
        pd.to_datetime(reps["end_date"], errors="coerce")
        if "end_date" in reps.columns
        else pd.Series(pd.NaT, index=reps.index)
    )
    rp = pd.DataFrame(
        {
            "rep_id": rep_ids.to_numpy(dtype=object),
            "region": _labels(reps.get("region"), k, reps.index).to_numpy(dtype=object),
            "segment": _labels(reps.get("segment"), k, reps.index).to_numpy(dtype=object),
            "end_date": pd.Series(
                [None if pd.isna(d) else pd.Timestamp(d).date().isoformat() for d in end],
                dtype=object,
            ),
        }
    )
    return acc, rp


def _hash_inputs(acc: pd.DataFrame, rp: pd.DataFrame) -> str:
    payload = json.dumps(
        {"accounts": acc.to_dict(orient="list"), "reps": rp.to_dict(orient="list")},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def assign_territories(
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    potential: pd.Series,
    max_moves: int | None = None,
    locked: Iterable[str] | Mapping[str, str] = (),
    balance_tolerance: float = 0.05,
    time_limit: float = TIME_LIMIT_SECONDS,
    as_of: str | pd.Timestamp | None = None,
    *,
    hard_tolerance: bool = False,
    max_accounts_per_rep: int | None = None,
    weights: Mapping[str, float] | ObjectiveWeights | None = None,
    method: str = "auto",
    milp_max_variables: int = MILP_MAX_VARIABLES,
) -> TerritoryPlan:
    """Assign accounts to reps within region and segment, balanced and low-disruption.

    Parameters
    ----------
    accounts : pd.DataFrame
        Canonical accounts (``account_id``; ``region``, ``segment``,
        ``owner_rep_id`` used when present; segmented with the default bands
        when ``segment`` or ``region`` is absent).
    reps : pd.DataFrame
        Canonical reps (``rep_id``; ``region``, ``segment``, ``end_date``).
        When the table carries no ``segment`` (or no ``region``) at all, reps
        serve every segment (region) and groups are formed accordingly.
    potential : pd.Series
        Potential per account [score], indexed by ``account_id``.
    max_moves : int, optional
        Most accounts that may leave their previous owner, forced moves
        included [accounts]. None: no limit beyond the move cost.
    locked : iterable of account_id, or mapping account_id -> rep_id
        Accounts that stay with their current owner (iterable), or that go to
        the named rep (mapping).
    balance_tolerance : float
        Allowed deviation of a rep's potential from the group mean [fraction];
        reported per rep, and a hard constraint with ``hard_tolerance``.
    time_limit : float
        MILP wall-clock backstop per group [s]; the MILP stops first at
        :data:`NODE_LIMIT` nodes, so results do not depend on the machine's speed.
    as_of : date-like, optional
        Plan start: reps whose ``end_date`` is before it have left. None: any
        rep with an ``end_date`` has left.
    hard_tolerance : bool
        Make ``balance_tolerance`` a constraint instead of a target.
    max_accounts_per_rep : int, optional
        Capacity of a rep [accounts].
    weights : mapping or ObjectiveWeights, optional
        Objective weights by term (see :class:`ObjectiveWeights`); terms not
        named keep their default.
    method : {"auto", "milp", "heuristic"}
        ``auto`` solves groups up to ``milp_max_variables`` binaries with the
        MILP (falling back to the heuristic when the MILP finds no solution in
        time) and larger groups with the heuristic.
    milp_max_variables : int
        Size threshold for ``auto`` [binary variables].

    Returns
    -------
    TerritoryPlan

    Raises
    ------
    InfeasibleError
        A group with accounts but no active rep, fewer allowed moves than forced moves,
        locked accounts beyond a hard tolerance or capacity, or a programme without a
        solution; the message names the region and segment and what to relax.

    Examples
    --------
    One rep owns all four accounts; two moves balance the potential:

    >>> accounts = pd.DataFrame(
    ...     {"account_id": ["A1", "A2", "A3", "A4"], "region": "EMEA", "segment": "SMB", "owner_rep_id": "R1"}
    ... )
    >>> reps = pd.DataFrame({"rep_id": ["R1", "R2"], "region": "EMEA", "segment": "SMB"})
    >>> potential = pd.Series([40.0, 30.0, 20.0, 10.0], index=accounts["account_id"])
    >>> plan = assign_territories(accounts, reps, potential)
    >>> plan.summary["accounts_moved"], plan.balance["potential_after"].tolist()
    (2, [50.0, 50.0])
    """
    locked = dict(locked) if isinstance(locked, Mapping) else tuple(sorted(str(a) for a in locked))
    as_of = _iso_date(as_of, "as_of")
    if not isinstance(weights, ObjectiveWeights):
        weights = ObjectiveWeights.from_mapping(weights)
    acc, rp = _inputs_frame(accounts, reps, potential)
    settings = AssignmentSettings(
        max_moves=max_moves,
        locked=locked,
        balance_tolerance=balance_tolerance,
        time_limit=time_limit,
        as_of=as_of,
        hard_tolerance=bool(hard_tolerance),
        max_accounts_per_rep=max_accounts_per_rep,
        weights=weights,
        method=method,
        milp_max_variables=int(milp_max_variables),
    )
    return _assign(_fill_from_owner(acc, rp), rp, settings)


def _fill_from_owner(acc: pd.DataFrame, rp: pd.DataFrame) -> pd.DataFrame:
    """Accounts without a region or segment take their owner rep's (when the rep has one)."""
    out = acc.copy()
    for col in ("region", "segment"):
        rep_value = dict(zip(rp["rep_id"], rp[col], strict=True))
        from_owner = out["owner_rep_id"].map(lambda r, m=rep_value: m.get(r, config.PLACEHOLDER))
        fill = (out[col] == config.PLACEHOLDER) & (from_owner != config.PLACEHOLDER)
        out.loc[fill, col] = from_owner[fill]
    return out


def _iso_date(value: Any, name: str) -> str | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        ts = pd.NaT
    if pd.isna(ts):
        raise ParameterError(f"{name}: cannot read {value!r} as a date; use YYYY-MM-DD.")
    return ts.date().isoformat()


@dataclass(frozen=True)
class AssignmentSettings:
    """The settings of one territory assignment (the run record's ``parameters``).

    Built by :func:`assign_territories` from its arguments (see there for
    their meaning and units) and checked on construction.

    Examples
    --------
    >>> s = AssignmentSettings(max_moves=3, locked=("A1",))
    >>> s.to_record()["locked"], s.balance_tolerance
    (['A1'], 0.05)
    >>> AssignmentSettings(method="fast")
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: method: expected 'auto', 'milp' or 'heuristic', got 'fast'.
    """

    max_moves: int | None = None
    locked: tuple[str, ...] | Mapping[str, str] = ()
    balance_tolerance: float = 0.05
    time_limit: float = TIME_LIMIT_SECONDS
    as_of: str | None = None
    hard_tolerance: bool = False
    max_accounts_per_rep: int | None = None
    weights: ObjectiveWeights = ObjectiveWeights()
    method: str = "auto"
    milp_max_variables: int = MILP_MAX_VARIABLES

    def __post_init__(self) -> None:
        if not isinstance(self.weights, ObjectiveWeights):
            object.__setattr__(self, "weights", ObjectiveWeights.from_mapping(self.weights))
        _check_settings(self)

    @property
    def tolerance(self) -> float:
        """``balance_tolerance`` as a float [fraction of the group mean]."""
        return float(self.balance_tolerance)

    def to_record(self) -> dict[str, Any]:
        """JSON-ready parameters, as the run record stores them."""
        return {
            "max_moves": self.max_moves,
            "locked": dict(self.locked) if isinstance(self.locked, Mapping) else list(self.locked),
            "balance_tolerance": self.balance_tolerance,
            "time_limit": self.time_limit,
            "as_of": self.as_of,
            "hard_tolerance": self.hard_tolerance,
            "max_accounts_per_rep": self.max_accounts_per_rep,
            "weights": self.weights.to_dict(),
            "method": self.method,
            "milp_max_variables": self.milp_max_variables,
        }

    @classmethod
    def from_record(cls, parameters: Mapping[str, Any]) -> AssignmentSettings:
        """The settings a run record's ``parameters`` describe."""
        p = dict(parameters)
        locked = p.get("locked", ())
        p["locked"] = dict(locked) if isinstance(locked, Mapping) else tuple(locked)
        return cls(**p)


def _check_settings(s: AssignmentSettings) -> None:
    if s.max_moves is not None and (
        not isinstance(s.max_moves, int | np.integer) or s.max_moves < 0
    ):
        raise ParameterError(f"max_moves: expected a whole number >= 0, got {s.max_moves!r}.")
    tol = s.balance_tolerance
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
        raise ParameterError(
            f"balance_tolerance: expected a fraction >= 0 (0.05 = 5%), got {tol!r}."
        )
    if not (isinstance(s.time_limit, int | float) and s.time_limit > 0):
        raise ParameterError(f"time_limit: expected seconds > 0, got {s.time_limit!r}.")
    cap = s.max_accounts_per_rep
    if cap is not None and (not isinstance(cap, int | np.integer) or cap < 1):
        raise ParameterError(f"max_accounts_per_rep: expected a whole number >= 1, got {cap!r}.")
    if s.method not in ("auto", "milp", "heuristic"):
        raise ParameterError(f"method: expected 'auto', 'milp' or 'heuristic', got {s.method!r}.")


@dataclass(frozen=True)
class _Grouping:
    """Who sells where: each rep's status and group, and each account's group key."""

    reps: pd.DataFrame  # the reps table with a ``status`` column (active | left)
    status: dict[str, str]
    group: dict[
        str, tuple[str, str]
    ]  # rep -> (region, segment); placeholders when not grouped by it
    region: pd.Series  # per account
    segment: pd.Series  # per account
    by_region: bool
    by_segment: bool

    def account_group(self, i: int) -> tuple[str, str]:
        return self.region.iloc[i], self.segment.iloc[i]


def _grouping(acc: pd.DataFrame, rp: pd.DataFrame, as_of: str | None) -> _Grouping:
    """Group by region and by segment only when the reps table names them."""
    by_region = bool((rp["region"] != config.PLACEHOLDER).any())
    by_segment = bool((rp["segment"] != config.PLACEHOLDER).any())
    everywhere = pd.Series(config.PLACEHOLDER, index=acc.index)
    left = np.array(
        [isinstance(d, str) and (as_of is None or d < as_of) for d in rp["end_date"]], dtype=bool
    )
    rp = rp.assign(status=np.where(left, "left", "active"))
    rep_region = rp["region"] if by_region else [config.PLACEHOLDER] * len(rp)
    rep_segment = rp["segment"] if by_segment else [config.PLACEHOLDER] * len(rp)
    return _Grouping(
        reps=rp,
        status=dict(zip(rp["rep_id"], rp["status"], strict=True)),
        group=dict(zip(rp["rep_id"], zip(rep_region, rep_segment, strict=True), strict=True)),
        region=acc["region"] if by_region else everywhere,
        segment=acc["segment"] if by_segment else everywhere,
        by_region=by_region,
        by_segment=by_segment,
    )


def _resolve_locks(
    acc: pd.DataFrame, locked: tuple[str, ...] | Mapping[str, str], grouping: _Grouping
) -> dict[str, str]:
    """Locked account -> its rep, checked: the account exists and the rep is active in its group."""
    lock_map: dict[str, str] = {}
    acc_pos = {a: i for i, a in enumerate(acc["account_id"])}
    owners = acc["owner_rep_id"].to_numpy(dtype=object)
    for a in locked:
        if a not in acc_pos:
            raise ParameterError(
                f"locked: account '{a}' is not in the accounts table; remove it from the locked list."
            )
        i = acc_pos[a]
        target = locked[a] if isinstance(locked, Mapping) else owners[i]
        if target is None:
            raise InfeasibleError(
                f"locked: account '{a}' has no current owner to stay with; unlock it or lock it to a named rep."
            )
        target = str(target)
        if target not in grouping.status:
            raise InfeasibleError(
                f"locked: account '{a}' is locked to rep '{target}', who is not in the reps table; unlock it."
            )
        if grouping.status[target] != "active":
            raise InfeasibleError(
                f"locked: account '{a}' is locked to rep '{target}', who has left; unlock it or name an active rep."
            )
        if grouping.group[target] != grouping.account_group(i):
            region, segment = grouping.group[target]
            raise InfeasibleError(
                f"locked: account '{a}' (region '{acc['region'].iloc[i]}', segment "
                f"'{acc['segment'].iloc[i]}') is locked to rep '{target}', who sells to region "
                f"'{region}', segment '{segment}'; unlock it or name a rep of its group."
            )
        lock_map[a] = target
    return lock_map


@dataclass
class _Outcome:
    """Per account (in the accounts frame's order): the new rep and the reason, filled group by group."""

    new_rep: np.ndarray
    reason: np.ndarray

    @classmethod
    def empty(cls, n: int) -> _Outcome:
        return cls(np.full(n, None, dtype=object), np.full(n, REASON_KEPT, dtype=object))


def _why_forced(owner: str, status: Mapping[str, str]) -> str:
    """Why an account must leave an owner who is not an active rep of its group."""
    if owner not in status:
        return REASON_UNKNOWN_OWNER
    return REASON_OWNER_LEFT if status[owner] == "left" else REASON_OWNER_ELSEWHERE


def _group(
    acc: pd.DataFrame,
    idx: np.ndarray,
    key: tuple[str, str],
    rep_ids: list[str],
    lock_map: Mapping[str, str],
    status: Mapping[str, str],
    out: _Outcome,
) -> _Group:
    """One group's problem: locked accounts become fixed loads, the others free with their owner."""
    pos = {r: i for i, r in enumerate(rep_ids)}
    ids = acc["account_id"].to_numpy(dtype=object)
    owners = acc["owner_rep_id"].to_numpy(dtype=object)
    potential = acc["potential"].to_numpy(dtype=float)
    lp, lc = np.zeros(len(rep_ids)), np.zeros(len(rep_ids))
    free, owner_idx = [], []
    forced = 0
    for i in idx:
        a, o = ids[i], owners[i]
        if a in lock_map:
            r = pos[lock_map[a]]
            lp[r] += potential[i]
            lc[r] += 1
            out.new_rep[i] = lock_map[a]
            out.reason[i] = REASON_LOCKED
            forced += int(o is not None and o != lock_map[a])  # pinned away from its owner
            continue
        free.append(i)
        owner_idx.append(pos[o] if o is not None and o in pos else -1)
        if o is None:
            out.reason[i] = REASON_NO_OWNER
        elif o not in pos:
            forced += 1
            out.reason[i] = _why_forced(o, status)
    return _Group(
        region=str(key[0]),
        segment=str(key[1]),
        rep_ids=rep_ids,
        free_pos=np.asarray(free, dtype=np.int64),
        potential=potential[free] if free else np.zeros(0),
        owner=np.asarray(owner_idx, dtype=np.int64),
        forced=forced,
        locked_potential=lp,
        locked_count=lc,
    )


def _check_group_limits(g: _Group, accounts: int, s: AssignmentSettings) -> None:
    """Locked loads and group size against the capacity and (when hard) the balance ceiling."""
    cap, tol = s.max_accounts_per_rep, s.tolerance
    lp, lc, gid = g.locked_potential, g.locked_count, g.rep_ids
    if cap is not None:
        full = np.flatnonzero(lc > cap)
        if len(full):
            raise InfeasibleError(
                f"{g.label}: rep '{gid[full[0]]}' has {int(lc[full[0]])} locked accounts, above "
                f"max_accounts_per_rep={cap}; unlock some or raise max_accounts_per_rep."
            )
        if accounts > cap * len(gid):
            raise InfeasibleError(
                f"{g.label}: {accounts} accounts exceed {len(gid)} rep(s) x max_accounts_per_rep={cap}; "
                "raise max_accounts_per_rep or add reps."
            )
    if s.hard_tolerance:
        mu = g.mean_potential
        over = np.flatnonzero(lp > (1 + tol) * mu + 1e-9)
        if len(over):
            r = over[0]
            raise InfeasibleError(
                f"{g.label}: rep '{gid[r]}' holds locked potential {lp[r]:.1f}, above the ceiling "
                f"{(1 + tol) * mu:.1f} (group mean {mu:.1f} + {tol:.0%}); unlock some of its accounts "
                "or widen balance_tolerance."
            )


def _form_groups(
    acc: pd.DataFrame,
    grouping: _Grouping,
    lock_map: Mapping[str, str],
    s: AssignmentSettings,
    out: _Outcome,
) -> tuple[list[_Group], list[dict[str, Any]]]:
    """The groups to solve, and the (region, segment) groups no active rep sells to."""
    groups: list[_Group] = []
    unassigned: list[dict[str, Any]] = []
    active = grouping.reps.loc[grouping.reps["status"] == "active", "rep_id"]
    keyed = acc.groupby([grouping.region, grouping.segment]).indices
    for (region, segment), idx in sorted(keyed.items()):
        gid = [r for r in active if grouping.group[r] == (region, segment)]
        if not gid:
            why = f"no active rep sells to region '{region}', segment '{segment}'"
            out.reason[idx] = f"{REASON_UNASSIGNED}: {why}"
            unassigned.append(
                {
                    "region": str(region),
                    "segment": str(segment),
                    "accounts": len(idx),
                    "reason": why,
                }
            )
            continue
        g = _group(acc, idx, (region, segment), gid, lock_map, grouping.status, out)
        _check_group_limits(g, len(idx), s)
        groups.append(g)
    return groups, unassigned


def _move_budgets(groups: list[_Group], s: AssignmentSettings) -> list[int | None]:
    """Each group's budget of balance moves: what ``max_moves`` leaves after the forced moves."""
    if s.max_moves is None:
        return [None] * len(groups)
    forced_total = sum(g.forced for g in groups)
    if s.max_moves < forced_total:
        detail = "; ".join(f"{g.label}: {g.forced}" for g in groups if g.forced)
        raise InfeasibleError(
            f"max_moves={s.max_moves} is below the {forced_total} forced move(s) of accounts whose owner "
            f"left, sells to another region/segment or is unknown, or that are locked to a new rep ({detail}); raise max_moves to at "
            f"least {forced_total}."
        )
    cap = s.max_accounts_per_rep
    needs = [
        int(((g.owner >= 0) & (_solve_heuristic(g, s.weights, None, cap)[0] != g.owner)).sum())
        if g.owned
        else 0
        for g in groups
    ]
    return _split_budget(s.max_moves - forced_total, needs, [g.owned for g in groups])


def _infeasible(g: _Group, budget: int | None, s: AssignmentSettings) -> InfeasibleError:
    return InfeasibleError(
        _infeasible_message(g, budget, s.tolerance, s.hard_tolerance, s.max_accounts_per_rep)
    )


def _solve_milp_or_better(
    g: _Group, budget: int | None, s: AssignmentSettings
) -> tuple[np.ndarray, dict[str, Any]]:
    """The MILP's solution; when it stops early, the better of its best and the heuristic's."""
    w, tol, hard, cap = s.weights, s.tolerance, s.hard_tolerance, s.max_accounts_per_rep
    assign, info = _solve_milp(g, w, budget, tol, hard, cap, s.time_limit)
    if info["status"] == "infeasible":
        raise _infeasible(g, budget, s)
    if info["status"] == "optimal":
        return assign, info
    h_assign, h_info = _solve_heuristic(g, w, budget, cap)
    h_value = _group_value(g, h_assign, w)
    h_ok = not hard or h_value["max_potential_deviation"] <= tol + 1e-9
    if assign is None or (h_ok and h_value["objective"] < _group_value(g, assign, w)["objective"]):
        h_info["fallback_from"] = info
        return h_assign, h_info
    return assign, info


def _solve_group(
    g: _Group, budget: int | None, s: AssignmentSettings
) -> tuple[np.ndarray, dict[str, Any]]:
    """Solve one group by the settings' method: the free accounts' reps and the solver info."""
    n, m = len(g.potential), len(g.rep_ids)
    if n == 0:
        info = {"method": "fixed", "status": "all accounts locked", "message": "", "seconds": 0.0}
        return np.zeros(0, dtype=np.int64), info
    if s.method == "milp" or (s.method == "auto" and n * m <= s.milp_max_variables):
        return _solve_milp_or_better(g, budget, s)
    return _solve_heuristic(g, s.weights, budget, s.max_accounts_per_rep)


def _place_group(
    g: _Group, budget: int | None, s: AssignmentSettings, out: _Outcome
) -> dict[str, Any]:
    """Solve a group, check the solution against the hard limits, record it; the group's record."""
    assign, info = _solve_group(g, budget, s)
    n, m = len(g.potential), len(g.rep_ids)
    value = _group_value(g, assign, s.weights) if m else {}
    if n and s.hard_tolerance and value["max_potential_deviation"] > s.tolerance + 1e-9:
        raise _infeasible(g, budget, s)
    cnt = np.bincount(assign, minlength=m) + g.locked_count
    if n and s.max_accounts_per_rep is not None and cnt.max() > s.max_accounts_per_rep:
        raise _infeasible(g, budget, s)
    for k, i in enumerate(g.free_pos):
        out.new_rep[i] = g.rep_ids[assign[k]]
        if g.owner[k] >= 0 and assign[k] != g.owner[k]:
            out.reason[i] = REASON_BALANCE
    return {
        "region": g.region,
        "segment": g.segment,
        "accounts": int(n + g.locked_count.sum()),
        "locked": int(g.locked_count.sum()),
        "reps": m,
        "forced_moves": g.forced,
        "move_budget": None if budget is None else int(budget + g.forced),
        **value,
        **info,
    }


def _assignment_table(acc: pd.DataFrame, out: _Outcome) -> pd.DataFrame:
    old = acc["owner_rep_id"].to_numpy(dtype=object)
    moved = np.array(
        [
            o is not None and nr is not None and o != nr
            for o, nr in zip(old, out.new_rep, strict=True)
        ],
        dtype=bool,
    )
    return pd.DataFrame(
        {
            "account_id": acc["account_id"].astype(str),
            "region": acc["region"].astype(str),
            "segment": acc["segment"].astype(str),
            "potential": acc["potential"].astype(float),
            "old_rep_id": pd.Series(old, dtype=object),
            "new_rep_id": pd.Series(
                [None if r is None else str(r) for r in out.new_rep], dtype=object
            ),
            "moved": moved,
            "reason": pd.Series(out.reason, dtype=object).astype(str),
        }
    )


_OBJECTIVE_TEXT = (
    "w_max * max_r |dev_r| + w_mean * mean_r |dev_r| + w_count * max_r |count_dev_r| + w_move * moves; "
    "dev_r = (potential_r - group mean) / group mean, count_dev_r likewise for account counts; "
    "the heuristic minimises sum_r dev_r^2 + w_count * sum_r count_dev_r^2 + w_move * moves"
)


def _constraints_text(s: AssignmentSettings, forced_total: int) -> list[str]:
    tol, cap = s.tolerance, s.max_accounts_per_rep
    return [
        "each account assigned to exactly one active rep of its region and segment",
        "locked accounts stay with their owner or named rep",
        f"accounts moved (forced included) <= max_moves ({s.max_moves}); forced moves: {forced_total}; "
        "budget beyond forced moves split across groups by need (largest remainder)",
        f"rep potential within {tol:.1%} of the group mean: {'hard constraint' if s.hard_tolerance else 'target only'}",
        f"accounts per rep <= {cap}" if cap is not None else "no capacity limit",
    ]


def _run_record(
    acc: pd.DataFrame,
    grouping: _Grouping,
    s: AssignmentSettings,
    groups: list[_Group],
    group_records: list[dict[str, Any]],
    unassigned: list[dict[str, Any]],
    assignment: pd.DataFrame,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """What :func:`rerun` needs to reproduce the plan, and what a reader needs to audit it."""
    reps = grouping.reps.drop(columns="status")
    result = list(zip(assignment["account_id"], assignment["new_rep_id"], strict=True))
    return {
        "version": _RECORD_VERSION,
        "kind": "territory plan",
        "parameters": s.to_record(),
        "objective": {
            "sense": "minimise",
            "expression": _OBJECTIVE_TEXT,
            "weights": s.weights.to_dict(),
        },
        "constraints": _constraints_text(s, sum(g.forced for g in groups)),
        "grouping": {"by_region": grouping.by_region, "by_segment": grouping.by_segment},
        "inputs": {"accounts": acc.to_dict(orient="list"), "reps": reps.to_dict(orient="list")},
        "inputs_sha256": _hash_inputs(acc, reps),
        "groups": group_records,
        "unassigned": unassigned,
        "result_sha256": hashlib.sha256(json.dumps(result).encode()).hexdigest(),
        "summary": summary,
    }


def _assign(acc: pd.DataFrame, rp: pd.DataFrame, s: AssignmentSettings) -> TerritoryPlan:
    """Group the accounts, fix the locks, share the move budget, solve each group, record the run."""
    t_start = time.perf_counter()
    grouping = _grouping(acc, rp, s.as_of)
    lock_map = _resolve_locks(acc, s.locked, grouping)
    out = _Outcome.empty(len(acc))
    groups, unassigned = _form_groups(acc, grouping, lock_map, s, out)
    budgets = _move_budgets(groups, s)
    group_records = [_place_group(g, b, s, out) for g, b in zip(groups, budgets, strict=True)]
    assignment = _assignment_table(acc, out)
    balance = _balance(
        assignment, grouping.reps, grouping.group, grouping.region, grouping.segment, s.tolerance
    )
    summary = _summary(assignment, balance, s.tolerance, time.perf_counter() - t_start)
    record = _run_record(acc, grouping, s, groups, group_records, unassigned, assignment, summary)
    return TerritoryPlan(assignment=assignment, balance=balance, record=record)


def _infeasible_message(
    g: _Group, budget: int | None, tol: float, hard: bool, cap: int | None
) -> str:
    parts = []
    if hard:
        parts.append(f"every rep within {tol:.0%} of the mean potential")
    if budget is not None:
        parts.append(f"at most {budget + g.forced} move(s)")
    if cap is not None:
        parts.append(f"at most {cap} accounts per rep")
    relax = []
    if hard:
        relax.append("widen balance_tolerance (or make it a target)")
    if budget is not None:
        relax.append("raise max_moves")
    if cap is not None:
        relax.append("raise max_accounts_per_rep")
    relax.append("unlock accounts")
    return f"{g.label}: no assignment with {' and '.join(parts) or 'these settings'}; {', or '.join(relax)}."


def _balance(
    assignment: pd.DataFrame,
    rp: pd.DataFrame,
    rep_group: dict,
    key_r: pd.Series,
    key_s: pd.Series,
    tol: float,
) -> pd.DataFrame:
    before = assignment.groupby("old_rep_id")["potential"].agg(["sum", "size"])
    after = assignment.groupby("new_rep_id")["potential"].agg(["sum", "size"])
    gtotal: dict = {}
    for k, v in zip(zip(key_r, key_s, strict=True), assignment["potential"], strict=True):
        gtotal[k] = gtotal.get(k, 0.0) + v
    n_active = Counter(rep_group[r] for r in rp.loc[rp["status"] == "active", "rep_id"])
    gained = (
        assignment[assignment["moved"] | assignment["old_rep_id"].isna()]
        .groupby("new_rep_id")
        .size()
    )
    lost = assignment[assignment["moved"]].groupby("old_rep_id").size()
    rows = []
    for rep, region, segment, status in zip(
        rp["rep_id"], rp["region"], rp["segment"], rp["status"], strict=True
    ):
        key = rep_group[rep]
        mean = (
            float(gtotal.get(key, 0.0)) / n_active[key]
            if status == "active" and key in n_active
            else np.nan
        )
        pb = float(before["sum"].get(rep, 0.0))
        pa = float(after["sum"].get(rep, 0.0))
        ok = mean > 0
        rows.append(
            {
                "rep_id": rep,
                "region": region,
                "segment": segment,
                "status": status,
                "mean_potential": mean,
                "potential_before": pb,
                "potential_after": pa,
                "accounts_before": int(before["size"].get(rep, 0)),
                "accounts_after": int(after["size"].get(rep, 0)),
                "deviation_before": (pb - mean) / mean if ok else np.nan,
                "deviation_after": (pa - mean) / mean if ok else np.nan,
                "within_tolerance": bool(ok and abs(pa - mean) <= tol * mean + 1e-9),
                "accounts_gained": int(gained.get(rep, 0)),
                "accounts_lost": int(lost.get(rep, 0)),
            }
        )
    return pd.DataFrame(rows)


def _summary(
    assignment: pd.DataFrame, balance: pd.DataFrame, tol: float, seconds: float
) -> dict[str, Any]:
    act = balance[(balance["status"] == "active") & (balance["mean_potential"] > 0)]
    rb = act["potential_before"] / act["mean_potential"]
    ra = act["potential_after"] / act["mean_potential"]
    reasons = assignment.loc[assignment["moved"], "reason"].value_counts()

    def f(v):
        return None if len(act) == 0 else float(v)

    return {
        "accounts": len(assignment),
        "active_reps": int((balance["status"] == "active").sum()),
        "reps_left": int((balance["status"] == "left").sum()),
        "accounts_moved": int(assignment["moved"].sum()),
        "forced_moves": int((assignment["moved"] & (assignment["reason"] != REASON_BALANCE)).sum()),
        "balance_moves": int((assignment["reason"] == REASON_BALANCE).sum()),
        "new_assignments": int((assignment["reason"] == REASON_NO_OWNER).sum()),
        "unassigned_accounts": int(assignment["new_rep_id"].isna().sum()),
        "moves_by_reason": {str(k): int(v) for k, v in reasons.items()},
        "spread_before_max_over_mean": f(rb.max()) if len(act) else None,
        "spread_before_min_over_mean": f(rb.min()) if len(act) else None,
        "spread_after_max_over_mean": f(ra.max()) if len(act) else None,
        "spread_after_min_over_mean": f(ra.min()) if len(act) else None,
        "reps_within_tolerance_share": f((np.abs(ra - 1) <= tol + 1e-9).mean())
        if len(act)
        else None,
        "balance_tolerance": tol,
        "seconds": round(seconds, 3),
    }


# --------------------------------------------------------------------------- re-run, report, cube, quota


def rerun(record: Mapping[str, Any] | str | Path) -> TerritoryPlan:
    """Solve again from a run record (a dict or the ``*_run.json`` file).

    Groups solved by the heuristic, to MILP optimality or to the MILP's node
    limit reproduce exactly; a group stopped by the time backstop may differ.

    Raises
    ------
    DataError
        The record's inputs do not match its ``inputs_sha256`` or it is not a
        territory run record.

    Parameters
    ----------
    record : mapping, str or Path
        :attr:`TerritoryPlan.record`, or the path of its ``*_run.json`` file.

    Returns
    -------
    TerritoryPlan

    Examples
    --------
    >>> accounts = pd.DataFrame(
    ...     {"account_id": ["A1", "A2", "A3", "A4"], "region": "EMEA", "segment": "SMB", "owner_rep_id": "R1"}
    ... )
    >>> reps = pd.DataFrame({"rep_id": ["R1", "R2"], "region": "EMEA", "segment": "SMB"})
    >>> potential = pd.Series([40.0, 30.0, 20.0, 10.0], index=accounts["account_id"])
    >>> plan = assign_territories(accounts, reps, potential)
    >>> rerun(plan.record).assignment.equals(plan.assignment)
    True
    """
    if isinstance(record, str | Path):
        try:
            record = json.loads(Path(record).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{record}: cannot read the run record ({exc}).") from None
    if not isinstance(record, Mapping) or record.get("kind") != "territory plan":
        raise DataError("run record: not a territory plan record (expected kind 'territory plan').")
    acc = pd.DataFrame(record["inputs"]["accounts"])
    rp = pd.DataFrame(record["inputs"]["reps"])
    if acc.empty:
        acc = pd.DataFrame(columns=["account_id", "region", "segment", "potential", "owner_rep_id"])
    acc["potential"] = acc["potential"].astype(float)
    for col in ("owner_rep_id",):
        acc[col] = acc[col].astype(object).where(acc[col].notna(), None)
    rp["end_date"] = rp["end_date"].astype(object).where(rp["end_date"].notna(), None)
    acc = acc.astype({c: object for c in ("account_id", "region", "segment", "owner_rep_id")})
    rp = rp.astype(object)
    if _hash_inputs(acc, rp) != record["inputs_sha256"]:
        raise DataError(
            "run record: the stored inputs do not match inputs_sha256; the record was edited or damaged."
        )
    return _assign(acc, rp, AssignmentSettings.from_record(record["parameters"]))


def balance_report(plan: TerritoryPlan, max_rows: int = 40) -> str:
    """Readable balance report: spreads before/after, per-group and per-rep balance, moves and why.

    Parameters
    ----------
    plan : TerritoryPlan
    max_rows : int
        Most rep and move rows listed (the CSV files hold them all).

    Returns
    -------
    str
        The report, one line per row.

    Examples
    --------
    >>> accounts = pd.DataFrame(
    ...     {"account_id": ["A1", "A2", "A3", "A4"], "region": "EMEA", "segment": "SMB", "owner_rep_id": "R1"}
    ... )
    >>> reps = pd.DataFrame({"rep_id": ["R1", "R2"], "region": "EMEA", "segment": "SMB"})
    >>> potential = pd.Series([40.0, 30.0, 20.0, 10.0], index=accounts["account_id"])
    >>> plan = assign_territories(accounts, reps, potential)
    >>> for line in balance_report(plan).splitlines()[:3]:
    ...     print(line)
    Territory plan
      accounts 4, active reps 2, reps who left 0
      accounts moved 2 (forced 0, for balance 2); new assignments 0
    """
    s = plan.record["summary"]
    tol = s["balance_tolerance"]
    lines = [
        "Territory plan",
        f"  accounts {s['accounts']}, active reps {s['active_reps']}, reps who left {s['reps_left']}",
        f"  accounts moved {s['accounts_moved']} (forced {s['forced_moves']}, for balance {s['balance_moves']}); "
        f"new assignments {s['new_assignments']}",
    ]
    if s["spread_after_max_over_mean"] is not None:
        lines.append(
            f"  potential / group mean, min-max: before {s['spread_before_min_over_mean']:.3f}-"
            f"{s['spread_before_max_over_mean']:.3f}, after {s['spread_after_min_over_mean']:.3f}-"
            f"{s['spread_after_max_over_mean']:.3f}; reps within {tol:.0%}: {s['reps_within_tolerance_share']:.1%}"
        )
    if s["moves_by_reason"]:
        lines.append(
            "  moves by reason: " + ", ".join(f"{k} {v}" for k, v in s["moves_by_reason"].items())
        )
    g = pd.DataFrame(plan.record["groups"])
    if len(g):
        cols = [
            "region",
            "segment",
            "accounts",
            "reps",
            "locked",
            "moves",
            "max_potential_deviation",
            "method",
            "status",
        ]
        lines += ["", "Groups", g[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}")]
    b = plan.balance
    if len(b):
        b = b.assign(_abs=b["deviation_after"].abs()).sort_values(
            ["_abs", "rep_id"], ascending=[False, True]
        )
        cols = [
            "rep_id", "region", "segment", "status", "potential_before", "potential_after",
            "accounts_before", "accounts_after", "deviation_before", "deviation_after", "within_tolerance",
        ]  # fmt: skip
        lines += [
            "",
            f"Reps (largest deviation first{'' if len(b) <= max_rows else f'; {max_rows} of {len(b)}'})",
        ]
        lines.append(
            b[cols].head(max_rows).to_string(index=False, float_format=lambda v: f"{v:.3f}")
        )
    lines += _unassigned_lines(plan, max_rows)
    mv = plan.moves
    if len(mv):
        lines += [
            "",
            f"Accounts moved ({len(mv)}{'' if len(mv) <= max_rows else f'; first {max_rows}'})",
        ]
        lines.append(
            mv[
                [
                    "account_id",
                    "region",
                    "segment",
                    "potential",
                    "old_rep_id",
                    "new_rep_id",
                    "reason",
                ]
            ]
            .head(max_rows)
            .to_string(index=False, float_format=lambda v: f"{v:.1f}")
        )
    return "\n".join(lines)


def cycle_territories(
    tables: Mapping[str, pd.DataFrame],
    start: str | pd.Timestamp,
    *,
    max_moves: int | None = None,
    balance_tolerance: float = 0.10,
    enabled: bool = True,
) -> tuple[TerritoryPlan | None, str]:
    """The territory plan of a cycle starting at ``start``, or why there is none.

    Parameters
    ----------
    tables : mapping of str to pd.DataFrame
        The canonical tables; ``accounts`` and ``reps`` are needed,
        ``opportunities`` feed the potential when present.
    start : date-like
        First day of the cycle: reps who left before it are not assigned.
    max_moves, balance_tolerance
        See :func:`assign_territories`.
    enabled : bool
        The cycle parameters' ``territories`` switch.

    Returns
    -------
    (TerritoryPlan or None, str)
        The plan and ``""``; or None and, in words, why the section is not shown:
        ``territories: false`` in the parameters, or the tables to add.

    Examples
    --------
    >>> opportunities = pd.DataFrame({"opportunity_id": ["O1"], "amount": [100.0], "stage": ["won"]})
    >>> plan, note = cycle_territories({"opportunities": opportunities}, "2027-01-01")
    >>> plan is None, note
    (True, 'Territories: not provided — add the accounts and reps tables.')
    """
    why = sections.note(tables, "territories", {"territories": enabled})
    if why:
        return None, why
    accounts = segment_accounts(tables["accounts"])
    deals = tables.get("opportunities")
    if deals is not None and "deals" in deals.columns:
        # opportunities reduced where they were read: their accounts' amounts, summed there
        deals = tables.get(rcube.OPPORTUNITY_ACCOUNTS)
    potential = account_potential(accounts, deals)
    plan = assign_territories(
        accounts,
        tables["reps"],
        potential,
        max_moves=max_moves,
        balance_tolerance=balance_tolerance,
        as_of=start,
    )
    return plan, ""


def _unassigned_lines(plan: TerritoryPlan, max_rows: int) -> list[str]:
    """The report's section on accounts no active rep can take, with the reason."""
    groups = plan.record.get("unassigned") or []
    if not groups:
        return []
    n = sum(g["accounts"] for g in groups)
    lines = ["", f"Unassigned accounts ({n}): no active rep can take them"]
    lines += [
        f"  region '{g['region']}', segment '{g['segment']}': {g['accounts']} account(s); "
        f"{g['reason']}: hire or move a rep there, or correct these accounts' region/segment"
        for g in groups[:max_rows]
    ]
    return lines


def unassigned_accounts(plan: TerritoryPlan) -> pd.DataFrame:
    """Accounts no active rep can take: ``account_id, region, segment, potential, old_rep_id, reason``.

    Parameters
    ----------
    plan : TerritoryPlan

    Returns
    -------
    pd.DataFrame
        One row per account left without a rep, with the reason.

    Examples
    --------
    An APAC account whose only rep has left stays unassigned:

    >>> accounts = pd.DataFrame({"account_id": ["A1", "B1"], "region": ["EMEA", "APAC"], "segment": "SMB"})
    >>> reps = pd.DataFrame(
    ...     {"rep_id": ["R1", "R3"], "region": ["EMEA", "APAC"], "segment": "SMB", "end_date": [None, "2026-01-31"]}
    ... )
    >>> plan = assign_territories(accounts, reps, pd.Series([1.0, 1.0], index=["A1", "B1"]), as_of="2027-01-01")
    >>> print(unassigned_accounts(plan).loc[0, "reason"])
    unassigned: no active rep sells to region 'APAC', segment 'SMB'
    """
    a = plan.assignment
    return a.loc[
        a["new_rep_id"].isna(),
        ["account_id", "region", "segment", "potential", "old_rep_id", "reason"],
    ].reset_index(drop=True)


def account_owner_from(plan: TerritoryPlan, month: str | pd.Timestamp) -> pd.DataFrame:
    """Account ownership for the cube: each account's rep from ``month`` on.

    Parameters
    ----------
    plan : TerritoryPlan
    month : date-like
        First month of the new territories (any day; normalised to the first
        of the month).

    Returns
    -------
    pd.DataFrame
        ``account_id``, ``rep_id`` (owner from ``from_month`` on),
        ``from_month`` (datetime64[ns], first day of month),
        ``previous_rep_id`` (owner before it; None for new assignments),
        ``region``, ``segment``, ``potential`` [score].

    Examples
    --------
    >>> accounts = pd.DataFrame(
    ...     {"account_id": ["A1", "A2", "A3", "A4"], "region": "EMEA", "segment": "SMB", "owner_rep_id": "R1"}
    ... )
    >>> reps = pd.DataFrame({"rep_id": ["R1", "R2"], "region": "EMEA", "segment": "SMB"})
    >>> potential = pd.Series([40.0, 30.0, 20.0, 10.0], index=accounts["account_id"])
    >>> plan = assign_territories(accounts, reps, potential)
    >>> owners = account_owner_from(plan, "2027-02-14")
    >>> owners["from_month"].iloc[0], owners["previous_rep_id"].tolist()
    (Timestamp('2027-02-01 00:00:00'), ['R1', 'R1', 'R1', 'R1'])
    """
    try:
        start = pd.Timestamp(month)
    except (ValueError, TypeError):
        raise ParameterError(
            f"month: cannot read {month!r} as a date; use YYYY-MM or YYYY-MM-DD."
        ) from None
    if pd.isna(start):
        raise ParameterError("month: give the first month of the new territories (YYYY-MM).")
    start = start.to_period("M").to_timestamp()
    a = plan.assignment
    return pd.DataFrame(
        {
            "account_id": a["account_id"],
            "rep_id": a["new_rep_id"],
            "from_month": pd.Series([start] * len(a), dtype="datetime64[ns]"),
            "previous_rep_id": a["old_rep_id"],
            "region": a["region"],
            "segment": a["segment"],
            "potential": a["potential"],
        }
    )


def rep_potential(plan: TerritoryPlan, share: bool = False) -> pd.Series:
    """Potential per active rep after the plan, the basis for allocating quota.

    Parameters
    ----------
    plan : TerritoryPlan
    share : bool
        Return each rep's share of the total (sums to 1) instead of the score.

    Returns
    -------
    pd.Series
        Indexed by ``rep_id`` [score] or [fraction] with ``share``.

    Examples
    --------
    >>> accounts = pd.DataFrame(
    ...     {"account_id": ["A1", "A2", "A3", "A4"], "region": "EMEA", "segment": "SMB", "owner_rep_id": "R1"}
    ... )
    >>> reps = pd.DataFrame({"rep_id": ["R1", "R2"], "region": "EMEA", "segment": "SMB"})
    >>> potential = pd.Series([40.0, 30.0, 20.0, 10.0], index=accounts["account_id"])
    >>> plan = assign_territories(accounts, reps, potential)
    >>> rep_potential(plan, share=True).to_dict()
    {'R1': 0.5, 'R2': 0.5}
    """
    b = plan.balance[plan.balance["status"] == "active"]
    out = pd.Series(
        b["potential_after"].to_numpy(dtype=float),
        index=pd.Index(b["rep_id"], name="rep_id"),
        name="potential",
    )
    if share:
        total = out.sum()
        out = (out / total if total > 0 else out * 0.0).rename("potential_share")
    return out


# --------------------------------------------------------------------------- locked accounts


def read_locked(path: str | Path) -> list[str]:
    """Account ids that must stay put: one per line, or a CSV with an ``account_id`` column.

    Parameters
    ----------
    path : str or Path
        A text file with one account id per line, or a CSV with an ``account_id`` column.

    Returns
    -------
    list of str
        The account ids, in file order.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "locked.csv"
    >>> _ = path.write_text("account_id,note\\nA1,renewal\\nA3,strategic\\n", encoding="utf-8")
    >>> read_locked(path)
    ['A1', 'A3']
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"--locked {path}: no such file; list the account ids to keep, one per line."
        )
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    if lines and "account_id" in [c.strip() for c in lines[0].split(",")]:
        col = [c.strip() for c in lines[0].split(",")].index("account_id")
        return [ln.split(",")[col].strip() for ln in lines[1:]]
    return lines
