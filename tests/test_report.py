"""Tests of the plan pack machinery: run folder, failure reporting, atomic publish, HTML/Excel/manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import numpy as np
import openpyxl
import pandas as pd
import pytest
import xarray as xr
import yaml

from revmodel import formatting, publish
from revmodel.errors import ParameterError, RevmodelError
from revmodel.publish import swap


def test_results_round_trip(tmp_path):
    ds = xr.Dataset(
        {"x": ("rep", [1.0, 2.0]), "flag": ("rep", np.array([True, False])), "who": ("rep", np.array(["a", "b"], dtype=object))},
        coords={"rep": np.array(["r1", "r2"], dtype=object), "manager": ("rep", np.array(["m", "n"], dtype=object))},
        attrs={"as_of": "2026-10-01", "band": [0.8, 1.25], "backfill": True, "info": {"a": 1}},
    )  # fmt: skip
    assert publish.save_result(tmp_path, "ds", ds).name == "ds.nc"
    back = publish.load_result(tmp_path, "ds")
    np.testing.assert_array_equal(back["x"].values, [1.0, 2.0])
    assert list(back["rep"].values) == ["r1", "r2"] and back["rep"].dtype == object
    assert list(back["who"].values) == ["a", "b"]
    assert back.attrs["backfill"] == 1 and json.loads(back.attrs["info"]) == {"a": 1}
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    publish.save_result(tmp_path, "frame", frame)
    pd.testing.assert_frame_equal(publish.load_result(tmp_path, "frame"), frame)
    publish.save_result(
        tmp_path, "info", {"n": np.int64(3), "v": float("nan"), "d": pd.Timestamp("2026-01-05")}
    )
    assert publish.load_result(tmp_path, "info") == {"n": 3, "v": None, "d": "2026-01-05"}


def test_missing_result_names_the_notebook_order(tmp_path):
    with pytest.raises(
        RevmodelError,
        match=r"no result named 'forecast'; run the notebook that makes it first",
    ):
        publish.load_result(tmp_path, "forecast")


def test_tables_round_trip(tmp_path):
    tables = {
        "reps": pd.DataFrame({"rep_id": ["a"]}),
        "accounts": pd.DataFrame({"account_id": ["x", "y"]}),
    }
    publish.save_tables(tmp_path, tables)
    back = publish.load_tables(tmp_path)
    assert sorted(back) == ["accounts", "reps"] and len(back["accounts"]) == 2


def test_publish_replaces_the_previous_pack(tmp_path):
    final = tmp_path / "FY2027-Q1"
    final.mkdir()
    (final / "plan.html").write_text("old")
    tmp = tmp_path / ".FY2027-Q1.tmp-1"
    tmp.mkdir()
    (tmp / "plan.html").write_text("new")
    publish.publish(tmp, final)
    assert (final / "plan.html").read_text() == "new"
    assert not tmp.exists() and not (tmp_path / "FY2027-Q1.prev").exists()


def test_failed_swap_restores_the_previous_pack(tmp_path, monkeypatch):
    final = tmp_path / "FY2027-Q1"
    final.mkdir()
    (final / "plan.html").write_text("old")
    tmp = tmp_path / ".FY2027-Q1.tmp-1"
    tmp.mkdir()
    real = os.rename
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(swap.os, "rename", flaky)
    with pytest.raises(OSError, match="disk full"):
        publish.publish(tmp, final)
    assert (final / "plan.html").read_text() == "old"


def test_bad_parameters_stop_before_anything_runs(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"cycle": "FY2027-Q1", "data_dir": str(tmp_path / "none")}))
    out = tmp_path / "reports"
    with pytest.raises(ParameterError, match=r"data_dir '.*none': no such folder"):
        publish.plan(path, out_dir=out)
    assert not out.exists()


def test_html_table_formats():
    t = pd.DataFrame(
        {
            "name": ["A&B"],
            "forecast": [1_234_567.0],
            "coverage": [0.912],
            "hires": [3.0],
            "in_band": [True],
        }
    )
    html = publish.html_table(t)
    assert (
        "A&amp;B" in html
        and "$1.2M" in html
        and "91%" in html
        and ">3<" in html
        and ">yes<" in html
    )
    assert "1 of 3 rows" in publish.html_table(pd.concat([t] * 3), max_rows=1)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5e9, "$1.50B"),
        (-2_500_000.0, "-$2.5M"),
        (12_345.0, "$12K"),
        (12.0, "$12"),
        (float("nan"), "–"),
        (None, "–"),
    ],
)
def test_money(value, text):
    assert formatting.money(value, "USD") == text


def _summary() -> dict:
    return {"cycle": "FY2027-Q1", "plan_year": "FY2027", "as_of": "2026-10", "quarter_months": "Nov 2026 - Jan 2027",
            "quarter_target": 3e6, "quarter_forecast": 2.5e6, "quarter_p10": 2e6, "quarter_p90": 3.2e6, "quarter_gap": 5e5}  # fmt: skip


def test_html_is_self_contained_and_has_no_code():
    page = publish.render_html(_summary(), {"scenarios": pd.DataFrame({"scenario": ["base"], "target": [1.0]})}, {}, {"cycle": "FY2027-Q1"}, "/*plotly*/")  # fmt: skip
    assert page.startswith("<!DOCTYPE html>")
    assert "<script src" not in page and "In [" not in page and "import " not in page
    assert (
        "Quarterly plan FY2027-Q1" in page
        and "Executive summary" in page
        and "Scenario comparison" in page
    )
    assert "a shortfall of $500K" in page
    assert page.count("/*plotly*/") == 1


def test_excel_one_sheet_per_table(tmp_path):
    path = publish.write_excel(
        tmp_path / "plan.xlsx", _summary(),
        {"quotas_by_rep": pd.DataFrame({"rep": ["a"], "quota_year": [10.0]}), "kpis": pd.DataFrame({"arr": [1.0]})},
    )  # fmt: skip
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Summary", "Quotas by rep", "KPIs"]
    assert wb["Quotas by rep"]["B2"].value == 10.0
    assert wb["Quotas by rep"]["B2"].number_format == "#,##0"


def test_manifest_fields(tmp_path):
    (tmp_path / "opportunities.csv").write_text("a\n1\n")
    m = publish.manifest(
        {"cycle": "FY2027-Q1", "data_dir": str(tmp_path)}, 0.0, 12.34, Path("p.yaml")
    )
    assert m["cycle"] == "FY2027-Q1" and m["run_seconds"] == 12.3
    assert m["packages"]["xarray"] == xr.__version__
    assert m["kernel"]["name"] == publish.KERNEL_NAME
    assert isinstance(m["data_sha256"], str) and len(m["data_sha256"]) >= 16


def test_kernel_is_pinned_to_this_interpreter(tmp_path):
    import sys

    root = publish.ensure_kernel(tmp_path)
    spec = json.loads((root / "kernels" / publish.KERNEL_NAME / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable


def test_check_pack_lists_missing_files(tmp_path):
    problems = publish.check_pack(tmp_path)
    assert "plan.html is missing" in problems and "notebooks/01-data.ipynb is missing" in problems


def _notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('work_dir: str = "x"  # run folder')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# t"),
        params,
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.mark.slow
def test_failed_notebook_names_notebook_and_cell(tmp_path):
    _notebook(tmp_path / "bad.ipynb", "raise ValueError('boom')")
    with pytest.raises(
        publish.PlanFailed, match=r"^Plan failed in notebook bad\.ipynb, cell 3: ValueError: boom"
    ) as err:
        publish.run_notebooks({"cycle": "FY2027-Q1"}, tmp_path / "work", tmp_path / "out" / "nb",
                             notebooks=("bad.ipynb",), notebooks_dir=tmp_path, failed_dir=tmp_path / "failed")  # fmt: skip
    kept = tmp_path / "failed" / "bad.ipynb"
    assert kept.exists() and str(kept) in str(err.value)
    nb = nbformat.read(kept, as_version=4)
    assert any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


def test_plan_command_names_a_bad_parameters_file(tmp_path, capsys):
    from revmodel import cli

    assert cli.main(["plan", "--params", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'nope.yaml'}: no such parameters file; see parameters/ for examples."
    )
    bad = tmp_path / "FY2027-Q1.yaml"
    bad.write_text("cycle: FY2027-Q1\ndata_dir: .\nchurn: 0.1\n")
    assert cli.main(["plan", "--params", str(bad), "--out", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: unknown key 'churn'")
    assert not (tmp_path / "reports" / "FY2027-Q1").exists()
