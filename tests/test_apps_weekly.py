"""The weekly forecast app (revmodel.apps.weekly) in-process: what changed, whose calls to trust."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from revmodel import history, sample, sample_calls, valueadd
from revmodel.apps import context as app_context_module
from revmodel.apps import weekly


def text(html_value: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html_value)).strip()


@pytest.fixture(scope="module")
def calls_dir(small_company, tmp_path_factory):
    """A data folder holding the small company's last two quarters of weekly calls."""
    tables, _ = small_company
    folder = tmp_path_factory.mktemp("calls")
    end = pd.Timestamp(sample.DEFAULT_END + "-01") + pd.offsets.MonthEnd(0)
    calls = sample_calls.for_sample(
        tables, pd.Timestamp("2023-11-01"), end, 7, sample.FISCAL_YEAR_START
    )
    calls = calls[calls["period"].isin(["FY2026-Q3", "FY2026-Q4"])]
    calls.to_csv(folder / sample_calls.FILE, index=False)
    return folder


@pytest.fixture(scope="module")
def page(app_context, calls_dir):
    ctx = replace(app_context, extra={**app_context.extra, "data_dir": str(calls_dir)})
    ctx = app_context_module.app_context(context=ctx, store_url="sqlite://", user="nobody")
    return weekly.build(ctx).app


def test_what_changed_shows_the_node_and_the_deals_behind_it(page, small_company, app_context):
    tables, _ = small_company
    hist = history.prepare(tables["opportunity_history"])
    labels = history.deal_labels(tables)
    as_of = hist["changed_at"].max()
    # the deals closing in the plan's cycle, as the pack shows them
    section = history.changes_section(
        hist, as_of, labels, ("region", "manager"), sample.FISCAL_YEAR_START, "end",
        period=app_context.cycle,
    )  # fmt: skip
    assert section.quarter == app_context.cycle
    assert section.since_last_week.table.iloc[0]["closing"] > 0
    total = section.since_last_week.table.iloc[0]
    trace = page.waterfall.figure.data[0]
    signs = {"opening": 1, **history.BAR_SIGNS, "closing": 1}
    assert list(trace.y) == [signs[c] * float(total[c]) for c in history.WATERFALL_COLUMNS[2:]]
    page.window.value = "Since the quarter's start"
    qtd = section.since_quarter_start
    # the manager with the most pushed-out pipeline since the quarter's start
    managers = qtd.table[qtd.table["level"] == "manager"]
    slipper = managers.sort_values("pushed_out").iloc[-1]
    assert slipper["pushed_out"] > 0
    page.level.value = "manager"
    page.node.value = slipper["key"]
    trace = page.waterfall.figure.data[0]
    assert trace.x[3] == "Pushed out"
    assert trace.y[3] == pytest.approx(-float(slipper["pushed_out"]))
    assert slipper["key"] in page.waterfall.figure.layout.title.text
    shown = text(page.deals.value)
    mine = qtd.deals[qtd.deals["manager"] == slipper["key"]]
    assert shown.startswith(f"{len(mine)} deal moves behind the bars of {slipper['key']}")
    pushed = mine[mine["bar"] == "pushed_out"]["opportunity_id"]
    assert len(pushed) and all(d in shown for d in pushed)
    others = qtd.deals[qtd.deals["manager"] != slipper["key"]]["opportunity_id"]
    assert not any(f" {d} " in f" {shown} " for d in set(others) - set(mine["opportunity_id"]))
    # reps by name, never by id, under the plan pack's headings
    reps = tables["reps"].set_index("rep_id")["rep_name"]
    heads = [text(h) for h in re.findall(r"<th>(.*?)</th>", page.deals.value)]
    assert heads[:3] == ["Change", "Deal", "amount"] and "stage before" in heads
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page.deals.value)
    assert {reps[r] for r in mine["rep"]} <= set(cells)
    assert not set(mine["rep"]) & set(cells)
    rows = [text(h) for h in re.findall(r"<th>(.*?)</th>", page.rows.value)]
    assert rows[:4] == ["Level", "Name", "opening", "new"] and "pulled in" in rows


def test_whose_calls_to_trust_scores_each_manager(page, small_company, calls_dir):
    tables, _ = small_company
    page.level.value = "manager"
    summary = text(page.scores.value)
    managers = sorted(set(tables["reps"]["manager"]))
    assert all(m in summary for m in managers)
    who = page.node.value
    # week 1's call error of this manager, by hand from the call log and the opportunities
    calls = pd.read_csv(calls_dir / sample_calls.FILE, parse_dates=["at"])
    mine = calls[(calls["key"] == who) & (calls["call_type"] == "commit")]
    opps = tables["opportunities"].merge(tables["reps"][["rep_id", "manager"]], on="rep_id")
    errors = []
    for period, first in (("FY2026-Q3", "2026-05-01"), ("FY2026-Q4", "2026-08-01")):
        first = pd.Timestamp(first)
        last = first + pd.DateOffset(months=3) - pd.Timedelta(days=1)
        won = opps[(opps["stage"] == "won") & (opps["manager"] == who)]
        actual = won[won["close_date"].between(first, last)]["amount"].sum()
        week1 = mine[(mine["period"] == period) & (mine["at"] < first + pd.Timedelta(days=7))]
        errors.append(abs(week1["new_value"].iloc[-1] - actual) / actual)
    heads = [text(h) for h in re.findall(r"<th>(.*?)</th>", page.scores.value)]
    assert heads == [
        "Level", "Name", "Quarters", "Calls", "Bias of the calls", "Error of the calls",
        "Error of the model", "Value added", "Calls beating the model",
    ]  # fmt: skip
    weeks = [text(h) for h in re.findall(r"<th>(.*?)</th>", page.weekly.value)]
    assert weeks[:3] == ["Week of quarter", "Quarters", "Calls"]
    assert "_" not in page.scores.value.split("<tbody>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", page.weekly.value)
    first_row = [text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", rows[1])]
    assert first_row[0] == "1" and first_row[1] == "2"  # week 1, two quarters
    assert first_row[4] == weekly.layout.fmt_pct(np.mean(errors))  # call error
    names = [t.name for t in page.chart.figure.data]
    assert names == ["manager: calls", "manager: model"]
    assert who in page.chart.figure.layout.title.text


def test_without_calls_or_history_the_page_says_so(app_context):
    ctx = replace(app_context, tables={**app_context.tables, "opportunity_history": None},
                  extra={})  # fmt: skip
    ctx = app_context_module.app_context(context=ctx, store_url="sqlite://", user="nobody")
    page = weekly.build(ctx).app
    assert "No pipeline history" in text(page.rows.value)
    assert "No past calls to score" in text(page.scores.value)


def _new_kernel(app_context, data_dir) -> weekly.AppContext:
    """The context as a new kernel reads it: the shared context, nothing of the weekly page."""
    extra = {k: v for k, v in app_context.extra.items() if not str(k).startswith("weekly")}
    ctx = replace(app_context, extra={**extra, "data_dir": str(data_dir)})
    return app_context_module.app_context(context=ctx, store_url="sqlite://", user="nobody")


def _fresh(small_company, data_dir) -> pd.DataFrame:
    """The calls of ``data_dir`` scored from scratch, without the apps."""
    tables, _ = small_company
    calls = valueadd.read_calls(data_dir / sample_calls.FILE)
    return valueadd.scores(
        tables["opportunity_history"], calls, history.deal_labels(tables),
        sample.FISCAL_YEAR_START, "end",
    )  # fmt: skip


def test_the_next_kernel_reads_the_scores_and_a_changed_call_is_scored_again(
    app_context, calls_dir, small_company, tmp_path, monkeypatch
):
    data = tmp_path / "data"
    data.mkdir()
    (data / sample_calls.FILE).write_bytes((calls_dir / sample_calls.FILE).read_bytes())
    assert "context_file" in app_context.extra  # made through the shared cache file
    first = weekly.build(_new_kernel(app_context, data)).app
    scored = weekly.value_add(first.context).scored
    pd.testing.assert_frame_equal(scored, _fresh(small_company, data))
    kept = weekly._kept_files(first.context)
    assert kept is not None and all(f.is_file() for f in kept)

    # The next kernel computes nothing of the history: no quarter's model forecast, no history read.
    def computed(*args, **kwargs):
        raise AssertionError("computed again")

    monkeypatch.setattr(valueadd, "node_forecasts", computed)
    monkeypatch.setattr(weekly.history, "load_history", computed)
    again = weekly.build(_new_kernel(app_context, data)).app
    assert again.context.extra["weekly_scorer"].computed == 0
    pd.testing.assert_frame_equal(weekly.value_add(again.context).scored, scored)
    assert again.scores.value == first.scores.value
    assert again.rows.value == first.rows.value

    # A manager's last commit of the last quarter changes in the call file.
    monkeypatch.undo()
    calls = pd.read_csv(data / sample_calls.FILE, dtype=str, keep_default_na=False)
    mine = calls[(calls["level"] == "manager") & (calls["call_type"] == "commit")]
    row = mine[mine["period"] == "FY2026-Q4"].index[-1]
    who = calls.loc[row, "key"]
    calls.loc[row, "new_value"] = "123400.00"
    calls.to_csv(data / sample_calls.FILE, index=False)
    changed = weekly.build(_new_kernel(app_context, data)).app
    assert weekly._kept_files(changed.context) == kept  # the same files: the data did not change
    # that period's scores only: no quarter's model forecast (each would count one)
    assert changed.context.extra["weekly_scorer"].computed == 1
    now = weekly.value_add(changed.context).scored
    pd.testing.assert_frame_equal(now, _fresh(small_company, data))
    moved = now.compare(scored)
    assert len(moved) == 1
    assert now.loc[moved.index[0], ["period", "level", "key", "call_type", "week"]].tolist() == [
        "FY2026-Q4", "manager", who, "commit", 13,
    ]  # fmt: skip
    assert now.loc[moved.index[0], "call"] == 123400.0

    # ... and the kernel after it reads that.
    monkeypatch.setattr(valueadd, "node_forecasts", computed)
    monkeypatch.setattr(valueadd.overrides, "value_add", computed)  # no call scored
    last = weekly.build(_new_kernel(app_context, data)).app
    assert last.context.extra["weekly_scorer"].computed == 0
    pd.testing.assert_frame_equal(weekly.value_add(last.context).scored, now)


def test_the_excel_download_holds_the_view_s_tables_as_headed_on_the_page(page):
    import io

    import openpyxl

    page.level.value = "manager"
    page.excel.button.click()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", page.node.value)  # "Kenji Kim" -> Kenji-Kim
    assert f"download='weekly-manager-{name}.xlsx'" in page.excel.link.value
    book = openpyxl.load_workbook(io.BytesIO(page.excel.data))
    assert book.sheetnames == [
        "Pipeline changes", "Deal moves", "Whose calls to trust", "Calls by week",
    ]  # fmt: skip
    ws = book["Whose calls to trust"]
    head = [c.value for c in ws[1]]
    assert head == [
        "Level", "Name", "Quarters", "Calls", "Bias of the calls", "Error of the calls",
        "Error of the model", "Value added", "Calls beating the model",
    ]  # fmt: skip
    summary = weekly.value_add(page.context).summary
    commit = summary[summary["call_type"] == "commit"].reset_index(drop=True)
    error = ws.cell(row=2, column=head.index("Error of the calls") + 1)
    assert error.value == pytest.approx(commit.loc[0, "call_error"])
    assert error.number_format == "0.0%"
    assert ws.cell(row=2, column=head.index("Calls") + 1).value == commit.loc[0, "calls"]
    # the pipeline rows: the company and the managers, in money format
    rows = book["Pipeline changes"]
    assert {r[0] for r in rows.iter_rows(min_row=2, values_only=True)} == {"total", "manager"}
    # another node: the link of the former view is gone until the button is clicked again
    page.node.value = [k for k in page.node.options if k != page.node.value][0]
    assert page.excel.link.value == ""
