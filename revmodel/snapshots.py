"""Dated snapshots of the opportunities, and pipeline history derived from them.

Without a history export, ``revmodel snapshot DIR`` stores the opportunities
as they stand (loaded and validated like every table) in ``DIR/snapshots/``:

- ``<YYYY-MM-DD>.parquet``: the canonical ``opportunities`` columns of that day;
- ``manifest.csv``: one line per snapshot (``date``, ``file``, ``rows``,
  ``open_rows``, ``sha256`` of the Parquet file, ``taken_at`` UTC time, ``source``
  data folder).

The store is append-only: a snapshot is created with exclusive creation, and a
second snapshot of the same date is refused with a message (never a silent
overwrite). A user who really wants to retake a day deletes its file and its
manifest line first.

:func:`history_from_snapshots` turns the snapshots into the canonical
``opportunity_history`` table: each deal's row of each snapshot, dated
``changed_at`` = the snapshot's date, keeping only the rows where the deal's
stage, amount or close date differ from the previous snapshot. A deal that was
open in one snapshot and is missing from the next is taken as ``lost`` on the
next snapshot's date (removed from the CRM), at its last amount and close date.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from revmodel import schema
from revmodel.errors import DataError, ParameterError

log = logging.getLogger(__name__)

#: Folder of the snapshots inside a data folder.
STORE_NAME = "snapshots"
MANIFEST = "manifest.csv"
MANIFEST_COLUMNS: tuple[str, ...] = (
    "date",
    "file",
    "rows",
    "open_rows",
    "sha256",
    "taken_at",
    "source",
)
_STATE = ("stage", "amount", "close_date")


@dataclass(frozen=True)
class Snapshot:
    """One stored snapshot."""

    day: pd.Timestamp
    path: Path
    rows: int
    open_rows: int


def store_dir(data_dir: str | Path) -> Path:
    """Where the snapshots of a data folder live: ``DIR/snapshots``."""
    return Path(data_dir) / STORE_NAME


def _as_day(as_of) -> pd.Timestamp:
    if as_of is None:
        return pd.Timestamp.today().normalize()
    try:
        day = pd.Timestamp(as_of)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"--as-of {as_of!r} is not a date: use YYYY-MM-DD") from exc
    if pd.isna(day):
        raise ParameterError("--as-of is empty: give a date YYYY-MM-DD")
    return day.normalize()


def save_snapshot(
    opportunities: pd.DataFrame, store: str | Path, as_of=None, source: str = ""
) -> Snapshot:
    """Store ``opportunities`` as the snapshot of ``as_of`` (default today).

    Parameters
    ----------
    opportunities : pandas.DataFrame
        Canonical opportunities (as :func:`revmodel.sources.load` returns them).
    store : str or Path
        Snapshot folder (created if missing).
    as_of : date-like, optional
        The snapshot's date [date]; default today.
    source : str
        Where the opportunities came from, written to the manifest.

    Raises
    ------
    ParameterError
        If a snapshot of that date is already stored.
    """
    day = _as_day(as_of)
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    path = store / f"{day:%Y-%m-%d}.parquet"
    cols = list(schema.OPPORTUNITIES.column_names)
    frame = opportunities.reindex(columns=cols).reset_index(drop=True)
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    data = buf.getvalue()
    try:
        with open(path, "xb") as fh:  # exclusive: never overwrite a stored day
            fh.write(data)
    except FileExistsError:
        raise ParameterError(
            f"a snapshot of {day:%Y-%m-%d} is already stored ({path}); snapshots are never "
            "overwritten. Pass --as-of for another date, or delete that file and its line in "
            f"{store / MANIFEST} to retake it."
        ) from None
    open_rows = int(frame["stage"].isin(schema.OPEN_STAGES).sum())
    _append_manifest(
        store,
        {
            "date": f"{day:%Y-%m-%d}",
            "file": path.name,
            "rows": len(frame),
            "open_rows": open_rows,
            "sha256": hashlib.sha256(data).hexdigest(),
            "taken_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "source": source,
        },
    )
    log.info("snapshot %s: %d opportunities (%d open)", path, len(frame), open_rows)
    return Snapshot(day, path, len(frame), open_rows)


def _append_manifest(store: Path, line: dict) -> None:
    path = store / MANIFEST
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(line)


def take_snapshot(
    data_dir: str | Path, mapping: str | Path | None = None, as_of=None
) -> tuple[Snapshot, str]:
    """``revmodel snapshot DIR``: load the opportunities of ``DIR`` and store them.

    Returns the snapshot and the load summary. Rows the loader quarantines are
    not in the snapshot (they are counted in the summary, as ``validate`` does).

    Raises
    ------
    DataError
        If no opportunity row can be used.
    ParameterError
        If a snapshot of that date is already stored.
    """
    from revmodel import sources

    day = _as_day(as_of)
    result = sources.load(data_dir, mapping=mapping, as_of=day)
    if result.status == 2:
        raise DataError(result.summary() + "\nno snapshot stored")
    snap = save_snapshot(
        result.tables["opportunities"], store_dir(data_dir), day, str(Path(data_dir).resolve())
    )
    return snap, result.summary()


def list_snapshots(store: str | Path) -> list[Path]:
    """Snapshot files of a store, oldest first."""
    store = Path(store)
    if not store.is_dir():
        return []
    return sorted(p for p in store.glob("*.parquet") if _is_dated(p.stem))


def _is_dated(stem: str) -> bool:
    try:
        dt.date.fromisoformat(stem)
    except ValueError:
        return False
    return True


def history_from_snapshots(store: str | Path) -> pd.DataFrame:
    """The canonical ``opportunity_history`` derived from the snapshots of a store.

    See the module docstring. Returns an empty table when there are no snapshots.
    """
    cols = list(schema.OPPORTUNITY_HISTORY.column_names)
    frames = []
    paths = list_snapshots(store)
    for path in paths:
        snap = pd.read_parquet(path, columns=["opportunity_id", *_STATE])
        snap.insert(1, "changed_at", pd.Timestamp(path.stem))
        frames.append(snap)
    if not frames:
        return pd.DataFrame(columns=cols)
    rows = pd.concat(frames, ignore_index=True)
    rows["opportunity_id"] = rows["opportunity_id"].astype("string")
    rows = rows.sort_values(["opportunity_id", "changed_at"], kind="stable")
    rows = pd.concat([rows, _removed(rows, [pd.Timestamp(p.stem) for p in paths])])
    rows = rows.sort_values(["opportunity_id", "changed_at"], kind="stable")
    prev = rows.groupby("opportunity_id")[list(_STATE)].shift()
    same = pd.Series(True, index=rows.index)
    for c in _STATE:
        same &= (rows[c] == prev[c]) | (rows[c].isna() & prev[c].isna())
    first = ~rows["opportunity_id"].duplicated()
    out = rows[first | ~same].reset_index(drop=True)
    out["forecast_category"] = pd.Series(pd.NA, index=out.index, dtype="string")
    return out[cols]


def _removed(rows: pd.DataFrame, days: list[pd.Timestamp]) -> pd.DataFrame:
    """A ``lost`` row for each deal open in a snapshot and missing from the next one."""
    if len(days) < 2:
        return rows.iloc[:0]
    nxt = dict(zip(days[:-1], days[1:], strict=True))
    present = set(zip(rows["opportunity_id"], rows["changed_at"], strict=True))
    open_rows = rows[rows["stage"].isin(schema.OPEN_STAGES) & rows["changed_at"].isin(nxt)]
    following = open_rows["changed_at"].map(nxt)
    gone = [
        (oid, day) not in present
        for oid, day in zip(open_rows["opportunity_id"], following, strict=True)
    ]
    lost = open_rows[gone].copy()
    lost["changed_at"] = following[gone]
    lost["stage"] = "lost"
    return lost
