"""Unit tests of revmodel.detect, revmodel.readers, revmodel.yamlio and revmodel.limits.

Expected values are computed in the test from first principles (arithmetic,
``datetime``), not read back from the code under test.
"""

from __future__ import annotations

import datetime as dt
import time
import unicodedata
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from revmodel import detect, readers, sources
from revmodel.errors import DataError, ParameterError
from revmodel.limits import MAX_CUBE_CELLS, Limits, cube_size_problem
from revmodel.yamlio import MAX_DEPTH, load_yaml

AS_OF = "2026-06-30"


def text(*values: str | None) -> pd.Series:
    return pd.Series(list(values), dtype="str")


def rules(issues) -> dict[str, list[int]]:
    return {i.rule: list(i.rows) for i in issues}


# ---------------------------------------------------------------------------
# numbers


@pytest.mark.parametrize(
    ("values", "hint", "expected"),
    [
        (["$12,500.00", "USD 1,200", "1,300 USD", "(1,200.00)"], False, [12500, 1200, 1300, -1200]),
        (["€ 1.234,56", "51.127,31", "1.234"], False, [1234.56, 51127.31, 1234]),
        (["1.234", "12"], True, [1234, 12]),  # a semicolon export: decimal comma
        (["1.234", "12"], False, [1.234, 12]),  # a comma export: decimal point
        (["1,5", "2"], True, [1.5, 2]),
        (["1 234,50", "1\u00a0000,00", "2\u202f000,25"], False, [1234.5, 1000, 2000.25]),
        (["1'234.50", "500-"], False, [1234.5, -500]),
        (["1.234.567", "0,5"], False, [1234567, 0.5]),
        (["£ 99", "-£5", "1e3"], False, [99, -5, 1000]),
    ],
)
def test_numbers_in_every_notation(values, hint, expected):
    parsed, issues = detect.parse_numbers(text(*values), european_hint=hint)
    assert issues == []
    np.testing.assert_allclose(parsed.to_numpy(), np.array(expected, dtype=float))


def test_decimal_separator_is_decided_per_column():
    # 51.127,31 can only be European: the whole column is, so 1.234 is one thousand ...
    eu, _ = detect.parse_numbers(text("1.234", "51.127,31"))
    # ... while in a column of English numbers 1.234 stays one point two three four
    us, _ = detect.parse_numbers(text("1.234", "2,000.50"))
    assert eu.tolist() == [1000 + 234, 51127 + 0.31]
    assert us.tolist() == [1 + 0.234, 2000 + 0.5]


def test_a_number_against_the_columns_convention_is_reported_not_misread():
    parsed, issues = detect.parse_numbers(text("1,234.50", "2,000.00", "1.234,50"))
    assert parsed.iloc[:2].tolist() == [1234.5, 2000.0]
    assert np.isnan(parsed.iloc[2])
    assert rules(issues) == {"number_format": [2]}


def test_non_finite_absurd_and_not_numbers():
    parsed, issues = detect.parse_numbers(
        text("inf", "-Infinity", "nan", "1e308", "12", "abc", None), max_abs=1e12
    )
    assert rules(issues) == {"non_finite": [0, 1, 2], "too_large": [3], "number": [5]}
    assert parsed.iloc[4] == 12
    assert parsed.drop(index=4).isna().all()


def test_whole_numbers():
    parsed, issues = detect.parse_numbers(text("12", "12.5", "1,200"), whole=True)
    assert rules(issues) == {"whole": [1]}
    assert parsed.tolist()[::2] == [12, 1200]


def test_typed_numbers_are_checked_too():
    values, issues = detect.check_numbers(
        pd.Series([1.0, np.inf, -2e13, 3.0]), max_abs=1e12, whole=False
    )
    assert rules(issues) == {"non_finite": [1], "too_large": [2]}
    assert values.tolist()[::3] == [1.0, 3.0]


# ---------------------------------------------------------------------------
# dates

WINDOW = (pd.Timestamp("1990-01-01"), pd.Timestamp("2036-06-30"))


def _epoch_ms(y: int, m: int, d: int) -> int:
    return int(dt.datetime(y, m, d, tzinfo=dt.UTC).timestamp() * 1000)


def _excel(y: int, m: int, d: int) -> int:
    return (dt.date(y, m, d) - dt.date(1899, 12, 30)).days


@pytest.mark.parametrize(
    ("values", "fmt", "expected"),
    [
        (["20.10.2016", "01.02.2017"], None, ["2016-10-20", "2017-02-01"]),
        (["03.04.2025"], None, ["2025-04-03"]),  # dotted: day first
        (["31/01/2024", "05/02/2024"], None, ["2024-01-31", "2024-02-05"]),
        (["01/31/2024", "02/05/2024"], None, ["2024-01-31", "2024-02-05"]),
        (
            [str(_epoch_ms(2025, 1, 31)), str(_epoch_ms(2025, 2, 28) // 1000)],
            None,
            ["2025-01-31", "2025-02-28"],
        ),
        (
            [str(_excel(2025, 1, 31)), f"{_excel(2025, 2, 28)}.75"],
            None,
            ["2025-01-31", "2025-02-28"],
        ),
        (
            ["2025-01-31T23:30:00-05:00", "2025-02-28T00:15:00+09:00"],
            None,
            ["2025-01-31", "2025-02-28"],
        ),
        (
            ["Jan 5, 2026", "5 March 2026", "20260105"],
            None,
            ["2026-01-05", "2026-03-05", "2026-01-05"],
        ),
        ([str(_epoch_ms(2025, 1, 31))], "epoch_ms", ["2025-01-31"]),
        ([str(_epoch_ms(2025, 1, 31) // 1000)], "epoch_s", ["2025-01-31"]),
        ([str(_excel(2025, 1, 31))], "excel", ["2025-01-31"]),
        (["31-01-2025"], "%d-%m-%Y", ["2025-01-31"]),
    ],
)
def test_dates_in_every_notation(values, fmt, expected):
    parsed, issues = detect.parse_dates(text(*values), fmt, WINDOW)
    assert issues == []
    assert parsed.dtype == "datetime64[ns]"
    assert parsed.dt.strftime("%Y-%m-%d").tolist() == expected


def test_dates_outside_the_window_are_reported_not_a_traceback():
    parsed, issues = detect.parse_dates(
        text("1500-01-01", "2500-06-30", "1900-01-01", "2025-01-31", "2099-12-31"), None, WINDOW
    )
    assert rules(issues) == {"date_window": [0, 1, 2, 4]}
    assert parsed.dt.strftime("%Y-%m-%d").tolist()[3] == "2025-01-31"
    assert parsed.isna().sum() == 4
    (issue,) = issues
    assert issue.reason == "date outside the plausible window 1990-01-01 to 2036-06-30"


def test_a_day_past_the_months_end_is_unparseable_never_rolled_over():
    parsed, issues = detect.parse_dates(
        text("2025-02-30", "2025-04-31", "2024-02-29", "2025-02-28", "2025-2-3"), None, WINDOW
    )
    assert parsed.dt.strftime("%Y-%m-%d").tolist()[2:] == ["2024-02-29", "2025-02-28", "2025-02-03"]
    assert parsed[:2].isna().all()  # not 2025-03-02 and 2025-05-01
    assert rules(issues) == {"date": [0, 1]}


def test_typed_dates_outside_the_window():
    values = pd.Series(np.array(["2500-01-01", "2025-03-31", "1500-01-01"], dtype="datetime64[us]"))
    parsed, issues = detect.check_dates(values, WINDOW)
    assert rules(issues) == {"date_window": [0, 2]}
    assert parsed.dtype == "datetime64[ns]" and parsed[1] == pd.Timestamp("2025-03-31")


def test_ambiguous_slashed_dates_ask_for_a_format():
    with pytest.raises(detect.AmbiguousDates) as exc:
        detect.parse_dates(text("03/04/2025", "05/06/2025"), None, WINDOW)
    assert (exc.value.value, exc.value.row) == ("03/04/2025", 0)


def test_window_follows_the_limits():
    lo, hi = Limits(min_date="2000-01-01", max_years_ahead=2).date_window(pd.Timestamp(AS_OF))
    assert (lo, hi) == (pd.Timestamp("2000-01-01"), pd.Timestamp("2028-06-30"))


# ---------------------------------------------------------------------------
# reading files


def write(path: Path, content: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8 with BOM"),
        ("utf-16", "UTF-16"),
        ("cp1252", "cp1252"),
    ],
)
def test_encodings(tmp_path, encoding, expected):
    path = write(tmp_path / "x.csv", "name;amount\nCafé;€ 5\nZoë;€ 6\n", encoding)
    export = readers.read_export(path)
    assert export.encoding == expected
    assert export.frame["name"].tolist() == ["Café", "Zoë"]
    assert export.frame["amount"].tolist() == ["€ 5", "€ 6"]
    assert export.delimiter == ";"


def test_a_late_non_utf8_byte_switches_to_cp1252(tmp_path):
    rows = "".join(f"R{i},ok\n" for i in range(readers.HEAD_BYTES // 6))
    path = write(tmp_path / "x.csv", b"id,v\n" + rows.encode() + "R,5 €\n".encode("cp1252"))
    export = readers.read_export(path)
    assert export.encoding == "cp1252"
    assert export.frame["v"].iloc[-1] == "5 €"


def test_title_rows_footers_and_row_numbers(tmp_path):
    lines = [
        "Pipeline by owner",  # row 1
        "Filtered by: Owner = me",  # row 2
        "",  # row 3
        "id,stage,amount",  # row 4
        "D1,won,5",  # row 5
        "",  # row 6
        'D2,lost,"1,000"',  # row 7
        "Grand Totals (2 records),,1005",  # row 8
        "",  # row 9
        "Confidential",  # row 10
    ]
    export = readers.read_export(write(tmp_path / "x.csv", "\n".join(lines) + "\n"))
    assert export.header_row == 4
    assert export.frame.index.tolist() == [5, 7]
    assert export.frame["id"].tolist() == ["D1", "D2"]
    assert export.footers == [(8, "Grand Totals (2 records) 1005"), (10, "Confidential")]


def test_a_header_row_from_the_mapping_wins(tmp_path):
    path = write(tmp_path / "x.csv", "a,b,c\nid,stage,amount\nD1,won,5\n")
    assert readers.read_export(path).frame.columns.tolist() == ["a", "b", "c"]
    export = readers.read_export(path, header_row=2)
    assert export.frame.columns.tolist() == ["id", "stage", "amount"]
    assert export.frame.index.tolist() == [3]


def test_find_header_and_is_footer():
    rows = [["Report"], ["", ""], ["Id", "Stage", "Amount", "Close"], ["1", "won", "5", "2025"]]
    assert readers.find_header(rows) == 2
    assert readers.is_footer(["Grand Totals (1,500 records)", "", "12"], 3)
    assert readers.is_footer(["Copyright © 2026 Example"], 3)
    assert readers.is_footer(["", "", ""], 3)
    assert not readers.is_footer(["D1", "won", "5"], 3)
    assert not readers.is_footer(["D1", "won", "1", "500"], 3)  # an unquoted comma: data


def test_xlsx_data_sheet_title_footer_and_formula(tmp_path):
    book = openpyxl.Workbook()
    cover = book.active
    cover.title = "Cover"
    cover.append(["Quarterly pipeline"])
    sheet = book.create_sheet("Data")
    sheet.append(["Report generated 2026-01-05"])
    sheet.append(["id", "stage", "amount", "close"])
    sheet.append(["D1", "won", 1200.5, dt.datetime(2025, 1, 31)])
    sheet.append(["D2", "won", "=C3*2", dt.datetime(2025, 2, 28)])
    sheet.append(["Grand Totals (2 records)", None, 1200.5, None])
    book.save(tmp_path / "x.xlsx")
    export = readers.read_export(tmp_path / "x.xlsx")
    assert export.sheet == "Data"
    assert export.header_row == 2
    assert export.frame.to_dict("list") == {
        "id": ["D1", "D2"],
        "stage": ["won", "won"],
        "amount": ["1200.5", "=C3*2"],
        "close": ["2025-01-31", "2025-02-28"],
    }
    assert export.formula_cells["amount"].tolist() == [4]
    assert export.footers == [(5, "Grand Totals (2 records) 1200.5")]


def test_cell_limit_names_row_and_column(tmp_path):
    path = write(tmp_path / "x.csv", "id,notes\nA,ok\nB," + "x" * 200 + "\n")
    with pytest.raises(readers.Unusable) as exc:
        readers.read_export(path, limits=Limits(max_cell_chars=100))
    assert str(exc.value) == (
        "x.csv row 3, column notes: a value of 200 characters; the limit is 100: check the "
        "export (no CRM field is this long) or leave the column out"
    )


def test_row_and_file_size_limits(tmp_path):
    content = "id\n" + "".join(f"{i}\n" for i in range(11))
    path = write(tmp_path / "x.csv", content)
    with pytest.raises(readers.Unusable, match="x.csv has 11 rows; the limit is 10"):
        readers.read_export(path, limits=Limits(max_rows=10))
    with pytest.raises(readers.Unusable, match=f"x.csv is {len(content)} bytes; the limit is 20"):
        readers.read_export(path, limits=Limits(max_file_bytes=20))


# ---------------------------------------------------------------------------
# loading: currency, NFC names, blanked values


def test_currency_from_mapping_and_from_amounts(tmp_path):
    data = tmp_path / "d"
    write(
        data / "opportunities.csv",
        "opportunity_id;stage;amount;close_date\nO1;won;€ 1.234,50;2025-01-31\n",
    )
    result = sources.load(data, as_of=AS_OF)
    assert result.currency == "EUR"
    assert result.tables["opportunities"]["amount"].tolist() == [1234.5]
    write(data / "mapping.yaml", "currency: chf\n")
    assert sources.load(data, as_of=AS_OF).currency == "CHF"
    write(data / "mapping.yaml", "currency: EURO\n")
    with pytest.raises(DataError, match="currency 'EURO' is not an ISO 4217 code"):
        sources.load(data, as_of=AS_OF)


def test_names_are_nfc_and_trimmed(tmp_path):
    composed, decomposed = "Zo\u00eb", "Zoe\u0308"
    assert composed != decomposed
    write(tmp_path / "reps.csv", f"rep_id,manager\nR1,{composed}\nR2,  {decomposed} \n")
    write(
        tmp_path / "opportunities.csv",
        "opportunity_id,stage,amount,close_date\nO1,won,1,2025-01-31\n",
    )
    managers = sources.load(tmp_path, as_of=AS_OF).tables["reps"]["manager"]
    assert managers.nunique() == 1
    assert managers.iloc[0] == unicodedata.normalize("NFC", decomposed)


def test_bad_optional_value_is_blanked_and_counted(tmp_path):
    write(
        tmp_path / "opportunities.csv",
        "opportunity_id,stage,amount,close_date,created_date\n"
        "O1,won,10,2025-01-31,garbage\nO2,won,20,2025-02-28,2025-01-01\n",
    )
    result = sources.load(tmp_path, quarantine_dir=tmp_path / "q", as_of=AS_OF)
    rep = result.reports["opportunities"]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_quarantined, rep.values_blanked) == (
        2,
        2,
        0,
        1,
    )
    assert result.tables["opportunities"]["amount"].sum() == 10 + 20
    assert result.tables["opportunities"]["created_date"].isna().tolist() == [True, False]
    written = pd.read_csv(tmp_path / "q" / "opportunities.blanked.csv", dtype=str)
    assert written.values.tolist() == [
        ["opportunities.csv", "2", "created_date", "garbage", "unparseable date", "blanked"]
    ]
    assert result.status == 1


def test_footers_are_not_rows(tmp_path):
    write(
        tmp_path / "opportunities.csv",
        "opportunity_id,stage,amount,close_date\nO1,won,10,2025-01-31\nGrand Totals (1 record),,10,\n",
    )
    result = sources.load(tmp_path, as_of=AS_OF)
    rep = result.reports["opportunities"]
    assert (rep.rows_read, rep.rows_accepted, rep.footers) == (
        1,
        1,
        [(3, "Grand Totals (1 record) 10")],
    )
    assert result.status == 0


# ---------------------------------------------------------------------------
# YAML and the cube-size rule


def test_yaml_refuses_aliases_depth_fast(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
        + "".join(
            f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
    )
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 20_000 + "]" * 20_000 + "\n")
    block = tmp_path / "block.yaml"
    block.write_text(
        "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 5)) + "  " * 60 + "v: 1\n"
    )
    start = time.process_time()
    with pytest.raises(DataError, match=r"bomb.yaml has an anchor \(&a\) at line 1"):
        load_yaml(bomb)
    with pytest.raises(ParameterError, match=f"deep.yaml has nesting deeper than {MAX_DEPTH}"):
        load_yaml(deep, error=ParameterError)
    with pytest.raises(DataError, match=f"nesting deeper than {MAX_DEPTH} levels at line"):
        load_yaml(block)
    # a bound on work, not wall-clock: all three are refused without expanding anything
    assert time.process_time() - start < 5


def test_yaml_text_scalars_and_types(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("a: yes\nb: 007\nc: 2026-01-31\nd: 1.5\n")
    assert load_yaml(path) == {"a": True, "b": 7, "c": dt.date(2026, 1, 31), "d": 1.5}
    assert load_yaml(path, text_scalars=True) == {
        "a": "yes",
        "b": "007",
        "c": "2026-01-31",
        "d": "1.5",
    }


def test_cube_size_rule():
    assert cube_size_problem({"segment": 3, "region": 5, "rep": 500, "month": 60}) is None
    assert cube_size_problem({"region": 2001}).startswith("region has 2,001 distinct values")
    n_reps = MAX_CUBE_CELLS // (4 * 100 * 48) + 1
    message = cube_size_problem({"segment": 4, "region": 100, "rep": n_reps, "month": 48})
    assert message.startswith(f"the cube would have {4 * 100 * n_reps * 48:,} cells")
