"""Tests of the fiscal calendar (revmodel.calendar)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from revmodel import calendar as cal
from revmodel.errors import ParameterError

START_MONTHS = range(1, 13)
NAMINGS = ("end", "start")
MONTH_ABBR = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
MONTHS = pd.date_range("2019-01-01", "2031-12-01", freq="MS")


def reference(months: pd.DatetimeIndex, start: int, naming: str) -> tuple[np.ndarray, np.ndarray]:
    """(fiscal year, quarter) from pandas' own fiscal quarters, named by the year they end in."""
    end_month = MONTH_ABBR[(start - 2) % 12]
    periods = pd.PeriodIndex(months, freq=f"Q-{end_month}")
    year = np.asarray(periods.qyear)
    if naming == "start" and start != 1:
        year = year - 1
    return year, np.asarray(periods.quarter)


# ----------------------------------------------------------------------------- month mapping


@pytest.mark.parametrize(
    ("start", "naming", "month", "quarter", "year"),
    [
        (2, "end", "2026-02-01", "FY2027-Q1", "FY2027"),
        (2, "end", "2027-01-01", "FY2027-Q4", "FY2027"),
        (2, "end", "2026-01-31", "FY2026-Q4", "FY2026"),
        (2, "end", "2026-05-15", "FY2027-Q2", "FY2027"),
        (2, "start", "2026-02-01", "FY2026-Q1", "FY2026"),
        (2, "start", "2027-01-01", "FY2026-Q4", "FY2026"),
        (4, "end", "2026-03-01", "FY2026-Q4", "FY2026"),
        (4, "end", "2026-04-01", "FY2027-Q1", "FY2027"),
        (4, "start", "2026-04-01", "FY2026-Q1", "FY2026"),
        (1, "end", "2026-12-01", "FY2026-Q4", "FY2026"),
        (1, "start", "2026-12-01", "FY2026-Q4", "FY2026"),
        (1, "end", "2027-01-01", "FY2027-Q1", "FY2027"),
        (7, "end", "2026-06-01", "FY2026-Q4", "FY2026"),
        (7, "end", "2026-07-01", "FY2027-Q1", "FY2027"),
        (7, "end", "2026-12-01", "FY2027-Q2", "FY2027"),
        (7, "end", "2027-01-01", "FY2027-Q3", "FY2027"),
        (10, "end", "2025-10-01", "FY2026-Q1", "FY2026"),
        (12, "end", "2025-12-01", "FY2026-Q1", "FY2026"),
        (12, "end", "2026-11-01", "FY2026-Q4", "FY2026"),
        (12, "start", "2025-12-01", "FY2025-Q1", "FY2025"),
    ],
)
def test_hand_checked_labels(start, naming, month, quarter, year):
    months = pd.DatetimeIndex([month])
    assert cal.quarter_label(months, start, naming).tolist() == [quarter]
    assert cal.year_label(months, start, naming).tolist() == [year]
    assert cal.fiscal_year(months, start, naming).tolist() == [int(year[2:])]
    assert cal.fiscal_quarter(months, start).tolist() == [int(quarter[-1])]


@pytest.mark.parametrize("naming", NAMINGS)
@pytest.mark.parametrize("start", START_MONTHS)
def test_matches_pandas_fiscal_quarters(start, naming):
    year, quarter = reference(MONTHS, start, naming)
    np.testing.assert_array_equal(cal.fiscal_year(MONTHS, start, naming), year)
    np.testing.assert_array_equal(cal.fiscal_quarter(MONTHS, start), quarter)
    expected = [f"FY{y}-Q{q}" for y, q in zip(year, quarter, strict=True)]
    assert cal.quarter_label(MONTHS, start, naming).tolist() == expected
    assert cal.year_label(MONTHS, start, naming).tolist() == [f"FY{y}" for y in year]


@pytest.mark.parametrize("naming", NAMINGS)
@pytest.mark.parametrize("start", START_MONTHS)
def test_year_boundaries(start, naming):
    for year in (2025, 2026, 2027):
        first = pd.Timestamp(year, start, 1)
        before = first - pd.DateOffset(months=1)
        months = pd.DatetimeIndex(
            [before, first, pd.Timestamp(year, 12, 1), pd.Timestamp(year + 1, 1, 1)]
        )
        fy = cal.fiscal_year(months, start, naming)
        fm = cal.fiscal_month(months, start)
        fq = cal.fiscal_quarter(months, start)
        # The month before the start month closes a fiscal year; the start month opens the next.
        assert (fm[0], fq[0], fm[1], fq[1]) == (12, 4, 1, 1)
        assert fy[1] == fy[0] + 1
        # Named by the calendar year of its first month, or of its last one.
        assert fy[1] == (year if naming == "start" or start == 1 else year + 1)
        # December -> January changes fiscal year only when the year starts in January.
        assert fy[3] - fy[2] == (1 if start == 1 else 0)
        assert fm[3] == (1 - start) % 12 + 1


def test_start_month_one_names_agree():
    np.testing.assert_array_equal(
        cal.quarter_label(MONTHS, 1, "end"), cal.quarter_label(MONTHS, 1, "start")
    )
    np.testing.assert_array_equal(cal.fiscal_year(MONTHS, 1, "end"), MONTHS.year)


def test_fiscal_month_numbers():
    months = pd.date_range("2026-01-01", periods=12, freq="MS")
    assert cal.fiscal_month(months, 2).tolist() == [12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert cal.fiscal_month(months, 1).tolist() == list(range(1, 13))
    assert cal.fiscal_quarter(months, 4).tolist() == [4, 4, 4, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_defaults_come_from_config():
    from revmodel import config

    months = pd.DatetimeIndex(["2026-02-01"])
    assert (
        cal.quarter_label(months).tolist()
        == cal.quarter_label(months, config.FISCAL_YEAR_START, config.FISCAL_YEAR_NAMING).tolist()
    )
    assert cal.FiscalCalendar() == cal.FiscalCalendar(
        config.FISCAL_YEAR_START, config.FISCAL_YEAR_NAMING
    )


@pytest.mark.parametrize(
    "months",
    [
        pd.DatetimeIndex(["2026-01-15", "2026-02-28"]),
        np.array(["2026-01-01", "2026-02-01"], dtype="datetime64[D]"),
        np.array(["2026-01-31T23:59", "2026-02-01T00:00"], dtype="datetime64[ns]"),
        np.array(["2026-01", "2026-02"], dtype="datetime64[M]"),
        xr.DataArray(pd.DatetimeIndex(["2026-01-01", "2026-02-01"]), dims="month"),
        pd.Series(pd.DatetimeIndex(["2026-01-01", "2026-02-01"])),
        ["2026-01-10", "2026-02-10"],
        pd.DatetimeIndex(["2026-01-31 23:00", "2026-02-01 01:00"], tz="America/New_York"),
    ],
    ids=["index", "days", "ns", "months", "dataarray", "series", "strings", "tz-aware"],
)
def test_accepts_month_containers(months):
    assert cal.quarter_label(months, 2, "end").tolist() == ["FY2026-Q4", "FY2027-Q1"]
    assert cal.fiscal_year(months, 2, "end").dtype == np.int64


def test_keeps_shape_and_accepts_one_date():
    grid = np.array([["2026-01", "2026-02"], ["2026-03", "2026-04"]], dtype="datetime64[M]")
    assert cal.fiscal_quarter(grid, 2).tolist() == [[4, 1], [1, 1]]
    assert cal.quarter_label(grid, 2).shape == (2, 2)
    assert cal.quarter_label("2026-02-14", 2, "end").item() == "FY2027-Q1"
    assert cal.fiscal_year(pd.Timestamp("2026-02-14"), 2, "end").item() == 2027


@pytest.mark.parametrize("start", [0, 13, -1, 2.0, "2", True, None])
def test_bad_start_month(start):
    message = f"start_month must be a whole month number 1-12 (1 = January): got {start!r}"
    with pytest.raises(ParameterError, match=f"^{re.escape(message)}$"):
        cal.fiscal_year(MONTHS, start)
    with pytest.raises(ParameterError, match=re.escape(message)):
        cal.FiscalCalendar(start_month=start)


@pytest.mark.parametrize("naming", ["middle", "END", None])
def test_bad_naming(naming):
    message = (
        "naming must be 'end' or 'start' (name a fiscal year by the calendar year in which it "
        f"ends or starts): got {naming!r}"
    )
    with pytest.raises(ParameterError, match=f"^{re.escape(message)}$"):
        cal.quarter_label(MONTHS, 2, naming)
    with pytest.raises(ParameterError, match=re.escape(message)):
        cal.quarter_months("FY2027", 2, naming)


def test_missing_date_is_refused():
    months = pd.DatetimeIndex(["2026-01-01", None, "2026-03-01"])
    with pytest.raises(
        ParameterError,
        match=r"^months holds a missing date \(NaT\) at position 1: drop or fill it before "
        r"mapping to the fiscal calendar$",
    ):
        cal.fiscal_year(months, 2)


def test_unreadable_dates_are_refused():
    with pytest.raises(ParameterError, match=r"^months must hold dates \(a DatetimeIndex"):
        cal.fiscal_year(["2026-01-01", "not a date"], 2)
    with pytest.raises(ParameterError, match=r"^months must hold dates"):
        cal.fiscal_year(pd.Index(["soon"]), 2)


# ----------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("label", "parsed"),
    [
        ("FY2027-Q1", (2027, 1)),
        ("FY2027-Q4", (2027, 4)),
        ("FY2027", (2027, None)),
        ("FY1999", (1999, None)),
    ],
)
def test_parse_period(label, parsed):
    period = cal.parse_period(label)
    assert tuple(period) == parsed
    assert period.label == label


@pytest.mark.parametrize(
    "label",
    [
        "FY27Q1",
        "FY2027Q1",
        "FY2027-Q5",
        "FY2027-Q0",
        "fy2027",
        "2027",
        " FY2027",
        "FY2027-",
        "",
        2027,
        None,
    ],
)
def test_parse_period_refuses_malformed_labels(label):
    message = f"{label!r} is not a fiscal period label: use FY2027-Q1 or FY2027"
    with pytest.raises(ParameterError, match=f"^{re.escape(message)}$"):
        cal.parse_period(label)


def test_parse_period_message_example():
    with pytest.raises(
        ParameterError, match=r"^'FY27Q1' is not a fiscal period label: use FY2027-Q1 or FY2027$"
    ):
        cal.quarter_months("FY27Q1", 2, "end")


@pytest.mark.parametrize(
    ("label", "start", "naming", "expected"),
    [
        ("FY2027-Q1", 2, "end", ["2026-02", "2026-03", "2026-04"]),
        ("FY2027-Q4", 2, "end", ["2026-11", "2026-12", "2027-01"]),
        ("FY2026-Q4", 2, "start", ["2026-11", "2026-12", "2027-01"]),
        ("FY2027-Q1", 4, "end", ["2026-04", "2026-05", "2026-06"]),
        ("FY2026-Q4", 4, "end", ["2026-01", "2026-02", "2026-03"]),
        ("FY2026-Q4", 1, "end", ["2026-10", "2026-11", "2026-12"]),
        ("FY2026-Q4", 1, "start", ["2026-10", "2026-11", "2026-12"]),
    ],
)
def test_quarter_months_examples(label, start, naming, expected):
    months = cal.quarter_months(label, start, naming)
    assert months.strftime("%Y-%m").tolist() == expected
    assert months.name == "month"
    assert months.dtype == "datetime64[ns]"
    assert (months.day == 1).all()


def test_quarter_months_of_a_year():
    months = cal.quarter_months("FY2027", 2, "end")
    assert months.equals(pd.date_range("2026-02-01", periods=12, freq="MS", name="month"))


@pytest.mark.parametrize("naming", NAMINGS)
@pytest.mark.parametrize("start", START_MONTHS)
def test_quarter_months_round_trip(start, naming):
    labels = np.unique(cal.quarter_label(MONTHS, start, naming))
    for label in labels.tolist():
        months = cal.quarter_months(label, start, naming)
        assert len(months) == 3
        assert cal.quarter_label(months, start, naming).tolist() == [label] * 3
        assert (np.diff(months.year * 12 + months.month) == 1).all()
    for label in np.unique(cal.year_label(MONTHS, start, naming)).tolist():
        months = cal.quarter_months(label, start, naming)
        assert len(months) == 12
        assert cal.year_label(months, start, naming).tolist() == [label] * 12
        assert months[0] == pd.Timestamp(months[0].year, start, 1)
    # Every month in MONTHS comes back from the quarter its label names.
    for month, label in zip(MONTHS, cal.quarter_label(MONTHS, start, naming), strict=True):
        assert month in cal.quarter_months(str(label), start, naming)


@pytest.mark.parametrize(
    ("label", "n", "expected"),
    [
        ("FY2027-Q1", 1, "FY2027-Q2"),
        ("FY2027-Q4", 1, "FY2028-Q1"),
        ("FY2027-Q1", -1, "FY2026-Q4"),
        ("FY2027-Q2", 7, "FY2029-Q1"),
        ("FY2027-Q3", 0, "FY2027-Q3"),
    ],
)
def test_next_quarter(label, n, expected):
    assert cal.next_quarter(label, n) == expected


def test_next_quarter_and_year_errors():
    with pytest.raises(
        ParameterError, match=r"^next_quarter needs a quarter label like FY2027-Q1: got 'FY2027'$"
    ):
        cal.next_quarter("FY2027")
    with pytest.raises(ParameterError, match=r"^n must be a whole number of periods: got 1.5$"):
        cal.next_quarter("FY2027-Q1", 1.5)
    assert cal.next_year("FY2027") == "FY2028"
    assert cal.next_year("FY2027-Q3", -2) == "FY2025"


def test_planner_helpers_from_as_of():
    as_of = "2026-04-01"
    current = cal.current_quarter(as_of, 2, "end")
    assert current == "FY2027-Q1"
    assert cal.next_quarter(current) == "FY2027-Q2"
    assert cal.quarter_months(cal.next_quarter(current), 2, "end")[0] == pd.Timestamp("2026-05-01")
    months = pd.DatetimeIndex(["2026-01-20", "2026-02-01", "2026-04-30", "2026-05-01"])
    assert pd.DatetimeIndex(cal.quarter_start(months, 2)).strftime("%Y-%m").tolist() == [
        "2025-11",
        "2026-02",
        "2026-02",
        "2026-05",
    ]
    assert pd.DatetimeIndex(cal.year_start(months, 2)).strftime("%Y-%m").tolist() == [
        "2025-02",
        "2026-02",
        "2026-02",
        "2026-02",
    ]
    with pytest.raises(ParameterError, match=r"^as_of must be one date: got 2 dates$"):
        cal.current_quarter(months[:2], 2)


def test_labels_sort_chronologically():
    months = pd.date_range("1998-01-01", "2031-12-01", freq="MS")
    for start in START_MONTHS:
        labels = cal.quarter_label(months, start, "end")
        assert (labels[:-1] <= labels[1:]).all()


# ----------------------------------------------------------------------------- coords and roll-up


def tiny_cube(start: int = 2, naming: str = "end", months: int = 36) -> xr.Dataset:
    """2 segments x 2 regions x 4 reps x ``months`` months, as the cube contract lays it out."""
    rng = np.random.default_rng(3)
    shape = (2, 2, 4, months)
    month = pd.date_range("2024-01-01", periods=months, freq="MS")
    bookings = rng.gamma(2.0, 1000.0, size=shape)
    bookings[..., -5:] = np.nan  # after as_of
    bookings[0, 0, 0, :] = np.nan  # a cell with no data at all
    ds = xr.Dataset(
        {
            "bookings": (
                ("segment", "region", "rep", "month"),
                bookings,
                {"units": "USD/month", "long_name": "won amount by close month"},
            ),
            "arr": (
                ("segment", "region", "rep", "month"),
                np.cumsum(rng.gamma(2.0, 10.0, size=shape), axis=-1),
                {"units": "USD/year", "long_name": "ARR at the end of the month"},
            ),
            "headcount": (("rep",), np.array([1.0, 1.0, 0.5, 1.0]), {"units": "FTE"}),
        },
        coords={
            "segment": ["SMB", "Enterprise"],
            "region": ["East", "West"],
            "rep": ["r1", "r2", "r3", "r4"],
            "month": month,
            "manager": ("rep", ["m1", "m1", "m2", "m2"]),
        },
        attrs={"currency": "USD"},
    )
    return cal.assign_fiscal_coords(ds, start, naming)


def test_month_coords_and_assign():
    months = pd.date_range("2026-01-01", periods=3, freq="MS")
    coords = cal.month_coords(months, 2, "end")
    assert set(coords) == {"fiscal_quarter", "fiscal_year"}
    assert coords["fiscal_quarter"].tolist() == ["FY2026-Q4", "FY2027-Q1", "FY2027-Q1"]
    assert coords["fiscal_year"].tolist() == ["FY2026", "FY2027", "FY2027"]
    ds = tiny_cube(4, "start")
    assert ds["fiscal_quarter"].dims == ("month",)
    assert ds["fiscal_quarter"].values[3] == "FY2024-Q1"  # 2024-04 under start=4, "start"
    assert ds.attrs["fiscal_year_start"] == 4
    assert ds.attrs["fiscal_year_naming"] == "start"
    assert ds.attrs["currency"] == "USD"
    assert cal.FiscalCalendar.from_attrs(ds) == cal.FiscalCalendar(4, "start")


def test_assign_refuses_missing_dim():
    with pytest.raises(
        ParameterError, match=r"^dim 'month' is not a dimension of the object: it has \['rep'\]$"
    ):
        cal.assign_fiscal_coords(xr.DataArray([1.0, 2.0], dims="rep"), 2)


@pytest.mark.parametrize("period", ["fiscal_quarter", "fiscal_year"])
def test_rollup_sums_equal_total(period):
    ds = tiny_cube()
    out = cal.rollup(ds, period)
    assert out["bookings"].dims == ("segment", "region", "rep", period)
    total = ds["bookings"].sum("month", skipna=True)
    xr.testing.assert_allclose(out["bookings"].sum(period), total)
    np.testing.assert_allclose(float(out["bookings"].sum()), np.nansum(ds["bookings"].values))


def test_rollup_values_and_labels():
    ds = tiny_cube()  # months 2024-01 .. 2026-12, start=2 "end"
    out = cal.rollup(ds, "fiscal_quarter")
    labels = out["fiscal_quarter"].values.tolist()
    assert labels[:2] == ["FY2024-Q4", "FY2025-Q1"]
    assert labels[-1] == "FY2027-Q4"
    assert len(labels) == 13
    assert labels == sorted(labels)
    assert out["fiscal_year"].values.tolist()[:2] == ["FY2024", "FY2025"]
    cell = ds["bookings"].isel(segment=1, region=0, rep=2)
    got = out["bookings"].isel(segment=1, region=0, rep=2)
    # FY2025-Q1 = Feb, Mar, Apr 2024.
    np.testing.assert_allclose(got.sel(fiscal_quarter="FY2025-Q1"), cell.values[1:4].sum())
    np.testing.assert_allclose(got.sel(fiscal_quarter="FY2024-Q4"), cell.values[0])
    # FY2027-Q4 = Nov, Dec 2026 (the cube ends there), both after as_of: all NaN -> NaN.
    assert np.isnan(got.sel(fiscal_quarter="FY2027-Q4"))
    # FY2027-Q3 = Aug (actual), Sep, Oct (NaN): the actual month alone.
    np.testing.assert_allclose(got.sel(fiscal_quarter="FY2027-Q3"), cell.values[31])
    # A cell with no data at all stays NaN in every quarter.
    assert out["bookings"].isel(segment=0, region=0, rep=0).isnull().all()


def test_rollup_keeps_metadata_and_does_not_mutate():
    ds = tiny_cube()
    before = ds.copy(deep=True)
    out = cal.rollup(ds, "fiscal_year")
    xr.testing.assert_identical(ds, before)
    assert out["bookings"].attrs == {"units": "USD/year", "long_name": "won amount by close month"}
    assert ds["bookings"].attrs["units"] == "USD/month"
    assert out["arr"].attrs["units"] == "USD/year"
    xr.testing.assert_identical(out["headcount"], ds["headcount"])
    assert out["manager"].values.tolist() == ["m1", "m1", "m2", "m2"]
    assert out.attrs == ds.attrs
    assert cal.rollup(ds, "fiscal_quarter")["bookings"].attrs["units"] == "USD/quarter"


def test_rollup_last_for_stocks():
    ds = tiny_cube()
    out = cal.rollup(ds["arr"], "fiscal_quarter", how="last")
    cell = ds["arr"].isel(segment=0, region=1, rep=3).values
    got = out.isel(segment=0, region=1, rep=3)
    np.testing.assert_allclose(got.sel(fiscal_quarter="FY2025-Q1"), cell[3])  # Apr 2024
    assert out.attrs["units"] == "USD/year"


@pytest.mark.parametrize("how", cal.HOWS)
def test_rollup_dask_matches_numpy(how):
    ds = tiny_cube()
    lazy = cal.rollup(ds.chunk({"rep": 2}), "fiscal_quarter", how=how)
    assert lazy["bookings"].chunks is not None
    xr.testing.assert_allclose(lazy.compute(), cal.rollup(ds, "fiscal_quarter", how=how))


def test_rollup_month_is_identity():
    ds = tiny_cube()
    out = cal.rollup(ds, "month")
    xr.testing.assert_identical(out, ds)
    assert out is not ds


def test_rollup_errors():
    ds = tiny_cube()
    with pytest.raises(
        ParameterError,
        match=r"^period must be one of month, fiscal_quarter, fiscal_year: got 'quarter'$",
    ):
        cal.rollup(ds, "quarter")
    with pytest.raises(
        ParameterError, match=r"^how must be one of sum, mean, min, max, first, last: got 'median'$"
    ):
        cal.rollup(ds, how="median")
    with pytest.raises(
        ParameterError,
        match=r"^rollup to fiscal_year needs a fiscal_year\(month\) coordinate of labels: add it "
        r"with revmodel\.calendar\.assign_fiscal_coords\(obj, start_month, naming\)$",
    ):
        cal.rollup(ds.drop_vars("fiscal_year"), "fiscal_year")
    swapped = ds.assign_coords(fiscal_year=("month", ds["fiscal_quarter"].values))
    with pytest.raises(
        ParameterError,
        match=r"^coordinate fiscal_year holds 'FY2024-Q4', which is not a year label$",
    ):
        cal.rollup(swapped, "fiscal_year")
    with pytest.raises(ParameterError, match=r"^dim 'week' is not a dimension of the object"):
        cal.rollup(ds, dim="week")


# ----------------------------------------------------------------------------- 4-4-5 weeks


def test_weeks_calendar_hand_checked():
    table = cal.weeks_calendar(2026, start_month=2, pattern=(4, 4, 5), week_end="SAT")
    assert list(table.columns) == ["fiscal_year", "quarter", "period", "start", "end", "weeks"]
    assert table["start"].iloc[0] == pd.Timestamp("2025-01-26")  # day after Sat 2025-01-25
    assert table["end"].iloc[-1] == pd.Timestamp("2026-01-31")  # last Saturday of Jan 2026
    assert table["weeks"].tolist() == [4, 4, 5, 4, 4, 5, 4, 4, 5, 4, 4, 6]
    assert table["end"].iloc[0] == pd.Timestamp("2025-02-22")
    assert table["quarter"].tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    following = cal.weeks_calendar(2027, start_month=2, pattern=(5, 4, 4))
    assert following["start"].iloc[0] == pd.Timestamp("2026-02-01")
    assert following["end"].iloc[-1] == pd.Timestamp("2027-01-30")
    assert following["weeks"].tolist() == [5, 4, 4] * 4
    assert cal.weeks_calendar(2026, 2, naming="start")["end"].iloc[-1] == pd.Timestamp("2027-01-30")


@pytest.mark.parametrize("pattern", cal.PATTERNS)
@pytest.mark.parametrize("week_end", cal.WEEKDAYS)
@pytest.mark.parametrize("start", START_MONTHS)
def test_weeks_calendar_invariants(start, week_end, pattern):
    weekday = cal.WEEKDAYS.index(week_end)
    end_month = (start - 2) % 12 + 1
    pandas_year_end = pd.offsets.FY5253(weekday=weekday, startingMonth=end_month, variation="last")
    previous_end = None
    for year in range(2020, 2034):
        table = cal.weeks_calendar(year, start, pattern, week_end, "end")
        assert table["period"].tolist() == list(range(1, 13))
        starts, ends = table["start"], table["end"]
        # Contiguous: each period starts the day after the previous one ends.
        assert (
            starts.iloc[1:].to_numpy() == (ends.iloc[:-1] + pd.Timedelta(days=1)).to_numpy()
        ).all()
        assert ((ends - starts).dt.days + 1 == 7 * table["weeks"]).all()
        assert (ends.dt.day_of_week == weekday).all()
        weeks = int(table["weeks"].sum())
        days = (ends.iloc[-1] - starts.iloc[0]).days + 1
        assert (weeks, days) in {(52, 364), (53, 371)}
        assert table["weeks"].iloc[:11].tolist() == (list(pattern) * 4)[:11]
        assert table["weeks"].iloc[11] == pattern[2] + (weeks - 52)
        # Ends on the last week_end weekday of the month before the start month.
        year_end = ends.iloc[-1]
        assert year_end.month == end_month
        assert year_end.year == year
        assert (year_end + pd.Timedelta(days=7)).month != end_month
        assert pandas_year_end.is_on_offset(year_end)
        if previous_end is not None:
            assert starts.iloc[0] == previous_end + pd.Timedelta(days=1)
        previous_end = year_end


def test_weeks_calendar_53_week_years_every_5_or_6_years():
    years = [y for y in range(2000, 2060) if cal.weeks_calendar(y, 2)["weeks"].sum() == 53]
    assert 2026 in years
    assert set(np.diff(years)) <= {5, 6}


@pytest.mark.parametrize("start", [1, 2, 7])
def test_week_period_matches_weeks_calendar(start):
    dates = pd.date_range("2023-11-01", "2027-03-31", freq="D")
    got = cal.week_period(dates, start, (4, 5, 4), "FRI", "end")
    assert got.index.equals(pd.DatetimeIndex(dates, name="date"))
    for year in (2025, 2026):
        table = cal.weeks_calendar(year, start, (4, 5, 4), "FRI", "end")
        for row in table.itertuples():
            inside = got.loc[row.start : row.end]
            assert len(inside) == 7 * row.weeks
            assert (inside["fiscal_year"] == year).all()
            assert (inside["period"] == row.period).all()
            assert (inside["quarter"] == row.quarter).all()
        year_rows = got[got["fiscal_year"] == year]
        assert year_rows["week"].tolist()[::7] == list(range(1, int(table["weeks"].sum()) + 1))


def test_week_period_hand_checked():
    got = cal.week_period(["2026-01-24", "2026-01-25", "2026-01-31", "2026-02-01"], 2)
    assert got["fiscal_year"].tolist() == [2026, 2026, 2026, 2027]
    assert got["period"].tolist() == [12, 12, 12, 1]
    assert got["quarter"].tolist() == [4, 4, 4, 1]
    assert got["week"].tolist() == [52, 53, 53, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"pattern": (4, 4, 4)},
            "pattern must be the weeks in each period of a quarter, one of (4, 4, 5), (4, 5, 4) "
            "or (5, 4, 4): got (4, 4, 4)",
        ),
        (
            {"pattern": "445"},
            "pattern must be the weeks in each period of a quarter, one of (4, 4, 5), (4, 5, 4) "
            "or (5, 4, 4): got '445'",
        ),
        (
            {"week_end": "SATURDAY"},
            "week_end must be one of MON, TUE, WED, THU, FRI, SAT, SUN: got 'SATURDAY'",
        ),
        ({"week_end": 5}, "week_end must be one of MON, TUE, WED, THU, FRI, SAT, SUN: got 5"),
        (
            {"start_month": 0},
            "start_month must be a whole month number 1-12 (1 = January): got 0",
        ),
    ],
)
def test_week_parameter_errors(kwargs, message):
    with pytest.raises(ParameterError, match=f"^{re.escape(message)}$"):
        cal.weeks_calendar(2026, **kwargs)
    with pytest.raises(ParameterError, match=f"^{re.escape(message)}$"):
        cal.week_period(["2026-01-01"], **kwargs)


@pytest.mark.parametrize("year", [1600, 2300, 2026.0, "2026", True])
def test_weeks_calendar_bad_year(year):
    message = f"fiscal_year must be a whole year between 1700 and 2200: got {year!r}"
    with pytest.raises(ParameterError, match=f"^{re.escape(message)}$"):
        cal.weeks_calendar(year)


def test_week_end_is_case_insensitive():
    assert cal.weeks_calendar(2026, 2, week_end="sat").equals(cal.weeks_calendar(2026, 2))


# ----------------------------------------------------------------------------- wrapper


def test_fiscal_calendar_wrapper():
    fc = cal.FiscalCalendar(start_month=4, naming="end")
    months = pd.date_range("2026-01-01", periods=6, freq="MS")
    assert fc.quarter_label(months).tolist() == cal.quarter_label(months, 4, "end").tolist()
    assert fc.year_label(months).tolist() == ["FY2026"] * 3 + ["FY2027"] * 3
    assert fc.fiscal_year(months).tolist() == [2026] * 3 + [2027] * 3
    assert fc.fiscal_quarter(months).tolist() == [4, 4, 4, 1, 1, 1]
    assert fc.fiscal_month(months).tolist() == [10, 11, 12, 1, 2, 3]
    assert fc.quarter_months("FY2027-Q1").equals(cal.quarter_months("FY2027-Q1", 4, "end"))
    assert fc.current_quarter("2026-03-31") == "FY2026-Q4"
    assert fc.month_coords(months)["fiscal_year"].tolist() == fc.year_label(months).tolist()
    assert fc.quarter_start(months).tolist() == cal.quarter_start(months, 4).tolist()
    assert fc.year_start(months).tolist() == cal.year_start(months, 4).tolist()
    assert fc.weeks(2027).equals(cal.weeks_calendar(2027, 4))
    assert fc.week_period(months).equals(cal.week_period(months, 4, naming="end"))
    ds = fc.assign_coords(tiny_cube())
    assert ds.attrs["fiscal_year_start"] == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        fc.start_month = 2  # type: ignore[misc]


def test_from_attrs_needs_the_calendar():
    with pytest.raises(
        ParameterError,
        match=r"^the cube has no attrs\['fiscal_year_start'\]: build it with revmodel\.cube\.build_cube",
    ):
        cal.FiscalCalendar.from_attrs(xr.Dataset())


# ----------------------------------------------------------------------------- properties

month_numbers = st.integers(min_value=1900 * 12, max_value=2200 * 12)


def month_dates(numbers: list[int]) -> np.ndarray:
    return (np.array(numbers, dtype=np.int64) - 1970 * 12).astype("datetime64[M]")


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    first=month_numbers,
    length=st.integers(min_value=1, max_value=60),
    start=st.integers(min_value=1, max_value=12),
    naming=st.sampled_from(NAMINGS),
)
def test_mapping_is_total_and_monotone(first, length, start, naming):
    months = month_dates(list(range(first, first + length)))
    year = cal.fiscal_year(months, start, naming)
    quarter = cal.fiscal_quarter(months, start)
    fmonth = cal.fiscal_month(months, start)
    assert ((quarter >= 1) & (quarter <= 4)).all()
    assert ((fmonth >= 1) & (fmonth <= 12)).all()
    key = year * 4 + quarter
    assert (np.diff(key) >= 0).all()
    assert (np.diff(key) <= 1).all()
    for label in np.unique(cal.quarter_label(months, start, naming)).tolist():
        span = cal.quarter_months(label, start, naming)
        numbers = span.year * 12 + span.month - 1
        assert len(span) == 3
        assert (np.diff(numbers) == 1).all()
        assert (cal.quarter_label(span, start, naming) == label).all()
    for label in np.unique(cal.year_label(months, start, naming)).tolist():
        span = cal.quarter_months(label, start, naming)
        assert len(span) == 12
        assert (cal.year_label(span, start, naming) == label).all()


@pytest.mark.slow
@settings(max_examples=50, deadline=None)
@given(
    first=st.integers(min_value=2000 * 12, max_value=2100 * 12),
    start=st.integers(min_value=1, max_value=12),
    naming=st.sampled_from(NAMINGS),
    values=st.lists(
        st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)), min_size=1, max_size=40
    ),
)
def test_rollup_sums_equal_total_property(first, start, naming, values):
    data = np.array([np.nan if v is None else v for v in values])
    months = month_dates(list(range(first, first + len(values)))).astype("datetime64[ns]")
    da = xr.DataArray(data, dims="month", coords={"month": months})
    da = cal.assign_fiscal_coords(da, start, naming)
    for period in ("fiscal_quarter", "fiscal_year"):
        out = cal.rollup(da, period)
        np.testing.assert_allclose(float(out.sum()), np.nansum(data), rtol=1e-12)
        assert int(out.isnull().sum()) == sum(
            bool(np.isnan(data[da[period].values == label]).all())
            for label in out[period].values.tolist()
        )


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(
    day=st.integers(min_value=-25000, max_value=60000),
    start=st.integers(min_value=1, max_value=12),
    week_end=st.sampled_from(cal.WEEKDAYS),
    pattern=st.sampled_from(cal.PATTERNS),
)
def test_week_period_lies_in_its_period(day, start, week_end, pattern):
    date = np.datetime64("1970-01-01") + np.timedelta64(day, "D")
    row = cal.week_period([date], start, pattern, week_end).iloc[0]
    table = cal.weeks_calendar(int(row["fiscal_year"]), start, pattern, week_end)
    period = table.iloc[int(row["period"]) - 1]
    assert period["start"] <= pd.Timestamp(date) <= period["end"]
    assert period["quarter"] == row["quarter"]
