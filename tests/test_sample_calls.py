"""The sample company's past forecast calls (revmodel.sample_calls), read back from the CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from revmodel import cli, history, sample, sample_calls


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    sample.write_sample(out)
    return out


def _quarter_bounds(label: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day of a sample quarter, by hand: the fiscal year starts in November
    and is named by the year it ends in (FY2026-Q1 is Nov 2025 - Jan 2026)."""
    year, q = int(label[2:6]), int(label[-1])
    first = pd.Timestamp(year=year - 1, month=11, day=1) + pd.DateOffset(months=3 * (q - 1))
    return first, first + pd.DateOffset(months=3) - pd.Timedelta(days=1)


def _actuals(folder: Path) -> pd.DataFrame:
    """Won bookings by quarter and manager, by hand from the opportunities and reps CSVs."""
    opps = pd.read_csv(folder / "opportunities.csv", parse_dates=["close_date"])
    reps = pd.read_csv(folder / "reps.csv")
    won = opps[opps["stage"] == "won"].merge(reps[["rep_id", "manager"]], on="rep_id")
    calls = pd.read_csv(folder / "forecast_calls.csv")
    rows = []
    for label in sorted(calls["period"].unique()):
        first, last = _quarter_bounds(label)
        inside = won[(won["close_date"] >= first) & (won["close_date"] <= last)]
        for manager, amount in inside.groupby("manager")["amount"].sum().items():
            rows.append((label, "manager", manager, amount))
        rows.append((label, "total", "total", inside["amount"].sum()))
    return pd.DataFrame(rows, columns=["period", "level", "key", "actual"])


def test_sample_writes_weekly_calls_of_every_level(folder: Path) -> None:
    calls = pd.read_csv(folder / "forecast_calls.csv", parse_dates=["at"])
    assert list(calls.columns) == list(sample_calls.COLUMNS)
    reps = pd.read_csv(folder / "reps.csv")
    # six past quarters, 13 weeks, two call types, each manager, region and the company
    nodes = reps["manager"].nunique() + reps["region"].nunique() + 1
    assert sorted(calls["period"].unique()) == [
        "FY2025-Q3", "FY2025-Q4", "FY2026-Q1", "FY2026-Q2", "FY2026-Q3", "FY2026-Q4"
    ]  # fmt: skip
    assert len(calls) == 6 * 13 * 2 * nodes
    assert set(calls["level"]) == {"manager", "region", "total"}
    # each call dated in its week: the fifth day of week w of its quarter
    for label, group in calls.groupby("period"):
        first, last = _quarter_bounds(label)
        week = (group["at"] - first).dt.days // 7 + 1
        assert week.tolist() == group["note"].str.removeprefix("week ").astype(int).tolist()
        assert group["at"].max() < last + pd.Timedelta(days=1)
    wide = calls.pivot_table(
        index=["period", "level", "key", "note"], columns="call_type", values="new_value"
    )
    assert (wide["commit"] <= wide["best_case"]).all()
    # old_value is the node's previous call of the same type
    for _, g in calls.groupby(["period", "level", "key", "call_type"]):
        assert np.isnan(g["old_value"].iloc[0])
        assert g["old_value"].iloc[1:].tolist() == g["new_value"].iloc[:-1].tolist()


def test_recovered_bias_is_the_one_put_in(folder: Path) -> None:
    calls = pd.read_csv(folder / "forecast_calls.csv")
    commit = calls[calls["call_type"] == "commit"].merge(
        _actuals(folder), on=["period", "level", "key"]
    )
    ratio = commit["new_value"] / commit["actual"] - 1
    recovered = ratio.groupby([commit["level"], commit["key"]]).median()
    tables = {n: pd.read_csv(folder / f"{n}.csv") for n in ("opportunities", "reps", "accounts")}
    put_in = {(p.level, p.key): p for p in sample_calls.profiles(history.deal_labels(tables), 7)}
    assert len(recovered) == 10  # nine managers and the company
    styles = set()
    for node, bias in recovered.items():
        profile = put_in[node]
        assert bias == pytest.approx(profile.bias, abs=0.04), node
        styles.add(profile.style)
        if profile.style == "sandbagger":
            assert bias < -0.05
        elif profile.style == "optimist":
            assert bias > 0.04
    assert styles == {"sandbagger", "realistic", "optimist"}
    # noisy early, close to the outcome late: week 1 errors spread more than week 13's
    week = commit["note"].str.removeprefix("week ").astype(int)
    logs = np.log1p(ratio)
    dev = (logs - logs.groupby([commit["level"], commit["key"]]).transform("median")).abs()
    spread = dev.groupby(week).mean()
    assert spread[1] > 3 * spread[13]


def test_sample_end_still_works_and_calls_stay_in_the_history(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    code = cli.main(["sample", "--out", str(out), "--reps", "6", "--months", "12", "--end",
                     "2025-01", "--seed", "1"])  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"{out / 'forecast_calls.csv'}: 312 rows"
    calls = pd.read_csv(out / "forecast_calls.csv", parse_dates=["at"])
    # history Feb 2024 - Jan 2025: the four quarters inside it, none after the end
    assert sorted(calls["period"].unique()) == ["FY2024-Q2", "FY2024-Q3", "FY2024-Q4", "FY2025-Q1"]
    assert calls["at"].min() >= pd.Timestamp("2024-02-01")
    assert calls["at"].max() <= pd.Timestamp("2025-01-31")
    again = tmp_path / "again"
    sample.write_sample(again, reps=6, months=12, seed=1, end="2025-01")
    assert (again / "forecast_calls.csv").read_bytes() == (out / "forecast_calls.csv").read_bytes()


def test_the_apps_own_sample_company_has_the_call_log_revmodel_sample_writes(
    folder, tmp_path, monkeypatch
):
    # `revmodel serve` without data generates the sample company: with its past calls, so
    # the weekly app has calls to score.
    from revmodel import config, valueadd
    from revmodel.apps import cache

    own = tmp_path / "data" / "sample"
    monkeypatch.setattr(config, "SAMPLE_DIR", own)
    assert cache.sample_dir() == own
    written = sorted(p.name for p in folder.iterdir())  # what `revmodel sample` writes
    assert sample_calls.FILE in written
    assert sorted(p.name for p in own.iterdir()) == written
    for name in written:
        assert (own / name).read_bytes() == (folder / name).read_bytes(), name
    log = valueadd.call_log(own)
    assert len(log.audit) == len(pd.read_csv(folder / sample_calls.FILE)) > 0
    assert log.rejected.empty


def test_the_apps_leave_a_sample_folder_with_exports_as_it_is(tmp_path, monkeypatch):
    from revmodel import config
    from revmodel.apps import cache

    own = tmp_path / "sample"
    own.mkdir()
    (own / "opportunities.csv").write_text("opportunity_id\nO1\n", encoding="utf-8")
    monkeypatch.setattr(config, "SAMPLE_DIR", own)
    assert cache.sample_dir() == own
    assert [p.name for p in own.iterdir()] == ["opportunities.csv"]
    assert (own / "opportunities.csv").read_text(encoding="utf-8") == "opportunity_id\nO1\n"
