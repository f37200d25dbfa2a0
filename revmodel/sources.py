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

import codecs
import csv
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pandera.pandas as pa
import yaml

from revmodel import config, schema
from revmodel.errors import DataError

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

_MAPPING_KEYS = ("tables", "date_format", "segment_bands")
_TABLE_KEYS = ("file", "sheet", "columns", "values", "constants", "date_format")
_ISO_STRICT = r"\d{4}-\d{2}-\d{2}"
_ISO = r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ].*)?$"
_SLASHED = r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})$"
_MONEY = r"^[-+]?[$€£]?\s?[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$|^[-+]?[$€£]\s?[-+]?\d+(?:\.\d+)?$"
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
    """

    column: str
    reason: str
    count: int
    example: str = ""
    hint: str = ""


@dataclass
class TableReport:
    """What happened to one table."""

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


@dataclass
class LoadResult:
    """Canonical tables, per-table reports and quarantined rows of one data folder."""

    tables: dict[str, pd.DataFrame]
    reports: dict[str, TableReport]
    quarantine: dict[str, pd.DataFrame]
    mapping_file: Path | None = None
    missing_tables: tuple[str, ...] = ()

    @property
    def status(self) -> int:
        """0 clean, 1 usable with quarantined rows, 2 unusable (no opportunity accepted).

        Files that cannot be used at all raise :class:`DataError` from :func:`load`
        instead of returning a result.
        """
        opp = self.reports.get("opportunities")
        if opp is None or opp.rows_accepted == 0:
            return 2
        return 1 if any(r.rows_quarantined for r in self.reports.values()) else 0

    def summary(self) -> str:
        """A readable per-table summary, as ``revmodel validate`` prints it."""
        lines: list[str] = []
        if self.mapping_file is not None:
            lines.append(f"mapping: {self.mapping_file}")
        for rep in self.reports.values():
            lines.extend(_report_lines(rep))
        if self.missing_tables:
            lines.append(f"not provided (optional): {', '.join(self.missing_tables)}")
        total = sum(r.rows_read for r in self.reports.values())
        bad = sum(r.rows_quarantined for r in self.reports.values())
        status = self.status
        if status == 0:
            lines.append(f"result: clean, all {_count(total, 'row')} accepted")
        elif status == 1:
            tables = sum(1 for r in self.reports.values() if r.rows_quarantined)
            where = _quarantine_folder(self.reports.values())
            lines.append(
                f"result: usable, {bad:,} of {_count(total, 'row')} quarantined in "
                f"{_count(tables, 'table')}; fix them in the export"
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

    Returns
    -------
    LoadResult
        Accepted rows of each table found (canonical columns, schema order),
        reports, and quarantined rows.

    Raises
    ------
    DataError
        When the data cannot be used: no opportunities file, a missing, empty
        or unreadable file, a required column absent, or a bad mapping file.
    """
    data_dir = Path(data_dir)
    if data_dir.is_file():
        raise DataError(
            f"{data_dir} is a file; pass the folder holding your exports "
            f"(e.g. {data_dir.parent}), or name the file in a mapping file"
        )
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} not found; pass the folder holding your exports")
    mapping_path = Path(mapping) if mapping is not None else _find_mapping(data_dir)
    spec = read_mapping(mapping_path) if mapping_path is not None else MappingSpec()
    bands = tuple(segment_bands) if segment_bands is not None else spec.segment_bands
    as_of_ts = pd.Timestamp.today() if as_of is None else pd.Timestamp(as_of)
    as_of_ts = as_of_ts.normalize()
    qdir = Path(quarantine_dir) if quarantine_dir is not None else None

    paths, errors = _locate(data_dir, spec)
    raws: dict[str, _Raw] = {}
    for name, path in paths.items():
        try:
            raws[name] = _read_table(name, path, data_dir, spec)
        except _Unusable as exc:
            errors.append(str(exc))
    if errors:
        raise DataError(_join_errors(errors))
    if qdir is not None:
        _check_quarantine_dir(qdir, paths)

    known_ids = {
        name: set(_as_text(raws[name].frame[schema.TABLES[name].key]).dropna())
        for name in ("accounts", "reps")
        if name in raws
    }
    tables: dict[str, pd.DataFrame] = {}
    reports: dict[str, TableReport] = {}
    quarantine: dict[str, pd.DataFrame] = {}
    for name, raw in raws.items():
        try:
            table, report, bad = _validate(raw, spec, bands, as_of_ts, known_ids, raws)
        except _Unusable as exc:
            errors.append(str(exc))
            continue
        tables[name], reports[name], quarantine[name] = table, report, bad
    if errors:
        raise DataError(_join_errors(errors))
    if qdir is not None:
        for name, bad in quarantine.items():
            reports[name].quarantine_file = _write_quarantine(qdir, name, bad)
    missing = tuple(n for n in schema.TABLES if n not in raws and n not in UNLISTED_WHEN_MISSING)
    return LoadResult(tables, reports, quarantine, mapping_path, missing)


def read_mapping(path: str | Path) -> MappingSpec:
    """Read and check a mapping YAML file.

    Raises
    ------
    DataError
        Naming the file and key of every problem found.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mapping file {path} not found; check the path given to --mapping")
    try:
        doc = yaml.load(path.read_text(encoding="utf-8-sig"), Loader=_TextLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None)
        detail = f" ({problem})" if problem else ""
        raise DataError(f"{path} is not valid YAML{at}{detail}; fix its syntax") from None
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
    if errors:
        raise DataError(_join_errors(errors))
    return MappingSpec(path, tables, date_format, bands)


def parse_segment_bands(
    value: Any, where: str = "segment_bands"
) -> tuple[tuple[str, float, float], ...]:
    """Segment bands from a list of ``[name, lower, upper]`` or a ``"SMB:0:200,..."`` string.

    An empty or null upper bound means no upper bound [employees].
    """
    items = value
    if isinstance(value, str):
        items = [part.split(":") for part in value.split(",") if part.strip()]
    bands: list[tuple[str, float, float]] = []
    hint = f"{where}: expected a list of [name, lower, upper], e.g. [[SMB, 0, 200], [Enterprise, 200, null]]"
    if not isinstance(items, list | tuple) or not items:
        raise DataError(hint)
    for item in items:
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise DataError(hint)
        name, lower, upper = item
        try:
            lo = float(lower)
            hi = float("inf") if upper in (None, "", "inf", ".inf", "null") else float(upper)
        except (TypeError, ValueError):
            raise DataError(f"{where}: bounds of band '{name}' must be numbers") from None
        if not hi > lo:
            raise DataError(f"{where}: band '{name}' has upper bound {hi:g} <= lower bound {lo:g}")
        bands.append((str(name).strip(), lo, hi))
    return tuple(bands)


# ---------------------------------------------------------------------------
# mapping


@dataclass(frozen=True)
class TableMapping:
    """The mapping of one table: its file, sheet, columns, values and constants."""

    file: str | None = None
    sheet: str | int | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)
    date_format: str | None = None


@dataclass(frozen=True)
class MappingSpec:
    """A checked mapping file (see the module docstring)."""

    path: Path | None = None
    tables: Mapping[str, TableMapping] = field(default_factory=dict)
    date_format: str | None = None
    segment_bands: tuple[tuple[str, float, float], ...] | None = None


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
    return TableMapping(
        None if file is None else str(file),
        sheet,
        columns,
        values,
        constants,
        date_format,
    )


class _TextLoader(yaml.SafeLoader):
    """Safe YAML that keeps scalars as written: ``yes``, ``007``, ``2026-01-31`` stay text.

    A mapping's values are matched against an export's text, so ``{yes: won}``
    must mean the text ``yes``, not the boolean.
    """


_TextLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml_text(value: Any) -> str:
    return str(value).strip()


def _check_date_format(where: str, fmt: Any, errors: list[str]) -> None:
    probe = pd.Timestamp("2026-12-31")
    ok = isinstance(fmt, str)
    if ok:
        try:
            ok = pd.to_datetime(probe.strftime(fmt), format=fmt) == probe
        except (ValueError, TypeError):
            ok = False
    if not ok:
        errors.append(
            f"{where} '{fmt}' does not describe a full date; use strftime codes like '%d/%m/%Y'"
        )


def _find_mapping(data_dir: Path) -> Path | None:
    for name in MAPPING_NAMES:
        if (data_dir / name).is_file():
            return data_dir / name
    return None


# ---------------------------------------------------------------------------
# reading


class _Unusable(Exception):
    """A table cannot be used at all (becomes part of a DataError)."""


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


def _locate(data_dir: Path, spec: MappingSpec) -> tuple[dict[str, Path], list[str]]:
    """Path of each table's file, and the problems finding them."""
    by_lower: dict[str, Path] = {}
    for p in sorted(data_dir.iterdir()):
        if p.is_file():
            by_lower.setdefault(p.name.lower(), p)
    paths: dict[str, Path] = {}
    errors: list[str] = []
    for name, table in schema.TABLES.items():
        tm = spec.tables.get(name)
        if tm is not None and tm.file is not None:
            path = data_dir / tm.file
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


def _read_table(name: str, path: Path, data_dir: Path, spec: MappingSpec) -> _Raw:
    label = _label(path, data_dir)
    tm = spec.tables.get(name, TableMapping())
    frame, encoding = _read_file(name, path, label, tm.sheet)
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.index = pd.RangeIndex(2, len(frame) + 2, name="row")
    # blank records (all cells empty) are not rows: spreadsheets show them as gaps
    text_cols = [c for c in frame.columns if not _is_typed(frame[c])]
    blank = frame[text_cols].apply(lambda s: s.isna() | s.eq("")).all(axis=1) if text_cols else None
    if blank is not None and len(text_cols) == frame.shape[1] and blank.any():
        frame = frame[~blank]
    if frame.empty:
        raise _Unusable(
            f"{label} has a header but no rows; export it again with data"
            + ("" if name == "opportunities" else f", or remove it if you have no {name}")
        )
    canonical, notes = _apply_columns(name, frame, label, tm, spec)
    original = canonical.copy()
    for col, pairs in tm.values.items():
        if col in canonical:
            text = _as_text(canonical[col])
            canonical[col] = text.replace(pairs) if pairs else text
    date_format = tm.date_format if tm.date_format is not None else spec.date_format
    return _Raw(name, label, encoding, canonical, original, notes, date_format)


def _read_file(
    name: str, path: Path, label: str, sheet: str | int | None
) -> tuple[pd.DataFrame, str | None]:
    if path.stat().st_size == 0:
        raise _Unusable(f"{label} is empty (0 bytes); export it again")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(path, label)
        if suffix == ".parquet":
            return pd.read_parquet(path), None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.read_excel(
                path,
                sheet_name=0 if sheet is None else sheet,
                dtype=str,
                engine="openpyxl",
                keep_default_na=False,
                na_values=[],
            ), None
    except _Unusable:
        raise
    except (ValueError, KeyError) as exc:
        if suffix == ".xlsx" and sheet is not None and "not found" in str(exc):
            import openpyxl

            sheets = openpyxl.load_workbook(path, read_only=True).sheetnames
            raise _Unusable(
                f"{label} has no sheet '{sheet}' (its sheets: {_list_names(sheets)}); "
                f"fix tables: {name}: sheet: in the mapping file"
            ) from None
        raise _Unusable(_unreadable(label, suffix, exc)) from None
    except Exception as exc:  # any reader failure means an unreadable file
        raise _Unusable(_unreadable(label, suffix, exc)) from None


def _unreadable(label: str, suffix: str, exc: Exception) -> str:
    kind = {".csv": "CSV", ".parquet": "Parquet", ".xlsx": "an Excel .xlsx workbook"}[suffix]
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{label} cannot be read as {kind} ({detail}); export it again"


def _read_csv(path: Path, label: str) -> tuple[pd.DataFrame, str]:
    with open(path, "rb") as fh:
        head = fh.read(65536)
    has_bom = head.startswith(codecs.BOM_UTF8)
    first_line = head.split(b"\n", 1)[0].decode("latin-1")
    sep = max((",", ";", "\t", "|"), key=first_line.count)
    if not first_line.strip(" \r" + sep):
        raise _Unusable(f"{label} has no header line; the first line must name the columns")
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            frame = pd.read_csv(
                path,
                sep=sep,
                dtype=str,
                keep_default_na=False,
                na_values=[],
                engine="pyarrow",
                encoding=encoding,
            )
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            raise _Unusable(f"{label} is empty; export it again") from None
        except Exception as exc:  # pyarrow parse errors, see _ragged_row
            if "utf8" in str(exc).lower() or "utf-8" in str(exc).lower():
                continue
            raise _Unusable(
                _ragged_row(path, label, encoding, sep) or _unreadable(label, ".csv", exc)
            ) from None
        if encoding == "latin-1":
            return frame, "latin-1"
        return frame, "utf-8 with BOM" if has_bom else "utf-8"
    raise _Unusable(f"{label} cannot be decoded; save it as UTF-8")  # pragma: no cover


def _ragged_row(path: Path, label: str, encoding: str, sep: str) -> str | None:
    """Name the first row whose number of fields differs from the header's."""
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, None)
        if header is None:
            return None
        for row_number, record in enumerate(reader, start=2):
            if record and len(record) != len(header):
                return (
                    f"{label} row {row_number} has {len(record)} fields but the header has "
                    f"{len(header)}; quote values that contain '{sep}' and export it again"
                )
    return None


def _apply_columns(
    name: str, frame: pd.DataFrame, label: str, tm: TableMapping, spec: MappingSpec
) -> tuple[pd.DataFrame, list[str]]:
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
    return out, notes


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


def _write_quarantine(qdir: Path, name: str, bad: pd.DataFrame) -> Path | None:
    path = qdir / f"{name}.csv"
    if bad.empty:
        # a quarantine file left from an earlier run would describe rows now accepted
        if path.is_file():
            path.unlink()
        return None
    qdir.mkdir(parents=True, exist_ok=True)
    bad.to_csv(path, index=False)
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
    text = s.astype("str").str.strip()
    return text.mask(text == "")


@dataclass
class _Finding:
    """Rows failing one rule."""

    column: str
    rule: str
    rows: pd.Index
    singular: str
    plural: str
    reason: str | pd.Series  # per row when a Series indexed by row


def _parse_number(
    text: pd.Series, whole: bool
) -> tuple[pd.Series, list[tuple[str, pd.Index, str, str, str]]]:
    values = pd.to_numeric(text, errors="coerce").astype("float64")
    failed = text.notna() & (values.isna() | ~np.isfinite(values.fillna(0)))
    if failed.any():
        retry = text[failed]
        money = retry.str.match(_MONEY)
        cleaned = pd.to_numeric(
            retry[money].str.replace(r"[$€£,\s]", "", regex=True), errors="coerce"
        )
        values.loc[cleaned.index] = cleaned
        failed = text.notna() & (values.isna() | ~np.isfinite(values.fillna(0)))
        values[failed] = np.nan
    issues = []
    if failed.any():
        issues.append(
            (
                "number",
                text.index[failed],
                "row with a value that is not a number",
                "rows with values that are not numbers",
                "not a number",
            )
        )
    if whole:
        fraction = values.notna() & (np.mod(values.fillna(0), 1) != 0)
        if fraction.any():
            issues.append(
                (
                    "whole",
                    text.index[fraction],
                    "row with a value that is not a whole number",
                    "rows with values that are not whole numbers",
                    "not a whole number",
                )
            )
            values[fraction] = np.nan
    return values, issues


def _compose_dates(year: pd.Series, month: pd.Series, day: pd.Series) -> pd.Series:
    century = pd.Series(np.where(year.astype("float64") < 69, "20", "19"), index=year.index)
    year = year.where(year.str.len() == 4, century + year)
    text = year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2)
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")


def _parse_dates(
    text: pd.Series, date_format: str | None, label: str, column: str
) -> tuple[pd.Series, list[tuple[str, pd.Index, str, str, str]]]:
    """Parse a text column of dates; see the module docstring for the rules."""
    present = text.notna()
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    issues: list[tuple[str, pd.Index, str, str, str]] = []
    if not present.any():
        return parsed, issues
    strict = text.str.fullmatch(_ISO_STRICT).fillna(False).astype(bool)
    parsed[strict] = pd.to_datetime(text[strict], format="%Y-%m-%d", errors="coerce")
    if strict.sum() == present.sum():
        return parsed, _unparseable(text, parsed, issues)
    # regex extraction is slow: only on rows that are not plain YYYY-MM-DD
    loose = text[present & ~strict].str.extract(_ISO).dropna()
    parsed[loose.index] = _compose_dates(loose[0], loose[1], loose[2])
    iso = strict | text.index.isin(loose.index)
    rest = present & ~iso
    if date_format is not None:
        parsed[rest] = pd.to_datetime(text[rest], format=date_format, errors="coerce")
        bad = rest & parsed.isna()
        if bad.any():
            issues.append(
                (
                    "date_format",
                    text.index[bad],
                    f"row with a date not in date_format '{date_format}'",
                    f"rows with dates not in date_format '{date_format}'",
                    f"not a date in date_format '{date_format}'",
                )
            )
        return parsed, _unparseable(text, parsed, issues, skip=bad)
    sl = text[rest].str.extract(_SLASHED)
    slashed = sl[0].notna()
    sl = sl[slashed]
    first, second = sl[0].astype(int), sl[1].astype(int)
    day_first, month_first = (first > 12) & (second <= 12), (second > 12) & (first <= 12)
    n_dmy, n_mdy = int(day_first.sum()), int(month_first.sum())
    order = "dmy" if n_dmy >= n_mdy and n_dmy else "mdy" if n_mdy else None
    if order is None and (first == second).all():
        order = "dmy"  # 05/05/2026 reads the same either way
    minority = pd.Series(False, index=text.index)
    n_iso, n_slashed = int(iso.sum()), len(sl)

    def mixed(rows: pd.Index, other: str, kept: str) -> None:
        minority[rows] = True
        issues.append(
            (
                "mixed",
                rows,
                f"row with a date in {other} while the column is mostly {kept}",
                f"rows with dates in {other} while the column is mostly {kept}",
                f"date format {other} differs from the column's {kept} (ambiguous)",
            )
        )

    if n_iso and n_slashed and n_iso >= n_slashed:
        mixed(sl.index, _slash_name(order), "YYYY-MM-DD")
    elif n_slashed:
        if order is None:
            example = sl.index[0]
            raise _Unusable(
                f"{label} column {column}: dates like '{text[example]}' (row {example}) could be "
                "day/month or month/day; set date_format: '%d/%m/%Y' or '%m/%d/%Y' in a mapping file"
            )
        if n_iso:
            mixed(iso[iso].index, "YYYY-MM-DD", _slash_name(order))
        against = month_first if order == "dmy" else day_first
        if against.any():
            mixed(
                against[against].index,
                _slash_name("mdy" if order == "dmy" else "dmy"),
                _slash_name(order),
            )
        use = ~against
        d, m = (sl[0], sl[1]) if order == "dmy" else (sl[1], sl[0])
        parsed[sl.index[use]] = _compose_dates(sl[2][use], m[use], d[use])
    parsed[minority] = pd.NaT
    # month names ("5 Jan 2026", "January 5, 2026") and compact 20260105; not bare numbers
    other_rows = (
        rest & ~text.index.isin(sl.index) & text.str.contains(r"[A-Za-z]|^\d{8}$").fillna(False)
    )
    if other_rows.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            guess = pd.to_datetime(text[other_rows], errors="coerce")
            if guess.isna().any():
                retry = guess.isna()
                guess[retry] = pd.to_datetime(
                    text[other_rows][retry], format="mixed", errors="coerce"
                )
            guess = pd.to_datetime(guess, errors="coerce", utc=True).dt.tz_localize(None)
        parsed[other_rows] = guess.dt.normalize().astype("datetime64[ns]")
    return parsed, _unparseable(text, parsed, issues, skip=minority)


def _slash_name(order: str | None) -> str:
    return {"dmy": "DD/MM/YYYY", "mdy": "MM/DD/YYYY"}.get(order or "", "DD/MM/YYYY or MM/DD/YYYY")


def _unparseable(text, parsed, issues, skip=None):
    bad = text.notna() & parsed.isna()
    if skip is not None:
        bad &= ~skip
    if bad.any():
        issues.append(
            (
                "date",
                text.index[bad],
                "row with an unparseable date",
                "rows with unparseable dates",
                "unparseable date",
            )
        )
    return issues


def _parse(raw: _Raw) -> tuple[pd.DataFrame, list[_Finding]]:
    """Typed canonical frame (all columns, schema order) and the parse failures."""
    table = schema.TABLES[raw.name]
    out = pd.DataFrame(index=raw.frame.index)
    findings: list[_Finding] = []
    for col in table.columns:
        if col.name not in raw.frame:
            out[col.name] = pd.Series(np.nan, index=out.index, dtype=DTYPES[col.dtype])
            continue
        src = raw.frame[col.name]
        issues: list = []
        if col.dtype == "str":
            values = _as_text(src)
            if col.values:
                values = values.str.lower()
        elif pd.api.types.is_numeric_dtype(src) and col.dtype in ("float", "int"):
            values = src.astype("float64")
            if col.dtype == "int":
                values, issues = _parse_number(values.astype("str").mask(values.isna()), whole=True)
        elif pd.api.types.is_datetime64_any_dtype(src) and col.dtype == "date":
            values = src.dt.tz_localize(None) if src.dt.tz is not None else src
            values = values.dt.normalize().astype("datetime64[ns]")
        elif col.dtype in ("float", "int"):
            values, issues = _parse_number(_as_text(src), whole=col.dtype == "int")
        else:
            values, issues = _parse_dates(_as_text(src), raw.date_format, raw.label, col.name)
        out[col.name] = values
        for rule, rows, singular, plural, reason in issues:
            findings.append(_Finding(col.name, rule, rows, singular, plural, reason))
    return out, findings


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
    known_ids: Mapping[str, set[str]],
    labels: Mapping[str, str],
) -> list[_Rule]:
    table = schema.TABLES[name]
    rules: list[_Rule] = []
    key = table.key
    unique = list(table.unique_columns)
    shown = ", ".join(unique)

    def first_row(frame: pd.DataFrame, rows: pd.Index) -> pd.Series:
        present = frame[unique].dropna()
        groups = [present[c] for c in unique]
        first = pd.Series(present.index, index=present.index).groupby(groups).transform("first")
        return f"duplicate {shown}; the first, on row " + first.loc[rows].astype(str) + ", is kept"

    def repeated(f: pd.DataFrame) -> pd.Series:
        return f[unique].notna().all(axis=1) & f[unique].duplicated(keep="first")

    rules.append(
        _Rule(
            "duplicate_key",
            key,
            lambda f: ~repeated(f),
            f"row repeating an earlier {shown}",
            f"rows repeating an earlier {shown}",
            first_row,
            wide=len(unique) > 1,
        )
    )
    for col in table.columns:
        if not col.values:
            continue
        rules.append(
            _Rule(
                f"{col.name}_known",
                col.name,
                lambda f, c=col.name, allowed=col.values: f[c].isna() | f[c].isin(allowed),
                f"row with a {col.name} not in the schema",
                f"rows with a {col.name} not in the schema",
                f"{col.name} not one of {', '.join(col.values)}; "
                f"map it under values: {col.name}: in the mapping file",
            )
        )
    if name == "opportunities":
        won = lambda f: f["stage"].eq("won").fillna(False)  # noqa: E731
        rules.append(
            _Rule(
                "won_amount_missing",
                "amount",
                lambda f: ~(won(f) & f["amount"].isna()),
                "won deal with no amount",
                "won deals with no amount",
                "won deal with no amount",
                wide=True,
            )
        )
        rules.append(
            _Rule(
                "won_amount_negative",
                "amount",
                lambda f: ~(won(f) & (f["amount"] < 0)),
                "won deal with a negative amount",
                "won deals with a negative amount",
                "negative amount on a won deal",
                wide=True,
            )
        )
        day = as_of.strftime("%Y-%m-%d")
        rules.append(
            _Rule(
                "won_in_future",
                "close_date",
                lambda f: ~(won(f) & (f["close_date"] > as_of)),
                f"won deal with a close date after today, {day}",
                f"won deals with a close date after today, {day}",
                f"won deal with a close date after today, {day}",
                wide=True,
            )
        )
    for col in table.column_names:
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
            label = labels.get(target, target)
            rules.append(
                _Rule(
                    f"unknown_{col}",
                    col,
                    lambda f, c=col, ids=ids: f[c].isna() | f[c].isin(ids),
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
    """
    if name not in schema.TABLES:
        raise KeyError(f"{name} is not a table; use one of {', '.join(schema.TABLES)}")
    as_of_ts = (pd.Timestamp.today() if as_of is None else pd.Timestamp(as_of)).normalize()
    ids = {t: {str(i) for i in v} for t, v in (known_ids or {}).items()}
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
        _pandera_schema(table, rules).validate(frame, lazy=True)
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
    raw: _Raw,
    spec: MappingSpec,
    bands: Sequence[tuple[str, float, float]] | None,
    as_of: pd.Timestamp,
    known_ids: Mapping[str, set[str]],
    raws: Mapping[str, _Raw],
) -> tuple[pd.DataFrame, TableReport, pd.DataFrame]:
    """Parse and check one table: (accepted rows, report, quarantine lines)."""
    table = schema.TABLES[raw.name]
    frame, findings = _parse(raw)
    notes = list(raw.notes)
    if raw.name == "accounts":
        frame, note = _derive_segments(frame, bands or config.SEGMENT_BANDS)
        if note:
            notes.append(note)
    rules = _rules(raw.name, as_of, known_ids, {n: r.label for n, r in raws.items()})
    failing = _run_pandera(frame, table, rules)
    parse_failed: dict[str, pd.Index] = {}
    for f in findings:
        parse_failed[f.column] = parse_failed.get(f.column, pd.Index([], dtype=int)).union(f.rows)
    by_name = {r.name: r for r in rules}
    for (col, rule), rows in failing.items():
        # a value that did not parse is reported once, as such
        rows = rows.difference(parse_failed.get(col, pd.Index([], dtype=int)))
        if not len(rows):
            continue
        if rule == "missing":
            findings.append(
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
        findings.append(_Finding(col, rule, rows, r.singular, r.plural, reason))
    order = {c: i for i, c in enumerate(table.column_names)}
    findings.sort(key=lambda f: order.get(f.column, -1))

    lines = _quarantine_lines(raw, findings)
    bad_rows = pd.Index(lines["row"].unique()) if len(lines) else pd.Index([], dtype=int)
    accepted = frame.drop(index=bad_rows).reset_index(drop=True)
    problems = [_problem(raw, f) for f in findings]
    advice = _stage_advice(raw, findings, spec)
    if raw.encoding in ("latin-1", "utf-8 with BOM"):
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
    )
    return accepted, report, lines


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
    lines = [head]
    for p in rep.problems:
        hint = f"; {p.hint}" if p.hint else ""
        lines.append(f"  - {p.column}: {p.count:,} {p.reason} (e.g. {p.example}){hint}")
    lines.extend(f"  {line}" for line in rep.advice)
    lines.extend(f"  note: {note}" for note in rep.notes)
    return lines


def _quarantine_folder(reports) -> Path | None:
    for r in reports:
        if r.quarantine_file is not None:
            return r.quarantine_file.parent
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
    "load",
    "parse_segment_bands",
    "read_mapping",
    "table_schema",
]
