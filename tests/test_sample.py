"""Tests of the embedded sample company (revmodel.sample)."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revmodel import cli, config, sample, schema
from revmodel.errors import ParameterError

FILES = (
    "accounts.csv",
    "reps.csv",
    "opportunities.csv",
    "invoices.csv",
    "subscriptions.csv",
    "opportunity_history.csv",
    "forecast_calls.csv",
)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return sample.generate()


@pytest.fixture(scope="module")
def end_day() -> pd.Timestamp:
    return pd.Timestamp(sample.DEFAULT_END + "-01") + pd.offsets.MonthEnd(0)


def _digests(folder) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def _won_by_month(opps: pd.DataFrame, types=("new", "expansion", "renewal")) -> pd.Series:
    won = opps[(opps["stage"] == "won") & opps["type"].isin(types)]
    return won.groupby(won["close_date"].dt.to_period("M"))["amount"].sum()


def _fiscal_position(index: pd.PeriodIndex) -> np.ndarray:
    return (np.asarray(index.month) - sample.FISCAL_YEAR_START) % 12


def _account_arr(subs: pd.DataFrame, months: pd.PeriodIndex) -> pd.DataFrame:
    """ARR per account at the end of each month (terms are [start, end))."""
    ends = subs["end_date"].fillna(pd.Timestamp("2200-01-01"))
    cols = {}
    for m in months:
        last = m.end_time.normalize()
        active = (subs["start_date"] <= last) & (ends > last)
        cols[m] = subs[active].groupby("account_id")["arr"].sum()
    return pd.DataFrame(cols).fillna(0.0)


# --------------------------------------------------------------------------- determinism, size


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    sample.write_sample(a, reps=20, months=24, seed=3)
    sample.write_sample(b, reps=20, months=24, seed=3)
    sample.write_sample(c, reps=20, months=24, seed=4)
    assert _digests(a) == _digests(b)
    differs = [name for name in FILES if _digests(a)[name] != _digests(c)[name]]
    assert differs == list(FILES)


def test_default_end_is_fixed(tables, end_day):
    assert sample.generate(reps=10, months=12, end=None)["opportunities"].equals(
        sample.generate(reps=10, months=12, end=sample.DEFAULT_END)["opportunities"]
    )
    closed = tables["opportunities"]["stage"].isin(schema.CLOSED_STAGES)
    assert tables["opportunities"].loc[closed, "close_date"].max() <= end_day
    first = tables["opportunities"].loc[closed, "close_date"].min()
    assert first >= end_day - pd.DateOffset(months=config.SAMPLE_MONTHS) + pd.Timedelta(days=1)


def test_end_moves_history():
    opps = sample.generate(reps=10, months=12, end="2021-03")["opportunities"]
    closed = opps[opps["stage"].isin(schema.CLOSED_STAGES)]
    assert closed["close_date"].max() <= pd.Timestamp("2021-03-31")
    assert closed["close_date"].min() >= pd.Timestamp("2020-04-01")


def test_row_counts_scale_with_reps():
    small = sample.generate(reps=30, months=24, seed=5)
    large = sample.generate(reps=120, months=24, seed=5)
    assert len(small["reps"]) == 30 and len(large["reps"]) == 120
    for name in ("accounts", "opportunities", "invoices", "subscriptions"):
        ratio = len(large[name]) / len(small[name])
        assert 2.5 < ratio < 6.0, (name, ratio)


def test_default_size(tables):
    counts = {name: len(df) for name, df in tables.items()}
    assert counts["reps"] == config.SAMPLE_REPS
    assert 15_000 < counts["opportunities"] < 30_000
    assert 1_200 < counts["accounts"] < 4_500
    assert counts["subscriptions"] > 5_000 and counts["invoices"] > 10_000


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize("name", list(schema.TABLES))
def test_columns_follow_schema(tables, name):
    df = tables[name]
    assert list(df.columns) == list(schema.TABLES[name].column_names)
    assert not df.duplicated(list(schema.TABLES[name].unique_columns)).any()
    for column in schema.TABLES[name].columns:
        kind = df[column.name].dtype.kind
        expected = {"date": "M", "float": "f", "int": "i", "str": "OU"}[column.dtype]
        if column.dtype == "str":
            assert pd.api.types.is_string_dtype(df[column.name]), column.name
        else:
            assert kind in expected, (column.name, df[column.name].dtype)
        if column.dtype == "date":
            assert df[column.name].dtype == np.dtype("datetime64[ns]")
        if column.required:
            assert df[column.name].notna().all(), column.name


def test_ids_and_values(tables):
    reps, opps = tables["reps"], tables["opportunities"]
    assert reps["rep_id"].iloc[0] == "R0001" and reps["rep_id"].str.fullmatch(r"R\d{4}").all()
    assert set(opps["stage"]) == set(schema.STAGES)
    assert set(opps["type"]) == set(schema.OPPORTUNITY_TYPES)
    assert set(opps["product"]) == set(sample.PRODUCTS)
    assert (opps["amount"] > 0).all()
    assert set(tables["accounts"]["segment"]) == {b[0] for b in config.SEGMENT_BANDS}
    assert set(reps["region"]) == {"North America East", "North America West", "EMEA", "APAC"}


def test_segment_follows_employee_bands(tables):
    acc = tables["accounts"]
    for name, lo, hi in config.SEGMENT_BANDS:
        rows = acc[acc["segment"] == name]
        assert len(rows) > 0
        assert ((rows["employees"] >= lo) & (rows["employees"] < hi)).all(), name
    # heavy tail: the largest account is far above the median
    assert acc["employees"].max() > 100 * acc["employees"].median()
    corr = np.corrcoef(np.log(acc["employees"]), np.log(acc["annual_revenue"]))[0, 1]
    assert corr > 0.8


def test_country_matches_region(tables):
    acc = tables["accounts"]
    allowed = {name: set(countries) for name, _w, countries in sample.REGIONS}
    for region, countries in acc.groupby("region")["country"]:
        assert set(countries) <= allowed[region], region
    # a country belongs to one region, apart from the two North American regions
    na = acc["region"].str.startswith("North America")
    assert acc.loc[~na].groupby("country")["region"].nunique().max() == 1


# --------------------------------------------------------------------------- consistency


def test_referential_integrity(tables):
    acc, reps, opps = tables["accounts"], tables["reps"], tables["opportunities"]
    assert opps["rep_id"].isin(reps["rep_id"]).all()
    assert opps["account_id"].isin(acc["account_id"]).all()
    assert acc["owner_rep_id"].isin(reps["rep_id"]).all()
    for name in ("subscriptions", "invoices"):
        assert tables[name]["account_id"].isin(acc["account_id"]).all(), name
    assert tables["subscriptions"]["rep_id"].isin(reps["rep_id"]).all()
    merged = opps.merge(
        acc[["account_id", "segment", "region"]], on="account_id", suffixes=("", "_acc")
    )
    assert (merged["segment"] == merged["segment_acc"]).all()
    assert (merged["region"] == merged["region_acc"]).all()


def test_owner_has_region_and_segment_of_account(tables):
    merged = tables["accounts"].merge(
        tables["reps"], left_on="owner_rep_id", right_on="rep_id", suffixes=("", "_rep")
    )
    assert (merged["segment"] == merged["segment_rep"]).all()
    assert (merged["region"] == merged["region_rep"]).all()
    # owners are on staff at the end, apart from a territory whose reps all left
    assert merged["end_date"].isna().mean() > 0.9


def test_deal_dates(tables, end_day):
    opps = tables["opportunities"].merge(
        tables["reps"][["rep_id", "hire_date", "end_date"]], on="rep_id"
    )
    assert (opps["created_date"] <= opps["close_date"]).all()
    closed = opps["stage"].isin(schema.CLOSED_STAGES)
    assert (opps.loc[closed, "close_date"] <= end_day).all()
    open_ = opps[~closed]
    assert (open_["close_date"] > end_day).all()
    assert (open_["close_date"] <= end_day + pd.DateOffset(months=sample.PIPELINE_MONTHS)).all()
    assert (open_["created_date"] <= end_day).all()
    won = opps[opps["stage"] == "won"]
    assert (won["close_date"] >= won["hire_date"]).all()
    assert (won["close_date"] <= won["end_date"].fillna(end_day)).all()


def test_open_pipeline_shape(tables, end_day):
    opps = tables["opportunities"]
    open_ = opps[opps["stage"].isin(schema.OPEN_STAGES)]
    ahead = (open_["close_date"].dt.to_period("M") - end_day.to_period("M")).map(lambda d: d.n)
    assert set(ahead) == set(range(1, sample.PIPELINE_MONTHS + 1))
    share = open_["stage"].value_counts(normalize=True)
    assert share["prospecting"] + share["qualification"] > share["proposal"] + share["negotiation"]
    assert share["prospecting"] > share["negotiation"]


def test_reps_structure(tables, end_day):
    reps = tables["reps"]
    team = reps.groupby("manager").size()
    assert 5 <= team.mean() <= 9 and team.min() >= 3
    assert (reps.groupby("manager")["region"].nunique() == 1).all()
    ramp = reps.groupby("segment")["ramp_months"].unique()
    assert ramp.map(len).max() == 1
    assert ramp["SMB"][0] < ramp["Mid-Market"][0] < ramp["Enterprise"][0]
    start = end_day - pd.DateOffset(months=config.SAMPLE_MONTHS) + pd.Timedelta(days=1)
    hired_in_history = (reps["hire_date"] >= start).sum()
    assert hired_in_history >= 15
    left = reps["end_date"].notna()
    assert 10 <= left.sum() <= 40
    assert (reps.loc[left, "end_date"] > reps.loc[left, "hire_date"]).all()
    assert (reps.loc[left, "end_date"] <= end_day).all()
    # about 15-20 % of reps leave a year
    years = config.SAMPLE_MONTHS / 12
    exposure = (
        (reps["end_date"].fillna(end_day) - reps["hire_date"].clip(lower=start)).dt.days / 365.25
    ).sum()
    assert 0.08 < left.sum() / exposure < 0.28
    assert years == 4


def test_regions_grow_with_reps():
    assert sample._region_count(60) == 4
    assert sample._region_count(1) == 1
    assert sample._region_count(2000) == 8
    assert [sample._region_count(n) for n in (120, 240, 480)] == [5, 6, 7]


def test_subscription_terms(tables, end_day):
    subs = tables["subscriptions"]
    ended = subs["end_date"].notna()
    assert (subs["start_date"] <= end_day).all()
    assert (subs.loc[ended, "end_date"] <= end_day).all()
    span = subs.loc[ended, "end_date"].dt.to_period("M") - subs.loc[
        ended, "start_date"
    ].dt.to_period("M")
    assert (span.map(lambda d: d.n) == 12).all()
    active = subs[~ended]
    assert (active["start_date"] > end_day - pd.DateOffset(months=12)).all()
    # renewals start where an earlier term of the same account and product ended
    starts = set(zip(subs["account_id"], subs["product"], subs["start_date"], strict=True))
    ends = set(
        zip(
            subs.loc[ended, "account_id"],
            subs.loc[ended, "product"],
            subs.loc[ended, "end_date"],
            strict=True,
        )
    )
    assert len(starts & ends) > 0.7 * len(ends)
    assert (subs["arr"] > 0).all()


def test_won_renewals_match_subscriptions(tables):
    opps, subs = tables["opportunities"], tables["subscriptions"]
    won = opps[(opps["type"] == "renewal") & (opps["stage"] == "won")]
    keys = set(zip(subs["account_id"], subs["start_date"], subs["arr"], strict=True))
    matched = [
        k in keys for k in zip(won["account_id"], won["close_date"], won["amount"], strict=True)
    ]
    assert np.mean(matched) > 0.99


def test_invoice_dates(tables, end_day):
    inv = tables["invoices"]
    assert (inv["invoice_date"] <= end_day).all()
    assert set((inv["due_date"] - inv["invoice_date"]).dt.days) == set(sample.NET_TERMS_DAYS)
    paid = inv["paid_date"].notna()
    assert (inv.loc[paid, "paid_date"] > inv.loc[paid, "invoice_date"]).all()
    assert (inv.loc[paid, "paid_date"] <= end_day).all()
    assert 0.005 < (~paid).mean() < 0.15
    late = inv.loc[paid, "paid_date"] > inv.loc[paid, "due_date"]
    assert 0.3 < late.mean() < 0.9


# --------------------------------------------------------------------------- realism


def test_seasonality(tables):
    booked = _won_by_month(tables["opportunities"])
    booked = booked / booked.rolling(12, center=True, min_periods=6).mean()  # remove the trend
    pos = _fiscal_position(booked.index)
    quarter_end = pos % 3 == 2
    assert booked[quarter_end].mean() > 1.25 * booked[~quarter_end].mean()
    q4, q2 = booked[pos >= 9].mean(), booked[(pos >= 3) & (pos < 6)].mean()
    assert q4 > q2
    # summer dip: August, a quarter's first month, well below an average month
    assert booked[booked.index.month == 8].mean() < 0.9


def test_growth(tables):
    for types in (("new", "expansion"), ("new", "expansion", "renewal")):
        booked = _won_by_month(tables["opportunities"], types)
        years = len(booked) / 12 - 1
        growth = (booked.iloc[-12:].sum() / booked.iloc[:12].sum()) ** (1 / years) - 1
        assert 0.12 < growth < 0.40, (types, growth)


def test_win_rate_by_segment(tables):
    opps = tables["opportunities"]
    closed = opps[opps["stage"].isin(schema.CLOSED_STAGES) & (opps["type"] != "renewal")]
    rate = closed.assign(won=closed["stage"] == "won").groupby("segment")["won"].mean()
    assert rate["SMB"] > rate["Mid-Market"] > rate["Enterprise"]
    assert 0.25 < rate["SMB"] < 0.45 and 0.12 < rate["Enterprise"] < 0.32
    renewals = opps[opps["stage"].isin(schema.CLOSED_STAGES) & (opps["type"] == "renewal")]
    assert 0.8 < (renewals["stage"] == "won").mean() < 0.97


def test_deal_size_and_cycle_by_segment(tables):
    won = tables["opportunities"]
    won = won[(won["stage"] == "won") & (won["type"] == "new")]
    size = won.groupby("segment")["amount"].median()
    cycle = (won["close_date"] - won["created_date"]).dt.days.groupby(won["segment"]).median()
    assert size["SMB"] < size["Mid-Market"] < size["Enterprise"]
    assert cycle["SMB"] < cycle["Mid-Market"] < cycle["Enterprise"]
    assert 20 <= cycle["SMB"] <= 45 and 140 <= cycle["Enterprise"] <= 220


def test_annual_arr_churn(tables, end_day):
    months = pd.period_range(end=end_day.to_period("M"), periods=config.SAMPLE_MONTHS, freq="M")
    arr = _account_arr(tables["subscriptions"], months)
    prev = arr.shift(1, axis=1)
    churned = (((prev > 0) & (arr == 0)) * prev).sum()
    total = arr.sum()
    assert total.iloc[-1] > 1.5 * total.iloc[0]
    rates = []
    for year in range(1, config.SAMPLE_MONTHS // 12):
        window = months[12 * year - 11 : 12 * year + 1]
        rates.append(churned[window].sum() / total[months[12 * year - 12]])
    assert 0.04 <= np.mean(rates) <= 0.09, rates
    assert 0.02 <= min(rates) and max(rates) <= 0.12, rates


def test_dso(tables, end_day):
    inv = tables["invoices"]
    paid = inv["paid_date"].fillna(pd.Timestamp("2200-01-01"))
    dso = []
    for month in pd.period_range(end=end_day.to_period("M"), periods=12, freq="M"):
        day = month.end_time.normalize()
        receivable = inv.loc[(inv["invoice_date"] <= day) & (paid > day), "amount"].sum()
        billed = inv.loc[
            (inv["invoice_date"] > day - pd.Timedelta(days=90)) & (inv["invoice_date"] <= day),
            "amount",
        ].sum()
        dso.append(receivable / billed * 90)
    assert 30 <= np.mean(dso) <= 75


def test_new_reps_ramp(tables, end_day):
    reps, opps = tables["reps"], tables["opportunities"]
    won = opps[opps["stage"] == "won"]
    booked = won.groupby(["rep_id", won["close_date"].dt.to_period("M")])["amount"].sum()
    start = (end_day - pd.DateOffset(months=config.SAMPLE_MONTHS - 1)).to_period("M")
    first, later = [], []
    for rep in reps.itertuples():
        hired = rep.hire_date.to_period("M")
        last = (rep.end_date if pd.notna(rep.end_date) else end_day).to_period("M")
        if hired < start or (last - hired).n < rep.ramp_months + 6:
            continue
        months = pd.period_range(hired, hired + rep.ramp_months + 5, freq="M")
        series = booked.get(rep.rep_id, pd.Series(dtype=float)).reindex(months, fill_value=0.0)
        first.append(series.iloc[0])
        later.append(series.iloc[rep.ramp_months :].mean())
    assert len(first) >= 5
    assert np.mean(first) < 0.5 * np.mean(later)


# --------------------------------------------------------------------------- files and command


def test_write_round_trips(tmp_path):
    tables = sample.generate(reps=8, months=12, seed=2)
    paths = sample.write(tables, tmp_path / "out")
    assert list(paths) == list(schema.TABLES)
    for name, path in paths.items():
        assert path.name == f"{name}.csv"
        text = path.read_text()
        assert "\r" not in text
        assert re.search(r"(^|,)(nan|NaN|NaT|None)(,|$)", text, flags=re.MULTILINE) is None
        dates = [c.name for c in schema.TABLES[name].columns if c.dtype == "date"]
        back = pd.read_csv(path, parse_dates=dates, keep_default_na=True)
        assert list(back.columns) == list(tables[name].columns)
        assert len(back) == len(tables[name])
        for column in dates:
            assert back[column].astype("datetime64[ns]").equals(tables[name][column]), (
                name,
                column,
            )
    reps_text = (tmp_path / "out" / "reps.csv").read_text().splitlines()
    assert reps_text[0] == ",".join(schema.REPS.column_names)
    assert re.fullmatch(
        r"R0001,[^,]+,[^,]+,[^,]+,[^,]+,\d{4}-\d{2}-\d{2},(\d{4}-\d{2}-\d{2})?,\d+", reps_text[1]
    )
    amounts = pd.read_csv(tmp_path / "out" / "opportunities.csv", dtype=str)["amount"]
    assert amounts.str.fullmatch(r"\d+\.\d{2}").all()


def test_write_rejects_unknown_table(tmp_path):
    with pytest.raises(ParameterError, match=re.escape("cannot write table(s) ['deals']")):
        sample.write({"deals": pd.DataFrame()}, tmp_path)


def test_cli_writes_every_table(tmp_path, capsys):
    out = tmp_path / "sample"
    code = cli.main(
        [
            "sample",
            "--out",
            str(out),
            "--reps",
            "6",
            "--months",
            "12",
            "--seed",
            "1",
            "--end",
            "2025-01",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 7
    assert lines[1] == f"{out / 'reps.csv'}: 6 rows"
    assert all(re.fullmatch(r".+\.csv: \d+ rows", line) for line in lines)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"reps": 0},
            "--reps must be a whole number >= 1 (got 0); the sample needs at least one rep.",
        ),
        (
            {"months": 11},
            "--months must be a whole number >= 12 (got 11); the sample needs a full year of history.",
        ),
        ({"seed": -1}, "--seed must be a whole number >= 0 (got -1)."),
        (
            {"end": "2026-13"},
            "--end must be a month written YYYY-MM, e.g. 2026-10 (got '2026-13').",
        ),
        (
            {"end": "Oct 2026"},
            "--end must be a month written YYYY-MM, e.g. 2026-10 (got 'Oct 2026').",
        ),
    ],
)
def test_command_rejects_bad_arguments(kw, message):
    with pytest.raises(ParameterError, match=f"^{re.escape(message)}$"):
        sample.write_sample("unused", **kw)


def test_cli_bad_reps_message(tmp_path, capsys):
    code = cli.main(["sample", "--out", str(tmp_path), "--reps", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert (
        err
        == "error: --reps must be a whole number >= 1 (got 0); the sample needs at least one rep.\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_generate_names_its_parameters():
    with pytest.raises(ParameterError, match=r"^reps must be a whole number >= 1 \(got -3\)"):
        sample.generate(reps=-3)
    with pytest.raises(ParameterError, match=r"^months must be a whole number >= 12 \(got 6\)"):
        sample.generate(months=6)
    with pytest.raises(ParameterError, match=r"^end must be a month written YYYY-MM"):
        sample.generate(end="2026")


# --------------------------------------------------------------------------- slow


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reps=st.integers(1, 80),
    months=st.integers(12, 40),
    seed=st.integers(0, 2**31),
    end=st.sampled_from(["2019-01", "2024-02", "2026-10", "2030-12"]),
)
def test_invariants_hold_for_any_size(reps, months, seed, end):
    t = sample.generate(reps=reps, months=months, seed=seed, end=end)
    end_day = pd.Timestamp(end + "-01") + pd.offsets.MonthEnd(0)
    acc, opps = t["accounts"], t["opportunities"]
    assert len(t["reps"]) == reps
    assert (
        opps["rep_id"].isin(t["reps"]["rep_id"]).all()
        and opps["account_id"].isin(acc["account_id"]).all()
    )
    assert t["subscriptions"]["account_id"].isin(acc["account_id"]).all()
    assert (opps.loc[opps["stage"] == "won", "close_date"] <= end_day).all()
    assert (t["invoices"]["invoice_date"] <= end_day).all()
    assert set(opps["stage"]) <= set(schema.STAGES) and set(opps["type"]) <= set(
        schema.OPPORTUNITY_TYPES
    )
    for name, lo, hi in config.SEGMENT_BANDS:
        e = acc.loc[acc["segment"] == name, "employees"]
        assert ((e >= lo) & (e < hi)).all()


@pytest.mark.slow
def test_large_company():
    t = sample.generate(reps=2000, months=60)
    opps = t["opportunities"]
    assert 700_000 < len(opps) < 1_400_000
    assert t["reps"]["region"].nunique() == 8
    assert opps["rep_id"].isin(t["reps"]["rep_id"]).all()
    assert opps["account_id"].isin(t["accounts"]["account_id"]).all()
    assert opps["opportunity_id"].is_unique
