"""Forecast calls and overrides: an append-only audit log in SQL, permissions, validation.

Managers submit *forecast calls* (a ``commit`` or ``best_case`` amount for a
fiscal period, with a note) for the reps of their team, from Voila apps that
run as separate kernel processes. Every change is one row appended to the
``audit`` table (who, when, what, old value, new value, note); nothing is
ever updated or deleted there. The *current* call of a node is the latest
audit row of its ``(level, key, period, call_type)``: a submission sets it,
a withdrawal (``new_value`` NULL) clears it.

Storage
-------
SQLAlchemy Core on any URL: a SQLite file by default
(:data:`revmodel.config.OVERRIDES_URL`), a ``postgresql://`` URL unchanged
for a shared deployment. On SQLite every connection runs in WAL mode with a
busy timeout, and write transactions start with ``BEGIN IMMEDIATE``, so
writers from several processes queue for the write lock instead of failing
with "database is locked" when a deferred read transaction tries to become a
write transaction. On every database a write first reads the ``periods`` row
of its period ``FOR UPDATE`` (a no-op on SQLite, whose write lock already
covers the file), which serialises writers of one period: the old value a
write records is the value it replaces, and a period cannot close half-way
through a submission.

Levels
------
``"rep"`` calls are keyed by rep id. ``"manager"`` and ``"region"`` calls
are keyed by the manager or region name: they lock an aggregate node for the
reconciler (:meth:`OverrideStore.locked_nodes`).

Permissions
-----------
A :class:`TeamMap` knows each rep's manager and each manager's region (from
the cube's ``manager(rep)`` and ``rep_region(rep)`` coordinates, or from a
mapping file) and what each user may do, from a mapping such as::

    users:
      alice: {manager: M03}    # writes for M03's reps and for M03
      bob: {region: EMEA}      # writes for the reps and managers of EMEA, and EMEA
      carol: {role: admin}     # writes for everyone; opens and closes periods
      vera: {role: vp}         # the company's own call (level "total")

A user missing from the mapping whose name is a manager of the team map
(the server's authenticated user is the manager id) writes for that team.
No identity, no write.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import yaml
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from revmodel import config
from revmodel.calendar import parse_period
from revmodel.errors import DataError, ParameterError, RevmodelError

__all__ = [
    "CALL_LEVELS",
    "CALL_TYPES",
    "MAX_AMOUNT",
    "Call",
    "CallRejected",
    "Identity",
    "NotAllowed",
    "OverrideStore",
    "PeriodClosed",
    "TeamMap",
    "calls_by_week",
    "validate_call",
    "value_add",
]

#: Kinds of forecast call.
CALL_TYPES: tuple[str, ...] = ("commit", "best_case")
#: Hierarchy levels a call can be made at (rep, or a locked aggregate node).
CALL_LEVELS: tuple[str, ...] = ("rep", "manager", "region", "total")
#: The key of the one ``"total"`` (company) node.
COMPANY = "total"
#: Actions recorded in the audit log (``open`` / ``close`` are period changes, level ``"period"``).
ACTIONS: tuple[str, ...] = ("submit", "withdraw", "open", "close")
#: Largest call accepted [USD]: above it a figure almost surely has too many zeros.
MAX_AMOUNT = 1e10
#: Longest note accepted [characters].
MAX_NOTE_CHARS = 1000
#: How long a SQLite writer waits for the write lock before giving up [ms].
BUSY_TIMEOUT_MS = 30_000
#: Source recorded for calls made from the forecast-call app.
DEFAULT_SOURCE = "app:forecast-call"

_EXAMPLE = "enter the call in USD, e.g. 125000"
_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")


# ----------------------------------------------------------------------------- errors


class CallRejected(ParameterError):
    """A forecast call was refused; the message is what the app shows.

    Examples
    --------
    >>> validate_call({"rep": "R0001", "period": "FY2027-Q1", "call_type": "commit", "amount": "lots"})
    Traceback (most recent call last):
    ...
    revmodel.overrides.CallRejected: Amount 'lots' is not a number: enter the call in USD, e.g. 125000.
    """


class PeriodClosed(CallRejected):
    """The period is not open for forecast calls.

    Examples
    --------
    >>> call = {"rep": "R0001", "period": "FY2027-Q2", "call_type": "commit", "amount": 1000}
    >>> validate_call(call, is_open=["FY2027-Q1"])
    Traceback (most recent call last):
    ...
    revmodel.overrides.PeriodClosed: Period FY2027-Q2 is closed for forecast calls: pick an open period (open: FY2027-Q1) or ask an admin to open it.
    """


class NotAllowed(RevmodelError, PermissionError):
    """The user may not make this change (no identity, or another team's node).

    Examples
    --------
    >>> team = TeamMap.from_cube(ds, users={"laura": {"manager": "Laura Chen"}})
    >>> team.check_write(Identity("laura"), "rep", "R0002")
    Traceback (most recent call last):
    ...
    revmodel.overrides.NotAllowed: User 'laura' writes for team Laura Chen only and cannot submit a call for rep R0002 (team Samuel Moreau, region North America East): ask that team's manager or an admin.
    """


# ----------------------------------------------------------------------------- schema

metadata = MetaData()

#: The append-only audit log: one row per change, never updated or deleted.
audit_table = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=False), nullable=False, comment="UTC time of the change"),
    Column("user", String(200), nullable=False),
    Column("action", String(16), nullable=False),
    Column("level", String(16), nullable=False),
    Column("key", String(200), nullable=False),
    Column("period", String(16), nullable=False),
    Column("call_type", String(16), nullable=False),
    Column("old_value", Double, nullable=True, comment="value replaced [USD]; NULL: none"),
    Column("new_value", Double, nullable=True, comment="value set [USD]; NULL: withdrawn"),
    Column("note", Text, nullable=False),
    Column("source", String(100), nullable=False),
    # The current-call lookup: latest id per (level, key, period, call_type).
    Index("ix_audit_node", "period", "level", "key", "call_type", "id"),
    sqlite_autoincrement=True,
)

#: Fiscal periods and whether they are open for calls.
periods_table = Table(
    "periods",
    metadata,
    Column("label", String(16), primary_key=True),
    Column("is_open", Boolean, nullable=False),
    Column("opened_by", String(200), nullable=True),
    Column("opened_at", DateTime(timezone=False), nullable=True),
    Column("closed_by", String(200), nullable=True),
    Column("closed_at", DateTime(timezone=False), nullable=True),
)

_AUDIT_COLUMNS: tuple[str, ...] = tuple(c.name for c in audit_table.columns)


# ----------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class Identity:
    """The authenticated user making a change (e.g. JupyterHub's ``JUPYTERHUB_USER``).

    Parameters
    ----------
    user : str
        The user name the server authenticated.

    Examples
    --------
    >>> Identity.from_environment({"JUPYTERHUB_USER": "laura"})
    Identity(user='laura')
    >>> Identity.from_environment({}) is None
    True
    """

    user: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Identity | None:
        """The user the server authenticated, or None.

        Reads ``JUPYTERHUB_USER`` (set by JupyterHub in every kernel of a
        user's server), then ``REVMODEL_USER`` (a deployment's configured
        user). The login name of the operating system is never used.
        """
        env = os.environ if environ is None else environ
        for name in ("JUPYTERHUB_USER", "REVMODEL_USER"):
            user = (env.get(name) or "").strip()
            if user:
                return cls(user)
        return None


@dataclass(frozen=True)
class Grant:
    """What a user may write: ``role`` is ``"admin"``, ``"manager"`` or ``"region"``; ``scope`` names the team."""

    role: str
    scope: str | None = None

    def describe(self) -> str:
        if self.role == "admin":
            return "admin"
        if self.role == "vp":
            return "the company"
        if self.role == "manager":
            return f"team {self.scope}"
        return f"region {self.scope}"


def _grant(user: str, spec: Any, where: str) -> Grant:
    if isinstance(spec, str):
        spec = {"role": spec}
    if not isinstance(spec, Mapping):
        raise DataError(
            f"{where}: user {user!r} must map to one of {{manager: M03}}, {{region: EMEA}} or "
            f"{{role: admin}}; got {spec!r}"
        )
    if spec.get("role") in ("admin", "vp"):
        return Grant(str(spec["role"]))
    for role in ("manager", "region"):
        if spec.get(role) not in (None, ""):
            return Grant(role, str(spec[role]))
    raise DataError(
        f"{where}: user {user!r} must map to one of {{manager: M03}}, {{region: EMEA}} or "
        f"{{role: admin}}; got {dict(spec)!r}"
    )


def _leavers(cube: xr.Dataset) -> dict[str, str]:
    """Rep -> leaving date of the reps whose ``end_date`` is on or before the cube's ``as_of``."""
    if "end_date" not in cube.coords or "as_of" not in cube.attrs:
        return {}
    end = pd.DatetimeIndex(cube["end_date"].values)
    gone = np.asarray(end.notna() & (end <= pd.Timestamp(cube.attrs["as_of"])))
    reps = np.asarray(cube["rep"].values).astype(str)
    return {str(r): f"{d:%Y-%m-%d}" for r, d in zip(reps[gone], end[gone], strict=True)}


@dataclass(frozen=True)
class TeamMap:
    """Who manages whom, and who may write what.

    Parameters
    ----------
    rep_manager : mapping
        Rep id -> manager name.
    manager_region : mapping
        Manager name -> region name.
    users : mapping
        User name -> :class:`Grant`.
    left : mapping
        Rep id -> the date they left (``YYYY-MM-DD``), for reps who left on or before the
        cube's ``as_of``: no call is taken for them and roll-ups do not count them.

    Examples
    --------
    >>> team = TeamMap.from_cube(ds, users={"admin": {"role": "admin"},
    ...                                     "laura": {"manager": "Laura Chen"}})
    >>> team.managers, team.manager_of("rep", "R0001")
    (['Laura Chen', 'Samuel Moreau'], 'Laura Chen')
    >>> team.can_write(Identity("laura"), "rep", "R0001"), team.can_write(Identity("laura"), "rep", "R0002")
    (True, False)
    """

    rep_manager: Mapping[str, str]
    manager_region: Mapping[str, str] = field(default_factory=dict)
    users: Mapping[str, Grant] = field(default_factory=dict)
    left: Mapping[str, str] = field(default_factory=dict)

    # -- construction

    @classmethod
    def from_mapping(
        cls,
        users: Mapping[str, Any] | None = None,
        rep_manager: Mapping[str, str] | None = None,
        manager_region: Mapping[str, str] | None = None,
        where: str = "team mapping",
    ) -> TeamMap:
        """Build from plain mappings; ``users`` as in the module docstring."""
        grants = {str(u): _grant(str(u), s, where) for u, s in (users or {}).items()}
        return cls(
            {str(r): str(m) for r, m in (rep_manager or {}).items()},
            {str(m): str(g) for m, g in (manager_region or {}).items()},
            grants,
        )

    @classmethod
    def from_cube(cls, cube: xr.Dataset, users: Mapping[str, Any] | None = None) -> TeamMap:
        """Reps, managers and regions from a cube's ``manager(rep)`` and ``rep_region(rep)`` coords.

        A manager's region is the region most of their reps sell in (ties: the
        first in sorted order).
        """
        if "rep" not in cube.dims or "manager" not in cube.coords:
            raise DataError(
                "the cube has no manager(rep) coordinate: build it with revmodel.cube.build_cube "
                "from a reps table with a manager column"
            )
        reps = [str(r) for r in cube["rep"].values.tolist()]
        managers = [str(m) for m in np.asarray(cube["manager"].values).tolist()]
        regions = (
            [str(g) for g in np.asarray(cube["rep_region"].values).tolist()]
            if "rep_region" in cube.coords
            else [config.PLACEHOLDER] * len(reps)
        )
        table = pd.DataFrame({"manager": managers, "region": regions})
        counts = table.groupby(["manager", "region"]).size().reset_index(name="n")
        counts = counts.sort_values(["manager", "n", "region"], ascending=[True, False, True])
        manager_region = dict(counts.drop_duplicates("manager")[["manager", "region"]].values)
        base = cls.from_mapping(users, dict(zip(reps, managers, strict=True)), manager_region)
        return replace(base, left=_leavers(cube))

    @classmethod
    def from_yaml(cls, path: str | Path, cube: xr.Dataset | None = None) -> TeamMap:
        """Read a mapping file.

        The file holds ``users`` (as in the module docstring) and, when no
        ``cube`` is given, ``reps`` (rep -> manager) and ``managers``
        (manager -> region). A file holding only ``{user: {...}}`` entries is
        read as the ``users`` mapping.
        """
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise DataError(f"team mapping file {path} does not exist: create it") from None
        except yaml.YAMLError as exc:
            raise DataError(f"team mapping file {path} is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise DataError(f"team mapping file {path} must hold a mapping of users")
        if not {"users", "reps", "managers"} & set(data):
            data = {"users": data}
        users = data.get("users") or {}
        if cube is not None:
            base = cls.from_cube(cube)
            mapped = cls.from_mapping(users, base.rep_manager, base.manager_region, where=str(path))
            return replace(mapped, left=base.left)
        return cls.from_mapping(
            users, data.get("reps") or {}, data.get("managers") or {}, where=str(path)
        )

    # -- queries

    @property
    def managers(self) -> list[str]:
        """Managers, sorted."""
        return sorted(set(self.rep_manager.values()) | set(self.manager_region))

    @property
    def active_reps(self) -> list[str]:
        """Reps still employed (not in :attr:`left`), sorted."""
        return sorted(r for r in self.rep_manager if r not in self.left)

    @property
    def regions(self) -> list[str]:
        """Regions, sorted."""
        return sorted(set(self.manager_region.values()))

    def grant(self, user: str) -> Grant | None:
        """The user's grant: from the mapping, else manager of the team named like them."""
        if user in self.users:
            return self.users[user]
        if user != config.PLACEHOLDER and user in set(self.rep_manager.values()):
            return Grant("manager", user)
        return None

    def manager_of(self, level: str, key: str) -> str | None:
        """Manager of a rep or manager node (None for a region)."""
        if level == "rep":
            return self.rep_manager.get(key)
        return key if level == "manager" else None

    def region_of(self, level: str, key: str) -> str | None:
        """Region of a node, through its manager."""
        if level == "region":
            return key
        manager = self.manager_of(level, key)
        return None if manager is None else self.manager_region.get(manager)

    def has_node(self, level: str, key: str) -> bool:
        if level == "total":
            return key == COMPANY
        if level == "rep":
            return key in self.rep_manager
        if level == "manager":
            return key in set(self.managers)
        return key in set(self.regions)

    def can_write(self, identity: Identity | None, level: str, key: str) -> bool:
        """Whether ``identity`` may write a call for node ``(level, key)``."""
        user = "" if identity is None else str(identity.user or "").strip()
        if not user:
            return False
        grant = self.grant(user)
        if grant is None:
            return False
        if grant.role == "admin":
            return True
        if grant.role == "vp" or level == "total":
            return grant.role == "vp" and level == "total"
        if grant.role == "manager":
            return level != "region" and self.manager_of(level, key) == grant.scope
        return self.region_of(level, key) == grant.scope

    def check_write(self, identity: Identity | None, level: str, key: str) -> None:
        """Raise :class:`NotAllowed` with the app's message unless ``identity`` may write."""
        user = _user(identity)
        if self.can_write(identity, level, key):
            return
        grant = self.grant(user)
        if grant is None:
            raise NotAllowed(
                f"User {user!r} has no team in the team map: ask an admin to add "
                f"{user} to the team mapping file."
            )
        owner = self.manager_of(level, key) if level != "region" else None
        if level == "rep":
            node = f"rep {key} (team {owner}, region {self.region_of(level, key)})"
        else:
            node = f"{level} {key}"
        raise NotAllowed(
            f"User {user!r} writes for {grant.describe()} only and cannot submit a call for "
            f"{node}: ask that team's manager or an admin."
        )


def _user(identity: Identity | None) -> str:
    user = "" if identity is None else str(identity.user or "").strip()
    if not user:
        raise NotAllowed("Sign in to submit a forecast call: no authenticated user.")
    return user


# ----------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Call:
    """A validated forecast call [amount in USD for the period].

    Parameters
    ----------
    level : {"rep", "manager", "region", "total"}
        The node's level.
    key : str
        Rep id, or the manager or region name.
    period : str
        Fiscal period label.
    call_type : {"commit", "best_case"}
        Kind of call.
    amount : float
        The call [USD for the period].
    note : str
        Why.

    Examples
    --------
    >>> validate_call({"rep": "R0001", "period": "FY2027-Q1", "call_type": "commit",
    ...                "amount": "$125,000", "note": "two renewals signed"})
    Call(level='rep', key='R0001', period='FY2027-Q1', call_type='commit', amount=125000.0, note='two renewals signed')
    """

    level: str
    key: str
    period: str
    call_type: str
    amount: float
    note: str = ""


def _show(raw: Any) -> str:
    if isinstance(raw, str):
        return repr(raw)
    value = float(raw)
    return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"


def parse_amount(raw: Any, max_amount: float = MAX_AMOUNT) -> float:
    """A call amount from a widget value [USD].

    Accepts numbers and strings such as ``"125000"``, ``" 125000.50 "``,
    ``"$125,000"`` (comma-grouped thousands) or ``"1.25e5"``.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise CallRejected(f"Amount is empty: {_EXAMPLE}.")
    if isinstance(raw, bool) or not isinstance(raw, str | Real | Decimal):
        raise CallRejected(f"Amount {raw!r} is not a number: {_EXAMPLE}.")
    if isinstance(raw, str):
        text = raw.strip().replace(" ", "").replace("_", "")
        if text.startswith("$"):
            text = text[1:]
        if _GROUPED.fullmatch(text):
            text = text.replace(",", "")
        try:
            value = float(text)
        except ValueError:
            raise CallRejected(f"Amount {raw!r} is not a number: {_EXAMPLE}.") from None
    else:
        value = float(raw)
    if not math.isfinite(value):
        raise CallRejected(f"Amount {_show(raw)} is not a finite number: {_EXAMPLE}.")
    if value < 0:
        raise CallRejected(
            f"Amount {_show(raw)} is negative: a forecast call is an amount of 0 USD or more."
        )
    if value > max_amount:
        raise CallRejected(
            f"Amount {_show(raw)} is above the limit of {max_amount:,.0f} USD: check the number "
            f"of zeros."
        )
    return value


def _text(raw: dict, name: str, what: str, hint: str) -> str:
    value = raw.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CallRejected(f"{what} is empty: {hint}.")
    if not isinstance(value, str | int | np.integer) or isinstance(value, bool):
        raise CallRejected(f"{what} {value!r} is not text: {hint}.")
    return str(value).strip()


def validate_call(
    raw: Mapping[str, Any],
    team_map: TeamMap | None = None,
    is_open: Callable[[str], bool] | Collection[str] | None = None,
    max_amount: float = MAX_AMOUNT,
) -> Call:
    """Check a forecast call as it arrives from a browser.

    Parameters
    ----------
    raw : mapping
        Widget values: ``rep`` (or ``key``), ``period``, ``call_type``,
        ``amount`` [USD, number or text], ``note`` (optional) and ``level``
        (optional, ``"rep"`` by default).
    team_map : TeamMap, optional
        When given, the node must exist in it.
    is_open : callable or collection of str, optional
        The periods open for calls (a predicate or the open labels); when
        given, the period must be open.
    max_amount : float
        Largest amount accepted [USD].

    Returns
    -------
    Call

    Raises
    ------
    CallRejected
        With the message the app shows (``PeriodClosed`` for a closed period).

    Examples
    --------
    >>> validate_call({"rep": "R0001", "period": "FY2027-Q1", "call_type": "commit",
    ...                "amount": " 125000.50 "}).amount
    125000.5
    >>> validate_call({"rep": "R0001", "period": "FY2027-Q1", "call_type": "commit",
    ...                "amount": -5})
    Traceback (most recent call last):
    ...
    revmodel.overrides.CallRejected: Amount -5 is negative: a forecast call is an amount of 0 USD or more.
    """
    if not isinstance(raw, Mapping):
        raise CallRejected(f"A forecast call must be a mapping of field values: got {raw!r}.")
    level = raw.get("level") or "rep"
    if level not in CALL_LEVELS:
        raise CallRejected(
            f"Level {level!r} is not one of {', '.join(CALL_LEVELS)}: calls are made for a rep, "
            f"a manager, a region or the company (total)."
        )
    noun = {"rep": "Rep", "manager": "Manager", "region": "Region", "total": "Company"}[level]
    if level == "total" and raw.get("key") in (None, ""):
        raw = {**raw, "key": COMPANY}
    key_field = "key" if raw.get("key") not in (None, "") else level
    key = _text(raw, key_field, noun, f"pick a {level} from the list")

    period = _text(raw, "period", "Period", "pick a fiscal period like FY2027-Q1")
    try:
        period = parse_period(period).label
    except ParameterError:
        raise CallRejected(
            f"Period {period!r} is not a fiscal period: use a label like FY2027-Q1."
        ) from None

    call_type = raw.get("call_type")
    if call_type not in CALL_TYPES:
        raise CallRejected(
            f"Call type {call_type!r} is not one of {', '.join(CALL_TYPES)}: pick commit or "
            f"best_case."
        )

    amount = parse_amount(raw.get("amount"), max_amount)

    note = raw.get("note")
    note = "" if note is None else note
    if not isinstance(note, str):
        raise CallRejected(f"Note {note!r} is not text: write the note as text.")
    note = note.strip()
    if len(note) > MAX_NOTE_CHARS:
        raise CallRejected(
            f"Note is {len(note)} characters long: keep it to {MAX_NOTE_CHARS} characters or fewer."
        )

    if team_map is not None and not team_map.has_node(level, key):
        raise CallRejected(f"{noun} {key!r} is not in the team map: pick a {level} from the list.")
    if team_map is not None and level == "rep" and key in team_map.left:
        raise CallRejected(
            f"Rep {key!r} left on {team_map.left[key]}: calls are taken for reps still employed; "
            f"call their deals at the team level."
        )
    if is_open is not None:
        predicate = is_open if callable(is_open) else set(is_open).__contains__
        if not predicate(period):
            listed = None if callable(is_open) else sorted(str(p) for p in is_open)
            raise PeriodClosed(_closed_message(period, listed))
    return Call(level, key, period, call_type, amount, note)


def _closed_message(period: str, open_periods: list[str] | None) -> str:
    where = ""
    if open_periods is not None:
        where = f" (open: {', '.join(open_periods)})" if open_periods else " (no period is open)"
    return (
        f"Period {period} is closed for forecast calls: pick an open period{where} or ask an "
        f"admin to open it."
    )


# ----------------------------------------------------------------------------- store


@dataclass(frozen=True)
class AuditRow:
    """One row of the audit log (``at`` in UTC; values in USD, None when absent)."""

    id: int
    at: datetime
    user: str
    action: str
    level: str
    key: str
    period: str
    call_type: str
    old_value: float | None
    new_value: float | None
    note: str
    source: str


def _now() -> datetime:
    # Stored naive, in UTC, so SQLite and PostgreSQL round-trip the same value.
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_file(url: Any) -> Path | None:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(database)


def _make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ParameterError(
            f"overrides URL {url!r} is not a database URL: use e.g. sqlite:///path/overrides.db "
            f"or postgresql://user@host/db"
        ) from None
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise ParameterError(
                f"overrides URL {parsed.render_as_string(hide_password=True)!r} needs a database "
                f"driver that is not installed ({exc}): install it, e.g. psycopg for PostgreSQL"
            ) from None

    path = _sqlite_file(parsed)
    kwargs: dict[str, Any] = {}
    if path is None:
        # One shared in-memory database for every connection of this engine.
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below), so sqlite3 must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if path is not None:
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write takes the write lock up front: a deferred transaction that reads
        # first fails with "database is locked" when it upgrades under contention.
        immediate = conn.get_execution_options().get("revmodel_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _current_value(conn: Connection, call: Call, call_type: str) -> float | None:
    """The node's current ``call_type`` call in the period [USD], None if none (or withdrawn)."""
    audit = audit_table.c
    row = conn.execute(
        select(audit.new_value)
        .where(
            audit.period == call.period,
            audit.level == call.level,
            audit.key == call.key,
            audit.call_type == call_type,
        )
        .order_by(audit.id.desc())
        .limit(1)
    ).first()
    return None if row is None or row.new_value is None else float(row.new_value)


def _check_commit_within_best_case(conn: Connection, call: Call) -> None:
    """Refuse a commit above the node's best case, or a best case below its commit."""
    other = "best_case" if call.call_type == "commit" else "commit"
    current = _current_value(conn, call, other)
    if current is None:
        return
    commit, best = (call.amount, current) if call.call_type == "commit" else (current, call.amount)
    if commit <= best:
        return
    node = f"{call.level} {call.key} in {call.period}"
    if call.call_type == "commit":
        raise CallRejected(
            f"Commit {commit:,.0f} USD is above the best case of {best:,.0f} USD for {node}: "
            f"a commit is at most the best case; raise the best case first."
        )
    raise CallRejected(
        f"Best case {best:,.0f} USD is below the commit of {commit:,.0f} USD for {node}: "
        f"the best case is at least the commit; lower the commit first."
    )


def _frame(rows: list[Any], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    if "at" in frame:
        frame["at"] = pd.to_datetime(frame["at"]).dt.tz_localize("UTC")
    for name in ("old_value", "new_value", "amount"):
        if name in frame:
            frame[name] = frame[name].astype(float)
    return frame


class OverrideStore:
    """Forecast calls and their audit log in a SQL database.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL; default :data:`revmodel.config.OVERRIDES_URL` (a SQLite
        file). A ``postgresql://`` URL works unchanged.
    team_map : TeamMap, optional
        Reps, managers, regions and user grants. Without one, every write
        (calls, and opening or closing periods) is refused.
    max_amount : float
        Largest call accepted [USD].

    Notes
    -----
    The store exposes no way to update or delete an audit row: a new call
    appends a row whose ``old_value`` is the call it replaces.

    Examples
    --------
    An in-memory SQLite store; an admin opens the quarter, a manager calls:

    >>> team = TeamMap.from_cube(ds, users={"admin": {"role": "admin"},
    ...                                     "laura": {"manager": "Laura Chen"}})
    >>> store = OverrideStore("sqlite://", team_map=team)
    >>> store.open_period("FY2027-Q1", Identity("admin"))
    >>> row = store.submit(Identity("laura"), "R0001", "FY2027-Q1", "commit", "$250,000")
    >>> row.old_value, row.new_value
    (None, 250000.0)
    >>> _ = store.submit(Identity("laura"), "R0001", "FY2027-Q1", "commit", 260000, note="upsell")
    >>> store.current_calls("FY2027-Q1")[["key", "call_type", "amount", "user", "note"]]
         key call_type    amount   user    note
    0  R0001    commit  260000.0  laura  upsell
    >>> store.audit("FY2027-Q1")[["action", "key", "old_value", "new_value"]]
       action        key  old_value  new_value
    0    open  FY2027-Q1        NaN        NaN
    1  submit      R0001        NaN   250000.0
    2  submit      R0001   250000.0   260000.0
    >>> store.rollup("FY2027-Q1")[["level", "key", "commit", "reps_with_commit"]].head(2)
         level            key    commit  reps_with_commit
    0  manager     Laura Chen  260000.0                 1
    1  manager  Samuel Moreau       NaN                 0
    >>> store.close()
    """

    def __init__(
        self,
        url: str | None = None,
        team_map: TeamMap | None = None,
        max_amount: float = MAX_AMOUNT,
    ) -> None:
        self.url = str(url or config.OVERRIDES_URL)
        self.team_map = team_map
        self.max_amount = float(max_amount)
        self._engine = _make_engine(self.url)
        #: period -> (the store's version, its current calls): read again when a call changed.
        self._current: dict[str | None, tuple[int, pd.DataFrame]] = {}
        self._create_schema()

    # -- plumbing

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (read-only use: the store writes through its own methods)."""
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> OverrideStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OverrideStore({make_url(self.url).render_as_string(hide_password=True)!r})"

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(revmodel_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def _create_schema(self) -> None:
        try:
            with self._write() as conn:
                metadata.create_all(conn, checkfirst=True)
        except DBAPIError:
            # Another process created the tables between our check and our CREATE.
            with self._write() as conn:
                metadata.create_all(conn, checkfirst=True)

    def journal_mode(self) -> str | None:
        """SQLite's journal mode (``"wal"`` for a file database); None on other databases."""
        if self.dialect != "sqlite":
            return None
        with self._read() as conn:
            return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower()

    # -- periods

    def is_open(self, label: str) -> bool:
        """Whether the period ``label`` is open for calls."""
        with self._read() as conn:
            found = conn.execute(
                select(periods_table.c.is_open).where(periods_table.c.label == str(label))
            ).scalar()
        return bool(found)

    def open_periods(self) -> list[str]:
        """Labels of the periods open for calls, sorted."""
        with self._read() as conn:
            rows = conn.execute(
                select(periods_table.c.label)
                .where(periods_table.c.is_open.is_(True))
                .order_by(periods_table.c.label)
            ).scalars()
            return [str(r) for r in rows]

    def periods(self) -> pd.DataFrame:
        """Every period ever opened: label, is_open, opened/closed by and at [UTC]."""
        with self._read() as conn:
            rows = conn.execute(select(periods_table).order_by(periods_table.c.label)).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=list(periods_table.c.keys()))
        for name in ("opened_at", "closed_at"):
            frame[name] = pd.to_datetime(frame[name]).dt.tz_localize("UTC")
        frame["is_open"] = frame["is_open"].astype(bool)
        return frame

    def _check_admin(self, identity: Identity | None, verb: str) -> str:
        user = _user(identity)
        grant = None if self.team_map is None else self.team_map.grant(user)
        if grant is None or grant.role != "admin":
            raise NotAllowed(
                f"User {user!r} cannot {verb} periods: only an admin opens and closes a period "
                f"for calls."
            )
        return user

    def _set_period(self, label: str, identity: Identity | None, is_open: bool) -> None:
        user = self._check_admin(identity, "open" if is_open else "close")
        try:
            label = parse_period(label).label
        except ParameterError:
            raise CallRejected(
                f"Period {label!r} is not a fiscal period: use a label like FY2027-Q1."
            ) from None
        now = _now()
        by, at = ("opened_by", "opened_at") if is_open else ("closed_by", "closed_at")
        # Two admins opening a new period at once both see no row and both insert; the
        # second insert fails on the key, and its retry finds the row and agrees.
        for attempt in range(2):
            try:
                with self._write() as conn:
                    row = conn.execute(
                        select(periods_table.c.is_open)
                        .where(periods_table.c.label == label)
                        .with_for_update()
                    ).first()
                    if row is None:
                        if not is_open:
                            return
                        conn.execute(
                            insert(periods_table).values(
                                label=label, is_open=True, **{by: user, at: now}
                            )
                        )
                    elif bool(row.is_open) == is_open:
                        return
                    else:
                        conn.execute(
                            update(periods_table)
                            .where(periods_table.c.label == label)
                            .values(is_open=is_open, **{by: user, at: now})
                        )
                    conn.execute(
                        insert(audit_table).values(
                            at=now,
                            user=user,
                            action="open" if is_open else "close",
                            level="period",
                            key=label,
                            period=label,
                            call_type="",
                            old_value=None,
                            new_value=None,
                            note="",
                            source="admin",
                        )
                    )
                return
            except IntegrityError:
                if attempt:
                    raise

    def open_period(self, label: str, identity: Identity | None) -> None:
        """Open ``label`` (e.g. ``"FY2027-Q1"``) for calls; admins only. Idempotent."""
        self._set_period(label, identity, True)

    def close_period(self, label: str, identity: Identity | None) -> None:
        """Close ``label`` for calls; admins only. Calls already made stay. Idempotent."""
        self._set_period(label, identity, False)

    # -- writing calls

    def validate(self, raw: Mapping[str, Any]) -> Call:
        """:func:`validate_call` with this store's team map, open periods and limit."""
        return validate_call(raw, self.team_map, self.is_open, self.max_amount)

    def _append(
        self,
        identity: Identity | None,
        call: Call,
        action: str,
        source: str,
    ) -> AuditRow:
        user = _user(identity)
        if self.team_map is None:
            raise NotAllowed(
                "No team map is configured, so nobody may submit calls: give the store a "
                "TeamMap (from the cube or a mapping file)."
            )
        self.team_map.check_write(identity, call.level, call.key)
        with self._write() as conn:
            is_open = conn.execute(
                select(periods_table.c.is_open)
                .where(periods_table.c.label == call.period)
                .with_for_update()
            ).scalar()
            if not is_open:
                open_now = conn.execute(
                    select(periods_table.c.label)
                    .where(periods_table.c.is_open.is_(True))
                    .order_by(periods_table.c.label)
                ).scalars()
                raise PeriodClosed(_closed_message(call.period, [str(p) for p in open_now]))
            old_value = _current_value(conn, call, call.call_type)
            if action == "submit":
                _check_commit_within_best_case(conn, call)
            if action == "withdraw" and old_value is None:
                raise CallRejected(
                    f"There is no {call.call_type} call for {call.level} {call.key} in "
                    f"{call.period} to withdraw."
                )
            values = {
                "at": _now(),
                "user": user,
                "action": action,
                "level": call.level,
                "key": call.key,
                "period": call.period,
                "call_type": call.call_type,
                "old_value": old_value,
                "new_value": call.amount if action == "submit" else None,
                "note": call.note,
                "source": str(source),
            }
            new_id = conn.execute(insert(audit_table).values(**values)).inserted_primary_key[0]
        return AuditRow(id=int(new_id), **values)

    def submit(
        self,
        identity: Identity | None,
        rep: Any,
        period: Any,
        call_type: Any,
        amount: Any,
        note: Any = "",
        *,
        level: str = "rep",
        source: str = DEFAULT_SOURCE,
    ) -> AuditRow:
        """Submit a forecast call: append an audit row that becomes the current call.

        Parameters
        ----------
        identity : Identity or None
            The authenticated user; None refuses the write.
        rep : str
            Rep id (or the manager / region name when ``level`` is ``"manager"`` / ``"region"``).
        period : str
            Fiscal period label, open for calls, e.g. ``"FY2027-Q1"``.
        call_type : {"commit", "best_case"}
        amount : float or str
            The call [USD for the period], as typed in the app.
        note : str
            Why (at most :data:`MAX_NOTE_CHARS` characters).
        level : {"rep", "manager", "region", "total"}
            ``"total"`` is the company's own call (key :data:`COMPANY`).
        source : str
            Where the call came from, e.g. ``"app:forecast-call"``.

        Returns
        -------
        AuditRow
            The row written, with the ``old_value`` it replaced.

        Raises
        ------
        NotAllowed
            No identity, or a node outside the user's team.
        CallRejected
            A value is invalid; ``PeriodClosed`` when the period is not open.
        """
        _user(identity)
        call = validate_call(
            {
                "level": level,
                "key": rep,
                "period": period,
                "call_type": call_type,
                "amount": amount,
                "note": note,
            },
            self.team_map,
            None,
            self.max_amount,
        )
        return self._append(identity, call, "submit", source)

    def withdraw(
        self,
        identity: Identity | None,
        rep: Any,
        period: Any,
        call_type: Any,
        note: Any = "",
        *,
        level: str = "rep",
        source: str = DEFAULT_SOURCE,
    ) -> AuditRow:
        """Withdraw the current call of a node: append a row with ``new_value`` None.

        Same parameters, permissions and errors as :meth:`submit`, without the amount.
        """
        _user(identity)
        call = validate_call(
            {
                "level": level,
                "key": rep,
                "period": period,
                "call_type": call_type,
                "amount": 0.0,
                "note": note,
            },
            self.team_map,
            None,
            self.max_amount,
        )
        return self._append(identity, call, "withdraw", source)

    # -- reading

    def audit(self, period: str | None = None, key: str | None = None) -> pd.DataFrame:
        """The audit log in id order: who (``user``), when (``at``, UTC), what, old, new, note.

        Columns: ``id, at, user, action, level, key, period, call_type,
        old_value, new_value, note, source`` (values in USD; NaN when absent).
        """
        query = select(audit_table).order_by(audit_table.c.id)
        if period is not None:
            query = query.where(audit_table.c.period == str(period))
        if key is not None:
            query = query.where(audit_table.c.key == str(key))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return _frame(rows, list(_AUDIT_COLUMNS))

    def version(self) -> int:
        """The id of the latest audit row (0 when empty): changes whenever a call or period does."""
        with self._read() as conn:
            return int(conn.execute(select(func.max(audit_table.c.id))).scalar() or 0)

    def _current_query(self, period: str | None) -> Any:
        audit = audit_table.c
        latest = select(func.max(audit.id).label("id")).where(audit.level.in_(CALL_LEVELS))
        if period is not None:
            latest = latest.where(audit.period == str(period))
        latest = latest.group_by(audit.period, audit.level, audit.key, audit.call_type).subquery()
        return (
            select(
                audit.level,
                audit.key,
                audit.period,
                audit.call_type,
                audit.new_value.label("amount"),
                audit.note,
                audit.user,
                audit.at,
                audit.id.label("audit_id"),
            )
            .join(latest, latest.c.id == audit.id)
            .where(audit.action == "submit")
            .order_by(audit.period, audit.level, audit.key, audit.call_type)
        )

    def current_calls(self, period: str | None = None, manager: str | None = None) -> pd.DataFrame:
        """The current call of every node: the latest audit row, unless it withdrew the call.

        Returns
        -------
        pd.DataFrame
            Columns ``level, key, manager, region, period, call_type, amount``
            [USD], ``note, user, at`` [UTC], ``audit_id``; one row per
            (level, key, period, call_type). ``manager`` keeps the calls of one
            manager's reps and of the manager node.
        """
        with self._read() as conn:
            version = int(conn.execute(select(func.max(audit_table.c.id))).scalar() or 0)
            cached = self._current.get(period)
            if cached is not None and cached[0] == version:
                frame = cached[1].copy()
            else:
                rows = conn.execute(self._current_query(period)).all()
                frame = self._current_frame(rows)
                self._current[period] = (version, frame.copy())
        if manager is not None:
            frame = frame[frame["manager"] == str(manager)].reset_index(drop=True)
        return frame

    def _current_frame(self, rows: list[Any]) -> pd.DataFrame:
        frame = _frame(
            rows,
            ["level", "key", "period", "call_type", "amount", "note", "user", "at", "audit_id"],
        )
        tm = self.team_map or TeamMap({})
        frame.insert(
            2,
            "manager",
            [tm.manager_of(lv, k) for lv, k in zip(frame["level"], frame["key"], strict=True)],
        )
        frame.insert(
            3,
            "region",
            [tm.region_of(lv, k) for lv, k in zip(frame["level"], frame["key"], strict=True)],
        )
        return frame

    def locked_nodes(self, period: str, call_type: str = "commit") -> dict[tuple[str, str], float]:
        """Current calls of a period as locked nodes for the reconciler.

        Returns
        -------
        dict
            ``{(level, key): amount}``, e.g. ``{("rep", "R001"): 125000.0,
            ("manager", "M03"): 900000.0}``: level is ``"rep"``, ``"manager"``
            or ``"region"`` (the names of :data:`revmodel.reconcile.LEVELS`),
            amount the call [USD for the whole period]. A reconciler working by
            month must spread it over the period's months
            (:func:`revmodel.calendar.quarter_months`).
        """
        if call_type not in CALL_TYPES:
            raise ParameterError(
                f"call_type must be one of {', '.join(CALL_TYPES)}: got {call_type!r}"
            )
        calls = self.current_calls(period)
        calls = calls[calls["call_type"] == call_type]
        return {
            (str(lv), str(k)): float(a)
            for lv, k, a in zip(calls["level"], calls["key"], calls["amount"], strict=True)
        }

    def rollup(self, period: str, cube: xr.Dataset | None = None) -> pd.DataFrame:
        """Reps' current calls of a period rolled up to manager, region and total.

        Parameters
        ----------
        period : str
            Fiscal period label.
        cube : xr.Dataset, optional
            Supplies the hierarchy (``manager(rep)``, ``rep_region(rep)``);
            default the store's team map.

        Returns
        -------
        pd.DataFrame
            One row per node, managers then regions then the total, with
            ``level, key, region``; ``commit`` and ``best_case``: sums of
            the reps' current calls [USD for the period], NaN where no rep
            has one (missing, not 0); ``reps``,
            ``reps_with_commit``, ``reps_without_commit``,
            ``reps_with_best_case`` [counts]; ``call_commit`` and
            ``call_best_case``: the node's own locked call [USD], NaN if none.
            Reps who have left (:attr:`TeamMap.left`) are neither summed nor counted.
        """
        tm = TeamMap.from_cube(cube) if cube is not None else self.team_map
        if tm is None:
            raise ParameterError("rollup needs a cube or a store with a team map")
        reps = pd.DataFrame({"rep": list(tm.rep_manager), "manager": list(tm.rep_manager.values())})
        reps = reps[~reps["rep"].isin(list(tm.left))]
        reps["region"] = reps["manager"].map(dict(tm.manager_region)).fillna(config.PLACEHOLDER)
        calls = self.current_calls(period)
        for ct in CALL_TYPES:
            amounts = calls[(calls["level"] == "rep") & (calls["call_type"] == ct)]
            reps[ct] = reps["rep"].map(dict(zip(amounts["key"], amounts["amount"], strict=True)))

        parts = []
        for level in ("manager", "region"):
            part = _rollup_counts(reps, level).rename(columns={level: "key"})
            part.insert(0, "level", level)
            # a manager's region is the team map's (one per manager), a region's its own
            where = part["key"].map(dict(tm.manager_region)) if level == "manager" else part["key"]
            part.insert(2, "region", where.fillna(config.PLACEHOLDER))
            parts.append(part)
        has = reps[["commit", "best_case"]].notna()
        total = {"level": "total", "key": "total", "region": "", "commit": reps["commit"].sum(min_count=1),
                 "best_case": reps["best_case"].sum(min_count=1), "reps": len(reps),
                 "reps_with_commit": int(has["commit"].sum()),
                 "reps_without_commit": int((~has["commit"]).sum()),
                 "reps_with_best_case": int(has["best_case"].sum())}  # fmt: skip
        parts.append(pd.DataFrame([total]))
        out = pd.concat(parts, ignore_index=True)
        for ct in CALL_TYPES:
            own = calls[(calls["level"] != "rep") & (calls["call_type"] == ct)]
            lookup = {
                (lv, k): a for lv, k, a in zip(own["level"], own["key"], own["amount"], strict=True)
            }
            out[f"call_{ct}"] = [
                lookup.get((lv, k), np.nan) for lv, k in zip(out["level"], out["key"], strict=True)
            ]
        out = out.astype(
            {
                "commit": float,
                "best_case": float,
                "reps": int,
                "reps_with_commit": int,
                "reps_without_commit": int,
                "reps_with_best_case": int,
            }
        )
        return out[
            [
                "level",
                "key",
                "region",
                "commit",
                "best_case",
                "reps",
                "reps_with_commit",
                "reps_without_commit",
                "reps_with_best_case",
                "call_commit",
                "call_best_case",
            ]
        ]


def _rollup_counts(reps: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per ``key`` (manager or region): the reps' calls summed (NaN = no call) and the reps
    counted. One grouping key (a manager's region follows from the manager): no
    MultiIndex to build on every redraw."""
    groups = reps.groupby(key, sort=True)[["commit", "best_case"]]
    # no call at all: NaN, never 0
    sums, counts, size = groups.sum(min_count=1), groups.count(), groups.size()
    return pd.DataFrame(
        {
            key: sums.index,
            "commit": sums["commit"].to_numpy(),
            "best_case": sums["best_case"].to_numpy(),
            "reps": size.to_numpy(),
            "reps_with_commit": counts["commit"].to_numpy(),
            "reps_without_commit": (size - counts["commit"]).to_numpy(),
            "reps_with_best_case": counts["best_case"].to_numpy(),
        }
    )


# ----------------------------------------------------------------------------- calls by week


def calls_by_week(audit: pd.DataFrame, period: str, start: Any, weeks: int = 13) -> pd.DataFrame:
    """The call standing at the end of each week of a period, from the audit log.

    Parameters
    ----------
    audit : pandas.DataFrame
        :meth:`OverrideStore.audit` of the period (``at`` in UTC).
    period : str
        The fiscal period.
    start : date-like
        The period's first day; week ``w`` ends at the end of day ``start + 7w - 1``.
    weeks : int

    Returns
    -------
    pandas.DataFrame
        ``level, key, call_type, week, amount`` [USD]: the latest call of each node
        made by the end of the week (withdrawn: no row).

    Examples
    --------
    >>> audit = pd.DataFrame({
    ...     "id": [1, 2, 3], "level": "rep", "key": "R0001", "period": "FY2027-Q1",
    ...     "call_type": "commit", "new_value": [200000.0, 240000.0, None],
    ...     "at": pd.to_datetime(["2026-11-03 10:00", "2026-11-12 16:00", "2026-11-20 09:00"], utc=True),
    ... })
    >>> calls_by_week(audit, "FY2027-Q1", start="2026-11-01", weeks=3)
      level    key call_type  week    amount
    0   rep  R0001    commit     1  200000.0
    1   rep  R0001    commit     2  240000.0
    """
    log = audit[(audit["period"] == period) & audit["level"].isin(CALL_LEVELS)]
    log = log.sort_values("id")
    # OverrideStore.audit gives ``at`` in UTC (tz-aware); a CSV log or a start date may be naive.
    at = pd.to_datetime(log["at"], utc=True).dt.tz_localize(None)
    first = pd.Timestamp(start)
    first = (first.tz_convert("UTC").tz_localize(None) if first.tzinfo else first).normalize()
    rows = []
    for week in range(1, weeks + 1):
        end = first + pd.Timedelta(days=7 * week)
        upto = log[at < end]
        latest = upto.groupby(["level", "key", "call_type"], sort=True).tail(1)
        for r in latest[latest["new_value"].notna()].itertuples():
            rows.append((r.level, r.key, r.call_type, week, float(r.new_value)))
    return pd.DataFrame(rows, columns=["level", "key", "call_type", "week", "amount"])


def value_add(calls: pd.DataFrame, actual: Mapping, model: pd.DataFrame) -> pd.DataFrame:
    """Did the calls beat the model? Each weekly call scored against the actual.

    Parameters
    ----------
    calls : pandas.DataFrame
        :func:`calls_by_week` (one period).
    actual : mapping
        ``{(level, key): actual}`` bookings of the period [USD].
    model : pandas.DataFrame
        ``level, key, week, forecast``: the statistical forecast of the node made
        the same week [USD].

    Returns
    -------
    pandas.DataFrame
        One row per call: ``level, key, call_type, week, call, model, actual``,
        ``call_error`` and ``model_error`` (absolute, as a share of the actual),
        ``value_add`` (model error minus call error: above 0 the call beat the
        model) and ``bias`` ((call - actual) / actual: below 0 sandbagging,
        above 0 optimism) [ratio]. Nodes without an actual above 0 are left out.

    Examples
    --------
    >>> calls = pd.DataFrame({"level": "rep", "key": "R0001", "call_type": "commit",
    ...                       "week": [1, 2], "amount": [200000.0, 240000.0]})
    >>> model = pd.DataFrame({"level": "rep", "key": "R0001", "week": [1, 2],
    ...                       "forecast": [300000.0, 280000.0]})
    >>> scored = value_add(calls, {("rep", "R0001"): 250000.0}, model)
    >>> scored[["week", "call_error", "model_error", "value_add", "bias"]]
       week  call_error  model_error  value_add  bias
    0     1        0.20         0.20       0.00 -0.20
    1     2        0.04         0.12       0.08 -0.04
    """
    out = calls.merge(model, on=["level", "key", "week"], how="inner")
    out["actual"] = [
        float(actual.get((lv, k), np.nan)) for lv, k in zip(out["level"], out["key"], strict=True)
    ]
    out = out[out["actual"] > 0].rename(columns={"amount": "call", "forecast": "model"})
    out["call_error"] = (out["call"] - out["actual"]).abs() / out["actual"]
    out["model_error"] = (out["model"] - out["actual"]).abs() / out["actual"]
    out["value_add"] = out["model_error"] - out["call_error"]
    out["bias"] = (out["call"] - out["actual"]) / out["actual"]
    cols = ["level", "key", "call_type", "week", "call", "model", "actual", "call_error",
            "model_error", "value_add", "bias"]  # fmt: skip
    return out[cols].sort_values(["level", "key", "call_type", "week"]).reset_index(drop=True)
