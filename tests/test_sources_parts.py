"""The pieces sources.load and its row rules are made of, each checked on its own."""

from __future__ import annotations

import pandas as pd
import pytest

from revmodel import schema, sources
from revmodel.errors import DataError

AS_OF = pd.Timestamp("2026-01-31")


def _passes(rule: sources._Rule, frame: pd.DataFrame) -> list[bool]:
    return rule.check(frame).tolist()


def test_rules_of_each_table_in_report_order():
    ids = {"reps": {"r1"}, "accounts": {"a1"}}
    names = {t: [r.name for r in sources._rules(t, AS_OF, ids, {})] for t in schema.TABLES}
    assert names["opportunities"] == [
        "duplicate_key",
        "stage_known",
        "type_known",
        "won_amount_missing",
        "won_amount_negative",
        "won_in_future",
        "unknown_account_id",
        "unknown_rep_id",
    ]
    # per column, the sign rule comes before the reference rule, in schema column order
    assert names["subscriptions"] == [
        "duplicate_key",
        "unknown_account_id",
        "negative_arr",
        "unknown_rep_id",
    ]
    assert names["reps"] == ["duplicate_key", "negative_ramp_months"]


def test_reference_rules_only_where_the_referenced_table_was_read():
    names = [r.name for r in sources._rules("opportunities", AS_OF, {}, {})]
    assert "unknown_rep_id" not in names and "unknown_account_id" not in names


def test_duplicate_key_rule_keeps_the_first_and_names_its_row():
    rule = sources._duplicate_key_rule(schema.TABLES["reps"])
    frame = pd.DataFrame({"rep_id": ["r1", "r2", "r1", None, None]}, index=[2, 3, 4, 5, 6])
    assert _passes(rule, frame) == [True, True, False, True, True]  # missing keys are not repeats
    reason = rule.reason(frame, pd.Index([4]))
    assert reason.tolist() == ["duplicate rep_id; the first, on row 2, is kept"]


def test_won_deal_rules():
    missing, negative, future = sources._won_deal_rules(AS_OF)
    frame = pd.DataFrame(
        {
            "stage": ["won", "won", "won", "lost", None],
            "amount": [None, -5.0, 10.0, -5.0, None],
            "close_date": pd.to_datetime(
                ["2026-01-01", "2026-01-31", "2026-02-01", "2027-01-01", None]
            ),
        }
    )
    assert _passes(missing, frame) == [False, True, True, True, True]
    assert _passes(negative, frame) == [True, False, True, True, True]
    # the as_of day itself is not the future
    assert _passes(future, frame) == [True, True, False, True, True]
    assert future.reason == "won deal with a close date after today, 2026-01-31"


def test_allowed_value_rules_accept_missing_and_listed_values_only():
    stage, kind = sources._allowed_value_rules(schema.TABLES["opportunities"])
    frame = pd.DataFrame({"stage": ["won", "Closed Won", None, "proposal"]})
    assert _passes(stage, frame) == [True, False, True, True]
    assert kind.column == "type"
    assert _passes(kind, pd.DataFrame({"type": ["renewal", "upsell"]})) == [True, False]
    assert stage.reason.endswith("map it under values: stage: in the mapping file")


def test_column_rules():
    (sign,) = sources._column_rules("subscriptions", "arr", {}, {})
    assert _passes(sign, pd.DataFrame({"arr": [0.0, -1.0, None]})) == [True, False, True]
    (ref,) = sources._column_rules("opportunities", "rep_id", {"reps": {"r1"}}, {"reps": "crm.csv"})
    assert _passes(ref, pd.DataFrame({"rep_id": ["r1", "r9", None]})) == [True, False, True]
    assert ref.reason == "rep_id not in crm.csv"
    assert sources._column_rules("opportunities", "amount", {}, {}) == []


def test_data_folder_errors(tmp_path):
    assert sources._data_folder(str(tmp_path)) == tmp_path
    file = tmp_path / "opportunities.csv"
    file.write_text("opportunity_id\n")
    with pytest.raises(DataError, match=f"{file} is a file; pass the folder holding your exports"):
        sources._data_folder(file)
    with pytest.raises(DataError, match="data folder .*nowhere not found"):
        sources._data_folder(tmp_path / "nowhere")


def _write(folder, name, text):
    (folder / name).write_text(text, encoding="utf-8")


def test_known_ids_include_rows_that_fail_validation(tmp_path):
    _write(
        tmp_path,
        "opportunities.csv",
        "opportunity_id,close_date,amount,stage\no1,2025-01-05,10,won\n",
    )
    _write(tmp_path, "reps.csv", "rep_id,name,ramp_months\nr1,Ann,-3\n r2 ,Bo,2\n")
    spec = sources.MappingSpec()
    paths, raws = sources._read_tables(tmp_path, spec, sources.Limits())
    assert set(paths) == {"opportunities", "reps"}
    # r1's negative ramp quarantines the row, but deals naming r1 must not cascade into quarantine
    known = sources._known_ids(raws)
    assert {k: sorted(v.to_pylist()) for k, v in known.items()} == {"reps": ["r1", "r2"]}


def test_read_tables_lists_every_unusable_file(tmp_path):
    _write(tmp_path, "opportunities.csv", "")
    _write(tmp_path, "reps.csv", "")
    with pytest.raises(DataError) as err:
        sources._read_tables(tmp_path, sources.MappingSpec(), sources.Limits())
    assert "opportunities.csv" in str(err.value) and "reps.csv" in str(err.value)


def test_validate_and_write_quarantine(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write(
        data,
        "opportunities.csv",
        "opportunity_id,close_date,amount,stage\no1,2025-01-05,10,won\no1,2025-01-06,20,won\n",
    )
    _, raws = sources._read_tables(data, sources.MappingSpec(), sources.Limits())
    ctx = sources._Context(sources.MappingSpec(), None, AS_OF, {}, {}, sources.Limits())
    checked = sources._validate_tables(raws, ctx)
    assert checked.tables["opportunities"]["opportunity_id"].tolist() == ["o1"]
    assert checked.tables["opportunities"]["amount"].tolist() == [10.0]
    assert checked.quarantine["opportunities"]["row"].tolist() == [3]
    qdir = tmp_path / "q"
    qdir.mkdir()
    sources._write_quarantine(qdir, checked)
    written = pd.read_csv(qdir / "opportunities.csv")
    assert written["reason"].tolist() == ["duplicate opportunity_id; the first, on row 2, is kept"]
    assert checked.reports["opportunities"].quarantine_file == qdir / "opportunities.csv"
