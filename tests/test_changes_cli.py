"""``revmodel snapshot`` and ``revmodel changes`` from the user's side."""

from __future__ import annotations

import pandas as pd
import pytest

from revmodel import cli, sample, snapshots
from revmodel import history as H

COLUMNS = "level,key,opening,new,pulled_in,pushed_out,increased,decreased,won,lost,closing"

# another CRM's export: its own column and stage names, day-first dates
MAPPING = """tables:
  opportunities:
    file: deals.csv
    date_format: "%d/%m/%Y"
    columns: {opportunity_id: Deal ID, stage: Deal Stage, amount: Value, close_date: Expected Close,
              rep_id: Owner}
    values: {stage: {Discovery: prospecting, Demo: qualification, Quote: proposal,
             Contract: negotiation, Closed Won: won, Closed Lost: lost}}
  reps:
    file: owners.csv
    columns: {rep_id: Owner, manager: Team Lead}
"""


def _export(folder, rows):
    lines = ["Deal ID,Deal Stage,Value,Expected Close,Owner"]
    lines += [",".join(r) for r in rows]
    (folder / "deals.csv").write_text("\n".join(lines) + "\n")


def _run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def crm(tmp_path):
    folder = tmp_path / "crm"
    folder.mkdir()
    (folder / "mapping.yaml").write_text(MAPPING)
    (folder / "owners.csv").write_text("Owner,Team Lead\nu1,=HYPERLINK(1)\nu2,Lee\n")
    return folder


def test_snapshot_then_changes_from_snapshots(crm, tmp_path, capsys):
    _export(
        crm,
        [
            ("A", "Demo", "1000", "15/12/2026", "u1"),
            ("B", "Quote", "500", "20/01/2027", "u2"),
            ("C", "Contract", "800", "10/12/2026", "u2"),
        ],
    )
    code, out, _ = _run(capsys, "snapshot", crm, "--as-of", "2026-11-02")
    assert code == 0
    assert out.splitlines()[-1] == (
        f"snapshot 2026-11-02: 3 opportunities (3 open) stored in "
        f"{crm / 'snapshots' / '2026-11-02.parquet'}"
    )
    # a week later: A re-priced, B pushed to March, C won, D created
    _export(
        crm,
        [
            ("A", "Quote", "1200", "15/12/2026", "u1"),
            ("B", "Quote", "500", "05/03/2027", "u2"),
            ("C", "Closed Won", "750", "06/11/2026", "u2"),
            ("D", "Discovery", "300", "30/01/2027", "u1"),
        ],
    )
    assert _run(capsys, "snapshot", crm, "--as-of", "2026-11-09")[0] == 0

    # the store round-trips: two files, two manifest lines, states as exported
    manifest = pd.read_csv(crm / "snapshots" / "manifest.csv")
    assert list(manifest.columns) == list(snapshots.MANIFEST_COLUMNS)
    assert manifest["date"].tolist() == ["2026-11-02", "2026-11-09"]
    assert manifest["rows"].tolist() == [3, 4] and manifest["open_rows"].tolist() == [3, 3]
    hist = snapshots.history_from_snapshots(crm / "snapshots")
    assert hist.groupby("opportunity_id").size().to_dict() == {"A": 2, "B": 2, "C": 2, "D": 1}
    assert H.state_at(H.prepare(hist), "2026-11-09").loc["C", "stage"] == "won"

    out_csv, deals_csv = tmp_path / "w.csv", tmp_path / "d.csv"
    code, out, _ = _run(
        capsys,
        "changes",
        crm,
        "--from",
        "2026-11-03",
        "--to",
        "2026-11-09",
        "--period",
        "2026-11-01:2027-01-31",
        "--by",
        "manager",
        "--out",
        out_csv,
        "--deals",
        deals_csv,
    )
    assert code == 0, out
    assert "history: 2 snapshots in" in out
    text = out_csv.read_text()
    assert text.splitlines()[0] == COLUMNS
    table = pd.read_csv(out_csv)
    total = table.iloc[0]
    # opening 1000 + 500 + 800; A +200; B pushed out 500; C won at 800; D new 300
    assert total[COLUMNS.split(",")[2:]].tolist() == [
        2300.0,
        300.0,
        0.0,
        500.0,
        200.0,
        0.0,
        800.0,
        0.0,
        1500.0,
    ]
    assert table["level"].tolist() == ["total", "manager", "manager"]
    # a manager name that looks like a formula is written as text
    assert sorted(table["key"][1:]) == ["'=HYPERLINK(1)", "Lee"]
    deals = pd.read_csv(deals_csv)
    assert deals[["bar", "opportunity_id", "amount"]].values.tolist() == [
        ["new", "D", 300.0],
        ["pushed_out", "B", 500.0],
        ["increased", "A", 200.0],
        ["won", "C", 800.0],
    ]


def test_second_snapshot_of_a_day_is_refused(crm, capsys):
    _export(crm, [("A", "Demo", "1000", "15/12/2026", "u1")])
    assert _run(capsys, "snapshot", crm, "--as-of", "2026-11-02")[0] == 0
    before = (crm / "snapshots" / "2026-11-02.parquet").read_bytes()
    _export(crm, [("A", "Demo", "9999", "15/12/2026", "u1")])
    code, _, err = _run(capsys, "snapshot", crm, "--as-of", "2026-11-02")
    assert code == 2
    store = crm / "snapshots"
    assert err.strip() == (
        f"error: a snapshot of 2026-11-02 is already stored ({store / '2026-11-02.parquet'}); "
        "snapshots are never overwritten. Pass --as-of for another date, or delete that file "
        f"and its line in {store / 'manifest.csv'} to retake it."
    )
    assert (store / "2026-11-02.parquet").read_bytes() == before
    assert len(pd.read_csv(store / "manifest.csv")) == 1


def test_snapshot_counts_quarantined_rows_and_refuses_unusable_data(crm, capsys):
    _export(crm, [("A", "Demo", "1000", "15/12/2026", "u1"), ("B", "Maybe", "5", "1/1/2027", "u2")])
    code, out, _ = _run(capsys, "snapshot", crm, "--as-of", "2026-11-02")
    assert code == 0
    assert "1 row with a stage not in the schema" in out
    assert "snapshot 2026-11-02: 1 opportunities (1 open)" in out
    _export(crm, [("B", "Maybe", "5", "01/01/2027", "u2")])
    code, _, err = _run(capsys, "snapshot", crm, "--as-of", "2026-11-03")
    assert code == 2 and err.rstrip().endswith("no snapshot stored")
    assert not (crm / "snapshots" / "2026-11-03.parquet").exists()


@pytest.fixture(scope="module")
def company(tmp_path_factory):
    folder = tmp_path_factory.mktemp("company")
    sample.write(sample.generate(reps=10, months=18, seed=5, end="2026-10"), folder)
    return folder


def test_changes_on_the_sample_by_every_level(company, tmp_path, capsys):
    for by in ("total", "region", "manager", "rep", "segment"):
        out_csv = tmp_path / f"{by}.csv"
        code, out, _ = _run(
            capsys,
            "changes",
            company,
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--period",
            "FY2027-Q1",
            "--fiscal-year-start",
            "11",
            "--by",
            by,
            "--out",
            out_csv,
        )
        assert code == 0
        assert "pipeline closing 2026-11-01 to 2027-01-31" in out
        table = pd.read_csv(out_csv)
        assert list(table.columns) == COLUMNS.split(",")
        assert (H.balance_errors(table).abs() < 1e-6).all()
        if by != "total":
            assert set(table["level"]) == {"total", by}
            sums = table[table["level"] == by].iloc[:, 2:].sum()
            assert sums.to_numpy() == pytest.approx(table.iloc[0, 2:].to_numpy(dtype=float))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from", "2026-10-31", "--to", "2026-10-01"],
            "error: --to 2026-10-01 is before --from 2026-10-31; give the earlier date as --from",
        ),
        (
            ["--from", "2026-10-01", "--to", "2026-10-31", "--period", "Q1"],
            "error: --period 'Q1' is neither a fiscal period (FY2027-Q1, FY2027) nor START:END "
            "dates (2026-11-01:2027-01-31)",
        ),
        (
            ["--from", "yesterday", "--to", "2026-10-31"],
            "error: start 'yesterday' is not a date: use YYYY-MM-DD",
        ),
    ],
)
def test_changes_bad_arguments(company, tmp_path, capsys, args, message):
    code, _, err = _run(capsys, "changes", company, *args, "--out", tmp_path / "w.csv")
    assert code == 2
    assert err.strip() == message
    assert not (tmp_path / "w.csv").exists()


def test_changes_without_history_says_what_to_do(crm, tmp_path, capsys):
    _export(crm, [("A", "Demo", "1000", "15/12/2026", "u1")])
    code, _, err = _run(
        capsys,
        "changes",
        crm,
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-07",
        "--out",
        tmp_path / "w.csv",
    )
    assert code == 2
    assert err.strip() == (
        f"error: no pipeline history in {crm}: add an opportunity_history export (see the "
        f"schema in the README), or store a snapshot every week with `revmodel snapshot {crm}`"
    )
    code, _, err = _run(
        capsys,
        "changes",
        crm,
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-07",
        "--by",
        "team",
        "--out",
        tmp_path / "w.csv",
    )
    assert code == 2 and "Invalid value for '--by'" in err
