"""Forecast value add (revmodel.valueadd): the calls scored against the actual beside the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from revmodel import history, inquarter, sample, sample_calls, valueadd
from revmodel.errors import DataError

FYS = sample.FISCAL_YEAR_START


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("va")
    sample.write_sample(out, reps=20, months=30, seed=5)
    return out


@pytest.fixture(scope="module")
def section(folder: Path) -> valueadd.ValueAddSection:
    found = valueadd.section_from_data(folder, fiscal_year_start=FYS)
    assert found is not None
    return found


def test_read_calls_refuses_bad_rows_with_their_reason(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(
        "at,level,key,period,call_type,new_value,note\n"
        "2027-01-08 17:00,manager,M01,FY2027-Q1,commit,100,ok\n"
        "2027-01-08 17:00,team,M01,FY2027-Q1,commit,100,\n"
        "not a date,manager,M01,FY2027-Q1,commit,100,\n"
        "2027-01-08 17:00,manager,M01,FY2027-Q1,forecast,100,\n"
        "2027-01-08 17:00,manager,M01,FY2027-Q1,commit,-5,\n"
        "2027-01-08 17:00,manager,M01,FY2027,commit,5,\n"
        "2027-01-01 09:00,Manager, M01 ,fy2027-q1,Commit,90,=cmd()\n"
    )
    log = valueadd.read_calls(path)
    assert log.rejected["row"].tolist() == [3, 4, 5, 6, 7]
    assert log.rejected["reason"].tolist() == [
        "level is not one of rep, manager, region, total",
        "at is not a date and time",
        "call_type is not commit or best_case",
        "new_value is not an amount >= 0",
        "period is not a fiscal quarter like FY2027-Q1",
    ]
    # kept rows: trimmed and normalised, in time order, numbered
    assert log.audit[["id", "level", "key", "period", "call_type", "new_value"]].values.tolist() == [
        [1, "manager", "M01", "FY2027-Q1", "commit", 90.0],
        [2, "manager", "M01", "FY2027-Q1", "commit", 100.0],
    ]  # fmt: skip
    path.write_text("when,level,key\n2027-01-08,manager,M01\n")
    with pytest.raises(DataError) as err:
        valueadd.read_calls(path)
    assert str(err.value) == (
        f"{path}: missing column(s) at, period, call_type, new_value; a call log needs at, "
        "level, key, period, call_type, new_value (found when, level, key)"
    )


def test_scores_on_a_hand_made_quarter() -> None:
    """One deal of M01 won in week 2 for 100; the call log of M01 and the company. The
    history runs past the quarter (D2, created in April), so the quarter is scored."""
    hist = pd.DataFrame(
        {
            "opportunity_id": ["D1", "D1", "D1", "D2"],
            "changed_at": pd.to_datetime(["2026-11-20", "2027-01-03", "2027-01-12", "2027-04-02"]),
            "stage": ["proposal", "negotiation", "won", "prospecting"],
            "amount": [80.0, 100.0, 100.0, 50.0],
            "close_date": pd.to_datetime(["2027-01-31", "2027-01-31", "2027-01-12", "2027-06-30"]),
        }
    )
    labels = pd.DataFrame(
        {"region": ["EU", "EU"], "manager": ["M01", "M02"], "rep": ["R1", "R2"],
         "segment": ["smb", "smb"]},
        index=pd.Index(["D1", "D2"], name="opportunity_id"),
    )  # fmt: skip
    audit = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "at": pd.to_datetime(["2027-01-02 10:00", "2027-01-09 10:00", "2027-01-02 11:00"]),
            "level": ["manager", "manager", "total"],
            "key": ["M01", "M01", "total"],
            "period": ["FY2027-Q1"] * 3,
            "call_type": ["commit"] * 3,
            "new_value": [60.0, 90.0, 120.0],
        }
    )
    log = valueadd.CallLog(audit, pd.DataFrame(), "hand")
    scored = valueadd.scores(hist, log, labels, fiscal_year_start=1, naming="end", weeks=3)
    m = scored[scored["level"] == "manager"]
    assert m["week"].tolist() == [1, 2, 3]
    assert m["call"].tolist() == [60.0, 90.0, 90.0]
    assert (scored["actual"] == 100.0).all()
    # week 3 (to Jan 21): the deal is won, so the model says 100 and beats the call of 90
    week3 = m[m["week"] == 3].iloc[0]
    assert week3["model"] == pytest.approx(100.0)
    assert week3["value_add"] == pytest.approx(0.0 - 0.10)
    assert m["bias"].tolist() == pytest.approx([-0.4, -0.1, -0.1])
    total = scored[scored["level"] == "total"]
    assert total["call"].tolist() == [120.0, 120.0, 120.0]
    summary = valueadd.summary(scored)
    row = summary[(summary["level"] == "total")].iloc[0]
    assert (row["quarters"], row["calls"]) == (1, 3)
    assert row["bias"] == pytest.approx(0.2)
    assert row["call_error"] == pytest.approx(0.2)


def test_node_forecasts_add_up_to_the_company_forecast(folder: Path) -> None:
    tables = {n: pd.read_csv(folder / f"{n}.csv") for n in ("opportunities", "reps", "accounts")}
    hist = pd.read_csv(folder / "opportunity_history.csv", parse_dates=["changed_at", "close_date"])
    labels = history.deal_labels(tables)
    quarter = inquarter.Quarter.of("2026-05-01")
    nodes = inquarter.node_forecasts(hist, quarter, labels, weeks=4)
    total = nodes[nodes["level"] == "total"].set_index("week")["forecast"]
    for level in ("manager", "region"):
        summed = nodes[nodes["level"] == level].groupby("week")["forecast"].sum()
        np.testing.assert_allclose(summed.to_numpy(), total.to_numpy(), rtol=1e-9)
    company = inquarter.in_quarter_backtest(hist, [quarter], labels, weeks=4)
    np.testing.assert_allclose(total.to_numpy(), company["forecast"].to_numpy(), rtol=1e-9)


@pytest.mark.slow
def test_value_add_recovers_each_callers_bias(folder: Path, section) -> None:
    tables = {n: pd.read_csv(folder / f"{n}.csv") for n in ("opportunities", "reps", "accounts")}
    put_in = {(p.level, p.key): p for p in sample_calls.profiles(history.deal_labels(tables), 5)}
    commit = section.summary[section.summary["call_type"] == "commit"]
    assert len(commit) == len(put_in)
    for row in commit.itertuples():
        assert row.bias == pytest.approx(put_in[(row.level, row.key)].bias, abs=0.05), row.key
        assert row.quarters == 6 and row.calls == 6 * 13
    # late in the quarter the model knows what closed: its error falls below week 1's
    weekly = section.by_week[section.by_week["level"] == "total"].set_index("week")
    assert weekly.loc[13, "model_error"] < weekly.loc[1, "model_error"] / 3
    assert section.rejected == 0


@pytest.mark.slow
def test_plan_pack_shows_forecast_value_add(folder: Path, section, tmp_path: Path) -> None:
    import types

    from revmodel import plots
    from revmodel.publish import html, tables

    cube = types.SimpleNamespace(attrs={"fiscal_year_start": FYS, "fiscal_year_naming": "end"})
    params = {"data_dir": str(folder), "cycle": "FY2027-Q1"}
    out = tables._value_add(params, cube)
    assert set(out) == {"value_add", "value_add_by_week"}
    commit = section.summary[section.summary["call_type"] == "commit"]
    pd.testing.assert_frame_equal(
        out["value_add"], commit.drop(columns="call_type").reset_index(drop=True)
    )
    assert out["value_add_by_week"]["week"].tolist()[:13] == list(range(1, 14))
    fig = plots.value_add_by_week(out["value_add_by_week"])
    assert [t.name for t in fig.data][:2] == ["manager: calls", "manager: model"]
    page = html.render_html(
        {"cycle": "FY2027-Q1", "quarter_months": "", "as_of": "2026-10", "plan_year": "FY2027"},
        out,
        {"value_add": fig},
        params,
        "",
    )
    assert '<section id="value-add"><h2>Forecast value add</h2>' in page
    assert '<a href="#value-add">Forecast value add</a>' in page
    # a manager's row shows the bias as a percentage
    first = out["value_add"].iloc[0]
    assert f'<td class="">{first["key"]}</td>' in page
    # without a call log the section is left out
    copy = tmp_path / "nocalls"
    copy.mkdir()
    for f in folder.glob("*.csv"):
        if f.name != sample_calls.FILE:
            (copy / f.name).write_bytes(f.read_bytes())
    assert tables._value_add({"data_dir": str(copy)}, cube) == {}


def test_calls_of_the_store_and_the_csv_scored_once_in_the_pack(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manager calls through the call store; the pack's value-add table scores the store's
    call beside the CSV's company calls, and a week both have counts the store's call."""
    import types
    from datetime import datetime

    from revmodel import overrides
    from revmodel.publish import tables

    data = tmp_path / "data"
    data.mkdir()
    for f in folder.glob("*.csv"):
        (data / f.name).write_bytes(f.read_bytes())
    calls = pd.read_csv(folder / sample_calls.FILE, dtype=str, keep_default_na=False)
    period = "FY2026-Q4"  # Aug-Oct 2026, the history's last full quarter
    calls = calls[(calls["period"] == period) & (calls["level"] == "total")]
    calls.to_csv(data / sample_calls.FILE, index=False)
    reps = pd.read_csv(folder / "reps.csv")
    manager = sorted(reps["manager"].unique())[0]
    team = overrides.TeamMap.from_mapping(
        users={"ops": "admin", "lead": {"manager": manager}},
        rep_manager=dict(zip(reps["rep_id"], reps["manager"], strict=True)),
    )
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    with overrides.OverrideStore(url, team_map=team) as store:
        store.open_period(period, overrides.Identity("ops"))
        for day, level, key, amount in (
            ("2026-08-17 10:00", "manager", manager, 555_000),  # week 3
            ("2026-08-31 09:00", "total", overrides.COMPANY, 7_777_700),  # week 5
        ):
            user = "lead" if level == "manager" else "ops"
            monkeypatch.setattr(overrides, "_now", lambda d=day: datetime.fromisoformat(d))
            store.submit(overrides.Identity(user), key, period, "commit", amount, level=level)
    monkeypatch.setenv("REVMODEL_OVERRIDES_URL", url)
    cube = types.SimpleNamespace(attrs={"fiscal_year_start": FYS, "fiscal_year_naming": "end"})
    out = tables._value_add({"data_dir": str(data), "cycle": "FY2027-Q1"}, cube)

    # the manager's row comes from the store alone: weeks 3 to 13 at 555,000
    labels = history.deal_labels({n: pd.read_csv(data / f"{n}.csv") for n in
                                  ("opportunities", "reps", "accounts")})  # fmt: skip
    hist = pd.read_csv(data / "opportunity_history.csv", parse_dates=["changed_at", "close_date"])
    last = hist.sort_values("changed_at", kind="stable").groupby("opportunity_id").tail(1)
    won = last[(last["stage"] == "won") & last["close_date"].between("2026-08-01", "2026-10-31")]
    actual = float(won.loc[won["opportunity_id"].map(labels["manager"]) == manager, "amount"].sum())
    assert actual > 0
    table = out["value_add"].set_index(["level", "key"])
    row = table.loc[("manager", manager)]
    assert (row["quarters"], row["calls"]) == (1, 11)
    assert row["bias"] == pytest.approx(555_000 / actual - 1)
    assert row["call_error"] == pytest.approx(abs(555_000 / actual - 1))
    assert list(table.index.get_level_values("level")) == ["manager", "total"]

    # the company's week 5: the store's call replaces the CSV's; week 6 is the CSV's again
    store = valueadd.open_call_store()
    log = valueadd.call_log(data, store, FYS, "end")
    store.close()
    weekly = overrides.calls_by_week(log.audit, period, "2026-08-01")
    company = weekly[(weekly["level"] == "total") & (weekly["call_type"] == "commit")]
    company = company.set_index("week")["amount"]
    csv_commit = calls[calls["call_type"] == "commit"]["new_value"].astype(float).tolist()
    assert company.loc[5] == 7_777_700.0
    assert company.loc[6] == csv_commit[5] and company.loc[4] == csv_commit[3]
    assert len(log.audit) == len(calls) - 1 + 2  # one CSV call replaced, two from the store
    assert log.source == f"{data / sample_calls.FILE} and OverrideStore({url!r})"


def test_open_call_store_never_creates_a_database(tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "none.db"
    monkeypatch.setenv("REVMODEL_OVERRIDES_URL", f"sqlite:///{missing}")
    assert valueadd.open_call_store() is None
    assert not missing.exists()
    assert valueadd.open_call_store("sqlite://") is None


def _node_forecasts_before(history_, quarter, labels, levels, weeks, lookback=4):
    """:func:`revmodel.inquarter.node_forecasts` as it was before it looked each deal's node up
    once (kept to check that the faster one gives the same numbers)."""
    hist = history.prepare(history_)
    rates = inquarter.Learned.from_history(hist, quarter.start - pd.Timedelta(days=1), labels)
    created = hist.drop_duplicates("opportunity_id").set_index("opportunity_id")["changed_at"]
    past = []
    for k in range(1, lookback + 1):
        before = inquarter.Quarter.of(quarter.start - pd.DateOffset(months=3 * k))
        if before.start < hist["changed_at"].min():
            break
        won = inquarter._won_in(hist, before, before.end)
        offset = (created.reindex(won.index) - before.start).dt.days.to_numpy(dtype=float)
        past.append((offset, won))
    rows = []
    for week in range(1, weeks + 1):
        as_of = min(quarter.start + pd.Timedelta(days=7 * week - 1), quarter.end)
        day = (as_of - quarter.start).days
        won = inquarter._won_in(hist, quarter, as_of)
        deals, amount, q = inquarter._open_deals(hist, quarter, as_of, labels, rates)
        parts = [inquarter._by_node(won.to_numpy(dtype=float), won.index, labels, levels)]
        parts.append(inquarter._by_node(amount * q, deals, labels, levels))
        for offset, w in past:
            share = w.to_numpy(dtype=float) * (offset > day) / len(past)
            parts.append(inquarter._by_node(share, w.index, labels, levels))
        total: dict[tuple[str, str], float] = {}
        for part in parts:
            for node, value in part.items():
                total[node] = total.get(node, 0.0) + value
        rows += [(lv, k, week, v) for (lv, k), v in total.items()]
    out = pd.DataFrame(rows, columns=["level", "key", "week", "forecast"])
    return out.sort_values(["level", "key", "week"]).reset_index(drop=True)


@pytest.mark.parametrize("labelled", ["all", "some", "none"])
def test_node_forecasts_are_the_same_numbers_as_before_they_were_made_faster(
    folder: Path, labelled: str
) -> None:
    """Exactly equal (the same sums in the same order), with every deal labelled, a tenth of
    the deals without labels (their nodes are the placeholder) and no labels at all."""
    tables = {n: pd.read_csv(folder / f"{n}.csv") for n in ("opportunities", "reps", "accounts")}
    hist = pd.read_csv(folder / "opportunity_history.csv", parse_dates=["changed_at", "close_date"])
    labels = history.deal_labels(tables)
    if labelled == "some":
        labels = labels.iloc[::10].copy()
        labels.loc[labels.index[:3], "manager"] = np.nan
    elif labelled == "none":
        labels = None
    quarter = inquarter.Quarter.of("2026-05-01")
    levels = ("manager", "region", "total")
    now = inquarter.node_forecasts(hist, quarter, labels, levels, weeks=5)
    before = _node_forecasts_before(hist, quarter, labels, levels, weeks=5)
    pd.testing.assert_frame_equal(now, before, check_exact=True)
    assert len(now) > 5 and now["forecast"].gt(0).all()
