"""Load CRM/ERP exports into the canonical tables, validate them, quarantine bad rows.

A data folder holds one file per table, named after it (``accounts``, ``reps``,
``opportunities``, ``invoices``, ``subscriptions``) with a ``.csv``,
``.parquet`` or ``.xlsx`` suffix; only ``opportunities`` is required. A
mapping file (YAML, ``--mapping FILE``, or ``mapping.yaml`` inside the data
folder) names other files and maps the export's own columns and values onto
the canonical schema of :mod:`revmodel.schema`::

    tables:
      opportunities:
        file: pipeline_export.csv        # relative to the data folder
        sheet: Pipeline                  # .xlsx only: sheet name; default the first sheet
        columns: {opportunity_id: Id, stage: StageName, amount: Amount, close_date: CloseDate}
        values: {stage: {Closed Won: won, Closed Lost: lost}}
        constants: {type: new}
        date_format: null                # per table, overrides the one below
    date_format: null                    # e.g. "%d/%m/%Y"
    segment_bands: null                  # e.g. [[SMB, 0, 200], [Mid-Market, 200, 2000], [Enterprise, 2000, null]]

Rules the loader follows, in the order it applies them:

- CSV files are read as UTF-8 (with or without a byte-order mark), falling back
  to latin-1; the delimiter (``,`` ``;`` tab ``|``) is taken from the header line.
  Every cell is read as text and stripped; an empty cell is missing (``NA`` is
  a value, not a missing marker: it is also North America).
- Columns the mapping does not name are matched to canonical names ignoring
  case, spaces and punctuation (``Close Date`` is ``close_date``). Other
  columns are ignored and listed in the report.
- A table whose key column is absent and not referenced by other tables
  (opportunities, invoices, subscriptions) gets a generated key
  ``"<file>:<row>"``, e.g. ``"orders.csv:2"`` for the first data row, so a
  plain orders export (date, segment, region, amount) loads with a mapping of
  ``close_date``, ``amount`` and ``constants: {stage: won}``.
- Stage and type values are matched ignoring case after the value mapping.
- Dates: ISO (``2026-03-31``, also with a time) is always understood. Without
  a ``date_format``, day/month order of slashed dates (``31/03/2026``) is
  inferred from the column (a first number above 12 means day first); a column
  where it cannot be told is an error asking for ``date_format``; a column
  mixing ISO and slashed dates keeps its majority format and quarantines the
  other rows as ambiguous. With a ``date_format``, dates parse with it (ISO
  still accepted).
- Accounts without a ``segment`` get one from ``employees`` and the segment
  bands (the mapping's, else :data:`revmodel.config.SEGMENT_BANDS`).
- Optional columns absent from an export are kept, all missing, so every table
  has every canonical column in schema order.

Validation runs a pandera ``DataFrameSchema`` built from :mod:`revmodel.schema`
lazily (all failures collected) over the parsed tables. Each rejected row goes
to ``<quarantine_dir>/<table>.csv`` (columns ``file, row, column, value,
reason``; one line per problem, ``row`` numbered as in a spreadsheet, header =
row 1). Rows read = rows accepted + rows quarantined, for every table.
A reference (``rep_id``, ``account_id``, ``owner_rep_id``) is checked against
every key read from the reps or accounts file, so a quarantined rep does not
cascade into its deals. Files that cannot be used at all (missing, empty,
unreadable, a required column absent, a bad mapping) raise
:class:`revmodel.errors.DataError` naming the file, column and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc

from revmodel import config, detect, formatting, readers, schema
from revmodel.errors import DataError
from revmodel.limits import Limits, cube_size_problem
from revmodel.readers import Export, SheetMissing, Unusable, read_export
from revmodel.yamlio import _TEXT as _TextLoader  # noqa: F401 - the mapping loader, for tests
from revmodel.yamlio import load_yaml

#: File suffixes read, in order of preference.
SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".xlsx")
#: Columns of a quarantine file.
QUARANTINE_COLUMNS: tuple[str, ...] = ("file", "row", "column", "value", "reason")
#: What to do, per rule, shown after a problem line.
HINTS: dict[str, str] = {
    "mixed": "mixed formats are ambiguous: set date_format in a mapping file",
    "duplicate_key": "the first is kept",
}
#: Mapping files picked up from the data folder when no ``--mapping`` is given.
MAPPING_NAMES: tuple[str, ...] = ("mapping.yaml", "mapping.yml")
#: Tables whose key may be generated from file and row (nothing references them).
GENERATED_KEY_TABLES: frozenset[str] = frozenset({"opportunities", "invoices", "subscriptions"})
#: Reference columns: (table, column) -> referenced table.
REFERENCES: dict[tuple[str, str], str] = {
    ("accounts", "owner_rep_id"): "reps",
    ("opportunities", "account_id"): "accounts",
    ("opportunities", "rep_id"): "reps",
    ("invoices", "account_id"): "accounts",
    ("subscriptions", "account_id"): "accounts",
    ("subscriptions", "rep_id"): "reps",
}
#: Optional tables not listed as "not provided": pipeline history comes from snapshots without it.
UNLISTED_WHEN_MISSING: frozenset[str] = frozenset({"opportunity_history"})
#: Number columns that must not be negative.
NON_NEGATIVE: frozenset[tuple[str, str]] = frozenset(
    {("accounts", "employees"), ("reps", "ramp_months"), ("subscriptions", "arr")}
)
#: Required columns whose values may be missing on some rows (amount: only won deals need one).
MAY_BE_EMPTY: frozenset[tuple[str, str]] = frozenset(
    {("opportunities", "amount"), ("opportunity_history", "amount")}
)
#: Pandas dtype of each schema type in a loaded table.
DTYPES: dict[str, str] = {
    "str": "str",
    "float": "float64",
    "int": "float64",
    "date": "datetime64[ns]",
}

_MAPPING_KEYS = ("tables", "date_format", "segment_bands", "currency")
_TABLE_KEYS = ("file", "sheet", "header_row", "columns", "values", "constants", "date_format")
_STAGE_HINTS = (
    ("won", "won"),
    ("win", "won"),
    ("lost", "lost"),
    ("los", "lost"),
    ("negot", "negotiation"),
    ("propos", "proposal"),
    ("quot", "proposal"),
    ("qualif", "qualification"),
    ("prospect", "prospecting"),
    ("lead", "prospecting"),
)


class Problem(NamedTuple):
    """One kind of problem found in a table.

    ``reason`` reads after the count: ``f"{count} {reason}"``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "opportunities.csv").write_text(
    ...     "opportunity_id,close_date,amount,stage\\n"
    ...     "o1,2026-01-15,100,won\\n"
    ...     "o1,2026-01-16,200,won\\n"
    ... )
    >>> result = load(folder, as_of="2026-03-01")
    >>> problem = result.reports["opportunities"].problems[0]
    >>> f"{problem.count} {problem.reason}", problem.column
    ('1 row repeating an earlier opportunity_id', 'opportunity_id')
    """

    column: str
    reason: str
    count: int
    example: str = ""
    hint: str = ""


@dataclass
class TableReport:
    """What happened to one table.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "opportunities.csv").write_text(
    ...     "opportunity_id,close_date,amount,stage\\n"
    ...     "o1,2026-01-15,100,won\\n"
    ...     "o1,2026-01-16,200,won\\n"
    ... )
    >>> result = load(folder, as_of="2026-03-01")
    >>> report = result.reports["opportunities"]
    >>> report.rows_read, report.rows_accepted, report.rows_quarantined
    (2, 1, 1)
    """

    table: str
    file: str
    encoding: str | None
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    quarantine_file: Path | None = None
    #: Extra lines shown under the problems (e.g. a mapping snippet to add).
    advice: list[str] = field(default_factory=list)
    #: Values of optional columns blanked (the rows are accepted).
    values_blanked: int = 0
    blanked_file: Path | None = None
    #: Rows below the data that are not data, as (row, text); not counted as rows read.
    footers: list[tuple[int, str]] = field(default_factory=list)
    #: The currency the amounts are written in (from symbols or codes), if one.
    currency_seen: str | None = None


@dataclass
class LoadResult:
    """Canonical tables, per-table reports and quarantined rows of one data folder.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "opportunities.csv").write_text(
    ...     "opportunity_id,close_date,amount,stage\\n"
    ...     "o1,2026-01-15,100,won\\n"
    ...     "o1,2026-01-16,200,won\\n"
    ... )
    >>> result = load(folder, as_of="2026-03-01")
    >>> result.tables["opportunities"]["amount"].tolist(), result.status  # 1: usable, rows kept out
    ([100.0], 1)
    >>> result.quarantine["opportunities"]["row"].tolist()  # spreadsheet row, header = 1
    [3]
    """

    tables: dict[str, pd.DataFrame]
    reports: dict[str, TableReport]
    quarantine: dict[str, pd.DataFrame]
    mapping_file: Path | None = None
    missing_tables: tuple[str, ...] = ()
    #: Blanked values per table (columns ``file, row, column, value, reason, action``).
    blanked: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: ISO 4217 code of the amounts: the mapping's ``currency``, else the one the
    #: amounts are written in (``€``, ``EUR``), else ``None`` (use the parameters').
    #: The cube's ``currency`` attribute and every label read it from here.
    currency: str | None = None
    currency_from_mapping: bool = False

    @property
    def status(self) -> int:
        """0 clean, 1 usable with quarantined rows or blanked values, 2 unusable.

        Unusable: no opportunity accepted. Files that cannot be used at all
        raise :class:`DataError` from :func:`load` instead of returning a result.
        """
        opp = self.reports.get("opportunities")
        if opp is None or opp.rows_accepted == 0:
            return 2
        issues = any(r.rows_quarantined or r.values_blanked for r in self.reports.values())
        return 1 if issues else 0

    def summary(self) -> str:
        """A readable per-table summary, as ``revmodel validate`` prints it."""
        lines: list[str] = []
        if self.mapping_file is not None:
            lines.append(f"mapping: {self.mapping_file}")
        if self.currency is not None:
            how = "the mapping's currency" if self.currency_from_mapping else "as the amounts show"
            lines.append(f"currency: {self.currency} ({how})")
        elif self.status != 2:
            lines.append(
                f"currency: {config.CURRENCY}, assumed (the amounts show no currency and no "
                "mapping sets one); if they are in another, set currency: in a mapping file"
            )
        for rep in self.reports.values():
            lines.extend(_report_lines(rep))
        if self.missing_tables:
            lines.append(f"not provided (optional): {', '.join(self.missing_tables)}")
        total = sum(r.rows_read for r in self.reports.values())
        bad = sum(r.rows_quarantined for r in self.reports.values())
        blanked = sum(r.values_blanked for r in self.reports.values())
        status = self.status
        if status == 0:
            lines.append(f"result: clean, all {_count(total, 'row')} accepted")
        elif status == 1:
            tables = sum(1 for r in self.reports.values() if r.rows_quarantined)
            where = _quarantine_folder(self.reports.values())
            what = (
                f"{bad:,} of {_count(total, 'row')} quarantined in {_count(tables, 'table')}"
                if bad
                else f"all {_count(total, 'row')} accepted"
            )
            if blanked:
                what += f", {_count(blanked, 'value')} of optional columns blanked"
            lines.append(
                f"result: usable, {what}; fix them in the export"
                + (f" (see {where})" if where else "")
                + " and run again to include them"
            )
        else:
            opp = self.reports["opportunities"]
            lines.append(
                f"result: unusable, none of the {_count(opp.rows_read, 'opportunity row')} "
                f"in {opp.file} was accepted; fix the problems above and run again"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# public API


def load(
    data_dir: str | Path,
    mapping: str | Path | None = None,
    quarantine_dir: str | Path | None = None,
    as_of: str | pd.Timestamp | None = None,
    segment_bands: Sequence[tuple[str, float, float]] | None = None,
    limits: Limits | None = None,
    only: Collection[str] | None = None,
    references: References | None = None,
) -> LoadResult:
    """Load, validate and quarantine the exports of a data folder.

    Parameters
    ----------
    data_dir : str or Path
        Folder holding ``opportunities.*`` and optionally the other tables.
    mapping : str or Path, optional
        Mapping YAML (see the module docstring). Default: ``mapping.yaml`` in
        ``data_dir`` when present, else none.
    quarantine_dir : str or Path, optional
        Folder for ``<table>.csv`` files of rejected rows. ``None`` writes nothing
        (the rows are still in ``LoadResult.quarantine``).
    as_of : str or Timestamp, optional
        Today's date [date]; won deals closing after it are rejected.
        Default ``pd.Timestamp.today()``.
    segment_bands : sequence of (name, lower, upper), optional
        Employee bands [employees], lower inclusive, upper exclusive; override
        the mapping's and :data:`revmodel.config.SEGMENT_BANDS`.
    limits : Limits, optional
        File, row, cell, date-window and amount limits; default :class:`Limits()`.
    only : collection of str, optional
        Read only these tables (the others' files are not looked for).
    references : References, optional
        Keys of the reps and accounts read elsewhere (:func:`references`): the
        references of the tables read are checked against them, as if those
        files were in the folder.

    Returns
    -------
    LoadResult
        Accepted rows of each table found (canonical columns, schema order),
        reports, quarantined rows, blanked values, and ``currency`` (the
        mapping's ISO 4217 code, else the one the amounts are written in,
        else ``None``).

    Raises
    ------
    DataError
        When the data cannot be used: no opportunities file, a missing, empty
        or unreadable file, a required column absent, or a bad mapping file.

    Examples
    --------
    An orders export with its own column names, and one row that cannot be trusted:

    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "orders.csv").write_text(
    ...     "Id;Closed;Value;Status\\n"
    ...     "A-1;2026-01-15;1200,50 €;Won\\n"
    ...     "A-2;2026-02-03;800 €;Won\\n"
    ...     "A-3;someday;50 €;Won\\n"
    ... )
    >>> _ = (folder / "mapping.yaml").write_text(
    ...     "tables:\\n"
    ...     "  opportunities:\\n"
    ...     "    file: orders.csv\\n"
    ...     "    columns: {opportunity_id: Id, close_date: Closed, amount: Value, stage: Status}\\n"
    ... )
    >>> result = load(folder, as_of="2026-03-01")
    >>> result.tables["opportunities"]["amount"].tolist(), result.currency
    ([1200.5, 800.0], 'EUR')
    >>> result.quarantine["opportunities"][["row", "column", "value"]].to_dict("records")
    [{'row': 4, 'column': 'close_date', 'value': 'someday'}]
    """
    data_dir = _data_folder(data_dir)
    mapping_path = Path(mapping) if mapping is not None else _find_mapping(data_dir)
    spec = read_mapping(mapping_path) if mapping_path is not None else MappingSpec()
    bands = tuple(segment_bands) if segment_bands is not None else spec.segment_bands
    as_of_ts = pd.Timestamp.today() if as_of is None else pd.Timestamp(as_of)
    as_of_ts = as_of_ts.normalize()
    qdir = Path(quarantine_dir) if quarantine_dir is not None else None
    limits = limits or Limits()

    paths, raws = _read_tables(data_dir, spec, limits, only)
    if qdir is not None:
        _check_quarantine_dir(qdir, paths)
    refs = references or References({}, {})
    labels = {**refs.labels, **{n: r.label for n, r in raws.items()}}
    ctx = _Context(spec, bands, as_of_ts, {**refs.ids, **_known_ids(raws)}, labels, limits)
    checked = _validate_tables(raws, ctx)
    if qdir is not None:
        _write_quarantine(qdir, checked)
    problem = cube_size_problem(dimension_sizes(checked.tables, as_of_ts))
    if problem is not None:
        raise DataError(f"{problem} (checked by validate as by cube)")
    missing = tuple(
        n
        for n in schema.TABLES
        if n not in raws and n not in UNLISTED_WHEN_MISSING and (only is None or n in only)
    )
    return LoadResult(
        checked.tables,
        checked.reports,
        checked.quarantine,
        mapping_path,
        missing,
        checked.blanked,
        _currency(spec, checked.reports),
        spec.currency is not None,
    )


def _data_folder(data_dir: str | Path) -> Path:
    """The data folder as a Path; a clear error for a file or a folder that is not there."""
    data_dir = Path(data_dir)
    if data_dir.is_file():
        raise DataError(
            f"{data_dir} is a file; pass the folder holding your exports "
            f"(e.g. {data_dir.parent}), or name the file in a mapping file"
        )
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} not found; pass the folder holding your exports")
    return data_dir


def _read_tables(
    data_dir: Path, spec: MappingSpec, limits: Limits, only: Collection[str] | None = None
) -> tuple[dict[str, Path], dict[str, _Raw]]:
    """Find and read every table's file (of ``only``, if given); one DataError listing every
    file that cannot be used."""
    paths, errors = _locate(data_dir, spec, limits, only)
    raws: dict[str, _Raw] = {}
    for name, path in _progress(paths.items(), "read", len(paths)):
        try:
            raws[name] = _read_table(name, path, data_dir, spec, limits)
        except _Unusable as exc:
            errors.append(str(exc))
    if errors:
        raise DataError(_join_errors(errors))
    return paths, raws


def _progress(items: Iterable, step: str, total: int) -> Iterable:
    """``items`` with a progress bar of the tables on a terminal (none in a log or a test)."""
    from revmodel import progress

    return progress.bar(items, desc=step, unit="table", total=total)


@dataclass(frozen=True)
class References:
    """The keys of the tables others refer to (reps, accounts) and how messages name
    their files: read once by :func:`references` for a load whose large table comes
    in parts, so that each part is checked against them without reading them again.

    Examples
    --------
    >>> import pyarrow
    >>> refs = References({"reps": pyarrow.array(["R1"], pyarrow.large_string())},
    ...                   {"reps": "Users.csv"})
    >>> sources_rule = _column_rules("opportunities", "rep_id", refs.ids, refs.labels)[0]
    >>> sources_rule.reason
    'rep_id not in Users.csv'
    """

    ids: Mapping[str, pyarrow.Array]
    labels: Mapping[str, str]


def references(
    data_dir: str | Path, mapping: str | Path | None = None, limits: Limits | None = None
) -> References:
    """The keys read from the reps and accounts files of ``data_dir`` (rejected rows'
    keys included, as :func:`load` checks references), without validating them.

    Parameters
    ----------
    data_dir : str or Path
        The data folder.
    mapping : str or Path, optional
        Mapping YAML, as :func:`load` takes it.
    limits : Limits, optional
        File limits; default :class:`Limits()`.

    Returns
    -------
    References
        The distinct keys of each of the two files present, and their labels.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "reps.csv").write_text("rep_id,rep_name\\nR1,Ana\\nR2,Ben\\nR1,Ana\\n")
    >>> refs = references(folder)
    >>> sorted(refs.ids["reps"].to_pylist()), refs.labels
    (['R1', 'R2'], {'reps': 'reps.csv'})
    """
    data_dir = _data_folder(data_dir)
    mapping_path = Path(mapping) if mapping is not None else _find_mapping(data_dir)
    spec = read_mapping(mapping_path) if mapping_path is not None else MappingSpec()
    _, raws = _read_tables(data_dir, spec, limits or Limits(), ("accounts", "reps"))
    return References(_known_ids(raws), {n: r.label for n, r in raws.items()})


def _known_ids(raws: Mapping[str, _Raw]) -> dict[str, pyarrow.Array]:
    """Every key read from the accounts and reps files, quarantined rows included."""
    return {
        name: _id_set(_names(_as_text(raws[name].frame[schema.TABLES[name].key])).dropna())
        for name in ("accounts", "reps")
        if name in raws
    }


def _id_set(ids: Iterable[str]) -> pyarrow.Array:
    """Distinct ids as Arrow text: the value set a reference is looked up in."""
    if isinstance(ids, pd.Series):
        arr = pyarrow.array(ids, type=pyarrow.large_string(), from_pandas=True)
    else:
        arr = pyarrow.array([str(i) for i in ids], type=pyarrow.large_string())
    return pc.unique(pc.drop_null(arr))


def _known(values: pd.Series, ids: pyarrow.Array) -> pd.Series:
    """Missing, or one of ``ids`` (Arrow's hash lookup, no Python set)."""
    arr = pyarrow.array(values, type=pyarrow.large_string(), from_pandas=True)
    found = pc.fill_null(pc.is_in(arr, value_set=ids), False)
    return values.isna() | pd.Series(found.to_numpy(zero_copy_only=False), index=values.index)


@dataclass(frozen=True)
class _Checked:
    """The validated tables of a load, by table name."""

    tables: dict[str, pd.DataFrame]
    reports: dict[str, TableReport]
    quarantine: dict[str, pd.DataFrame]
    blanked: dict[str, pd.DataFrame]


def _validate_tables(raws: Mapping[str, _Raw], ctx: _Context) -> _Checked:
    """Validate every table read; one DataError listing every table that cannot be used."""
    checked = _Checked({}, {}, {}, {})
    errors: list[str] = []
    for name, raw in _progress(raws.items(), "validate", len(raws)):
        try:
            table, report, bad, blank = _validate(raw, ctx)
        except _Unusable as exc:
            errors.append(str(exc))
            continue
        checked.tables[name], checked.reports[name] = table, report
        checked.quarantine[name], checked.blanked[name] = bad, blank
    if errors:
        raise DataError(_join_errors(errors))
    return checked


def _write_quarantine(qdir: Path, checked: _Checked) -> None:
    """Write each table's rejected rows and blanked values; the reports name the files."""
    for name in checked.quarantine:
        report = checked.reports[name]
        report.quarantine_file = _write_lines(qdir / f"{name}.csv", checked.quarantine[name])
        report.blanked_file = _write_lines(qdir / f"{name}.blanked.csv", checked.blanked[name])


def dimension_sizes(tables: Mapping[str, pd.DataFrame], as_of: pd.Timestamp) -> dict[str, int]:
    """Upper bounds of the cube's dimension sizes for these tables.

    Members are the distinct labels found in any table plus one placeholder;
    months run from the first date to ``as_of`` plus two years of pipeline.
    :func:`revmodel.limits.cube_size_problem` decides whether they fit.

    Parameters
    ----------
    tables : mapping of str to pd.DataFrame
        Canonical tables.
    as_of : pd.Timestamp
        Today's date [date].

    Returns
    -------
    dict of str to int
        ``segment``, ``region``, ``rep`` and ``month`` sizes.

    Examples
    --------
    >>> import pandas as pd
    >>> opps = pd.DataFrame({"rep_id": ["r1", "r2"], "segment": ["SMB", "SMB"],
    ...                      "region": ["EMEA", None],
    ...                      "close_date": pd.to_datetime(["2026-01-10", "2026-02-20"])})
    >>> dimension_sizes({"opportunities": opps}, pd.Timestamp("2026-03-01"))  # + placeholders
    {'segment': 2, 'region': 2, 'rep': 3, 'month': 27}
    """

    def distinct(column: str) -> int:
        found: set[str] = set()
        for frame in tables.values():
            if column in frame:
                found.update(frame[column].dropna().unique().tolist())
        return len(found) + 1

    reps: set[str] = set()
    for table, col in (
        ("reps", "rep_id"),
        ("opportunities", "rep_id"),
        ("subscriptions", "rep_id"),
    ):
        if table in tables:
            reps.update(tables[table][col].dropna().unique().tolist())
    firsts = [
        frame[c].min()
        for frame in tables.values()
        for c in ("close_date", "start_date", "invoice_date")
        if c in frame and frame[c].notna().any()
    ]
    first = min(firsts) if firsts else as_of
    months = (as_of.year - first.year) * 12 + as_of.month - first.month + 1 + 24
    return {
        "segment": distinct("segment"),
        "region": distinct("region"),
        "rep": len(reps) + 1,
        "month": max(months, 1),
    }


def read_mapping(path: str | Path) -> MappingSpec:
    """Read and check a mapping YAML file.

    Parameters
    ----------
    path : str or Path
        The mapping file.

    Returns
    -------
    MappingSpec
        The checked mapping.

    Raises
    ------
    DataError
        Naming the file and key of every problem found.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "mapping.yaml"
    >>> _ = path.write_text("tables:\\n  opportunities:\\n    columns: {amount: Value}\\n")
    >>> read_mapping(path).tables["opportunities"].columns
    {'amount': 'Value'}
    >>> _ = path.write_text("tabels: {}\\n")
    >>> read_mapping(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    revmodel.errors.DataError: ...mapping.yaml: unknown key 'tabels'; use tables, date_format, segment_bands, currency
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mapping file {path} not found; check the path given to --mapping")
    doc = load_yaml(path, text_scalars=True, error=DataError)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected keys {', '.join(_MAPPING_KEYS)} at the top level")
    errors: list[str] = []
    for key in doc:
        if key not in _MAPPING_KEYS:
            errors.append(f"{path}: unknown key '{key}'; use {', '.join(_MAPPING_KEYS)}")
    tables: dict[str, TableMapping] = {}
    raw_tables = doc.get("tables") or {}
    if not isinstance(raw_tables, dict):
        errors.append(f"{path}: tables must map table names to settings")
        raw_tables = {}
    for tname, entry in raw_tables.items():
        where = f"{path}: tables.{tname}"
        if tname not in schema.TABLES:
            errors.append(f"{where} is not a table; use one of {', '.join(schema.TABLES)}")
            continue
        tables[tname] = _table_mapping(where, schema.TABLES[tname], entry or {}, errors)
    date_format = doc.get("date_format")
    if date_format is not None:
        _check_date_format(f"{path}: date_format", date_format, errors)
    bands = None
    if doc.get("segment_bands") is not None:
        try:
            bands = parse_segment_bands(doc["segment_bands"], f"{path}: segment_bands")
        except DataError as exc:
            errors.append(str(exc))
    currency = doc.get("currency")
    if currency is not None:
        currency = str(currency).strip().upper()
        if currency not in schema.CURRENCIES:
            errors.append(
                f"{path}: currency '{doc['currency']}' is not an ISO 4217 code; "
                "use a code like USD, EUR, GBP"
            )
    if errors:
        raise DataError(_join_errors(errors))
    return MappingSpec(path, tables, date_format, bands, currency)


def parse_segment_bands(
    value: Any, where: str = "segment_bands"
) -> tuple[tuple[str, float, float], ...]:
    """Segment bands of a mapping file or option (:func:`revmodel.schema.segment_bands`).

    Parameters
    ----------
    value : str or sequence
        ``"name:lower:upper,..."`` (upper may be empty: no bound) or a list of
        ``[name, lower, upper]`` [employees].
    where : str
        Where the value came from, named in the error.

    Returns
    -------
    tuple of (str, float, float)
        The bands, lower inclusive and upper exclusive [employees].

    Examples
    --------
    >>> parse_segment_bands("SMB:0:200,Enterprise:200:")
    (('SMB', 0.0, 200.0), ('Enterprise', 200.0, inf))
    """
    return schema.segment_bands(value, where, error=DataError)


# ---------------------------------------------------------------------------
# mapping


@dataclass(frozen=True)
class TableMapping:
    """The mapping of one table: its file, sheet, columns, values and constants.

    Examples
    --------
    >>> TableMapping(file="orders.csv", columns={"amount": "Value"}).columns
    {'amount': 'Value'}
    """

    file: str | None = None
    sheet: str | int | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)
    date_format: str | None = None
    #: Spreadsheet row (1-based) of the header; default found from the rows.
    header_row: int | None = None


@dataclass(frozen=True)
class MappingSpec:
    """A checked mapping file (see the module docstring).

    Examples
    --------
    >>> spec = MappingSpec(tables={"opportunities": TableMapping(file="orders.csv")})
    >>> spec.tables["opportunities"].file, spec.currency
    ('orders.csv', None)
    """

    path: Path | None = None
    tables: Mapping[str, TableMapping] = field(default_factory=dict)
    date_format: str | None = None
    segment_bands: tuple[tuple[str, float, float], ...] | None = None
    #: ISO 4217 code of the exports' amounts, or ``None`` when not given.
    currency: str | None = None


def _table_mapping(where: str, table: schema.Table, entry: Any, errors: list[str]) -> TableMapping:
    if not isinstance(entry, dict):
        errors.append(f"{where} must hold keys like file, columns, values, constants")
        return TableMapping()
    for key in entry:
        if key not in _TABLE_KEYS:
            errors.append(f"{where}: unknown key '{key}'; use {', '.join(_TABLE_KEYS)}")
    allowed = ", ".join(table.column_names)

    def section(key: str) -> dict:
        value = entry.get(key) or {}
        if not isinstance(value, dict):
            errors.append(f"{where}.{key} must map canonical column names to values")
            return {}
        out = {}
        for col, v in value.items():
            if col not in table.column_names:
                errors.append(
                    f"{where}.{key}.{col} is not a column of {table.name}; use one of {allowed}"
                )
            else:
                out[col] = v
        return out

    columns = {c: str(v) for c, v in section("columns").items()}
    values: dict[str, dict[str, str]] = {}
    for col, pairs in section("values").items():
        if not isinstance(pairs, dict):
            errors.append(
                f"{where}.values.{col} must map your values to canonical ones, e.g. {{Closed Won: won}}"
            )
            continue
        values[col] = {_yaml_text(k): _yaml_text(v) for k, v in pairs.items()}
    constants = {c: _yaml_text(v) for c, v in section("constants").items()}
    for col in set(columns) & set(constants):
        errors.append(f"{where}: {col} is both in columns and in constants; keep one")
    date_format = entry.get("date_format")
    if date_format is not None:
        _check_date_format(f"{where}.date_format", date_format, errors)
    file = entry.get("file")
    sheet = entry.get("sheet")
    if sheet is not None:
        sheet = str(sheet).strip()
        if re.fullmatch(r"\d+", sheet) and len(sheet) < 4:
            sheet = int(sheet)  # a 0-based index; a sheet named "2024" stays a name
    header_row = entry.get("header_row")
    if header_row is not None:
        text = str(header_row).strip()
        if not re.fullmatch(r"[1-9]\d{0,5}", text):
            errors.append(
                f"{where}.header_row '{header_row}' is not a row number; give the spreadsheet "
                "row (1, 2, ...) the column names are on"
            )
            header_row = None
        else:
            header_row = int(text)
    return TableMapping(
        None if file is None else str(file),
        sheet,
        columns,
        values,
        constants,
        date_format,
        header_row,
    )


def _yaml_text(value: Any) -> str:
    return str(value).strip()


def _check_date_format(where: str, fmt: Any, errors: list[str]) -> None:
    if fmt in detect.SPECIAL_DATE_FORMATS:
        return
    probe = pd.Timestamp("2026-12-31")
    ok = isinstance(fmt, str)
    if ok:
        try:
            ok = pd.to_datetime(probe.strftime(fmt), format=fmt) == probe
        except (ValueError, TypeError):
            ok = False
    if not ok:
        errors.append(
            f"{where} '{fmt}' does not describe a full date; use strftime codes like "
            f"'%d/%m/%Y', or {', '.join(detect.SPECIAL_DATE_FORMATS)}"
        )


def _find_mapping(data_dir: Path) -> Path | None:
    for name in MAPPING_NAMES:
        if (data_dir / name).is_file():
            return data_dir / name
    return None


# ---------------------------------------------------------------------------
# reading


_Unusable = Unusable


@dataclass
class _Raw:
    """One table as read: canonical columns, text (or typed, from Parquet) values."""

    name: str
    label: str
    encoding: str | None
    frame: pd.DataFrame  # index = spreadsheet row number
    original: pd.DataFrame  # same, before value mapping (for quarantine values)
    notes: list[str]
    date_format: str | None
    export: Export | None = None
    #: Rows of formula cells with no saved value, by canonical column (.xlsx).
    formula_cells: dict[str, pd.Index] = field(default_factory=dict)

    @property
    def european(self) -> bool:
        """A ``;``-delimited export: numbers like ``1.234`` use the decimal comma."""
        return self.export is not None and self.export.delimiter == ";"


def _locate(
    data_dir: Path, spec: MappingSpec, limits: Limits, only: Collection[str] | None = None
) -> tuple[dict[str, Path], list[str]]:
    """Path of each table's file (of ``only``, if given), and the problems finding them."""
    by_lower: dict[str, Path] = {}
    for p in sorted(data_dir.iterdir()):
        if p.is_file():
            by_lower.setdefault(p.name.lower(), p)
    paths: dict[str, Path] = {}
    errors: list[str] = []
    for name, table in schema.TABLES.items():
        if only is not None and name not in only:
            continue
        tm = spec.tables.get(name)
        if tm is not None and tm.file is not None:
            path = data_dir / tm.file
            if len(Path(tm.file).name) > limits.max_name_chars:
                errors.append(
                    f"{spec.path}: tables.{name}.file names a file of {len(Path(tm.file).name):,} "
                    f"characters ('{tm.file[:40]}...'); the limit is {limits.max_name_chars}: "
                    "rename the file and the mapping"
                )
                continue
            if not path.is_file():
                errors.append(
                    f"{spec.path}: tables.{name}.file '{tm.file}' not found in {data_dir}/; "
                    "give the file name relative to the data folder"
                )
                continue
            if path.suffix.lower() not in SUFFIXES:
                errors.append(
                    f"{spec.path}: tables.{name}.file '{tm.file}' is not a "
                    f"{', '.join(SUFFIXES)} file; save the export in one of these formats"
                )
                continue
            paths[name] = path
            continue
        found = [by_lower[name + ext] for ext in SUFFIXES if name + ext in by_lower]
        if len(found) > 1:
            errors.append(
                f"both {' and '.join(p.name for p in found)} are in {data_dir}/; keep one, "
                f"or name the one to use in a mapping file (tables: {name}: file: ...)"
            )
        elif found:
            paths[name] = found[0]
        elif name + ".xls" in by_lower:
            errors.append(
                f"{by_lower[name + '.xls'].name} is in the old Excel format; save it as .xlsx or .csv"
            )
        elif table.required:
            errors.append(
                f"no {name} file in {data_dir}/: add {name}.csv (or .parquet, .xlsx), "
                f"or name your export in a mapping file (tables: {name}: file: ...)"
            )
    return paths, errors


def _label(path: Path, data_dir: Path) -> str:
    try:
        return path.relative_to(data_dir).as_posix()
    except ValueError:
        return str(path)


def _read_table(name: str, path: Path, data_dir: Path, spec: MappingSpec, limits: Limits) -> _Raw:
    label = _label(path, data_dir)
    tm = spec.tables.get(name, TableMapping())
    try:
        export = read_export(path, label, sheet=tm.sheet, header_row=tm.header_row, limits=limits)
    except SheetMissing as exc:
        which = (
            f"sheet number {exc.sheet} (counting from 0; its sheets"
            if isinstance(exc.sheet, int)
            else f"sheet '{exc.sheet}' (its sheets"
        )
        raise _Unusable(
            f"{label} has no {which}: {_list_names(exc.names)}); "
            f"fix tables: {name}: sheet: in the mapping file"
        ) from None
    frame = export.frame
    if frame.empty:
        raise _Unusable(
            f"{label} has a header but no rows; export it again with data"
            + ("" if name == "opportunities" else f", or remove it if you have no {name}")
        )
    canonical, notes, source_of = _apply_columns(name, frame, label, tm, spec)
    original = canonical.copy()
    for col, pairs in tm.values.items():
        if col in canonical:
            text = _as_text(canonical[col])
            canonical[col] = text.replace(pairs) if pairs else text
    date_format = tm.date_format if tm.date_format is not None else spec.date_format
    formulas = {
        col: export.formula_cells[src]
        for col, src in source_of.items()
        if src in export.formula_cells
    }
    return _Raw(
        name,
        label,
        export.encoding,
        canonical,
        original,
        export.notes + notes,
        date_format,
        export,
        formulas,
    )


def _apply_columns(
    name: str, frame: pd.DataFrame, label: str, tm: TableMapping, spec: MappingSpec
) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """Rename the export's columns to canonical ones, add constants and generated keys."""
    table = schema.TABLES[name]
    source_of: dict[str, str] = {}
    errors: list[str] = []
    for col, src in tm.columns.items():
        if src not in frame.columns:
            errors.append(
                f"{spec.path}: tables.{name}.columns.{col} names '{src}', which is not a column of "
                f"{label} (its columns: {_list_names(frame.columns)}); fix the name in the mapping"
            )
        else:
            source_of[col] = src
    used = set(source_of.values())
    normalised: dict[str, str] = {}
    for src in frame.columns:
        normalised.setdefault(_normalise(src), src)
    for col in table.column_names:
        if col in source_of or col in tm.constants:
            continue
        src = col if col in frame.columns else normalised.get(col)
        if src is not None and src not in used:
            source_of[col] = src
            used.add(src)
    if errors:
        raise _Unusable(_join_errors(errors))
    notes: list[str] = []
    out = pd.DataFrame(index=frame.index)
    for col in table.column_names:
        if col in source_of:
            out[col] = frame[source_of[col]]
        elif col in tm.constants:
            out[col] = pd.Series(tm.constants[col], index=frame.index, dtype="str")
    if table.key not in out and name in GENERATED_KEY_TABLES:
        out.insert(0, table.key, (label + ":" + frame.index.astype(str)).astype("str"))
        notes.append(f"{table.key} is not in the export; generated as '{label}:<row>'")
    missing = [c for c in table.required_columns if c not in out]
    if missing:
        cols = ", ".join(missing)
        where = f"tables: {name}: columns: {{{missing[0]}: YourColumn}}"
        raise _Unusable(
            f"{label} has no {'column' if len(missing) == 1 else 'columns'} {cols} (required); "
            f"its columns are {_list_names(frame.columns)}; rename the column in the export or "
            f"map it in a mapping file ({where})"
        )
    ignored = [c for c in frame.columns if c not in used]
    if ignored:
        notes.append(f"ignored columns: {_list_names(ignored)}")
    return out, notes, source_of


def _normalise(header: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", header.strip().lower()).strip("_")


def _list_names(names: Sequence[str], most: int = 8) -> str:
    names = list(names)
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _check_quarantine_dir(qdir: Path, paths: dict[str, Path]) -> None:
    sources = {p.resolve() for p in paths.values()}
    for name in schema.TABLES:
        if (qdir / f"{name}.csv").resolve() in sources:
            raise DataError(
                f"quarantine folder {qdir} holds your export {name}.csv; "
                "choose another folder with --quarantine"
            )


def _write_lines(path: Path, bad: pd.DataFrame) -> Path | None:
    """Write quarantined or blanked lines as CSV, formula-like text made inert."""
    qdir = path.parent
    if bad.empty:
        # a quarantine file left from an earlier run would describe rows now accepted
        if path.is_file():
            path.unlink()
        return None
    qdir.mkdir(parents=True, exist_ok=True)
    safe = bad.copy()
    for col in ("value", "column"):
        if col in safe:
            safe[col] = safe[col].astype("str").map(formatting.inert_text)
    safe.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------
# parsing


def _is_typed(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s)


def _as_text(s: pd.Series) -> pd.Series:
    """Values as stripped text; missing where empty. Whole floats print without '.0'."""
    if pd.api.types.is_bool_dtype(s):
        s = s.astype("str")
    elif pd.api.types.is_float_dtype(s):
        finite = s.dropna()
        if len(finite) and np.all(np.mod(finite, 1) == 0):
            s = s.astype("Int64")
    elif pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.strftime("%Y-%m-%d").astype("str")
    if not pd.api.types.is_string_dtype(s) or s.dtype == object:
        s = s.astype("str")
    arr = pyarrow.array(s, type=pyarrow.large_string(), from_pandas=True)
    if not readers.padded_or_empty(arr):
        return s if s.dtype == "str" else s.astype("str")
    arr = pc.utf8_trim_whitespace(arr)
    empty = pc.equal(pc.binary_length(arr), 0)
    arr = pc.if_else(empty, pyarrow.scalar(None, pyarrow.large_string()), arr)
    return pd.Series(_STR(arr.cast(pyarrow.large_string())), index=s.index)


def _STR(arr: pyarrow.Array) -> pd.api.extensions.ExtensionArray:  # noqa: N802
    """Arrow text as pandas' ``str`` dtype, without a copy."""
    return pd.arrays.ArrowStringArray(arr, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


@dataclass
class _Finding:
    """Rows failing one rule."""

    column: str
    rule: str
    rows: pd.Index
    singular: str
    plural: str
    reason: str | pd.Series  # per row when a Series indexed by row


@dataclass(frozen=True)
class _Context:
    """What validating one table needs from the whole load."""

    spec: MappingSpec
    bands: Sequence[tuple[str, float, float]] | None
    as_of: pd.Timestamp
    known_ids: Mapping[str, pyarrow.Array]
    labels: Mapping[str, str]
    limits: Limits


def _names(text: pd.Series) -> pd.Series:
    """Text normalised to Unicode NFC ('Zoë' typed two ways is one name), trimmed."""
    if readers.all_ascii(pyarrow.array(text, type=pyarrow.large_string(), from_pandas=True)):
        return text
    return text.str.normalize("NFC").str.strip()


_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}


def _currency_seen(text: pd.Series) -> str | None:
    """The one currency the amounts are written in (symbol or ISO code), if any."""
    if detect._cast_floats(text) is not None:
        return None  # plain numbers: no symbol, no code
    marked = text[detect.matches(text, r"[^0-9.,\s+\-eE]")]
    if marked.empty:
        return None
    sample = pd.Series(marked.unique()[:10_000], dtype="str")
    found = sample.str.extract(r"([$€£¥₹])|\b([A-Z]{3})\b")
    codes = set(found[0].dropna().map(_SYMBOLS)) | set(found[1].dropna())
    codes &= set(schema.CURRENCIES)
    return codes.pop() if len(codes) == 1 else None


def _currency(spec: MappingSpec, reports: Mapping[str, TableReport]) -> str | None:
    if spec.currency is not None:
        for rep in reports.values():
            if rep.currency_seen and rep.currency_seen != spec.currency:
                rep.notes.append(
                    f"amounts are written in {rep.currency_seen} but the mapping says "
                    f"currency: {spec.currency}; {spec.currency} is used"
                )
        return spec.currency
    seen = {r.currency_seen for r in reports.values() if r.currency_seen}
    return seen.pop() if len(seen) == 1 else None


def _parse_column(
    raw: _Raw, col: schema.Column, src: pd.Series, ctx: _Context
) -> tuple[pd.Series, list[detect.Issue], str | None]:
    """One canonical column typed: (values, issues, currency seen)."""
    limits = ctx.limits
    window = limits.date_window(ctx.as_of)
    if col.dtype == "str":
        values = _names(_as_text(src))
        if col.values:
            values = values.str.lower()
        return values, [], None
    if col.dtype in ("float", "int"):
        whole = col.dtype == "int"
        if pd.api.types.is_numeric_dtype(src) and not pd.api.types.is_bool_dtype(src):
            values, issues = detect.check_numbers(src, whole=whole, max_abs=limits.max_amount)
            return values, issues, None
        text = _as_text(src)
        values, issues = detect.parse_numbers(
            text, whole=whole, european_hint=raw.european, max_abs=limits.max_amount
        )
        seen = _currency_seen(text) if col.dtype == "float" else None
        return values, issues, seen
    if pd.api.types.is_datetime64_any_dtype(src):
        values, issues = detect.check_dates(src, window)
        return values, issues, None
    text = _as_text(src)
    try:
        values, issues = detect.parse_dates(text, raw.date_format, window)
    except detect.AmbiguousDates as exc:
        raise _Unusable(
            f"{raw.label} column {col.name}: dates like '{exc.value}' (row {exc.row}) could be "
            "day/month or month/day; set date_format: '%d/%m/%Y' or '%m/%d/%Y' in a mapping file"
        ) from None
    return values, issues, None


def _parse(raw: _Raw, ctx: _Context) -> tuple[pd.DataFrame, list[_Finding], str | None]:
    """Typed canonical frame (all columns, schema order), the parse failures, currency seen."""
    table = schema.TABLES[raw.name]
    out = pd.DataFrame(index=raw.frame.index)
    findings: list[_Finding] = []
    currencies: set[str] = set()
    for col in table.columns:
        if col.name not in raw.frame:
            out[col.name] = pd.Series(np.nan, index=out.index, dtype=DTYPES[col.dtype])
            continue
        src = raw.frame[col.name]
        formula_rows = raw.formula_cells.get(col.name)
        if formula_rows is not None and len(formula_rows):
            src = src.copy()
            src[formula_rows] = np.nan if _is_typed(src) else None
        values, issues, seen = _parse_column(raw, col, src, ctx)
        if seen:
            currencies.add(seen)
        if formula_rows is not None and len(formula_rows):
            values[formula_rows] = np.nan
            issues.append(
                detect.Issue(
                    "formula",
                    formula_rows,
                    "row with a formula that has no saved value",
                    "rows with formulas that have no saved value",
                    "formula with no saved value; open the workbook in Excel, save it, and export again",
                )
            )
        out[col.name] = values
        for i in issues:
            findings.append(_Finding(col.name, i.rule, i.rows, i.singular, i.plural, i.reason))
    return out, findings, (currencies.pop() if len(currencies) == 1 else None)


# ---------------------------------------------------------------------------
# validation


@dataclass(frozen=True)
class _Rule:
    """A row rule checked by pandera: ``check(frame) -> bool Series`` (True = row passes)."""

    name: str
    column: str
    check: Callable[[pd.DataFrame], pd.Series]
    singular: str
    plural: str
    reason: str | Callable[[pd.DataFrame, pd.Index], pd.Series]
    #: True when the check reads columns other than ``column``.
    wide: bool = False


def _rules(
    name: str,
    as_of: pd.Timestamp,
    known_ids: Mapping[str, pyarrow.Array],
    labels: Mapping[str, str],
) -> list[_Rule]:
    """Every row rule of table ``name``, in the order its problems are reported."""
    table = schema.TABLES[name]
    rules = [_duplicate_key_rule(table), *_allowed_value_rules(table)]
    if name == "opportunities":
        rules.extend(_won_deal_rules(as_of))
    for col in table.column_names:
        rules.extend(_column_rules(name, col, known_ids, labels))
    return rules


def _first_of(ids: pd.Series) -> np.ndarray:
    """Position of the first row holding each row's value; -1 where missing.

    ``pd.factorize`` numbers values in order of first appearance (Arrow's hash
    table for Arrow text), so a row repeats an earlier one exactly when its code
    is not above the codes before it.
    """
    codes, _ = pd.factorize(ids, use_na_sentinel=True)
    present = codes >= 0
    first = np.full(codes.max(initial=-1) + 1, -1, dtype=np.int64)
    rows = np.flatnonzero(present)
    new = np.ones(len(rows), dtype=bool)
    seen = np.maximum.accumulate(codes[rows])
    new[1:] = seen[1:] > seen[:-1]
    first[codes[rows[new]]] = rows[new]
    out = np.full(len(codes), -1, dtype=np.int64)
    out[rows] = first[codes[rows]]
    return out


def _fixed_width_keys(ids: pd.Series) -> np.ndarray | None:
    """A 64-bit number per present id when every id has the same length in bytes (as CRM
    ids do): the bytes themselves up to 8 bytes, else a hash of them; None otherwise."""
    arr = pyarrow.array(ids, type=pyarrow.large_string(), from_pandas=True)
    if isinstance(arr, pyarrow.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        arr = pc.drop_null(arr)
    if len(arr) == 0:
        return np.zeros(0, dtype=np.uint64)
    offsets = np.frombuffer(
        arr.buffers()[1], dtype=np.int64, count=len(arr) + 1, offset=8 * arr.offset
    )
    width = int(offsets[1] - offsets[0])
    if width == 0 or int(offsets[-1] - offsets[0]) != width * len(arr):
        return None
    if not (np.diff(offsets) == width).all():
        return None
    data = np.frombuffer(
        arr.buffers()[2], dtype=np.uint8, count=width * len(arr), offset=int(offsets[0])
    ).reshape(len(arr), width)
    if width <= 8:
        packed = np.zeros((len(arr), 8), dtype=np.uint8)
        packed[:, :width] = data
        return packed.view(np.uint64).ravel()
    h = np.full(len(arr), 14695981039346656037, dtype=np.uint64)  # FNV-1a, column by column
    for j in range(width):
        h = (h ^ data[:, j]) * np.uint64(1099511628211)
    return h


def _all_distinct(ids: pd.Series) -> bool:
    """True when no present id repeats, told by sorting 64-bit keys (no hash table): exact
    when no two keys are equal; False also when it cannot tell (ids of several lengths)."""
    keys = _fixed_width_keys(ids)
    if keys is None:
        return False
    keys = np.sort(keys)
    return not (keys[1:] == keys[:-1]).any()


def _repeated(ids: pd.Series) -> pd.Series:
    """``ids.notna() & ids.duplicated(keep="first")``: none when :func:`_all_distinct`
    says so, else in one pass of Arrow's hash table."""
    if _all_distinct(ids):
        return pd.Series(False, index=ids.index)
    first = _first_of(ids)
    return pd.Series((first >= 0) & (first != np.arange(len(first))), index=ids.index)


def _duplicate_key_rule(table: schema.Table) -> _Rule:
    """A row repeating the unique columns of an earlier row is rejected; the first is kept."""
    unique = list(table.unique_columns)
    shown = ", ".join(unique)

    def first_row(frame: pd.DataFrame, rows: pd.Index) -> pd.Series:
        if len(unique) == 1:
            first = pd.Series(frame.index[_first_of(frame[unique[0]]).clip(0)], index=frame.index)
            return (
                f"duplicate {shown}; the first, on row " + first.loc[rows].astype(str) + ", is kept"
            )
        present = frame[unique].dropna()
        groups = [present[c] for c in unique]
        first = pd.Series(present.index, index=present.index).groupby(groups).transform("first")
        return f"duplicate {shown}; the first, on row " + first.loc[rows].astype(str) + ", is kept"

    def repeated(f: pd.DataFrame) -> pd.Series:
        if len(unique) == 1:
            return _repeated(f[unique[0]])
        return f[unique].notna().all(axis=1) & f[unique].duplicated(keep="first")

    return _Rule(
        "duplicate_key",
        table.key,
        lambda f: ~repeated(f),
        f"row repeating an earlier {shown}",
        f"rows repeating an earlier {shown}",
        first_row,
        wide=len(unique) > 1,
    )


def _allowed_value_rules(table: schema.Table) -> list[_Rule]:
    """A column with a closed list of values (stage, type...) takes only those, or nothing."""
    return [
        _Rule(
            f"{col.name}_known",
            col.name,
            lambda f, c=col.name, allowed=col.values: f[c].isna() | f[c].isin(allowed),
            f"row with a {col.name} not in the schema",
            f"rows with a {col.name} not in the schema",
            f"{col.name} not one of {', '.join(col.values)}; "
            f"map it under values: {col.name}: in the mapping file",
        )
        for col in table.columns
        if col.values
    ]


def _won_deal_rules(as_of: pd.Timestamp) -> list[_Rule]:
    """A won deal has an amount, not a negative one, and a close date no later than ``as_of``."""
    won = lambda f: f["stage"].eq("won").fillna(False)  # noqa: E731
    day = as_of.strftime("%Y-%m-%d")
    return [
        _Rule(
            "won_amount_missing",
            "amount",
            lambda f: ~(won(f) & f["amount"].isna()),
            "won deal with no amount",
            "won deals with no amount",
            "won deal with no amount",
            wide=True,
        ),
        _Rule(
            "won_amount_negative",
            "amount",
            lambda f: ~(won(f) & (f["amount"] < 0)),
            "won deal with a negative amount",
            "won deals with a negative amount",
            "negative amount on a won deal",
            wide=True,
        ),
        _Rule(
            "won_in_future",
            "close_date",
            lambda f: ~(won(f) & (f["close_date"] > as_of)),
            f"won deal with a close date after today, {day}",
            f"won deals with a close date after today, {day}",
            f"won deal with a close date after today, {day}",
            wide=True,
        ),
    ]


def _column_rules(
    name: str, col: str, known_ids: Mapping[str, pyarrow.Array], labels: Mapping[str, str]
) -> list[_Rule]:
    """A column that must not be negative, and a reference that must name a key read."""
    rules = []
    if (name, col) in NON_NEGATIVE:
        rules.append(
            _Rule(
                f"negative_{col}",
                col,
                lambda f, c=col: ~(f[c] < 0),
                "row with a negative value",
                "rows with negative values",
                "negative value",
            )
        )
    target = REFERENCES.get((name, col))
    if target is not None and target in known_ids:
        ids = known_ids[target]
        ids = ids if isinstance(ids, pyarrow.Array) else _id_set(ids)
        label = labels.get(target, target)
        rules.append(
            _Rule(
                f"unknown_{col}",
                col,
                lambda f, c=col, ids=ids: _known(f[c], ids),
                f"row whose {col} is not in {label}",
                f"rows whose {col} is not in {label}",
                f"{col} not in {label}",
            )
        )
    return rules


def table_schema(
    name: str,
    as_of: str | pd.Timestamp | None = None,
    known_ids: Mapping[str, Iterable[str]] | None = None,
) -> pa.DataFrameSchema:
    """The pandera schema of a loaded canonical table.

    Parameters
    ----------
    name : str
        Table name, a key of :data:`revmodel.schema.TABLES`.
    as_of : str or Timestamp, optional
        Today's date [date]: won deals may not close after it. Default today.
    known_ids : mapping of table name to ids, optional
        Keys of ``accounts`` and ``reps``; references to them are checked when given.

    Returns
    -------
    pandera.DataFrameSchema
        Columns with dtypes and nullability from :mod:`revmodel.schema`, and the
        row rules (duplicates, stages, won amounts and dates, references) as
        named wide checks.

    Examples
    --------
    >>> s = table_schema("reps")
    >>> list(s.columns)[:2]
    ['rep_id', 'rep_name']
    >>> [check.name for check in s.columns["ramp_months"].checks]
    ['negative_ramp_months']
    """
    if name not in schema.TABLES:
        raise KeyError(f"{name} is not a table; use one of {', '.join(schema.TABLES)}")
    as_of_ts = (pd.Timestamp.today() if as_of is None else pd.Timestamp(as_of)).normalize()
    ids = {t: _id_set(v) for t, v in (known_ids or {}).items()}
    return _pandera_schema(schema.TABLES[name], _rules(name, as_of_ts, ids, {}))


def _pandera_schema(table: schema.Table, rules: list[_Rule]) -> pa.DataFrameSchema:
    """The canonical schema of one table, with the row rules as named checks.

    A rule reading one column is a column check; a rule reading several (won
    deals' amount and date) is a wide check. Column checks keep pandera's
    failure report small when many rows fail.
    """

    def check(rule: _Rule) -> pa.Check:
        if rule.wide:
            return pa.Check(rule.check, name=rule.name, ignore_na=False)
        return pa.Check(
            lambda s, r=rule: r.check(s.to_frame(r.column)), name=rule.name, ignore_na=False
        )

    columns = {
        c.name: pa.Column(
            DTYPES[c.dtype],
            checks=[check(r) for r in rules if r.column == c.name and not r.wide],
            nullable=not c.required or (table.name, c.name) in MAY_BE_EMPTY,
            required=True,
            coerce=False,
        )
        for c in table.columns
    }
    wide = [check(r) for r in rules if r.wide]
    return pa.DataFrameSchema(columns, checks=wide, name=table.name, strict=True, ordered=True)


def _run_pandera(
    frame: pd.DataFrame, table: schema.Table, rules: list[_Rule]
) -> dict[tuple[str, str], pd.Index]:
    """Failing rows per (column, rule); rule ``missing`` for required values."""
    try:
        _pandera_schema(table, rules).validate(frame, lazy=True, inplace=True)  # nothing coerced
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return {}
    if cases["index"].isna().any():
        # a column-level failure (dtype, presence) is a fault of the parsing above
        raise RuntimeError(f"{table.name}: parsed table does not match its schema:\n{cases}")
    by_name = {r.name: r for r in rules}
    failing: dict[tuple[str, str], pd.Index] = {}
    for check, group in cases.groupby("check", sort=False):
        if check in by_name:
            key = (by_name[check].column, check)
            failing[key] = pd.Index(group["index"].astype(int).unique())
        elif check == "not_nullable":
            for col, sub in group.groupby("column", sort=False):
                failing[(col, "missing")] = pd.Index(sub["index"].astype(int).unique())
        else:  # pragma: no cover - every check is named above
            raise RuntimeError(f"{table.name}: unexpected check {check}")
    return failing


def _derive_segments(frame: pd.DataFrame, bands) -> tuple[pd.DataFrame, str | None]:
    need = frame["segment"].isna() & frame["employees"].notna()
    if not need.any():
        return frame, None
    frame = frame.copy()
    emp = frame.loc[need, "employees"]
    segment = pd.Series(np.nan, index=emp.index, dtype="str")
    for band, lo, hi in bands:
        segment[(emp >= lo) & (emp < hi)] = band
    frame.loc[need, "segment"] = segment
    shown = ", ".join(
        f"{b} {lo:g}+" if np.isinf(hi) else f"{b} {lo:g}-{hi:g}" for b, lo, hi in bands
    )
    n = int(segment.notna().sum())
    return frame, f"segment derived from employees for {_count(n, 'account')} ({shown})"


def _validate(
    raw: _Raw, ctx: _Context
) -> tuple[pd.DataFrame, TableReport, pd.DataFrame, pd.DataFrame]:
    """Parse and check one table: (accepted rows, report, quarantine lines, blanked lines).

    A failure in a required column quarantines the row; one in an optional
    column blanks the value (reported) and keeps the row.
    """
    table = schema.TABLES[raw.name]
    frame, findings, currency_seen = _parse(raw, ctx)
    notes = list(raw.notes)
    if raw.name == "accounts":
        frame, note = _derive_segments(frame, ctx.bands or config.SEGMENT_BANDS)
        if note:
            notes.append(note)
    findings += _rule_findings(raw.name, frame, findings, ctx)
    order = {c: i for i, c in enumerate(table.column_names)}
    findings.sort(key=lambda f: order.get(f.column, -1))
    required = {c.name for c in table.columns if c.required}
    hard = [f for f in findings if f.column in required]
    soft = [f for f in findings if f.column not in required]

    lines = _quarantine_lines(raw, hard)
    bad_rows = pd.Index(lines["row"].unique()) if len(lines) else pd.Index([], dtype=int)
    soft_kept = [
        _Finding(f.column, f.rule, f.rows.difference(bad_rows), f.singular, f.plural, f.reason)
        for f in soft
    ]
    soft_kept = [f for f in soft_kept if len(f.rows)]
    soft_dropped = [
        _Finding(f.column, f.rule, f.rows.intersection(bad_rows), f.singular, f.plural, f.reason)
        for f in soft
    ]
    if any(len(f.rows) for f in soft_dropped):
        # the quarantine shows every problem of a quarantined row
        lines = _quarantine_lines(raw, hard + [f for f in soft_dropped if len(f.rows)])
    blank_lines = _quarantine_lines(raw, soft_kept)
    blank_lines["action"] = "blanked"
    if soft_kept:
        frame = frame.copy()
    for f in soft_kept:
        frame.loc[f.rows, f.column] = np.nan
    accepted = frame.drop(index=bad_rows) if len(bad_rows) else frame
    accepted = accepted.reset_index(drop=True)
    problems = [_problem(raw, f) for f in hard + [f for f in soft_dropped if len(f.rows)]]
    for f in soft_kept:
        p = _problem(raw, f)
        problems.append(p._replace(reason=p.reason + ", blanked"))
    problems.sort(key=lambda p: order.get(p.column, -1))
    advice = _stage_advice(raw, findings, ctx.spec)
    if raw.encoding in ("latin-1", "cp1252", "UTF-16", "utf-8 with BOM"):
        notes.insert(0, f"read as {raw.encoding}")
    report = TableReport(
        table=raw.name,
        file=raw.label,
        encoding=raw.encoding,
        rows_read=len(frame),
        rows_accepted=len(accepted),
        rows_quarantined=len(bad_rows),
        problems=problems,
        notes=notes,
        advice=advice,
        values_blanked=int(sum(len(f.rows) for f in soft_kept)),
        footers=list(raw.export.footers) if raw.export is not None else [],
        currency_seen=currency_seen,
    )
    return accepted, report, lines, blank_lines


def _rule_findings(
    name: str, frame: pd.DataFrame, findings: list[_Finding], ctx: _Context
) -> list[_Finding]:
    """Failures of the pandera rules, less values already reported as not parsing."""
    table = schema.TABLES[name]
    rules = _rules(name, ctx.as_of, ctx.known_ids, ctx.labels)
    failing = _run_pandera(frame, table, rules)
    parse_failed: dict[str, pd.Index] = {}
    for f in findings:
        parse_failed[f.column] = parse_failed.get(f.column, pd.Index([], dtype=int)).union(f.rows)
    by_name = {r.name: r for r in rules}
    out: list[_Finding] = []
    for (col, rule), rows in failing.items():
        # a value that did not parse is reported once, as such
        rows = rows.difference(parse_failed.get(col, pd.Index([], dtype=int)))
        if not len(rows):
            continue
        if rule == "missing":
            out.append(
                _Finding(
                    col,
                    "missing",
                    rows,
                    f"row with no {col}",
                    f"rows with no {col}",
                    f"missing {col} (required)",
                )
            )
            continue
        r = by_name[rule]
        reason = r.reason(frame, rows) if callable(r.reason) else r.reason
        out.append(_Finding(col, rule, rows, r.singular, r.plural, reason))
    return out


def _original_text(raw: _Raw, column: str, rows: pd.Index) -> pd.Series:
    if column not in raw.original:
        return pd.Series("", index=rows, dtype="str")
    return _as_text(raw.original.loc[rows, column]).fillna("")


def _quarantine_lines(raw: _Raw, findings: list[_Finding]) -> pd.DataFrame:
    parts = []
    for f in findings:
        reason = f.reason.loc[f.rows] if isinstance(f.reason, pd.Series) else f.reason
        parts.append(
            pd.DataFrame(
                {
                    "file": raw.label,
                    "row": f.rows.to_numpy(),
                    "column": f.column,
                    "value": _original_text(raw, f.column, f.rows).to_numpy(),
                    "reason": np.asarray(reason) if isinstance(reason, pd.Series) else reason,
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            {c: pd.Series(dtype="int64" if c == "row" else "str") for c in QUARANTINE_COLUMNS}
        )
    lines = pd.concat(parts, ignore_index=True)
    lines["row"] = lines["row"].astype("int64")
    return lines.sort_values("row", kind="stable").reset_index(drop=True)[list(QUARANTINE_COLUMNS)]


def _problem(raw: _Raw, f: _Finding) -> Problem:
    n = len(f.rows)
    row = int(f.rows.min())
    value = _original_text(raw, f.column, pd.Index([row]))[row]
    example = f"row {row}: '{value}'" if value else f"row {row}"
    if f.rule == "duplicate_key":
        first = re.search(r"row (\d+)", f.reason.loc[row]).group(1)
        example += f", as on row {first}"
    return Problem(f.column, f.singular if n == 1 else f.plural, n, example, HINTS.get(f.rule, ""))


def _stage_advice(raw: _Raw, findings: list[_Finding], spec: MappingSpec) -> list[str]:
    """A mapping snippet for values not in the schema (stage, type)."""
    advice: list[str] = []
    for f in findings:
        if f.rule != f"{f.column}_known":
            continue
        values = _original_text(raw, f.column, f.rows)
        counts = values.value_counts(sort=True)
        allowed = schema.TABLES[raw.name].column(f.column).values
        where = (
            spec.path
            if spec.path is not None
            else "a mapping file (mapping.yaml in the data folder, or --mapping FILE)"
        )
        advice.append(
            f"values not in the schema: {', '.join(f'{v!r} ({n:,})' for v, n in counts.items())}; "
            f"add to {where}, choosing from {', '.join(allowed)}:"
        )
        advice.append("    tables:")
        advice.append(f"      {raw.name}:")
        advice.append("        values:")
        advice.append(f"          {f.column}:")
        for v in counts.index:
            advice.append(f"            {_yaml_key(v)}: {_guess(v, allowed)}")
    return advice


def _yaml_key(value: str) -> str:
    plain = re.fullmatch(r"[A-Za-z][A-Za-z0-9 _/()-]*", value) and value.lower() not in (
        "yes",
        "no",
        "true",
        "false",
        "on",
        "off",
        "null",
    )
    return value if plain else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _guess(value: str, allowed: Sequence[str]) -> str:
    low = value.lower()
    if allowed == schema.STAGES:
        for hint, stage in _STAGE_HINTS:
            if hint in low:
                return stage
    for option in allowed:
        if option in low:
            return option
    return "?"


# ---------------------------------------------------------------------------
# wording


def _count(n: int, noun: str) -> str:
    if n == 1:
        return f"1 {noun}"
    plural = (
        noun[:-1] + "ies"
        if noun.endswith("y") and noun[-2:] not in ("ay", "ey", "oy")
        else noun + "s"
    )
    return f"{n:,} {plural}"


def _report_lines(rep: TableReport) -> list[str]:
    head = f"{rep.file}: {_count(rep.rows_read, 'row')} read, {rep.rows_accepted:,} accepted"
    if rep.rows_quarantined:
        head += f", {rep.rows_quarantined:,} quarantined"
        if rep.quarantine_file is not None:
            head += f" ({rep.quarantine_file})"
    if rep.values_blanked:
        head += f", {_count(rep.values_blanked, 'value')} blanked"
        if rep.blanked_file is not None:
            head += f" ({rep.blanked_file})"
    lines = [head]
    for p in rep.problems:
        hint = f"; {p.hint}" if p.hint else ""
        lines.append(f"  - {p.column}: {p.count:,} {p.reason} (e.g. {p.example}){hint}")
    lines.extend(f"  {line}" for line in rep.advice)
    lines.extend(f"  note: {note}" for note in rep.notes)
    return lines


def _quarantine_folder(reports) -> Path | None:
    for r in reports:
        for f in (r.quarantine_file, r.blanked_file):
            if f is not None:
                return f.parent
    return None


def _join_errors(errors: list[str]) -> str:
    if len(errors) == 1:
        return errors[0]
    return f"{len(errors)} problems make the data unusable:\n" + "\n".join(
        f"  - {e}" for e in errors
    )


__all__ = [
    "LoadResult",
    "MappingSpec",
    "Problem",
    "TableMapping",
    "TableReport",
    "dimension_sizes",
    "load",
    "parse_segment_bands",
    "read_mapping",
    "references",
    "References",
    "table_schema",
]
