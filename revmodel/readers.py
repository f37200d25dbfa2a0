"""Read one export file as the tool wrote it: a table of text with spreadsheet row numbers.

:func:`read_export` finds, without being told:

- the encoding of a CSV file: UTF-8 (with or without a byte-order mark),
  UTF-16 with a byte-order mark, else cp1252 (Windows; ``0x80`` is ``€``) or,
  when the file holds bytes cp1252 does not define, latin-1;
- the delimiter (``,`` ``;`` tab ``|``): the one giving the most lines of the
  same width;
- the header row below title rows (the first row naming at least half as
  many columns as the widest row), unless the mapping gives ``header_row``;
- footer rows below the data (totals such as ``Grand Totals (1,500
  records)``, record counts, copyright and "Confidential" lines, blank
  lines): returned in :attr:`Export.footers`, never as data;
- for ``.xlsx``: the sheet holding the table when the first sheet is a cover
  page, unless the mapping gives ``sheet``; formula cells with no saved value
  (returned in :attr:`Export.formula_cells`, never silently empty).

CSV files are parsed by ``pyarrow.csv`` with every column read as text.
Limits (:class:`revmodel.limits.Limits`) on file size, rows, columns, cell
size and ``.xlsx`` expansion give a message naming the file, row and column.
Row numbers are the rows a spreadsheet shows: the header row of a file
without title rows is row 1, its first data row row 2.

Example
-------
>>> import tempfile
>>> from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "deals.csv"
>>> _ = p.write_text("Pipeline report\\nId;Amount\\nD1;1.234,50\\nGrand Totals (1 record)\\n")
>>> e = read_export(p, "deals.csv")
>>> e.delimiter, e.header_row, e.frame.loc[3, "Amount"], e.footers
(';', 2, '1.234,50', [(4, 'Grand Totals (1 record)')])
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import math
import re
import sys
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from revmodel.limits import Limits

#: Delimiters tried, in order of preference on a tie.
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
#: Bytes read to detect the encoding, delimiter and header.
HEAD_BYTES = 256 * 1024
#: Bytes read from the end of a CSV file to find footer rows.
TAIL_BYTES = 64 * 1024
#: Most footer rows looked for below the data.
MAX_FOOTER_ROWS = 50
#: Rows scanned for the header.
HEADER_SCAN_ROWS = 50
#: pyarrow block sizes [bytes]: blocks parse in parallel; a row must fit in one block,
#: so a file with a longer row is read again with the large size.
BLOCK_BYTES = 1024 * 1024
LARGE_BLOCK_BYTES = 64 * 1024 * 1024
#: A large file is read in about this many blocks (each column comes in one piece a
#: block, and every later pass over a column costs a call a piece).
BLOCKS_PER_FILE = 16

#: First cell of a footer row: totals, counts, copyright and confidentiality lines.
FOOTER_PATTERN = re.compile(
    r"^\s*(grand\s+)?(sub)?totals?\b|^\s*(count|sum|records?|rows?)\b|\(\s*[\d.,\s]+\s+records?\s*\)"
    r"|\b\d[\d.,]*\s+(records?|rows?)\b|copyright|©|\(c\)\s*\d{4}|confidential|all rights reserved"
    r"|^\s*(generated|exported|printed|run)\s+(by|on|at)\b|^\s*filtered\s+by\b",
    re.IGNORECASE,
)


class Unusable(Exception):
    """The file cannot be used at all; the message says why and what to do."""


@dataclass
class Export:
    """One export as read: text cells, spreadsheet row numbers, what was found.

    Attributes
    ----------
    frame : DataFrame
        The data rows (index = spreadsheet row, name ``row``); every column
        text (``str``) for CSV and ``.xlsx``, typed as stored for Parquet.
    encoding : str or None
        ``utf-8``, ``utf-8 with BOM``, ``UTF-16``, ``cp1252`` or ``latin-1``
        (CSV only).
    delimiter : str or None
        CSV only.
    sheet : str or None
        ``.xlsx`` only: the sheet read.
    header_row : int
        Spreadsheet row of the header (1 when there are no title rows).
    footers : list of (row, text)
        Rows below the data that are not data (totals, counts, notices).
    formula_cells : dict of column -> Index
        ``.xlsx`` only: rows of formula cells with no saved value, by column.
    notes : list of str
        What was found, in words, for the report.
    """

    frame: pd.DataFrame
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_row: int = 1
    footers: list[tuple[int, str]] = field(default_factory=list)
    formula_cells: dict[str, pd.Index] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_export(
    path: str | Path,
    label: str | None = None,
    *,
    sheet: str | int | None = None,
    header_row: int | None = None,
    limits: Limits | None = None,
) -> Export:
    """Read a ``.csv``, ``.xlsx`` or ``.parquet`` export (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The export file.
    label : str, optional
        How messages name the file (default its name).
    sheet : str or int, optional
        ``.xlsx`` only: sheet name or 0-based index; default the sheet holding the table.
    header_row : int, optional
        Spreadsheet row (1-based) of the header; default found from the rows.
    limits : Limits, optional
        Size limits; default :class:`~revmodel.limits.Limits()`.

    Returns
    -------
    Export

    Raises
    ------
    Unusable
        The file is missing, empty, unreadable or over a limit; the message
        names the file and what to do.
    """
    path = Path(path)
    label = label or path.name
    limits = limits or Limits()
    if len(path.name) > limits.max_name_chars:
        raise Unusable(
            f"the file name {path.name[:40]}... is {len(path.name):,} characters; the limit is "
            f"{limits.max_name_chars}: rename the file"
        )
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Unusable(f"{label} cannot be opened ({exc.strerror}); check the path") from None
    if size == 0:
        raise Unusable(f"{label} is empty (0 bytes); export it again")
    if size > limits.max_file_bytes:
        raise Unusable(
            f"{label} is {size:,} bytes; the limit is {limits.max_file_bytes:,}: "
            "split the export (e.g. by year) or raise the limit"
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        export = _read_csv(path, label, header_row, limits)
    elif suffix == ".xlsx":
        export = _read_xlsx(path, label, sheet, header_row, limits)
    elif suffix == ".parquet":
        export = _read_parquet(path, label, limits)
    else:
        raise Unusable(f"{label} is not a .csv, .parquet or .xlsx file; save it in one of these")
    _check_shape(export, label, limits)
    return export


# ---------------------------------------------------------------------------
# rows of text: header and footers


def _nonempty(cells: Sequence[str]) -> int:
    return sum(1 for c in cells if c and c.strip())


def _numberish(cell: str) -> bool:
    return bool(re.fullmatch(r"[-+(]?[$€£¥]?\s?[\d.,/:\s-]+\)?", cell.strip()))


def find_header(rows: Sequence[Sequence[str]]) -> int:
    """Index of the header among the first rows: the first naming at least half the columns.

    Title rows above a header fill one or two cells; a header names most
    columns, in words rather than numbers.

    Example
    -------
    >>> find_header([["Pipeline report"], [], ["Id", "Stage", "Amount"], ["D1", "won", "5"]])
    2
    """
    counts = [_nonempty(r) for r in rows[:HEADER_SCAN_ROWS]]
    if not counts or max(counts) == 0:
        return 0
    top = max(counts)
    need = 1 if top == 1 else max(2, math.ceil(top / 2))
    for i, (row, n) in enumerate(zip(rows, counts, strict=False)):
        if n >= need:
            words = [c for c in row if c and c.strip()]
            if sum(_numberish(c) for c in words) <= len(words) // 2:
                return i
    return next(i for i, n in enumerate(counts) if n)


def is_footer(cells: Sequence[str], width: int) -> bool:
    """Whether a row below the data is a footer (total, count, notice), not data.

    Example
    -------
    >>> is_footer(["Grand Totals (1,500 records)", "", "12,000,000"], 3)
    True
    >>> is_footer(["D1", "won", "5"], 3)
    False
    """
    words = [c.strip() for c in cells if c and c.strip()]
    if not words:
        return True
    if FOOTER_PATTERN.search(words[0]):
        return True
    if len(cells) != width and width > 1:
        # a short row of one or two cells is a note; a row split by an unquoted delimiter is data
        return len(cells) < width and (len(words) == 1 or (width >= 4 and len(words) <= 2))
    return width >= 3 and len(words) == 1 and " " in words[0]


def _footer_block(records: Sequence[Sequence[str]], width: int) -> int:
    """How many records at the end are footers or blank (at most MAX_FOOTER_ROWS)."""
    n = 0
    for rec in reversed(records):
        if n >= MAX_FOOTER_ROWS or not is_footer(rec, width):
            break
        n += 1
    return n


def _footer_text(cells: Iterable[str]) -> str:
    text = " ".join(c.strip() for c in cells if c and c.strip())
    return text if len(text) <= 80 else text[:77] + "..."


def _column_names(header: Sequence[str], label: str, limits: Limits) -> list[str]:
    if len(header) > limits.max_columns:
        raise Unusable(
            f"{label} has {len(header):,} columns; the limit is {limits.max_columns:,}: "
            "export only the columns you need"
        )
    names: list[str] = []
    seen: Counter[str] = Counter()
    for i, cell in enumerate(header):
        name = (cell or "").strip() or f"column {i + 1}"
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name}.{seen[name] - 1}")
    return names


def _title_note(header_row: int, given: bool) -> list[str]:
    if header_row <= 1:
        return []
    above = "row 1" if header_row == 2 else f"rows 1-{header_row - 1}"
    how = "as the mapping says" if given else "found below the title"
    return [f"header on row {header_row} ({how}); {above} above it not loaded"]


def _footer_note(footers: Sequence[tuple[int, str]]) -> list[str]:
    if not footers:
        return []
    shown = "; ".join(f"row {r:,}: '{t}'" for r, t in footers[:3])
    more = f" and {len(footers) - 3} more" if len(footers) > 3 else ""
    n = len(footers)
    rows = "1 footer row" if n == 1 else f"{n} footer rows"
    return [f"{rows} below the data not loaded (not counted as rows read): {shown}{more}"]


#: ASCII white space (what ``pyarrow.compute.ascii_trim_whitespace`` trims), by byte value.
ASCII_WHITE = np.zeros(256, dtype=bool)
ASCII_WHITE[[9, 10, 11, 12, 13, 32]] = True
#: White space trimmed before telling a blank cell (RE2's ``\s``: no vertical tab).
_BLANK_WHITE = ASCII_WHITE.copy()
_BLANK_WHITE[11] = False


def _chunks(arr: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(arr.chunks) if isinstance(arr, pa.ChunkedArray) else [arr]


def _byte_edges(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of each value of a ``large_string`` array, read from its buffers without a copy:
    its length in bytes, its first and its last byte (-1 when empty)."""
    n = len(chunk)
    offsets = np.frombuffer(
        chunk.buffers()[1], dtype=np.int64, count=n + 1, offset=8 * chunk.offset
    )
    lengths = np.diff(offsets)
    buf = chunk.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8) if buf is not None else np.zeros(0, np.uint8)
    first = np.full(n, -1, dtype=np.int16)
    last = np.full(n, -1, dtype=np.int16)
    filled = lengths > 0
    first[filled] = data[offsets[:-1][filled]]
    last[filled] = data[offsets[1:][filled] - 1]
    return lengths, first, last


def _white(table: np.ndarray, edge: np.ndarray) -> np.ndarray:
    return table[edge.clip(0)] & (edge >= 0)


def padded_or_empty(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a present value of ``large_string`` text is empty or starts or ends with
    ASCII white space: what trimming would change (read from the buffers, no copy)."""
    for chunk in _chunks(arr):
        n = len(chunk)
        if n == 0:
            continue
        offsets = np.frombuffer(
            chunk.buffers()[1], dtype=np.int64, count=n + 1, offset=8 * chunk.offset
        )
        starts, ends = offsets[:-1], offsets[1:]
        empty = ends == starts
        if empty.any():
            if chunk.null_count == 0 or (empty & np.asarray(chunk.is_valid())).any():
                return True
            lengths, first, last = _byte_edges(chunk)  # nulls only: the general way
            if (_white(ASCII_WHITE, first) | _white(ASCII_WHITE, last)).any():
                return True
            continue
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)
        if ASCII_WHITE[data[starts]].any() or ASCII_WHITE[data[ends - 1]].any():
            return True
    return False


def all_ascii(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether every byte of ``large_string`` text is ASCII (a null's bytes included)."""
    for chunk in _chunks(arr):
        if len(chunk) == 0 or chunk.buffers()[2] is None:
            continue
        offsets = np.frombuffer(
            chunk.buffers()[1], dtype=np.int64, count=len(chunk) + 1, offset=8 * chunk.offset
        )
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        if len(data) and data.max() >= 128:
            return False
    return True


def _maybe_blank(s: pd.Series) -> np.ndarray:
    """Cells that may be blank: empty, missing, or starting with white space."""
    out = []
    for chunk in _chunks(_arrow_text(s)):
        lengths, first, _ = _byte_edges(chunk)
        missing = ~np.asarray(chunk.is_valid()) if chunk.null_count else False
        out.append((lengths == 0) | _white(_BLANK_WHITE, first) | missing)
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


def _drop_blank_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Blank records (all cells empty) are gaps a spreadsheet shows, not rows."""
    if frame.empty or frame.shape[1] == 0:
        return frame
    blank = np.ones(len(frame), dtype=bool)
    for col in frame.columns:
        if pd.api.types.is_string_dtype(frame[col]):
            blank &= _maybe_blank(frame[col])
            if not blank.any():
                return frame
        # a character other than RE2's \s white space is left after trimming that
        trimmed = pc.utf8_trim(_arrow_text(frame[col]), characters=" \t\n\f\r")
        filled = pc.greater(pc.binary_length(trimmed), 0)
        blank &= ~pc.fill_null(filled, False).to_numpy(zero_copy_only=False)
        if not blank.any():
            return frame
    return frame[~blank]


def _arrow_text(s: pd.Series) -> pa.Array:
    if not pd.api.types.is_string_dtype(s):
        s = s.astype("str")
    return pa.array(s, type=pa.large_string(), from_pandas=True)


# ---------------------------------------------------------------------------
# CSV


@dataclass
class _Encoding:
    codec: str  # Python codec
    name: str  # as reported


def _detect_encoding(path: Path, head: bytes, label: str, limits: Limits) -> _Encoding:
    if head.startswith(codecs.BOM_UTF8):
        return _Encoding("utf-8-sig", "utf-8 with BOM")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _Encoding("utf-16", "UTF-16")
    if head[:4096].count(b"\x00") > len(head[:4096]) // 4:
        raise Unusable(
            f"{label} looks like UTF-16 or UTF-32 text without a byte-order mark (an encoding "
            "problem, not a problem with the columns); save it as CSV UTF-8"
        )
    if b"\x00" in head:
        raise Unusable(
            f"{label} holds binary data, not text; export it again as CSV (or save the "
            "workbook as .xlsx)"
        )
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return _Encoding("utf-8", "utf-8")
    except UnicodeDecodeError:
        return _legacy_encoding(path)


def _legacy_encoding(path: Path) -> _Encoding:
    """cp1252 when every byte 0x80-0x9F is one cp1252 defines, else latin-1."""
    data = path.read_bytes()
    if re.search(rb"[\x80-\x9f]", data) and not re.search(rb"[\x81\x8d\x8f\x90\x9d]", data):
        return _Encoding("cp1252", "cp1252")
    return _Encoding("latin-1", "latin-1")


def _sniff(text: str, complete: bool) -> tuple[str, list[list[str]]]:
    """Delimiter and the first records of ``text`` parsed with it."""
    lines = text.splitlines()
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    lines = lines[:200]
    best, best_score = DELIMITERS[0], -1
    for sep in DELIMITERS:
        counts = [line.count(sep) + 1 for line in lines if line.strip()]
        wide = [c for c in counts if c > 1]
        if not wide:
            continue
        width, _ = Counter(wide).most_common(1)[0]
        score = sum(1 for c in counts if c == width)
        if score > best_score:
            best, best_score = sep, score
    return best, _parse_records(lines, best)


def _parse_records(lines: Sequence[str], sep: str) -> list[list[str]]:
    old = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)
    try:
        return [list(r) for r in csv.reader(lines, delimiter=sep)]
    except csv.Error:
        return [line.split(sep) for line in lines]
    finally:
        csv.field_size_limit(old)


def _read_csv(path: Path, label: str, header_row: int | None, limits: Limits) -> Export:
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    complete = len(head) == path.stat().st_size
    enc = _detect_encoding(path, head, label, limits)
    try:
        return _read_csv_as(path, label, header_row, limits, enc, head, complete)
    except UnicodeDecodeError:
        if enc.codec != "utf-8":
            raise
        # the first bytes were UTF-8 but a later one is not: a Windows export
        return _read_csv_as(path, label, header_row, limits, _legacy_encoding(path), head, complete)


def _read_csv_as(
    path: Path,
    label: str,
    header_row: int | None,
    limits: Limits,
    enc: _Encoding,
    head: bytes,
    complete: bool,
) -> Export:
    whole: str | None = None
    if enc.codec == "utf-16":
        whole = path.read_bytes().decode("utf-16")
        head_text, complete = whole[:HEAD_BYTES], len(whole) <= HEAD_BYTES
    else:
        head_text = codecs.getincrementaldecoder(enc.codec)("replace").decode(head, final=complete)
    sep, records = _sniff(head_text, complete)
    if header_row is not None:
        hidx = header_row - 1
        if hidx >= len(records):
            raise Unusable(
                f"{label}: header_row {header_row} is below the first {len(records)} rows; "
                "give the row a spreadsheet shows the column names on"
            )
    else:
        hidx = find_header(records)
    header = records[hidx] if records else []
    if not _nonempty(header):
        raise Unusable(f"{label} has no header line; the first line must name the columns")
    names = _column_names(header, label, limits)
    table, invalid = _arrow_csv(path, label, enc, whole, sep, names, hidx + 1)
    frame = table.to_pandas()
    first = hidx + 2
    frame.index = pd.RangeIndex(first, first + len(frame), name="row")
    tail = _tail_records(path, enc, whole, sep)
    frame, footers = _split_footers(frame, tail, invalid, len(names), first, label, path, enc, sep)
    frame = _drop_blank_rows(frame)
    export = Export(frame, enc.name, sep, None, hidx + 1, footers)
    export.notes = _title_note(hidx + 1, header_row is not None) + _footer_note(footers)
    return export


def _arrow_csv(
    path: Path,
    label: str,
    enc: _Encoding,
    whole: str | None,
    sep: str,
    names: list[str],
    skip: int,
    block: int | None = None,
    handle_invalid: bool = False,
) -> tuple[pa.Table, list[str]]:
    """Parse with pyarrow; rows of the wrong width are collected (a second pass) only if any."""
    invalid: list[str] = []
    if block is None:
        size = len(whole) if whole is not None else path.stat().st_size
        block = min(LARGE_BLOCK_BYTES, max(BLOCK_BYTES, size // BLOCKS_PER_FILE))

    def handler(row) -> str:  # noqa: ANN001 - pyarrow's InvalidRow
        invalid.append(row.text)
        return "skip"

    read = pacsv.ReadOptions(
        skip_rows=skip,
        column_names=names,
        block_size=block,
        encoding="utf8" if enc.codec in ("utf-8", "utf-8-sig", "utf-16") else enc.codec,
    )
    parse = pacsv.ParseOptions(
        delimiter=sep,
        # quoted values may span lines; checking for that costs, so only when quotes exist
        newlines_in_values=_has_quotes(path, whole),
        ignore_empty_lines=False,
        invalid_row_handler=handler if handle_invalid else None,
    )
    convert = pacsv.ConvertOptions(
        column_types={n: pa.large_string() for n in names},
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    source = pa.BufferReader(whole.encode("utf-8")) if whole is not None else str(path)
    try:
        table = pacsv.read_csv(
            source, read_options=read, parse_options=parse, convert_options=convert
        )
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if "UTF8" in text or "utf8" in text.lower() or "utf-8" in text.lower():
            raise UnicodeDecodeError(enc.codec, b"", 0, 1, text) from None
        if ("straddling" in text or "block size" in text) and block < LARGE_BLOCK_BYTES:
            return _arrow_csv(
                path, label, enc, whole, sep, names, skip, LARGE_BLOCK_BYTES, handle_invalid
            )
        if text.startswith("CSV parse error: Expected") and not handle_invalid:
            return _arrow_csv(path, label, enc, whole, sep, names, skip, block, True)
        if "straddling" in text or "block size" in text:
            raise Unusable(
                f"{label} has a row longer than {LARGE_BLOCK_BYTES:,} bytes; check the export "
                "(no CRM record is this long)"
            ) from None
        if "Empty CSV file" in text:
            raise Unusable(f"{label} is empty; export it again") from None
        raise Unusable(
            f"{label} cannot be read as CSV ({text.splitlines()[0]}); export it again"
        ) from None
    return table, invalid


def _has_quotes(path: Path, whole: str | None) -> bool:
    if whole is not None:
        return '"' in whole
    import mmap

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return mm.find(b'"') >= 0


def _tail_records(path: Path, enc: _Encoding, whole: str | None, sep: str) -> list[list[str]]:
    if whole is not None:
        text, complete = whole[-TAIL_BYTES:], len(whole) <= TAIL_BYTES
    else:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - TAIL_BYTES))
            raw = fh.read()
        complete = size <= TAIL_BYTES
        text = raw.decode(enc.codec if enc.codec != "utf-8-sig" else "utf-8", errors="replace")
    lines = text.splitlines()
    if not complete and lines:
        lines = lines[1:]  # the first line may be cut
    lines = lines[-(MAX_FOOTER_ROWS + 1) :]
    return _parse_records(lines, sep)


def _split_footers(
    frame: pd.DataFrame,
    tail: list[list[str]],
    invalid: list[str],
    width: int,
    first: int,
    label: str,
    path: Path,
    enc: _Encoding,
    sep: str,
) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Take footer rows off the end of ``frame``; rows of the wrong width mid-file are an error."""
    n_block = _footer_block(tail, width)
    block = tail[len(tail) - n_block :] if n_block else []
    wrong_width = [r for r in block if _nonempty(r) and len(r) != width]
    if len(invalid) > len(wrong_width):
        raise Unusable(
            _ragged_row(path, label, enc, sep, first - 1) or f"{label} has rows of the wrong width"
        )
    last = first + len(frame) + len(invalid) - 1  # spreadsheet row of the last record
    footers: list[tuple[int, str]] = []
    in_frame = 0
    for k, rec in enumerate(block):
        row = last - (len(block) - 1 - k)
        if not _nonempty(rec) or len(rec) == width:
            in_frame += 1
        if _nonempty(rec):
            footers.append((row, _footer_text(rec)))
    if in_frame:
        frame = frame.iloc[: len(frame) - in_frame]
    return frame, footers


def _ragged_row(path: Path, label: str, enc: _Encoding, sep: str, header_row: int) -> str | None:
    """Name the first row whose number of fields differs from the header's."""
    old = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)
    codec = "utf-8-sig" if enc.codec == "utf-8" else enc.codec
    try:
        with open(path, encoding=codec, newline="", errors="replace") as fh:
            reader = csv.reader(fh, delimiter=sep)
            header = None
            for row_number, record in enumerate(reader, start=1):
                if row_number < header_row:
                    continue
                if header is None:
                    header = record
                    continue
                if record and len(record) != len(header):
                    return (
                        f"{label} row {row_number} has {len(record)} fields but the header has "
                        f"{len(header)}; quote values that contain '{sep}' and export it again"
                    )
    finally:
        csv.field_size_limit(old)
    return None


# ---------------------------------------------------------------------------
# Excel


def _check_zip(path: Path, label: str, limits: Limits) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except zipfile.BadZipFile as exc:
        raise Unusable(
            f"{label} cannot be read as an Excel .xlsx workbook ({exc}); export it again"
        ) from None
    total = sum(i.file_size for i in infos)
    packed = max(sum(i.compress_size for i in infos), 1)
    if total > limits.max_xlsx_bytes or total / packed > limits.max_xlsx_ratio:
        raise Unusable(
            f"{label} expands from {packed:,} to {total:,} bytes ({total / packed:,.0f} times); "
            f"the limits are {limits.max_xlsx_bytes:,} bytes and {limits.max_xlsx_ratio:g} times: "
            "a workbook this repetitive is not an export; save the data as CSV"
        )


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _sheet_rows(ws, limit: int | None = None) -> list[list[str]]:  # noqa: ANN001 - openpyxl sheet
    rows: list[list[str]] = []
    for values in ws.iter_rows(values_only=True):
        rows.append([_cell_text(v) for v in values])
        if limit is not None and len(rows) >= limit:
            break
    return rows


def _pick_sheet(book, label: str, sheet: str | int | None) -> tuple[object, list[str]]:  # noqa: ANN001
    names = book.sheetnames
    if sheet is not None:
        if isinstance(sheet, int) and not isinstance(sheet, bool):
            if not 0 <= sheet < len(names):
                raise SheetMissing(sheet, names)
            return book[names[sheet]], []
        if str(sheet) not in names:
            raise SheetMissing(sheet, names)
        return book[str(sheet)], []
    if len(names) == 1:
        return book[names[0]], []
    scores = []
    for name in names:
        sample = _sheet_rows(book[name], HEADER_SCAN_ROWS + 20)
        if not sample:
            scores.append(0)
            continue
        h = find_header(sample)
        width = _nonempty(sample[h])
        body = sum(1 for r in sample[h + 1 :] if _nonempty(r) >= 2)
        scores.append(width * body if width >= 2 else 0)
    if scores[0] > 0 and scores[0] >= max(scores) / 4:
        return book[names[0]], []
    best = int(np.argmax(scores))
    if scores[best] == 0:
        return book[names[0]], []
    return book[names[best]], [
        f"data read from sheet '{names[best]}' (the first sheet, '{names[0]}', holds no table); "
        f"set sheet: in the mapping to choose another"
    ]


class SheetMissing(Unusable):
    """The sheet the mapping names is not in the workbook."""

    def __init__(self, sheet: str | int, names: list[str]):
        super().__init__(f"no sheet {sheet!r} (its sheets: {', '.join(names)})")
        self.sheet, self.names = sheet, names


def _has_formulas(path: Path) -> bool:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
                with zf.open(info) as fh:
                    while chunk := fh.read(1 << 20):
                        if b"<f>" in chunk or b"<f " in chunk or b":f>" in chunk:
                            return True
    return False


def _read_xlsx(
    path: Path, label: str, sheet: str | int | None, header_row: int | None, limits: Limits
) -> Export:
    import openpyxl

    _check_zip(path, label, limits)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # any reader failure means an unreadable workbook
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Unusable(
            f"{label} cannot be read as an Excel .xlsx workbook ({detail}); export it again"
        ) from None
    try:
        ws, notes = _pick_sheet(book, label, sheet)
        max_row = ws.max_row or 0
        if max_row > limits.max_rows + HEADER_SCAN_ROWS:
            raise Unusable(
                f"{label} sheet '{ws.title}' has {max_row:,} rows; the limit is "
                f"{limits.max_rows:,}: split the export or save it as CSV"
            )
        rows = _sheet_rows(ws, limits.max_rows + HEADER_SCAN_ROWS + 1)
        formulas = _formula_cells(path, ws.title, rows) if _has_formulas(path) else {}
    finally:
        book.close()
    if not rows or not any(_nonempty(r) for r in rows):
        raise Unusable(f"{label} is empty; export it again")
    width = max(len(r) for r in rows)
    hidx = header_row - 1 if header_row is not None else find_header(rows)
    if hidx >= len(rows):
        raise Unusable(
            f"{label}: header_row {header_row} is below the last row ({len(rows)}); "
            "give the row a spreadsheet shows the column names on"
        )
    names = _column_names(list(rows[hidx]) + [""] * (width - len(rows[hidx])), label, limits)
    body = [list(r) + [""] * (width - len(r)) for r in rows[hidx + 1 :]]
    # a sheet's trailing empty columns are not columns
    while names and names[-1].startswith("column ") and not any(r[len(names) - 1] for r in body):
        names.pop()
    body = [r[: len(names)] for r in body]
    n_foot = _footer_block(_trim_trailing_blank(body), len(names))
    real = len(_trim_trailing_blank(body))
    footers = [
        (hidx + 2 + i, _footer_text(body[i]))
        for i in range(real - n_foot, real)
        if _nonempty(body[i])
    ]
    body = body[: real - n_foot]
    frame = pd.DataFrame(body, columns=names, dtype="str")
    frame.index = pd.RangeIndex(hidx + 2, hidx + 2 + len(frame), name="row")
    frame = _drop_blank_rows(frame)
    cells = {
        names[c]: pd.Index(sorted(r for r in rs if r in frame.index), name="row")
        for c, rs in formulas.items()
        if c < len(names) and any(r in frame.index for r in rs)
    }
    export = Export(frame, None, None, ws.title, hidx + 1, footers, cells)
    export.notes = notes + _title_note(hidx + 1, header_row is not None) + _footer_note(footers)
    return export


def _trim_trailing_blank(body: list[list[str]]) -> list[list[str]]:
    end = len(body)
    while end and not _nonempty(body[end - 1]):
        end -= 1
    return body[:end]


def _formula_cells(path: Path, title: str, rows: list[list[str]]) -> dict[int, list[int]]:
    """Formula cells with no saved value: put the formula in ``rows``; rows by column index."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=False)
    found: dict[int, list[int]] = {}
    try:
        for i, values in enumerate(book[title].iter_rows(values_only=True)):
            if i >= len(rows):
                break
            for j, v in enumerate(values):
                if isinstance(v, str) and v.startswith("=") and j < len(rows[i]) and not rows[i][j]:
                    rows[i][j] = v
                    found.setdefault(j, []).append(i + 1)
    finally:
        book.close()
    return found


# ---------------------------------------------------------------------------
# Parquet and limits


def _read_parquet(path: Path, label: str, limits: Limits) -> Export:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # any reader failure means an unreadable file
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Unusable(f"{label} cannot be read as Parquet ({detail}); export it again") from None
    for f in schema:
        t = f.type
        if (
            pa.types.is_list(t)
            or pa.types.is_large_list(t)
            or pa.types.is_struct(t)
            or pa.types.is_map(t)
        ):
            raise Unusable(
                f"{label} column {f.name} holds lists or records ({t}), not one value per cell; "
                "flatten it (e.g. join the items into text) or drop it, and export again"
            )
    if len(schema) > limits.max_columns:
        raise Unusable(
            f"{label} has {len(schema):,} columns; the limit is {limits.max_columns:,}: "
            "export only the columns you need"
        )
    try:
        table = pq.read_table(path)
        frame = table.to_pandas(coerce_temporal_nanoseconds=False)
    except Exception as exc:  # any reader failure means an unreadable file
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Unusable(f"{label} cannot be read as Parquet ({detail}); export it again") from None
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.index = pd.RangeIndex(2, len(frame) + 2, name="row")
    return Export(frame)


def _check_shape(export: Export, label: str, limits: Limits) -> None:
    frame = export.frame
    if len(frame) > limits.max_rows:
        raise Unusable(
            f"{label} has {len(frame):,} rows; the limit is {limits.max_rows:,}: "
            "split the export (e.g. by year)"
        )
    if frame.shape[1] > limits.max_columns:
        raise Unusable(
            f"{label} has {frame.shape[1]:,} columns; the limit is {limits.max_columns:,}: "
            "export only the columns you need"
        )
    for col in frame.columns:
        s = frame[col]
        if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
            continue
        arr = _arrow_text(s)
        if (pc.max(pc.binary_length(arr)).as_py() or 0) <= limits.max_cell_chars:
            continue  # no value has more bytes, so none has more characters
        lengths = pc.utf8_length(arr)
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > limits.max_cell_chars:
            pos = int(pc.index(lengths, longest).as_py())
            raise Unusable(
                f"{label} row {frame.index[pos]}, column {col}: a value of {longest:,} characters; "
                f"the limit is {limits.max_cell_chars:,}: check the export (no CRM field is this "
                "long) or leave the column out"
            )


__all__ = ["Export", "SheetMissing", "Unusable", "find_header", "is_footer", "read_export"]
