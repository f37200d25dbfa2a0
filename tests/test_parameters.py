"""Tests of the parameters file: schema, validation messages, scenarios."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
import yaml

from revmodel import config, parameters
from revmodel.errors import ParameterError

PARAMS_DIR = config.PARAMETERS_DIR


def write(tmp_path: Path, data: dict, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def test_cycle_file_loads_with_defaults_and_scenarios(data_dir):
    p = parameters.load(PARAMS_DIR / "FY2027-Q1.yaml", overrides={"data_dir": str(data_dir)})
    assert p["cycle"] == "FY2027-Q1"
    assert p["data_dir"] == str(data_dir)
    assert p["fiscal_year_start"] == 11
    assert p["over_assignment"] == pytest.approx(1.10)
    assert [s["name"] for s in p["scenarios"]] == ["downside", "stretch"]
    a = parameters.assumptions(p)
    assert a.plan_year == "FY2027" and a.target_amount is None
    assert a.attainment_tolerance == pytest.approx(0.9)


def test_every_key_of_the_schema_has_help_and_a_type():
    for key, p in parameters.SCHEMA.items():
        assert p.help, key
        assert p.type in ("str", "int", "float", "bool", "dict", "list"), key


def test_unknown_key_is_named(tmp_path, data_dir):
    path = write(tmp_path, {"cycle": "FY2027-Q1", "data_dir": str(data_dir), "churn": 0.05})
    with pytest.raises(ParameterError, match=r"p\.yaml: unknown key 'churn'; known keys are cycle"):
        parameters.load(path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("horizon", "12", r"horizon must be an int, got '12' \(str\)"),
        ("horizon", True, r"horizon must be an int, got True \(bool\)"),
        ("over_assignment", "much", r"over_assignment must be a number \(e.g. 1.10\), got 'much'"),
        ("backfill", "yes", r"backfill must be a bool, got 'yes'"),
        ("rep_attrition", 0.2, r"rep_attrition must be a dict"),
        ("fiscal_year_start", 13, r"fiscal_year_start must be a month number 1-12, got 13"),
        ("cycle", "2027Q1", r"cycle must be a fiscal quarter like FY2027-Q1, got '2027Q1'"),
        ("reconcile_method", "magic", r"reconcile_method must be one of bottom_up"),
        ("as_of", "2026/10", r"as_of must be a month YYYY-MM"),
        ("horizon", None, r"horizon must be an int, got None"),
    ],
)
def test_wrong_values_are_named(tmp_path, data_dir, key, value, message):
    data = {"cycle": "FY2027-Q1", "data_dir": str(data_dir), key: value}
    with pytest.raises(ParameterError, match=message):
        parameters.load(write(tmp_path, data))


def test_assumption_ranges_are_checked_too(tmp_path, data_dir):
    data = {"cycle": "FY2027-Q1", "data_dir": str(data_dir), "over_assignment": 3.0}
    with pytest.raises(ParameterError, match=r"over_assignment must be between 0.5 and 2, got 3.0"):
        parameters.load(write(tmp_path, data))


def test_missing_data_folder_stops_the_run(tmp_path):
    data = {"cycle": "FY2027-Q1", "data_dir": str(tmp_path / "nowhere")}
    with pytest.raises(ParameterError, match=r"data_dir '.*nowhere': no such folder"):
        parameters.load(write(tmp_path, data))


def test_relative_data_dir_starts_at_home(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "HOME", tmp_path)
    (tmp_path / "data" / "x").mkdir(parents=True)
    p = parameters.check({"cycle": "FY2027-Q1", "data_dir": "data/x"})
    assert p["data_dir"] == str(tmp_path / "data" / "x")


def test_missing_required_key(tmp_path, data_dir):
    with pytest.raises(ParameterError, match=r"missing key 'cycle'"):
        parameters.load(write(tmp_path, {"data_dir": str(data_dir)}))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParameterError, match=r"no such parameters file"):
        parameters.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cycle: [unclosed", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"bad\.yaml is not valid YAML at line 1 "):
        parameters.load(bad)


def test_scenario_files_are_checked_and_named(tmp_path, data_dir):
    (tmp_path / "s.yaml").write_text("name: s\nchurn: 0.1\n", encoding="utf-8")
    data = {"cycle": "FY2027-Q1", "data_dir": str(data_dir), "scenarios": ["s.yaml"]}
    with pytest.raises(ParameterError, match=r"s\.yaml: unknown key 'churn'"):
        parameters.load(write(tmp_path, data))
    data["scenarios"] = ["missing.yaml"]
    with pytest.raises(
        ParameterError, match=r"scenarios\[0\]: scenario file 'missing.yaml' not found"
    ):
        parameters.load(write(tmp_path, data))
    data["scenarios"] = [{"churn_rate": 0.1}]
    with pytest.raises(ParameterError, match=r"scenarios\[0\]: a scenario needs a 'name'"):
        parameters.load(write(tmp_path, data))


def test_scenarios_change_only_their_keys(data_dir):
    p = parameters.check(
        {"cycle": "FY2027-Q1", "data_dir": str(data_dir), "target_growth": 0.3,
         "scenarios": [{"name": "down", "churn_rate": 0.07}]}
    )  # fmt: skip
    base = parameters.assumptions(p)
    down = parameters.with_scenario(base, p["scenarios"][0])
    assert down.name == "down" and down.churn_rate == pytest.approx(0.07)
    assert down.target_growth == pytest.approx(0.3)
    assert base.churn_rate is None
    same = parameters.scenario_assumptions(p, p["scenarios"][0])
    assert same == down


def test_shipped_scenarios_load():
    for path in sorted((PARAMS_DIR / "scenarios").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        a = parameters.with_scenario(parameters.assumptions({"cycle": "FY2027-Q1"}), data)
        assert a.name == path.stem


def test_plan_year_defaults_to_the_cycle():
    assert parameters.plan_year({"cycle": "FY2028-Q3"}) == "FY2028"
    assert parameters.plan_year({"cycle": "FY2028-Q3", "plan_year": "FY2029"}) == "FY2029"


def test_subset_check_fills_nothing():
    assert parameters.check({"horizon": 6}, require=False) == {"horizon": 6}


def test_cycle_must_come_after_the_actuals():
    months = pd.date_range("2025-01-01", "2026-10-01", freq="MS")
    cube = xr.Dataset(coords={"month": months}, attrs={"as_of": "2026-10-01", "fiscal_year_start": 11, "fiscal_year_naming": "end"})  # fmt: skip
    assert parameters.check_cycle({"cycle": "FY2027-Q1"}, cube) == "FY2027-Q1"
    with pytest.raises(ParameterError, match=r"cycle FY2026-Q4 starts 2026-08, but the data has actuals to 2026-10: plan a later quarter \(the next one is FY2027-Q1\)"):  # fmt: skip
        parameters.check_cycle({"cycle": "FY2026-Q4"}, cube)


# --------------------------------------------------------------------------- hostile parameter files

HOSTILE = Path(__file__).parent / "hostile"
PARAMETER_CASES = sorted(HOSTILE.glob("params_*"))


def test_at_least_twenty_hostile_parameter_files():
    # tests/test_hostile.py runs every case of the corpus, these among them.
    assert len(PARAMETER_CASES) >= 20
