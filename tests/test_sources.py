"""Unit tests of revmodel.sources: reading, mapping, parsing, validation, quarantine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revmodel import cli, schema, sources
from revmodel.errors import DataError

CORPUS = Path(__file__).parent / "malformed"
AS_OF = "2026-06-30"

REPS_CSV = "rep_id,rep_name,manager,region\nR1,Ana,Maria,EMEA\nR2,Ben,Maria,EMEA\n"
OPP_HEADER = "opportunity_id,rep_id,account_id,stage,amount,created_date,close_date\n"


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def opportunities(*rows: str) -> str:
    return OPP_HEADER + "".join(r + "\n" for r in rows)


CLEAN_ROWS = (
    "O1,R1,A1,won,1000,2025-01-02,2025-02-03",
    "O2,R2,A1,lost,500.5,2025-01-05,2025-03-04",
    "O3,R1,,proposal,,2025-02-01,2026-09-30",
)


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    write(data, "opportunities.csv", opportunities(*CLEAN_ROWS))
    write(data, "reps.csv", REPS_CSV)
    write(data, "accounts.csv", "account_id,employees\nA1,150\nA2,2500\n")
    return data


# ---------------------------------------------------------------------------
# tables, dtypes, status


def test_clean_folder_loads_canonical_tables(clean):
    result = sources.load(clean, as_of=AS_OF)
    assert result.status == 0
    assert set(result.tables) == {"opportunities", "reps", "accounts"}
    opp = result.tables["opportunities"]
    assert list(opp.columns) == list(schema.OPPORTUNITIES.column_names)
    assert opp["close_date"].dtype == np.dtype("datetime64[ns]")
    assert opp["amount"].dtype == np.float64
    assert pd.api.types.is_string_dtype(opp["stage"])
    assert opp["opportunity_id"].tolist() == ["O1", "O2", "O3"]
    assert opp["amount"].tolist()[:2] == [1000.0, 500.5]
    assert np.isnan(opp["amount"].iloc[2])  # an open deal may have no amount
    assert opp["close_date"].iloc[1] == pd.Timestamp("2025-03-04")
    assert opp["account_id"].isna().tolist() == [False, False, True]
    assert opp["region"].isna().all()  # optional column absent from the export stays missing
    assert isinstance(opp.index, pd.RangeIndex)
    accounts = result.tables["accounts"]
    assert accounts["segment"].tolist() == ["SMB", "Enterprise"]
    assert accounts["employees"].dtype == np.float64
    assert result.quarantine["opportunities"].empty
    assert result.reports["opportunities"].encoding == "utf-8"


def test_summary_of_a_clean_folder(clean):
    assert sources.load(clean, as_of=AS_OF).summary().splitlines() == [
        "currency: USD, assumed (the amounts show no currency and no mapping sets one); "
        "if they are in another, set currency: in a mapping file",
        "accounts.csv: 2 rows read, 2 accepted",
        "  note: segment derived from employees for 2 accounts "
        "(SMB 0-200, Mid-Market 200-2000, Enterprise 2000+)",
        "reps.csv: 2 rows read, 2 accepted",
        "opportunities.csv: 3 rows read, 3 accepted",
        "not provided (optional): invoices, subscriptions",
        "result: clean, all 7 rows accepted",
    ]


def test_load_does_not_write_without_quarantine_dir(clean):
    write(
        clean,
        "opportunities.csv",
        opportunities(*CLEAN_ROWS, "O4,R1,A1,won,abc,2025-01-01,2025-02-01"),
    )
    result = sources.load(clean, as_of=AS_OF)
    assert result.status == 1
    assert result.reports["opportunities"].quarantine_file is None
    assert not (clean / "quarantine").exists()
    assert result.quarantine["opportunities"]["row"].tolist() == [5]


# ---------------------------------------------------------------------------
# quarantine


def test_row_with_several_problems_is_quarantined_once(clean, tmp_path):
    write(
        clean,
        "opportunities.csv",
        opportunities(
            *CLEAN_ROWS,
            "O2,R9,A1,won,-5,2025-01-01,2030-01-01",
            "O5,R1,A1,Won,7,2025-01-01,2025-01-31",
        ),
    )
    qdir = tmp_path / "q"
    result = sources.load(clean, quarantine_dir=qdir, as_of=AS_OF)
    rep = result.reports["opportunities"]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_quarantined) == (5, 4, 1)
    assert rep.quarantine_file == qdir / "opportunities.csv"
    written = pd.read_csv(qdir / "opportunities.csv", dtype=str, keep_default_na=False)
    assert list(written.columns) == list(sources.QUARANTINE_COLUMNS)
    assert written.values.tolist() == [
        [
            "opportunities.csv",
            "5",
            "opportunity_id",
            "O2",
            "duplicate opportunity_id; the first, on row 3, is kept",
        ],
        [
            "opportunities.csv",
            "5",
            "close_date",
            "2030-01-01",
            "won deal with a close date after today, 2026-06-30",
        ],
        ["opportunities.csv", "5", "amount", "-5", "negative amount on a won deal"],
        ["opportunities.csv", "5", "rep_id", "R9", "rep_id not in reps.csv"],
    ]
    assert [(p.column, p.count) for p in rep.problems] == [
        ("opportunity_id", 1),
        ("close_date", 1),
        ("amount", 1),
        ("rep_id", 1),
    ]
    # stage values match ignoring case
    assert result.tables["opportunities"]["stage"].tolist()[-1] == "won"


def test_problem_is_a_column_reason_count_tuple(clean):
    write(
        clean,
        "opportunities.csv",
        opportunities(*CLEAN_ROWS, "O4,R1,A1,won,x,2025-01-01,2025-02-01"),
    )
    (problem,) = sources.load(clean, as_of=AS_OF).reports["opportunities"].problems
    column, reason, count = problem[:3]
    assert (column, reason, count) == ("amount", "row with a value that is not a number", 1)
    assert problem.example == "row 5: 'x'"


def test_stale_quarantine_file_is_removed_on_a_clean_run(clean, tmp_path):
    qdir = tmp_path / "q"
    write(qdir, "opportunities.csv", "file,row,column,value,reason\nold,2,amount,x,not a number\n")
    sources.load(clean, quarantine_dir=qdir, as_of=AS_OF)
    assert not (qdir / "opportunities.csv").exists()


def test_quarantine_dir_must_not_hold_the_exports(clean):
    with pytest.raises(
        DataError,
        match="quarantine folder .* holds your export accounts.csv; choose another folder",
    ):
        sources.load(clean, quarantine_dir=clean, as_of=AS_OF)


@pytest.mark.parametrize("case", sorted(p.name for p in CORPUS.iterdir() if p.is_dir()))
def test_rows_read_equal_accepted_plus_quarantined_on_corpus(case, tmp_path):
    try:
        result = sources.load(CORPUS / case, quarantine_dir=tmp_path / "q")
    except DataError:
        return  # unusable cases: checked by test_validate_corpus
    for name, rep in result.reports.items():
        assert rep.rows_read == rep.rows_accepted + rep.rows_quarantined
        assert len(result.tables[name]) == rep.rows_accepted
        assert result.quarantine[name]["row"].nunique() == rep.rows_quarantined
        if rep.rows_quarantined:
            on_disk = pd.read_csv(tmp_path / "q" / f"{name}.csv")
            assert on_disk["row"].nunique() == rep.rows_quarantined


# ---------------------------------------------------------------------------
# checks


@pytest.mark.parametrize(
    ("as_of", "accepted"),
    [("2025-02-02", 0), ("2025-02-03", 1), (pd.Timestamp("2030-01-01"), 1)],
)
def test_won_deal_after_as_of_is_rejected(tmp_path, as_of, accepted):
    write(tmp_path, "opportunities.csv", opportunities("O1,R1,A1,won,1000,2025-01-02,2025-02-03"))
    result = sources.load(tmp_path, as_of=as_of)
    assert result.reports["opportunities"].rows_accepted == accepted
    assert result.status == (2 if accepted == 0 else 0)


def test_open_deal_after_as_of_is_accepted(tmp_path):
    write(
        tmp_path, "opportunities.csv", opportunities("O1,R1,A1,proposal,1000,2025-01-02,2030-02-03")
    )
    assert sources.load(tmp_path, as_of=AS_OF).status == 0


def test_quarantined_rep_does_not_cascade_to_its_deals(tmp_path):
    write(tmp_path, "reps.csv", "rep_id,hire_date\nR1,2024-01-01\nR2,2024-01-01\nR2,2024-02-01\n")
    write(tmp_path, "opportunities.csv", opportunities("O1,R2,,won,10,2025-01-02,2025-02-03"))
    result = sources.load(tmp_path, as_of=AS_OF)
    assert result.reports["reps"].rows_quarantined == 1
    assert result.reports["opportunities"].rows_accepted == 1
    assert result.tables["opportunities"]["rep_id"].tolist() == ["R2"]


def test_money_formats_are_numbers(tmp_path):
    write(
        tmp_path,
        "opportunities.csv",
        'opportunity_id,stage,amount,close_date\nO1,won,"$1,200.50",2025-01-02\nO2,won,"1,234",2025-01-02\n'
        "O3,won,€99,2025-01-02\nO4,won,1e3,2025-01-02\nO5,won,inf,2025-01-02\nO6,won,nan,2025-01-02\n",
    )
    result = sources.load(tmp_path, as_of=AS_OF)
    assert result.tables["opportunities"]["amount"].tolist() == [1200.5, 1234.0, 99.0, 1000.0]
    assert result.quarantine["opportunities"]["value"].tolist() == ["inf", "nan"]


@pytest.mark.parametrize(
    ("values", "date_format", "expected"),
    [
        (["2025-01-05", "2025-12-31"], None, ["2025-01-05", "2025-12-31"]),
        (["13/01/2025", "01/02/2025"], None, ["2025-01-13", "2025-02-01"]),
        (["01/13/2025", "02/01/2025"], None, ["2025-01-13", "2025-02-01"]),
        (["13.01.2025", "5-2-25"], None, ["2025-01-13", "2025-02-05"]),
        (["2025-01-05 00:00:00", "2025/01/06"], None, ["2025-01-05", "2025-01-06"]),
        (["Jan 5, 2025", "20250106"], None, ["2025-01-05", "2025-01-06"]),
        (["01/02/2025", "2025-03-04"], "%d/%m/%Y", ["2025-02-01", "2025-03-04"]),
        (["01/02/2025", "03/04/2025"], "%m/%d/%Y", ["2025-01-02", "2025-03-04"]),
    ],
)
def test_date_parsing(tmp_path, values, date_format, expected):
    pd.DataFrame(
        {"opportunity_id": range(len(values)), "stage": "won", "amount": 1, "close_date": values}
    ).to_csv(tmp_path / "opportunities.csv", index=False)
    if date_format:
        write(tmp_path, "mapping.yaml", f"date_format: '{date_format}'\n")
    result = sources.load(tmp_path, as_of=AS_OF)
    assert result.status == 0
    assert result.tables["opportunities"]["close_date"].dt.strftime("%Y-%m-%d").tolist() == expected


def test_mixed_date_formats_quarantine_the_minority(tmp_path):
    rows = ["O1,won,1,2025-01-05", "O2,won,1,2025-01-06", "O3,won,1,07/01/2025"]
    write(
        tmp_path,
        "opportunities.csv",
        "opportunity_id,stage,amount,close_date\n" + "\n".join(rows) + "\n",
    )
    result = sources.load(tmp_path, as_of=AS_OF)
    lines = result.quarantine["opportunities"]
    assert lines[["row", "value", "reason"]].values.tolist() == [
        [
            4,
            "07/01/2025",
            "date format DD/MM/YYYY or MM/DD/YYYY differs from the column's YYYY-MM-DD (ambiguous)",
        ]
    ]
    assert result.reports["opportunities"].problems[0].hint == sources.HINTS["mixed"]


def test_ambiguous_day_month_order_is_an_error(tmp_path):
    write(
        tmp_path,
        "opportunities.csv",
        "opportunity_id,stage,amount,close_date\nO1,won,1,03/04/2025\n",
    )
    with pytest.raises(DataError, match=r"could be day/month or month/day; set date_format"):
        sources.load(tmp_path, as_of=AS_OF)


def test_segment_is_derived_only_where_missing(tmp_path):
    write(tmp_path, "opportunities.csv", opportunities(*CLEAN_ROWS))
    write(
        tmp_path, "accounts.csv", "account_id,employees,segment\nA1,150,Strategic\nA2,2500,\nA3,,\n"
    )
    result = sources.load(
        tmp_path, as_of=AS_OF, segment_bands=[("S", 0, 1000), ("L", 1000, float("inf"))]
    )
    seg = result.tables["accounts"]["segment"]
    assert seg.iloc[:2].tolist() == ["Strategic", "L"]
    assert pd.isna(seg.iloc[2])
    assert result.reports["accounts"].notes == [
        "segment derived from employees for 1 account (S 0-1000, L 1000+)"
    ]


def test_headers_match_ignoring_case_and_spaces(tmp_path):
    write(
        tmp_path,
        "Opportunities.CSV",
        "Opportunity ID,Stage, Amount ,CLOSE DATE,Notes\nO1,Won,5,2025-01-02,hi\n",
    )
    result = sources.load(tmp_path, as_of=AS_OF)
    assert result.tables["opportunities"].loc[0, "close_date"] == pd.Timestamp("2025-01-02")
    assert result.reports["opportunities"].notes == ["ignored columns: Notes"]


def test_orders_export_gets_generated_ids(tmp_path):
    write(
        tmp_path,
        "orders.csv",
        "OrderDate,Segment,Region,Revenue\n2025-01-15,SMB,NA,1200\n2025-01-20,SMB,EMEA,5\n",
    )
    mapping = write(
        tmp_path / "cfg",
        "orders.yaml",
        "tables:\n  opportunities:\n    file: orders.csv\n"
        "    columns: {close_date: OrderDate, amount: Revenue}\n    constants: {stage: won}\n",
    )
    result = sources.load(tmp_path, mapping=mapping, as_of=AS_OF)
    opp = result.tables["opportunities"]
    assert opp["opportunity_id"].tolist() == ["orders.csv:2", "orders.csv:3"]
    assert opp["region"].tolist() == ["NA", "EMEA"]  # "NA" is North America, not a missing marker
    assert opp["stage"].tolist() == ["won", "won"]
    assert result.mapping_file == mapping


def test_latin1_and_bom_encodings_are_reported(tmp_path):
    write(
        tmp_path / "a",
        "opportunities.csv",
        "opportunity_id,stage,amount,close_date,product\nO1,won,1,2025-01-02,Café\n",
        "latin-1",
    )
    write(
        tmp_path / "b",
        "opportunities.csv",
        "\ufeffopportunity_id,stage,amount,close_date\nO1,won,1,2025-01-02\n",
    )
    a = sources.load(tmp_path / "a", as_of=AS_OF)
    b = sources.load(tmp_path / "b", as_of=AS_OF)
    assert a.reports["opportunities"].encoding == "latin-1"
    assert a.tables["opportunities"]["product"].tolist() == ["Café"]
    assert b.reports["opportunities"].encoding == "utf-8 with BOM"
    assert b.tables["opportunities"]["opportunity_id"].tolist() == ["O1"]


def test_parquet_typed_columns(tmp_path):
    pd.DataFrame(
        {
            "opportunity_id": [1, 2],
            "stage": ["won", "lost"],
            "amount": [10, 20],
            "close_date": pd.to_datetime(["2025-01-02 13:00", "2025-02-03"], format="ISO8601"),
            "account_id": [7.0, np.nan],
        }
    ).to_parquet(tmp_path / "opportunities.parquet")
    opp = sources.load(tmp_path, as_of=AS_OF).tables["opportunities"]
    assert opp["opportunity_id"].tolist() == ["1", "2"]
    assert opp["account_id"].iloc[0] == "7"
    assert opp["close_date"].tolist() == [pd.Timestamp("2025-01-02"), pd.Timestamp("2025-02-03")]
    assert opp["close_date"].dtype == np.dtype("datetime64[ns]")


# ---------------------------------------------------------------------------
# mapping errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tabels: {}\n", "unknown key 'tabels'; use tables, date_format, segment_bands"),
        (
            "tables:\n  opportunities:\n    colums: {}\n",
            "tables.opportunities: unknown key 'colums'",
        ),
        (
            "tables:\n  opportunities:\n    values: {stage: won}\n",
            "tables.opportunities.values.stage must map your values",
        ),
        (
            "tables:\n  opportunities:\n    columns: {stage: S}\n    constants: {stage: won}\n",
            "stage is both in columns and in constants; keep one",
        ),
        ("date_format: '%d/%m'\n", r"date_format '%d/%m' does not describe a full date"),
        (
            "segment_bands: [[SMB, 0]]\n",
            "segment_bands: expected a list of \\[name, lower, upper\\]",
        ),
        ("segment_bands: [[SMB, 10, 5]]\n", "band 'SMB' has upper bound 5 <= lower bound 10"),
        (
            "- a\n- b\n",
            "expected keys tables, date_format, segment_bands, currency at the top level",
        ),
        (
            "tables:\n  reps:\n    file: nope.csv\n",
            r"tables.reps.file 'nope.csv' not found in .*/; give the file name",
        ),
    ],
)
def test_mapping_errors(clean, text, message):
    mapping = write(clean, "m.yaml", text)
    with pytest.raises(DataError, match=message):
        sources.load(clean, mapping=mapping, as_of=AS_OF)


def test_mapping_file_not_found(clean):
    with pytest.raises(
        DataError, match="mapping file .*nope.yaml not found; check the path given to --mapping"
    ):
        sources.load(clean, mapping=clean / "nope.yaml")


def test_yaml_dates_and_booleans_in_values_become_text(tmp_path):
    write(
        tmp_path,
        "opportunities.csv",
        "opportunity_id,stage,amount,close_date\nO1,yes,1,2025-01-02\n",
    )
    write(tmp_path, "mapping.yaml", "tables:\n  opportunities:\n    values: {stage: {yes: won}}\n")
    assert sources.load(tmp_path, as_of=AS_OF).tables["opportunities"]["stage"].tolist() == ["won"]


def test_missing_data_folder():
    with pytest.raises(DataError, match="data folder /nonexistent not found"):
        sources.load("/nonexistent")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SMB:0:200,Ent:200:", (("SMB", 0.0, 200.0), ("Ent", 200.0, float("inf")))),
        ([["A", 0, None]], (("A", 0.0, float("inf")),)),
    ],
)
def test_parse_segment_bands(value, expected):
    assert sources.parse_segment_bands(value) == expected


# ---------------------------------------------------------------------------
# pandera schema, command


def test_table_schema_validates_a_canonical_frame():
    frame = pd.DataFrame(
        {
            "opportunity_id": pd.Series(["O1", "O1"], dtype="str"),
            "close_date": pd.to_datetime(["2025-01-02", "2025-01-03"]).astype("datetime64[ns]"),
            "amount": [1.0, -2.0],
            "stage": pd.Series(["won", "won"], dtype="str"),
        }
    )
    for col in schema.OPPORTUNITIES.column_names:
        if col not in frame:
            dtype = sources.DTYPES[schema.OPPORTUNITIES.column(col).dtype]
            frame[col] = pd.Series(np.nan, index=frame.index, dtype=dtype)
    frame = frame[list(schema.OPPORTUNITIES.column_names)]
    table_schema = sources.table_schema("opportunities", as_of=AS_OF)
    table_schema.validate(frame.iloc[:1], lazy=True)
    with pytest.raises(pa.errors.SchemaErrors) as info:
        table_schema.validate(frame, lazy=True)
    assert set(info.value.failure_cases["check"]) == {"duplicate_key", "won_amount_negative"}
    assert set(info.value.failure_cases["index"]) == {1}


def test_validate_command_exit_codes(clean, tmp_path, capsys):
    args = ["validate", str(clean), "--quarantine", str(tmp_path / "q")]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "result: clean, all 7 rows accepted"
    write(
        clean,
        "opportunities.csv",
        opportunities(*CLEAN_ROWS, "O4,R1,A1,won,x,2025-01-01,2025-02-01"),
    )
    assert cli.main(args) == 1
    out = capsys.readouterr().out
    assert (
        f"opportunities.csv: 4 rows read, 3 accepted, 1 quarantined ({tmp_path / 'q' / 'opportunities.csv'})"
        in out
    )
    assert (tmp_path / "q" / "opportunities.csv").is_file()


def test_validate_command_default_quarantine_and_segment_bands(clean, capsys):
    write(
        clean,
        "opportunities.csv",
        opportunities(*CLEAN_ROWS, "O4,R1,A1,won,x,2025-01-01,2025-02-01"),
    )
    args = ["validate", str(clean), "--segment-bands", "Small:0:1000,Big:1000:"]
    assert cli.main(args) == 1
    assert (clean / "quarantine" / "opportunities.csv").is_file()
    assert "(Small 0-1000, Big 1000+)" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# property: rows read = rows accepted + rows quarantined

#: Corruptions that always make a clean row invalid: column -> bad values.
CORRUPTIONS = {
    "amount": ["abc", "", "-5"],
    "close_date": ["", "not a date", "2099-01-01", "2025-02-30", "31/02/2026"],
    "stage": ["Closed Won", ""],
    "opportunity_id": ["", "<dup>"],
}
#: Corruptions of optional columns: the value is blanked, the row kept.
BLANKING = {"rep_id": ["R999"], "created_date": ["garbage", "1850-01-01"]}
N_ROWS = 10


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    corruptions=st.dictionaries(
        keys=st.integers(min_value=1, max_value=N_ROWS - 1),
        values=st.tuples(
            st.sampled_from(sorted(CORRUPTIONS) + sorted(BLANKING)),
            st.integers(min_value=0, max_value=4),
        ),
        max_size=3,
    )
)
def test_rows_read_invariant_under_random_corruption(tmp_path_factory, corruptions):
    rows = [
        {
            "opportunity_id": f"O{i}",
            "rep_id": "R1",
            "account_id": "A1",
            "stage": "won",
            "amount": str(100 + i),
            "created_date": "2025-01-01",
            "close_date": f"2025-02-{i + 1:02d}",
        }
        for i in range(N_ROWS)
    ]
    for i, (column, pick) in sorted(corruptions.items()):
        options = CORRUPTIONS.get(column) or BLANKING[column]
        value = options[pick % len(options)]
        rows[i][column] = rows[i - 1]["opportunity_id"] if value == "<dup>" else value
    data = tmp_path_factory.mktemp("prop")
    pd.DataFrame(rows).to_csv(data / "opportunities.csv", index=False)
    write(data, "reps.csv", REPS_CSV)
    result = sources.load(data, quarantine_dir=data / "q", as_of=AS_OF)
    rep = result.reports["opportunities"]
    assert rep.rows_read == N_ROWS
    assert rep.rows_read == rep.rows_accepted + rep.rows_quarantined
    assert len(result.tables["opportunities"]) == rep.rows_accepted
    quarantined = set(result.quarantine["opportunities"]["row"])
    hard = {i + 2 for i, (c, _) in corruptions.items() if c in CORRUPTIONS}
    soft = {i + 2 for i, (c, _) in corruptions.items() if c in BLANKING}
    assert quarantined == hard  # spreadsheet rows: header = 1
    assert set(result.blanked["opportunities"]["row"]) == soft
    assert rep.values_blanked == len(soft)
    assert sum(p.count for p in rep.problems) >= rep.rows_quarantined


def test_a_file_instead_of_a_folder_is_named_as_such(tmp_path):
    f = tmp_path / "opportunities.csv"
    f.write_text("opportunity_id,close_date,amount,stage\n1,2025-01-01,10,won\n")
    with pytest.raises(DataError) as err:
        sources.load(f)
    assert str(err.value) == (
        f"{f} is a file; pass the folder holding your exports (e.g. {tmp_path}), or name the file in a mapping file"
    )
