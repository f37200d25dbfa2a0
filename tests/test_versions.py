"""Plan versions: write-once, atomic, read back identically, and diffed cell by cell."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import versions
from revmodel.assumptions import Assumptions
from revmodel.errors import DataError, ParameterError
from revmodel.retention import retention_plan
from tests.test_retention import company, company_cube


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return company()


@pytest.fixture(scope="module")
def cube(tables) -> xr.Dataset:
    return company_cube(tables)


@pytest.fixture
def plan() -> xr.Dataset:
    """A small plan by region x fiscal quarter with string coords and attrs of every kind."""
    return xr.Dataset(
        {
            "quota": (
                ("region", "fiscal_quarter"),
                np.array([[100.0, 120.0], [80.0, 90.0]]),
                {"units": "USD/quarter", "long_name": "Quota"},
            ),
            "capacity": (("region",), np.array([3.5, 2.0]), {"units": "reps"}),
        },
        coords={
            "region": np.array(["East", "West"], dtype=object),
            "fiscal_quarter": ["FY2027-Q1", "FY2027-Q2"],
            "manager": ("region", np.array(["M1", "M2"], dtype=object)),
        },
        attrs={"scenario": "base", "over_assignment": 1.1, "locked": True, "notes": {"a": 1}},
    )


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_write_then_read_back_identically(plan, tmp_path, fmt):
    info = versions.save_version(
        plan,
        "budget",
        "FY2027-v1",
        tmp_path,
        parameters={"target_growth": 0.25},
        data_hash="abc",
        fmt=fmt,
    )
    assert info.path == tmp_path / "budget" / "FY2027-v1"
    back = versions.load_version(tmp_path, "budget", "FY2027-v1")
    xr.testing.assert_identical(back, plan)
    assert back["region"].dtype == object
    assert back.attrs == plan.attrs


def test_the_cube_and_a_retention_plan_round_trip(cube, tmp_path):
    versions.save_version(cube, "forecast", "cube", tmp_path)
    xr.testing.assert_identical(versions.load_version(tmp_path, "forecast", "cube"), cube)
    rp = retention_plan(cube, Assumptions(plan_year="FY2026"), dims=("region",))
    versions.save_version(rp, "budget", "retention", tmp_path, fmt="zarr")
    xr.testing.assert_identical(versions.load_version(tmp_path, "budget", "retention"), rp)


def test_manifest_records_parameters_hash_code_and_time(plan, tmp_path, tables):
    h = versions.data_hash(tables)
    a = Assumptions(name="stretch", target_growth=0.3)
    versions.save_version(plan, "forecast", "v1", tmp_path, parameters=a.to_dict(), data_hash=h)
    m = json.loads((tmp_path / "forecast" / "v1" / "manifest.json").read_text())
    assert m["parameters"]["target_growth"] == 0.3
    assert m["parameters"]["ramp_months"] == {"SMB": 3, "Mid-Market": 5, "Enterprise": 7}
    assert m["data_hash"] == h
    assert m["code_version"]["revmodel"] == "0.1.0"
    assert pd.Timestamp(m["created"]).tzname() == "UTC"
    assert m["dims"] == {"region": 2, "fiscal_quarter": 2}
    assert m["variables"]["quota"] == {
        "dims": ["region", "fiscal_quarter"],
        "dtype": "float64",
        "units": "USD/quarter",
    }
    info = versions.read_manifest(tmp_path, "forecast", "v1")
    assert info.data_hash == h
    assert info.checksum == m["checksum"]


def test_a_version_is_never_overwritten(plan, tmp_path):
    versions.save_version(plan, "budget", "FY2027", tmp_path)
    changed = plan.assign(quota=plan["quota"] * 2)
    with pytest.raises(
        ParameterError,
        match=r"version budget/FY2027 already exists in .*: versions are write-once; pick a new name",
    ):
        versions.save_version(changed, "budget", "FY2027", tmp_path)
    xr.testing.assert_identical(versions.load_version(tmp_path, "budget", "FY2027"), plan)
    # The same name under another kind is another version.
    versions.save_version(changed, "reforecast", "FY2027", tmp_path)
    assert list(versions.list_versions(tmp_path)["kind"]) == ["budget", "reforecast"]


def test_saved_data_files_are_read_only(plan, tmp_path):
    info = versions.save_version(plan, "budget", "ro", tmp_path)
    assert not os.access(info.path / "data.nc", os.W_OK) or os.geteuid() == 0
    assert (os.stat(info.path / "data.nc").st_mode & 0o222) == 0


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_a_crashed_write_leaves_no_visible_version(plan, tmp_path, monkeypatch, fmt):
    real = versions._write_data

    def half_then_crash(ds, path, f):
        real(ds, path, f)  # the data are on disk...
        raise OSError("disk full")  # ...but the manifest never is

    monkeypatch.setattr(versions, "_write_data", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        versions.save_version(plan, "budget", "crash", tmp_path, fmt=fmt)
    assert versions.list_versions(tmp_path).empty
    assert os.listdir(tmp_path / "budget") == []  # the temporary folder is gone
    with pytest.raises(DataError, match=r"no version budget/crash in .*; versions there: none"):
        versions.load_version(tmp_path, "budget", "crash")
    # The name is still free.
    monkeypatch.setattr(versions, "_write_data", real)
    versions.save_version(plan, "budget", "crash", tmp_path, fmt=fmt)
    assert list(versions.list_versions(tmp_path)["name"]) == ["crash"]


def test_leftovers_of_a_killed_write_are_not_versions(plan, tmp_path):
    versions.save_version(plan, "budget", "good", tmp_path)
    junk = tmp_path / "budget" / ".tmp-other-123"
    junk.mkdir()
    (junk / "manifest.json").write_text("{}")
    (tmp_path / "budget" / "no-manifest").mkdir()
    listed = versions.list_versions(tmp_path)
    assert list(listed["name"]) == ["good"]
    assert list(listed.columns) == [
        "kind",
        "name",
        "created",
        "data_hash",
        "revmodel",
        "git_commit",
        "format",
        "path",
    ]


def test_a_changed_version_fails_its_checksum(plan, tmp_path):
    info = versions.save_version(plan, "budget", "v1", tmp_path)
    data = info.path / "data.nc"
    data.chmod(0o644)
    with data.open("r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"tampered")
    with pytest.raises(DataError, match=r"data.nc: the data do not match the checksum"):
        versions.load_version(tmp_path, "budget", "v1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "actuals"}, r"kind must be one of budget, forecast, reforecast, got 'actuals'"),
        ({"name": "../escape"}, r"version name '../escape' is not allowed"),
        ({"name": ".hidden"}, r"version name '.hidden' is not allowed"),
        ({"fmt": "csv"}, r"fmt must be one of netcdf, zarr, got 'csv'"),
    ],
)
def test_bad_arguments(plan, tmp_path, kwargs, message):
    args = {"kind": "budget", "name": "v1", "store_dir": tmp_path, **kwargs}
    with pytest.raises(ParameterError, match=message):
        versions.save_version(plan, **args)
    assert versions.list_versions(tmp_path).empty


def test_code_version_without_git(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert versions.code_version() == {"revmodel": "0.1.0", "git_commit": None}


def test_data_hash_is_stable_and_sensitive(tables, tmp_path):
    h = versions.data_hash(tables)
    assert h == versions.data_hash({k: v.copy() for k, v in reversed(list(tables.items()))})
    changed = {
        **tables,
        "invoices": tables["invoices"].assign(amount=tables["invoices"]["amount"] + 1),
    }
    assert versions.data_hash(changed) != h
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_text("x\n1\n")
    first = versions.data_hash(tmp_path / "d")
    assert first == versions.data_hash(str(tmp_path / "d"))
    (tmp_path / "d" / "a.csv").write_text("x\n2\n")
    assert versions.data_hash(tmp_path / "d") != first
    with pytest.raises(DataError, match=r"no such file or folder to hash"):
        versions.data_hash(tmp_path / "missing")


# --------------------------------------------------------------------------- diff


def test_cell_level_diff_says_what_moved_where_and_by_how_much(plan, tmp_path):
    versions.save_version(plan, "budget", "v1", tmp_path)
    new = plan.copy(deep=True)
    new["quota"].loc[{"region": "West", "fiscal_quarter": "FY2027-Q2"}] = 60.0
    new["quota"].loc[{"region": "East", "fiscal_quarter": "FY2027-Q1"}] = 150.0
    new["capacity"].loc[{"region": "East"}] = 3.5 + 1e-12  # within rtol: unchanged
    info = versions.save_version(new, "reforecast", "v2", tmp_path)

    d = versions.diff_versions((tmp_path, "budget", "v1"), info)
    assert list(d.columns) == [
        "variable",
        "region",
        "manager",
        "fiscal_quarter",
        "old",
        "new",
        "change",
        "pct_change",
        "status",
    ]
    assert d.to_dict("records") == [
        {
            "variable": "quota",
            "region": "East",
            "manager": "M1",
            "fiscal_quarter": "FY2027-Q1",
            "old": 100.0,
            "new": 150.0,
            "change": 50.0,
            "pct_change": 0.5,
            "status": "changed",
        },
        {
            "variable": "quota",
            "region": "West",
            "manager": "M2",
            "fiscal_quarter": "FY2027-Q2",
            "old": 90.0,
            "new": 60.0,
            "change": -30.0,
            "pct_change": -1 / 3,
            "status": "changed",
        },
    ]
    s = versions.diff_summary(d)
    assert s.loc["quota", "cells"] == 2
    assert s.loc["quota", "change"] == 20.0
    assert s.loc["quota", "largest_change"] == 50.0
    by_region = versions.diff_summary(d, by="region")
    assert by_region.loc[("quota", "West"), "change"] == -30.0
    with pytest.raises(
        ParameterError, match=r"diff has no column 'country'; summarise by one of variable, region"
    ):
        versions.diff_summary(d, by="country")


def test_diff_of_identical_versions_is_empty(plan):
    d = versions.diff_versions(plan, plan.copy(deep=True))
    assert d.empty
    assert versions.diff_summary(d).empty


def test_diff_reports_added_cells_and_variables(plan):
    new = plan.reindex(region=["East", "West", "North"])
    new["quota"].loc[{"region": "North"}] = [10.0, 20.0]
    new = new.assign(hires=("region", [1.0, 0.0, 2.0]))
    d = versions.diff_versions(plan, new)
    added = d[d["status"] == "added"]
    assert sorted(added["new"]) == [10.0, 20.0]
    # North's capacity is missing in both versions: not a change.
    assert list(d["status"]) == ["added", "added"]
    assert d.attrs["only_in_new"] == ["hires"]
    assert d.attrs["only_in_old"] == []


def test_diff_on_the_cube_finds_one_cell(cube):
    changed = cube.copy(deep=True)
    changed["bookings"].loc[
        {"segment": "SMB", "region": "East", "rep": "R1", "month": "2024-01-01"}
    ] += 7
    d = versions.diff_versions(cube, changed)
    assert len(d) == 1
    row = d.iloc[0]
    assert (row["variable"], row["rep"], row["manager"], row["fiscal_quarter"]) == (
        "bookings",
        "R1",
        "M1",
        "FY2024-Q1",
    )
    assert row["change"] == pytest.approx(7)
    assert versions.diff_summary(d, by="manager").loc[
        ("bookings", "M1"), "change"
    ] == pytest.approx(7)
