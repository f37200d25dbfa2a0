"""A planning project is the user's folder: init, the project root, settings from the user's data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from revmodel import cli, config, parameters, project
from revmodel.errors import DataError, ParameterError


def _opps(rows: list[tuple[str, str, float, str]]) -> pd.DataFrame:
    """Opportunities (id, stage, amount, close date) as a data folder would load them."""
    frame = pd.DataFrame(rows, columns=["opportunity_id", "stage", "amount", "close_date"])
    frame["close_date"] = pd.to_datetime(frame["close_date"])
    frame["created_date"] = frame["close_date"] - pd.Timedelta(days=30)
    return frame


def _write_export(folder: Path, rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["opportunity_id,stage,amount,close_date,created_date", *rows]
    (folder / "opportunities.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- init


def test_init_writes_a_project_and_refuses_to_overwrite_it(tmp_path, capsys):
    root = tmp_path / "acme"
    assert cli.main(["init", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"planning project in {root}: 7 files"
    assert sorted(p.name for p in root.iterdir()) == ["data", "notebooks", "parameters", "reports"]
    notebooks = sorted(p.name for p in (root / "notebooks").glob("*.ipynb"))
    assert notebooks == sorted(p.name for p in config.SHIPPED_NOTEBOOKS_DIR.glob("*.ipynb"))
    for name in notebooks:
        shipped = (config.SHIPPED_NOTEBOOKS_DIR / name).read_bytes()
        assert (root / "notebooks" / name).read_bytes() == shipped
    text = (root / "parameters" / "plan.yaml").read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    for key in ("fiscal_year_start", "currency", "segment_bands", "company_target", "cycle"):
        assert key in values
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{key}:"))
        assert "#" in line, f"{key} is not commented"
    # Every key of the template is a known parameter.
    from revmodel import parameters

    assert set(values) <= set(parameters.SCHEMA)
    before = (root / "parameters" / "plan.yaml").stat().st_mtime_ns
    assert cli.main(["init", str(root)]) == 2
    assert capsys.readouterr().err == (
        f"error: {root} already holds a planning project (parameters/plan.yaml exists); nothing "
        "was changed. Use another folder, or edit this project's parameters/plan.yaml and run "
        "`revmodel plan` there.\n"
    )
    assert (root / "parameters" / "plan.yaml").stat().st_mtime_ns == before


def test_init_into_a_folder_with_notebooks_refuses(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "mine.ipynb").write_text("{}")
    with pytest.raises(ParameterError, match=r"already holds a planning project \(notebooks/mine"):
        project.init_project(tmp_path)
    assert not (tmp_path / "parameters").exists()


# --------------------------------------------------------------------------- project root


def test_project_root_is_the_working_directory_or_revmodel_home(tmp_path, monkeypatch):
    monkeypatch.delenv("REVMODEL_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert project.config.project_root() == tmp_path.resolve()
    monkeypatch.setenv("REVMODEL_HOME", str(tmp_path / "elsewhere"))
    assert project.config.project_root() == (tmp_path / "elsewhere").resolve()


def test_config_paths_follow_the_folder_revmodel_runs_in(tmp_path):
    code = (
        "from revmodel import config; "
        "print(config.HOME); print(config.REPORTS_DIR); print(config.NOTEBOOKS_DIR)"
    )
    env = {k: v for k, v in os.environ.items() if k != "REVMODEL_HOME"}
    env["PYTHONPATH"] = str(config.ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out[0] == str(tmp_path.resolve())
    assert out[1] == str(tmp_path.resolve() / "reports")
    # An uninitialised folder runs the shipped notebooks.
    assert out[2] == str(config.SHIPPED_NOTEBOOKS_DIR)
    project.init_project(tmp_path / "p")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path / "p", env=env, capture_output=True,
        text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out[2] == str((tmp_path / "p" / "notebooks").resolve())


# --------------------------------------------------------------------------- last complete month


@pytest.mark.parametrize(
    ("last_close", "reach", "expected"),
    [
        ("2026-10-31", [], "2026-10-01"),  # the data reaches the month's last day
        ("2026-10-14", [], "2026-09-01"),  # taken mid-October: October is partial
        ("2026-10-14", ["2026-11-02"], "2026-10-01"),  # other records run into November
        ("2024-02-29", [], "2024-02-01"),  # leap day is February's last
        ("2026-01-05", ["2026-01-20"], "2025-12-01"),
    ],
)
def test_last_complete_month_of(last_close, reach, expected):
    got = project.last_complete_month_of(pd.Timestamp(last_close), [pd.Timestamp(d) for d in reach])
    assert got == pd.Timestamp(expected)


def test_last_complete_month_ignores_open_deals_and_dates_after_today():
    opps = _opps(
        [
            ("O1", "won", 100.0, "2026-03-31"),
            ("O2", "lost", 50.0, "2026-04-12"),
            ("O3", "open", 70.0, "2026-09-30"),  # expected close: not a fact yet
            ("O4", "won", 10.0, "2027-01-31"),  # after today: never actuals
        ]
    )
    opps.loc[opps["opportunity_id"] == "O4", "created_date"] = pd.Timestamp("2027-01-01")
    got = project.last_complete_month({"opportunities": opps}, today=pd.Timestamp("2026-06-15"))
    assert got == pd.Timestamp("2026-03-01")
    invoices = pd.DataFrame(
        {"invoice_date": pd.to_datetime(["2026-04-30"]), "paid_date": pd.to_datetime([None])}
    )
    got = project.last_complete_month(
        {"opportunities": opps, "invoices": invoices}, today=pd.Timestamp("2026-06-15")
    )
    assert got == pd.Timestamp("2026-04-01")


def test_last_complete_month_without_closed_deals_says_what_to_check():
    opps = _opps([("O1", "open", 100.0, "2026-03-31")])
    with pytest.raises(DataError, match=r"^opportunities: no won or lost deal closed up to today"):
        project.last_complete_month({"opportunities": opps}, today=pd.Timestamp("2026-06-15"))


# --------------------------------------------------------------------------- plan settings


def test_settings_from_an_opportunities_export_alone_assume_in_the_open(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "HOME", tmp_path)
    monkeypatch.setattr(config, "DATA_DIR", tmp_path / "data")
    data = _write_export(
        tmp_path / "export",
        [
            "D1,won,1000,2026-02-27,2026-01-10",
            "D2,lost,500,2026-03-18,2026-02-01",
            "D3,won,700,2026-03-20,2026-02-11",
            "D4,open,900,2026-06-30,2026-03-19",
        ],
    )
    s = project.plan_settings(data, today=pd.Timestamp("2026-05-01"))
    assert s.params_file is None
    # March is partial (the export ends on the 20th): actuals end in February.
    assert s.params["as_of"] == "2026-02"
    assert s.params["fiscal_year_start"] == 1
    assert s.params["cycle"] == "FY2026-Q2"  # January year: Q1 holds February, Q2 starts in April
    assert s.params["data_dir"] == str(data)
    assert s.assumed == (
        "the fiscal year starts in January (fiscal_year_start not set)",
        "amounts are in USD (currency not set)",
        "accounts without a segment are banded by employees: SMB 0-200, Mid-Market 200-2000, "
        "Enterprise 2000+",
        "actuals end at 2026-02, the data's last complete month",
        "the cycle planned is FY2026-Q2, the fiscal quarter after the actuals",
    )


def test_settings_take_the_users_calendar_and_cycle(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "HOME", tmp_path)
    data = _write_export(tmp_path / "d", ["D1,won,1000,2026-06-30,2026-06-01"])
    params = tmp_path / "plan.yaml"
    params.write_text(
        "fiscal_year_start: 4\nfiscal_year_naming: start\ncurrency: EUR\n"
        "segment_bands: [[Small, 0, 50], [Large, 50, null]]\n",
        encoding="utf-8",
    )
    s = project.plan_settings(data, params_file=params, today=pd.Timestamp("2026-08-01"))
    # April year named by its start: June 2026 is FY2026-Q1; the next quarter is FY2026-Q2.
    assert (s.params["as_of"], s.params["cycle"]) == ("2026-06", "FY2026-Q2")
    assert s.params["currency"] == "EUR"
    assert s.assumed == (
        "actuals end at 2026-06, the data's last complete month",
        "the cycle planned is FY2026-Q2, the fiscal quarter after the actuals",
    )
    s = project.plan_settings(data, params_file=params, cycle="FY2026-Q4", as_of="2026-05")
    assert (s.params["as_of"], s.params["cycle"]) == ("2026-05", "FY2026-Q4")
    assert s.assumed == ()


def test_settings_refuse_bad_values_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "HOME", tmp_path)
    data = _write_export(tmp_path / "d", ["D1,won,1000,2026-06-30,2026-06-01"])
    params = tmp_path / "plan.yaml"
    params.write_text("currency: euro\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"plan.yaml: currency must be a three-letter ISO"):
        project.plan_settings(data, params_file=params, as_of="2026-06", cycle="FY2026-Q3")
    params.write_text("segment_bands: [[Small, 10, 5]]\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"band 'Small' has upper bound 5 <= lower bound 10"):
        project.plan_settings(data, params_file=params, as_of="2026-06", cycle="FY2026-Q3")


def test_plan_without_data_says_how_to_give_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(config, "HOME", tmp_path)
    monkeypatch.setattr(config, "DATA_DIR", tmp_path / "data")
    assert cli.main(["plan", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == (
        "error: no data folder: give --data DIR (the folder with your exports) or set data_dir "
        "in parameters/plan.yaml.\n"
    )
    assert not (tmp_path / "r").exists()


def test_settings_from_the_init_template_assume_what_is_null(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "HOME", tmp_path)
    project.init_project(tmp_path)
    _write_export(tmp_path / "data", ["D1,won,1000,2026-06-30,2026-06-01"])
    monkeypatch.setattr(config, "DATA_DIR", tmp_path / "data")
    s = project.plan_settings(today=pd.Timestamp("2026-08-01"))
    assert s.params_file == tmp_path / "parameters" / "plan.yaml"
    assert s.params["data_dir"] == str(tmp_path / "data")
    assert (s.params["fiscal_year_start"], s.params["as_of"], s.params["cycle"]) == (
        1,
        "2026-06",
        "FY2026-Q3",
    )
    assert s.params["horizon"] == 15 and s.params["territories"] is True
    assert s.assumed[0] == "amounts are in USD (currency not set)"


@pytest.mark.slow
def test_opportunities_alone_publish_a_smaller_plan(tmp_path, monkeypatch, small_company):
    """Only the opportunities table, no parameters: the whole main job publishes."""
    import shutil

    from revmodel import publish

    tables, folder = small_company
    data = tmp_path / "export"
    data.mkdir()
    shutil.copy(folder / "opportunities.csv", data / "opportunities.csv")
    monkeypatch.setattr(config, "HOME", tmp_path)
    html = publish.plan(None, data_dir=data, out_dir=tmp_path / "reports")
    assert html == tmp_path / "reports" / "FY2027-Q1" / "plan.html"
    assert publish.check_pack(html.parent) == []
    manifest = json.loads((html.parent / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["as_of"] == "2026-10"
    assert manifest["parameters"]["fiscal_year_start"] == 1
    assert manifest["sections"]["shown"] == [
        "forecast", "capacity", "quotas", "scenarios", "kpis", "accuracy"
    ]  # fmt: skip
    assert [s["id"] for s in manifest["sections"]["skipped"]] == ["arr", "territories"]
    page = html.read_text(encoding="utf-8")
    assert "Churn and the ARR bridge: not provided — add the subscriptions table." in page
    assert "Territories: not provided — add the accounts and reps tables." in page
    assert "actuals to 2026-10" in page
    assert ">not provided<" in page  # the expected-churn card, never $0
    numbers = json.loads((html.parent / "tables.json").read_text(encoding="utf-8"))
    assert "arr_bridge" not in numbers and "retention_plan" not in numbers
    assert numbers["summary"]["expected_churn_arr"] is None
    # The won bookings of the cycle's last quarter of actuals match the export.
    opps = tables["opportunities"]
    won = opps[(opps["stage"] == "won") & (opps["close_date"].dt.strftime("%Y-%m") <= "2026-10")]
    import xarray as xr

    with xr.open_dataset(html.parent / "plan.nc", group="cube") as c:
        assert float(c["bookings"].sum()) == pytest.approx(float(won["amount"].sum()), rel=1e-9)


def test_currency_comes_from_the_exports_mapping_not_the_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "HOME", tmp_path)
    data = _write_export(tmp_path / "d", ["D1,won,1000,2026-06-30,2026-06-01"])
    (data / "mapping.yaml").write_text("currency: EUR\n", encoding="utf-8")
    s = project.plan_settings(data, today=pd.Timestamp("2026-08-01"))
    assert s.params["currency"] == "EUR"
    # the mapping's currency is the user's own setting: nothing to say was assumed
    assert not any("amounts are in" in line for line in s.assumed)
    assert not any("USD" in line for line in s.assumed)


def test_currency_read_from_the_amounts_symbols_is_said_to_be_assumed(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "HOME", tmp_path)
    data = _write_export(tmp_path / "d", ['D1,won,"€ 1.234,56",2026-06-30,2026-06-01'])
    s = project.plan_settings(data, today=pd.Timestamp("2026-08-01"))
    assert s.params["currency"] == "EUR"
    assert (
        "amounts are in EUR, as the amounts' symbols show "
        "(currency not set in the mapping or the parameters)"
    ) in s.assumed


def test_relative_paths_of_a_parameters_file_start_at_its_folder(tmp_path, monkeypatch):
    # The file lives in plans/q3/, the exports two folders up; revmodel runs from elsewhere.
    acme = tmp_path / "acme"
    data = _write_export(acme / "exports", ["D1,won,1000,2026-06-30,2026-06-01"])
    (data / "mapping.yaml").write_text("tables: {}\n", encoding="utf-8")
    plans = acme / "plans" / "q3"
    plans.mkdir(parents=True)
    (plans / "plan.yaml").write_text(
        "data_dir: ../../exports\nmapping: ../../exports/mapping.yaml\n", encoding="utf-8"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(config, "HOME", elsewhere)
    s = project.plan_settings(params_file=plans / "plan.yaml", today=pd.Timestamp("2026-08-01"))
    assert s.params["data_dir"] == str(data.resolve())
    assert s.params["mapping"] == str((data / "mapping.yaml").resolve())
    assert parameters.load(plans / "plan.yaml", {"cycle": "FY2026-Q3"})["data_dir"] == str(
        data.resolve()
    )
    # A path given on the command line starts at the folder revmodel runs in.
    _write_export(elsewhere / "mine", ["D2,won,500,2026-06-30,2026-06-01"])
    s = project.plan_settings("mine", params_file=plans / "plan.yaml", today="2026-08-01")
    assert s.params["data_dir"] == str(elsewhere / "mine")
    # A file naming a folder that is not there says which, from where.
    (plans / "bad.yaml").write_text("data_dir: exports\n", encoding="utf-8")
    with pytest.raises(ParameterError) as err:
        project.plan_settings(params_file=plans / "bad.yaml", today=pd.Timestamp("2026-08-01"))
    assert str(err.value) == (
        f"{plans / 'bad.yaml'}: data_dir '{plans.resolve() / 'exports'}': no such folder "
        f"({plans.resolve() / 'exports'}); give the folder holding your exports "
        "(e.g. `revmodel sample --out data/sample`)."
    )
