"""A table exported as Parquet parts (a warehouse's export) loads as the same table in one file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

from revmodel import cube, partitions, sample, schema, sources
from revmodel.errors import DataError


@pytest.fixture(scope="module")
def company() -> dict[str, pd.DataFrame]:
    return sample.generate(reps=30, months=24, seed=3)


def write(company, folder: Path, opps: pd.DataFrame | None = None, parts: int = 3) -> Path:
    """The company in ``folder``, opportunities as ``parts`` Parquet parts (0: one file)."""
    sample.write({k: company[k] for k in ("accounts", "reps", "subscriptions")}, folder)
    opps = company["opportunities"] if opps is None else opps
    partitions.write_parts(opps, folder, "opportunities", parts)
    return folder


def test_parts_give_the_cube_of_the_whole_table(company, tmp_path):
    whole = sources.load(write(company, tmp_path / "whole", parts=0), quarantine_dir=tmp_path / "q")
    parted = partitions.load(write(company, tmp_path / "parts"), quarantine_dir=tmp_path / "q2")
    n = len(company["opportunities"])
    rep = parted.reports["opportunities"]
    assert (rep.file, rep.rows_read, rep.rows_accepted, rep.rows_quarantined) == (
        "opportunities/ (3 parts)",
        n,
        n,
        0,
    )
    assert "opportunities/ (3 parts): " in parted.summary()
    xr.testing.assert_identical(
        cube.build_cube(parted.tables, as_of="2026-06"),
        cube.build_cube(whole.tables, as_of="2026-06"),
    )


def test_parts_reduced_to_deal_cells_give_the_cube_of_the_whole_table(company, tmp_path):
    whole = sources.load(write(company, tmp_path / "whole", parts=0), quarantine_dir=tmp_path / "q")
    reduced = partitions.load(
        write(company, tmp_path / "parts"), quarantine_dir=tmp_path / "q2", deal_cells=True
    )
    cells = reduced.tables["opportunities"]
    n = len(company["opportunities"])
    assert list(cells.columns) == [*cube.DEAL_CELL_KEYS, "amount", "deals", *cube.DEAL_CELL_CYCLE]
    assert int(cells["deals"].sum()) == n and len(cells) < n
    won = company["opportunities"]["stage"] == "won"
    assert cells.loc[cells["stage"] == "won", "amount"].sum() == pytest.approx(
        company["opportunities"].loc[won, "amount"].sum()
    )
    assert reduced.reports["opportunities"].rows_accepted == n
    # the sales cycle of won deals and each account's won and open amounts, by hand
    opps = company["opportunities"]
    timed = opps[won & opps["created_date"].notna()]
    days = (pd.to_datetime(timed["close_date"]) - pd.to_datetime(timed["created_date"])).dt.days
    assert int(cells["cycle_deals"].sum()) == len(timed) > 0
    assert cells["cycle_days"].sum() == days.clip(lower=0).sum()
    amounts = reduced.tables[cube.OPPORTUNITY_ACCOUNTS].set_index("account_id")
    by_hand = opps[won].groupby("account_id")["amount"].sum()
    assert amounts["won_amount"].sum() == pytest.approx(by_hand.sum())
    assert amounts.loc[by_hand.index, "won_amount"].to_numpy() == pytest.approx(by_hand.to_numpy())
    is_open = opps["stage"].isin(schema.OPEN_STAGES)
    assert amounts["open_amount"].sum() == pytest.approx(opps.loc[is_open, "amount"].sum())
    assert set(amounts.index) == set(opps["account_id"].dropna().astype(str))
    for layout in cube.LAYOUTS:
        xr.testing.assert_identical(
            cube.build_cube(reduced.tables, as_of="2026-06", layout=layout),
            cube.build_cube(whole.tables, as_of="2026-06", layout=layout),
        )


def test_a_key_in_two_reduced_parts_is_the_same_clear_error(company, tmp_path):
    opps = company["opportunities"].copy()
    opps.loc[len(opps) - 1, "opportunity_id"] = opps.loc[0, "opportunity_id"]
    folder = write(company, tmp_path / "d", opps)
    with pytest.raises(DataError) as err:
        partitions.load(folder, quarantine_dir=tmp_path / "q", deal_cells=True)
    first = opps.loc[0, "opportunity_id"]
    assert str(err.value) == (
        f"opportunities: opportunity_id {first!r} is in more than one part "
        "(part-0000.parquet, part-0002.parquet); 2 rows share a key across parts. "
        "Export the table again so that each row is in one part only."
    )


def test_a_bad_row_in_a_part_is_quarantined_and_counted(company, tmp_path):
    opps = company["opportunities"].copy()
    opps["amount"] = opps["amount"].astype(object)
    bad_at = len(opps) - 5  # in the last part
    opps.loc[bad_at, "amount"] = "twelve"
    opps["amount"] = opps["amount"].astype(str)
    result = partitions.load(write(company, tmp_path / "d", opps), quarantine_dir=tmp_path / "q")
    rep = result.reports["opportunities"]
    assert rep.rows_read == len(opps)
    assert rep.rows_quarantined == 1
    assert rep.rows_accepted + rep.rows_quarantined == rep.rows_read
    assert opps.loc[bad_at, "opportunity_id"] not in set(
        result.tables["opportunities"]["opportunity_id"]
    )
    assert len(result.quarantine["opportunities"]) == 1
    # the part's own quarantine folder keeps the row
    kept = list((tmp_path / "q" / "opportunities-part-0002").glob("*"))
    assert kept, "the last part's quarantine folder holds the rejected row"


def test_a_key_in_two_parts_is_a_clear_error(company, tmp_path):
    opps = company["opportunities"].copy()
    opps.loc[len(opps) - 1, "opportunity_id"] = opps.loc[0, "opportunity_id"]
    folder = write(company, tmp_path / "d", opps)
    with pytest.raises(DataError) as err:
        partitions.load(folder, quarantine_dir=tmp_path / "q")
    first = opps.loc[0, "opportunity_id"]
    assert str(err.value) == (
        f"opportunities: opportunity_id {first!r} is in more than one part "
        "(part-0000.parquet, part-0002.parquet); 2 rows share a key across parts. "
        "Export the table again so that each row is in one part only."
    )


def test_a_folder_without_parts_is_a_clear_error(company, tmp_path):
    folder = write(company, tmp_path / "d", parts=0)
    (folder / "opportunities.parquet").unlink()
    (folder / "opportunities").mkdir()
    with pytest.raises(DataError, match=r"opportunities/ holds no \.parquet part"):
        partitions.load(folder)


def test_without_parts_it_is_sources_load(company, tmp_path):
    folder = write(company, tmp_path / "d", parts=0)
    a = partitions.load(folder, quarantine_dir=tmp_path / "q1")
    b = sources.load(folder, quarantine_dir=tmp_path / "q2")
    assert a.reports == b.reports
    pd.testing.assert_frame_equal(a.tables["opportunities"], b.tables["opportunities"])


def test_validate_reads_parquet_parts_and_quarantines_a_bad_row(company, tmp_path, capsys):
    from revmodel import cli

    opps = company["opportunities"].copy()
    at = len(opps) - 3  # in the last part, which starts at row 2 * n // 3
    bad_id = opps.loc[at, "opportunity_id"]
    opps["amount"] = opps["amount"].astype(object)
    opps.loc[at, "amount"] = "twelve"
    opps["amount"] = opps["amount"].astype(str)
    folder = write(company, tmp_path / "d", opps)
    code = cli.main(["validate", str(folder), "--quarantine", str(tmp_path / "q")])
    out = capsys.readouterr().out
    n = len(opps)
    row = at - 2 * n // 3 + 2  # spreadsheet row in the part: header is row 1
    assert code == 1, out
    assert f"opportunities/ (3 parts): {n:,} rows read, {n - 1:,} accepted, 1 quarantined" in out
    assert (
        f"amount: 1 row with a value that is not a number "
        f"(e.g. opportunities/part-0002.parquet row {row}: 'twelve')" in out
    )
    kept = pd.read_csv(tmp_path / "q" / "opportunities-part-0002" / "opportunities.csv")
    assert kept.to_dict("records") == [
        {
            "file": "opportunities/part-0002.parquet",
            "row": row,
            "column": "amount",
            "value": "twelve",
            "reason": "not a number",
        }
    ]
    accepted = partitions.load(folder, quarantine_dir=tmp_path / "q2").tables["opportunities"]
    assert bad_id not in set(accepted["opportunity_id"]) and len(accepted) == n - 1


def test_the_tables_given_as_files_are_read_twice_not_once_a_part(company, tmp_path, monkeypatch):
    """Their keys once for every part's references, and once validated with the first part."""
    from collections import Counter

    real = sources.read_export
    read: Counter[str] = Counter()

    def counting(path, label=None, **kwargs):
        read[Path(path).name] += 1
        return real(path, label, **kwargs)

    monkeypatch.setattr(sources, "read_export", counting)
    opps = company["opportunities"].copy()
    opps.loc[len(opps) - 3, "rep_id"] = "R-none"  # in the last part: not in reps.csv
    result = partitions.load(
        write(company, tmp_path / "d", opps, parts=4), quarantine_dir=tmp_path / "q"
    )
    # each part staged as opportunities.parquet: four parts, each read once
    assert read == {
        "accounts.csv": 2,
        "reps.csv": 2,
        "subscriptions.csv": 1,
        "opportunities.parquet": 4,
    }
    # the last part checked its deals against reps.csv all the same, and says so
    rep = result.reports["opportunities"]
    assert (rep.rows_read, rep.rows_accepted, rep.values_blanked) == (len(opps), len(opps), 1)
    (problem,) = rep.problems
    assert problem.reason == "row whose rep_id is not in reps.csv, blanked"
    assert problem.example.startswith("opportunities/part-0003.parquet row ")


def test_deals_labelled_by_their_account_and_rep_only_reduce_to_the_same_cube(company, tmp_path):
    """An export whose deals carry no segment or region: every part labels its deals from
    the accounts and reps, the parts read alone as well as the first."""
    opps = company["opportunities"].drop(columns=["segment", "region"])
    whole = sources.load(
        write(company, tmp_path / "whole", opps, parts=0), quarantine_dir=tmp_path / "q"
    )
    for deal_cells in (False, True):
        parted = partitions.load(
            write(company, tmp_path / f"parts{deal_cells}", opps, parts=4),
            quarantine_dir=tmp_path / f"q{deal_cells}",
            deal_cells=deal_cells,
        )
        xr.testing.assert_identical(
            cube.build_cube(parted.tables, as_of="2026-06"),
            cube.build_cube(whole.tables, as_of="2026-06"),
        )


def test_parts_beside_files_the_mapping_names_are_checked_against_them(company, tmp_path):
    """A reps export under its own name and columns (mapping.yaml): the parts read alone
    check their owners against it and name it, as the whole table loaded in one file does."""
    users = company["reps"].rename(columns={"rep_id": "User ID", "rep_name": "Full Name"})
    opps = company["opportunities"].copy()
    opps.loc[len(opps) - 2, "rep_id"] = "R-gone"  # in the last part
    mapping = (
        "tables:\n  reps:\n    file: Users.csv\n"
        "    columns: {rep_id: User ID, rep_name: Full Name}\n"
    )
    loaded = {}
    for parts in (0, 3):
        folder = tmp_path / f"p{parts}"
        write({**company, "reps": company["reps"].iloc[:0]}, folder, opps, parts=parts)
        (folder / "reps.csv").unlink()
        users.to_csv(folder / "Users.csv", index=False)
        (folder / "mapping.yaml").write_text(mapping)
        loaded[parts] = partitions.load(folder, quarantine_dir=tmp_path / f"q{parts}")
    whole, parted = loaded[0], loaded[3]
    for result in (whole, parted):
        (problem,) = result.reports["opportunities"].problems
        assert problem.reason == "row whose rep_id is not in Users.csv, blanked"
    assert (
        parted.reports["opportunities"]
        .problems[0]
        .example.startswith("opportunities/part-0002.parquet row ")
    )
    pd.testing.assert_frame_equal(parted.tables["opportunities"], whole.tables["opportunities"])
    assert parted.reports["reps"].file == "Users.csv"


def test_kpis_and_territory_potential_of_reduced_parts_are_those_of_the_rows(company, tmp_path):
    """What the plan reads of deals reduced where they were read: the KPIs (sales cycle
    included) and each account's potential, as from the whole table's rows."""
    from revmodel import kpi, territory

    whole = sources.load(write(company, tmp_path / "whole", parts=0), quarantine_dir=tmp_path / "q")
    reduced = partitions.load(
        write(company, tmp_path / "parts"), quarantine_dir=tmp_path / "q2", deal_cells=True
    )
    cubes = [cube.build_cube(r.tables, fiscal_year_start=4) for r in (reduced, whole)]
    for dims in ((), ("manager",)):
        got, expected = (
            kpi.compute(c, dims=dims, tables=r.tables)
            for c, r in zip(cubes, (reduced, whole), strict=True)
        )
        xr.testing.assert_identical(got, expected)
        assert "sales_cycle" in got
    plan, _ = territory.cycle_territories(reduced.tables, "2026-07-01")
    expected, _ = territory.cycle_territories(whole.tables, "2026-07-01")
    pd.testing.assert_series_equal(
        territory.account_potential(
            reduced.tables["accounts"], reduced.tables[cube.OPPORTUNITY_ACCOUNTS]
        ),
        territory.account_potential(whole.tables["accounts"], whole.tables["opportunities"]),
    )
    assert plan is not None and expected is not None
    pd.testing.assert_frame_equal(plan.assignment, expected.assignment)
